//! A shard's bookkeeping: the primitive moves of a slot between free,
//! blocked, cooling and vacant, the per-owner counts and free lists, and the
//! deadline queues with their liveness rules. [`Shard::apply`] (in
//! `shard.rs`) is made of these; nothing else changes a slot.

use uuid::Uuid;

use super::{Held, Shard, Slot, BLOCKED, COMPACT_SLACK, COOLING, VACANT};
use crate::clock::Millis;
use crate::ids::AccountId;
use crate::pool::deadlines::Entry;
use crate::pool::hash::FastMap;
use crate::pool::{BlockInfo, KeyExtras};

impl Shard {
    /// Makes `key_id` exist, fresh and free, with these times and extras
    /// (a re-applied creation resets the key in place).
    pub(super) fn create(
        &mut self,
        owner: AccountId,
        key_id: Uuid,
        created_at: Millis,
        expires_at: Millis,
        extras: Option<&KeyExtras>,
    ) {
        let slot = match self.lookup(key_id) {
            Some(slot) if self.slots[slot as usize].owner == owner => {
                self.clear_block(slot);
                self.slots[slot as usize].created_at = created_at;
                self.set_expiry(slot, expires_at);
                slot
            }
            other => {
                if let Some(slot) = other {
                    self.remove(slot);
                }
                self.insert(owner, key_id, created_at, expires_at)
            }
        };
        match extras.filter(|x| !x.is_empty()) {
            Some(x) => {
                self.extras.insert(slot, Box::new(x.clone()));
            }
            None => {
                self.extras.remove(&slot);
            }
        }
    }

    pub(super) fn insert(
        &mut self,
        owner: AccountId,
        key_id: Uuid,
        created_at: Millis,
        expires_at: Millis,
    ) -> u32 {
        let mut fresh = Slot {
            key_id,
            owner,
            created_at,
            expires_at,
            pos: VACANT,
            gen: 0,
        };
        let slot = match self.vacant.pop() {
            Some(slot) => {
                fresh.gen = self.slots[slot as usize].gen;
                self.slots[slot as usize] = fresh;
                slot
            }
            None => {
                let slot = u32::try_from(self.slots.len())
                    .ok()
                    .filter(|&s| s < VACANT)
                    .expect("a shard holds fewer than 2^32 - 2 keys: memory runs out long before");
                self.slots.push(fresh);
                slot
            }
        };
        self.index.insert(&key_id, slot);
        self.link_free(slot);
        self.counts.entry(owner).or_default().total += 1;
        self.totals.total += 1;
        self.push_expiry(expires_at, slot);
        slot
    }

    pub(super) fn remove(&mut self, slot: u32) {
        let Slot { key_id, owner, .. } = self.slots[slot as usize];
        self.detach(slot);
        self.extras.remove(&slot);
        let indexed = self.index.remove(&key_id, slot);
        debug_assert!(indexed, "a live slot's key is in the index");
        let s = &mut self.slots[slot as usize];
        s.pos = VACANT;
        // Stale entries of this key must not match the slot's next key. A
        // stale entry outlives at most ~2n + slack pushes (the next rebuild),
        // far fewer than the 2^32 reuses wrapping would take.
        s.gen = s.gen.wrapping_add(1);
        self.vacant.push(slot);
        self.totals.total -= 1;
        if let Some(c) = self.counts.get_mut(&owner) {
            c.total -= 1;
            if c.total == 0 {
                // Forget owners with no keys here, so departed owners cost nothing.
                self.counts.remove(&owner);
                self.free.remove(&owner);
            }
        }
    }

    /// Which state a live slot is in.
    pub(super) fn held(&self, slot: u32) -> Held {
        match self.slots[slot as usize].pos {
            BLOCKED => Held::Blocked,
            COOLING => Held::Cooling,
            _ => Held::Free,
        }
    }

    /// Takes a live slot out of whichever state it is in (free list, block,
    /// cooldown), fixing the counts; the caller puts it into its next state.
    pub(super) fn detach(&mut self, slot: u32) {
        let owner = self.slots[slot as usize].owner;
        match self.held(slot) {
            Held::Free => self.unlink_free(slot),
            Held::Blocked => {
                self.blocked.remove(&slot);
                self.count(owner, Held::Blocked, false);
            }
            Held::Cooling => {
                self.cooling.remove(&slot);
                self.count(owner, Held::Cooling, false);
            }
        }
    }

    pub(super) fn set_block(&mut self, slot: u32, block: BlockInfo) {
        if self.held(slot) != Held::Blocked {
            self.detach(slot);
            self.slots[slot as usize].pos = BLOCKED;
            let owner = self.slots[slot as usize].owner;
            self.count(owner, Held::Blocked, true);
        }
        let previous = self.blocked.insert(slot, block);
        if previous.map(|b| b.blocked_until) != Some(block.blocked_until) {
            self.push_release(block.blocked_until, slot);
        }
    }

    pub(super) fn set_cooling(&mut self, slot: u32, until: Millis) {
        if self.held(slot) != Held::Cooling {
            self.detach(slot);
            self.slots[slot as usize].pos = COOLING;
            let owner = self.slots[slot as usize].owner;
            self.count(owner, Held::Cooling, true);
        }
        let previous = self.cooling.insert(slot, until);
        if previous != Some(until) {
            self.push_cooldown(until, slot);
        }
    }

    /// Makes a blocked or cooling key free.
    pub(super) fn clear_block(&mut self, slot: u32) {
        if self.held(slot) == Held::Free {
            return;
        }
        self.detach(slot);
        self.link_free(slot);
    }

    pub(super) fn set_expiry(&mut self, slot: u32, expires_at: Millis) {
        if self.slots[slot as usize].expires_at == expires_at {
            // The queue already holds this deadline for this slot.
            return;
        }
        self.slots[slot as usize].expires_at = expires_at;
        self.push_expiry(expires_at, slot);
    }

    /// Counts a key into (`add`) or out of the blocked or cooling state.
    pub(super) fn count(&mut self, owner: AccountId, held: Held, add: bool) {
        let c = self.counts.entry(owner).or_default();
        let (mine, all) = match held {
            Held::Blocked => (&mut c.blocked, &mut self.totals.blocked),
            Held::Cooling => (&mut c.cooling, &mut self.totals.cooling),
            Held::Free => return,
        };
        if add {
            *mine += 1;
            *all += 1;
        } else {
            *mine -= 1;
            *all -= 1;
        }
    }

    /// Puts a slot at the end of its owner's free list.
    pub(super) fn link_free(&mut self, slot: u32) {
        let owner = self.slots[slot as usize].owner;
        let list = self.free.entry(owner).or_default();
        // The list is no longer than the slab, which stays below VACANT.
        self.slots[slot as usize].pos = list.len() as u32;
        list.push(slot);
    }

    /// Takes a free slot out of its owner's free list in O(1). The caller sets
    /// the slot's new `pos`.
    pub(super) fn unlink_free(&mut self, slot: u32) {
        let Slot { owner, pos, .. } = self.slots[slot as usize];
        let Some(list) = self.free.get_mut(&owner) else {
            return;
        };
        let pos = pos as usize;
        if pos >= list.len() || list[pos] != slot {
            debug_assert!(false, "free list out of step with slot {slot}");
            return;
        }
        list.swap_remove(pos);
        if let Some(&moved) = list.get(pos) {
            self.slots[moved as usize].pos = pos as u32;
        }
    }

    pub(super) fn push_expiry(&mut self, due: Millis, slot: u32) {
        let gen = self.slots[slot as usize].gen;
        self.expiry.push(Entry { due, slot, gen });
        let live = self.index.len();
        if self.expiry.len() > 2 * live + COMPACT_SLACK {
            let slots = &self.slots;
            self.expiry.retain(live, |e| expiry_is_live(slots, e));
        }
    }

    pub(super) fn push_cooldown(&mut self, due: Millis, slot: u32) {
        let gen = self.slots[slot as usize].gen;
        self.cooldowns.push(Entry { due, slot, gen });
        let live = self.cooling.len();
        if self.cooldowns.len() > 2 * live + COMPACT_SLACK {
            let (slots, cooling) = (&self.slots, &self.cooling);
            self.cooldowns
                .retain(live, |e| cooldown_is_live(slots, cooling, e));
        }
    }

    pub(super) fn push_release(&mut self, due: Millis, slot: u32) {
        let gen = self.slots[slot as usize].gen;
        self.releases.push(Entry { due, slot, gen });
        let live = self.blocked.len();
        if self.releases.len() > 2 * live + COMPACT_SLACK {
            let (slots, blocked) = (&self.slots, &self.blocked);
            self.releases
                .retain(live, |e| release_is_live(slots, blocked, e));
        }
    }
}

/// Whether a cooldown entry is the current cooldown end of the key in its slot.
pub(super) fn cooldown_is_live(slots: &[Slot], cooling: &FastMap<u32, Millis>, e: &Entry) -> bool {
    slots
        .get(e.slot as usize)
        .is_some_and(|s| s.gen == e.gen && s.pos == COOLING)
        && cooling.get(&e.slot) == Some(&e.due)
}

/// Whether an expiry entry is the current deadline of the key in its slot.
pub(super) fn expiry_is_live(slots: &[Slot], e: &Entry) -> bool {
    // A vacant slot's generation moved on when it lost its key, so no entry
    // matches it.
    slots
        .get(e.slot as usize)
        .is_some_and(|s| s.gen == e.gen && s.expires_at == e.due)
}

/// Whether a release entry is the current block deadline of the key in its slot.
pub(super) fn release_is_live(
    slots: &[Slot],
    blocked: &FastMap<u32, BlockInfo>,
    e: &Entry,
) -> bool {
    slots
        .get(e.slot as usize)
        .is_some_and(|s| s.gen == e.gen && s.pos == BLOCKED)
        && blocked
            .get(&e.slot)
            .is_some_and(|b| b.blocked_until == e.due)
}
