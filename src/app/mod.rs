//! The service layer: where the domain cores meet the write-ahead log.
//!
//! [`App`] owns every domain (`pool`, `accounts`, `apikeys`, `purchase`) and the
//! [`Log`]. A change is made by [`App::write`]: the domain applies the event and
//! hands it to a [`Recorder`] while it still holds the lock that ordered it; the
//! recorder appends it to the log; `write` returns only once the log says the
//! last record is durable. The HTTP layer answers after that, so an
//! acknowledged change is in the log.
//!
//! `App` knows nothing of HTTP. Its background tasks (reaper, settler, usage
//! flusher, snapshotter) live in `tasks.rs`; start-up recovery in `recovery.rs`.

pub mod recovery;
mod state;
mod tasks;
pub mod waiters;

#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod model_tests_keys;

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use tokio::sync::{Notify, Semaphore};

use crate::accounts::AccountsConfig;
use crate::apikeys::ApiKeysConfig;
use crate::clock::{millis, Clock, Millis};
use crate::codec;
use crate::config::Config;
use crate::event::{Event, EventRef};
use crate::persist::{Log, Lsn, PersistError, RETRY};
use crate::pool::{PoolConfig, PoolEvent};
use crate::purchase::{Catalog, PurchaseConfig, StreamSigner};
use crate::seal::MasterKey;
use crate::security::{Happened, Kind, SecurityEvent, SecurityLog};

pub use state::{State, StateImage};
pub use tasks::Tasks;

/// How many argon2 hashes may run at once: one fewer than the cores (at least
/// one). Each takes ~19 MiB and a whole core for tens of milliseconds, so logins
/// queue here instead of starving pool traffic of CPU.
pub fn max_concurrent_hashes() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get().saturating_sub(1))
        .unwrap_or(1)
        .max(1)
}

/// Makes the calling thread yield the CPU to the rest of the process (nice 10),
/// for background work whose latency nobody waits on. Best effort: where the OS
/// says no, the thread keeps its priority.
fn lower_this_threads_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: plain system calls on the calling thread's own id; no memory is shared.
    unsafe {
        let tid = libc::gettid();
        if libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 10) != 0 {
            tracing::debug!("could not lower the snapshot thread's priority");
        }
    }
}

/// Why a change was not made. Either way nothing of it stays: not in memory,
/// not in the log, not after a restart.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The log cannot write; the change was refused before anything changed.
    #[error("the write-ahead log is unavailable: {0}")]
    Unavailable(PersistError),
    /// The change was applied, but the log could not write it; the state was
    /// rolled back to what is durable, without it.
    #[error("the write-ahead log dropped the change after a failed write")]
    Undone,
}

impl From<PersistError> for WriteError {
    fn from(e: PersistError) -> Self {
        match e {
            PersistError::Dropped => WriteError::Undone,
            e => WriteError::Unavailable(e),
        }
    }
}

/// Everything the server knows, and the log that makes it durable.
pub struct App {
    /// The command line the server was started with.
    pub config: Config,
    /// The time source every domain call is given.
    pub clock: Arc<dyn Clock>,
    /// Every domain. Replaced whole (never changed in place by anything but
    /// domain operations) when a failed log write makes the server fall back to
    /// what is durable; load it once per request with [`App::state`].
    state: ArcSwap<State>,
    /// The videos for sale.
    pub catalog: Catalog,
    /// Signs the short-lived URLs that stream a bought video. The secret is new
    /// at every start, so a restart invalidates outstanding stream URLs (they
    /// last minutes; the page asks for a fresh one).
    pub stream_signer: StreamSigner,
    /// The write-ahead log.
    pub log: Log,
    /// Bounds concurrent argon2 work (see [`max_concurrent_hashes`]).
    pub hashing: Semaphore,
    /// Wakes the reaper when a deadline earlier than the one it sleeps towards appears.
    reaper_wake: Arc<Notify>,
    /// Wakes the settler when a purchase starts.
    settle_wake: Notify,
    /// Seals key values and metadata (and kept idempotent answers) at rest.
    pub master_key: MasterKey,
    /// Long-poll checkouts waiting for a key, per pool.
    pub waiters: waiters::Waiters,
}

/// Collects the log position of the events one change emits.
pub struct Recorder<'a> {
    log: &'a Log,
    /// The epoch of the state the change is applied to.
    epoch: u64,
    last: Option<Lsn>,
    failed: Option<PersistError>,
    /// The pools in which this change freed a key (for long-poll waiters):
    /// the first inline, the rest (rare) in a vector.
    freed: Option<crate::ids::AccountId>,
    more_freed: Vec<crate::ids::AccountId>,
    /// Between [`Recorder::begin_batch`] and [`Recorder::end_batch`]: the
    /// events held back to be logged as one record.
    batch: Option<Vec<Event>>,
}

impl Recorder<'_> {
    /// Appends one event to the log. Called by domain code under its lock.
    pub fn record(&mut self, event: EventRef<'_>) {
        self.note_freed(event);
        if let Some(held) = &mut self.batch {
            held.push(event.to_owned());
            return;
        }
        let bytes = match codec::encode(&event) {
            Ok(b) => b,
            Err(e) => {
                // Our own types always encode; if one ever does not, refuse to
                // acknowledge rather than acknowledge something not logged.
                tracing::error!(error = %e, "cannot encode an event");
                self.failed = Some(PersistError::Unavailable);
                return;
            }
        };
        match self.log.append_in(self.epoch, &bytes) {
            Ok(lsn) => self.last = Some(lsn),
            Err(e) => self.failed = Some(e),
        }
    }
}

impl Recorder<'_> {
    /// Notes the pool of a key this event frees, also inside a batch (an
    /// idempotent creation is logged with its kept answer as one batch, and
    /// its key must wake waiters too).
    fn note_freed(&mut self, event: EventRef<'_>) {
        match event {
            EventRef::Pool(
                PoolEvent::Created { owner, .. }
                | PoolEvent::CreatedWith { owner, .. }
                | PoolEvent::Released { owner, .. },
            ) => match self.freed {
                None => self.freed = Some(*owner),
                Some(o) if o == *owner => {}
                // A batch's events are seen when held back and again when logged.
                Some(_) if self.more_freed.contains(owner) => {}
                Some(_) => self.more_freed.push(*owner),
            },
            EventRef::Batch(events) => {
                for e in events {
                    self.note_freed(EventRef::from(e));
                }
            }
            _ => {}
        }
    }

    /// From now on, events are held back until [`Recorder::end_batch`] logs
    /// them as one record. For changes whose entities no other request can
    /// reach before the change is answered (a new API key, a new purchase),
    /// so that logging them after their locks were released keeps the log
    /// order of every entity.
    pub fn begin_batch(&mut self) {
        self.batch = Some(Vec::new());
    }

    /// Logs the held-back events and `extra` as one record (nothing if both
    /// are empty).
    pub fn end_batch(&mut self, extra: Option<Event>) {
        let mut events = self.batch.take().unwrap_or_default();
        events.extend(extra);
        match events.len() {
            0 => {}
            1 => self.record(EventRef::from(&events[0])),
            _ => self.record(EventRef::Batch(&events)),
        }
    }
}

/// A security entry to log with the first event of a change
/// ([`Recorder::record_noting`]).
pub struct Note {
    /// Whose log it goes to.
    pub account: crate::ids::AccountId,
    /// What happened.
    pub kind: Kind,
    /// Its address, key and detail.
    pub what: Happened,
}

impl Recorder<'_> {
    /// Logs `event` and the security entries `note` logs (through the
    /// emitter it is given) as one record, so that a crash keeps both or
    /// neither. Called under the lock that ordered `event`, like
    /// [`Recorder::record`]: the security log's lock is a leaf.
    pub fn record_noted(
        &mut self,
        event: EventRef<'_>,
        note: impl FnOnce(&mut dyn FnMut(&SecurityEvent)),
    ) {
        let mut events = vec![event.to_owned()];
        note(&mut |s| events.push(Event::Security(s.clone())));
        match events.len() {
            1 => self.record(event),
            _ => self.record(EventRef::Batch(&events)),
        }
    }

    /// [`Recorder::record_noted`] for the first event of a change (`note`
    /// is taken then), [`Recorder::record`] for the others.
    pub fn record_noting(
        &mut self,
        event: EventRef<'_>,
        note: &mut Option<Note>,
        log: &SecurityLog,
        now: Millis,
    ) {
        match note.take() {
            None => self.record(event),
            Some(n) => self.record_noted(event, |emit| {
                log.log(n.account, n.kind, n.what, now, emit);
            }),
        }
    }
}

impl App {
    /// The current time.
    pub fn now(&self) -> Millis {
        self.clock.now()
    }

    /// The current state. Cheap (no shared counter is touched); keep the guard
    /// for one synchronous piece of work, not across an `.await`.
    pub fn state(&self) -> Guard<Arc<State>> {
        self.state.load()
    }

    /// Makes a change: runs `op` on the current state (it calls a domain
    /// operation and passes each event it emits to the recorder), then waits
    /// until the log has made those events durable. Refuses before changing
    /// anything while the log cannot write.
    pub async fn write<R>(
        &self,
        op: impl FnOnce(&State, &mut Recorder<'_>) -> R,
    ) -> Result<R, WriteError> {
        self.log.check_writable()?;
        let (out, last) = {
            // The guard is dropped before the await below.
            let state = self.state.load();
            let mut rec = Recorder {
                log: &self.log,
                epoch: state.epoch,
                last: None,
                failed: None,
                freed: None,
                more_freed: Vec::new(),
                batch: None,
            };
            let out = op(&state, &mut rec);
            if let Some(e) = rec.failed {
                return Err(e.into());
            }
            // Waiters may take the freed keys now: their own checkouts are
            // logged after this change, so they cannot be durable before it.
            for pool in rec.freed.iter().chain(&rec.more_freed) {
                self.waiters.freed(*pool);
            }
            (out, rec.last.map(|lsn| (rec.epoch, lsn)))
        };
        if let Some((epoch, lsn)) = last {
            self.log.durable_in(epoch, lsn).await?;
        }
        Ok(out)
    }

    /// Logs what `op` records without waiting for it to be durable: for the
    /// security notes of the authentication path (a key's new address, a
    /// rate limit, spent credits), which is synchronous. Everything `op`
    /// records is one record. Answers its epoch and position, for the
    /// request to wait on before it answers ([`crate::persist::Log::durable_in`]);
    /// `None` when nothing was recorded, or when the log cannot write (then
    /// `op` is not run and nothing changes: the note is lost, the request is
    /// not refused for it).
    pub fn note(&self, op: impl FnOnce(&State, &mut Recorder<'_>)) -> Option<(u64, Lsn)> {
        self.log.check_writable().ok()?;
        let state = self.state.load();
        let mut rec = Recorder {
            log: &self.log,
            epoch: state.epoch,
            last: None,
            failed: None,
            freed: None,
            more_freed: Vec::new(),
            batch: None,
        };
        rec.begin_batch();
        op(&state, &mut rec);
        rec.end_batch(None);
        if let Some(e) = rec.failed {
            tracing::warn!(error = %e, "a security note could not be logged");
            return None;
        }
        rec.last.map(|lsn| (rec.epoch, lsn))
    }

    /// Connects `state` to the background tasks (the reaper's wake-up).
    fn wire(&self, state: &State) {
        let wake = self.reaper_wake.clone();
        state.pools.set_waker(Box::new(move || wake.notify_one()));
    }

    /// Makes `state` the current one after a fall-back.
    fn install(&self, state: State) {
        self.wire(&state);
        self.state.store(Arc::new(state));
        self.reaper_wake.notify_one();
        self.settle_wake.notify_one();
    }

    /// After a failed log write: rebuilds the state from what is durable (the
    /// snapshot and the log through its durable end, by the start-up code),
    /// swaps it in, answers the requests whose changes were dropped, and
    /// resumes the log once the disk lets it. Retries each step until it
    /// works or `stop` says to stop.
    pub async fn fall_back(&self, stop: &mut tokio::sync::watch::Receiver<bool>) {
        loop {
            let log = self.log.clone();
            let config = self.config.clone();
            let epoch = log.epoch() + 1;
            let started = std::time::Instant::now();
            let rebuilt = tokio::task::spawn_blocking(move || {
                let recovered = log.read_durable().map_err(|e| e.to_string())?;
                State::recover(&config, &recovered, epoch).map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(format!("the rebuild task failed: {e}")));
            match rebuilt {
                Ok(state) => {
                    self.install(state);
                    self.log.rolled_back();
                    tracing::warn!(
                        took_ms = started.elapsed().as_millis() as u64,
                        "state rolled back to what the log holds durably"
                    );
                    break;
                }
                Err(e) => {
                    // Nobody waits on this: the dropped changes stay dropped.
                    self.log.release_dropped();
                    tracing::error!("cannot rebuild the state from the disk yet: {e}");
                }
            }
            if tasks::sleep_or_stop(RETRY, stop).await {
                return;
            }
        }
        loop {
            match self.log.resume() {
                Ok(()) => return,
                Err(e) => tracing::warn!("the log cannot resume yet: {e}"),
            }
            if tasks::sleep_or_stop(RETRY, stop).await {
                return;
            }
        }
    }

    /// Tells the settler a purchase is waiting.
    pub fn purchase_started(&self) {
        self.settle_wake.notify_one();
    }

    /// Copies the whole state, one lock at a time.
    pub fn image(&self) -> StateImage {
        self.state.load().image()
    }

    /// Takes a snapshot: marks the log position it covers, copies the state
    /// (requests go on meanwhile; see `event.rs` on why a fuzzy copy is safe),
    /// and writes it off the async runtime.
    pub async fn snapshot(self: &Arc<Self>) -> Result<Lsn, PersistError> {
        let covers = self.log.begin_snapshot()?;
        let app = self.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        // A thread of its own at a lower CPU priority: copying, encoding and
        // writing a million keys takes a core for a few hundred milliseconds,
        // and on a busy machine requests should win that core.
        let spawned = std::thread::Builder::new()
            .name("keypool-snapshot".into())
            .spawn(move || {
                lower_this_threads_priority();
                let result = codec::encode(&app.image())
                    .map_err(|e| {
                        tracing::error!(error = %e, "cannot encode the snapshot");
                        PersistError::Unavailable
                    })
                    .and_then(|bytes| app.log.write_snapshot(covers, &bytes));
                let _ = tx.send(result);
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the snapshot thread");
            return Err(PersistError::Unavailable);
        }
        match rx.await {
            Ok(r) => r.map(|()| covers),
            Err(_) => {
                tracing::error!("the snapshot thread died");
                Err(PersistError::Unavailable)
            }
        }
    }

    /// `--key-ttl` in milliseconds.
    pub fn key_ttl(&self) -> Millis {
        millis(self.config.key_ttl)
    }

    /// `--block-ttl` in milliseconds.
    pub fn pools_block_ttl(&self) -> Millis {
        millis(self.config.block_ttl)
    }

    pub(crate) fn pool_config(config: &Config) -> PoolConfig {
        PoolConfig {
            key_ttl: millis(config.key_ttl),
            block_ttl: millis(config.block_ttl),
            shards: 32,
        }
    }

    pub(crate) fn accounts_config(config: &Config) -> AccountsConfig {
        AccountsConfig {
            session_max_uses: config.session_max_uses,
            session_ttl: millis(config.session_ttl),
            min_password_len: config.min_password_len,
            signup_credits: config.signup_credits,
        }
    }

    pub(crate) fn apikeys_config(config: &Config) -> ApiKeysConfig {
        ApiKeysConfig {
            keys_per_day: config.keys_per_day,
        }
    }

    pub(crate) fn purchase_config(config: &Config) -> PurchaseConfig {
        PurchaseConfig {
            payment_delay: millis(config.payment_delay),
            max_pin_failures: 5,
            pin_window: 15 * 60 * 1000,
        }
    }
}
