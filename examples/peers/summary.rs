//! What `compare` prints at the end: the medians of every peer, issue 8's
//! targets as ratios of those medians, the clients' own limits, and keypool's
//! log counters from `/metrics` (records per fsync, the server's own mean
//! request time, and any other `keypool_wal_*` series it exposes).

use crate::compare::{Peer, Servers, PLATFORM_PLAIN, PLATFORM_RESTRICTED};
use crate::procs;
use crate::report::{self, count, ms, ratio_of, Check, Series, Unit};
use crate::Args;

const NEVER: &str = "keypool --fsync never";
const ALWAYS: &str = "keypool --fsync always";
const BARE: &str = "bare hyper";
const REDIS: &str = "Redis + Lua, no persistence";
const AOF: &str = "Redis + Lua, appendfsync always";

/// The ratios issue 8 sets targets for: (what, numerator, denominator, unit, at least).
const TARGETS: [(&str, &str, &str, Unit, f64); 4] = [
    (
        "keypool never / Redis, no persistence",
        NEVER,
        REDIS,
        Unit::Factor,
        1.0,
    ),
    (
        "keypool never / bare hyper",
        NEVER,
        BARE,
        Unit::Percent,
        0.85,
    ),
    (
        "keypool always / Redis, appendfsync always",
        ALWAYS,
        AOF,
        Unit::Factor,
        2.0,
    ),
    (
        "keypool always / keypool never",
        ALWAYS,
        NEVER,
        Unit::Percent,
        0.60,
    ),
];

/// Ratios without a target: (what, numerator, denominator).
const FIGURES: [(&str, &str, &str); 8] = [
    (
        "keypool everysec / keypool never",
        "keypool --fsync everysec",
        NEVER,
    ),
    (
        "keypool never: API key / open pool",
        NEVER,
        "keypool --fsync never, open pool",
    ),
    ("Redis appendfsync always / no persistence", AOF, REDIS),
    (
        "client: bare with wrk's Lua / GET only, no Lua",
        BARE,
        "check: bare hyper, GET only",
    ),
    (
        "client: bare at 1 connection / at --conns",
        "check: bare hyper, 1 connection",
        BARE,
    ),
    (
        "client: Redis pool script / PING",
        REDIS,
        "check: Redis PING, no persistence",
    ),
    (
        "keypool never / before: never",
        NEVER,
        "before: keypool --fsync never",
    ),
    (
        "keypool always / before: always",
        ALWAYS,
        "before: keypool --fsync always",
    ),
];

/// The p99 targets: (peer, bound in µs).
const P99: [(&str, f64); 2] = [(NEVER, 2000.0), (ALWAYS, 5000.0)];

/// Prints everything `compare` measured.
pub fn print(peers: &[Peer], servers: &Servers, a: &Args) {
    println!(
        "\n== side by side: servers on CPU {}, clients on CPU {}, {} connections, pools of {} keys, \
         medians of {} turns × {} s",
        procs::SERVER_CPU,
        procs::CLIENT_CPU,
        a.conns,
        a.keys,
        a.turns,
        a.secs
    );
    let rows: Vec<Vec<String>> = peers.iter().map(|p| p.series.row()).collect();
    report::table(&report::HEADER, &rows, 2);
    let find = |name: &str| peers.iter().map(|p| &p.series).find(|s| s.name == name);
    let mut targets: Vec<Check> = TARGETS
        .iter()
        .map(|&(what, x, y, unit, bound)| Check {
            what: what.into(),
            value: ratio_of(find(x), find(y)),
            unit,
            target: Some((true, bound)),
        })
        .collect();
    targets.extend(P99.iter().map(|&(name, bound)| {
        Check {
            what: format!("p99 {name}, {} connections", a.conns),
            value: find(name)
                .and_then(Series::p99)
                .ok_or_else(|| "not measured".to_string()),
            unit: Unit::Ms,
            target: Some((false, bound)),
        }
    }));
    // A partial run (--peers never,platform) measures none of them: say nothing.
    if targets.iter().any(|c| c.value.is_ok()) {
        println!("\n== issue 8's targets (ratios of the medians above)");
        report::checks(&targets);
    }
    // Only the figures whose peers ran: a partial run (--peers) stays short.
    let figures: Vec<Check> = FIGURES
        .iter()
        .filter(|(_, x, y)| find(x).is_some() && find(y).is_some())
        .map(|&(what, x, y)| Check {
            what: what.into(),
            value: ratio_of(find(x), find(y)),
            unit: Unit::Percent,
            target: None,
        })
        .collect();
    if !figures.is_empty() {
        println!("\n== other figures");
        report::checks(&figures);
    }
    platform(peers, servers);
    wal(peers);
    for r in &servers.redis {
        if let Ok(state) = r.pool_state() {
            println!("  {} after the runs: {state}", r.process().name);
        }
    }
    let mixes: Vec<String> = peers
        .iter()
        .filter(|p| p.series.runs.iter().any(|r| r.releases > 0))
        .map(|p| {
            let c: u64 = p.series.runs.iter().map(|r| r.checkouts).sum();
            let r: u64 = p.series.runs.iter().map(|r| r.releases).sum();
            format!("{} {:.3}", p.series.name, c as f64 / r.max(1) as f64)
        })
        .collect();
    if !mixes.is_empty() {
        println!("  checkouts per release sent by wrk: {}", mixes.join("; "));
    }
}

/// keypool's `/metrics` over the measured windows: records per fsync and the
/// server's own mean request time, then any other `keypool_wal_*` series.
fn wal(peers: &[Peer]) {
    let keypools: Vec<&Peer> = peers.iter().filter(|p| !p.wal.0.is_empty()).collect();
    if keypools.is_empty() {
        return;
    }
    println!("\n== keypool's own counters over the measured windows (GET /metrics)");
    for p in keypools {
        let w = &p.wal;
        let secs = p.measured_secs.max(1e-9);
        let records = w.get("keypool_wal_records_total");
        let fsyncs = w.get("keypool_wal_fsyncs_total");
        let bytes = w.get("keypool_wal_bytes_total");
        let n = w.get("keypool_request_duration_seconds_count");
        let mean_us = 1e6 * w.get("keypool_request_duration_seconds_sum") / n.max(1.0);
        let per_fsync = if fsyncs > 0.0 {
            format!(", {:.1} records per fsync", records / fsyncs)
        } else {
            String::new()
        };
        println!(
            "  {}: {} records, {} fsyncs ({}/s){per_fsync}, {:.0} bytes per record; \
             server's mean request time {} over {} requests",
            p.series.name,
            count(records),
            count(fsyncs),
            count(fsyncs / secs),
            bytes / records.max(1.0),
            ms(mean_us),
            count(n)
        );
        let known = ["records_total", "fsyncs_total", "bytes_total", "writable"];
        for (k, v) in &w.0 {
            let Some(short) = k.strip_prefix("keypool_wal_") else {
                continue;
            };
            if known.contains(&short) || short.ends_with("_count") {
                continue;
            }
            if let Some(base) = short.strip_suffix("_sum") {
                let c = w.get(&format!("keypool_wal_{base}_count"));
                println!(
                    "      keypool_wal_{base}: mean {:.6} over {} (sum {v:.6})",
                    v / c.max(1.0),
                    count(c)
                );
            } else {
                println!(
                    "      keypool_wal_{short}: {} ({}/s)",
                    count(*v),
                    count(v / secs)
                );
            }
        }
    }
}

/// Issue 10's target, when the `platform` peers ran: the restricted key's
/// median rate over the unrestricted key's, with the ratio turn by turn (the
/// two run back to back in each turn, so each turn's ratio is a same-machine
/// comparison of its own), and the credits the restricted key has left.
fn platform(peers: &[Peer], servers: &Servers) {
    let find = |name: &str| peers.iter().find(|p| p.series.name == name);
    let (Some(plain), Some(restricted)) = (find(PLATFORM_PLAIN), find(PLATFORM_RESTRICTED)) else {
        return;
    };
    println!("\n== issue 10's target (ratio of the medians above)");
    let check = Check {
        what: "platform: restricted key / unrestricted key".into(),
        value: ratio_of(Some(&restricted.series), Some(&plain.series)),
        unit: Unit::Percent,
        target: Some((true, 0.90)),
    };
    report::checks(&[check]);
    let by_turn: Vec<f64> = plain
        .series
        .runs
        .iter()
        .zip(&restricted.series.runs)
        .map(|(p, r)| r.ops / p.ops.max(1e-9))
        .collect();
    let shown: Vec<String> = by_turn
        .iter()
        .map(|r| format!("{:.1} %", 100.0 * r))
        .collect();
    println!(
        "  restricted / unrestricted by turn: {}; median of the turns' ratios {}",
        shown.join(" / "),
        report::median(by_turn).map_or("-".into(), |m| format!("{:.1} %", 100.0 * m))
    );
    let left = servers
        .http
        .iter()
        .find(|s| s.restricted_key.is_some())
        .map(|s| s.restricted_credits());
    if let Some(left) = left {
        match left {
            Ok(Some(n)) => println!(
                "  the restricted key's credits left: {} of {} (one spent per request it sent)",
                count(n as f64),
                count(crate::http::RESTRICTED_CREDITS as f64)
            ),
            Ok(None) => println!("  the restricted key's credits: not in /list-keys"),
            Err(e) => println!("  the restricted key's credits: could not read /list-keys: {e}"),
        }
    }
}
