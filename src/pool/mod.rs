//! The key pool (seed 002): workers create keys, check out a random free key
//! exclusively under a fresh lease, release it, keep it alive and delete it.
//!
//! This module is plain Rust: it never does I/O, never reads the clock (every
//! operation takes `now`), and knows nothing of HTTP or tokio. Every change is
//! a [`PoolEvent`] that is applied with the same [`Pools::apply`] that replay
//! uses and then handed to the caller's `emit` while the shard lock that
//! ordered it is still held, so the log order matches the apply order for
//! every key.
//!
//! # Layout
//!
//! One global structure for all owners, lock-striped: a key lives in shard
//! `hash(key_id) % shards`, each shard behind its own `parking_lot::Mutex`
//! (see `shard.rs` for what a shard holds). Key ids are random v4 uuids, so
//! keys spread evenly and no single lock serialises the hot path. A key
//! records its owner; an operation by one owner on another owner's key answers
//! [`PoolError::NotFound`] exactly as for a missing key.
//!
//! # Locks
//!
//! At most one shard lock is held at a time, only for the duration of one
//! synchronous operation (never across an `.await`). The waker lock is taken
//! only after the shard lock is released.
//!
//! # Deadlines
//!
//! Every operation on a key first *settles* it at `now`: an expired key is
//! deleted (a `Deleted` event) and the operation answers `NotFound`; a block
//! whose time is up is released (a `Released` event). Checkout first reaps the
//! due deadlines of each shard it visits. So answers are exact even when the
//! background reaper ([`Pools::reap`]) is late; only [`Pools::stats`],
//! [`Pools::totals`] and [`Pools::get`] (which have no `emit`) wait for the
//! reaper to record what has lapsed (`get` reports the settled view anyway).

mod deadlines;
mod hash;
mod index;
#[cfg(test)]
mod model_tests;
#[cfg(test)]
mod replay_tests;
mod shard;
#[cfg(test)]
mod tests;
mod types;

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use rand::Rng;
use uuid::Uuid;

use crate::clock::Millis;
use crate::ids::AccountId;
use shard::Shard;
pub use types::*;

/// All key pools of all owners. `Send + Sync`; share it behind an `Arc`.
pub struct Pools {
    cfg: PoolConfig,
    /// The lock stripes. Each lock is held for one synchronous operation at a
    /// time, never across an `.await`, and never together with another.
    shards: Box<[Mutex<Shard>]>,
    /// When the reaper plans to wake (`u64::MAX`: not planned). Operations that
    /// add an earlier deadline lower it and call the waker.
    hint: AtomicU64,
    /// Called when a deadline earlier than `hint` appears (e.g. `Notify::notify_one`).
    waker: RwLock<Option<Box<dyn Fn() + Send + Sync>>>,
}

impl std::fmt::Debug for Pools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pools")
            .field("cfg", &self.cfg)
            .field("totals", &self.totals())
            .finish_non_exhaustive()
    }
}

/// A random v4 uuid from the thread's CSPRNG (cheaper than a syscall per id).
fn new_uuid() -> Uuid {
    uuid::Builder::from_random_bytes(rand::thread_rng().gen()).into_uuid()
}

impl Pools {
    /// An empty pool.
    pub fn new(cfg: PoolConfig) -> Self {
        let n = cfg.shards.max(1);
        Self {
            cfg: PoolConfig { shards: n, ..cfg },
            shards: (0..n).map(|_| Mutex::new(Shard::default())).collect(),
            hint: AtomicU64::new(u64::MAX),
            waker: RwLock::new(None),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> PoolConfig {
        self.cfg
    }

    fn shard_of(&self, key_id: Uuid) -> &Mutex<Shard> {
        let v = key_id.as_u128();
        let h = (v as u64) ^ ((v >> 64) as u64);
        &self.shards[(h % self.shards.len() as u64) as usize]
    }

    /// Creates a key for `owner`, fresh and free, expiring `key_ttl` from now.
    pub fn create(
        &self,
        owner: AccountId,
        now: Millis,
        emit: &mut dyn FnMut(&PoolEvent),
    ) -> Created {
        let key_id = new_uuid();
        let expires_at = now.saturating_add(self.cfg.key_ttl);
        let ev = PoolEvent::Created {
            owner,
            key_id,
            created_at: now,
            expires_at,
        };
        self.shard_of(key_id).lock().commit(ev, emit);
        self.note_deadline(expires_at);
        Created { key_id, expires_at }
    }

    /// Blocks a uniformly random free key of `owner`'s within a shard, under
    /// a new lease, until `now + block_ttl`. Starts at a random shard and goes
    /// round the ring until one has a free key: O(shards), never a scan of keys.
    pub fn checkout(
        &self,
        owner: AccountId,
        now: Millis,
        emit: &mut dyn FnMut(&PoolEvent),
    ) -> Result<Checkout, PoolError> {
        let mut rng = rand::thread_rng();
        let n = self.shards.len();
        let start = rng.gen_range(0..n);
        for i in 0..n {
            let mut shard = self.shards[(start + i) % n].lock();
            if !shard.has_keys_of(owner) {
                continue;
            }
            // Lapsed deadlines first, so an expired key is never handed out and
            // a timed-out block is available again even if the reaper is late.
            shard.reap_due(now, emit);
            let Some(slot) = shard.random_free(owner, &mut rng) else {
                continue;
            };
            let key = *shard.slot(slot);
            let lease_id = new_uuid();
            let blocked_until = now.saturating_add(self.cfg.block_ttl);
            let ev = PoolEvent::CheckedOut {
                owner,
                key_id: key.key_id,
                lease_id,
                blocked_at: now,
                blocked_until,
            };
            shard.commit_at(slot, ev, emit);
            drop(shard);
            self.note_deadline(blocked_until);
            return Ok(Checkout {
                key_id: key.key_id,
                lease_id,
                blocked_until,
                expires_at: key.expires_at,
            });
        }
        Err(PoolError::NoAvailableKeys)
    }

    /// One key of `owner`'s as it stands at `now`. Has no `emit`, so it changes
    /// nothing: a lapsed key or block is *reported* as settled (missing, or
    /// free) and left for the reaper or the next changing operation to record.
    pub fn get(&self, owner: AccountId, key_id: Uuid, now: Millis) -> Result<KeyInfo, PoolError> {
        let shard = self.shard_of(key_id).lock();
        let slot = shard.find(owner, key_id).ok_or(PoolError::NotFound)?;
        let key = shard.slot(slot);
        if key.expires_at <= now {
            return Err(PoolError::NotFound);
        }
        Ok(KeyInfo {
            key_id,
            created_at: key.created_at,
            expires_at: key.expires_at,
            blocked: shard.block(slot).filter(|b| b.blocked_until > now),
        })
    }

    /// Makes a blocked key free again. With `lease`, the key must be held under
    /// that lease now ([`PoolError::LeaseMismatch`] otherwise, also when it is
    /// not blocked at all); without, it must be blocked ([`PoolError::NotBlocked`]).
    pub fn release(
        &self,
        owner: AccountId,
        key_id: Uuid,
        lease: Option<Uuid>,
        now: Millis,
        emit: &mut dyn FnMut(&PoolEvent),
    ) -> Result<(), PoolError> {
        let mut shard = self.shard_of(key_id).lock();
        let slot = shard.find(owner, key_id).ok_or(PoolError::NotFound)?;
        let slot = shard.settle(slot, now, emit).ok_or(PoolError::NotFound)?;
        match (shard.block(slot), lease) {
            (None, None) => Err(PoolError::NotBlocked),
            (None, Some(_)) => Err(PoolError::LeaseMismatch),
            (Some(b), Some(l)) if b.lease_id != l => Err(PoolError::LeaseMismatch),
            (Some(_), _) => {
                shard.commit_at(slot, PoolEvent::Released { owner, key_id }, emit);
                Ok(())
            }
        }
    }

    /// Deletes a key. With `lease`, the key must be held under that lease now
    /// ([`PoolError::LeaseMismatch`] otherwise).
    pub fn delete(
        &self,
        owner: AccountId,
        key_id: Uuid,
        lease: Option<Uuid>,
        now: Millis,
        emit: &mut dyn FnMut(&PoolEvent),
    ) -> Result<(), PoolError> {
        let mut shard = self.shard_of(key_id).lock();
        let slot = shard.find(owner, key_id).ok_or(PoolError::NotFound)?;
        let slot = shard.settle(slot, now, emit).ok_or(PoolError::NotFound)?;
        if let Some(l) = lease {
            if shard.block(slot).map(|b| b.lease_id) != Some(l) {
                return Err(PoolError::LeaseMismatch);
            }
        }
        shard.commit_at(slot, PoolEvent::Deleted { owner, key_id }, emit);
        Ok(())
    }

    /// Restarts a key's lifetime: it now expires `key_ttl` from `now`. A blocked
    /// key stays blocked. Answers the new `expires_at`.
    pub fn keepalive(
        &self,
        owner: AccountId,
        key_id: Uuid,
        now: Millis,
        emit: &mut dyn FnMut(&PoolEvent),
    ) -> Result<Millis, PoolError> {
        let mut shard = self.shard_of(key_id).lock();
        let slot = shard.find(owner, key_id).ok_or(PoolError::NotFound)?;
        let slot = shard.settle(slot, now, emit).ok_or(PoolError::NotFound)?;
        let expires_at = now.saturating_add(self.cfg.key_ttl);
        let ev = PoolEvent::KeptAlive {
            owner,
            key_id,
            expires_at,
        };
        shard.commit_at(slot, ev, emit);
        drop(shard);
        self.note_deadline(expires_at);
        Ok(expires_at)
    }

    /// `owner`'s counts, as of the reaper's last pass. O(shards).
    pub fn stats(&self, owner: AccountId) -> Stats {
        let mut sum = Stats::default();
        for shard in self.shards.iter() {
            sum += shard.lock().stats(owner);
        }
        sum
    }

    /// The counts over all owners (for `/metrics`). O(shards).
    pub fn totals(&self) -> Stats {
        let mut sum = Stats::default();
        for shard in self.shards.iter() {
            sum += shard.lock().totals();
        }
        sum
    }

    /// The earliest live deadline (a key's expiry or a block's end) over all
    /// shards, or `None` when the pool has no keys.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.shards
            .iter()
            .filter_map(|shard| shard.lock().next_deadline())
            .min()
    }

    /// Deletes every key with `expires_at <= now` and releases every block with
    /// `blocked_until <= now`, emitting a `Deleted` or `Released` for each.
    /// Takes one shard lock at a time.
    pub fn reap(&self, now: Millis, emit: &mut dyn FnMut(&PoolEvent)) -> Reaped {
        let mut sum = Reaped::default();
        for shard in self.shards.iter() {
            sum += shard.lock().reap_due(now, emit);
        }
        sum
    }

    /// Applies a logged event (replay). Never reads the clock; re-applying any
    /// suffix of a key's events is harmless. Events about missing keys (other
    /// than `Created`) do nothing.
    pub fn apply(&self, ev: &PoolEvent) {
        self.shard_of(ev.key_id()).lock().apply(ev);
    }

    /// Copies every key, one shard lock at a time (a fuzzy snapshot: requests
    /// go on meanwhile; replaying the log from before the first copy repairs it).
    pub fn image(&self) -> PoolImage {
        let mut keys = Vec::new();
        for shard in self.shards.iter() {
            shard.lock().image_into(&mut keys);
        }
        PoolImage { keys }
    }

    /// A pool holding exactly the keys of `image`, spread over `cfg.shards`
    /// (which may differ from the count the image was taken with).
    pub fn restore(cfg: PoolConfig, image: PoolImage) -> Self {
        let pools = Self::new(cfg);
        for k in image.keys {
            let mut shard = pools.shard_of(k.key_id).lock();
            shard.apply(&PoolEvent::Created {
                owner: k.owner,
                key_id: k.key_id,
                created_at: k.created_at,
                expires_at: k.expires_at,
            });
            if let Some(b) = k.blocked {
                shard.apply(&PoolEvent::CheckedOut {
                    owner: k.owner,
                    key_id: k.key_id,
                    lease_id: b.lease_id,
                    blocked_at: b.blocked_at,
                    blocked_until: b.blocked_until,
                });
            }
        }
        // The image lists keys in slab order, so their deadlines went mostly
        // to the fallback heaps; sort them into the FIFOs once.
        for shard in pools.shards.iter() {
            shard.lock().normalize_queues();
        }
        pools
    }

    /// Sets the function called when an operation adds a deadline earlier than
    /// the reaper's planned wake-up (e.g. `move || notify.notify_one()`). It is
    /// called without any pool lock held and must not block.
    pub fn set_waker(&self, f: Box<dyn Fn() + Send + Sync>) {
        *self.waker.write() = Some(f);
    }

    /// The reaper's planned wake-up time (`u64::MAX`: none). Operations that add
    /// an earlier deadline lower it with `fetch_min` and call the waker.
    ///
    /// The reaper must publish its plan in this order, or a deadline added while
    /// it computes can be missed: `store(u64::MAX)`, then `next_deadline()`, then
    /// `fetch_min(next)`, then sleep until the (possibly lower) stored value or
    /// until woken. [`Pools::plan_wake`] does exactly that; prefer it.
    pub fn earlier_deadline_hint(&self) -> &AtomicU64 {
        &self.hint
    }

    /// For the reaper: publishes and answers when it should next wake (`None`:
    /// nothing to wait for; sleep until woken). A deadline added concurrently is
    /// either included or triggers the waker, so with a `Notify` (which keeps a
    /// permit) no wake-up is lost.
    pub fn plan_wake(&self) -> Option<Millis> {
        self.hint.store(u64::MAX, Ordering::SeqCst);
        let next = self.next_deadline().unwrap_or(u64::MAX);
        let planned = self.hint.fetch_min(next, Ordering::SeqCst).min(next);
        (planned != u64::MAX).then_some(planned)
    }

    /// Called after a deadline `due` was added (with the shard lock released).
    fn note_deadline(&self, due: Millis) {
        if due >= self.hint.load(Ordering::SeqCst) {
            return;
        }
        if due < self.hint.fetch_min(due, Ordering::SeqCst) {
            if let Some(wake) = self.waker.read().as_ref() {
                wake();
            }
        }
    }
}
