//! The shard's key index: key id → slot of the slab, as an open-addressing
//! table (linear probing, backward-shift deletion) of 8-byte `(tag, slot)`
//! pairs, where `tag` is 32 bits of the key id's hash.
//!
//! Why not a `HashMap<Uuid, u32>`: at a million keys a lookup in hashbrown
//! costs three dependent cache misses (control bytes, then the 20-byte bucket
//! holding the uuid, then the slot), each about a third of a keepalive's time.
//! Here the uuid is not stored at all (the slot holds it), so a lookup reads one
//! line of this table and then the slot, which it needs anyway, to confirm the
//! id: two misses. Each key costs 8 bytes of table instead of 21, the table
//! is between 37.5% and 75% full, so about 11–21 bytes a key instead of 24–48.
//!
//! The tag alone says where an entry's probe sequence starts (`tag & mask`),
//! so growing the table and deleting (which shifts later entries back) never
//! read the slab.

use uuid::Uuid;

use super::hash::hash_uuid;

/// The `slot` of an empty bucket; real slots stay below `u32::MAX - 1`.
const EMPTY: u32 = u32::MAX;

/// One bucket: 32 bits of the key id's hash, and the key's slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Bucket {
    tag: u32,
    slot: u32,
}

const FREE: Bucket = Bucket {
    tag: 0,
    slot: EMPTY,
};

/// key id → slot. The caller confirms a candidate slot holds the id asked for
/// (two ids can share a tag), and never inserts an id twice.
#[derive(Debug, Default)]
pub(super) struct SlotIndex {
    /// A power of two long (or empty); at most 3/4 full.
    table: Vec<Bucket>,
    len: usize,
}

impl SlotIndex {
    /// How many keys.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The slot of `key_id`: the first candidate whose tag matches and for
    /// which `holds(slot)` (the slot holds `key_id`) is true.
    pub(super) fn find(&self, key_id: &Uuid, mut holds: impl FnMut(u32) -> bool) -> Option<u32> {
        let tag = hash_uuid(key_id);
        self.probe(tag, |b| b.tag == tag && holds(b.slot))
            .map(|(_, b)| b.slot)
    }

    /// Adds `key_id` at `slot`. The caller has made sure `key_id` is absent.
    pub(super) fn insert(&mut self, key_id: &Uuid, slot: u32) {
        debug_assert!(slot != EMPTY);
        if (self.len + 1) * 4 > self.table.len() * 3 {
            self.grow();
        }
        self.place(Bucket {
            tag: hash_uuid(key_id),
            slot,
        });
        self.len += 1;
    }

    /// Removes `key_id`, which sits at `slot`. Answers whether it was there.
    pub(super) fn remove(&mut self, key_id: &Uuid, slot: u32) -> bool {
        let Some((i, _)) = self.probe(hash_uuid(key_id), |b| b.slot == slot) else {
            return false;
        };
        let mask = self.mask();
        // Backward shift: pull later entries of the run into the hole when the
        // hole lies on their probe path, so that no probe stops early.
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let b = self.table[j];
            if b.slot == EMPTY {
                break;
            }
            let home = b.tag as usize & mask;
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                self.table[hole] = b;
                hole = j;
            }
        }
        self.table[hole] = FREE;
        self.len -= 1;
        true
    }

    /// Walks the probe sequence of `tag` and answers the index of the first
    /// bucket for which `hit` is true, with the bucket, or `None` at the first
    /// empty bucket.
    #[inline]
    fn probe(&self, tag: u32, mut hit: impl FnMut(Bucket) -> bool) -> Option<(usize, Bucket)> {
        if self.table.is_empty() {
            return None;
        }
        let mask = self.mask();
        let mut i = tag as usize & mask;
        loop {
            let b = self.table[i];
            if b.slot == EMPTY {
                return None;
            }
            if hit(b) {
                return Some((i, b));
            }
            i = (i + 1) & mask;
        }
    }

    fn mask(&self) -> usize {
        self.table.len() - 1
    }

    /// Puts a bucket at the first free place of its probe sequence.
    fn place(&mut self, b: Bucket) {
        let mask = self.mask();
        let mut i = b.tag as usize & mask;
        while self.table[i].slot != EMPTY {
            i = (i + 1) & mask;
        }
        self.table[i] = b;
    }

    /// Doubles the table (from 16 buckets up) and re-places every entry.
    fn grow(&mut self) {
        let size = (self.table.len() * 2).max(16);
        let old = std::mem::replace(&mut self.table, vec![FREE; size]);
        for b in old.into_iter().filter(|b| b.slot != EMPTY) {
            self.place(b);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    /// Ids that all hash to the same tag, to force long probe runs.
    fn colliding(n: usize) -> Vec<Uuid> {
        let mut by_tag: HashMap<u32, Vec<Uuid>> = HashMap::new();
        let mut x = 0u128;
        loop {
            x += 1;
            let id = Uuid::from_u128(x);
            let v = by_tag.entry(hash_uuid(&id) & 0xF).or_default();
            v.push(id);
            if v.len() == n {
                return v.clone();
            }
        }
    }

    #[test]
    fn insert_find_remove_with_shared_probe_runs() {
        // 10 ids whose home bucket is the same in a 16-bucket table.
        let ids = colliding(10);
        let mut ix = SlotIndex::default();
        for (slot, id) in ids.iter().enumerate() {
            ix.insert(id, slot as u32);
        }
        assert_eq!(ix.len(), 10);
        assert_eq!(ix.table.len(), 16);
        let find = |ix: &SlotIndex, id: &Uuid| ix.find(id, |s| ids[s as usize] == *id);
        for (slot, id) in ids.iter().enumerate() {
            assert_eq!(find(&ix, id), Some(slot as u32));
        }
        // Removing from the middle of the run shifts the rest back.
        assert!(ix.remove(&ids[3], 3));
        assert!(!ix.remove(&ids[3], 3));
        assert_eq!(find(&ix, &ids[3]), None);
        for (slot, id) in ids.iter().enumerate().filter(|&(s, _)| s != 3) {
            assert_eq!(find(&ix, id), Some(slot as u32));
        }
        assert_eq!(find(&ix, &Uuid::new_v4()), None);
    }

    #[test]
    fn never_more_than_three_quarters_full() {
        let mut ix = SlotIndex::default();
        for slot in 0..100_000u32 {
            ix.insert(&Uuid::new_v4(), slot);
            assert!(ix.len() * 4 <= ix.table.len() * 3);
        }
        assert_eq!(ix.table.len(), 1 << 18);
    }

    fn spread(x: u128) -> Uuid {
        Uuid::from_u128(x.wrapping_mul(0x9E37_79B9_7F4A_7C15_F39C_C060_5CED_C835))
    }

    proptest! {
        /// Against a `HashMap`, with few distinct ids so that removals and
        /// re-insertions collide and wrap around the table's end.
        #[test]
        fn behaves_like_a_map(ops in prop::collection::vec((any::<bool>(), 0..64u128), 1..400)) {
            let mut ix = SlotIndex::default();
            let mut model: HashMap<Uuid, u32> = HashMap::new();
            let mut slot_of_id: HashMap<u32, Uuid> = HashMap::new();
            let mut next = 0u32;
            for (add, x) in ops {
                let id = spread(x);
                match (add, model.get(&id).copied()) {
                    (true, None) => {
                        ix.insert(&id, next);
                        model.insert(id, next);
                        slot_of_id.insert(next, id);
                        next += 1;
                    }
                    (false, Some(slot)) => {
                        prop_assert!(ix.remove(&id, slot));
                        model.remove(&id);
                    }
                    _ => {}
                }
                prop_assert_eq!(ix.len(), model.len());
                for x in 0..64u128 {
                    let id = spread(x);
                    let got = ix.find(&id, |s| slot_of_id.get(&s) == Some(&id));
                    prop_assert_eq!(got, model.get(&id).copied());
                }
            }
        }
    }
}
