//! `compare`: starts every peer asked for, runs them in turns (each a warm-up
//! and a measured run, the server's CPU and keypool's `/metrics` sampled
//! around the measured one), and prints the medians, the ratios and
//! targets, and keypool's own log counters.

use std::time::Instant;

use crate::http::{Counters, HttpServer};
use crate::procs::{self, BoxError};
use crate::redis::Redis;
use crate::report::{count, ms, Run, Series};
use crate::{summary, wrk, Args, PeerKind};

/// How a peer is driven.
pub enum Drive {
    /// wrk against `http[i]`; with `pool.lua` or plain `GET /keys`; at
    /// `conns`; with the server's restricted key instead of its plain one.
    Wrk {
        i: usize,
        lua: bool,
        conns: usize,
        restricted: bool,
    },
    /// redis-benchmark against `redis[i]`: the pool script, or `PING`.
    Bench { i: usize, ping: bool, estimate: f64 },
}

/// A peer: its figures, how to drive it, what keypool counted.
pub struct Peer {
    /// Its runs.
    pub series: Series,
    drive: Drive,
    /// keypool's `/metrics` counters, summed over the measured windows.
    pub wal: Counters,
    /// The measured windows' total length.
    pub measured_secs: f64,
}

/// The `platform` peers: one `--fsync never` server, two keys of one account.
pub const PLATFORM_PLAIN: &str = "platform: unrestricted key";
/// See [`PLATFORM_PLAIN`].
pub const PLATFORM_RESTRICTED: &str = "platform: scoped, IP-restricted, metered key";

/// The servers, started once and kept for every turn.
#[derive(Default)]
pub struct Servers {
    /// The HTTP peers' servers.
    pub http: Vec<HttpServer>,
    /// The Redis peers' servers.
    pub redis: Vec<Redis>,
}

/// `compare` (see the example's doc).
pub fn run(a: &Args) -> Result<(), BoxError> {
    if !procs::installed("taskset") {
        return Err("taskset (util-linux) is needed to pin servers and clients".into());
    }
    let (keypool_bin, bare_bin) = procs::build(a.no_build)?;
    procs::pin_self_to_client_cpu();
    let mut servers = Servers::default();
    let mut peers = start(a, &keypool_bin, &bare_bin, &mut servers)?;
    if peers.is_empty() {
        return Err("no peer to measure".into());
    }
    let dir = procs::temp_dir("lua")?;
    let script = dir.path().join("pool.lua");
    std::fs::write(&script, wrk::SCRIPT)?;
    println!(
        "\n{} turns × {} s measured (+{} s warm-up) of {} peers; {} connections; pools of {} keys",
        a.turns,
        a.secs,
        a.warmup,
        peers.len(),
        a.conns,
        a.keys
    );
    let started = Instant::now();
    let at = |name: &str, peers: &[Peer]| peers.iter().position(|p| p.series.name == name);
    let platform_pair = at(PLATFORM_PLAIN, &peers).zip(at(PLATFORM_RESTRICTED, &peers));
    for turn in 1..=a.turns {
        // The platform's two keys swap places every other turn, so that
        // neither is always the one measured second.
        let mut order: Vec<usize> = (0..peers.len()).collect();
        if let (Some((x, y)), true) = (platform_pair, turn % 2 == 0) {
            order.swap(x, y);
        }
        for &k in &order {
            let p = &mut peers[k];
            match measure(p, &servers, &script, a) {
                Ok(run) => {
                    println!(
                        "turn {turn}/{}  {:<44} {:>9} ops/s  p50 {:>9}  p99 {:>9}  errors {}  \
                         server CPU {:.0} %  client CPU {:.0} %  server cs/op {:.2}",
                        a.turns,
                        p.series.name,
                        count(run.ops),
                        run.p50_us.map_or("-".into(), ms),
                        run.p99_us.map_or("-".into(), ms),
                        run.errors,
                        100.0 * run.server_cpu,
                        100.0 * run.client_cpu,
                        run.server_switches,
                    );
                    if let Some(n) = &run.note {
                        println!("      note: {n}");
                    }
                    p.series.runs.push(run);
                }
                Err(e) => println!(
                    "turn {turn}/{}  {}: could not run: {e}",
                    a.turns, p.series.name
                ),
            }
        }
    }
    println!("\n({:.0} s of load)", started.elapsed().as_secs_f64());
    summary::print(&peers, &servers, a);
    Ok(())
}

/// Starts the servers of the peers asked for; says which are skipped and why.
fn start(
    a: &Args,
    keypool_bin: &std::path::Path,
    bare_bin: &std::path::Path,
    s: &mut Servers,
) -> Result<Vec<Peer>, BoxError> {
    let want = |k: PeerKind| a.peers.contains(&k);
    let mut peers = Vec::new();
    let peer = |name: &str, client: String, drive: Drive| Peer {
        series: Series {
            name: name.into(),
            client,
            runs: Vec::new(),
        },
        drive,
        wal: Counters::default(),
        measured_secs: 0.0,
    };
    let lua = format!("wrk+lua, {}", a.conns);
    if !procs::installed("wrk") {
        println!(
            "skipped: the HTTP peers (bare, keypool): wrk is not installed (apt-get install wrk)"
        );
    } else {
        if want(PeerKind::Bare) || want(PeerKind::Checks) {
            s.http.push(HttpServer::bare(bare_bin)?);
            let i = s.http.len() - 1;
            let conns = a.conns;
            if want(PeerKind::Bare) {
                peers.push(peer(
                    "bare hyper",
                    lua.clone(),
                    Drive::Wrk {
                        i,
                        lua: true,
                        conns,
                        restricted: false,
                    },
                ));
            }
            if want(PeerKind::Checks) {
                let one = "wrk+lua, 1".to_string();
                peers.push(peer(
                    "check: bare hyper, 1 connection",
                    one,
                    Drive::Wrk {
                        i,
                        lua: true,
                        conns: 1,
                        restricted: false,
                    },
                ));
                let plain = format!("wrk, no lua, {}", a.conns);
                peers.push(peer(
                    "check: bare hyper, GET only",
                    plain,
                    Drive::Wrk {
                        i,
                        lua: false,
                        conns,
                        restricted: false,
                    },
                ));
            }
        }
        for (kind, mode, open, name) in [
            (PeerKind::Never, "never", false, "keypool --fsync never"),
            (PeerKind::Always, "always", false, "keypool --fsync always"),
            (
                PeerKind::Everysec,
                "everysec",
                false,
                "keypool --fsync everysec",
            ),
            (
                PeerKind::Open,
                "never",
                true,
                "keypool --fsync never, open pool",
            ),
        ] {
            if want(kind) {
                println!("starting {name} and filling its pool");
                s.http
                    .push(HttpServer::keypool(keypool_bin, mode, open, a.keys)?);
                let i = s.http.len() - 1;
                let conns = a.conns;
                peers.push(peer(
                    name,
                    lua.clone(),
                    Drive::Wrk {
                        i,
                        lua: true,
                        conns,
                        restricted: false,
                    },
                ));
            }
        }
        if want(PeerKind::Platform) {
            println!(
                "starting keypool --fsync never with an unrestricted and a restricted key, \
                 and filling its pool"
            );
            let mut srv = HttpServer::keypool(keypool_bin, "never", false, a.keys)?;
            srv.add_restricted_key()?;
            s.http.push(srv);
            let i = s.http.len() - 1;
            let conns = a.conns;
            for (name, restricted) in [(PLATFORM_PLAIN, false), (PLATFORM_RESTRICTED, true)] {
                peers.push(peer(
                    name,
                    lua.clone(),
                    Drive::Wrk {
                        i,
                        lua: true,
                        conns,
                        restricted,
                    },
                ));
            }
        }
        if let Some(bin) = &a.before {
            for mode in ["never", "always"] {
                let name = format!("before: keypool --fsync {mode}");
                println!("starting {name} ({}) and filling its pool", bin.display());
                s.http.push(HttpServer::keypool(bin, mode, false, a.keys)?);
                let i = s.http.len() - 1;
                let conns = a.conns;
                peers.push(peer(
                    &name,
                    lua.clone(),
                    Drive::Wrk {
                        i,
                        lua: true,
                        conns,
                        restricted: false,
                    },
                ));
            }
        }
    }
    let redis_wanted = want(PeerKind::Redis) || want(PeerKind::RedisAof) || want(PeerKind::Checks);
    let missing: Vec<&str> = ["redis-server", "redis-benchmark", "redis-cli"]
        .into_iter()
        .filter(|p| !procs::installed(p))
        .collect();
    if redis_wanted && !missing.is_empty() {
        println!(
            "skipped: the Redis peers: {} not installed (apt-get install redis-server redis-tools)",
            missing.join(", ")
        );
        return Ok(peers);
    }
    let client = format!("redis-benchmark, {}", a.conns);
    let off: [&str; 4] = ["--save", "", "--appendonly", "no"];
    let aof: [&str; 6] = [
        "--save",
        "",
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
    ];
    for (kind, label, flags, name) in [
        (
            PeerKind::Redis,
            "redis",
            &off[..],
            "Redis + Lua, no persistence",
        ),
        (
            PeerKind::RedisAof,
            "redis-aof",
            &aof[..],
            "Redis + Lua, appendfsync always",
        ),
    ] {
        if want(kind) || (kind == PeerKind::Redis && want(PeerKind::Checks)) {
            println!("starting {name} and filling its pool");
            s.redis.push(Redis::start(label, flags, a.keys)?);
            let i = s.redis.len() - 1;
            if want(kind) {
                peers.push(peer(
                    name,
                    client.clone(),
                    Drive::Bench {
                        i,
                        ping: false,
                        estimate: 50_000.0,
                    },
                ));
            }
            if kind == PeerKind::Redis && want(PeerKind::Checks) {
                let drive = Drive::Bench {
                    i,
                    ping: true,
                    estimate: 50_000.0,
                };
                peers.push(peer(
                    "check: Redis PING, no persistence",
                    client.clone(),
                    drive,
                ));
            }
        }
    }
    Ok(peers)
}

/// One turn of one peer: a warm-up, then the measured run.
fn measure(p: &mut Peer, s: &Servers, script: &std::path::Path, a: &Args) -> Result<Run, BoxError> {
    match &mut p.drive {
        Drive::Wrk {
            i,
            lua,
            conns,
            restricted,
        } => {
            let srv = &s.http[*i];
            let key = if *restricted {
                &srv.restricted_key
            } else {
                &srv.api_key
            };
            let mut load = wrk::Load {
                addr: srv.addr,
                api_key: key.as_deref(),
                conns: *conns,
                secs: a.warmup,
                script: lua.then_some(script),
            };
            if a.warmup > 0 {
                wrk::run(&load)?;
            }
            load.secs = a.secs;
            let before = srv.metrics()?;
            let pid = srv.process().pid();
            let (cpu0, cs0) = (srv.process().cpu_secs()?, procs::total_switches(pid));
            let t0 = Instant::now();
            let mut run = wrk::run(&load)?;
            let wall = t0.elapsed().as_secs_f64();
            run.server_cpu = (srv.process().cpu_secs()? - cpu0) / wall;
            let ops = run.ops * a.secs as f64;
            run.server_switches = (procs::total_switches(pid) - cs0) as f64 / ops.max(1.0);
            srv.metrics()?.add_delta(&before, &mut p.wal);
            p.measured_secs += a.secs as f64;
            Ok(run)
        }
        Drive::Bench { i, ping, estimate } => {
            let redis = &s.redis[*i];
            if a.warmup > 0 {
                let warm =
                    redis.bench(a.conns, (*estimate * a.warmup as f64) as u64 + 1000, *ping)?;
                *estimate = warm.ops.max(1000.0);
            }
            let n = (*estimate * a.secs as f64) as u64;
            let pid = redis.process().pid();
            let (cpu0, cs0) = (redis.process().cpu_secs()?, procs::total_switches(pid));
            let t0 = Instant::now();
            let mut run = redis.bench(a.conns, n, *ping)?;
            let wall = t0.elapsed().as_secs_f64();
            // The window includes two INFO calls and redis-benchmark's start: a
            // few ms in seconds.
            run.server_cpu = (redis.process().cpu_secs()? - cpu0) / wall;
            run.server_switches = (procs::total_switches(pid) - cs0) as f64 / n.max(1) as f64;
            *estimate = run.ops.max(1000.0);
            p.measured_secs += wall;
            Ok(run)
        }
    }
}
