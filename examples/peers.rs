//! The side-by-side benchmark of issue 8: keypool against the servers a user
//! would otherwise reach for, measured in one run on this machine.
//!
//! ```text
//! bench-exclusive cargo run --release --example peers -- [compare|profile|disk]
//!     [--secs 5] [--warmup 1] [--turns 3] [--conns 32] [--keys 1000]
//!     [--peers bare,never,always,everysec,open,redis,redis-aof,checks,platform]
//!     [--fsync never|always|everysec] [--before PATH] [--no-build]
//!     [--restricted] [--binary PATH]      (profile)
//! ```
//!
//! `compare` (the default): every server under test runs on CPU 0
//! (`taskset -c 0`), every load generator on CPU 1, each pool pre-filled with
//! `--keys` keys, `--conns` keep-alive connections. HTTP peers are driven by
//! `wrk` with `peers/pool.lua` (checkout, then release of what was checked
//! out, about 1:1): the bare hyper server (`examples/bare.rs`), and the real
//! `keypool` binary with `--fsync never`, `always` and `everysec` (an API key
//! as `X-API-Key`), and `never` on the open pool. Redis peers are Debian's
//! `redis-server` running `peers/pool_redis.lua`, driven by `redis-benchmark`
//! at the same connection count, without persistence and with `appendfsync
//! always`. `checks` adds the client's own limits: the bare server at one
//! connection, wrk without Lua, Redis `PING`. `platform` (not in the default
//! set) is one more `--fsync never` server whose account has two keys, driven
//! one after the other in every turn: the plain key, and one with only
//! `pool:write`, `allowed_ips` 127.0.0.0/8 and a billion credits refilled
//! daily (issue 10's target: the restricted key keeps ≥ 90 % of the plain
//! one's rate). Each turn runs every peer once
//! (a warm-up, then `--secs` measured); the table shows medians over the
//! turns, then the issue's ratios and targets, then keypool's own log counters
//! (`/metrics`). A peer whose program is not installed is skipped, saying so.
//!
//! `profile`: keypool `--fsync MODE` alone under the same wrk load, first
//! with nothing attached (context switches per request by thread, from
//! `/proc`), then under `perf record -a -C 0 -g` (the server core); prints
//! `perf report --no-children` by thread, binary and symbol, and call chains,
//! and keeps `perf.data` under `target/`. `disk`: fdatasync latency of this
//! disk for an appending write against an overwrite of a pre-zeroed (and of
//! a fallocated) file.
//!
//! Run from cargo, it first builds the `keypool` binary and the bare server
//! of the same profile (`--no-build` skips that). Nothing is asserted.
//! Servers, clients and temporary directories (under `target/<profile>/`)
//! are all gone when it returns, errors included.

#[path = "peers/compare.rs"]
mod compare;
#[path = "peers/disk.rs"]
mod disk;
#[path = "peers/http.rs"]
mod http;
#[path = "peers/procs.rs"]
mod procs;
#[path = "peers/profile.rs"]
mod profile;
#[path = "peers/redis.rs"]
mod redis;
#[path = "peers/report.rs"]
mod report;
#[path = "peers/summary.rs"]
mod summary;
#[path = "peers/wrk.rs"]
mod wrk;

use std::process::ExitCode;

use clap::{Parser, ValueEnum};

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum What {
    /// Every peer, in turns; medians, ratios and targets.
    Compare,
    /// perf stat and perf record of keypool under the wrk load.
    Profile,
    /// fdatasync latency of this disk: append against overwrite.
    Disk,
}

/// A server under test in `compare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum PeerKind {
    /// The bare hyper server.
    Bare,
    /// keypool --fsync never, with an API key.
    Never,
    /// keypool --fsync always (the default), with an API key.
    Always,
    /// keypool --fsync everysec, with an API key.
    Everysec,
    /// keypool --fsync never on the open pool (no credential).
    Open,
    /// Redis with the pool script, no persistence.
    Redis,
    /// Redis with the pool script, appendonly yes, appendfsync always.
    RedisAof,
    /// The clients' own limits: bare at 1 connection, wrk without Lua, Redis PING.
    Checks,
    /// keypool --fsync never, one server, driven in turn with an unrestricted
    /// key and with a scoped, IP-restricted, credit-metered one (issue 10).
    Platform,
}

/// The command line.
#[derive(Debug, Parser)]
#[command(
    name = "peers",
    about = "keypool side by side with a bare hyper server and Redis"
)]
pub struct Args {
    /// What to run.
    #[arg(value_enum, default_value = "compare")]
    what: What,
    /// Seconds measured per run (whole seconds: wrk takes no fractions).
    #[arg(long, default_value_t = 5)]
    pub secs: u64,
    /// Unrecorded seconds before every measured run.
    #[arg(long, default_value_t = 1)]
    pub warmup: u64,
    /// Turns: every peer runs once per turn; figures are medians over the turns.
    #[arg(long, default_value_t = 3)]
    pub turns: u32,
    /// Keep-alive connections.
    #[arg(long, default_value_t = 32)]
    pub conns: usize,
    /// Keys in each pool before the load.
    #[arg(long, default_value_t = 1000)]
    pub keys: u64,
    /// Which peers `compare` runs (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [
        PeerKind::Bare, PeerKind::Never, PeerKind::Always, PeerKind::Everysec,
        PeerKind::Open, PeerKind::Redis, PeerKind::RedisAof, PeerKind::Checks,
    ])]
    pub peers: Vec<PeerKind>,
    /// keypool's `--fsync` for `profile`.
    #[arg(long, default_value = "never")]
    pub fsync: String,
    /// Record `--call-graph dwarf` instead of frame pointers (`profile`).
    #[arg(long)]
    pub dwarf: bool,
    /// Writes per case (`disk`).
    #[arg(long, default_value_t = 2000)]
    pub count: usize,
    /// Another keypool binary (say, built from the commit before a change),
    /// measured as two more peers (`--fsync never` and `always`) in the same turns.
    #[arg(long, value_name = "PATH")]
    pub before: Option<std::path::PathBuf>,
    /// `profile`: drive the server with a scoped, IP-restricted, metered key
    /// (the `platform` peer's) instead of a plain one.
    #[arg(long)]
    pub restricted: bool,
    /// `profile`: this keypool binary instead of the one built here.
    #[arg(long, value_name = "PATH")]
    pub binary: Option<std::path::PathBuf>,
    /// Do not build `keypool` and the bare server first.
    #[arg(long)]
    pub no_build: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !(1..=100).contains(&args.turns)
        || !(1..=120).contains(&args.secs)
        || args.warmup > 30
        || !(1..=1024).contains(&args.conns)
        || !(1..=100_000).contains(&args.keys)
        || !(1..=1_000_000).contains(&args.count)
    {
        eprintln!(
            "peers: --turns 1-100, --secs 1-120, --warmup 0-30, --conns 1-1024, \
             --keys 1-100000, --count 1-1000000"
        );
        return ExitCode::FAILURE;
    }
    println!("{}", machine_note());
    let result = match args.what {
        What::Compare => compare::run(&args),
        What::Profile => profile::run(&args),
        What::Disk => disk::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("peers: {e}");
            ExitCode::FAILURE
        }
    }
}

/// One line about the machine: the figures mean little without it.
fn machine_note() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "machine: {cores} cores ({cpu}), Linux {}; servers on CPU {}, clients on CPU {}",
        kernel.trim(),
        procs::SERVER_CPU,
        procs::CLIENT_CPU
    )
}
