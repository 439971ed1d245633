//! The processes of the side-by-side benchmark: servers started under
//! `taskset -c 0` and stopped (SIGTERM, then SIGKILL) when their handle drops,
//! clients run under `taskset -c 1` with a time limit, the CPU time each side
//! used, and the build of the binaries under test. Nothing here outlives the
//! run: every child is killed and reaped on every path out, errors included.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Errors of the benchmark: it reports and moves on, so one boxed type is enough.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The core the servers under test run on.
pub const SERVER_CPU: &str = "0";
/// The core the load generators run on.
pub const CLIENT_CPU: &str = "1";
/// How long a server gets to start, or to stop before it is killed.
const START_LIMIT: Duration = Duration::from_secs(30);
const STOP_LIMIT: Duration = Duration::from_secs(10);

/// A server process pinned to [`SERVER_CPU`]; SIGTERM, then SIGKILL, on drop.
pub struct Server {
    child: Child,
    /// What it is, for messages.
    pub name: String,
    /// Where its stderr goes.
    log: PathBuf,
}

impl Server {
    /// Starts `program args…` under `taskset -c SERVER_CPU`, its stdout piped
    /// (for [`Server::wait_listening`]) and its stderr into `log`.
    pub fn spawn(
        name: &str,
        program: &Path,
        args: &[String],
        log: &Path,
    ) -> Result<Server, BoxError> {
        let child = Command::new("taskset")
            .args(["-c", SERVER_CPU])
            .arg(program)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log)?)
            .spawn()
            .map_err(|e| format!("cannot start {name} ({}): {e}", program.display()))?;
        Ok(Server {
            child,
            name: name.to_string(),
            log: log.to_path_buf(),
        })
    }

    /// Waits for the first stdout line `listening on http://ADDR` (keypool's
    /// and the bare server's) and returns the address.
    pub fn wait_listening(&mut self) -> Result<SocketAddr, BoxError> {
        let stdout = self.child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so that the server never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = rx
            .recv_timeout(START_LIMIT)
            .map_err(|_| format!("{} did not print its address in time", self.name))?;
        line.trim()
            .strip_prefix("listening on http://")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| {
                // Give the server a moment to finish writing why it stopped.
                std::thread::sleep(Duration::from_millis(200));
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                let said: Vec<&str> = tail.into_iter().rev().collect();
                format!(
                    "{} printed {line:?} instead of its address; its stderr: {}",
                    self.name,
                    said.join(" | ")
                )
                .into()
            })
    }

    /// The process id (taskset execs the server, so this is the server's).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// CPU seconds (user + system, all threads) the server used so far.
    pub fn cpu_secs(&self) -> Result<f64, BoxError> {
        proc_cpu_secs(self.pid())
    }

    /// Whether it still runs.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on our own child's pid, which we have not reaped.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            let started = Instant::now();
            while started.elapsed() < STOP_LIMIT {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            eprintln!("peers: {} did not stop on SIGTERM; killing it", self.name);
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// user + system CPU seconds of a process, from `/proc/PID/stat`.
pub fn proc_cpu_secs(pid: u32) -> Result<f64, BoxError> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').ok_or("odd /proc/PID/stat")?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here.
    let ticks: u64 = fields.get(11).ok_or("short stat")?.parse::<u64>()?
        + fields.get(12).ok_or("short stat")?.parse::<u64>()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1);
    Ok(ticks as f64 / hz as f64)
}

/// Context switches of one thread so far, from `/proc/PID/task/TID/status`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Switches {
    /// The thread gave up the CPU (blocked: futex, epoll, I/O).
    pub voluntary: u64,
    /// The thread was preempted (say, by a thread it had just woken).
    pub involuntary: u64,
}

/// Context switches of every thread of `pid`, by thread name (threads of one
/// name added up). Free to read, unlike `perf stat -p`, which makes every
/// context switch of the process dearer.
pub fn switches(pid: u32) -> Result<std::collections::BTreeMap<String, Switches>, BoxError> {
    let mut by_name = std::collections::BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))? {
        let Ok(status) = std::fs::read_to_string(task?.path().join("status")) else {
            continue; // the thread ended meanwhile
        };
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
        };
        let name = field("Name:").unwrap_or_default();
        let n = |f: &str| field(f).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let e: &mut Switches = by_name.entry(name).or_default();
        e.voluntary += n("voluntary_ctxt_switches:");
        e.involuntary += n("nonvoluntary_ctxt_switches:");
    }
    Ok(by_name)
}

/// All context switches of `pid`'s threads so far.
pub fn total_switches(pid: u32) -> u64 {
    switches(pid).map_or(0, |m| m.values().map(|s| s.voluntary + s.involuntary).sum())
}

/// CPU seconds used by this process's reaped children so far (the clients:
/// servers are reaped only at the end).
pub fn children_cpu_secs() -> f64 {
    // SAFETY: getrusage fills the struct we pass; zeroed is a valid rusage.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// What a client run printed, and the CPU it used.
pub struct Ran {
    /// Its stdout.
    pub stdout: String,
    /// Its stderr.
    pub stderr: String,
    /// CPU seconds (user + system) the client used.
    pub cpu_secs: f64,
    /// Wall-clock time it ran.
    pub wall: Duration,
}

/// Runs `program args…` under `taskset -c CLIENT_CPU`, killing it after
/// `limit`; fails on a non-zero exit.
pub fn client(program: &str, args: &[String], limit: Duration) -> Result<Ran, BoxError> {
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", CLIENT_CPU, program]).args(args);
    run_bounded(cmd, limit)
}

/// Runs a short helper command (redis-cli, perf report) with a time limit.
pub fn helper(program: &str, args: &[String], limit: Duration) -> Result<Ran, BoxError> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    run_bounded(cmd, limit)
}

fn run_bounded(mut cmd: Command, limit: Duration) -> Result<Ran, BoxError> {
    let what = format!("{cmd:?}");
    let short: String = what.chars().take(160).collect();
    let cpu0 = children_cpu_secs();
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {short}: {e}"))?;
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let status = loop {
        if let Some(s) = child.try_wait()? {
            break s;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("{short} did not finish within {limit:?}; killed").into());
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let wall = started.elapsed();
    let ran = Ran {
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        cpu_secs: children_cpu_secs() - cpu0,
        wall,
    };
    if !status.success() {
        let said = if ran.stderr.trim().is_empty() {
            ran.stdout.lines().next().unwrap_or("").trim()
        } else {
            ran.stderr.trim()
        };
        return Err(format!("{short} failed ({status}): {said}").into());
    }
    Ok(ran)
}

/// Reads a pipe to its end on a thread of its own.
fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_string(&mut s);
        }
        s
    })
}

/// Pins this process (the orchestrator, idle while clients run) to the client core.
pub fn pin_self_to_client_cpu() {
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET and sched_setaffinity only
    // touch the set we own.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(1, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// Whether `program` is on PATH.
pub fn installed(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(program).is_file()))
}

/// A loopback port that was free a moment ago (for Redis, which cannot print
/// the port it bound).
pub fn free_port() -> Result<u16, BoxError> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The directory of this example's build profile (`target/release`).
pub fn profile_dir() -> Result<PathBuf, BoxError> {
    let exe = std::env::current_exe()?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| "cannot locate the target directory".into())
}

/// A fresh temporary directory under the profile directory (same disk as a
/// keypool data directory would be), removed when dropped.
pub fn temp_dir(label: &str) -> Result<tempfile::TempDir, BoxError> {
    Ok(tempfile::Builder::new()
        .prefix(&format!("peers-{label}-"))
        .tempdir_in(profile_dir()?)?)
}

/// Builds the `keypool` binary and the bare server of this profile when run
/// by cargo (which sets `CARGO`), so that a run never measures a stale binary;
/// returns their paths.
pub fn build(skip: bool) -> Result<(PathBuf, PathBuf), BoxError> {
    let dir = profile_dir()?;
    let keypool = dir.join("keypool");
    let bare = dir.join("examples").join("bare");
    match std::env::var_os("CARGO") {
        Some(cargo) if !skip => {
            let mut cmd = Command::new(cargo);
            cmd.args(["build", "--quiet", "--bin", "keypool", "--example", "bare"])
                .arg("--manifest-path")
                .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml"));
            if dir.file_name().is_some_and(|n| n == "release") {
                cmd.arg("--release");
            }
            println!("building: {cmd:?}");
            let status = cmd.status()?;
            if !status.success() {
                return Err(format!("the build failed ({status})").into());
            }
        }
        _ => {}
    }
    for bin in [&keypool, &bare] {
        if !bin.is_file() {
            return Err(format!(
                "{} is missing: run `cargo build --release --bin keypool --example bare`",
                bin.display()
            )
            .into());
        }
    }
    Ok((keypool, bare))
}
