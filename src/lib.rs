//! keypool: an HTTP server that hands out keys to workers.
//!
//! The crate is a library with a thin binary (`main.rs`) so that tests and
//! benchmarks can start the real server in-process on port 0. See
//! ARCHITECTURE.md for the map.

pub mod accounts;
pub mod apikeys;
pub mod app;
pub mod clock;
pub mod codec;
pub mod config;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod idempotency;
pub mod ids;
pub mod persist;
pub mod pool;
pub mod purchase;
pub mod seal;

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

use app::recovery::OpenError;
use app::{App, Tasks};
use clock::SystemClock;
use config::Config;
use persist::RealFs;

/// Recovers the state in `config.data_dir`, calls `ready` (the server answers
/// from then on), serves `listener` until `shutdown` resolves, then finishes the
/// requests in flight, writes a snapshot and closes the log.
pub async fn run(
    config: Config,
    listener: TcpListener,
    ready: impl FnOnce(),
    shutdown: impl Future<Output = ()>,
) -> Result<(), OpenError> {
    let app = tokio::task::spawn_blocking(move || {
        App::open(config, Arc::new(SystemClock), Arc::new(RealFs))
    })
    .await
    .map_err(|e| OpenError::Catalog(format!("start-up task failed: {e}")))??;
    serve_app(app, listener, ready, shutdown).await;
    Ok(())
}

/// Serves an already recovered `app` (tests pass one whose disk is a fault-injecting
/// [`persist::Fs`]) until `shutdown`, then stops its tasks, writes a snapshot and
/// closes the log.
pub async fn serve_app(
    app: Arc<App>,
    listener: TcpListener,
    ready: impl FnOnce(),
    shutdown: impl Future<Output = ()>,
) {
    let tasks = Tasks::start(&app);
    let http = Arc::new(http::Http::new(app.clone()));
    ready();
    let app_for_close = app.clone();
    let shutdown = async move {
        shutdown.await;
        // Long polls answer 503 at once instead of holding the drain up.
        app_for_close.waiters.close();
    };
    http::server::serve(listener, http, shutdown).await;
    tasks.stop(&app).await;
    match app.snapshot().await {
        Ok(lsn) => tracing::info!(covers = lsn, "final snapshot written"),
        Err(e) => {
            tracing::error!(error = %e, "final snapshot failed; the log still holds every change")
        }
    }
    if let Err(e) = app.log.close().await {
        tracing::error!(error = %e, "closing the log failed");
    }
}
