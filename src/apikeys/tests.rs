//! Behaviour of [`ApiKeys`] through its public API: what the HTTP routes of
//! seeds 000, 001 and 003 rely on; management in `tests/manage.rs`, replay and
//! snapshot equivalence in `tests/replay.rs`.

use std::sync::Arc;

use parking_lot::Mutex;
use uuid::Uuid;

use super::*;
use crate::ids::AccountId;

mod access;
mod credits;
mod manage;
mod replay;
mod rotate;

const HOUR: Millis = 3_600_000;
const DAY: Millis = 24 * HOUR;
// 2026-11-22T14:30:00.123Z
const T0: Millis = 1_795_357_800_123;
const ALICE: AccountId = AccountId(1);
const BOB: AccountId = AccountId(2);
const LOCAL: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

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
    let auth = k.verify(&new.key, LOCAL, T0).unwrap();
    assert_eq!(
        auth,
        KeyAuth {
            owner: ALICE,
            key_id: new.key_id,
            rate_limit: None,
            scopes: ScopeSet::DEFAULT,
            credits_remaining: None,
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
        k.verify(&typo, LOCAL, T0),
        Err(KeyAuthError::Malformed(FormatError::Checksum))
    );
    assert!(k
        .verify(&typo, LOCAL, T0)
        .unwrap_err()
        .to_string()
        .contains("mistyped"));
    assert!(matches!(
        k.verify("sk_live_short", LOCAL, T0),
        Err(KeyAuthError::Malformed(_))
    ));
    assert_eq!(
        k.verify(&generate_key(), LOCAL, T0),
        Err(KeyAuthError::Unknown)
    );

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
    assert!(k.verify(&expiring.key, LOCAL, T0 + 59_999).is_ok());
    assert_eq!(
        k.verify(&expiring.key, LOCAL, T0 + 60_000),
        Err(KeyAuthError::Expired)
    );

    k.revoke(ALICE, &good.key, T0 + 1, &mut emit).unwrap();
    assert_eq!(
        k.verify(&good.key, LOCAL, T0 + 1),
        Err(KeyAuthError::Revoked)
    );

    let doomed = k.create(ALICE, named("doomed"), T0, &mut emit).unwrap();
    assert_eq!(k.delete_by_name(ALICE, "doomed", &mut emit), Ok(1));
    assert_eq!(k.verify(&doomed.key, LOCAL, T0), Err(KeyAuthError::Unknown));
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
        k.verify(&a.key, LOCAL, T0 + i).unwrap();
    }
    k.verify(&a.key, LOCAL, T0 + DAY).unwrap();
    k.verify(&b.key, LOCAL, T0 + 5).unwrap();

    let views = k.list(ALICE, T0 + DAY);
    let va = views.iter().find(|v| v.key_id == a.key_id).unwrap();
    assert_eq!(va.usage_count, 4);
    assert_eq!(va.last_used, Some(T0 + DAY));
    assert_eq!(va.usage_by_day[28].count, 3);
    assert_eq!(va.usage_by_day[29].count, 1);

    assert_eq!(k.flush_usage(&mut emit), 2);
    assert_eq!(k.flush_usage(&mut emit), 0);
    k.verify(&a.key, LOCAL, T0 + DAY + 1).unwrap();
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
                    k.verify(&key, LOCAL, T0).unwrap();
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
        k.replace_primary(ALICE, None, KeyAccess::default(), T0 + DAY, &mut emit),
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
    let auth = k.verify(&ok.key, LOCAL, T0).unwrap();
    assert_eq!(
        auth.rate_limit,
        Some(KeyRateLimit {
            limit: 5,
            window_secs: 60
        })
    );
}

#[test]
fn domains_are_send_and_sync() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<ApiKeys>();
    shareable::<crate::accounts::Accounts>();
}
