//! The Redis peers: Debian's `redis-server` on a free loopback port, in a
//! temporary directory of its own, pinned to the server core, with persistence
//! off or with `appendfsync always`; the pool script (`pool_redis.lua`) loaded
//! once and the pool filled with 1,000 members; `redis-benchmark` on the
//! client core driving `EVALSHA` at the same connection count as wrk. Failed
//! calls are read from the server's own `INFO commandstats`, not trusted to
//! the client.

use std::time::Duration;

use uuid::Uuid;

use crate::procs::{self, BoxError, Server};
use crate::report::Run;

/// The pool script.
const SCRIPT: &str = include_str!("pool_redis.lua");
/// Keys the script works on: free set, leased zset, fallback counter.
const KEYS: [&str; 3] = ["pool:free", "pool:leased", "pool:stats"];
/// The lease length the script gives a checkout (keypool's default `--block-ttl`).
const LEASE_MS: &str = "60000";
/// Limit for one redis-cli call.
const CLI_LIMIT: Duration = Duration::from_secs(10);

/// A running Redis with the pool script loaded.
pub struct Redis {
    // Field order is drop order: the server stops before its directory goes.
    server: Server,
    port: u16,
    sha: String,
    _dir: tempfile::TempDir,
}

impl Redis {
    /// Starts redis-server with `persistence` flags and fills the pool with `keys` members.
    pub fn start(label: &str, persistence: &[&str], keys: u64) -> Result<Redis, BoxError> {
        let dir = procs::temp_dir(label)?;
        let port = procs::free_port()?;
        let abs = dir.path().canonicalize()?;
        let mut args: Vec<String> = vec![
            "--bind".into(),
            "127.0.0.1".into(),
            "--port".into(),
            port.to_string(),
            "--dir".into(),
            abs.to_string_lossy().into_owned(),
            "--logfile".into(),
            abs.join("redis.log").to_string_lossy().into_owned(),
            "--daemonize".into(),
            "no".into(),
        ];
        args.extend(persistence.iter().map(|s| s.to_string()));
        let bin = std::path::Path::new("redis-server");
        let server = Server::spawn(
            &format!("redis-server ({label})"),
            bin,
            &args,
            &abs.join("stderr.log"),
        )?;
        let mut redis = Redis {
            server,
            port,
            sha: String::new(),
            _dir: dir,
        };
        redis.wait_ready()?;
        redis.sha = redis.cli(&["SCRIPT", "LOAD", SCRIPT])?.trim().to_string();
        let mut sadd = vec!["SADD".to_string(), KEYS[0].to_string()];
        sadd.extend((0..keys).map(|_| Uuid::new_v4().to_string()));
        redis.cli_owned(&sadd)?;
        Ok(redis)
    }

    fn wait_ready(&mut self) -> Result<(), BoxError> {
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(10) {
            if !self.server.alive() {
                return Err(format!("{} exited at start", self.server.name).into());
            }
            if matches!(self.cli(&["PING"]), Ok(s) if s.trim() == "PONG") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!("{} did not answer PING in time", self.server.name).into())
    }

    /// One redis-cli call; its stdout.
    pub fn cli(&self, args: &[&str]) -> Result<String, BoxError> {
        let owned: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        self.cli_owned(&owned)
    }

    fn cli_owned(&self, args: &[String]) -> Result<String, BoxError> {
        let mut all = vec![
            "-h".to_string(),
            "127.0.0.1".to_string(),
            "-p".to_string(),
            self.port.to_string(),
        ];
        all.extend_from_slice(args);
        Ok(procs::helper("redis-cli", &all, CLI_LIMIT)?.stdout)
    }

    /// The server process.
    pub fn process(&self) -> &Server {
        &self.server
    }

    /// `redis-benchmark -c conns -n requests` of the pool script (or of `PING`
    /// when `ping`); rps and latencies from its CSV line, failures from
    /// `INFO commandstats`.
    pub fn bench(&self, conns: usize, requests: u64, ping: bool) -> Result<Run, BoxError> {
        let mut args: Vec<String> = [
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-c",
            &conns.to_string(),
            "-n",
            &requests.max(1).to_string(),
            "-r",
            "2",
            "--csv",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if ping {
            args.push("PING".into());
        } else {
            args.extend(["EVALSHA".to_string(), self.sha.clone(), "3".to_string()]);
            args.extend(KEYS.iter().map(|s| s.to_string()));
            args.extend(["__rand_int__".to_string(), LEASE_MS.to_string()]);
        }
        let before = self.commandstats()?;
        // At a pessimistic 5,000 calls/s, plus the start.
        let limit = Duration::from_secs(requests / 5_000 + 30);
        let ran = procs::client("redis-benchmark", &args, limit)?;
        let after = self.commandstats()?;
        let mut run = parse_csv(&ran.stdout)?;
        run.client_cpu = ran.cpu_secs / ran.wall.as_secs_f64().max(1e-9);
        let cmd = if ping { "ping" } else { "evalsha" };
        let calls = after.get(cmd, "calls") - before.get(cmd, "calls");
        let failed = (after.get(cmd, "failed_calls") - before.get(cmd, "failed_calls"))
            + (after.get(cmd, "rejected_calls") - before.get(cmd, "rejected_calls"));
        if calls < requests as f64 {
            run.note = Some(format!("the server saw {calls} calls of {requests} sent"));
        }
        if failed > 0.0 {
            run.errors = failed as u64;
            run.ops *= (calls - failed).max(0.0) / calls.max(1.0);
            run.note = Some(format!("{failed} calls failed on the server"));
        }
        Ok(run)
    }

    /// Free and leased members and fallbacks so far, for the report.
    pub fn pool_state(&self) -> Result<String, BoxError> {
        let free = self.cli(&["SCARD", KEYS[0]])?;
        let leased = self.cli(&["ZCARD", KEYS[1]])?;
        let fallbacks = self.cli(&["HGET", KEYS[2], "fallbacks"])?;
        Ok(format!(
            "{} free + {} leased, {} fallbacks",
            free.trim(),
            leased.trim(),
            match fallbacks.trim() {
                "" => "0",
                f => f,
            }
        ))
    }

    fn commandstats(&self) -> Result<CommandStats, BoxError> {
        Ok(CommandStats(self.cli(&["INFO", "commandstats"])?))
    }
}

/// The text of `INFO commandstats`.
struct CommandStats(String);

impl CommandStats {
    /// `field` of `cmdstat_<cmd>:calls=…,failed_calls=…`, 0 when absent.
    fn get(&self, cmd: &str, field: &str) -> f64 {
        let prefix = format!("cmdstat_{cmd}:");
        self.0
            .lines()
            .find_map(|l| l.trim().strip_prefix(&prefix))
            .and_then(|rest| {
                rest.split(',')
                    .find_map(|kv| kv.strip_prefix(&format!("{field}=")))
                    .and_then(|v| v.parse::<f64>().ok())
            })
            .unwrap_or(0.0)
    }
}

/// redis-benchmark's `--csv`: a header, then
/// `"name","rps","avg","min","p50","p95","p99","max"` (milliseconds).
fn parse_csv(stdout: &str) -> Result<Run, BoxError> {
    let line = stdout
        .lines()
        .rfind(|l| l.starts_with('"') && !l.starts_with("\"test\""))
        .ok_or_else(|| format!("no CSV line from redis-benchmark: {stdout}"))?;
    // The command name may hold commas only inside its quotes; the figures
    // are the last seven fields.
    let fields: Vec<f64> = line
        .rsplitn(8, ',')
        .take(7)
        .map(|f| f.trim_matches('"').parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("odd CSV line {line:?}: {e}"))?;
    // rsplitn yields them last first: max, p99, p95, p50, min, avg, rps.
    Ok(Run {
        ops: fields[6],
        p50_us: Some(fields[3] * 1e3),
        p99_us: Some(fields[1] * 1e3),
        ..Run::default()
    })
}
