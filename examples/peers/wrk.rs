//! The HTTP client: `wrk` (one thread, pinned to the client core) running
//! `pool.lua`, which alternates checkouts and releases and prints one `PEERS`
//! line of counts and latencies; or plain wrk without a script (`GET /keys`
//! only), to see what the Lua costs the client.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::procs::{self, BoxError};
use crate::report::Run;

/// The wrk script, written next to the run's other files.
pub const SCRIPT: &str = include_str!("pool.lua");

/// How a wrk run is set up.
pub struct Load<'a> {
    /// The server.
    pub addr: SocketAddr,
    /// `X-API-Key`, if any.
    pub api_key: Option<&'a str>,
    /// Connections (one wrk thread drives them all).
    pub conns: usize,
    /// How long, in whole seconds.
    pub secs: u64,
    /// `pool.lua`'s path, or `None` for plain `GET /keys` without a script.
    pub script: Option<&'a Path>,
}

/// Runs wrk once; `server_cpu` is sampled around it by the caller.
pub fn run(load: &Load) -> Result<Run, BoxError> {
    let mut args: Vec<String> = vec![
        "-t1".into(),
        format!("-c{}", load.conns),
        format!("-d{}s", load.secs),
        "--timeout".into(),
        "5s".into(),
        "--latency".into(),
    ];
    match load.script {
        Some(script) => {
            args.push("-s".into());
            args.push(script.to_string_lossy().into_owned());
            args.push(format!("http://{}", load.addr));
            args.push("--".into());
            args.push(load.api_key.unwrap_or("-").to_string());
        }
        None => {
            if let Some(k) = load.api_key {
                args.push("-H".into());
                args.push(format!("X-API-Key: {k}"));
            }
            args.push(format!("http://{}/keys", load.addr));
        }
    }
    let limit = Duration::from_secs(load.secs + 30);
    let ran = procs::client("wrk", &args, limit)?;
    let mut run = match load.script {
        Some(_) => parse_peers_line(&ran.stdout)?,
        None => parse_plain(&ran.stdout)?,
    };
    run.client_cpu = ran.cpu_secs / ran.wall.as_secs_f64().max(1e-9);
    Ok(run)
}

/// Reads the script's `PEERS key=value …` line.
fn parse_peers_line(stdout: &str) -> Result<Run, BoxError> {
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("PEERS "))
        .ok_or_else(|| format!("wrk printed no PEERS line: {stdout}"))?;
    let mut ok = 0.0;
    let mut duration_us = 0.0;
    let mut run = Run::default();
    let mut first_bad = String::new();
    let mut bad_status = String::new();
    for kv in line.split_whitespace() {
        let Some((k, v)) = kv.split_once('=') else {
            continue;
        };
        let n = || v.parse::<f64>().unwrap_or(0.0);
        match k {
            "ok" => ok = n(),
            "duration_us" => duration_us = n(),
            "bad" | "socket_errors" | "timeouts" => run.errors += n() as u64,
            "checkouts" => run.checkouts = n() as u64,
            "releases" => run.releases = n() as u64,
            "p50_us" => run.p50_us = Some(n()),
            "p99_us" => run.p99_us = Some(n()),
            "bad_status" => bad_status = v.to_string(),
            "first_bad" => first_bad = v.replace('_', " "),
            _ => {}
        }
    }
    if duration_us <= 0.0 {
        return Err(format!("wrk ran for no time: {line}").into());
    }
    run.ops = ok / (duration_us / 1e6);
    if run.errors > 0 {
        run.note = Some(format!(
            "{} failed (by status: {bad_status}); first: {first_bad}",
            run.errors
        ));
    }
    Ok(run)
}

/// Reads wrk's own summary (no script): `Requests/sec`, the latency
/// distribution, and `Non-2xx or 3xx responses` and socket errors.
fn parse_plain(stdout: &str) -> Result<Run, BoxError> {
    let mut run = Run::default();
    let mut rps = None;
    let mut total = 0.0;
    for line in stdout.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Requests/sec:"), Some(v)) => rps = v.parse::<f64>().ok(),
            (Some("50%"), Some(v)) => run.p50_us = duration_us(v),
            (Some("99%"), Some(v)) => run.p99_us = duration_us(v),
            (Some(n), Some("requests")) => total = n.parse().unwrap_or(0.0),
            _ => {}
        }
        if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            run.errors += v.trim().parse::<u64>().unwrap_or(0);
        }
        if let Some(v) = line.strip_prefix("Socket errors:") {
            run.errors += v
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    let rps = rps.ok_or_else(|| format!("no Requests/sec in wrk's output: {stdout}"))?;
    // Throughput counts only the answers that were not errors.
    let good = if total > 0.0 {
        (total - run.errors as f64).max(0.0) / total
    } else {
        1.0
    };
    run.ops = rps * good;
    run.checkouts = total as u64;
    if run.errors > 0 {
        run.note = Some(format!("{} non-2xx answers or socket errors", run.errors));
    }
    Ok(run)
}

/// wrk's `512.00us`, `1.20ms`, `2.00s` in microseconds.
fn duration_us(v: &str) -> Option<f64> {
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|x| x * scale)
}
