//! The browser tests' machinery: chromedriver and Chromium started per test
//! ([`Driver`]), the page as a person uses it ([`Page`]), and the few HTTP
//! calls the tests make beside the page.

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

use super::*;
use crate::support::{raw, Resp, Server};

/// The selector of one of a key row's buttons.
pub(super) fn row_button(key_id: &str, testid: &str) -> String {
    format!("[data-testid=key-row][data-key-id='{key_id}'] [data-testid={testid}]")
}

pub(super) fn find_row<'a>(rows: &'a [Value], name: &str) -> &'a Value {
    rows.iter()
        .find(|r| r["name"] == name)
        .unwrap_or_else(|| panic!("{name} listed: {rows:?}"))
}

/// `GET /list-keys` items, with a session of the test's own.
pub(super) fn list_keys(base: &str, user: &str) -> Vec<Value> {
    let token = login(base, user);
    let r = get(
        base,
        "/list-keys",
        &[("Authorization".into(), format!("Bearer {token}"))],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["items"].as_array().cloned().unwrap_or_default()
}

// ---------------------------------------------------------------------------
// HTTP helpers (the test's own requests, beside the browser's)
// ---------------------------------------------------------------------------

/// Registers `user` with [`PASSWORD`].
pub(super) fn register(base: &str, user: &str) {
    let r = raw(
        "POST",
        &format!("{base}/register"),
        &[],
        Some(json!({"username": user, "password": PASSWORD}).to_string()),
    );
    assert_eq!(r.status, 201, "{}", r.text);
}

/// Logs `user` in over HTTP (a session of the test's own, not the page's).
pub(super) fn login(base: &str, user: &str) -> String {
    let r = raw(
        "POST",
        &format!("{base}/login"),
        &[],
        Some(json!({"username": user, "password": PASSWORD}).to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r.str("token")
}

/// A GET with the given headers.
pub(super) fn get(base: &str, path: &str, headers: &[(String, String)]) -> Resp {
    raw("GET", &format!("{base}{path}"), headers, None)
}

/// A request carrying `key` as `X-API-Key`.
pub(super) fn with_key(base: &str, method: &str, path: &str, key: &str) -> Resp {
    let headers = [("X-API-Key".to_string(), key.to_string())];
    let body = (method == "POST").then(|| "{}".to_string());
    raw(method, &format!("{base}{path}"), &headers, body)
}

// ---------------------------------------------------------------------------
// The page, as a user sees it
// ---------------------------------------------------------------------------

/// JavaScript's truthiness of a returned value.
pub(super) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// `fut`, or an error once [`WAIT`] has passed: a hung browser fails the test.
pub(super) async fn bounded<T, E: std::fmt::Display>(
    what: &str,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("WebDriver {what} took longer than {WAIT:?}")),
    }
}

pub(super) fn shots_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-screenshots")
}

pub(super) async fn save_screenshot(c: &Client, path: &Path) {
    let png = bounded("screenshot", c.screenshot())
        .await
        .expect("a screenshot");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create the screenshot directory");
    }
    std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

// ---------------------------------------------------------------------------
// The harness: server, chromedriver, Chromium, one WebDriver session
// ---------------------------------------------------------------------------

/// Runs `body` against a fresh server and browser; saves the last screen as
/// `<name>.png` whatever happens, then closes the browser and chromedriver.
pub(super) fn run<F, Fut>(name: &str, body: F)
where
    F: FnOnce(Page) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    run_with(name, SERVER_ARGS, body)
}

/// [`run`] against a server started with `args`.
pub(super) fn run_with<F, Fut>(name: &str, args: &[&str], body: F)
where
    F: FnOnce(Page) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let server = Server::start(args);
    let driver = Driver::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let started = Instant::now();
    let outcome = rt.block_on(async {
        let client = driver.connect().await;
        let page = Page {
            c: client.clone(),
            base: server.base.clone(),
        };
        let task = tokio::spawn(body(page));
        let outcome = tokio::time::timeout(TEST_LIMIT, task).await;
        // The last screen, also (above all) when the test failed.
        if let Ok(Ok(png)) = tokio::time::timeout(WAIT, client.screenshot()).await {
            let path = shots_dir().join(format!("{name}.png"));
            let _ = std::fs::create_dir_all(shots_dir());
            let _ = std::fs::write(&path, png);
            eprintln!("screenshot: {}", path.display());
        }
        // Ends the session: chromedriver quits Chromium.
        let _ = tokio::time::timeout(WAIT, client.close()).await;
        outcome
    });
    eprintln!("{name}: {:.1} s", started.elapsed().as_secs_f64());
    match outcome {
        Ok(Ok(())) => {}
        failed => {
            eprintln!("--- server stderr (tail)\n{}", tail(&server.stderr(), 40));
            eprintln!("--- chromedriver log (tail)\n{}", tail(&driver.log(), 40));
            match failed {
                Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Ok(Err(e)) => panic!("{name}: {e}"),
                _ => panic!("{name}: the test took longer than {TEST_LIMIT:?}"),
            }
        }
    }
}

pub(super) fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A chromedriver of our own, on a free port, in its own process group so
/// that it and the Chromium it starts go together at the end.
pub(super) struct Driver {
    pub(super) child: Child,
    /// `http://127.0.0.1:PORT`.
    pub(super) url: String,
    /// Holds the Chromium profile and the chromedriver log.
    pub(super) dir: tempfile::TempDir,
}

impl Driver {
    /// Starts chromedriver and waits (bounded) until `/status` says it is ready.
    pub(super) fn start() -> Driver {
        use std::os::unix::process::CommandExt;

        let dir = tempfile::Builder::new()
            .prefix("keypool-browser-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("a temporary directory");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let child = Command::new(&bin)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                dir.path().join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("start {bin} ({e}): install Debian's chromium and chromium-driver")
            });
        let mut d = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(2))
            .build();
        let deadline = Instant::now() + WAIT;
        loop {
            let ready = agent
                .get(&format!("{}/status", d.url))
                .call()
                .ok()
                .and_then(|r| r.into_json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                return d;
            }
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!("chromedriver exited ({status}):\n{}", d.log());
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver not ready within {WAIT:?}:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A WebDriver session with a headless Chromium on a fresh profile.
    pub(super) async fn connect(&self) -> Client {
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!(
            "--user-data-dir={}",
            self.dir.path().join("profile").display()
        ));
        let mut chrome = json!({ "args": args });
        if let Ok(bin) = std::env::var("CHROMIUM") {
            chrome["binary"] = json!(bin);
        }
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": chrome,
            "timeouts": {"pageLoad": WAIT.as_millis() as u64, "script": WAIT.as_millis() as u64},
        });
        let Value::Object(caps) = caps else {
            unreachable!("a JSON object literal")
        };
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(caps);
        let connecting = builder.connect(&self.url);
        match tokio::time::timeout(Duration::from_secs(60), connecting).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => panic!("no WebDriver session: {e}\n{}", tail(&self.log(), 40)),
            Err(_) => panic!(
                "Chromium did not start within 60 s\n{}",
                tail(&self.log(), 40)
            ),
        }
    }

    /// chromedriver's log so far.
    pub(super) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver and any Chromium the session left behind.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
