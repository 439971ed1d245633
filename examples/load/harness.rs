//! The servers under load: keypool in-process (its own thread and 2-thread
//! tokio runtime, stopped through its shutdown future so that it writes its
//! final snapshot), the real `keypool` binary as a child process (for the
//! `kill -9` of the recovery scenario), and a bare hyper server that answers one
//! fixed JSON body (the ceiling the pool scenario compares against). Also the
//! process's resident memory and a tracing layer that notes when snapshots ran.

use std::convert::Infallible;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use keypool::config::Config;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tracing::field::{Field, Visit};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer};

/// Errors of the load generator: it reports and moves on, so one boxed type is enough.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How long any server gets to start or stop before we give up on it.
const START_LIMIT: Duration = Duration::from_secs(120);

/// The body the bare server answers to every request: the shape (and about
/// the size) of keypool's checkout answer, so that the client parses the same.
pub const BARE_BODY: &str = concat!(
    r#"{"key_id":"6f1c2b8e-3d4a-4f5b-9c6d-7e8f9a0b1c2d","#,
    r#""lease_id":"0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d","#,
    r#""blocked_until":"2026-11-22T14:31:00.123Z","expires_at":"2026-11-22T14:35:00.123Z"}"#
);

/// A server running on its own thread and runtime in this process.
pub struct InProcess {
    /// Where it listens.
    pub addr: SocketAddr,
    /// From the start of the thread to the `ready` callback (recovery included).
    pub ready_after: Duration,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl InProcess {
    /// Starts keypool on `127.0.0.1:0` with `--data-dir dir` and `flags`.
    pub fn keypool(dir: &Path, flags: &[&str]) -> Result<InProcess, BoxError> {
        let mut args = vec!["keypool", "--bind", "127.0.0.1:0", "--data-dir"];
        let dir = dir.to_string_lossy().into_owned();
        args.push(&dir);
        args.extend_from_slice(flags);
        let config = Config::try_parse_from(args)?;
        spawn_server(move |listener, ready, shutdown| async move {
            keypool::run(config, listener, ready, shutdown)
                .await
                .map_err(|e| e.to_string())
        })
    }

    /// Starts the bare hyper server.
    pub fn bare() -> Result<InProcess, BoxError> {
        spawn_server(|listener, ready, shutdown| async move {
            ready();
            serve_bare(listener, shutdown).await;
            Ok(())
        })
    }

    /// Asks the server to stop (keypool then writes its final snapshot) and
    /// waits; returns how long that took.
    pub fn stop(mut self) -> Result<Duration, BoxError> {
        let started = Instant::now();
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        match self.thread.take().map(|t| t.join()) {
            Some(Ok(Ok(()))) | None => Ok(started.elapsed()),
            Some(Ok(Err(e))) => Err(format!("server failed: {e}").into()),
            Some(Err(_)) => Err("server thread panicked".into()),
        }
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Runs `serve(listener, ready, shutdown)` on a new thread with a 2-worker
/// runtime and waits until it calls `ready`.
fn spawn_server<F, Fut>(serve: F) -> Result<InProcess, BoxError>
where
    F: FnOnce(TcpListener, Box<dyn FnOnce() + Send>, ShutdownFuture) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let (ready_tx, ready_rx) = mpsc::channel::<Result<SocketAddr, String>>();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let started = Instant::now();
    let thread = std::thread::spawn(move || {
        let fail = ready_tx.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let result = runtime.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| e.to_string())?;
            let addr = listener.local_addr().map_err(|e| e.to_string())?;
            let ready: Box<dyn FnOnce() + Send> = Box::new(move || {
                let _ = ready_tx.send(Ok(addr));
            });
            let shutdown: ShutdownFuture = Box::pin(async move {
                let _ = stop_rx.await;
            });
            serve(listener, ready, shutdown).await
        });
        if let Err(e) = &result {
            let _ = fail.send(Err(e.clone()));
        }
        result
    });
    match ready_rx.recv_timeout(START_LIMIT) {
        Ok(Ok(addr)) => Ok(InProcess {
            addr,
            ready_after: started.elapsed(),
            stop: Some(stop_tx),
            thread: Some(thread),
        }),
        Ok(Err(e)) => Err(format!("server did not start: {e}").into()),
        Err(_) => Err("server did not start in time".into()),
    }
}

/// What a server waits on to stop.
type ShutdownFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// The bare server: hyper's plain accept loop with the same connection
/// settings as keypool (keep-alive, `TCP_NODELAY`), and one fixed answer.
async fn serve_bare(listener: TcpListener, shutdown: ShutdownFuture) {
    tokio::pin!(shutdown);
    let mut builder = http1::Builder::new();
    builder.keep_alive(true);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((s, _)) => s,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let _ = stream.set_nodelay(true);
        let service = service_fn(|_req: Request<Incoming>| async {
            let mut resp = Response::new(Full::new(Bytes::from_static(BARE_BODY.as_bytes())));
            resp.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/json"),
            );
            Ok::<_, Infallible>(resp)
        });
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

/// The real `keypool` binary, running as a child process.
pub struct Child9 {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// From spawning the process to its `listening on` line.
    pub ready_after: Duration,
}

impl Child9 {
    /// Spawns `binary --bind 127.0.0.1:0 --data-dir dir flags…` and waits for
    /// its first stdout line.
    pub fn spawn(binary: &Path, dir: &Path, flags: &[&str]) -> Result<Child9, BoxError> {
        let started = Instant::now();
        let mut child = Command::new(binary)
            .args(["--bind", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .args(flags)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send((line, Instant::now()));
        });
        let (line, at) = match rx.recv_timeout(START_LIMIT) {
            Ok(got) => got,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("the keypool binary did not print its address in time".into());
            }
        };
        let parsed = line
            .trim()
            .strip_prefix("listening on http://")
            .and_then(|a| a.parse().ok());
        match parsed {
            Some(addr) => Ok(Child9 {
                child,
                addr,
                ready_after: at - started,
            }),
            None => {
                let _ = child.kill();
                let status = child.wait()?;
                Err(format!("keypool exited ({status}) instead of listening: {line:?}").into())
            }
        }
    }

    /// The process's resident set size in bytes.
    pub fn rss_bytes(&self) -> Result<u64, BoxError> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        vm_rss(&status).ok_or_else(|| "no VmRSS in /proc/PID/status".into())
    }

    /// SIGTERM, and waits for the clean exit (which writes a final snapshot);
    /// returns how long that took.
    pub fn terminate(mut self) -> Result<Duration, BoxError> {
        let started = Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()?;
        if !sent.success() {
            return Err("kill -TERM failed".into());
        }
        while started.elapsed() < START_LIMIT {
            if let Some(status) = self.child.try_wait()? {
                return if status.success() {
                    Ok(started.elapsed())
                } else {
                    Err(format!("keypool exited with {status} on SIGTERM").into())
                };
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Err("keypool did not stop in time after SIGTERM".into())
    }

    /// SIGKILL: no snapshot, no flush.
    pub fn kill9(mut self) -> Result<(), BoxError> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for Child9 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The directory of the running example's build profile (`target/release`),
/// where temporary data dirs go and where `cargo build --release` puts the
/// `keypool` binary.
pub fn profile_dir() -> Result<PathBuf, BoxError> {
    let exe = std::env::current_exe()?;
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| "cannot locate the target directory".into())
}

/// The `keypool` binary beside this example's profile directory, if built.
pub fn keypool_binary() -> Result<Option<PathBuf>, BoxError> {
    let bin = profile_dir()?.join("keypool");
    Ok(bin.is_file().then_some(bin))
}

/// A fresh temporary data directory under the target directory.
pub fn temp_dir(label: &str) -> Result<tempfile::TempDir, BoxError> {
    Ok(tempfile::Builder::new()
        .prefix(&format!("load-{label}-"))
        .tempdir_in(profile_dir()?)?)
}

/// This process's resident set size in bytes (`VmRSS`).
pub fn rss_bytes() -> Result<u64, BoxError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    vm_rss(&status).ok_or_else(|| "no VmRSS in /proc/self/status".into())
}

/// `VmRSS` in bytes from the text of a `/proc/PID/status`.
fn vm_rss(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
}

/// Snapshots seen by [`SnapshotSpy`]: when each finished and how long it took.
static SNAPSHOTS: Mutex<Vec<(Instant, u64)>> = Mutex::new(Vec::new());

/// Drains the snapshots noted so far as `(started, finished)` instants.
pub fn take_snapshots() -> Vec<(Instant, Instant)> {
    SNAPSHOTS
        .lock()
        .drain(..)
        .map(|(end, took)| {
            let start = end.checked_sub(Duration::from_millis(took)).unwrap_or(end);
            (start, end)
        })
        .collect()
}

/// A tracing layer that notes keypool's periodic `snapshot written` events
/// (logged with `took_ms` when a snapshot is done), so that the snapshot
/// scenario knows which requests overlapped one.
pub struct SnapshotSpy;

impl<S: Subscriber> Layer<S> for SnapshotSpy {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        #[derive(Default)]
        struct Fields {
            message: String,
            took_ms: Option<u64>,
        }
        impl Visit for Fields {
            fn record_u64(&mut self, field: &Field, value: u64) {
                if field.name() == "took_ms" {
                    self.took_ms = Some(value);
                }
            }
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                if field.name() == "message" {
                    self.message = format!("{value:?}");
                }
            }
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        if let ("snapshot written", Some(took)) = (fields.message.as_str(), fields.took_ms) {
            SNAPSHOTS.lock().push((Instant::now(), took));
        }
    }
}
