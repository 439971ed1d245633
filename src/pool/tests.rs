//! Unit tests of [`Pools`]' operations: deadlines, leases, ownership,
//! randomness and stats, with the helpers the other test modules share. Time
//! is passed explicitly; nothing sleeps. The reaper, snapshots and replay are
//! tested in `replay_tests.rs`; a property test against a
//! plain `BTreeMap` model is in `model_tests.rs`.

use std::collections::HashSet;

use super::*;

pub(super) const A: AccountId = AccountId(1);
pub(super) const B: AccountId = AccountId(2);
pub(super) const T0: Millis = 1_795_357_800_000;
pub(super) const KEY_TTL: Millis = 300_000;
pub(super) const BLOCK_TTL: Millis = 60_000;

pub(super) fn cfg() -> PoolConfig {
    PoolConfig {
        key_ttl: KEY_TTL,
        block_ttl: BLOCK_TTL,
        shards: 8,
    }
}

/// Records every emitted event.
#[derive(Default)]
pub(super) struct Log(pub(super) Vec<PoolEvent>);

impl Log {
    pub(super) fn emit(&mut self) -> impl FnMut(&PoolEvent) + '_ {
        |e| self.0.push(e.clone())
    }
    pub(super) fn take(&mut self) -> Vec<PoolEvent> {
        std::mem::take(&mut self.0)
    }
}

pub(super) fn none() -> impl FnMut(&PoolEvent) {
    |e| panic!("unexpected event {e:?}")
}

/// The whole state in a canonical order, plus the counts.
pub(super) fn state(p: &Pools) -> (Vec<KeyImage>, Stats, Stats, Stats) {
    let mut keys = p.image().keys;
    keys.sort_by_key(|k| k.key_id);
    for shard in p.shards.iter() {
        shard.lock().check_invariants();
    }
    (keys, p.stats(A), p.stats(B), p.totals())
}

#[test]
fn create_then_get_and_stats() {
    let p = Pools::new(cfg());
    let mut log = Log::default();
    let c = p.create(A, T0, &mut log.emit());
    assert_eq!(c.expires_at, T0 + KEY_TTL);
    assert_eq!(
        log.take(),
        vec![PoolEvent::Created {
            owner: A,
            key_id: c.key_id,
            created_at: T0,
            expires_at: T0 + KEY_TTL
        }]
    );
    let info = p.get(A, c.key_id, T0 + 1).unwrap();
    assert_eq!(
        info,
        KeyInfo {
            key_id: c.key_id,
            created_at: T0,
            expires_at: T0 + KEY_TTL,
            blocked: None,
            cooling_until: None,
            value: None,
            metadata: None,
        }
    );
    assert_eq!(c.key_id.get_version_num(), 4);
    let s = Stats {
        total: 1,
        available: 1,
        blocked: 0,
        cooling: 0,
    };
    assert_eq!(
        (p.stats(A), p.stats(B), p.totals()),
        (s, Stats::default(), s)
    );
}

#[test]
fn a_key_expires_at_exactly_its_deadline() {
    let p = Pools::new(cfg());
    let k = p.create(A, T0, &mut |_| {}).key_id;
    let deadline = T0 + KEY_TTL;
    assert!(p.get(A, k, deadline - 1).is_ok());
    assert_eq!(p.get(A, k, deadline), Err(PoolError::NotFound));
    assert_eq!(p.next_deadline(), Some(deadline));
    // A changing operation at the deadline records the deletion and answers 404.
    let mut log = Log::default();
    assert_eq!(
        p.keepalive(A, k, deadline, &mut log.emit()),
        Err(PoolError::NotFound)
    );
    assert_eq!(
        log.take(),
        vec![PoolEvent::Deleted {
            owner: A,
            key_id: k
        }]
    );
    assert_eq!(p.totals(), Stats::default());
    assert_eq!(p.next_deadline(), None);
}

#[test]
fn an_expired_key_is_not_found_for_every_operation() {
    let p = Pools::new(cfg());
    let late = T0 + KEY_TTL;
    type Op<'a> = &'a dyn Fn(&Pools, Uuid) -> Result<(), PoolError>;
    let ops: [Op; 4] = [
        &|p, k| p.release(A, k, None, late, &mut |_| {}),
        &|p, k| p.delete(A, k, None, late, &mut |_| {}),
        &|p, k| p.keepalive(A, k, late, &mut |_| {}).map(|_| ()),
        &|p, k| p.get(A, k, late).map(|_| ()),
    ];
    for op in ops {
        let k = p.create(A, T0, &mut |_| {}).key_id;
        p.checkout(A, T0, &mut |_| {}).unwrap();
        assert_eq!(op(&p, k), Err(PoolError::NotFound));
    }
    // And checkout never hands out an expired key, even with no reaper.
    assert_eq!(
        p.checkout(A, late, &mut |_| {}),
        Err(PoolError::NoAvailableKeys)
    );
}

#[test]
fn a_block_is_released_when_it_times_out() {
    let p = Pools::new(cfg());
    let k = p.create(A, T0, &mut |_| {}).key_id;
    let c = p.checkout(A, T0, &mut |_| {}).unwrap();
    assert_eq!((c.key_id, c.blocked_until), (k, T0 + BLOCK_TTL));
    let until = c.blocked_until;
    let info = p.get(A, k, until - 1).unwrap();
    assert_eq!(
        info.blocked,
        Some(BlockInfo {
            lease_id: c.lease_id,
            blocked_at: T0,
            blocked_until: until
        })
    );
    assert_eq!(
        p.checkout(A, until - 1, &mut none()),
        Err(PoolError::NoAvailableKeys)
    );
    assert_eq!(p.get(A, k, until).unwrap().blocked, None);
    // Without a reaper, checkout releases the lapsed block itself and hands it out.
    let mut log = Log::default();
    let again = p.checkout(A, until, &mut log.emit()).unwrap();
    assert_eq!(again.key_id, k);
    assert_ne!(again.lease_id, c.lease_id);
    let events = log.take();
    assert_eq!(
        events[0],
        PoolEvent::Released {
            owner: A,
            key_id: k
        }
    );
    assert!(
        matches!(events[1], PoolEvent::CheckedOut { lease_id, .. } if lease_id == again.lease_id)
    );
}

#[test]
fn release_without_lease_after_timeout_is_not_blocked() {
    let p = Pools::new(cfg());
    let k = p.create(A, T0, &mut |_| {}).key_id;
    p.checkout(A, T0, &mut |_| {}).unwrap();
    let mut log = Log::default();
    let r = p.release(A, k, None, T0 + BLOCK_TTL, &mut log.emit());
    assert_eq!(r, Err(PoolError::NotBlocked));
    assert_eq!(
        log.take(),
        vec![PoolEvent::Released {
            owner: A,
            key_id: k
        }]
    );
    assert_eq!(p.stats(A).available, 1);
}

#[test]
fn keepalive_moves_expiry_and_a_blocked_key_stays_blocked() {
    let p = Pools::new(cfg());
    let k = p.create(A, T0, &mut |_| {}).key_id;
    let c = p.checkout(A, T0, &mut |_| {}).unwrap();
    let mut log = Log::default();
    let t = T0 + 10_000;
    assert_eq!(p.keepalive(A, k, t, &mut log.emit()), Ok(t + KEY_TTL));
    assert_eq!(
        log.take(),
        vec![PoolEvent::KeptAlive {
            owner: A,
            key_id: k,
            expires_at: t + KEY_TTL
        }]
    );
    let info = p.get(A, k, t + 1).unwrap();
    assert_eq!(info.expires_at, t + KEY_TTL);
    assert_eq!(info.blocked.map(|b| b.lease_id), Some(c.lease_id));
    assert_eq!(p.stats(A).blocked, 1);
    assert!(
        p.get(A, k, T0 + KEY_TTL).is_ok(),
        "alive past its first deadline"
    );
    // The old deadline is stale now: reaping at it deletes nothing.
    assert_eq!(p.reap(T0 + KEY_TTL, &mut log.emit()).expired, 0);
    assert_eq!(p.get(A, k, t + KEY_TTL), Err(PoolError::NotFound));
}

#[test]
fn a_stale_worker_cannot_release_or_delete_the_new_lease() {
    let p = Pools::new(cfg());
    let k = p.create(A, T0, &mut |_| {}).key_id;
    let old = p.checkout(A, T0, &mut |_| {}).unwrap();
    let t = T0 + BLOCK_TTL + 5;
    let new = p.checkout(A, t, &mut |_| {}).unwrap();
    assert_eq!(new.key_id, k);
    let mut log = Log::default();
    let stale = Some(old.lease_id);
    assert_eq!(
        p.release(A, k, stale, t + 1, &mut log.emit()),
        Err(PoolError::LeaseMismatch)
    );
    assert_eq!(
        p.delete(A, k, stale, t + 1, &mut log.emit()),
        Err(PoolError::LeaseMismatch)
    );
    assert_eq!(log.take(), vec![]);
    let info = p.get(A, k, t + 2).unwrap();
    assert_eq!(info.blocked.map(|b| b.lease_id), Some(new.lease_id));
    assert_eq!(
        p.release(A, k, Some(new.lease_id), t + 2, &mut log.emit()),
        Ok(())
    );
    // Once released, the old lease and the new one both mismatch.
    assert_eq!(
        p.release(A, k, Some(new.lease_id), t + 3, &mut none()),
        Err(PoolError::LeaseMismatch)
    );
    assert_eq!(
        p.delete(A, k, Some(new.lease_id), t + 3, &mut none()),
        Err(PoolError::LeaseMismatch)
    );
}

#[test]
fn every_state_transition() {
    type Case = (
        &'static str,
        bool,
        Option<bool>,
        Result<(), PoolError>,
        Option<bool>,
    );
    // (op, start blocked?, lease: None / Some(right?), result, after: Some(blocked?) or gone)
    let cases: [Case; 12] = [
        (
            "release",
            false,
            None,
            Err(PoolError::NotBlocked),
            Some(false),
        ),
        (
            "release",
            false,
            Some(false),
            Err(PoolError::LeaseMismatch),
            Some(false),
        ),
        ("release", true, None, Ok(()), Some(false)),
        ("release", true, Some(true), Ok(()), Some(false)),
        (
            "release",
            true,
            Some(false),
            Err(PoolError::LeaseMismatch),
            Some(true),
        ),
        ("delete", false, None, Ok(()), None),
        (
            "delete",
            false,
            Some(false),
            Err(PoolError::LeaseMismatch),
            Some(false),
        ),
        ("delete", true, None, Ok(()), None),
        ("delete", true, Some(true), Ok(()), None),
        (
            "delete",
            true,
            Some(false),
            Err(PoolError::LeaseMismatch),
            Some(true),
        ),
        ("keepalive", false, None, Ok(()), Some(false)),
        ("keepalive", true, None, Ok(()), Some(true)),
    ];
    for (i, (op, blocked, lease, want, after)) in cases.into_iter().enumerate() {
        let p = Pools::new(cfg());
        let k = p.create(A, T0, &mut |_| {}).key_id;
        let mut right = Uuid::new_v4();
        if blocked {
            right = p.checkout(A, T0, &mut |_| {}).unwrap().lease_id;
        }
        let lease = lease.map(|r| if r { right } else { Uuid::new_v4() });
        let mut log = Log::default();
        let got = match op {
            "release" => p.release(A, k, lease, T0 + 1, &mut log.emit()),
            "delete" => p.delete(A, k, lease, T0 + 1, &mut log.emit()),
            _ => p.keepalive(A, k, T0 + 1, &mut log.emit()).map(|_| ()),
        };
        assert_eq!(got, want, "case {i}: {op}");
        assert_eq!(
            log.0.len(),
            usize::from(got.is_ok()),
            "case {i}: one event iff it changed"
        );
        let now = p.get(A, k, T0 + 2).ok().map(|info| info.blocked.is_some());
        assert_eq!(now, after, "case {i}: {op}");
        let total = u64::from(after.is_some());
        let blocked = u64::from(after == Some(true));
        assert_eq!(
            p.stats(A),
            Stats {
                total,
                available: total - blocked,
                blocked,
                cooling: 0,
            },
            "case {i}"
        );
    }
}

#[test]
fn checkout_takes_each_free_key_once_then_runs_dry() {
    let p = Pools::new(cfg());
    let keys: HashSet<Uuid> = (0..100)
        .map(|_| p.create(A, T0, &mut |_| {}).key_id)
        .collect();
    let got: HashSet<Uuid> = (0..100)
        .map(|_| p.checkout(A, T0, &mut |_| {}).unwrap().key_id)
        .collect();
    assert_eq!(got, keys);
    assert_eq!(
        p.checkout(A, T0, &mut none()),
        Err(PoolError::NoAvailableKeys)
    );
    assert_eq!(
        p.stats(A),
        Stats {
            total: 100,
            available: 0,
            blocked: 100,
            cooling: 0,
        }
    );
}

#[test]
fn checkout_is_random() {
    let p = Pools::new(cfg());
    for _ in 0..100 {
        p.create(A, T0, &mut |_| {});
    }
    let mut seen = HashSet::new();
    for _ in 0..1_000 {
        let c = p.checkout(A, T0, &mut |_| {}).unwrap();
        seen.insert(c.key_id);
        p.release(A, c.key_id, Some(c.lease_id), T0, &mut |_| {})
            .unwrap();
    }
    // Uniform draws would see all 100 keys with near certainty; a scan or a
    // fixed order would see one.
    assert!(seen.len() >= 80, "only {} distinct keys", seen.len());
}

#[test]
fn another_owners_key_is_not_found_for_every_operation() {
    let p = Pools::new(cfg());
    let k1 = p.create(A, T0, &mut |_| {}).key_id;
    let k2 = p.create(A, T0, &mut |_| {}).key_id;
    let lease = p.checkout(A, T0, &mut |_| {}).unwrap();
    let held = lease.key_id;
    let free = if held == k1 { k2 } else { k1 };
    let t = T0 + 1;
    for k in [free, held] {
        assert_eq!(p.get(B, k, t), Err(PoolError::NotFound));
        for l in [None, Some(lease.lease_id)] {
            assert_eq!(p.release(B, k, l, t, &mut none()), Err(PoolError::NotFound));
            assert_eq!(p.delete(B, k, l, t, &mut none()), Err(PoolError::NotFound));
        }
        assert_eq!(p.keepalive(B, k, t, &mut none()), Err(PoolError::NotFound));
    }
    assert_eq!(
        p.checkout(B, t, &mut none()),
        Err(PoolError::NoAvailableKeys)
    );
    assert_eq!(p.stats(B), Stats::default());
    assert_eq!(p.stats(A).total, 2);
    // B's own keys don't leak to A either.
    let b = p.create(B, t, &mut |_| {}).key_id;
    assert_eq!(p.checkout(A, t, &mut |_| {}).map(|c| c.key_id), Ok(free));
    assert_eq!(
        p.checkout(A, t, &mut none()),
        Err(PoolError::NoAvailableKeys)
    );
    assert_eq!(p.get(A, b, t), Err(PoolError::NotFound));
    assert_eq!(p.checkout(B, t, &mut |_| {}).map(|c| c.key_id), Ok(b));
    assert_eq!(
        p.totals(),
        Stats {
            total: 3,
            available: 0,
            blocked: 3,
            cooling: 0,
        }
    );
}

#[test]
fn zero_shards_means_one() {
    let p = Pools::new(PoolConfig { shards: 0, ..cfg() });
    let k = p.create(A, T0, &mut |_| {}).key_id;
    assert_eq!(p.checkout(A, T0, &mut |_| {}).map(|c| c.key_id), Ok(k));
}

#[test]
fn pools_is_send_and_sync() {
    fn shared<T: Send + Sync>() {}
    shared::<Pools>();
}
