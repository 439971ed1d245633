//! Unit tests of one [`Shard`]: the slab, the free lists and the deadline
//! queues' lazy deletion and compaction; and [`Shard::check_invariants`], which
//! the pool-level tests call after every scenario.

use super::*;

const A: AccountId = AccountId(1);

fn created(key_id: Uuid, expires_at: Millis) -> PoolEvent {
    PoolEvent::Created {
        owner: A,
        key_id,
        created_at: 0,
        expires_at,
    }
}

#[test]
fn keepalives_do_not_grow_the_expiry_queue_without_bound() {
    let mut s = Shard::default();
    let k = Uuid::new_v4();
    s.apply(&created(k, 10));
    for t in 11..10_000 {
        s.apply(&PoolEvent::KeptAlive {
            owner: A,
            key_id: k,
            expires_at: t,
        });
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
        s.apply(&PoolEvent::CheckedOut {
            owner: A,
            key_id: k,
            lease_id: Uuid::new_v4(),
            blocked_at: t,
            blocked_until: t + 60_000,
        });
        s.apply(&PoolEvent::Released {
            owner: A,
            key_id: k,
        });
    }
    s.check_invariants();
    assert!(s.releases.len() <= COMPACT_SLACK + 1);
}

#[test]
fn vacant_slots_are_reused_and_stale_entries_ignored() {
    let mut s = Shard::default();
    let (k1, k2) = (Uuid::new_v4(), Uuid::new_v4());
    s.apply(&created(k1, 100));
    s.apply(&PoolEvent::Deleted {
        owner: A,
        key_id: k1,
    });
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
        s.apply(&PoolEvent::CheckedOut {
            owner: A,
            key_id: k,
            lease_id: Uuid::new_v4(),
            blocked_at: 0,
            blocked_until: 10 + i as u64,
        });
        s.check_invariants();
    }
    for &k in keys.iter().step_by(7) {
        s.apply(&PoolEvent::Deleted {
            owner: A,
            key_id: k,
        });
        s.check_invariants();
    }
    s.reap_due(30, &mut |_| {});
    s.check_invariants();
}

#[test]
fn a_reused_slot_with_a_stale_deadline_is_deduplicated_on_rebuild() {
    let mut s = Shard::default();
    let (k1, k2, k3) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    s.apply(&created(k1, 100));
    s.apply(&PoolEvent::Deleted {
        owner: A,
        key_id: k1,
    });
    // k2 takes k1's slot with k1's deadline: two identical live entries.
    s.apply(&created(k2, 100));
    s.apply(&created(k3, 50));
    for t in 51..200 {
        s.apply(&PoolEvent::KeptAlive {
            owner: A,
            key_id: k3,
            expires_at: t,
        });
    }
    s.check_invariants();
    // The rebuilds (there were some: 149 pushes) kept one entry for k2.
    let k2_entry = Reverse((100, s.index[&k2]));
    assert_eq!(s.expiry.iter().filter(|&&e| e == k2_entry).count(), 1);
    let mut events = Vec::new();
    let r = s.reap_due(100, &mut |e| events.push(e.clone()));
    assert_eq!(r.expired, 1);
    assert_eq!(
        events,
        vec![PoolEvent::Deleted {
            owner: A,
            key_id: k2
        }]
    );
}

impl Shard {
    /// Checks every internal invariant; for tests.
    pub(in crate::pool) fn check_invariants(&self) {
        let mut live = 0;
        let mut totals = Counts::default();
        let mut counts: HashMap<AccountId, Counts> = HashMap::new();
        for (i, s) in self.slots.iter().enumerate() {
            let slot = i as u32;
            if s.pos == VACANT {
                assert!(self.vacant.contains(&slot));
                continue;
            }
            live += 1;
            assert_eq!(self.index.get(&s.key_id), Some(&slot));
            let c = counts.entry(s.owner).or_default();
            c.total += 1;
            totals.total += 1;
            if s.pos == BLOCKED {
                let b = self.blocked.get(&slot).expect("blocked slot has a block");
                assert!(self.releases.iter().any(|r| r.0 == (b.blocked_until, slot)));
                c.blocked += 1;
                totals.blocked += 1;
            } else {
                assert_eq!(self.free[&s.owner][s.pos as usize], slot);
                assert!(!self.blocked.contains_key(&slot));
            }
            assert!(self.expiry.iter().any(|r| r.0 == (s.expires_at, slot)));
        }
        assert_eq!(self.index.len(), live);
        assert_eq!(self.blocked.len() as u64, totals.blocked);
        assert_eq!(self.totals.total, totals.total);
        assert_eq!(self.totals.blocked, totals.blocked);
        assert_eq!(self.counts.len(), counts.len());
        for (owner, c) in counts {
            assert_eq!(self.counts[&owner].total, c.total);
            assert_eq!(self.counts[&owner].blocked, c.blocked);
            assert_eq!(self.free[&owner].len() as u64, c.total - c.blocked);
        }
        assert!(self.expiry.len() <= 2 * live + COMPACT_SLACK);
        assert!(self.releases.len() <= 2 * self.blocked.len() + COMPACT_SLACK);
    }
}
