//! Start-up: open the log, load the newest valid snapshot, replay the records
//! after it through the same `apply` functions that live changes use, then let
//! time catch up (keys whose lifetime ended while the server was down go, blocks
//! past their release time are freed, due purchases settle).

use std::sync::Arc;

use rand::RngCore;
use tokio::sync::{Notify, Semaphore};

use arc_swap::ArcSwap;

use super::{App, State};
use crate::clock::Clock;
use crate::config::Config;
use crate::persist::{Fs, Log, LogOptions, PersistError};
use crate::purchase::{Catalog, StreamSigner};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(transparent)]
    Persist(#[from] PersistError),
    #[error("the snapshot covering log position {lsn} cannot be decoded ({reason}); move it aside to start from the previous snapshot and the log")]
    Snapshot { lsn: u64, reason: String },
    #[error("log record {lsn} passed its checksum but cannot be decoded ({reason}); it was written by an incompatible version")]
    Record { lsn: u64, reason: String },
    #[error("cannot load the catalog: {0}")]
    Catalog(String),
}

impl App {
    /// Recovers the state in `config.data_dir` and opens the log after it.
    pub fn open(
        config: Config,
        clock: Arc<dyn Clock>,
        fs: Arc<dyn Fs>,
    ) -> Result<Arc<App>, OpenError> {
        let catalog = match &config.catalog {
            Some(path) => {
                Catalog::from_json_file(path).map_err(|e| OpenError::Catalog(e.to_string()))?
            }
            None => Catalog::builtin(),
        };
        let opts = LogOptions {
            dir: config.data_dir.clone(),
            fsync: config.fsync,
            repair: config.repair,
            segment_bytes: crate::persist::DEFAULT_SEGMENT_BYTES,
            preallocate: crate::persist::DEFAULT_PREALLOCATE,
        };
        let started = std::time::Instant::now();
        let (log, recovered) = Log::open(opts, fs)?;
        for w in &recovered.warnings {
            tracing::warn!("{w}");
        }

        let state = State::recover(&config, &recovered, 0)?;

        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let reaper_wake = Arc::new(Notify::new());
        let app = App {
            config,
            clock,
            state: ArcSwap::from_pointee(state),
            catalog,
            stream_signer: StreamSigner::new(secret),
            log,
            hashing: Semaphore::new(super::max_concurrent_hashes()),
            reaper_wake,
            settle_wake: Notify::new(),
        };
        app.wire(&app.state());
        let replayed = recovered.records.len();
        tracing::info!(
            snapshot = ?recovered.snapshot.as_ref().map(|(lsn, _)| *lsn),
            replayed,
            took_ms = started.elapsed().as_millis() as u64,
            "state recovered"
        );
        Ok(Arc::new(app))
    }
}
