//! Start-up: open the log, load the newest valid snapshot, replay the records
//! after it through the same `apply` functions that live changes use, then let
//! time catch up (keys whose lifetime ended while the server was down go, blocks
//! past their release time are freed, due purchases settle).

use std::sync::Arc;

use rand::RngCore;
use tokio::sync::{Notify, Semaphore};

use super::{App, StateImage};
use crate::accounts::Accounts;
use crate::apikeys::ApiKeys;
use crate::clock::Clock;
use crate::codec;
use crate::config::Config;
use crate::event::Event;
use crate::persist::{Fs, Log, LogOptions, PersistError};
use crate::pool::Pools;
use crate::purchase::{Catalog, Purchases, StreamSigner};

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
            segment_bytes: 64 << 20,
        };
        let started = std::time::Instant::now();
        let (log, recovered) = Log::open(opts, fs)?;
        for w in &recovered.warnings {
            tracing::warn!("{w}");
        }

        let pool_cfg = App::pool_config(&config);
        let acc_cfg = App::accounts_config(&config);
        let key_cfg = App::apikeys_config(&config);
        let pur_cfg = App::purchase_config(&config);
        let (pools, accounts, apikeys, purchases) = match &recovered.snapshot {
            Some((lsn, bytes)) => {
                let image: StateImage =
                    codec::decode_snapshot(bytes).map_err(|e| OpenError::Snapshot {
                        lsn: *lsn,
                        reason: e.to_string(),
                    })?;
                (
                    Pools::restore(pool_cfg, image.pools),
                    Accounts::restore(acc_cfg, image.accounts),
                    ApiKeys::restore(key_cfg, image.apikeys),
                    Purchases::restore(pur_cfg, image.purchases),
                )
            }
            None => (
                Pools::new(pool_cfg),
                Accounts::new(acc_cfg),
                ApiKeys::new(key_cfg),
                Purchases::new(pur_cfg),
            ),
        };

        let mut secret = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut secret);
        let reaper_wake = Arc::new(Notify::new());
        let app = App {
            config,
            clock,
            pools,
            accounts,
            apikeys,
            purchases,
            catalog,
            stream_signer: StreamSigner::new(secret),
            log,
            hashing: Semaphore::new(super::max_concurrent_hashes()),
            reaper_wake: reaper_wake.clone(),
            settle_wake: Notify::new(),
        };
        let replayed = recovered.records.len();
        for (lsn, bytes) in &recovered.records {
            let event: Event = codec::decode_record(bytes).map_err(|e| OpenError::Record {
                lsn: *lsn,
                reason: e.to_string(),
            })?;
            app.apply(&event);
        }
        app.pools
            .set_waker(Box::new(move || reaper_wake.notify_one()));
        tracing::info!(
            snapshot = ?recovered.snapshot.as_ref().map(|(lsn, _)| *lsn),
            replayed,
            took_ms = started.elapsed().as_millis() as u64,
            "state recovered"
        );
        Ok(Arc::new(app))
    }

    /// Applies one event to memory: the same code for live changes and replay.
    pub fn apply(&self, event: &Event) {
        match event {
            Event::Pool(e) => self.pools.apply(e),
            Event::Account(e) => self.accounts.apply(e),
            Event::ApiKey(e) => self.apikeys.apply(e),
            Event::Purchase(e) => self.purchases.apply(e),
            Event::Batch(events) => events.iter().for_each(|e| self.apply(e)),
        }
    }
}
