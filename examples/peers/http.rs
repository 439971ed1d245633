//! The HTTP servers under test: the real `keypool` binary (one process per
//! `--fsync` mode, each on a data directory of its own) and the bare hyper
//! server (`examples/bare.rs`), both pinned to the server core; the setup a
//! new user would do before the load (register, log in, create an API key,
//! fill the pool), and keypool's own `/metrics` counters.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::procs::{self, BoxError, Server};

/// The benchmark account.
const USER: &str = "peersbench";
const PASSWORD: &str = "correct horse battery staple";

/// A running HTTP server under test, and the credential its pool is under.
pub struct HttpServer {
    // Field order is drop order: the process stops before its directory goes.
    server: Server,
    /// Where it listens.
    pub addr: SocketAddr,
    /// `X-API-Key` for the pool, or `None` for the open pool / the bare server.
    pub api_key: Option<String>,
    /// Whether `/metrics` is keypool's.
    pub keypool: bool,
    _dir: tempfile::TempDir,
}

impl HttpServer {
    /// Starts `keypool --fsync mode`, creates an account and an API key (no
    /// rate limit on the key: the most generous) unless `open`, and fills its
    /// pool with `keys` keys.
    pub fn keypool(bin: &Path, mode: &str, open: bool, keys: u64) -> Result<HttpServer, BoxError> {
        let label = format!("{mode}{}", if open { "-open" } else { "" });
        let dir = procs::temp_dir(&label)?;
        let data = dir.path().join("data");
        let mut args: Vec<String> = [
            "--bind",
            "127.0.0.1:0",
            "--fsync",
            mode,
            // Keys outlive the run; leases are the default 60 s.
            "--key-ttl",
            "1h",
            // The setup's /register and /login are anonymous traffic.
            "--ip-rate-limit",
            "1000000/1m",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.push("--data-dir".into());
        args.push(data.to_string_lossy().into_owned());
        if open {
            args.push("--open-pool".into());
        }
        let mut server = Server::spawn(
            &format!("{} --fsync {mode}", bin.display()),
            bin,
            &args,
            &dir.path().join("stderr.log"),
        )?;
        let addr = server.wait_listening()?;
        let api_key = if open { None } else { Some(api_key(addr)?) };
        fill(addr, api_key.as_deref(), keys)?;
        Ok(HttpServer {
            server,
            addr,
            api_key,
            keypool: true,
            _dir: dir,
        })
    }

    /// Starts the bare hyper server.
    pub fn bare(bin: &Path) -> Result<HttpServer, BoxError> {
        let dir = procs::temp_dir("bare")?;
        let mut server = Server::spawn("bare", bin, &[], &dir.path().join("stderr.log"))?;
        let addr = server.wait_listening()?;
        Ok(HttpServer {
            server,
            addr,
            api_key: None,
            keypool: false,
            _dir: dir,
        })
    }

    /// The server process.
    pub fn process(&self) -> &Server {
        &self.server
    }

    /// keypool's counters from `/metrics` (empty for the bare server).
    pub fn metrics(&self) -> Result<Counters, BoxError> {
        if !self.keypool {
            return Ok(Counters::default());
        }
        let text = agent()
            .get(&format!("http://{}/metrics", self.addr))
            .call()?
            .into_string()?;
        Ok(Counters::parse(&text))
    }
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build()
}

/// Register, log in, `/generate-key`; returns the key.
fn api_key(addr: SocketAddr) -> Result<String, BoxError> {
    let a = agent();
    let base = format!("http://{addr}");
    let user = serde_json::json!({"username": USER, "password": PASSWORD});
    a.post(&format!("{base}/register")).send_json(&user)?;
    let login: serde_json::Value = a
        .post(&format!("{base}/login"))
        .send_json(&user)?
        .into_json()?;
    let token = login["token"].as_str().ok_or("no token in /login")?;
    let made: serde_json::Value = a
        .post(&format!("{base}/generate-key"))
        .set("Authorization", &format!("Bearer {token}"))
        .send_json(serde_json::json!({"name": "peers"}))?
        .into_json()?;
    Ok(made["key"]
        .as_str()
        .ok_or("no key in /generate-key")?
        .to_string())
}

/// `POST /keys` `n` times on one keep-alive connection.
fn fill(addr: SocketAddr, api_key: Option<&str>, n: u64) -> Result<(), BoxError> {
    let a = agent();
    let url = format!("http://{addr}/keys");
    for _ in 0..n {
        let mut req = a.post(&url);
        if let Some(k) = api_key {
            req = req.set("X-API-Key", k);
        }
        req.call()?;
    }
    Ok(())
}

/// keypool's unlabelled counters and gauges (`keypool_wal_*`, the request
/// latency's `_sum` and `_count`), by name; labelled series are summed.
#[derive(Debug, Default, Clone)]
pub struct Counters(pub BTreeMap<String, f64>);

impl Counters {
    /// Reads the Prometheus text.
    pub fn parse(text: &str) -> Counters {
        let mut map = BTreeMap::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else {
                continue;
            };
            let name = series.split('{').next().unwrap_or(series);
            let wanted = name.starts_with("keypool_wal_")
                || name == "keypool_request_duration_seconds_sum"
                || name == "keypool_request_duration_seconds_count";
            if let (true, Ok(v)) = (wanted, value.parse::<f64>()) {
                *map.entry(name.to_string()).or_insert(0.0) += v;
            }
        }
        Counters(map)
    }

    /// `self - before`, series by series, added to `total`.
    pub fn add_delta(&self, before: &Counters, total: &mut Counters) {
        for (k, v) in &self.0 {
            let d = v - before.0.get(k).copied().unwrap_or(0.0);
            *total.0.entry(k.clone()).or_insert(0.0) += d;
        }
    }

    /// One series, 0 when absent.
    pub fn get(&self, name: &str) -> f64 {
        self.0.get(name).copied().unwrap_or(0.0)
    }
}
