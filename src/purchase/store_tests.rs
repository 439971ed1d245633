//! Tests of [`Purchases`]: the state machine, settlement, the PIN lockout,
//! snapshots and replay.

use super::*;
use crate::purchase::pin::{cheap_argon, hash_pin_with};

const T0: Millis = 1_795_357_800_000;
const MIN: Millis = 60_000;
const A: AccountId = AccountId(1);
const B: AccountId = AccountId(2);

fn video(id: &str, price: u64) -> Video {
    Video {
        id: id.to_owned(),
        title: format!("Video {id}"),
        price,
        currency: "USD".to_owned(),
        file: None,
    }
}

/// A store and the log of every event it emitted.
struct Harness {
    s: Purchases,
    log: Vec<PurchaseEvent>,
}

impl Harness {
    fn new() -> Self {
        Self {
            s: Purchases::new(PurchaseConfig::default()),
            log: Vec::new(),
        }
    }

    fn start(
        &mut self,
        acct: AccountId,
        v: &Video,
        balance: u64,
        now: Millis,
    ) -> Result<StartOutcome, PurchaseError> {
        let log = &mut self.log;
        self.s
            .start(acct, v, balance, now, &mut |e| log.push(e.clone()))
    }

    fn started(&mut self, acct: AccountId, v: &Video, now: Millis) -> Purchase {
        match self.start(acct, v, 1_000_000, now) {
            Ok(StartOutcome::Started(p)) => p,
            other => panic!("expected a new purchase, got {other:?}"),
        }
    }

    fn settle(&mut self, id: &str, ok: bool, now: Millis) -> Option<Purchase> {
        let log = &mut self.log;
        self.s.settle(id, ok, now, &mut |e| log.push(e.clone()))
    }

    fn set_pin(&mut self, acct: AccountId, pin: &str) {
        let hash = hash_pin_with(&cheap_argon(), pin).expect("valid pin");
        let log = &mut self.log;
        self.s.set_pin(acct, hash, &mut |e| log.push(e.clone()));
    }

    fn check_pin(&mut self, acct: AccountId, pin: &str, now: Millis) -> Result<(), PinCheckError> {
        let log = &mut self.log;
        self.s
            .check_pin(acct, pin, now, &mut |e| log.push(e.clone()))
    }
}

/// An image in a canonical order, to compare two stores.
fn canon(s: &Purchases) -> PurchasesImage {
    let mut img = s.image();
    img.purchases
        .sort_by(|a, b| a.purchase_id.cmp(&b.purchase_id));
    img.pins.sort_by_key(|(a, _)| *a);
    img
}

#[test]
fn a_purchase_waits_then_settles_once() {
    let mut h = Harness::new();
    let v = video("featured", 499);
    assert_eq!(h.s.latest(A, "featured"), None);
    let p = h.started(A, &v, T0);
    assert!(p.purchase_id.starts_with("pur_") && p.purchase_id.len() == 4 + 32);
    assert_eq!(
        (p.status, p.settles_at, p.price),
        (PurchaseStatus::Waiting, T0 + 2_000, 499)
    );
    assert_eq!(h.s.get(&p.purchase_id), Some(p.clone()));
    assert_eq!(h.s.latest(A, "featured"), Some(p.clone()));
    assert!(!h.s.has_purchased(A, "featured"));

    // A second click while waiting charges nothing new.
    assert_eq!(
        h.start(A, &v, 1_000, T0 + 10),
        Ok(StartOutcome::AlreadyWaiting(p.clone()))
    );
    assert_eq!(h.log.len(), 1);

    assert!(h.s.due(T0 + 1_999).is_empty());
    assert_eq!(h.s.due(T0 + 2_000), vec![p.clone()]);
    assert_eq!(h.s.next_settlement(), Some(T0 + 2_000));

    let done = h
        .settle(&p.purchase_id, true, T0 + 2_050)
        .expect("was waiting");
    assert_eq!(
        (done.status, done.settled_at),
        (PurchaseStatus::Purchased, Some(T0 + 2_050))
    );
    assert_eq!(
        h.log.last(),
        Some(&PurchaseEvent::Settled {
            purchase_id: p.purchase_id.clone(),
            status: PurchaseStatus::Purchased,
            settled_at: T0 + 2_050
        })
    );
    // Settling again is a no-op that emits nothing.
    assert_eq!(h.settle(&p.purchase_id, false, T0 + 3_000), None);
    assert_eq!(h.s.settle_event(&p.purchase_id, true, T0 + 3_000), None);
    assert_eq!(h.log.len(), 2);
    assert!(h.s.due(T0 + 10 * MIN).is_empty());
    assert_eq!(h.s.next_settlement(), None);

    assert!(h.s.has_purchased(A, "featured"));
    assert!(!h.s.has_purchased(B, "featured"), "per account");
    assert!(!h.s.has_purchased(A, "other"), "per video");
    assert!(matches!(
        h.start(A, &v, 0, T0 + 5_000),
        Ok(StartOutcome::AlreadyPurchased(_))
    ));
    assert_eq!(h.settle("pur_unknown", true, T0), None);
}

#[test]
fn a_failed_purchase_can_be_retried() {
    let mut h = Harness::new();
    let v = video("featured", 499);
    let p1 = h.started(A, &v, T0);
    h.settle(&p1.purchase_id, false, T0 + 2_000)
        .expect("waiting");
    assert_eq!(
        h.s.latest(A, "featured").map(|p| p.status),
        Some(PurchaseStatus::Failed)
    );
    let p2 = h.started(A, &v, T0 + 3_000);
    assert_ne!(p1.purchase_id, p2.purchase_id);
    assert_eq!(h.s.latest(A, "featured"), Some(p2.clone()));
    h.settle(&p2.purchase_id, true, T0 + 5_000)
        .expect("waiting");
    assert!(h.s.has_purchased(A, "featured"));
    // The old failed one is still there to look up.
    assert_eq!(
        h.s.get(&p1.purchase_id).map(|p| p.status),
        Some(PurchaseStatus::Failed)
    );
    assert_eq!(h.s.of_account(A).len(), 2);
}

#[test]
fn the_balance_must_cover_every_waiting_purchase() {
    let mut h = Harness::new();
    let (v1, v2) = (video("one", 600), video("two", 600));
    assert_eq!(
        h.start(A, &v1, 599, T0),
        Err(PurchaseError::InsufficientBalance)
    );
    assert!(h.log.is_empty());
    assert!(matches!(
        h.start(A, &v1, 1_000, T0),
        Ok(StartOutcome::Started(_))
    ));
    // 600 is already promised; another 600 does not fit in 1000.
    assert_eq!(
        h.start(A, &v2, 1_000, T0),
        Err(PurchaseError::InsufficientBalance)
    );
    assert!(matches!(
        h.start(A, &v2, 1_200, T0),
        Ok(StartOutcome::Started(_))
    ));
    // Another account's purchases do not count against A.
    assert!(matches!(
        h.start(B, &v1, 600, T0),
        Ok(StartOutcome::Started(_))
    ));
    assert_eq!(
        PurchaseError::InsufficientBalance.to_string(),
        "Insufficient balance."
    );
}

#[test]
fn due_returns_waiting_purchases_earliest_first() {
    let mut h = Harness::new();
    let p3 = h.started(A, &video("c", 1), T0 + 300);
    let p1 = h.started(B, &video("a", 1), T0 + 100);
    let p2 = h.started(A, &video("b", 1), T0 + 200);
    assert_eq!(h.s.next_settlement(), Some(T0 + 2_100));
    let ids = |v: Vec<Purchase>| v.into_iter().map(|p| p.purchase_id).collect::<Vec<_>>();
    assert_eq!(
        ids(h.s.due(T0 + 2_200)),
        vec![p1.purchase_id.clone(), p2.purchase_id.clone()]
    );
    h.settle(&p1.purchase_id, true, T0 + 2_200);
    assert_eq!(
        ids(h.s.due(T0 + 9_999)),
        vec![p2.purchase_id, p3.purchase_id]
    );
    assert_eq!(h.s.next_settlement(), Some(T0 + 2_200));
}

#[test]
fn pin_lockout_refuses_even_the_right_pin_until_the_window_ends() {
    let mut h = Harness::new();
    assert_eq!(h.check_pin(A, "1234", T0), Err(PinCheckError::NoPin));
    assert!(!h.s.has_pin(A));
    h.set_pin(A, "1234");
    assert!(h.s.has_pin(A));
    assert!(h.s.pin_hash(A).is_some_and(|p| p.starts_with("$argon2id$")));
    assert_eq!(h.check_pin(A, "12", T0), Err(PinCheckError::Invalid));
    assert_eq!(h.check_pin(A, "1234", T0), Ok(()));

    // Five wrong PINs one minute apart.
    for i in 0..5u32 {
        let got = h.check_pin(A, "9999", T0 + Millis::from(i) * MIN);
        assert_eq!(
            got,
            Err(PinCheckError::Wrong { remaining: 4 - i }),
            "attempt {i}"
        );
    }
    // Locked until 15 minutes after the first of the five.
    let at = T0 + 5 * MIN;
    assert_eq!(
        h.s.check_lock(A, at),
        Err(PinCheckError::Locked {
            retry_after_secs: 600
        })
    );
    assert_eq!(
        h.check_pin(A, "1234", at),
        Err(PinCheckError::Locked {
            retry_after_secs: 600
        })
    );
    assert_eq!(
        h.check_pin(A, "9999", T0 + 15 * MIN - 1),
        Err(PinCheckError::Locked {
            retry_after_secs: 1
        })
    );
    assert_eq!(
        h.s.check_lock(B, at),
        Ok(()),
        "other accounts are not locked"
    );
    let logged = h.log.len();

    // The lock ends; the right PIN works and clears the failures.
    assert_eq!(h.check_pin(A, "1234", T0 + 15 * MIN), Ok(()));
    assert_eq!(
        h.log[logged..],
        [PurchaseEvent::PinFailures {
            account: A,
            failures: vec![]
        }]
    );
    assert_eq!(
        h.check_pin(A, "9999", T0 + 16 * MIN),
        Err(PinCheckError::Wrong { remaining: 4 })
    );
    // A right PIN with no failures logs nothing.
    assert_eq!(h.check_pin(A, "1234", T0 + 17 * MIN), Ok(()));
    let logged = h.log.len();
    assert_eq!(h.check_pin(A, "1234", T0 + 17 * MIN), Ok(()));
    assert_eq!(h.log.len(), logged);
}

#[test]
fn wrong_pins_older_than_the_window_do_not_count() {
    let mut h = Harness::new();
    h.set_pin(A, "1234");
    for i in 0..4 {
        assert!(matches!(
            h.check_pin(A, "0000", T0 + i * MIN),
            Err(PinCheckError::Wrong { .. })
        ));
    }
    // 20 minutes later the four old failures have left the window.
    assert_eq!(
        h.check_pin(A, "0000", T0 + 20 * MIN),
        Err(PinCheckError::Wrong { remaining: 4 })
    );
    assert_eq!(h.s.check_lock(A, T0 + 20 * MIN), Ok(()));
    match h.log.last() {
        Some(PurchaseEvent::PinFailures { failures, .. }) => {
            assert_eq!(failures, &vec![T0 + 20 * MIN])
        }
        other => panic!("expected absolute failures, got {other:?}"),
    }
}

#[test]
fn a_lock_from_spread_out_failures_ends_when_the_first_leaves_the_window() {
    let mut h = Harness::new();
    h.set_pin(A, "1234");
    for t in [0, 10, 11, 12, 14] {
        let _ = h.check_pin(A, "0000", T0 + t * MIN);
    }
    assert_eq!(
        h.s.check_lock(A, T0 + 14 * MIN),
        Err(PinCheckError::Locked {
            retry_after_secs: 60
        })
    );
    assert_eq!(h.s.check_lock(A, T0 + 15 * MIN), Ok(()));
    // Four failures still count: one more locks again, until the failure at 10 min leaves.
    assert_eq!(
        h.check_pin(A, "0000", T0 + 16 * MIN),
        Err(PinCheckError::Wrong { remaining: 0 })
    );
    assert_eq!(
        h.s.check_lock(A, T0 + 16 * MIN),
        Err(PinCheckError::Locked {
            retry_after_secs: 9 * 60
        })
    );
}

#[test]
fn image_and_restore_preserve_behaviour() {
    let mut h = Harness::new();
    let v = video("featured", 499);
    let p1 = h.started(A, &v, T0);
    let p2 = h.started(B, &v, T0 + 1);
    h.settle(&p2.purchase_id, true, T0 + 2_001);
    h.set_pin(A, "1234");
    let _ = h.check_pin(A, "1111", T0 + 5);

    let r = Purchases::restore(PurchaseConfig::default(), h.s.image());
    assert_eq!(canon(&r), canon(&h.s));
    assert_eq!(r.get(&p1.purchase_id), Some(p1.clone()));
    assert_eq!(
        r.due(T0 + MIN),
        vec![p1.clone()],
        "the waiting purchase still settles"
    );
    assert!(r.has_purchased(B, "featured"));
    assert!(matches!(
        r.start(A, &v, 1_000, T0 + 9, &mut |_| {}),
        Ok(StartOutcome::AlreadyWaiting(_))
    ));
    let mut none = |_: &PurchaseEvent| {};
    assert_eq!(r.check_pin(A, "1234", T0 + 10, &mut none), Ok(()));
    // The image survives the codec a snapshot goes through.
    let bytes = crate::codec::encode(&h.s.image()).expect("encode");
    let back: PurchasesImage = crate::codec::decode_snapshot(&bytes).expect("decode");
    assert_eq!(
        canon(&Purchases::restore(PurchaseConfig::default(), back)),
        canon(&h.s)
    );
}

/// Runs a little history and returns its events.
fn history() -> (Harness, Vec<PurchaseEvent>) {
    let mut h = Harness::new();
    let v = video("featured", 499);
    let p1 = h.started(A, &v, T0);
    h.set_pin(A, "1234");
    let _ = h.check_pin(A, "0000", T0 + 1);
    let _ = h.check_pin(A, "0001", T0 + 2);
    h.settle(&p1.purchase_id, false, T0 + 2_000);
    let p2 = h.started(A, &v, T0 + 3_000);
    let _ = h.check_pin(A, "1234", T0 + 3_001);
    h.settle(&p2.purchase_id, true, T0 + 5_000);
    let _ = h.started(B, &v, T0 + 6_000);
    let log = h.log.clone();
    (h, log)
}

#[test]
fn replaying_the_log_rebuilds_the_state() {
    let (h, log) = history();
    assert_eq!(log.len(), 9);
    let r = Purchases::new(PurchaseConfig::default());
    for ev in &log {
        r.apply(ev);
    }
    assert_eq!(canon(&r), canon(&h.s));
    // Every event also survives the log's codec.
    for ev in &log {
        let bytes = crate::codec::encode(ev).expect("encode");
        assert_eq!(
            &crate::codec::decode_record::<PurchaseEvent>(&bytes).expect("decode"),
            ev
        );
    }
}

#[test]
fn replaying_any_suffix_again_is_harmless() {
    let (h, log) = history();
    let want = canon(&h.s);
    // A fuzzy snapshot taken after event `cut` may be replayed from any earlier
    // position `from`; and a suffix replayed twice changes nothing.
    for cut in 0..=log.len() {
        let at_cut = Purchases::new(PurchaseConfig::default());
        for ev in &log[..cut] {
            at_cut.apply(ev);
        }
        for from in 0..=cut {
            let r = Purchases::restore(PurchaseConfig::default(), at_cut.image());
            for ev in &log[from..] {
                r.apply(ev);
            }
            assert_eq!(canon(&r), want, "snapshot after {cut}, replay from {from}");
            for ev in &log[from..] {
                r.apply(ev);
            }
            assert_eq!(
                canon(&r),
                want,
                "twice: snapshot after {cut}, replay from {from}"
            );
        }
    }
    assert!(h.s.has_purchased(A, "featured"));
}
