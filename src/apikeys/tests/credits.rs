//! Credits through the store: spending under concurrency, refusal at zero,
//! refills, sets through the API, verify's `UsageExceeded`, and replay of
//! creation, spending and sets in any overlap with a snapshot.

use super::*;

fn metered(name: &str, remaining: u64, refill: Option<Refill>) -> CreateKey {
    CreateKey {
        credits: Some(CreditSpec { remaining, refill }),
        ..named(name)
    }
}

#[test]
fn concurrent_spending_never_overspends() {
    let k = Arc::new(keys());
    let (_, mut emit) = recorder();
    let new = k
        .create(ALICE, metered("m", 50, None), T0, &mut emit)
        .unwrap();
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (k, key) = (k.clone(), new.key.clone());
            std::thread::spawn(move || {
                (0..20)
                    .filter(|_| k.verify(&key, LOCAL, T0).is_ok())
                    .count()
            })
        })
        .collect();
    let ok: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(ok, 50);
    let v = &k.list(ALICE, T0)[0];
    assert_eq!(v.credits_remaining, Some(0));
    // Refused uses are not counted as usage.
    assert_eq!(v.usage_count, 50);
    assert_eq!(
        k.verify(&new.key, LOCAL, T0),
        Err(KeyAuthError::NoCredits {
            retry_after_secs: None
        })
    );
}

#[test]
fn unmetered_keys_report_no_credits_and_daily_refill_gives_retry_after() {
    let k = keys();
    let (_, mut emit) = recorder();
    let plain = k.create(ALICE, named("p"), T0, &mut emit).unwrap();
    assert_eq!(
        k.verify(&plain.key, LOCAL, T0).unwrap().credits_remaining,
        None
    );
    let refill = Refill {
        amount: 2,
        interval: RefillInterval::Daily,
    };
    let m = k
        .create(ALICE, metered("m", 1, Some(refill)), T0, &mut emit)
        .unwrap();
    assert_eq!(
        k.verify(&m.key, LOCAL, T0).unwrap().credits_remaining,
        Some(0)
    );
    let next_day = (T0 / DAY + 1) * DAY;
    let want = (next_day - T0).div_ceil(1000);
    assert_eq!(
        k.verify(&m.key, LOCAL, T0),
        Err(KeyAuthError::NoCredits {
            retry_after_secs: Some(want)
        })
    );
    assert_eq!(
        k.verify(&m.key, LOCAL, next_day).unwrap().credits_remaining,
        Some(1)
    );
    let v = k.list(ALICE, next_day);
    let mv = v.iter().find(|v| v.key_id == m.key_id).unwrap();
    assert_eq!((mv.credits_remaining, mv.refill), (Some(1), Some(refill)));
}

#[test]
fn set_credits_meters_a_key_and_refuses_others_and_bad_figures() {
    let k = keys();
    let (_, mut emit) = recorder();
    let a = k.create(ALICE, named("a"), T0, &mut emit).unwrap();
    let spec = CreditSpec {
        remaining: 1,
        refill: None,
    };
    assert_eq!(
        k.set_credits(BOB, a.key_id, spec, T0, &mut emit),
        Err(ApiKeyError::NotFound)
    );
    assert!(matches!(
        k.set_credits(
            ALICE,
            a.key_id,
            CreditSpec {
                remaining: 1,
                refill: Some(Refill {
                    amount: 0,
                    interval: RefillInterval::Monthly
                })
            },
            T0,
            &mut emit
        ),
        Err(ApiKeyError::Invalid {
            field: "credits",
            ..
        })
    ));
    k.set_credits(ALICE, a.key_id, spec, T0, &mut emit).unwrap();
    assert!(k.verify(&a.key, LOCAL, T0).is_ok());
    assert!(k.verify(&a.key, LOCAL, T0).is_err());
}

#[test]
fn check_reports_usage_exceeded_and_counts_a_credit() {
    let k = keys();
    let (_, mut emit) = recorder();
    let m = k
        .create(ALICE, metered("m", 1, None), T0, &mut emit)
        .unwrap();
    let first = k.check(ALICE, &m.key, None, T0);
    assert_eq!(first.status, KeyStatus::Live { has_scope: true });
    assert_eq!(first.key.unwrap().credits_remaining, Some(0));
    let second = k.check(ALICE, &m.key, None, T0);
    assert_eq!(second.status, KeyStatus::UsageExceeded);
    assert_eq!(k.list(ALICE, T0)[0].usage_count, 1);
}

#[test]
fn replay_of_creation_spending_and_sets_in_any_overlap_gives_the_same_balance() {
    let k = keys();
    let (log, mut emit) = recorder();
    let m = k
        .create(ALICE, metered("m", 10, None), T0, &mut emit)
        .unwrap();
    for _ in 0..3 {
        k.verify(&m.key, LOCAL, T0).unwrap();
    }
    k.flush_usage(&mut emit);
    k.set_credits(
        ALICE,
        m.key_id,
        CreditSpec {
            remaining: 100,
            refill: None,
        },
        T0,
        &mut emit,
    )
    .unwrap();
    k.verify(&m.key, LOCAL, T0).unwrap();
    k.flush_usage(&mut emit);
    let log = log.lock().clone();
    let want = (k.image_full(), k.image_credits());
    assert_eq!(want.1.credits[0].1.remaining, 99);
    for start in 0..=log.len() {
        let s = ApiKeys::restore_full(k.config().clone(), want.0 .0.clone(), want.0 .1.clone());
        s.restore_credits(want.1.clone());
        for e in &log[start..] {
            s.apply(e);
        }
        assert_eq!((s.image_full(), s.image_credits()), want, "suffix {start}");
    }
    // Replayed from nothing, twice over and with the flush of the older
    // generation arriving after the set: the set still wins.
    let replayed = keys();
    let mut shuffled = log.clone();
    let set_at = shuffled
        .iter()
        .position(|e| matches!(e, ApiKeyEvent::CreditsSet { entries } if entries[0].1.generation == 1 && entries[0].1.remaining == 100))
        .unwrap();
    shuffled.swap(set_at, set_at - 1);
    for e in shuffled.iter().chain(&log) {
        replayed.apply(e);
    }
    assert_eq!(replayed.image_credits(), want.1);
}
