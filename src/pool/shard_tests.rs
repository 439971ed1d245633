//! Unit tests of one [`Shard`]: the slab, the free lists and the deadline
//! queues' lazy deletion and compaction; and [`Shard::check_invariants`], which
//! the pool-level tests call after every scenario.

use super::*;
use crate::pool::deadlines::Entry;

const A: AccountId = AccountId(1);

fn created(key_id: Uuid, expires_at: Millis) -> PoolEvent {
    PoolEvent::Created {
        owner: A,
        key_id,
        created_at: 0,
        expires_at,
    }
}

fn kept_alive(key_id: Uuid, expires_at: Millis) -> PoolEvent {
    PoolEvent::KeptAlive {
        owner: A,
        key_id,
        expires_at,
    }
}

/// A checkout of `key_id` under a fresh lease.
fn checked_out(key_id: Uuid, blocked_at: Millis, blocked_until: Millis) -> PoolEvent {
    PoolEvent::CheckedOut {
        owner: A,
        key_id,
        lease_id: Uuid::new_v4(),
        blocked_at,
        blocked_until,
    }
}

fn released(key_id: Uuid) -> PoolEvent {
    PoolEvent::Released { owner: A, key_id }
}

fn deleted(key_id: Uuid) -> PoolEvent {
    PoolEvent::Deleted { owner: A, key_id }
}

#[test]
fn keepalives_do_not_grow_the_expiry_queue_without_bound() {
    let mut s = Shard::default();
    let k = Uuid::new_v4();
    s.apply(&created(k, 10));
    for t in 11..10_000 {
        s.apply(&kept_alive(k, t));
        s.check_invariants();
    }
    assert!(s.expiry.len() <= 2 + COMPACT_SLACK);
}

#[test]
fn checkout_release_cycles_do_not_grow_the_release_queue() {
    let mut s = Shard::default();
    let k = Uuid::new_v4();
    s.apply(&created(k, u64::MAX));
    for t in 0..10_000 {
        s.apply(&checked_out(k, t, t + 60_000));
        s.apply(&released(k));
    }
    s.check_invariants();
    assert!(s.releases.len() <= COMPACT_SLACK + 1);
}

#[test]
fn vacant_slots_are_reused_and_stale_entries_ignored() {
    let mut s = Shard::default();
    let (k1, k2) = (Uuid::new_v4(), Uuid::new_v4());
    s.apply(&created(k1, 100));
    s.apply(&deleted(k1));
    s.apply(&created(k2, 200));
    assert_eq!(s.slots.len(), 1, "the slot of k1 was reused");
    s.check_invariants();
    let mut events = Vec::new();
    // The stale (100, 0) entry of k1 must not delete k2, which now sits in slot 0.
    let r = s.reap_due(150, &mut |e| events.push(e.clone()));
    assert_eq!(r, Reaped::default());
    assert!(events.is_empty());
    assert_eq!(s.next_deadline(), Some(200));
}

#[test]
fn swap_remove_keeps_free_positions_right() {
    let mut s = Shard::default();
    let keys: Vec<Uuid> = (0..50).map(|_| Uuid::new_v4()).collect();
    for &k in &keys {
        s.apply(&created(k, 1_000));
    }
    for (i, &k) in keys.iter().enumerate().filter(|(i, _)| i % 3 == 0) {
        s.apply(&checked_out(k, 0, 10 + i as u64));
        s.check_invariants();
    }
    for &k in keys.iter().step_by(7) {
        s.apply(&deleted(k));
        s.check_invariants();
    }
    s.reap_due(30, &mut |_| {});
    s.check_invariants();
}

#[test]
fn a_reused_slot_with_a_stale_deadline_is_told_apart_by_its_generation() {
    let mut s = Shard::default();
    let (k1, k2, k3) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    s.apply(&created(k1, 100));
    s.apply(&deleted(k1));
    // k2 takes k1's slot with k1's deadline: only the generation differs.
    s.apply(&created(k2, 100));
    s.apply(&created(k3, 50));
    for t in 51..200 {
        s.apply(&kept_alive(k3, t));
    }
    s.check_invariants();
    // The rebuilds (there were some: 149 pushes) kept one live entry for k2;
    // k1's entry for the same slot and deadline has an older generation.
    let slot = s.lookup(k2).expect("k2 exists");
    let k2_entries = s.expiry.iter().filter(|e| e.slot == slot && e.due == 100);
    assert_eq!(k2_entries.count(), 1);
    let mut events = Vec::new();
    let r = s.reap_due(100, &mut |e| events.push(e.clone()));
    assert_eq!(r.expired, 1);
    assert_eq!(events, vec![deleted(k2)]);
}

#[test]
fn a_deadline_earlier_than_the_queue_back_takes_the_fallback_heap() {
    // The clock stepped back between the creates of k2 and k3.
    let mut s = Shard::default();
    let (k1, k2, k3, k4) = (
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
        Uuid::new_v4(),
    );
    s.apply(&created(k1, 100));
    s.apply(&created(k2, 200));
    s.apply(&created(k3, 150));
    s.apply(&created(k4, 50));
    assert_eq!(s.expiry.late_len(), 2);
    s.check_invariants();
    assert_eq!(s.next_deadline(), Some(50));
    let mut events = Vec::new();
    let r = s.reap_due(160, &mut |e| events.push(e.clone()));
    assert_eq!(r.expired, 3);
    let deleted: Vec<Uuid> = events.iter().filter_map(PoolEvent::key_id).collect();
    assert_eq!(deleted, vec![k4, k1, k3], "in deadline order");
    assert_eq!(s.next_deadline(), Some(200));
    s.check_invariants();
}

#[test]
fn an_out_of_order_keepalive_and_block_are_honoured() {
    let mut s = Shard::default();
    let (k1, k2) = (Uuid::new_v4(), Uuid::new_v4());
    s.apply(&created(k1, 1_000));
    s.apply(&created(k2, 2_000));
    // A shorter TTL after a restart: k1's new deadline is before the back.
    s.apply(&kept_alive(k1, 1_500));
    for (k, until) in [(k2, 900), (k1, 400)] {
        s.apply(&checked_out(k, 0, until));
    }
    assert_eq!(s.releases.late_len(), 1);
    s.check_invariants();
    assert_eq!(s.next_deadline(), Some(400));
    let r = s.reap_due(1_200, &mut |_| {});
    assert_eq!(
        r,
        Reaped {
            expired: 0,
            released: 2,
            cooled: 0,
        },
        "k1's stale 1000 entry deleted nothing"
    );
    assert_eq!(s.next_deadline(), Some(1_500));
    assert_eq!(s.reap_due(1_500, &mut |_| {}).expired, 1);
    assert!(s.find(A, k1).is_none() && s.find(A, k2).is_some());
    s.check_invariants();
}

#[test]
fn replaying_a_suffix_again_and_again_does_not_grow_the_queue() {
    // Re-applied KeptAlive events set a deadline back to an earlier value, so
    // the queue holds several live entries for the same deadline; a rebuild
    // must drop the duplicates or it would run on every push.
    let mut s = Shard::default();
    let k = Uuid::new_v4();
    s.apply(&created(k, 10));
    for _ in 0..1_000 {
        for t in [20, 30] {
            s.apply(&kept_alive(k, t));
        }
    }
    s.check_invariants();
    assert!(s.expiry.len() <= 2 + COMPACT_SLACK);
    let mut events = Vec::new();
    assert_eq!(s.reap_due(30, &mut |e| events.push(e.clone())).expired, 1);
    assert_eq!(events.len(), 1, "one Deleted, however many entries it had");
    assert_eq!(s.next_deadline(), None);
}

#[test]
fn normalize_moves_restored_deadlines_into_the_fifo() {
    let mut s = Shard::default();
    let keys: Vec<Uuid> = (0..100).map(|_| Uuid::new_v4()).collect();
    for (i, &k) in keys.iter().enumerate() {
        // Slab order is not deadline order.
        s.apply(&created(k, 1_000 + (i as u64 * 37) % 100));
    }
    assert!(s.expiry.late_len() > 0);
    s.normalize_queues();
    assert_eq!(s.expiry.late_len(), 0);
    s.check_invariants();
    assert_eq!(s.next_deadline(), Some(1_000));
    assert_eq!(s.reap_due(1_049, &mut |_| {}).expired, 50);
    // In-order pushes after it stay in the FIFO.
    s.apply(&created(Uuid::new_v4(), 1_100));
    assert_eq!(s.expiry.late_len(), 0);
}

#[test]
fn a_wrong_slot_hint_falls_back_to_the_index() {
    let mut s = Shard::default();
    let (k1, k2) = (Uuid::new_v4(), Uuid::new_v4());
    s.apply(&created(k1, 1_000));
    s.apply(&created(k2, 1_000));
    let (s1, s2) = (s.lookup(k1).unwrap(), s.lookup(k2).unwrap());
    // A hint at another key's slot: the event still lands on its own key.
    let kept = kept_alive(k1, 500);
    s.commit_at(s2, kept, &mut |_| {});
    assert_eq!(s.slot(s1).expires_at, 500);
    assert_eq!(s.slot(s2).expires_at, 1_000);
    // A hint at the right slot for the wrong owner changes nothing.
    let other = PoolEvent::Deleted {
        owner: AccountId(9),
        key_id: k2,
    };
    s.commit_at(s2, other, &mut |_| {});
    assert_eq!(s.lookup(k2), Some(s2));
    // A hint at a vacant slot, and one past the slab's end.
    s.apply(&deleted(k2));
    let gone = deleted(k1);
    s.commit_at(s2, gone.clone(), &mut |_| {});
    assert_eq!(s.lookup(k1), None);
    s.apply(&created(k1, 700));
    s.commit_at(99, gone, &mut |_| {});
    assert_eq!(s.lookup(k1), None);
    s.check_invariants();
}

impl Shard {
    /// How many entries sit in the fallback heaps of the expiry and release
    /// queues.
    pub(in crate::pool) fn late_lens(&self) -> (usize, usize) {
        (self.expiry.late_len(), self.releases.late_len())
    }

    /// Checks every internal invariant; for tests.
    pub(in crate::pool) fn check_invariants(&self) {
        let mut live = 0;
        let mut totals = Counts::default();
        let mut counts: std::collections::HashMap<AccountId, Counts> = Default::default();
        for (i, s) in self.slots.iter().enumerate() {
            let slot = i as u32;
            if s.pos == VACANT {
                assert!(self.vacant.contains(&slot));
                continue;
            }
            live += 1;
            assert_eq!(self.lookup(s.key_id), Some(slot));
            let c = counts.entry(s.owner).or_default();
            c.total += 1;
            totals.total += 1;
            if s.pos == BLOCKED {
                let b = self.blocked.get(&slot).expect("blocked slot has a block");
                let entry = Entry {
                    due: b.blocked_until,
                    slot,
                    gen: s.gen,
                };
                assert!(self.releases.iter().any(|e| *e == entry));
                c.blocked += 1;
                totals.blocked += 1;
            } else if s.pos == COOLING {
                let until = *self.cooling.get(&slot).expect("cooling slot has an end");
                let entry = Entry {
                    due: until,
                    slot,
                    gen: s.gen,
                };
                assert!(self.cooldowns.iter().any(|e| *e == entry));
                assert!(!self.blocked.contains_key(&slot));
                c.cooling += 1;
                totals.cooling += 1;
            } else {
                assert_eq!(self.free[&s.owner][s.pos as usize], slot);
                assert!(!self.blocked.contains_key(&slot));
                assert!(!self.cooling.contains_key(&slot));
            }
            let entry = Entry {
                due: s.expires_at,
                slot,
                gen: s.gen,
            };
            assert!(self.expiry.iter().any(|e| *e == entry));
        }
        assert_eq!(self.index.len(), live);
        assert_eq!(self.blocked.len() as u64, totals.blocked);
        assert_eq!(self.totals.total, totals.total);
        assert_eq!(self.totals.blocked, totals.blocked);
        assert_eq!(self.cooling.len() as u64, totals.cooling);
        assert_eq!(self.totals.cooling, totals.cooling);
        assert_eq!(self.counts.len(), counts.len());
        for (owner, c) in counts {
            assert_eq!(self.counts[&owner].total, c.total);
            assert_eq!(self.counts[&owner].blocked, c.blocked);
            assert_eq!(self.counts[&owner].cooling, c.cooling);
            assert_eq!(
                self.free[&owner].len() as u64,
                c.total - c.blocked - c.cooling
            );
        }
        assert!(self.expiry.len() <= 2 * live + COMPACT_SLACK);
        assert!(self.releases.len() <= 2 * self.blocked.len() + COMPACT_SLACK);
    }
}
