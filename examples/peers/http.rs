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
    /// A second key of the same account, scoped, IP-restricted and metered
    /// ([`HttpServer::add_restricted_key`]), for the `platform` peer.
    pub restricted_key: Option<String>,
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
            restricted_key: None,
            keypool: true,
            _dir: dir,
        })
    }

    /// Creates the account's second key, with only what checkout and release
    /// need: scope `pool:write`, `allowed_ips` 127.0.0.0/8 (the load comes
    /// from 127.0.0.1), and [`RESTRICTED_CREDITS`] credits refilled daily, far
    /// more than any run spends; every request through it passes the scope
    /// bit, the allowlist and a credit spend.
    pub fn add_restricted_key(&mut self) -> Result<(), BoxError> {
        let token = login(self.addr)?;
        let body = serde_json::json!({
            "name": "peers-restricted",
            "scopes": ["pool:write"],
            "allowed_ips": ["127.0.0.0/8"],
            "credits": {
                "remaining": RESTRICTED_CREDITS,
                "refill": {"amount": RESTRICTED_CREDITS, "interval": "daily"},
            },
        });
        self.restricted_key = Some(generate_key(self.addr, &token, &body)?);
        Ok(())
    }

    /// The restricted key's credits left (`GET /list-keys`), to show that the
    /// runs spent them (one per request) and never ran out.
    pub fn restricted_credits(&self) -> Result<Option<u64>, BoxError> {
        let token = login(self.addr)?;
        let list: serde_json::Value = agent()
            .get(&format!("http://{}/list-keys", self.addr))
            .set("Authorization", &format!("Bearer {token}"))
            .call()?
            .into_json()?;
        let items = list["items"].as_array().ok_or("no items in /list-keys")?;
        Ok(items
            .iter()
            .find(|k| k["name"] == "peers-restricted")
            .and_then(|k| k["credits_remaining"].as_u64()))
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
            restricted_key: None,
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

/// The restricted key's credits (and its daily refill): a billion, which no
/// run of a few minutes at under 100k requests a second can spend.
pub const RESTRICTED_CREDITS: u64 = 1_000_000_000;

/// Register, log in, `/generate-key`; returns the key.
fn api_key(addr: SocketAddr) -> Result<String, BoxError> {
    let user = serde_json::json!({"username": USER, "password": PASSWORD});
    agent()
        .post(&format!("http://{addr}/register"))
        .send_json(&user)?;
    let token = login(addr)?;
    generate_key(addr, &token, &serde_json::json!({"name": "peers"}))
}

/// `/login` as the benchmark account; returns the session token.
fn login(addr: SocketAddr) -> Result<String, BoxError> {
    let user = serde_json::json!({"username": USER, "password": PASSWORD});
    let login: serde_json::Value = agent()
        .post(&format!("http://{addr}/login"))
        .send_json(&user)?
        .into_json()?;
    Ok(login["token"]
        .as_str()
        .ok_or("no token in /login")?
        .to_string())
}

/// `POST /generate-key` with `body` under the session `token`; returns the key.
fn generate_key(
    addr: SocketAddr,
    token: &str,
    body: &serde_json::Value,
) -> Result<String, BoxError> {
    let made: serde_json::Value = agent()
        .post(&format!("http://{addr}/generate-key"))
        .set("Authorization", &format!("Bearer {token}"))
        .send_json(body)?
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
