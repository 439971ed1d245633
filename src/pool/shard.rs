//! One shard of the key pool: the keys whose id hashes to it, with their free
//! lists, counts, block records and deadline queues, all behind the one
//! `parking_lot::Mutex` that [`super::Pools`] keeps for the shard.
//!
//! Layout, chosen for the memory target (≤ 150 bytes per key at 1,000,000 keys):
//! keys live in a slab (`slots`, a `Vec`) and everything else refers to them by
//! their `u32` slot number, so the id index costs 8 bytes a bucket (see
//! `index.rs`), a free-list
//! entry 4 bytes and a deadline-queue entry 16 bytes. A slot records the
//! owner, the two timestamps, a generation (bumped whenever the slot loses its
//! key) and `pos`, which says at once whether the key is free (its index in the
//! owner's free list), blocked, or whether the slot is vacant. Block details
//! live only in `blocked`, so free keys don't pay for them.
//!
//! The two deadline queues ([`DeadlineQueue`]: a FIFO for the in-order common
//! case plus a fallback heap) use lazy deletion: a keepalive, release or delete
//! leaves the old entry behind, and an entry counts only while its slot still
//! holds the same generation and the key's current deadline equals the entry's.
//! When stale entries outnumber live ones the queue is rebuilt from its live
//! entries, so the queues stay O(keys) and every operation stays O(1)
//! amortised on the FIFO path and O(log n) at worst.
//!
//! The maps use [`FastMap`] (see `hash.rs` for why that is safe here).
//!
//! Every change goes through [`Shard::apply`], the function replay uses too.

use rand::Rng;
use uuid::Uuid;

use super::deadlines::DeadlineQueue;
use super::hash::FastMap;
use super::index::SlotIndex;
use super::{BlockInfo, KeyExtras, KeyImage, KeyImageExt, PoolEvent, Reaped, Stats};
use crate::clock::Millis;
use crate::ids::AccountId;

/// [`Slot::pos`] of a key that is checked out (its block is in `blocked`).
const BLOCKED: u32 = u32::MAX;
/// [`Slot::pos`] of a slab slot that holds no key (it is in `vacant`).
const VACANT: u32 = u32::MAX - 1;
/// [`Slot::pos`] of a key released with a cooldown that has not ended (its
/// end is in `cooling`).
const COOLING: u32 = u32::MAX - 2;
/// Stale heap entries tolerated beyond the live ones before a rebuild, so that
/// tiny shards don't rebuild on every push.
const COMPACT_SLACK: usize = 64;

/// One key (or a vacant slot). 48 bytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    pub(super) key_id: Uuid,
    pub(super) owner: AccountId,
    pub(super) created_at: Millis,
    pub(super) expires_at: Millis,
    /// Index of this slot in its owner's free list when the key is free;
    /// [`BLOCKED`] when it is checked out; [`COOLING`] when it is cooling
    /// down; [`VACANT`] when the slot is empty.
    pos: u32,
    /// Bumped when the slot loses its key, so that deadline entries of a
    /// deleted key never apply to the next key in the slot.
    gen: u32,
}

/// How many keys one owner has in this shard.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    total: u64,
    blocked: u64,
    cooling: u64,
}

impl Counts {
    fn stats(self) -> Stats {
        Stats {
            total: self.total,
            available: self.total - self.blocked - self.cooling,
            blocked: self.blocked,
            cooling: self.cooling,
        }
    }
}

/// Which of the three live states a key is in (see [`Slot::pos`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    Free,
    Blocked,
    Cooling,
}

/// The keys of one shard. Not locked itself: [`super::Pools`] wraps it in a mutex.
#[derive(Debug, Default)]
pub(super) struct Shard {
    /// key_id → slot, for every live key.
    index: SlotIndex,
    /// The slab of keys; vacant slots are reused before the slab grows.
    slots: Vec<Slot>,
    /// Vacant slots of `slots`.
    vacant: Vec<u32>,
    /// Per owner, the slots of its free (unblocked) keys in any order, so that
    /// checkout picks a uniformly random one in O(1) and removes it by
    /// `swap_remove` (the moved slot's `pos` is updated).
    free: FastMap<AccountId, Vec<u32>>,
    /// Per owner with at least one key here, its counts.
    counts: FastMap<AccountId, Counts>,
    /// The sums of `counts` over all owners, for `/metrics` in O(1).
    totals: Counts,
    /// slot → block, for every checked-out key.
    blocked: FastMap<u32, BlockInfo>,
    /// (expires_at, slot, gen) for every live key, plus stale entries (lazy deletion).
    expiry: DeadlineQueue,
    /// (blocked_until, slot, gen) for every blocked key, plus stale entries.
    releases: DeadlineQueue,
    /// slot → end of the cooldown, for every cooling key.
    cooling: FastMap<u32, Millis>,
    /// (cooling end, slot, gen) for every cooling key, plus stale entries.
    cooldowns: DeadlineQueue,
    /// slot → extras, only for keys that have any (most keys pay nothing).
    extras: FastMap<u32, Box<KeyExtras>>,
}

impl Shard {
    /// The slot of `key_id` if the key exists and belongs to `owner`: another
    /// owner's key is indistinguishable from a missing one.
    pub(super) fn find(&self, owner: AccountId, key_id: Uuid) -> Option<u32> {
        let slot = self.lookup(key_id)?;
        (self.slots[slot as usize].owner == owner).then_some(slot)
    }

    /// The slot of `key_id`, whoever owns it.
    pub(super) fn lookup(&self, key_id: Uuid) -> Option<u32> {
        self.index
            .find(&key_id, |slot| self.slots[slot as usize].key_id == key_id)
    }

    /// The key in a live slot.
    pub(super) fn slot(&self, slot: u32) -> &Slot {
        &self.slots[slot as usize]
    }

    /// The block of a live slot, if the key is checked out.
    pub(super) fn block(&self, slot: u32) -> Option<BlockInfo> {
        self.blocked.get(&slot).copied()
    }

    /// When a live slot's cooldown ends, if the key is cooling.
    pub(super) fn cooling_until(&self, slot: u32) -> Option<Millis> {
        self.cooling.get(&slot).copied()
    }

    /// A live slot's extras, if it has any.
    pub(super) fn extras(&self, slot: u32) -> Option<&KeyExtras> {
        self.extras.get(&slot).map(|b| &**b)
    }

    /// The lifetime keepalive restarts for a live slot: its own, else `default`.
    pub(super) fn ttl(&self, slot: u32, default: Millis) -> Millis {
        self.extras(slot).and_then(|x| x.ttl).unwrap_or(default)
    }

    /// Whether `owner` has any key in this shard.
    pub(super) fn has_keys_of(&self, owner: AccountId) -> bool {
        self.counts.contains_key(&owner)
    }

    /// A uniformly random free key of `owner`, if it has one here.
    pub(super) fn random_free(&self, owner: AccountId, rng: &mut impl Rng) -> Option<u32> {
        let list = self.free.get(&owner)?;
        if list.is_empty() {
            return None;
        }
        Some(list[rng.gen_range(0..list.len())])
    }

    /// `owner`'s counts in this shard.
    pub(super) fn stats(&self, owner: AccountId) -> Stats {
        self.counts.get(&owner).copied().unwrap_or_default().stats()
    }

    /// The counts over all owners in this shard.
    pub(super) fn totals(&self) -> Stats {
        self.totals.stats()
    }

    /// Applies `ev` to memory and hands it to `emit`. The caller holds the
    /// shard lock, so the log order matches the apply order for every key.
    pub(super) fn commit(&mut self, ev: PoolEvent, emit: &mut dyn FnMut(&PoolEvent)) {
        self.apply_at(None, &ev);
        emit(&ev);
    }

    /// [`Shard::commit`] for an event about the key the caller found at
    /// `slot`: the same apply, minus one index search (a cache miss at a
    /// million keys).
    pub(super) fn commit_at(&mut self, slot: u32, ev: PoolEvent, emit: &mut dyn FnMut(&PoolEvent)) {
        self.apply_at(Some(slot), &ev);
        emit(&ev);
    }

    /// Brings one key up to date at `now`: deletes it if it has expired (and
    /// answers `None`), releases its block if that has run out.
    pub(super) fn settle(
        &mut self,
        slot: u32,
        now: Millis,
        emit: &mut dyn FnMut(&PoolEvent),
    ) -> Option<u32> {
        let Slot {
            key_id,
            owner,
            expires_at,
            ..
        } = self.slots[slot as usize];
        if expires_at <= now {
            self.commit_at(slot, PoolEvent::Deleted { owner, key_id }, emit);
            return None;
        }
        let lapsed = self
            .blocked
            .get(&slot)
            .is_some_and(|b| b.blocked_until <= now)
            || self.cooling.get(&slot).is_some_and(|&until| until <= now);
        if lapsed {
            self.commit_at(slot, PoolEvent::Released { owner, key_id }, emit);
        }
        Some(slot)
    }

    /// Deletes every key with `expires_at <= now` and releases every block
    /// with `blocked_until <= now`. Amortised O(1) per deadline handled when
    /// deadlines came in order, O(log n) otherwise.
    pub(super) fn reap_due(&mut self, now: Millis, emit: &mut dyn FnMut(&PoolEvent)) -> Reaped {
        let mut reaped = Reaped::default();
        while let Some(e) = self.expiry.pop_due(now) {
            if expiry_is_live(&self.slots, &e) {
                let Slot { key_id, owner, .. } = self.slots[e.slot as usize];
                self.commit_at(e.slot, PoolEvent::Deleted { owner, key_id }, emit);
                reaped.expired += 1;
            }
        }
        while let Some(e) = self.releases.pop_due(now) {
            if release_is_live(&self.slots, &self.blocked, &e) {
                let Slot { key_id, owner, .. } = self.slots[e.slot as usize];
                self.commit_at(e.slot, PoolEvent::Released { owner, key_id }, emit);
                reaped.released += 1;
            }
        }
        while let Some(e) = self.cooldowns.pop_due(now) {
            if cooldown_is_live(&self.slots, &self.cooling, &e) {
                let Slot { key_id, owner, .. } = self.slots[e.slot as usize];
                self.commit_at(e.slot, PoolEvent::Released { owner, key_id }, emit);
                reaped.cooled += 1;
            }
        }
        reaped
    }

    /// The earliest live deadline (expiry or release) in this shard. Drops the
    /// stale entries it finds on top of the queues.
    pub(super) fn next_deadline(&mut self) -> Option<Millis> {
        while let Some(e) = self.expiry.peek() {
            if expiry_is_live(&self.slots, &e) {
                break;
            }
            self.expiry.pop();
        }
        while let Some(e) = self.releases.peek() {
            if release_is_live(&self.slots, &self.blocked, &e) {
                break;
            }
            self.releases.pop();
        }
        while let Some(e) = self.cooldowns.peek() {
            if cooldown_is_live(&self.slots, &self.cooling, &e) {
                break;
            }
            self.cooldowns.pop();
        }
        [
            self.expiry.peek(),
            self.releases.peek(),
            self.cooldowns.peek(),
        ]
        .into_iter()
        .flatten()
        .map(|e| e.due)
        .min()
    }

    /// Appends every key of this shard, with its block, to `out`, and the
    /// extras and cooldowns of those that have them to `ext`.
    pub(super) fn image_into(&self, out: &mut Vec<KeyImage>, ext: &mut Vec<KeyImageExt>) {
        out.reserve(self.index.len());
        for (slot, s) in self.slots.iter().enumerate() {
            if s.pos == VACANT {
                continue;
            }
            let slot = slot as u32;
            out.push(KeyImage {
                key_id: s.key_id,
                owner: s.owner,
                created_at: s.created_at,
                expires_at: s.expires_at,
                blocked: self.blocked.get(&slot).copied(),
            });
            let extras = self.extras(slot).cloned();
            let cooling_until = self.cooling_until(slot);
            if extras.is_some() || cooling_until.is_some() {
                ext.push(KeyImageExt {
                    key_id: s.key_id,
                    extras,
                    cooling_until,
                });
            }
        }
    }

    /// Removes every key of `owner` in this shard. O(keys of `owner` here +
    /// blocked and cooling keys here): free keys come from the owner's free
    /// list, the others from the (small) block and cooldown maps.
    pub(super) fn purge(&mut self, owner: AccountId) -> usize {
        let mut doomed: Vec<u32> = self.free.get(&owner).cloned().unwrap_or_default();
        let slots = &self.slots;
        let of_owner = |slot: &u32| slots[*slot as usize].owner == owner;
        doomed.extend(self.blocked.keys().copied().filter(of_owner));
        doomed.extend(self.cooling.keys().copied().filter(of_owner));
        for &slot in &doomed {
            self.remove(slot);
        }
        doomed.len()
    }

    /// Applies an event about the key in `slot` (found by the caller), without
    /// emitting it: for a caller that logs several events as one record.
    pub(super) fn apply_at_slot(&mut self, slot: u32, ev: &PoolEvent) {
        self.apply_at(Some(slot), ev);
    }

    /// Some sealed value or metadata here, with its key (`true`: a value).
    pub(super) fn any_sealed(&self) -> Option<(Uuid, bool, Vec<u8>)> {
        self.extras.iter().find_map(|(&slot, x)| {
            let key_id = self.slots[slot as usize].key_id;
            match (&x.value, &x.metadata) {
                (Some(v), _) => Some((key_id, true, v.clone())),
                (None, Some(m)) => Some((key_id, false, m.clone())),
                _ => None,
            }
        })
    }

    /// The owner of `key_id`, if the key exists.
    pub(super) fn lookup_owner(&self, key_id: Uuid) -> Option<AccountId> {
        self.lookup(key_id).map(|s| self.slots[s as usize].owner)
    }

    /// Sets the extras of an existing key (restore from an image).
    pub(super) fn set_extras(&mut self, key_id: Uuid, extras: KeyExtras) {
        if let Some(slot) = self.lookup(key_id) {
            if extras.is_empty() {
                self.extras.remove(&slot);
            } else {
                self.extras.insert(slot, Box::new(extras));
            }
        }
    }

    /// Applies one event. Replay calls this directly; live operations call it
    /// through [`Shard::commit`]. It never reads the clock, and every event sets
    /// state rather than adjusting it, so re-applying events is harmless.
    pub(super) fn apply(&mut self, ev: &PoolEvent) {
        self.apply_at(None, ev);
    }

    /// [`Shard::apply`], told where the key probably is: `hint` is used when
    /// that slot holds the event's key, else the index is searched.
    fn apply_at(&mut self, hint: Option<u32>, ev: &PoolEvent) {
        match *ev {
            PoolEvent::Created {
                owner,
                key_id,
                created_at,
                expires_at,
            } => {
                self.create(owner, key_id, created_at, expires_at, None);
            }
            PoolEvent::CreatedWith {
                owner,
                key_id,
                created_at,
                expires_at,
                ref extras,
            } => {
                self.create(owner, key_id, created_at, expires_at, Some(extras));
            }
            PoolEvent::Cooling {
                owner,
                key_id,
                until,
            } => {
                if let Some(slot) = self.find_hinted(hint, owner, key_id) {
                    self.set_cooling(slot, until);
                }
            }
            PoolEvent::Purged { owner } => {
                self.purge(owner);
            }
            // Names live in `Pools`, not in shards.
            PoolEvent::Named { .. } => {}
            PoolEvent::CheckedOut {
                owner,
                key_id,
                lease_id,
                blocked_at,
                blocked_until,
            } => {
                if let Some(slot) = self.find_hinted(hint, owner, key_id) {
                    let block = BlockInfo {
                        lease_id,
                        blocked_at,
                        blocked_until,
                    };
                    self.set_block(slot, block);
                }
            }
            PoolEvent::Released { owner, key_id } => {
                if let Some(slot) = self.find_hinted(hint, owner, key_id) {
                    self.clear_block(slot);
                }
            }
            PoolEvent::KeptAlive {
                owner,
                key_id,
                expires_at,
            } => {
                if let Some(slot) = self.find_hinted(hint, owner, key_id) {
                    self.set_expiry(slot, expires_at);
                }
            }
            PoolEvent::Deleted { owner, key_id } => {
                if let Some(slot) = self.find_hinted(hint, owner, key_id) {
                    self.remove(slot);
                }
            }
        }
    }

    /// `find`, trying `hint` first. A live slot holding `key_id` is that key's
    /// slot: ids are unique.
    fn find_hinted(&self, hint: Option<u32>, owner: AccountId, key_id: Uuid) -> Option<u32> {
        let hinted = hint.filter(|&slot| {
            self.slots
                .get(slot as usize)
                .is_some_and(|s| s.pos != VACANT && s.key_id == key_id && s.owner == owner)
        });
        hinted.or_else(|| self.find(owner, key_id))
    }

    /// Puts each deadline queue back into one sorted run. After a restore,
    /// whose deadlines arrive in slab order rather than in time order, this
    /// moves them out of the fallback heaps so that later pushes and pops take
    /// the FIFO path. O(n log n).
    pub(super) fn normalize_queues(&mut self) {
        self.expiry.normalize();
        self.releases.normalize();
        self.cooldowns.normalize();
    }
}

#[path = "shard_slots.rs"]
mod slots;
use slots::{cooldown_is_live, expiry_is_live, release_is_live};

#[cfg(test)]
#[path = "shard_tests.rs"]
mod tests;
