//! The harness: starts the real `keypool` binary on port 0 with its own data
//! directory, reads the address from its first stdout line, and talks HTTP to
//! it. Crash tests kill it with SIGKILL and start it again on the same directory.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// A running server.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Its data directory.
    pub dir: PathBuf,
    /// Keeps a temporary data directory alive.
    _tmp: Option<tempfile::TempDir>,
    args: Vec<String>,
    /// Environment variables set for the child (besides `RUST_LOG=info`, which they may override).
    env: Vec<(String, String)>,
}

/// Flags that keep tests independent of the per-IP limit (tests that check the
/// limit pass their own).
pub const RELAXED: &[&str] = &["--ip-rate-limit", "100000/1m", "--keys-per-day", "1000"];

/// RELAXED, and sessions that last the whole test.
pub const LASTING: &[&str] = &[
    "--ip-rate-limit",
    "100000/1m",
    "--keys-per-day",
    "1000",
    "--session-max-uses",
    "100000",
];

impl Server {
    /// Starts a server on a new temporary data directory.
    pub fn start(args: &[&str]) -> Server {
        Server::start_with_env(args, &[])
    }

    /// Starts a server on a new temporary data directory with extra environment variables.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let tmp = tempfile::Builder::new()
            .prefix("keypool-test-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("create a temporary directory");
        let dir = tmp.path().to_path_buf();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (child, base) = spawn(&dir, &args, &env).expect("server starts");
        let mut s = Server {
            child: Some(child),
            base,
            dir,
            _tmp: None,
            args,
            env,
        };
        s._tmp = Some(tmp);
        s
    }

    /// Starts a server on `dir`; `Err` with its stderr if it exits instead.
    pub fn start_in(dir: &Path, args: &[&str]) -> Result<Server, String> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let (child, base) = spawn(dir, &args, &[])?;
        Ok(Server {
            child: Some(child),
            base,
            dir: dir.to_path_buf(),
            _tmp: None,
            args,
            env: vec![],
        })
    }

    /// `base` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// SIGKILL: no snapshot, no flush, no goodbye.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and the exit status once it has stopped.
    pub fn sigterm(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("server is running");
        unsafe_kill(c.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = c.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same directory with the same flags.
    pub fn restart(&mut self) {
        self.kill9();
        let (child, base) = spawn(&self.dir, &self.args, &self.env).expect("server restarts");
        self.child = Some(child);
        self.base = base;
    }

    /// The server's stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.with_extension("stderr")).unwrap_or_default()
    }

    /// A request.
    pub fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Resp {
        call(method, &self.url(path), token, body)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn unsafe_kill(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// Spawns the binary and waits for its "listening on" line.
fn spawn(dir: &Path, args: &[String], env: &[(String, String)]) -> Result<(Child, String), String> {
    let stderr_path = dir.with_extension("stderr");
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&stderr_path)
        .map_err(|e| e.to_string())?;
    let mut child = Command::new(env!("CARGO_BIN_EXE_keypool"))
        .args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(args)
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(first)) = lines.next() {
            let _ = tx.send(first);
        }
        for _ in lines {}
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(line) => {
            let base = line
                .strip_prefix("listening on ")
                .ok_or_else(|| format!("unexpected first line: {line}"))?
                .to_string();
            Ok((child, base))
        }
        Err(_) => {
            let _ = child.kill();
            let status = child.wait().ok();
            Err(format!(
                "server did not start ({status:?}); stderr:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            ))
        }
    }
}

/// A response: status, headers we care about, JSON body (or `Value::Null`), raw text.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub text: String,
    pub headers: Vec<(String, String)>,
}

impl Resp {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// `body["error"]` as a string.
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }

    /// `body[field]` as a string.
    pub fn str(&self, field: &str) -> String {
        self.body[field]
            .as_str()
            .unwrap_or_else(|| panic!("no string {field} in {}", self.text))
            .to_string()
    }
}

thread_local! {
    static AGENT: ureq::Agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(30))
        .build();
}

/// One request; `token` goes as `Authorization: Bearer`.
pub fn call(method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> Resp {
    let mut headers = vec![];
    if let Some(t) = token {
        headers.push(("Authorization".to_string(), format!("Bearer {t}")));
    }
    raw(method, url, &headers, body.map(|b| b.to_string()))
}

/// One request with explicit headers and a raw body.
pub fn raw(method: &str, url: &str, headers: &[(String, String)], body: Option<String>) -> Resp {
    let mut req = AGENT.with(|a| a.request(method, url));
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let result = match body {
        Some(b) => {
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                req = req.set("Content-Type", "application/json");
            }
            req.send_string(&b)
        }
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status();
    let headers = resp
        .headers_names()
        .into_iter()
        .filter_map(|n| resp.header(&n).map(|v| (n.clone(), v.to_string())))
        .collect();
    let text = resp.into_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp {
        status,
        body,
        text,
        headers,
    }
}

/// Registers `user` and logs in; returns a session token.
pub fn register_and_login(s: &Server, user: &str) -> String {
    let r = s.call(
        "POST",
        "/register",
        None,
        Some(serde_json::json!({"username": user, "password": "correct horse battery"})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    login(s, user)
}

/// A new key of `session`'s account with these `/generate-key` fields;
/// returns (key, key_id).
pub fn new_key(s: &Server, session: &str, body: serde_json::Value) -> (String, String) {
    let r = s.call("POST", "/generate-key", Some(session), Some(body));
    assert_eq!(r.status, 201, "{}", r.text);
    (r.str("key"), r.str("key_id"))
}

/// The `/list-keys` item of `key_id`, as `token` sees it.
pub fn list_item(s: &Server, token: &str, key_id: &str) -> serde_json::Value {
    let r = s.call("GET", "/list-keys", Some(token), None);
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["key_id"] == key_id)
        .unwrap_or_else(|| panic!("{key_id} not in {}", r.text))
        .clone()
}

/// Logs in; returns a session token.
pub fn login(s: &Server, user: &str) -> String {
    let r = s.call(
        "POST",
        "/login",
        None,
        Some(serde_json::json!({"username": user, "password": "correct horse battery"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r.str("token")
}

/// Creates an API key with a fresh session; returns the full key.
pub fn api_key(s: &Server, user: &str) -> String {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let name = format!(
        "worker-{}",
        N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let token = login(s, user);
    let r = s.call(
        "POST",
        "/generate-key",
        Some(&token),
        Some(serde_json::json!({"name": name})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    r.str("key")
}

/// Polls `check` every 50 ms until it is true or `within` passes.
pub fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Like [`call`], but `None` when the connection fails (the server was killed).
pub fn try_call(method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> Option<Resp> {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(10))
        .build();
    let mut req = agent.request(method, url);
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    let result = match body {
        Some(b) => req
            .set("Content-Type", "application/json")
            .send_string(&b.to_string()),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(_) => return None,
    };
    let status = resp.status();
    let text = resp.into_string().ok()?;
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Some(Resp {
        status,
        body,
        text,
        headers: vec![],
    })
}

/// The write-ahead log segments in `dir`, oldest first.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    files(dir, "wal-", ".log")
}

/// The snapshots in `dir`, oldest first.
pub fn snapshots(dir: &Path) -> Vec<PathBuf> {
    files(dir, "snap-", ".bin")
}

fn files(dir: &Path, prefix: &str, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    let n = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
                    n.starts_with(prefix) && n.ends_with(suffix)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Copies every regular file of `from` into a new directory `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}
