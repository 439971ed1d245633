//! Behaviour of [`ApiKeys`] through its public API: what the HTTP routes of
//! seeds 000, 001 and 003 rely on, and replay/snapshot equivalence.

use std::sync::Arc;

use parking_lot::Mutex;
use uuid::Uuid;

use super::*;
use crate::ids::AccountId;

const HOUR: Millis = 3_600_000;
const DAY: Millis = 24 * HOUR;
// 2026-11-22T14:30:00.123Z
const T0: Millis = 1_795_357_800_123;
const ALICE: AccountId = AccountId(1);
const BOB: AccountId = AccountId(2);

fn keys() -> ApiKeys {
    ApiKeys::new(ApiKeysConfig { keys_per_day: 5 })
}

type Log = Arc<Mutex<Vec<ApiKeyEvent>>>;

fn recorder() -> (Log, impl FnMut(&ApiKeyEvent)) {
    let log: Log = Arc::default();
    let l = log.clone();
    (log, move |e: &ApiKeyEvent| l.lock().push(e.clone()))
}

fn named(name: &str) -> CreateKey {
    CreateKey {
        name: Some(name.into()),
        ..CreateKey::default()
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn create_returns_a_well_formed_key_once() {
    let k = keys();
    let (log, mut emit) = recorder();
    let new = k.create(ALICE, named("dev1"), T0, &mut emit).unwrap();
    assert_eq!(check_format(&new.key), Ok(()));
    assert_eq!(new.key_prefix, &new.key[..12]);
    assert_eq!(new.created_at, T0);
    assert_eq!(new.expires_at, None);
    assert!(!format!("{new:?}").contains(&new.key));
    assert_eq!(log.lock().len(), 1);
    let auth = k.verify(&new.key, T0).unwrap();
    assert_eq!(
        auth,
        KeyAuth {
            owner: ALICE,
            key_id: new.key_id,
            rate_limit: None
        }
    );
}

#[test]
fn verify_refuses_typos_unknown_revoked_expired_and_deleted_keys() {
    let k = keys();
    let (_, mut emit) = recorder();
    let good = k.create(ALICE, named("a"), T0, &mut emit).unwrap();

    // One character changed: refused as mistyped, before any lookup.
    let mut typo = good.key.clone().into_bytes();
    typo[20] = if typo[20] == b'x' { b'y' } else { b'x' };
    let typo = String::from_utf8(typo).unwrap();
    assert_eq!(
        k.verify(&typo, T0),
        Err(KeyAuthError::Malformed(FormatError::Checksum))
    );
    assert!(k
        .verify(&typo, T0)
        .unwrap_err()
        .to_string()
        .contains("mistyped"));
    assert!(matches!(
        k.verify("sk_live_short", T0),
        Err(KeyAuthError::Malformed(_))
    ));
    assert_eq!(k.verify(&generate_key(), T0), Err(KeyAuthError::Unknown));

    let expiring = k
        .create(
            ALICE,
            CreateKey {
                expires_in: Some(60),
                ..CreateKey::default()
            },
            T0,
            &mut emit,
        )
        .unwrap();
    assert_eq!(expiring.expires_at, Some(T0 + 60_000));
    assert!(k.verify(&expiring.key, T0 + 59_999).is_ok());
    assert_eq!(
        k.verify(&expiring.key, T0 + 60_000),
        Err(KeyAuthError::Expired)
    );

    k.revoke(ALICE, &good.key, T0 + 1, &mut emit).unwrap();
    assert_eq!(k.verify(&good.key, T0 + 1), Err(KeyAuthError::Revoked));

    let doomed = k.create(ALICE, named("doomed"), T0, &mut emit).unwrap();
    assert_eq!(k.delete_by_name(ALICE, "doomed", &mut emit), Ok(1));
    assert_eq!(k.verify(&doomed.key, T0), Err(KeyAuthError::Unknown));
    assert!(k.list(ALICE, T0).iter().all(|v| v.key_id != doomed.key_id));
}

#[test]
fn usage_is_counted_visible_at_once_and_flushed_in_one_absolute_record() {
    let k = keys();
    let (log, mut emit) = recorder();
    let a = k.create(ALICE, named("a"), T0, &mut emit).unwrap();
    let b = k.create(ALICE, named("b"), T0, &mut emit).unwrap();
    assert_eq!(k.flush_usage(&mut emit), 0);
    for i in 0..3 {
        k.verify(&a.key, T0 + i).unwrap();
    }
    k.verify(&a.key, T0 + DAY).unwrap();
    k.verify(&b.key, T0 + 5).unwrap();

    let views = k.list(ALICE, T0 + DAY);
    let va = views.iter().find(|v| v.key_id == a.key_id).unwrap();
    assert_eq!(va.usage_count, 4);
    assert_eq!(va.last_used, Some(T0 + DAY));
    assert_eq!(va.usage_by_day[28].count, 3);
    assert_eq!(va.usage_by_day[29].count, 1);

    assert_eq!(k.flush_usage(&mut emit), 2);
    assert_eq!(k.flush_usage(&mut emit), 0);
    k.verify(&a.key, T0 + DAY + 1).unwrap();
    assert_eq!(k.flush_usage(&mut emit), 1);
    let log = log.lock();
    assert_eq!(
        log.len(),
        4,
        "two creations and two flushes, no record per use"
    );
    let ApiKeyEvent::UsageSet { entries } = &log[3] else {
        panic!("{:?}", log[3]);
    };
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].key_id, a.key_id);
    assert_eq!(entries[0].usage.count, 5, "absolute, not a delta");
    assert_eq!(entries[0].usage.last_used, Some(T0 + DAY + 1));
}

#[test]
fn concurrent_verifies_count_every_use() {
    let k = Arc::new(keys());
    let (_, mut emit) = recorder();
    let new = k.create(ALICE, named("a"), T0, &mut emit).unwrap();
    let flushed = Arc::new(Mutex::new(Vec::new()));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (k, key) = (k.clone(), new.key.clone());
            std::thread::spawn(move || {
                for _ in 0..250 {
                    k.verify(&key, T0).unwrap();
                }
            })
        })
        .collect();
    // Flush while the uses go on: the last record must still hold them all.
    let flusher = {
        let (k, flushed) = (k.clone(), flushed.clone());
        std::thread::spawn(move || {
            for _ in 0..50 {
                k.flush_usage(&mut |e: &ApiKeyEvent| flushed.lock().push(e.clone()));
            }
        })
    };
    for t in threads {
        t.join().unwrap();
    }
    flusher.join().unwrap();
    k.flush_usage(&mut |e: &ApiKeyEvent| flushed.lock().push(e.clone()));
    assert_eq!(k.list(ALICE, T0)[0].usage_count, 2000);
    let counts: Vec<u64> = flushed
        .lock()
        .iter()
        .map(|e| match e {
            ApiKeyEvent::UsageSet { entries } => entries[0].usage.count,
            other => panic!("{other:?}"),
        })
        .collect();
    assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
    assert_eq!(counts.last(), Some(&2000));
}

#[test]
fn sixth_key_in_a_day_is_refused_until_the_first_leaves_the_window() {
    let k = keys();
    let (_, mut emit) = recorder();
    let first = k.create(ALICE, named("k0"), T0, &mut emit).unwrap();
    for i in 1..5 {
        k.create(ALICE, named(&format!("k{i}")), T0 + i * HOUR, &mut emit)
            .unwrap();
    }
    // Revoked and deleted keys still count.
    k.revoke(ALICE, &first.key, T0 + 5 * HOUR, &mut emit)
        .unwrap();
    k.delete_by_name(ALICE, "k1", &mut emit).unwrap();
    let refused = k.create(ALICE, named("k5"), T0 + 5 * HOUR, &mut emit);
    assert_eq!(
        refused,
        Err(ApiKeyError::DailyLimit {
            retry_after_secs: 19 * 3600
        })
    );
    assert_eq!(
        refused.unwrap_err().to_string(),
        "Rate limit exceeded. Try again later."
    );
    // Another account has its own allowance.
    assert!(k.create(BOB, named("k0"), T0 + 5 * HOUR, &mut emit).is_ok());
    // A millisecond before the first creation is 24 h old: still refused.
    assert!(matches!(
        k.create(ALICE, named("k5"), T0 + DAY - 1, &mut emit),
        Err(ApiKeyError::DailyLimit {
            retry_after_secs: 1
        })
    ));
    assert!(k.create(ALICE, named("k5"), T0 + DAY, &mut emit).is_ok());
    // The window is full again until the second creation ages out.
    assert_eq!(
        k.create(ALICE, named("k6"), T0 + DAY, &mut emit),
        Err(ApiKeyError::DailyLimit {
            retry_after_secs: 3600
        })
    );
    // Replacing the primary key is a creation too.
    assert!(matches!(
        k.replace_primary(ALICE, None, T0 + DAY, &mut emit),
        Err(ApiKeyError::DailyLimit { .. })
    ));
}

#[test]
fn names_are_unique_among_an_owners_live_keys() {
    let k = keys();
    let (_, mut emit) = recorder();
    let dev1 = k.create(ALICE, named("dev1"), T0, &mut emit).unwrap();
    assert_eq!(
        k.create(ALICE, named("dev1"), T0, &mut emit),
        Err(ApiKeyError::NameTaken)
    );
    assert!(k.create(BOB, named("dev1"), T0, &mut emit).is_ok());
    // Unnamed keys never clash.
    assert!(k.create(ALICE, CreateKey::default(), T0, &mut emit).is_ok());
    k.revoke(ALICE, &dev1.key_id.to_string(), T0, &mut emit)
        .unwrap();
    assert!(k.create(ALICE, named("dev1"), T0, &mut emit).is_ok());
    // An expired key frees its name too.
    let k = keys();
    k.create(
        ALICE,
        CreateKey {
            name: Some("tmp".into()),
            expires_in: Some(1),
            ..CreateKey::default()
        },
        T0,
        &mut emit,
    )
    .unwrap();
    assert_eq!(
        k.create(ALICE, named("tmp"), T0 + 999, &mut emit),
        Err(ApiKeyError::NameTaken)
    );
    assert!(k.create(ALICE, named("tmp"), T0 + 1000, &mut emit).is_ok());
}

#[test]
fn invalid_fields_are_named() {
    let k = keys();
    let (log, mut emit) = recorder();
    let long = "n".repeat(65);
    let cases: Vec<(CreateKey, &str)> = vec![
        (named(""), "name"),
        (named("   "), "name"),
        (named(&long), "name"),
        (named("tab\there"), "name"),
        (
            CreateKey {
                expires_in: Some(0),
                ..CreateKey::default()
            },
            "expires_in",
        ),
        (
            CreateKey {
                expires_in: Some(u64::MAX),
                ..CreateKey::default()
            },
            "expires_in",
        ),
        (
            CreateKey {
                rate_limit: Some(KeyRateLimit {
                    limit: 0,
                    window_secs: 60,
                }),
                ..CreateKey::default()
            },
            "rate_limit",
        ),
        (
            CreateKey {
                rate_limit: Some(KeyRateLimit {
                    limit: 5,
                    window_secs: 0,
                }),
                ..CreateKey::default()
            },
            "rate_limit",
        ),
    ];
    for (req, want) in cases {
        match k.create(ALICE, req.clone(), T0, &mut emit) {
            Err(ApiKeyError::Invalid { field, message }) => {
                assert_eq!(field, want, "{req:?}");
                assert!(message.contains(want), "{message}");
            }
            other => panic!("{req:?} gave {other:?}"),
        }
    }
    assert!(log.lock().is_empty());
    // 64 characters (not bytes) is fine, and the rate limit is stored.
    let ok = k
        .create(
            ALICE,
            CreateKey {
                name: Some("é".repeat(64)),
                rate_limit: Some(KeyRateLimit {
                    limit: 5,
                    window_secs: 60,
                }),
                ..CreateKey::default()
            },
            T0,
            &mut emit,
        )
        .unwrap();
    let auth = k.verify(&ok.key, T0).unwrap();
    assert_eq!(
        auth.rate_limit,
        Some(KeyRateLimit {
            limit: 5,
            window_secs: 60
        })
    );
}

#[test]
fn revoke_by_key_id_or_prefix_only_among_the_callers_keys() {
    let k = keys();
    let (log, mut emit) = recorder();
    let by_key = k.create(ALICE, named("1"), T0, &mut emit).unwrap();
    let by_id = k.create(ALICE, named("2"), T0, &mut emit).unwrap();
    let by_prefix = k.create(ALICE, named("3"), T0, &mut emit).unwrap();
    let bobs = k.create(BOB, named("1"), T0, &mut emit).unwrap();

    // Bob cannot revoke Alice's keys by any selector, and nothing changes.
    let n = log.lock().len();
    for sel in [
        by_key.key.clone(),
        by_key.key_id.to_string(),
        by_key.key_prefix.clone(),
    ] {
        assert_eq!(
            k.revoke(BOB, &sel, T0, &mut emit),
            Err(ApiKeyError::NotFound),
            "{sel}"
        );
    }
    // Nor can someone with no keys at all, nor garbage.
    assert_eq!(
        k.revoke(AccountId(9), &by_key.key, T0, &mut emit),
        Err(ApiKeyError::NotFound)
    );
    for sel in ["", "nonsense", "sk_live_", &Uuid::new_v4().to_string()] {
        assert_eq!(
            k.revoke(ALICE, sel, T0, &mut emit),
            Err(ApiKeyError::NotFound)
        );
    }
    assert_eq!(log.lock().len(), n);
    assert!(k.verify(&by_key.key, T0).is_ok());

    assert_eq!(
        k.revoke(ALICE, &by_key.key, T0 + 1, &mut emit),
        Ok(by_key.key_id)
    );
    assert_eq!(
        k.revoke(ALICE, &by_id.key_id.to_string(), T0 + 1, &mut emit),
        Ok(by_id.key_id)
    );
    assert_eq!(
        k.revoke(ALICE, &by_prefix.key_prefix, T0 + 1, &mut emit),
        Ok(by_prefix.key_id)
    );
    for key in [&by_key.key, &by_id.key, &by_prefix.key] {
        assert_eq!(k.verify(key, T0 + 1), Err(KeyAuthError::Revoked));
    }
    assert!(k.verify(&bobs.key, T0 + 1).is_ok());
    // Again: fine, and logs nothing more.
    let n = log.lock().len();
    assert_eq!(
        k.revoke(ALICE, &by_key.key, T0 + 2, &mut emit),
        Ok(by_key.key_id)
    );
    assert_eq!(log.lock().len(), n);
    let v = k.list(ALICE, T0 + 2);
    assert!(v.iter().all(|v| v.revoked && v.revoked_at == Some(T0 + 1)));
}

fn fake_record(owner: AccountId, prefix: &str, created_at: Millis) -> KeyRecord {
    let key = generate_key();
    KeyRecord {
        key_id: Uuid::new_v4(),
        owner,
        name: None,
        hash: key_hash(&key),
        prefix: prefix.into(),
        created_at,
        expires_at: None,
        rate_limit: None,
        revoked_at: None,
        primary: false,
        usage: KeyUsage::default(),
    }
}

#[test]
fn an_ambiguous_prefix_revokes_nothing() {
    let k = keys();
    let (_, mut emit) = recorder();
    // Two keys sharing a display prefix (1 in 14.8 million per pair): made
    // by hand.
    let a = fake_record(ALICE, "sk_live_Same", T0);
    let b = fake_record(ALICE, "sk_live_Same", T0 + 1);
    for r in [&a, &b] {
        k.apply(&ApiKeyEvent::Created {
            record: Box::new(r.clone()),
            revokes: None,
        });
    }
    assert_eq!(
        k.revoke(ALICE, "sk_live_Same", T0, &mut emit),
        Err(ApiKeyError::AmbiguousPrefix)
    );
    assert!(k.list(ALICE, T0).iter().all(|v| !v.revoked));
    // Once one is revoked by id, the prefix names the other.
    k.revoke(ALICE, &a.key_id.to_string(), T0, &mut emit)
        .unwrap();
    assert_eq!(k.revoke(ALICE, "sk_live_Same", T0, &mut emit), Ok(b.key_id));
}

#[test]
fn delete_by_name_is_the_callers_only() {
    let k = keys();
    let (_, mut emit) = recorder();
    let alices = k.create(ALICE, named("dev1"), T0, &mut emit).unwrap();
    let bobs = k.create(BOB, named("dev2"), T0, &mut emit).unwrap();
    assert_eq!(
        k.delete_by_name(ALICE, "dev2", &mut emit),
        Err(ApiKeyError::NotFound)
    );
    assert_eq!(
        k.delete_by_name(AccountId(9), "dev2", &mut emit),
        Err(ApiKeyError::NotFound)
    );
    assert!(k.verify(&bobs.key, T0).is_ok());
    assert_eq!(k.delete_by_name(ALICE, "dev1", &mut emit), Ok(1));
    assert_eq!(
        k.delete_by_name(ALICE, "dev1", &mut emit),
        Err(ApiKeyError::NotFound)
    );
    assert_eq!(k.verify(&alices.key, T0), Err(KeyAuthError::Unknown));
    assert!(k.list(ALICE, T0).is_empty());
    // The name is free again.
    assert!(k.create(ALICE, named("dev1"), T0, &mut emit).is_ok());
}

#[test]
fn list_is_newest_first_with_revoked_keys_and_thirty_days() {
    let k = keys();
    let (_, mut emit) = recorder();
    let old = k.create(ALICE, named("old"), T0, &mut emit).unwrap();
    let new = k.create(ALICE, named("new"), T0 + 1, &mut emit).unwrap();
    k.create(BOB, named("bob"), T0 + 2, &mut emit).unwrap();
    k.revoke(ALICE, &old.key_prefix, T0 + 3, &mut emit).unwrap();
    let v = k.list(ALICE, T0 + 3);
    assert_eq!(
        v.iter().map(|v| v.key_id).collect::<Vec<_>>(),
        vec![new.key_id, old.key_id]
    );
    assert!(v[1].revoked && !v[0].revoked);
    assert_eq!(v[0].name.as_deref(), Some("new"));
    assert_eq!(v[0].key_prefix, new.key_prefix);
    for item in &v {
        assert_eq!(item.usage_by_day.len(), 30);
        assert_eq!(item.usage_by_day[29].day, "2026-11-22");
        assert_eq!(item.usage_by_day[0].day, "2026-10-24");
    }
    assert!(k.list(AccountId(9), T0).is_empty());
}

#[test]
fn primary_key_is_replaced_and_revoked() {
    let k = keys();
    let (log, mut emit) = recorder();
    assert_eq!(k.primary(ALICE, T0), None);
    assert_eq!(
        k.revoke_primary(ALICE, T0, &mut emit),
        Err(ApiKeyError::NotFound)
    );
    // An ordinary key is not the primary one.
    k.create(ALICE, named("other"), T0, &mut emit).unwrap();
    assert_eq!(k.primary(ALICE, T0), None);

    let first = k
        .replace_primary(ALICE, Some("Production Key".into()), T0, &mut emit)
        .unwrap();
    let p = k.primary(ALICE, T0).unwrap();
    assert_eq!(p.key_id, first.key_id);
    assert_eq!(p.name.as_deref(), Some("Production Key"));
    assert!(p.primary);
    k.verify(&first.key, T0 + 5).unwrap();
    let pref = KeyPreference::new(k.primary(ALICE, T0 + 5).as_ref(), 1000);
    assert!(pref.has_key);
    assert_eq!(pref.usage_count, 1);
    assert_eq!(pref.key_prefix.as_deref(), Some(&first.key_prefix[..]));

    // Replacing keeps the name available and revokes the old key in the
    // same record.
    let second = k
        .replace_primary(ALICE, Some("Production Key".into()), T0 + 10, &mut emit)
        .unwrap();
    assert_eq!(
        log.lock().last(),
        Some(&ApiKeyEvent::Created {
            record: Box::new(
                k.image()
                    .keys
                    .into_iter()
                    .find(|r| r.key_id == second.key_id)
                    .unwrap()
            ),
            revokes: Some(first.key_id),
        })
    );
    assert_eq!(k.verify(&first.key, T0 + 10), Err(KeyAuthError::Revoked));
    assert_eq!(k.primary(ALICE, T0 + 10).unwrap().key_id, second.key_id);
    assert_eq!(k.primary(BOB, T0 + 10), None);

    assert_eq!(
        k.revoke_primary(ALICE, T0 + 20, &mut emit),
        Ok(second.key_id)
    );
    assert_eq!(k.verify(&second.key, T0 + 20), Err(KeyAuthError::Revoked));
    assert_eq!(k.primary(ALICE, T0 + 20), None);
    assert_eq!(
        k.revoke_primary(ALICE, T0 + 20, &mut emit),
        Err(ApiKeyError::NotFound)
    );
    assert!(!KeyPreference::new(None, 1000).has_key);
    // The ordinary key was never touched.
    assert!(k
        .list(ALICE, T0 + 20)
        .iter()
        .any(|v| v.name.as_deref() == Some("other") && !v.revoked));
}

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
    made.push(k.replace_primary(BOB, None, T0 + 10, &mut emit).unwrap());
    made.push(k.replace_primary(BOB, None, T0 + 11, &mut emit).unwrap());
    for _ in 0..3 {
        k.verify(&made[0].key, T0 + 20).unwrap();
    }
    k.flush_usage(&mut emit);
    k.verify(&made[0].key, T0 + DAY).unwrap();
    k.verify(&made[2].key, T0 + DAY).unwrap();
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
    assert_eq!(r.verify(&made[0].key, T0 + DAY).unwrap().owner, ALICE);
    assert_eq!(r.verify(&made[1].key, T0), Err(KeyAuthError::Revoked));
    assert_eq!(r.verify(&made[3].key, T0), Err(KeyAuthError::Unknown));
    assert_eq!(r.verify(&made[4].key, T0), Err(KeyAuthError::Revoked));
    assert!(r.verify(&made[5].key, T0).is_ok());
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

#[test]
fn domains_are_send_and_sync() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<ApiKeys>();
    shareable::<crate::accounts::Accounts>();
}
