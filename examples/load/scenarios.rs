//! The first four scenarios (the last two, which need a million keys, are in
//! `durability.rs`) and what they share. Each starts its own servers on fresh data directories,
//! drives them with [`client::drive`], stops them, and returns a [`Table`].
//! They are plain functions: servers start and stop on this thread, and the
//! load runs on the load generator's runtime through `block_on`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::{Method, StatusCode};
use tokio::runtime::Runtime;

use crate::client::{drive, Conn, Cred, Latency, Outcome, Until, Work};
use crate::harness::{self, BoxError, InProcess};
use crate::report::{count, ms, pct, Table, LATENCY_HEADER};
use crate::Args;

/// How many turns compared runs take (see [`interleaved`]).
const ROUNDS: u32 = 2;
/// Unrecorded time before every measured window.
pub(crate) const WARMUP: Duration = Duration::from_secs(1);
/// Keys in the pool for the checkout/release scenarios.
const POOL_KEYS: u64 = 10_000;
/// Key ids kept by the client for lookups and keepalives.
pub(crate) const SAMPLE_IDS: usize = 10_000;
/// Connections that loop `POST /login` in the logins scenario.
const LOGIN_CONNS: usize = 4;
/// How long the snapshot scenario drives traffic in each phase.
pub(crate) const SNAPSHOT_SECS: u64 = 8;
/// A limit on every counted load, so that no loop runs unbounded.
pub(crate) const LOAD_LIMIT: Duration = Duration::from_secs(600);
/// Flags every keypool here runs with: the open pool, and keys that outlive the run.
pub(crate) const BASE: [&str; 3] = ["--open-pool", "--key-ttl", "1h"];
/// Enough per-IP allowance that `/login` and `/register` are never refused.
const NO_IP_LIMIT: [&str; 2] = ["--ip-rate-limit", "1000000/1m"];
/// The benchmark account.
const USER: &str = r#"{"username": "loadbench", "password": "correct horse battery staple"}"#;

pub(crate) fn flags<'a>(groups: &[&[&'a str]]) -> Vec<&'a str> {
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
pub(crate) fn preload(
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
