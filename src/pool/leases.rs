//! The second round's pool operations: creation with extras, batch
//! checkout under several shard locks, lease extension, release with a
//! cooldown, and the purge of a whole pool. The single-key seed operations
//! are in `mod.rs`.

use parking_lot::MutexGuard;
use rand::Rng;
use uuid::Uuid;

use super::shard::Shard;
use super::{
    new_uuid, BlockInfo, Checkout, Created, Extended, KeyExtras, PoolError, PoolEvent, Pools,
};
use crate::clock::Millis;
use crate::ids::AccountId;

impl Pools {
    /// Creates key `key_id` (fresh and free) for `owner` with `extras`: its
    /// own lifetime (else `--key-ttl`), and a sealed value and metadata. The
    /// caller picks the id so that it can bind sealed data to it.
    pub fn create_key(
        &self,
        owner: AccountId,
        key_id: Uuid,
        extras: KeyExtras,
        now: Millis,
        emit: &mut dyn FnMut(&PoolEvent),
    ) -> Created {
        let ttl = extras.ttl.unwrap_or(self.cfg.key_ttl);
        let expires_at = now.saturating_add(ttl);
        let ev = if extras.is_empty() {
            PoolEvent::Created {
                owner,
                key_id,
                created_at: now,
                expires_at,
            }
        } else {
            PoolEvent::CreatedWith {
                owner,
                key_id,
                created_at: now,
                expires_at,
                extras,
            }
        };
        self.shard_of(key_id).lock().commit(ev, emit);
        self.note_deadline(expires_at);
        Created { key_id, expires_at }
    }

    /// A fresh random key id.
    pub fn new_key_id() -> Uuid {
        new_uuid()
    }

    /// Checks out up to `want` (at least 1) random free keys of `owner`, each
    /// under its own new lease until `now + block`, as one change: `commit`
    /// gets every checkout event and answer together while the locks of the
    /// shards they came from are still held, so that it can log them as one
    /// record and the log order still follows the apply order for each key.
    /// Events of deadlines that lapsed on the way go to `emit` one by one.
    ///
    /// Starts at a random shard and takes locks in ascending shard order from
    /// there, blocking; shards below the start are only *tried* while other
    /// locks are held (never waited for out of order, so two batches cannot
    /// deadlock), so under contention a batch may come back short, never
    /// empty while it holds a key. O(shards + want).
    pub fn checkout_batch(
        &self,
        owner: AccountId,
        want: usize,
        block: Millis,
        now: Millis,
        emit: &mut dyn FnMut(&PoolEvent),
        commit: &mut dyn FnMut(&[PoolEvent], &[Checkout]),
    ) -> Result<Vec<Checkout>, PoolError> {
        let want = want.max(1);
        let mut rng = rand::thread_rng();
        let n = self.shards.len();
        let start = rng.gen_range(0..n);
        let blocked_until = now.saturating_add(block);
        let mut held: Vec<MutexGuard<'_, Shard>> = Vec::new();
        let mut events = Vec::with_capacity(want.min(8));
        let mut out = Vec::with_capacity(want.min(8));
        for i in 0..n {
            let idx = (start + i) % n;
            let mut shard = if idx >= start || held.is_empty() {
                self.shards[idx].lock()
            } else {
                match self.shards[idx].try_lock() {
                    Some(g) => g,
                    None => continue,
                }
            };
            if !shard.has_keys_of(owner) {
                continue;
            }
            // Lapsed deadlines first, so an expired key is never handed out and
            // a timed-out block is available again even if the reaper is late.
            shard.reap_due(now, emit);
            let mut took = false;
            while out.len() < want {
                let Some(slot) = shard.random_free(owner, &mut rng) else {
                    break;
                };
                let key = *shard.slot(slot);
                let extras = shard.extras(slot);
                let (value, metadata) = extras
                    .map(|x| (x.value.clone(), x.metadata.clone()))
                    .unwrap_or_default();
                let lease_id = new_uuid();
                let ev = PoolEvent::CheckedOut {
                    owner,
                    key_id: key.key_id,
                    lease_id,
                    blocked_at: now,
                    blocked_until,
                };
                shard.apply_at_slot(slot, &ev);
                events.push(ev);
                out.push(Checkout {
                    key_id: key.key_id,
                    lease_id,
                    blocked_until,
                    expires_at: key.expires_at,
                    value,
                    metadata,
                });
                took = true;
            }
            if took {
                held.push(shard);
            }
            if out.len() == want {
                break;
            }
        }
        if out.is_empty() {
            return Err(PoolError::NoAvailableKeys);
        }
        commit(&events, &out);
        drop(held);
        self.note_deadline(blocked_until);
        Ok(out)
    }

    /// [`Pools::release`], with the key handed out again only `cooldown`
    /// from now (0: at once).
    pub fn release_cooling(
        &self,
        owner: AccountId,
        key_id: Uuid,
        lease: Option<Uuid>,
        cooldown: Millis,
        now: Millis,
        emit: &mut dyn FnMut(&PoolEvent),
    ) -> Result<(), PoolError> {
        let mut shard = self.shard_of(key_id).lock();
        self.held_block(&mut shard, owner, key_id, lease, now, emit)?;
        let slot = shard.find(owner, key_id).ok_or(PoolError::NotFound)?;
        if cooldown == 0 {
            shard.commit_at(slot, PoolEvent::Released { owner, key_id }, emit);
            return Ok(());
        }
        let until = now.saturating_add(cooldown);
        let ev = PoolEvent::Cooling {
            owner,
            key_id,
            until,
        };
        shard.commit_at(slot, ev, emit);
        drop(shard);
        self.note_deadline(until);
        Ok(())
    }

    /// The block of a key that release or extend may act on: the key must be
    /// blocked and, when `lease` is given, held under it.
    fn held_block(
        &self,
        shard: &mut Shard,
        owner: AccountId,
        key_id: Uuid,
        lease: Option<Uuid>,
        now: Millis,
        emit: &mut dyn FnMut(&PoolEvent),
    ) -> Result<BlockInfo, PoolError> {
        let slot = shard.find(owner, key_id).ok_or(PoolError::NotFound)?;
        let slot = shard.settle(slot, now, emit).ok_or(PoolError::NotFound)?;
        match (shard.block(slot), lease) {
            (None, None) => Err(PoolError::NotBlocked),
            (None, Some(_)) => Err(PoolError::LeaseMismatch),
            (Some(b), Some(l)) if b.lease_id != l => Err(PoolError::LeaseMismatch),
            (Some(b), _) => Ok(b),
        }
    }

    /// Extends the lease `lease` on a blocked key: it now ends `block` from
    /// `now`. [`PoolError::NotBlocked`] when the key is not blocked at all,
    /// [`PoolError::LeaseMismatch`] when it is held under another lease.
    pub fn extend(
        &self,
        owner: AccountId,
        key_id: Uuid,
        lease: Uuid,
        block: Millis,
        now: Millis,
        emit: &mut dyn FnMut(&PoolEvent),
    ) -> Result<Extended, PoolError> {
        let mut shard = self.shard_of(key_id).lock();
        let slot = shard.find(owner, key_id).ok_or(PoolError::NotFound)?;
        let slot = shard.settle(slot, now, emit).ok_or(PoolError::NotFound)?;
        let b = match shard.block(slot) {
            None => return Err(PoolError::NotBlocked),
            Some(b) if b.lease_id != lease => return Err(PoolError::LeaseMismatch),
            Some(b) => b,
        };
        let blocked_until = now.saturating_add(block);
        let ev = PoolEvent::CheckedOut {
            owner,
            key_id,
            lease_id: lease,
            blocked_at: b.blocked_at,
            blocked_until,
        };
        shard.commit_at(slot, ev, emit);
        drop(shard);
        self.note_deadline(blocked_until);
        Ok(Extended {
            key_id,
            lease_id: lease,
            blocked_until,
        })
    }

    /// Deletes every key of pool `owner`, as one change made while every shard
    /// is locked (so that no key of the pool is created or changed half-way
    /// through). [`PoolError::NoSuchPool`] when the pool holds no key.
    /// O(shards + the pool's keys + blocked and cooling keys).
    pub fn purge(
        &self,
        owner: AccountId,
        emit: &mut dyn FnMut(&PoolEvent),
    ) -> Result<usize, PoolError> {
        // Ascending order, blocking: the order every multi-lock holder uses.
        let mut all: Vec<MutexGuard<'_, Shard>> = self.shards.iter().map(|s| s.lock()).collect();
        if !all.iter().any(|s| s.has_keys_of(owner)) {
            return Err(PoolError::NoSuchPool);
        }
        let removed = all.iter_mut().map(|s| s.purge(owner)).sum();
        emit(&PoolEvent::Purged { owner });
        Ok(removed)
    }
}
