//! Overload check (issue 13): an open-loop load at twice the server's capacity
//! against the real binary, then half of it, on 127.0.0.1 only.
//!
//! ```sh
//! cargo build --release && cargo run --release --example overload -- \
//!     [--secs 8] [--max-connections 64] [--max-in-flight N] [--clients 128] [--work keys|login] [--binary PATH]
//!     [--fsync never|always|everysec] [--pin] [--capacity-conns 32] [--recovery-secs 5]
//! ```
//!
//! `--pin` runs the server on CPU 0 (`taskset -c 0`) and this generator on
//! CPU 1 (one thread), as `examples/peers.rs` does. With `--fsync always` the
//! server's capacity is set by fdatasync rather than by its CPU, so a
//! generator on the other core can truly offer twice that; the "sent" figures
//! (how late requests left the generator against their schedule) say whether
//! it did.
//!
//! `--clients` clients (at most one connection each, kept alive) take the
//! scheduled requests in order; a client without a slot is refused 503 at the
//! accept and tries again with its next request.
//!
//! 1. **Capacity**: `--capacity-conns` (32) keep-alive connections send
//!    `POST /keys` back to back for 3 s (closed loop); their rate is the
//!    capacity `C`, and the p99 of their latency is the closed-loop p99 `L`.
//! 2. **Overload**: `2C` requests a second at a constant rate (open loop: each
//!    request is started at its scheduled time whatever happened to the earlier
//!    ones, on an idle connection or a new one), for `--secs`.
//! 3. **Recovery**: `C/2` a second for `--recovery-secs` (5).
//!
//! **Time to recover**: from the moment the schedule drops to `C/2` to the
//! start of the first 1 s window (windows start every 100 ms of the recovery
//! phase, by scheduled time) in which every request scheduled was admitted
//! (none shed, failed or timed out) and the p99 of latency from the schedule
//! is at most `2L`. A backlog of the overload phase still in the server or in
//! the generator delays the recovery phase's requests, so it counts.
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
    /// How late it left the generator against its schedule.
    sent_late: Duration,
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

/// Closed loop: `conns` connections back to back for `secs`; requests
/// admitted, and the latencies of the admitted ones, sorted.
async fn capacity(addr: SocketAddr, conns: usize, secs: f64, work: Work) -> (u64, Vec<Duration>) {
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = (0..conns)
        .map(|i| {
            tokio::spawn(async move {
                let mut conn = None;
                let mut lat = Vec::new();
                while Instant::now() < until {
                    let t0 = Instant::now();
                    if one(addr, &mut conn, i as u64, work).await == Kind::Admitted {
                        lat.push(t0.elapsed());
                    }
                }
                lat
            })
        })
        .collect();
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap_or_default());
    }
    all.sort();
    (all.len() as u64, all)
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
                    sent_late: sent.saturating_duration_since(job.scheduled),
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
            // Request n is due at n / rate: those with n <= elapsed * rate.
            let due = ((start.elapsed().as_secs_f64() * rate) as u64 + 1).min(total);
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
    let mut late: Vec<Duration> = out.iter().map(|o| o.sent_late).collect();
    late.sort();
    // What the generator really sent within the window, against its schedule.
    let from = out.iter().map(|o| o.at).fold(f64::MAX, f64::min);
    let sent_in = out
        .iter()
        .filter(|o| o.at + o.sent_late.as_secs_f64() <= from + secs)
        .count();
    println!(
        "{label:<10} offered {:>7.0}/s  sent {:>7.0}/s  admitted {:>7.0}/s  shed {:>7}  failed {:>5}  timed out {:>4}  \
         admitted p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms  (server: p99 {:>6.2} ms)  \
         sent late p50 {:>6.2} ms  p99 {:>6.2} ms",
        out.len() as f64 / secs,
        sent_in as f64 / secs,
        count(Kind::Admitted) as f64 / secs,
        count(Kind::Shed),
        count(Kind::Failed),
        count(Kind::TimedOut),
        pct(&lat, 0.5).as_secs_f64() * 1e3,
        pct(&lat, 0.99).as_secs_f64() * 1e3,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        pct(&service, 0.99).as_secs_f64() * 1e3,
        pct(&late, 0.5).as_secs_f64() * 1e3,
        pct(&late, 0.99).as_secs_f64() * 1e3,
    );
}

/// Time to recover (see the doc at the top): the start, in seconds after the
/// drop, of the first 1 s window of `rec` (windows every 100 ms, by scheduled
/// time, wholly inside the phase) in which at most `refused` (a fraction) of
/// the requests were not admitted and the p99 of latency from the schedule is
/// at most `bound`; `None` if no window qualifies.
fn time_to_recover(rec: &[Outcome], phase_secs: f64, bound: Duration, refused: f64) -> Option<f64> {
    let steps = ((phase_secs - 1.0) * 10.0).floor().max(0.0) as u32;
    (0..=steps).map(|k| k as f64 / 10.0).find(|&from| {
        let window: Vec<&Outcome> = rec
            .iter()
            .filter(|o| o.at >= from && o.at < from + 1.0)
            .collect();
        let mut lat: Vec<Duration> = window.iter().map(|o| o.latency).collect();
        lat.sort();
        let bad = window.iter().filter(|o| o.kind != Kind::Admitted).count();
        !window.is_empty()
            && bad as f64 <= refused * window.len() as f64
            && pct(&lat, 0.99) <= bound
    })
}

/// Pins this process to CPU 1 (`--pin`: the server has CPU 0).
fn pin_self_to_cpu_1() {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET and sched_setaffinity only
    // touch the set we own.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(1, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
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
    let fsync = arg("--fsync", "never");
    if !["never", "always", "everysec"].contains(&fsync.as_str()) {
        return Err(format!("--fsync never|always|everysec, not {fsync}").into());
    }
    let pin = std::env::args().any(|a| a == "--pin");
    let cap_conns: usize = arg("--capacity-conns", "32").parse()?;
    let rec_secs: f64 = arg("--recovery-secs", "5").parse()?;
    if !(1..=1024).contains(&cap_conns)
        || !(2.0..=60.0).contains(&rec_secs)
        || !(1.0..=60.0).contains(&secs)
    {
        return Err("--capacity-conns 1-1024, --recovery-secs 2-60, --secs 1-60".into());
    }
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
    let mut cmd = if pin {
        pin_self_to_cpu_1();
        let mut c = Command::new("taskset");
        c.args(["-c", "0"]).arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    let mut child = cmd
        .args(["--bind", "127.0.0.1:0", "--open-pool", "--fsync", &fsync])
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
        "keypool --max-connections {max_conns}{} --fsync {fsync} --open-pool at {addr}; {work:?}, \
         {clients} clients; {}",
        if max_in_flight.is_empty() {
            String::new()
        } else {
            format!(" --max-in-flight {max_in_flight}")
        },
        if pin {
            "server on CPU 0, generator on CPU 1 (one thread)"
        } else {
            "server and generator unpinned (2 generator threads)"
        }
    );

    // Pinned, the generator has one core: one thread, no hand-offs.
    let rt = if pin {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?
    };
    rt.block_on(async move {
        if work == Work::Login {
            let mut c = None;
            let _ = one_register(addr, &mut c).await;
        }
        let (cap_acked, cap_lat) = capacity(addr, cap_conns, 3.0, work).await;
        let cap = cap_acked as f64 / 3.0;
        let closed_p99 = pct(&cap_lat, 0.99);
        println!(
            "capacity (closed loop, {cap_conns} connections): {cap:.0} admitted/s, p50 {:.2} ms, p99 {:.2} ms",
            pct(&cap_lat, 0.5).as_secs_f64() * 1e3,
            closed_p99.as_secs_f64() * 1e3
        );
        let all = open_loop(addr, clients, &[(2.0 * cap, secs), (cap / 2.0, rec_secs)], work).await;
        let over: Vec<Outcome> = all.iter().filter(|o| o.phase == 0).copied().collect();
        let rec: Vec<Outcome> = all.iter().filter(|o| o.phase == 1).copied().collect();
        summary("2x", &over, secs);
        for s in 0..secs.ceil() as usize {
            let part: Vec<Outcome> = over
                .iter()
                .filter(|o| o.at >= s as f64 && o.at < (s + 1) as f64)
                .copied()
                .collect();
            summary(&format!("  2x {s}s"), &part, 1.0);
        }
        summary("0.5x", &rec, rec_secs);
        for s in 0..rec_secs.ceil() as usize {
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
        let bound = 2 * closed_p99;
        for (refused, what) in [(0.0, "nothing refused"), (0.01, "at most 1 % refused")] {
            match time_to_recover(&rec, rec_secs, bound, refused) {
                Some(t) => println!(
                    "time to recover ({what}): {t:.1} s (the first 1 s window after the drop with \
                     {what} and p99 from schedule <= {:.2} ms = 2x the closed-loop p99)",
                    bound.as_secs_f64() * 1e3
                ),
                None => println!(
                    "time to recover ({what}): not within the {rec_secs} s recovery phase (no 1 s \
                     window with {what} and p99 from schedule <= {:.2} ms = 2x the closed-loop p99)",
                    bound.as_secs_f64() * 1e3
                ),
            }
        }
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
