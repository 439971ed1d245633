//! The six scenarios. Each starts its own servers on fresh data directories,
//! drives them with [`client::drive`], stops them, and returns a [`Table`].
//! They are plain functions: servers start and stop on this thread, and the
//! load runs on the load generator's runtime through `block_on`.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hyper::{Method, StatusCode};
use tokio::runtime::Runtime;
use uuid::Uuid;

use crate::client::{drive, Conn, Cred, Latency, Outcome, Sample, Until, Work};
use crate::harness::{self, BoxError, Child9, InProcess};
use crate::report::{count, ms, pct, Table, LATENCY_HEADER};
use crate::Args;

/// How many turns compared runs take (see [`interleaved`]).
const ROUNDS: u32 = 2;
/// Unrecorded time before every measured window.
const WARMUP: Duration = Duration::from_secs(1);
/// Keys in the pool for the checkout/release scenarios.
const POOL_KEYS: u64 = 10_000;
/// Key ids kept by the client for lookups and keepalives.
const SAMPLE_IDS: usize = 10_000;
/// Connections that loop `POST /login` in the logins scenario.
const LOGIN_CONNS: usize = 4;
/// How long the snapshot scenario drives traffic in each phase.
const SNAPSHOT_SECS: u64 = 8;
/// A limit on every counted load, so that no loop runs unbounded.
const LOAD_LIMIT: Duration = Duration::from_secs(600);
/// Flags every keypool here runs with: the open pool, and keys that outlive the run.
const BASE: [&str; 3] = ["--open-pool", "--key-ttl", "1h"];
/// Enough per-IP allowance that `/login` and `/register` are never refused.
const NO_IP_LIMIT: [&str; 2] = ["--ip-rate-limit", "1000000/1m"];
/// The benchmark account.
const USER: &str = r#"{"username": "loadbench", "password": "correct horse battery staple"}"#;

fn flags<'a>(groups: &[&[&'a str]]) -> Vec<&'a str> {
    groups.iter().flat_map(|g| g.iter().copied()).collect()
}

/// One round of a compared run: `secs / ROUNDS` after its own warm-up.
fn round(a: &Args) -> Until {
    Until::Timed {
        warmup: WARMUP,
        measure: Duration::from_secs_f64(a.secs.max(1) as f64 / f64::from(ROUNDS)),
    }
}

/// Runs each of `runs` (address, credential, work) in turn, [`ROUNDS`] times
/// over, and adds up each one's rounds: the machine is shared, and taking
/// turns spreads a burst of noise over all the compared runs alike.
fn interleaved(
    rt: &Runtime,
    runs: &[(SocketAddr, &Cred, &Work)],
    conns: usize,
    a: &Args,
) -> Result<Vec<Outcome>, BoxError> {
    let mut out: Vec<Outcome> = runs.iter().map(|_| Outcome::default()).collect();
    for _ in 0..ROUNDS {
        for (i, (addr, cred, work)) in runs.iter().enumerate() {
            out[i].merge(rt.block_on(drive(*addr, cred, work, conns, round(a), 0))?);
        }
    }
    Ok(out)
}

/// Creates `n` keys on `addr` as `cred` over `conns` connections; keeps up to `keep` ids.
fn preload(
    rt: &Runtime,
    addr: SocketAddr,
    cred: &Cred,
    n: u64,
    conns: usize,
    keep: usize,
) -> Result<Outcome, BoxError> {
    let o = rt.block_on(drive(
        addr,
        cred,
        &Work::Create,
        conns,
        Until::Count(n, LOAD_LIMIT),
        keep,
    ))?;
    if o.steps < n {
        return Err(format!(
            "created only {} of {n} keys{}",
            o.steps,
            o.error_note()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default()
        )
        .into());
    }
    Ok(o)
}

/// Registers the benchmark user (and returns a connection to reuse).
fn register(rt: &Runtime, addr: SocketAddr) -> Result<Conn, BoxError> {
    rt.block_on(async {
        let mut c = Conn::open(addr, &Cred::None).await?;
        c.expect(Method::POST, "/register", Some(USER), StatusCode::CREATED)
            .await?;
        Ok(c)
    })
}

/// "N s, taking turns" for titles.
fn measured(a: &Args) -> String {
    format!(
        "{} s each in {ROUNDS} turns, each after a {} s warm-up",
        a.secs,
        WARMUP.as_secs()
    )
}

/// 1. Checkout/release against keypool (`--fsync never` and `always`) and a bare hyper server.
pub fn pool(rt: &Runtime, a: &Args) -> Result<Table, BoxError> {
    let mut t = Table::new(
        format!(
            "pool: checkout/release (GET /keys + PUT /keys/{{id}}?lease_id=), {} connections, \
             {}, {} keys",
            a.conns,
            measured(a),
            count(POOL_KEYS as f64)
        ),
        &LATENCY_HEADER,
    );
    let bare = InProcess::bare()?;
    let mut servers = Vec::new();
    for mode in ["never", "always"] {
        let dir = harness::temp_dir("pool")?;
        let srv = InProcess::keypool(dir.path(), &flags(&[&BASE, &["--fsync", mode]]))?;
        preload(rt, srv.addr, &Cred::None, POOL_KEYS, a.conns, 0)?;
        servers.push((mode, srv, dir));
    }
    let open = Cred::None;
    let mut runs = vec![(bare.addr, &open, &Work::Cycle)];
    runs.extend(
        servers
            .iter()
            .map(|(_, s, _)| (s.addr, &open, &Work::Cycle)),
    );
    let outcomes = interleaved(rt, &runs, a.conns, a)?;
    bare.stop()?;
    let b = &outcomes[0];
    t.latency_row("bare hyper, fixed JSON", b);
    for ((mode, srv, _dir), o) in servers.into_iter().zip(&outcomes[1..]) {
        srv.stop()?;
        let l = t.latency_row(&format!("keypool --fsync {mode}"), o);
        let ratio = pct(o.req_rate(), b.req_rate());
        t.check(
            format!("keypool --fsync {mode} req/s ≥ 70 % of bare"),
            format!("{ratio:.1} %"),
            ratio >= 70.0,
        );
        t.check(
            format!("keypool --fsync {mode} p99 < 5 ms"),
            ms(l.p99_us),
            l.p99_us < 5_000,
        );
    }
    t.notes.push(queueing_note(a.conns, b));
    Ok(t)
}

/// Little's law: with every connection always waiting for an answer, the mean
/// latency is connections / throughput whatever the server does, so on 2
/// shared cores a high percentile at many connections is mostly waiting in line.
fn queueing_note(conns: usize, bare: &Outcome) -> String {
    format!(
        "with {conns} connections always in flight even the bare server's mean latency is \
         {conns} / {} req/s = {:.2} ms (Little's law): p99 here is mostly queueing on the \
         shared cores; --conns 16 shows the latency of a lighter load",
        count(bare.req_rate()),
        1000.0 * conns as f64 / bare.req_rate().max(1.0)
    )
}

/// 2. `POST /keys` with `--fsync always` against `--fsync never`.
pub fn fsync(rt: &Runtime, a: &Args) -> Result<Table, BoxError> {
    let mut t = Table::new(
        format!(
            "fsync: POST /keys, {} connections, {}",
            a.conns,
            measured(a)
        ),
        &LATENCY_HEADER,
    );
    let mut servers = Vec::new();
    for mode in ["always", "never"] {
        let dir = harness::temp_dir("fsync")?;
        let srv = InProcess::keypool(dir.path(), &flags(&[&BASE, &["--fsync", mode]]))?;
        servers.push((mode, srv, dir));
    }
    let open = Cred::None;
    let runs: Vec<_> = servers
        .iter()
        .map(|(_, s, _)| (s.addr, &open, &Work::Create))
        .collect();
    let outcomes = interleaved(rt, &runs, a.conns, a)?;
    for ((mode, srv, _dir), o) in servers.into_iter().zip(&outcomes) {
        srv.stop()?;
        t.latency_row(&format!("--fsync {mode}"), o);
    }
    let ratio = pct(outcomes[0].req_rate(), outcomes[1].req_rate());
    t.check(
        "--fsync always req/s ≥ 50 % of --fsync never",
        format!("{ratio:.1} %"),
        ratio >= 50.0,
    );
    Ok(t)
}

/// 3. Checkout/release with an API key against the open pool without one.
pub fn auth(rt: &Runtime, a: &Args) -> Result<Table, BoxError> {
    let mut t = Table::new(
        format!(
            "auth: checkout/release with X-API-Key vs the open pool without credential, one \
             server, {} connections, {}, --fsync never (so that the log does not hide the cost \
             of auth)",
            a.conns,
            measured(a)
        ),
        &LATENCY_HEADER,
    );
    let dir = harness::temp_dir("auth")?;
    let srv = InProcess::keypool(
        dir.path(),
        &flags(&[&BASE, &NO_IP_LIMIT, &["--fsync", "never"]]),
    )?;
    let mut c = register(rt, srv.addr)?;
    let key = rt.block_on(async {
        let login = c
            .expect(Method::POST, "/login", Some(USER), StatusCode::OK)
            .await?;
        let token = login["token"].as_str().ok_or("no token in /login")?;
        c.bearer(token)?;
        let made = c
            .expect(
                Method::POST,
                "/generate-key",
                Some(r#"{"name": "load"}"#),
                StatusCode::CREATED,
            )
            .await?;
        made["key"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| BoxError::from("no key in /generate-key"))
    })?;
    let keyed = Cred::ApiKey(key);
    let open = Cred::None;
    preload(rt, srv.addr, &open, POOL_KEYS, a.conns, 0)?;
    preload(rt, srv.addr, &keyed, POOL_KEYS, a.conns, 0)?;
    let outcomes = interleaved(
        rt,
        &[
            (srv.addr, &open, &Work::Cycle),
            (srv.addr, &keyed, &Work::Cycle),
        ],
        a.conns,
        a,
    )?;
    srv.stop()?;
    t.latency_row("open pool, no credential", &outcomes[0]);
    t.latency_row("X-API-Key", &outcomes[1]);
    let ratio = pct(outcomes[1].req_rate(), outcomes[0].req_rate());
    t.check(
        "X-API-Key req/s ≥ 90 % of open pool",
        format!("{ratio:.1} %"),
        ratio >= 90.0,
    );
    Ok(t)
}

/// 4. Argon2 logins while pool traffic runs, against the pool traffic alone.
pub fn logins(rt: &Runtime, a: &Args) -> Result<Table, BoxError> {
    let mut t = Table::new(
        format!(
            "logins: POST /login (argon2id m=19 MiB t=2 p=1) on {LOGIN_CONNS} connections while \
             checkout/release runs on {}, against checkout/release alone, {}, --fsync never",
            a.conns,
            measured(a)
        ),
        &["run", "req/s", "p50", "p99", "max", "errors", "logins/s"],
    );
    let dir = harness::temp_dir("logins")?;
    let srv = InProcess::keypool(
        dir.path(),
        &flags(&[&BASE, &NO_IP_LIMIT, &["--fsync", "never"]]),
    )?;
    register(rt, srv.addr)?;
    let open = Cred::None;
    preload(rt, srv.addr, &open, POOL_KEYS, a.conns, 0)?;
    let login = Work::Login(Arc::from(USER));
    let (mut alone, mut mixed, mut logins) = Default::default();
    for _ in 0..ROUNDS {
        let o = rt.block_on(drive(srv.addr, &open, &Work::Cycle, a.conns, round(a), 0))?;
        Outcome::merge(&mut alone, o);
        let (m, l) = rt.block_on(async {
            tokio::join!(
                drive(srv.addr, &open, &Work::Cycle, a.conns, round(a), 0),
                drive(srv.addr, &open, &login, LOGIN_CONNS, round(a), 0),
            )
        });
        Outcome::merge(&mut mixed, m?);
        Outcome::merge(&mut logins, l?);
    }
    srv.stop()?;
    let l0 = t.latency_row("pool alone", &alone);
    t.rows[0].push("-".into());
    let l1 = t.latency_row("pool while logging in", &mixed);
    t.rows[1].push(count(logins.rate()));
    let ll = Latency::of(&logins.samples);
    t.rows.push(vec![
        "  the logins themselves".into(),
        count(logins.req_rate()),
        ms(ll.p50_us),
        ms(ll.p99_us),
        ms(ll.max_us),
        logins.errors.to_string(),
        count(logins.rate()),
    ]);
    if let Some(n) = logins.error_note() {
        t.notes.push(format!("logins: {n}"));
    }
    t.check(
        format!(
            "pool p99 while logging in < 10 ms (alone: {})",
            ms(l0.p99_us)
        ),
        ms(l1.p99_us),
        l1.p99_us < 10_000,
    );
    Ok(t)
}

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
