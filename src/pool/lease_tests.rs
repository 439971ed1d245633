//! Unit tests of the second round's pool operations: named pools, extras,
//! batch checkout, lease extension, cooldown and purge, including that
//! replaying their events (again, or from a snapshot image) gives the same
//! state. Time is passed explicitly; nothing sleeps.

use super::tests::{cfg, Log, A, B, BLOCK_TTL, T0};
use super::*;

fn sorted(mut image: PoolImage, mut ext: PoolImageExt) -> (PoolImage, PoolImageExt) {
    image.keys.sort_by_key(|k| k.key_id);
    ext.keys.sort_by_key(|k| k.key_id);
    ext.names.sort();
    (image, ext)
}

fn full(p: &Pools) -> (PoolImage, PoolImageExt) {
    let (i, e) = p.image_full();
    sorted(i, e)
}

fn extras(v: u8) -> KeyExtras {
    KeyExtras {
        ttl: Some(200_000),
        value: Some(vec![v; 4]),
        metadata: Some(vec![v]),
    }
}

/// A pool with named pools, extras, a batch, an extension and a cooldown,
/// and every event it emitted.
fn busy() -> (Pools, Vec<PoolEvent>) {
    let p = Pools::new(cfg());
    let mut log = Log::default();
    let named = p.bind(A, "maps", &mut log.emit());
    assert!(named.0 >= NAMED_POOL_BASE);
    assert_eq!(p.bind(A, "maps", &mut log.emit()), named);
    assert_eq!(p.bind(A, DEFAULT_POOL, &mut log.emit()), A);
    for i in 0..6 {
        p.create_key(named, Pools::new_key_id(), extras(i), T0, &mut log.emit());
    }
    p.create(A, T0, &mut log.emit());
    let mut batch = Vec::new();
    let got = p
        .checkout_batch(named, 3, 10_000, T0, &mut log.emit(), &mut |evs, _| {
            batch.extend(evs.iter().cloned())
        })
        .unwrap();
    log.0.extend(batch);
    assert_eq!(got.len(), 3);
    p.extend(
        named,
        got[0].key_id,
        got[0].lease_id,
        50_000,
        T0 + 1,
        &mut log.emit(),
    )
    .unwrap();
    p.release_cooling(
        named,
        got[1].key_id,
        Some(got[1].lease_id),
        5_000,
        T0 + 2,
        &mut log.emit(),
    )
    .unwrap();
    (p, log.take())
}

#[test]
fn names_extras_batches_extensions_and_cooldowns() {
    let (p, _) = busy();
    let named = p.pool_id(A, "maps").unwrap();
    assert_eq!(p.pool_id(B, "maps"), None);
    assert_eq!(
        p.stats(named),
        Stats {
            total: 6,
            available: 3,
            blocked: 2,
            cooling: 1
        }
    );
    let listed: Vec<String> = p.pools_of(A).into_iter().map(|(n, _)| n).collect();
    assert_eq!(listed, ["default", "maps"]);
    assert!(p.pools_of(B).is_empty());

    // The checked-out keys carry their sealed bytes.
    let got = p
        .checkout_batch(named, 100, 10_000, T0 + 3, &mut |_| {}, &mut |_, _| {})
        .unwrap();
    assert_eq!(got.len(), 3, "only the free ones");
    assert!(got
        .iter()
        .all(|c| c.value.as_ref().is_some_and(|v| v.len() == 4)));
    assert_eq!(
        p.checkout_batch(named, 1, 10_000, T0 + 3, &mut |_| {}, &mut |_, _| {}),
        Err(PoolError::NoAvailableKeys)
    );
    // The cooldown ends on time, through the reaper, as a release.
    let mut log = Log::default();
    let r = p.reap(T0 + 2 + 5_000, &mut log.emit());
    assert_eq!(r.cooled, 1);
    assert!(matches!(log.take()[..], [PoolEvent::Released { .. }]));
    assert_eq!(p.stats(named).cooling, 0);
    assert_eq!(p.stats(named).available, 1);
}

#[test]
fn an_extension_is_fenced_and_a_per_key_ttl_is_what_keepalive_restarts() {
    let p = Pools::new(cfg());
    let id = Pools::new_key_id();
    let c = p.create_key(A, id, extras(1), T0, &mut |_| {});
    assert_eq!(c.expires_at, T0 + 200_000);
    assert_eq!(
        p.keepalive(A, id, T0 + 1_000, &mut |_| {}),
        Ok(T0 + 201_000)
    );
    assert_eq!(
        p.extend(A, id, Pools::new_key_id(), 1_000, T0, &mut |_| {}),
        Err(PoolError::NotBlocked)
    );
    let out = p.checkout(A, T0 + 1_000, &mut |_| {}).unwrap();
    assert_eq!(out.blocked_until, T0 + 1_000 + BLOCK_TTL);
    assert_eq!(
        p.extend(A, id, Pools::new_key_id(), 1_000, T0 + 1_000, &mut |_| {}),
        Err(PoolError::LeaseMismatch)
    );
    assert_eq!(
        p.extend(B, id, out.lease_id, 1_000, T0 + 1_000, &mut |_| {}),
        Err(PoolError::NotFound)
    );
}

#[test]
fn a_purge_removes_one_pool_only_and_answers_404_after() {
    let (p, _) = busy();
    let named = p.pool_id(A, "maps").unwrap();
    let mut log = Log::default();
    assert_eq!(p.purge(named, &mut log.emit()), Ok(6));
    assert_eq!(log.take(), vec![PoolEvent::Purged { owner: named }]);
    assert_eq!(p.stats(named), Stats::default());
    assert_eq!(p.stats(A).total, 1);
    assert_eq!(p.purge(named, &mut |_| {}), Err(PoolError::NoSuchPool));
    assert!(p.next_deadline().is_some());
}

#[test]
fn replaying_the_events_again_or_onto_an_image_gives_the_same_state() {
    let (p, events) = busy();
    let want = full(&p);
    let replayed = Pools::new(cfg());
    events.iter().for_each(|e| replayed.apply(e));
    assert_eq!(full(&replayed), want);
    // Again: events set state.
    events.iter().for_each(|e| replayed.apply(e));
    assert_eq!(full(&replayed), want);
    // A snapshot image, then the whole log again (a fuzzy snapshot's overlap).
    let (image, ext) = p.image_full();
    let restored = Pools::restore_full(cfg(), image, ext);
    assert_eq!(full(&restored), want);
    events.iter().for_each(|e| restored.apply(e));
    assert_eq!(full(&restored), want);
    assert_eq!(restored.pool_id(A, "maps"), p.pool_id(A, "maps"));
    // A new name after restore does not reuse an id.
    let next = restored.bind(B, "other", &mut |_| {});
    assert!(next.0 > p.pool_id(A, "maps").unwrap().0);
    // A purge replays too.
    let named = p.pool_id(A, "maps").unwrap();
    restored.apply(&PoolEvent::Purged { owner: named });
    assert_eq!(restored.stats(named), Stats::default());
}
