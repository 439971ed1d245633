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
use crate::persist::{master_key, Fs, Log, LogOptions, PersistError};
use crate::purchase::{Catalog, StreamSigner};
use crate::seal::MasterKey;

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
    #[error("{0}")]
    MasterKey(String),
}

/// The AAD a key's sealed value (`value == true`) or metadata is bound to.
pub fn seal_aad(key_id: uuid::Uuid, value: bool) -> [u8; 17] {
    let mut aad = [0u8; 17];
    aad[..16].copy_from_slice(key_id.as_bytes());
    aad[16] = if value { b'v' } else { b'm' };
    aad
}

/// The master key: from `KEYPOOL_MASTER_KEY`, else from the key file, else a
/// new one written to the key file, but only when nothing sealed exists yet
/// (a missing key for sealed data stops start-up instead). The key is checked
/// against one sealed value of `state`, so a wrong key stops start-up before
/// anything is served or changed.
fn master_key(config: &Config, state: &State) -> Result<MasterKey, OpenError> {
    let path = config
        .master_key_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join("master.key"));
    let sealed = state.pools.any_sealed();
    let key = match &config.master_key {
        Some(text) => MasterKey::from_base64(&text.0).map_err(|e| {
            OpenError::MasterKey(format!("KEYPOOL_MASTER_KEY is not a usable key: {e}"))
        })?,
        None => match master_key::read(&path).map_err(|e| {
            OpenError::MasterKey(format!("cannot read the master key file {}: {e}", path.display()))
        })? {
            Some(text) => MasterKey::from_base64(&text).map_err(|e| {
                OpenError::MasterKey(format!("the master key file {} is not a usable key: {e}", path.display()))
            })?,
            None if sealed.is_some() => {
                return Err(OpenError::MasterKey(format!(
                    "the data in {} holds encrypted key values, but the master key file {} is missing; restore it (or set KEYPOOL_MASTER_KEY) and start again. Nothing was changed.",
                    config.data_dir.display(),
                    path.display()
                )))
            }
            None => {
                let (key, text) = MasterKey::generate();
                master_key::create(&path, &text).map_err(|e| {
                    OpenError::MasterKey(format!("cannot create the master key file {}: {e}", path.display()))
                })?;
                tracing::info!(path = %path.display(), "created a new master key");
                key
            }
        },
    };
    if let Some((key_id, value, blob)) = sealed {
        if key.open(&seal_aad(key_id, value), &blob).is_err() {
            return Err(OpenError::MasterKey(format!(
                "the master key ({}) does not decrypt the key values in {}; start with the key they were written with. Nothing was changed.",
                if config.master_key.is_some() { "KEYPOOL_MASTER_KEY".to_owned() } else { path.display().to_string() },
                config.data_dir.display()
            )));
        }
    }
    Ok(key)
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
        let master_key = master_key(&config, &state)?;

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
            master_key,
            waiters: super::waiters::Waiters::default(),
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
