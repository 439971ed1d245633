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
//! A single-key operation holds one shard lock, for the duration of one
//! synchronous operation (never across an `.await`). A batch checkout and a
//! purge hold several, taken in ascending shard order (a batch only
//! `try_lock`s a shard below its random start), so no two can deadlock. The
//! waker and names locks are never taken while a shard lock is held.
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
mod lease_tests;
mod leases;
#[cfg(test)]
mod model_tests;
mod names;
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
use names::Names;
pub use names::{DEFAULT_POOL, NAMED_POOL_BASE};
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
    /// Named pools. Read on every request to a named pool; written only when
    /// an account names a new pool. Never held together with a shard lock.
    names: RwLock<Names>,
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
            names: RwLock::new(Names {
                next: NAMED_POOL_BASE,
                ..Names::default()
            }),
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

    /// Blocks a uniformly random free key of `owner`'s under a new lease until
    /// `now + block_ttl`: [`Pools::checkout_batch`] of one key, every event to `emit`.
    pub fn checkout(
        &self,
        owner: AccountId,
        now: Millis,
        emit: &mut dyn FnMut(&PoolEvent),
    ) -> Result<Checkout, PoolError> {
        let emit = std::cell::RefCell::new(emit);
        let mut out = self.checkout_batch(
            owner,
            1,
            self.cfg.block_ttl,
            now,
            &mut |e| (emit.borrow_mut())(e),
            &mut |evs, _| evs.iter().for_each(|e| (emit.borrow_mut())(e)),
        )?;
        Ok(out.remove(0))
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
        let extras = shard.extras(slot);
        Ok(KeyInfo {
            key_id,
            created_at: key.created_at,
            expires_at: key.expires_at,
            blocked: shard.block(slot).filter(|b| b.blocked_until > now),
            cooling_until: shard.cooling_until(slot).filter(|&c| c > now),
            value: extras.and_then(|x| x.value.clone()),
            metadata: extras.and_then(|x| x.metadata.clone()),
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
        self.release_cooling(owner, key_id, lease, 0, now, emit)
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
        let expires_at = now.saturating_add(shard.ttl(slot, self.cfg.key_ttl));
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

    /// Some sealed value or metadata with the key it is bound to (`true`: a
    /// value), to check the master key against at start-up.
    pub fn any_sealed(&self) -> Option<(Uuid, bool, Vec<u8>)> {
        self.shards.iter().find_map(|s| s.lock().any_sealed())
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
        match ev.key_id() {
            Some(key_id) => self.shard_of(key_id).lock().apply(ev),
            None => match ev {
                PoolEvent::Named { .. } => self.names.write().apply(ev),
                _ => {
                    let mut all: Vec<_> = self.shards.iter().map(|s| s.lock()).collect();
                    all.iter_mut().for_each(|s| s.apply(ev));
                }
            },
        }
    }

    /// Copies every key, one shard lock at a time (a fuzzy snapshot: requests
    /// go on meanwhile; replaying the log from before the first copy repairs it).
    pub fn image(&self) -> PoolImage {
        self.image_full().0
    }

    /// [`Pools::image`] with what keys have beyond it, and the pool names.
    pub fn image_full(&self) -> (PoolImage, PoolImageExt) {
        let mut keys = Vec::new();
        let mut ext = Vec::new();
        for shard in self.shards.iter() {
            shard.lock().image_into(&mut keys, &mut ext);
        }
        let names = self
            .names
            .read()
            .by_account
            .iter()
            .flat_map(|(&a, m)| m.iter().map(move |(n, &id)| (a, n.clone(), id)))
            .collect();
        (PoolImage { keys }, PoolImageExt { keys: ext, names })
    }

    /// A pool holding exactly the keys of `image` (with what `ext` adds),
    /// spread over `cfg.shards` (which may differ from the count the image
    /// was taken with).
    pub fn restore(cfg: PoolConfig, image: PoolImage) -> Self {
        Self::restore_full(cfg, image, PoolImageExt::default())
    }

    /// [`Pools::restore`] with the extras, cooldowns and names of `ext`.
    pub fn restore_full(cfg: PoolConfig, image: PoolImage, ext: PoolImageExt) -> Self {
        let pools = Self::new(cfg);
        for (account, name, pool) in ext.names {
            pools.names.write().apply(&PoolEvent::Named {
                account,
                name,
                pool,
            });
        }
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
        for k in ext.keys {
            let Some(owner) = pools.shard_of(k.key_id).lock().lookup_owner(k.key_id) else {
                continue;
            };
            let mut shard = pools.shard_of(k.key_id).lock();
            if let Some(extras) = k.extras {
                shard.set_extras(k.key_id, extras);
            }
            if let Some(until) = k.cooling_until {
                shard.apply(&PoolEvent::Cooling {
                    owner,
                    key_id: k.key_id,
                    until,
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
