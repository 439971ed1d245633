//! Rotation: the replacement inherits name, access, limits and credits; the
//! old key works until its grace ends and spends the replacement's credits,
//! along chains; 409 twice; replay and snapshots keep all of it.

use super::*;

fn metered(name: &str, remaining: u64) -> CreateKey {
    CreateKey {
        credits: Some(CreditSpec {
            remaining,
            refill: None,
        }),
        rate_limit: Some(KeyRateLimit {
            limit: 5,
            window_secs: 60,
        }),
        access: KeyAccess::from_request(None, Some("worker"), None).unwrap(),
        ..named(name)
    }
}

#[test]
fn rotation_inherits_and_the_old_key_works_until_the_grace_ends() {
    let k = keys();
    let (_, mut emit) = recorder();
    let a = k.create(ALICE, metered("a", 3), T0, &mut emit).unwrap();
    k.verify(&a.key, LOCAL, T0).unwrap();
    assert_eq!(
        k.rotate(BOB, a.key_id, 60, T0, &mut emit),
        Err(ApiKeyError::NotFound)
    );
    assert!(matches!(
        k.rotate(ALICE, a.key_id, MAX_GRACE_SECS + 1, T0, &mut emit),
        Err(ApiKeyError::Invalid { .. })
    ));
    let (b, until) = k.rotate(ALICE, a.key_id, 60, T0, &mut emit).unwrap();
    assert_eq!(until, T0 + 60_000);
    assert!(matches!(
        k.rotate(ALICE, a.key_id, 60, T0, &mut emit),
        Err(ApiKeyError::NotRotatable(_))
    ));
    let auth = k.verify(&b.key, LOCAL, T0).unwrap();
    assert_eq!(auth.credits_remaining, Some(1));
    assert_eq!(auth.rate_limit, a_limit());
    assert!(!auth.scopes.has(Scope::KeysRead));
    // The old key spends the new one's credits: 1 left between them.
    assert_eq!(
        k.verify(&a.key, LOCAL, T0 + 1).unwrap().credits_remaining,
        Some(0)
    );
    assert!(matches!(
        k.verify(&b.key, LOCAL, T0 + 1),
        Err(KeyAuthError::NoCredits { .. })
    ));
    // The verify route sees the same shared balance through the old key.
    let checked = k.check(ALICE, &a.key, None, T0 + 1);
    assert_eq!(checked.status, KeyStatus::UsageExceeded);
    assert_eq!(checked.key.unwrap().credits_remaining, Some(0));
    assert!(matches!(
        k.verify(&a.key, LOCAL, T0 + 1),
        Err(KeyAuthError::NoCredits { .. })
    ));
    assert_eq!(
        k.verify(&a.key, LOCAL, T0 + 60_000),
        Err(KeyAuthError::Rotated)
    );
    let list = k.list(ALICE, T0);
    let old = list.iter().find(|v| v.key_id == a.key_id).unwrap();
    assert_eq!(
        (old.rotated_to, old.grace_until),
        (Some(b.key_id), Some(until))
    );
    let new = list.iter().find(|v| v.key_id == b.key_id).unwrap();
    assert_eq!(new.name.as_deref(), Some("a"));
    assert_eq!(new.rotated_to, None);
}

fn a_limit() -> Option<KeyRateLimit> {
    metered("x", 0).rate_limit
}

#[test]
fn a_chain_of_rotations_spends_the_newest_keys_credits_and_replays() {
    let k = keys();
    let (log, mut emit) = recorder();
    let a = k.create(ALICE, metered("a", 10), T0, &mut emit).unwrap();
    let (b, _) = k.rotate(ALICE, a.key_id, 3600, T0, &mut emit).unwrap();
    let (c, _) = k.rotate(ALICE, b.key_id, 3600, T0, &mut emit).unwrap();
    for key in [&a.key, &b.key, &c.key] {
        k.verify(key, LOCAL, T0).unwrap();
    }
    k.flush_usage(&mut emit);
    let c_view = |k: &ApiKeys| {
        k.list(ALICE, T0)
            .into_iter()
            .find(|v| v.key_id == c.key_id)
            .unwrap()
            .credits_remaining
    };
    assert_eq!(c_view(&k), Some(7));
    let log = log.lock().clone();
    let want = (k.image_full(), k.image_credits());
    assert_eq!(want.1.rotations.len(), 2);
    for start in 0..=log.len() {
        let s = ApiKeys::restore_full(k.config().clone(), want.0 .0.clone(), want.0 .1.clone());
        s.restore_credits(want.1.clone());
        for e in log[start..].iter().chain(&log[start..]) {
            s.apply(e);
        }
        assert_eq!((s.image_full(), s.image_credits()), want, "suffix {start}");
    }
    let replayed = keys();
    for e in &log {
        replayed.apply(e);
    }
    assert_eq!(c_view(&replayed), Some(7));
    assert_eq!(
        replayed.verify(&a.key, LOCAL, T0 + 3_600_000),
        Err(KeyAuthError::Rotated)
    );
}
