//! Replay and snapshots: the log reproduces the state (twice, or over a
//! snapshot), usage never moves back, and no full key is ever recorded.

use super::*;

/// Runs a bit of everything and returns the domain and its log.
fn busy_domain() -> (ApiKeys, Vec<ApiKeyEvent>, Vec<NewKey>) {
    let k = keys();
    let (log, mut emit) = recorder();
    let mut made = Vec::new();
    for (i, owner) in [ALICE, ALICE, BOB, ALICE].into_iter().enumerate() {
        made.push(
            k.create(owner, named(&format!("k{i}")), T0 + i as u64, &mut emit)
                .unwrap(),
        );
    }
    made.push(
        k.replace_primary(BOB, None, KeyAccess::default(), T0 + 10, &mut emit)
            .unwrap(),
    );
    made.push(
        k.replace_primary(BOB, None, KeyAccess::default(), T0 + 11, &mut emit)
            .unwrap(),
    );
    for _ in 0..3 {
        k.verify(&made[0].key, LOCAL, T0 + 20).unwrap();
    }
    k.flush_usage(&mut emit);
    k.verify(&made[0].key, LOCAL, T0 + DAY).unwrap();
    k.verify(&made[2].key, LOCAL, T0 + DAY).unwrap();
    k.flush_usage(&mut emit);
    k.revoke(ALICE, &made[1].key, T0 + 30, &mut emit).unwrap();
    k.delete_by_name(ALICE, "k3", &mut emit).unwrap();
    let log = log.lock().clone();
    (k, log, made)
}

#[test]
fn replaying_the_log_reproduces_the_state_even_twice_or_over_a_snapshot() {
    let (live, log, made) = busy_domain();
    let want = live.image();

    let replayed = keys();
    for e in &log {
        replayed.apply(e);
    }
    assert_eq!(replayed.image(), want);
    for e in &log {
        replayed.apply(e);
    }
    assert_eq!(replayed.image(), want, "a second replay changes nothing");

    // A fuzzy snapshot holding everything, then any suffix replayed over it.
    for start in 0..log.len() {
        let r = ApiKeys::restore(live.config().clone(), live.image());
        for e in &log[start..] {
            r.apply(e);
        }
        assert_eq!(r.image(), want, "suffix from {start}");
    }

    // Observable behaviour after a restore.
    let r = ApiKeys::restore(live.config().clone(), want.clone());
    assert_eq!(r.list(ALICE, T0 + DAY), live.list(ALICE, T0 + DAY));
    assert_eq!(r.list(BOB, T0 + DAY), live.list(BOB, T0 + DAY));
    assert_eq!(r.primary(BOB, T0 + DAY), live.primary(BOB, T0 + DAY));
    assert_eq!(
        r.verify(&made[0].key, LOCAL, T0 + DAY).unwrap().owner,
        ALICE
    );
    assert_eq!(
        r.verify(&made[1].key, LOCAL, T0),
        Err(KeyAuthError::Revoked)
    );
    assert_eq!(
        r.verify(&made[3].key, LOCAL, T0),
        Err(KeyAuthError::Unknown)
    );
    assert_eq!(
        r.verify(&made[4].key, LOCAL, T0),
        Err(KeyAuthError::Revoked)
    );
    assert!(r.verify(&made[5].key, LOCAL, T0).is_ok());
    // The daily limit survives the restore: Alice created 3 (one deleted),
    // Bob 3.
    let (_, mut emit) = recorder();
    for i in 0..2 {
        r.create(ALICE, named(&format!("x{i}")), T0 + HOUR, &mut emit)
            .unwrap();
    }
    assert!(matches!(
        r.create(ALICE, named("x2"), T0 + HOUR, &mut emit),
        Err(ApiKeyError::DailyLimit { .. })
    ));
}

#[test]
fn an_older_usage_record_does_not_move_usage_back() {
    let (live, log, made) = busy_domain();
    let first_flush = log
        .iter()
        .find(|e| matches!(e, ApiKeyEvent::UsageSet { .. }))
        .unwrap()
        .clone();
    live.apply(&first_flush);
    let v = live.list(ALICE, T0 + DAY);
    let k0 = v.iter().find(|v| v.key_id == made[0].key_id).unwrap();
    assert_eq!(k0.usage_count, 4);
    assert_eq!(k0.last_used, Some(T0 + DAY));
}

#[test]
fn the_full_key_is_in_no_event_image_or_debug_output() {
    let (live, log, made) = busy_domain();
    let image = crate::codec::encode(&live.image()).unwrap();
    let events = crate::codec::encode(&log).unwrap();
    let debug = format!("{log:?} {:?} {made:?} {live:?}", live.image());
    for new in &made {
        assert!(!contains(&image, new.key.as_bytes()));
        assert!(!contains(&events, new.key.as_bytes()));
        // Nor its random part without the prefix.
        assert!(!contains(&image, &new.key.as_bytes()[8..]));
        assert!(!contains(&events, &new.key.as_bytes()[8..]));
        assert!(!debug.contains(&new.key[8..]));
    }
    // The display prefix is kept, as intended.
    assert!(contains(&image, made[0].key_prefix.as_bytes()));
}

#[test]
fn replay_prunes_old_creations_like_the_live_run() {
    let k = keys();
    let (log, mut emit) = recorder();
    for day in 0..4 {
        k.create(ALICE, CreateKey::default(), T0 + day * DAY, &mut emit)
            .unwrap();
    }
    assert_eq!(
        k.image().creations,
        vec![(ALICE, vec![(k.list(ALICE, T0)[0].key_id, T0 + 3 * DAY)])]
    );
    let r = keys();
    for e in log.lock().iter() {
        r.apply(e);
    }
    assert_eq!(r.image(), k.image());
}
