//! The HTTP load benchmark: the measured targets of issues 2, 3 and 4.
//!
//! ```text
//! cargo build --release            # the recovery scenario kill -9s the real binary
//! cargo run --release --example load -- [all|pool|fsync|auth|logins|snapshot|recovery]
//!                                        [--secs N] [--conns N] [--keys N]
//! ```
//!
//! Every server runs in this process on 127.0.0.1:0, each on its own thread
//! with a 2-worker tokio runtime, except where the real binary
//! (`target/release/keypool`) is needed and built: the recovery scenario kills
//! it with SIGKILL, and the snapshot scenario loads its keys into it to read
//! the memory of a process that holds nothing but the server. The load
//! generator is a 2-worker runtime of keep-alive HTTP/1.1 connections (hyper's
//! low-level client), each looping requests back to back. Every scenario prints a table
//! and its targets with PASS/MISS; nothing is asserted. Data directories are
//! temporary directories under `target/<profile>/`, removed afterwards.

#[path = "load/client.rs"]
mod client;
#[path = "load/durability.rs"]
mod durability;
#[path = "load/harness.rs"]
mod harness;
#[path = "load/report.rs"]
mod report;
#[path = "load/scenarios.rs"]
mod scenarios;

use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, ValueEnum};
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use harness::BoxError;
use report::{Check, Table};

/// Which measurement to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// All of them, in order.
    All,
    /// Checkout/release against keypool (--fsync never, always) and a bare hyper server.
    Pool,
    /// POST /keys with --fsync always against --fsync never.
    Fsync,
    /// Checkout/release with an API key against the open pool.
    Auth,
    /// Argon2 logins per second while pool traffic runs.
    Logins,
    /// Latency while snapshots are written at --keys keys; memory per key.
    Snapshot,
    /// Restart time with --keys keys in a snapshot and --keys records in the log, after kill -9.
    Recovery,
}

/// The load benchmark's command line.
#[derive(Debug, Parser)]
#[command(name = "load", about = "keypool's HTTP load benchmark")]
pub struct Args {
    /// The scenario.
    #[arg(value_enum, default_value = "all")]
    scenario: Scenario,
    /// Seconds measured per run (after a 1 s warm-up; the snapshot scenario runs at least 8).
    #[arg(long, default_value_t = 5)]
    pub secs: u64,
    /// Keep-alive connections driving each run.
    #[arg(long, default_value_t = 64)]
    pub conns: usize,
    /// Keys for the snapshot and recovery scenarios.
    #[arg(long, default_value_t = 1_000_000)]
    pub keys: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // keypool's warnings go to stderr; its `snapshot written` events go to the
    // spy that tells the snapshot scenario when snapshots ran.
    tracing_subscriber::registry()
        .with(
            harness::SnapshotSpy
                .with_filter(Targets::new().with_target("keypool", LevelFilter::INFO)),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(LevelFilter::WARN),
        )
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("load: cannot start the load generator's runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", machine_note());
    let started = Instant::now();
    let mut checks: Vec<(String, Check)> = Vec::new();
    let mut failed = false;
    let mut record = |name: &str, result: Result<Table, BoxError>| match result {
        Ok(t) => {
            t.print();
            checks.extend(t.checks.iter().map(|c| (name.to_string(), c.clone())));
        }
        Err(e) => {
            println!("\n== {name}: could not run: {e}");
            failed = true;
        }
    };
    let all = args.scenario == Scenario::All;
    let s = args.scenario;
    if all || s == Scenario::Pool {
        record("pool", scenarios::pool(&rt, &args));
    }
    if all || s == Scenario::Fsync {
        record("fsync", scenarios::fsync(&rt, &args));
    }
    if all || s == Scenario::Auth {
        record("auth", scenarios::auth(&rt, &args));
    }
    if all || s == Scenario::Logins {
        record("logins", scenarios::logins(&rt, &args));
    }
    let mut prepared = None;
    if all || s == Scenario::Snapshot {
        let result = durability::snapshot(&rt, &args, !all).map(|(t, p)| {
            prepared = Some(p);
            t
        });
        record("snapshot", result);
    }
    if all || s == Scenario::Recovery {
        record(
            "recovery",
            durability::recovery(&rt, &args, prepared.take()),
        );
    }
    if all {
        println!("\n== summary ({:.0} s)", started.elapsed().as_secs_f64());
        let list: Vec<Check> = checks
            .iter()
            .map(|(name, c)| Check {
                what: format!("{name}: {}", c.what),
                ..c.clone()
            })
            .collect();
        report::print_checks(&list);
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// One line about the machine, printed first: the figures mean little without it.
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
    format!(
        "machine: {cores} cores ({cpu}), shared by the servers under test and the load \
         generator (each server a 2-worker tokio runtime in this process, the load generator \
         another); latencies include the client's own time"
    )
}
