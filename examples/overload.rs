//! Overload check (issue 13): an open-loop load at twice the server's capacity
//! against the real binary, then half of it, on 127.0.0.1 only.
//!
//! ```sh
//! cargo build --release && cargo run --release --example overload -- \
//!     [--secs 8] [--max-connections 64] [--max-in-flight N] [--clients 128] [--work keys|login] [--binary PATH]
//! ```
//!
//! `--clients` clients (at most one connection each, kept alive) take the
//! scheduled requests in order; a client without a slot is refused 503 at the
//! accept and tries again with its next request.
//!
//! 1. **Capacity**: 32 keep-alive connections send `POST /keys` back to back
//!    for 3 s (closed loop); their rate is the capacity `C`.
//! 2. **Overload**: `2C` requests a second at a constant rate (open loop: each
//!    request is started at its scheduled time whatever happened to the earlier
//!    ones, on an idle connection or a new one), for `--secs`.
//! 3. **Recovery**: `C/2` a second for 5 s.
//!
//! Latency is measured from each request's *scheduled* time, so time spent
//! waiting for a connection counts (no coordinated omission). A request is
//! *admitted* (201), *shed* (503 or 429, the refusal at the accept included),
//! *failed* (connection error) or *timed out* (no answer in 5 s). At the end
//! `/stats` must count exactly the keys whose creation was acknowledged.
//! Printed, not asserted: this is a benchmark, not a test.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpSocket;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// No answer within this is a time-out.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Client source addresses, so that the 4-tuples of many short refused
/// connections do not run out (and the per-IP cap is not what is measured).
const SOURCES: u8 = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Admitted,
    Shed,
    Failed,
    TimedOut,
}

#[derive(Debug, Clone, Copy)]
struct Outcome {
    phase: usize,
    /// Scheduled time, seconds after the phase began.
    at: f64,
    kind: Kind,
    /// From the scheduled time (waiting for a free client included).
    latency: Duration,
    /// From the moment it was sent.
    service: Duration,
}

static FAILED_SHOWN: AtomicU64 = AtomicU64::new(0);

type Sender = SendRequest<Full<Bytes>>;

async fn open(addr: SocketAddr, n: u64) -> Result<Sender, BoxError> {
    let sock = TcpSocket::new_v4()?;
    let src = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (n % SOURCES as u64) as u8));
    sock.bind(SocketAddr::new(src, 0))?;
    let stream = sock.connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// The work measured: `POST /keys` (cheap) or `POST /login` (argon2id, costly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    Keys,
    Login,
}

const LOGIN: &str = r#"{"username": "overload", "password": "correct horse battery"}"#;

/// One request on the client's connection, opening one if it has none.
async fn one(addr: SocketAddr, conn: &mut Option<Sender>, n: u64, work: Work) -> Kind {
    let attempt = async {
        let mut sender = match conn.take() {
            Some(s) if !s.is_closed() => s,
            _ => open(addr, n).await?,
        };
        sender.ready().await?;
        let (path, body) = match work {
            Work::Keys => ("/keys", Bytes::new()),
            Work::Login => ("/login", Bytes::from_static(LOGIN.as_bytes())),
        };
        let req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("host", "bench")
            .header("content-type", "application/json")
            .body(Full::new(body))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let close = resp
            .headers()
            .get("connection")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
        resp.into_body().collect().await?;
        if !close {
            *conn = Some(sender);
        }
        Ok::<_, BoxError>(status)
    };
    match tokio::time::timeout(REQUEST_TIMEOUT, attempt).await {
        Err(_) => Kind::TimedOut,
        Ok(Err(e)) => {
            let n = FAILED_SHOWN.fetch_add(1, Ordering::Relaxed);
            if n < 3 || n.is_power_of_two() {
                eprintln!("failure #{n}: {e:?}");
            }
            Kind::Failed
        }
        Ok(Ok(StatusCode::CREATED | StatusCode::OK)) => Kind::Admitted,
        Ok(Ok(s)) if s == StatusCode::SERVICE_UNAVAILABLE || s == StatusCode::TOO_MANY_REQUESTS => {
            Kind::Shed
        }
        Ok(Ok(_)) => Kind::Failed,
    }
}

/// Registers the user `--work login` logs in as.
async fn one_register(addr: SocketAddr, conn: &mut Option<Sender>) -> Result<StatusCode, BoxError> {
    let mut s = match conn.take() {
        Some(s) => s,
        None => open(addr, 0).await?,
    };
    let req = Request::builder()
        .method(Method::POST)
        .uri("/register")
        .header("host", "bench")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(LOGIN.as_bytes())))?;
    Ok(s.send_request(req).await?.status())
}

/// Closed loop: `conns` connections back to back for `secs`; requests admitted.
async fn capacity(addr: SocketAddr, conns: usize, secs: f64, work: Work) -> u64 {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..conns)
        .map(|i| {
            tokio::spawn(async move {
                let mut conn = None;
                let mut ok = 0u64;
                while Instant::now() < until {
                    if one(addr, &mut conn, i as u64, work).await == Kind::Admitted {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap_or(0);
    }
    total
}

/// A scheduled request.
struct Job {
    phase: usize,
    start: tokio::time::Instant,
    scheduled: tokio::time::Instant,
}

/// Open loop: `clients` clients (one connection each at most) take the
/// requests scheduled at each phase's constant rate, in order.
async fn open_loop(
    addr: SocketAddr,
    clients: usize,
    phases: &[(f64, f64)],
    work: Work,
) -> Vec<Outcome> {
    let (jobs_tx, jobs_rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
    let jobs = Arc::new(tokio::sync::Mutex::new(jobs_rx));
    let (out_tx, mut out_rx) = tokio::sync::mpsc::unbounded_channel();
    for n in 0..clients {
        let (jobs, out_tx) = (jobs.clone(), out_tx.clone());
        tokio::spawn(async move {
            let mut conn = None;
            loop {
                let job = jobs.lock().await.recv().await;
                let Some(job) = job else { break };
                let sent = tokio::time::Instant::now();
                let kind = one(addr, &mut conn, n as u64, work).await;
                let _ = out_tx.send(Outcome {
                    phase: job.phase,
                    at: (job.scheduled - job.start).as_secs_f64(),
                    kind,
                    latency: job.scheduled.elapsed(),
                    service: sent.elapsed(),
                });
            }
        });
    }
    drop(out_tx);
    for (phase, &(rate, secs)) in phases.iter().enumerate() {
        let start = tokio::time::Instant::now();
        let total = (rate * secs) as u64;
        let mut next = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        while next < total {
            tick.tick().await;
            let due = ((start.elapsed().as_secs_f64() * rate) as u64).min(total);
            while next < due {
                let scheduled = start + Duration::from_secs_f64(next as f64 / rate);
                let _ = jobs_tx.send(Job {
                    phase,
                    start,
                    scheduled,
                });
                next += 1;
            }
        }
    }
    drop(jobs_tx);
    let mut out = Vec::new();
    while let Some(o) = out_rx.recv().await {
        out.push(o);
    }
    out.sort_by(|a, b| {
        (a.phase, a.at)
            .partial_cmp(&(b.phase, b.at))
            .expect("finite")
    });
    out
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(label: &str, out: &[Outcome], secs: f64) {
    let count = |k| out.iter().filter(|o| o.kind == k).count();
    let mut lat: Vec<Duration> = out
        .iter()
        .filter(|o| o.kind == Kind::Admitted)
        .map(|o| o.latency)
        .collect();
    lat.sort();
    let mut service: Vec<Duration> = out
        .iter()
        .filter(|o| o.kind == Kind::Admitted)
        .map(|o| o.service)
        .collect();
    service.sort();
    println!(
        "{label:<10} offered {:>7.0}/s  admitted {:>7.0}/s  shed {:>7}  failed {:>5}  timed out {:>4}  \
         admitted p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  (server: p99 {:>6.2} ms)",
        out.len() as f64 / secs,
        count(Kind::Admitted) as f64 / secs,
        count(Kind::Shed),
        count(Kind::Failed),
        count(Kind::TimedOut),
        pct(&lat, 0.5).as_secs_f64() * 1e3,
        pct(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        pct(&service, 0.99).as_secs_f64() * 1e3,
    );
}

fn arg(name: &str, default: &str) -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| default.to_string())
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn main() -> Result<(), BoxError> {
    let secs: f64 = arg("--secs", "8").parse()?;
    let max_conns = arg("--max-connections", "64");
    // Passed on only when given (older binaries have no such flag).
    let max_in_flight = arg("--max-in-flight", "");
    let clients: usize = arg("--clients", "128").parse()?;
    let work = match arg("--work", "keys").as_str() {
        "keys" => Work::Keys,
        "login" => Work::Login,
        w => return Err(format!("--work keys|login, not {w}").into()),
    };
    let exe = std::env::current_exe()?;
    let profile = exe
        .parent()
        .and_then(|p| p.parent())
        .ok_or("no target directory")?;
    let bin = std::path::PathBuf::from(arg(
        "--binary",
        &profile.join("keypool").display().to_string(),
    ));
    if !bin.is_file() {
        return Err(format!(
            "{} not built: run cargo build --release first",
            bin.display()
        )
        .into());
    }
    let dir = tempfile::Builder::new()
        .prefix("overload-")
        .tempdir_in(profile)?;
    let mut child = Command::new(&bin)
        .args(["--bind", "127.0.0.1:0", "--open-pool", "--fsync", "never"])
        .args(["--max-connections", &max_conns])
        .args(if max_in_flight.is_empty() {
            vec![]
        } else {
            vec!["--max-in-flight", &max_in_flight]
        })
        .args(["--ip-rate-limit", "1000000000/1s"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().ok_or("no stdout")?),
        &mut line,
    )?;
    let server = Server(child);
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on http://")
        .ok_or("unexpected first line")?
        .parse()?;
    println!(
        "keypool --max-connections {max_conns} --fsync never --open-pool at {addr}; {work:?}, {clients} clients"
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        if work == Work::Login {
            let mut c = None;
            let _ = one_register(addr, &mut c).await;
        }
        let cap_acked = capacity(addr, 32, 3.0, work).await;
        let cap = cap_acked as f64 / 3.0;
        println!("capacity (closed loop, 32 connections): {cap:.0} admitted/s");
        let all = open_loop(addr, clients, &[(2.0 * cap, secs), (cap / 2.0, 5.0)], work).await;
        let over: Vec<Outcome> = all.iter().filter(|o| o.phase == 0).copied().collect();
        let rec: Vec<Outcome> = all.iter().filter(|o| o.phase == 1).copied().collect();
        summary("2x", &over, secs);
        summary("0.5x", &rec, 5.0);
        for s in 0..5 {
            let part: Vec<Outcome> = rec
                .iter()
                .filter(|o| o.at >= s as f64 && o.at < (s + 1) as f64)
                .copied()
                .collect();
            summary(&format!("  0.5x {s}s"), &part, 1.0);
        }
        // Recovered: from the first 100 ms window after which every request
        // is admitted and answered (from its schedule) within 10 ms.
        let bad = |o: &&Outcome| o.kind != Kind::Admitted || o.latency > Duration::from_millis(10);
        let last_bad = rec.iter().filter(bad).map(|o| o.at).fold(-1.0, f64::max);
        println!(
            "recovery: the last request after the drop not admitted within 10 ms was scheduled at {:.3} s",
            last_bad.max(0.0)
        );
        if work == Work::Login {
            return Ok(());
        }
        // Nothing acknowledged is lost: /stats counts every 201.
        let acked = over
            .iter()
            .chain(&rec)
            .filter(|o| o.kind == Kind::Admitted)
            .count() as u64
            + cap_acked;
        let mut s = open(addr, 0).await?;
        let resp = s
            .send_request(
                Request::builder()
                    .uri("/stats")
                    .header("host", "bench")
                    .body(Full::new(Bytes::new()))?,
            )
            .await?;
        let body = resp.into_body().collect().await?.to_bytes();
        let stats: serde_json::Value = serde_json::from_slice(&body)?;
        let total = stats["total"].as_u64().unwrap_or(0);
        println!(
            "keys acknowledged: {acked}; /stats total: {total} ({}; a timed-out request may have created one unacknowledged)",
            if total >= acked { "nothing acknowledged lost" } else { "ACKNOWLEDGED KEYS LOST" }
        );
        Ok::<_, BoxError>(())
    })?;
    drop(server);
    Ok(())
}
