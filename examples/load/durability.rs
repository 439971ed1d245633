//! The scenarios that need a million keys: request latency while snapshots
//! are written (and memory per key), and restart time after `kill -9` with a
//! snapshot plus a million log records. The second reuses the first's data
//! directory when both run.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper::{Method, StatusCode};
use tokio::runtime::Runtime;
use uuid::Uuid;

use crate::client::{drive, Conn, Cred, Latency, Outcome, Sample, Until, Work};
use crate::harness::{self, BoxError, Child9, InProcess};
use crate::report::{count, ms, Table, LATENCY_HEADER};
use crate::scenarios::{flags, preload, BASE, LOAD_LIMIT, SAMPLE_IDS, SNAPSHOT_SECS, WARMUP};
use crate::Args;

/// A data directory whose newest snapshot holds `keys` keys, and some of their ids.
pub struct Prepared {
    dir: tempfile::TempDir,
    ids: Arc<Vec<Uuid>>,
    keys: u64,
}

/// Loads `n` keys into a fresh directory (`--fsync never`) and stops cleanly.
fn prepare(rt: &Runtime, a: &Args) -> Result<(Prepared, String), BoxError> {
    let dir = harness::temp_dir("million")?;
    let srv = InProcess::keypool(
        dir.path(),
        &flags(&[&BASE, &["--fsync", "never", "--snapshot-interval", "1h"]]),
    )?;
    let o = preload(rt, srv.addr, &Cred::None, a.keys, a.conns, SAMPLE_IDS)?;
    let stop = srv.stop()?;
    let note = format!(
        "loaded {} keys at {} keys/s; final snapshot on stop {:.2} s",
        count(a.keys as f64),
        count(o.rate()),
        stop.as_secs_f64()
    );
    Ok((
        Prepared {
            dir,
            ids: Arc::new(o.ids),
            keys: a.keys,
        },
        note,
    ))
}

/// 5. Request latency while snapshots of `--keys` keys are taken, and memory per key.
///
/// `fresh` says that no other scenario ran before in this process (see the
/// memory figure).
pub fn snapshot(rt: &Runtime, a: &Args, fresh: bool) -> Result<(Table, Prepared), BoxError> {
    let secs = a.secs.max(SNAPSHOT_SECS);
    let mut t = Table::new(
        format!(
            "snapshot: GET /keys/{{id}} + checkout/release on {} connections for {secs} s, \
             {} keys, --fsync never",
            a.conns,
            count(a.keys as f64)
        ),
        &LATENCY_HEADER,
    );
    let until = Until::Timed {
        warmup: WARMUP,
        measure: Duration::from_secs(secs),
    };
    let dir = harness::temp_dir("snapshot")?;
    let common = flags(&[&BASE, &["--fsync", "never"]]);
    // The load, and the memory it takes: in the real binary when it is built
    // (a process holding nothing but the server), else in this process.
    let (load, memory, stop) = match harness::keypool_binary()? {
        Some(bin) => {
            let child = Child9::spawn(
                &bin,
                dir.path(),
                &flags(&[&common, &["--snapshot-interval", "1h"]]),
            )?;
            let before = child.rss_bytes()?;
            let load = preload(rt, child.addr, &Cred::None, a.keys, a.conns, SAMPLE_IDS)?;
            let after = child.rss_bytes()?;
            let stop = child.terminate()?;
            (
                load,
                Some((before, after, "the keypool binary's VmRSS")),
                stop,
            )
        }
        None => {
            let before = harness::rss_bytes()?;
            let srv = InProcess::keypool(
                dir.path(),
                &flags(&[&common, &["--snapshot-interval", "1h"]]),
            )?;
            let load = preload(rt, srv.addr, &Cred::None, a.keys, a.conns, SAMPLE_IDS)?;
            let after = harness::rss_bytes()?;
            let stop = srv.stop()?;
            // Memory freed by earlier scenarios is reused without growing
            // the RSS, so only a first scenario measures it.
            let memory = fresh.then_some((
                before,
                after,
                "this process's VmRSS (the client keeps 10,000 ids)",
            ));
            (load, memory, stop)
        }
    };
    let ids = Arc::new(load.ids.clone());
    let work = Work::LookupAndCycle(ids.clone());
    // Both measured phases start the same way: from the snapshot the load
    // ended with.
    let srv = InProcess::keypool(
        dir.path(),
        &flags(&[&common, &["--snapshot-interval", "1h"]]),
    )?;
    harness::take_snapshots();
    let quiet = rt.block_on(drive(srv.addr, &Cred::None, &work, a.conns, until, 0))?;
    srv.stop()?;
    let srv = InProcess::keypool(
        dir.path(),
        &flags(&[&common, &["--snapshot-interval", "2s"]]),
    )?;
    let restart = srv.ready_after;
    harness::take_snapshots();
    let busy = rt.block_on(drive(srv.addr, &Cred::None, &work, a.conns, until, 0))?;
    let snaps = harness::take_snapshots();
    srv.stop()?;

    t.latency_row("no snapshot (interval 1h)", &quiet);
    let all = t.latency_row("snapshots every 2 s: all requests", &busy);
    let t0 = busy.t0.ok_or("no measured window")?;
    // Snapshot windows in the measured window's microseconds.
    let windows: Vec<(u64, u64)> = snaps
        .iter()
        .map(|(s, e)| {
            (
                s.saturating_duration_since(t0).as_micros() as u64,
                e.saturating_duration_since(t0).as_micros() as u64,
            )
        })
        .filter(|(_, e)| *e > 0)
        .collect();
    let overlapping: Vec<&Sample> = busy
        .samples
        .iter()
        .filter(|s| {
            windows
                .iter()
                .any(|(ws, we)| s.start_us < *we && s.start_us + s.latency_us > *ws)
        })
        .collect();
    let during = Latency::of(overlapping.iter().copied());
    t.rows.push(vec![
        format!(
            "  the {} requests overlapping a snapshot",
            count(during.n as f64)
        ),
        "-".into(),
        ms(during.p50_us),
        ms(during.p99_us),
        ms(during.max_us),
        "-".into(),
    ]);
    let took: Vec<String> = windows
        .iter()
        .map(|(s, e)| format!("{:.2} s", (e - s) as f64 / 1e6))
        .collect();
    t.check(
        format!(
            "p99 during a snapshot < 10 ms ({} snapshots)",
            windows.len()
        ),
        ms(during.p99_us),
        !windows.is_empty() && during.p99_us < 10_000,
    );
    t.check(
        "p99 over the run with snapshots < 10 ms",
        ms(all.p99_us),
        all.p99_us < 10_000,
    );
    let what = format!(
        "resident memory per key at {} keys ≤ 150 B",
        count(a.keys as f64)
    );
    match memory {
        Some((before, after, whose)) => {
            let per_key = after.saturating_sub(before) as f64 / a.keys.max(1) as f64;
            t.check(what, format!("{per_key:.0} B"), per_key <= 150.0);
            t.notes.push(format!(
                "{whose}: {} MiB before the load, {} MiB with {} keys",
                before >> 20,
                after >> 20,
                count(a.keys as f64)
            ));
        }
        None => t.not_measured(
            what,
            "build the binary, or run `snapshot` alone, to measure it",
        ),
    }
    t.notes.push(format!(
        "snapshots took {} (from keypool's own log); loaded {} keys at {} keys/s; \
         stop with final snapshot {:.2} s; restart from that snapshot {:.2} s",
        if took.is_empty() {
            "-".into()
        } else {
            took.join(", ")
        },
        count(a.keys as f64),
        count(load.rate()),
        stop.as_secs_f64(),
        restart.as_secs_f64()
    ));
    Ok((
        t,
        Prepared {
            dir,
            ids,
            keys: a.keys,
        },
    ))
}

/// 6. Restart time after `kill -9` with `--keys` keys in a snapshot and as many log records after it.
pub fn recovery(rt: &Runtime, a: &Args, prepared: Option<Prepared>) -> Result<Table, BoxError> {
    let mut t = Table::new(
        format!(
            "recovery: {} keys in a snapshot + {} keepalive records in the log, kill -9, restart",
            count(a.keys as f64),
            count(a.keys as f64)
        ),
        &["phase", "time"],
    );
    let p = match prepared {
        Some(p) => p,
        None => {
            let (p, note) = prepare(rt, a)?;
            t.notes.push(note);
            p
        }
    };
    let run_flags = flags(&[&BASE, &["--fsync", "never", "--snapshot-interval", "1h"]]);
    let binary = harness::profile_dir()?.join("keypool");
    let (first, records, restart, total) = if binary.is_file() {
        t.notes.push(format!(
            "real binary {}, killed with SIGKILL",
            binary.display()
        ));
        let child = Child9::spawn(&binary, p.dir.path(), &run_flags)?;
        let first = child.ready_after;
        let records = keepalives(rt, child.addr, &p, a.conns)?;
        child.kill9()?;
        let child = Child9::spawn(&binary, p.dir.path(), &run_flags)?;
        let restart = child.ready_after;
        let total = stats_total(rt, child.addr)?;
        child.kill9()?;
        (first, records, restart, total)
    } else {
        t.notes.push(format!(
            "{} not found (run `cargo build --release` first): in-process instead, the data \
             directory copied while the server ran, after the keepalives were acknowledged",
            binary.display()
        ));
        let srv = InProcess::keypool(p.dir.path(), &run_flags)?;
        let first = srv.ready_after;
        let records = keepalives(rt, srv.addr, &p, a.conns)?;
        let copy = harness::temp_dir("crashed")?;
        copy_files(p.dir.path(), copy.path())?;
        srv.stop()?;
        let srv = InProcess::keypool(copy.path(), &run_flags)?;
        let total = stats_total(rt, srv.addr)?;
        let restart = srv.ready_after;
        srv.stop()?;
        (first, records, restart, total)
    };
    t.rows.push(vec![
        "start from the snapshot alone".into(),
        format!("{:.2} s", first.as_secs_f64()),
    ]);
    t.rows.push(vec![
        format!("{} keepalives (--fsync never)", count(records.steps as f64)),
        format!(
            "{:.2} s ({}/s)",
            records.window.as_secs_f64(),
            count(records.rate())
        ),
    ]);
    t.rows.push(vec![
        "restart after kill -9 until listening".into(),
        format!("{:.2} s", restart.as_secs_f64()),
    ]);
    t.check(
        "restart with snapshot + log < 2 s",
        format!("{:.2} s", restart.as_secs_f64()),
        restart < Duration::from_secs(2),
    );
    t.check(
        "every key is there after the restart",
        format!("{} of {}", count(total as f64), count(p.keys as f64)),
        total == p.keys,
    );
    if let Some(n) = records.error_note() {
        t.notes.push(format!("keepalives: {n}"));
    }
    Ok(t)
}

/// Sends `p.keys` keepalives over `conns` connections.
fn keepalives(
    rt: &Runtime,
    addr: SocketAddr,
    p: &Prepared,
    conns: usize,
) -> Result<Outcome, BoxError> {
    rt.block_on(drive(
        addr,
        &Cred::None,
        &Work::Keepalive(p.ids.clone()),
        conns,
        Until::Count(p.keys, LOAD_LIMIT),
        0,
    ))
}

/// `GET /stats` → `total`.
fn stats_total(rt: &Runtime, addr: SocketAddr) -> Result<u64, BoxError> {
    rt.block_on(async {
        let mut c = Conn::open(addr, &Cred::None).await?;
        let s = c
            .expect(Method::GET, "/stats", None, StatusCode::OK)
            .await?;
        s["total"]
            .as_u64()
            .ok_or_else(|| "no total in /stats".into())
    })
}

/// Copies the regular files of `from` into `to` (a data directory has no subdirectories we need).
fn copy_files(from: &Path, to: &Path) -> Result<(), BoxError> {
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::fs::copy(entry.path(), to.join(entry.file_name()))?;
        }
    }
    Ok(())
}
