//! The accept loop: plain hyper 1.x over tokio (as hyper-util's
//! `server_graceful` example), HTTP/1.1 keep-alive, and graceful shutdown that
//! lets in-flight requests finish.
//!
//! Every connection is accepted at once; `admit.rs` decides whether it gets a
//! slot (`--max-connections`, `--max-connections-per-ip`) or a prompt 503. A
//! connection with a slot runs in a task of its own beside a watchdog (see
//! `conn.rs`) that closes it when its headers are too slow or it sits idle.
//! Per request the hot path adds one `Arc` clone (as before) and a few relaxed
//! stores: no lock, no allocation.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use super::admit::{IpSlot, PerIp, Refusals};
use super::conn::{verdict, Io, Timeouts, Tracker, Verdict};
use super::metrics::Refused;
use super::Http;

/// How long shutdown waits for in-flight requests before giving up on them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// One served connection: what its requests and its socket share.
struct Conn {
    http: Arc<Http>,
    peer: SocketAddr,
    track: Tracker,
}

impl AsRef<Tracker> for Arc<Conn> {
    fn as_ref(&self) -> &Tracker {
        &self.track
    }
}

/// Serves `listener` until `shutdown` resolves, then stops accepting, lets the
/// requests in flight finish (up to [`DRAIN_TIMEOUT`]) and returns.
pub async fn serve(listener: TcpListener, http: Arc<Http>, shutdown: impl Future<Output = ()>) {
    let slots = Arc::new(Semaphore::new(http.max_connections.max(1)));
    let per_ip = PerIp::new(http.max_connections_per_ip);
    let refusals = Refusals::new(&http.cors_origin);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // The watchdog times headers (hyper's timer would also cut idle
        // keep-alive connections at the header timeout).
        .header_read_timeout(None)
        .keep_alive(true);
    let timeouts = Timeouts {
        header: http.header_timeout,
        idle: http.idle_timeout,
    };
    // Every connection task holds a receiver; `closed()` on the sender is
    // "all of them are done" (what hyper-util's GracefulShutdown does).
    let (stop, stopped) = watch::channel(());
    tokio::pin!(shutdown);

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // EMFILE and friends: back off rather than spin or die.
                    tracing::warn!(error = %e, "accept failed; backing off");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(ip_slot) = per_ip.enter(peer.ip()) else {
            refuse(&http, &refusals, stream, Refused::PerIp);
            continue;
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(ip_slot);
            refuse(&http, &refusals, stream, Refused::Full);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = Arc::new(Conn {
            http: http.clone(),
            peer,
            track: Tracker::default(),
        });
        tokio::spawn(serve_connection(
            builder.clone(),
            stream,
            conn,
            timeouts,
            stopped.clone(),
            (slot, ip_slot),
        ));
    }

    drop(listener);
    drop(stopped);
    tracing::info!("no longer accepting connections; finishing requests in flight");
    let _ = stop.send(());
    if tokio::time::timeout(DRAIN_TIMEOUT, stop.closed())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still busy after {DRAIN_TIMEOUT:?}; closing them");
    }
}

/// Answers a connection that gets no slot.
fn refuse(http: &Http, refusals: &Refusals, stream: TcpStream, why: Refused) {
    if refusals.refuse(stream) {
        http.metrics.refused(why);
    } else {
        http.metrics.refused(Refused::Unanswered);
    }
}

/// Runs one connection to its end: hyper serves it while the watchdog looks
/// at its [`Tracker`] at each deadline, and a shutdown closes it gracefully.
/// The slots are given back when it ends.
async fn serve_connection(
    builder: http1::Builder,
    stream: TcpStream,
    conn: Arc<Conn>,
    timeouts: Timeouts,
    mut stop: watch::Receiver<()>,
    _slots: (OwnedSemaphorePermit, IpSlot),
) {
    let service = {
        let conn = conn.clone();
        service_fn(move |req: Request<Incoming>| {
            let conn = conn.clone();
            async move {
                conn.track.begin();
                let (resp, body_unread) = conn.http.handle(req, conn.peer).await;
                conn.track.end(body_unread);
                Ok::<_, Infallible>(resp)
            }
        })
    };
    let peer = conn.peer;
    let served = builder.serve_connection(TokioIo::new(Io::new(stream, conn.clone())), service);
    tokio::pin!(served);
    let watchdog = tokio::time::sleep(timeouts.header);
    tokio::pin!(watchdog);
    let mut closing = false;
    let mut stopping = false;
    loop {
        tokio::select! {
            result = served.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                if !closing {
                    closing = true;
                    served.as_mut().graceful_shutdown();
                }
            }
            () = &mut watchdog => {
                let track = &conn.track;
                let now = track.now_ms();
                match verdict(track.seen(), closing, now, timeouts) {
                    Verdict::Wait(at) => watchdog.as_mut().reset(track.at(at)),
                    Verdict::Close => {
                        closing = true;
                        served.as_mut().graceful_shutdown();
                        watchdog.as_mut().reset(track.at(now + 1000));
                    }
                    Verdict::Drop => {
                        tracing::debug!(%peer, "connection closed by its watchdog");
                        return;
                    }
                }
            }
        }
    }
}

/// Resolves on SIGINT or SIGTERM. The handlers are installed when this is
/// called, not when the future is first polled: the "listening on" line is
/// printed before the accept loop polls it, and a SIGTERM sent as soon as that
/// line appears must stop the server cleanly rather than kill it.
/// Must be called inside the tokio runtime.
pub fn shutdown_signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    let (int, term) = {
        use tokio::signal::unix::{signal, SignalKind};
        let listen = |kind: SignalKind, name: &'static str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for {name}");
                None
            }
        };
        (
            listen(SignalKind::interrupt(), "SIGINT"),
            listen(SignalKind::terminate(), "SIGTERM"),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(int) => tracing::info!("SIGINT received; shutting down"),
                () = wait(term) => tracing::info!("SIGTERM received; shutting down"),
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            tracing::info!("SIGINT received; shutting down");
        }
    }
}

/// The address a listener is bound to, for the "listening on" line.
pub fn local_url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}
