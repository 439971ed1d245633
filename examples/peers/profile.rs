//! `profile`: keypool `--fsync MODE` (pinned to the server core) under the
//! same wrk load as `compare`, measured twice. First without any tool
//! attached: throughput, CPU and context switches per request, by thread,
//! from `/proc` (free to read; `perf stat -p` and `perf record -p` hook every
//! context switch of the process and halve its rate here). Then under
//! `perf record -a -C 0` (the whole server core, which costs it about a tenth),
//! whose `perf report --no-children --pid` is printed by thread, by binary,
//! by symbol, and as call chains of the heaviest symbols. The `perf.data` is
//! kept under `target/<profile>/` for `perf report -i`.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::http::HttpServer;
use crate::procs::{self, BoxError};
use crate::report::{count, ms, Run};
use crate::{wrk, Args};

/// Lines of the by-symbol report printed.
const TOP_SYMBOLS: usize = 40;
/// Lines of call chains printed.
const CHAIN_LINES: usize = 120;

/// `profile` (see the example's doc).
pub fn run(a: &Args) -> Result<(), BoxError> {
    for tool in ["taskset", "wrk", "perf"] {
        if !procs::installed(tool) {
            return Err(format!("{tool} is not installed; profile needs it").into());
        }
    }
    if !["never", "always", "everysec"].contains(&a.fsync.as_str()) {
        return Err("--fsync is never, always or everysec".into());
    }
    let (built, _) = procs::build(a.no_build || a.binary.is_some())?;
    let keypool_bin = a.binary.clone().unwrap_or(built);
    procs::pin_self_to_client_cpu();
    println!(
        "starting {} --fsync {} and filling its pool",
        keypool_bin.display(),
        a.fsync
    );
    let mut srv = HttpServer::keypool(&keypool_bin, &a.fsync, false, a.keys)?;
    if a.restricted {
        srv.add_restricted_key()?;
        println!("  driven with the restricted key (pool:write, 127.0.0.0/8, credits)");
    }
    let pid = srv.process().pid();
    let dir = procs::temp_dir("profile")?;
    let script = dir.path().join("pool.lua");
    std::fs::write(&script, wrk::SCRIPT)?;
    let load = |secs: u64| wrk::Load {
        addr: srv.addr,
        api_key: if a.restricted {
            srv.restricted_key.as_deref()
        } else {
            srv.api_key.as_deref()
        },
        conns: a.conns,
        secs,
        script: Some(&script),
    };
    if a.warmup > 0 {
        wrk::run(&load(a.warmup))?;
    }
    let cs0 = procs::switches(pid)?;
    let cpu0 = srv.process().cpu_secs()?;
    let t0 = Instant::now();
    let run = wrk::run(&load(a.secs))?;
    let wall = t0.elapsed().as_secs_f64();
    let cpu = srv.process().cpu_secs()? - cpu0;
    let cs1 = procs::switches(pid)?;
    let requests = (run.ops * a.secs as f64).max(1.0);
    println!(
        "\n== keypool --fsync {}, {} s of wrk+lua at {} connections, nothing attached: {} ops/s, \
         p50 {}, p99 {}, errors {}; server CPU {:.0} %, {:.1} µs per request",
        a.fsync,
        a.secs,
        a.conns,
        count(run.ops),
        run.p50_us.map_or("-".into(), ms),
        run.p99_us.map_or("-".into(), ms),
        run.errors,
        100.0 * cpu / wall,
        1e6 * cpu / requests
    );
    println!("  context switches per request, by thread (/proc/PID/task/*/status):");
    for (name, after) in &cs1 {
        let before = cs0.get(name).copied().unwrap_or_default();
        let v = after.voluntary.saturating_sub(before.voluntary) as f64 / requests;
        let i = after.involuntary.saturating_sub(before.involuntary) as f64 / requests;
        if v + i >= 0.001 {
            println!("    {name:<18} voluntary {v:.3}  involuntary (preempted) {i:.3}");
        }
    }
    let label = match (&a.binary, a.restricted) {
        (Some(_), _) => format!("{}-binary", a.fsync),
        (None, true) => format!("{}-restricted", a.fsync),
        (None, false) => a.fsync.clone(),
    };
    let data = procs::profile_dir()?.join(format!("peers-perf-{label}.data"));
    let mut record: Vec<String> = ["record", "-a", "-C", procs::SERVER_CPU, "-F", "999"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    if a.dwarf {
        record.extend(["--call-graph".into(), "dwarf,16384".into()]);
    } else {
        record.push("-g".into());
    }
    record.extend(["-o".into(), data.to_string_lossy().into_owned()]);
    record.extend(["--".into(), "sleep".into(), a.secs.to_string()]);
    let (run, _) = under_load(&load(a.secs + 1), &record, a.secs)?;
    println!(
        "\n== perf record -a -C {} -F 999 -g, keypool --fsync {} (wrk over {} s, perf attached for the middle {}: {} ops/s, p99 {})",
        procs::SERVER_CPU,
        a.fsync,
        a.secs + 1,
        a.secs,
        count(run.ops),
        run.p99_us.map_or("-".into(), ms)
    );
    println!(
        "  (keypool's samples only; percentages are of all the server core's samples, so what \
         is missing from 100 % is idle time or other processes)"
    );
    let pid = pid.to_string();
    report(&data, &pid, "comm", 20, "by thread")?;
    report(
        &data,
        &pid,
        "comm,dso",
        12,
        "by thread and binary (kernel, keypool, libc)",
    )?;
    report(
        &data,
        &pid,
        "comm,dso,sym",
        TOP_SYMBOLS,
        "by symbol, self time",
    )?;
    chains(&data, &pid)?;
    println!(
        "\n  kept {}; explore with: perf report -i {} --no-children --pid {pid}",
        data.display(),
        data.display()
    );
    Ok(())
}

/// Runs wrk with `load` and, half a second in, `perf args`; returns both.
fn under_load(load: &wrk::Load, perf: &[String], secs: u64) -> Result<(Run, procs::Ran), BoxError> {
    std::thread::scope(|s| {
        let client = s.spawn(|| wrk::run(load));
        std::thread::sleep(Duration::from_millis(500));
        let perf = procs::client("perf", perf, Duration::from_secs(secs + 60));
        let run = client.join().map_err(|_| "the wrk thread panicked")??;
        Ok((run, perf?))
    })
}

/// Prints the call chains (callee first) of the symbols of 5 % or more of the
/// samples: whether a context switch was a futex wait, an epoll wait or a
/// preemption, and what the kernel time under a syscall was for.
fn chains(data: &Path, pid: &str) -> Result<(), BoxError> {
    let args: Vec<String> = [
        "report",
        "-i",
        &data.to_string_lossy(),
        "--pid",
        pid,
        "--no-children",
        "--stdio",
        "--percent-limit",
        "5",
        "-g",
        "graph,3,callee,function,percent",
        "--sort",
        "comm,sym",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = procs::helper("perf", &args, Duration::from_secs(300))?;
    println!("\n  -- call chains of the symbols with 5 % or more (callee first, branches ≥ 3 %)");
    for line in out
        .stdout
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty() && l.trim() != "|")
        .take(CHAIN_LINES)
    {
        println!("  {}", line.trim_end());
    }
    Ok(())
}

/// Prints `perf report --no-children --stdio -g none --pid PID --sort KEYS`, `top` lines.
fn report(data: &Path, pid: &str, sort: &str, top: usize, title: &str) -> Result<(), BoxError> {
    let args: Vec<String> = [
        "report",
        "-i",
        &data.to_string_lossy(),
        "--pid",
        pid,
        "--no-children",
        "--stdio",
        "-g",
        "none",
        "--percent-limit",
        "0.3",
        "--sort",
        sort,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = procs::helper("perf", &args, Duration::from_secs(300))?;
    println!("\n  -- {title} (perf report --no-children --sort {sort})");
    let samples = out
        .stdout
        .lines()
        .find(|l| l.starts_with("# Samples"))
        .unwrap_or("");
    println!("  {samples}");
    for line in out
        .stdout
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .take(top)
    {
        println!("  {}", line.trim_end());
    }
    Ok(())
}
