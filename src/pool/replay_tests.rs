//! Tests of durability and the reaper: what a reap emits, image/restore round trips,
//! replaying emitted events into a fresh [`Pools`] (the event-sourcing
//! property), re-applying suffixes as a fuzzy snapshot makes recovery do, and
//! the earlier-deadline hint.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::tests::{cfg, none, state, Log, A, B, BLOCK_TTL, KEY_TTL, T0};
use super::*;

/// Builds a pool with free, blocked, kept-alive, released, deleted and
/// expired keys of two owners, recording every event (reaps included).
fn busy_pool() -> (Pools, Vec<PoolEvent>) {
    let p = Pools::new(cfg());
    let mut log = Log::default();
    let mut t = T0;
    for i in 0..60u64 {
        let owner = if i % 3 == 0 { B } else { A };
        let k = p.create(owner, t, &mut log.emit()).key_id;
        if i % 4 == 0 {
            let c = p.checkout(owner, t, &mut log.emit()).unwrap();
            if i % 8 == 0 {
                p.release(owner, c.key_id, Some(c.lease_id), t, &mut log.emit())
                    .unwrap();
            }
        }
        if i % 5 == 0 {
            p.keepalive(owner, k, t + 7, &mut log.emit()).unwrap();
        }
        if i % 7 == 0 {
            p.delete(owner, k, None, t, &mut log.emit()).unwrap();
        }
        t += 10_000;
        if i % 10 == 9 {
            p.reap(t, &mut log.emit());
        }
    }
    (p, log.take())
}

#[test]
fn image_and_restore_round_trip() {
    let (p, _) = busy_pool();
    let image = p.image();
    let bytes = crate::codec::encode(&image).unwrap();
    let decoded: PoolImage = crate::codec::decode_snapshot(&bytes).unwrap();
    assert_eq!(decoded, image);
    // A different shard count must not matter.
    let q = Pools::restore(PoolConfig { shards: 3, ..cfg() }, decoded);
    assert_eq!(state(&q), state(&p));
    assert_eq!(q.next_deadline(), p.next_deadline());
    for shard in q.shards.iter() {
        let s = shard.lock();
        assert_eq!(s.late_lens(), (0, 0), "restore sorted the deadlines");
    }
    for k in &image.keys {
        assert_eq!(q.get(k.owner, k.key_id, T0), p.get(k.owner, k.key_id, T0));
    }
    // Both behave the same from here on: the reaper does the same things.
    let (mut lp, mut lq) = (Log::default(), Log::default());
    let later = T0 + 700_000;
    assert_eq!(p.reap(later, &mut lp.emit()), q.reap(later, &mut lq.emit()));
    let key = |e: &PoolEvent| format!("{e:?}");
    let (mut ep, mut eq) = (lp.take(), lq.take());
    ep.sort_by_key(key);
    eq.sort_by_key(key);
    assert!(!ep.is_empty());
    assert_eq!(ep, eq);
    assert_eq!(state(&q), state(&p));
}

#[test]
fn replaying_the_events_reproduces_the_state() {
    let (p, events) = busy_pool();
    let replayed = Pools::new(cfg());
    for e in &events {
        let bytes = crate::codec::encode(e).unwrap();
        replayed.apply(&crate::codec::decode_record::<PoolEvent>(&bytes).unwrap());
    }
    assert_eq!(state(&replayed), state(&p));
    assert_eq!(replayed.next_deadline(), p.next_deadline());
}

#[test]
fn reapplying_a_suffix_is_harmless() {
    let (p, events) = busy_pool();
    let want = state(&p);
    for i in (0..events.len()).step_by(7) {
        // Applying everything, then a suffix again.
        let q = Pools::new(cfg());
        events.iter().for_each(|e| q.apply(e));
        events[i..].iter().for_each(|e| q.apply(e));
        assert_eq!(state(&q), want, "suffix from {i} applied twice");
        // A fuzzy snapshot: taken after event j, replayed from i <= j.
        let j = (i + 13).min(events.len());
        let r = Pools::new(cfg());
        events[..j].iter().for_each(|e| r.apply(e));
        let r = Pools::restore(cfg(), r.image());
        events[i..].iter().for_each(|e| r.apply(e));
        assert_eq!(state(&r), want, "snapshot after {j}, replay from {i}");
    }
}

#[test]
fn an_earlier_deadline_wakes_the_reaper() {
    let p = Pools::new(cfg());
    let woken = Arc::new(AtomicUsize::new(0));
    let w = woken.clone();
    p.set_waker(Box::new(move || {
        w.fetch_add(1, Ordering::SeqCst);
    }));
    assert_eq!(p.plan_wake(), None);
    let k = p.create(A, T0, &mut |_| {}).key_id;
    assert_eq!(
        woken.load(Ordering::SeqCst),
        1,
        "first deadline wakes a reaper with no plan"
    );
    assert_eq!(p.plan_wake(), Some(T0 + KEY_TTL));
    p.create(A, T0 + 1, &mut |_| {});
    assert_eq!(
        woken.load(Ordering::SeqCst),
        1,
        "a later deadline does not wake"
    );
    p.checkout(A, T0 + 2, &mut |_| {}).unwrap();
    assert_eq!(
        woken.load(Ordering::SeqCst),
        2,
        "an earlier block deadline does"
    );
    let hint = p.earlier_deadline_hint().load(Ordering::SeqCst);
    assert_eq!(hint, T0 + 2 + BLOCK_TTL);
    p.keepalive(A, k, T0 + 3, &mut |_| {}).unwrap();
    assert_eq!(woken.load(Ordering::SeqCst), 2);
    assert_eq!(p.plan_wake(), Some(T0 + 2 + BLOCK_TTL));
}

#[test]
fn reap_emits_exactly_the_lapsed_deadlines() {
    let p = Pools::new(cfg());
    // A's keys expire one a second from T0+KEY_TTL; B's four keys are blocked
    // one a second from T1 and expire after all of A's.
    let keys: Vec<Uuid> = (0..10)
        .map(|i| p.create(A, T0 + i * 1_000, &mut |_| {}).key_id)
        .collect();
    let t1 = T0 + 10_000;
    let leases: Vec<Checkout> = (0..4)
        .map(|i| {
            p.create(B, t1, &mut |_| {});
            p.checkout(B, t1 + i * 1_000, &mut |_| {}).unwrap()
        })
        .collect();
    assert_eq!(p.next_deadline(), Some(t1 + BLOCK_TTL));
    let mut log = Log::default();
    let r = p.reap(t1 + BLOCK_TTL + 1_000, &mut log.emit());
    assert_eq!(
        r,
        Reaped {
            expired: 0,
            released: 2,
            cooled: 0,
        }
    );
    let got: HashSet<String> = log.take().iter().map(|e| format!("{e:?}")).collect();
    let want: HashSet<String> = leases[..2]
        .iter()
        .map(|c| {
            format!(
                "{:?}",
                PoolEvent::Released {
                    owner: B,
                    key_id: c.key_id
                }
            )
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(p.next_deadline(), Some(t1 + BLOCK_TTL + 2_000));
    // A's keys created at T0..T0+2000 have expired; B's other blocks are over.
    let r = p.reap(T0 + KEY_TTL + 2_000, &mut log.emit());
    assert_eq!(
        r,
        Reaped {
            expired: 3,
            released: 2,
            cooled: 0,
        }
    );
    let events = log.take();
    let deleted: HashSet<Uuid> = events
        .iter()
        .filter_map(|e| match e {
            PoolEvent::Deleted { owner: A, key_id } => Some(*key_id),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, keys[..3].iter().copied().collect());
    assert_eq!(events.len(), 5);
    // Nothing is left to do at the same instant.
    assert_eq!(p.reap(T0 + KEY_TTL + 2_000, &mut none()), Reaped::default());
    assert_eq!(p.next_deadline(), Some(T0 + KEY_TTL + 3_000));
    let free = |n| Stats {
        total: n,
        available: n,
        blocked: 0,
        cooling: 0,
    };
    assert_eq!((p.stats(A), p.stats(B)), (free(7), free(4)));
}
