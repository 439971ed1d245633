//! Unit tests of [`TopUps`]: the state machine, settling on an injected clock,
//! replay twice and over a snapshot, and the bounds.

use super::*;

const A: AccountId = AccountId(1);
const B: AccountId = AccountId(2);

fn store() -> TopUps {
    TopUps::new(2_000)
}

#[test]
fn a_top_up_waits_then_completes_once() {
    let s = store();
    let mut log = vec![];
    let t = s
        .start(A, 500, 1_000, &mut |e| log.push(e.clone()))
        .unwrap();
    assert_eq!((t.status, t.settles_at), (TopUpStatus::Waiting, 3_000));
    assert!(s.due(2_999).is_empty());
    assert_eq!(s.next_settlement(), Some(3_000));
    let due = s.due(3_000);
    assert_eq!(due.len(), 1);
    let done = s
        .settle(&t.topup_id, 3_000, &mut |e| log.push(e.clone()))
        .unwrap();
    assert_eq!(
        (done.status, done.settled_at),
        (TopUpStatus::Completed, Some(3_000))
    );
    assert!(s
        .settle(&t.topup_id, 3_001, &mut |_| panic!("settled twice"))
        .is_none());
    assert!(s.due(10_000).is_empty() && s.next_settlement().is_none());
    assert_eq!(log.len(), 2);
}

#[test]
fn amounts_outside_the_range_are_refused() {
    let s = store();
    for (amount, ok) in [
        (0, false),
        (99, false),
        (100, true),
        (100_000, true),
        (100_001, false),
    ] {
        let r = s.start(A, amount, 1, &mut |_| {});
        assert_eq!(r.is_ok(), ok, "{amount}");
    }
}

#[test]
fn replay_twice_or_over_a_snapshot_gives_the_same_state() {
    let s = store();
    let mut log = vec![];
    let mut ids = vec![];
    for i in 0..5u64 {
        ids.push(
            s.start(A, 100 + i, i * 10, &mut |e| log.push(e.clone()))
                .unwrap()
                .topup_id,
        );
    }
    s.start(B, 200, 7, &mut |e| log.push(e.clone())).unwrap();
    let mid = s.image();
    for id in &ids[..3] {
        s.settle(id, 5_000, &mut |e| log.push(e.clone())).unwrap();
    }
    let want = sorted(s.image());

    let twice = store();
    for e in log.iter().chain(&log) {
        twice.apply(e);
    }
    assert_eq!(sorted(twice.image()), want);

    // A fuzzy snapshot taken midway, then the whole log again over it.
    let over = TopUps::restore(2_000, mid);
    for e in &log {
        over.apply(e);
    }
    assert_eq!(sorted(over.image()), want);
    assert_eq!(over.of_account(A, 100), s.of_account(A, 100));
    assert_eq!(over.due(u64::MAX).len(), 3);
}

fn sorted(mut i: TopUpsImage) -> TopUpsImage {
    i.topups.sort_by(|a, b| a.topup_id.cmp(&b.topup_id));
    i
}

#[test]
fn listing_is_newest_first_and_per_account() {
    let s = store();
    let a1 = s.start(A, 100, 1, &mut |_| {}).unwrap();
    let a2 = s.start(A, 200, 2, &mut |_| {}).unwrap();
    s.start(B, 300, 3, &mut |_| {}).unwrap();
    let got: Vec<_> = s
        .of_account(A, 10)
        .into_iter()
        .map(|t| t.topup_id)
        .collect();
    assert_eq!(got, vec![a2.topup_id.clone(), a1.topup_id]);
    assert_eq!(s.of_account(A, 1).len(), 1);
    assert_eq!(s.of_account(B, 10).len(), 1);
}

#[test]
fn waiting_top_ups_are_bounded_and_old_completed_ones_pruned() {
    let s = TopUps::new(0);
    for i in 0..MAX_WAITING as u64 {
        s.start(A, 100, i, &mut |_| {}).unwrap();
    }
    assert_eq!(
        s.start(A, 100, 1_000, &mut |_| {}),
        Err(TopUpError::TooManyWaiting)
    );
    // Another account is not affected.
    s.start(B, 100, 1_000, &mut |_| {}).unwrap();
    for t in s.due(u64::MAX) {
        s.settle(&t.topup_id, 2_000, &mut |_| {});
    }
    let first = s.of_account(A, MAX_KEPT).pop().unwrap();
    let mut now = 3_000;
    while s.of_account(A, usize::MAX).len() < MAX_KEPT {
        let t = s.start(A, 100, now, &mut |_| {}).unwrap();
        s.settle(&t.topup_id, now, &mut |_| {});
        now += 1;
    }
    assert!(s.get(&first.topup_id).is_some());
    s.start(A, 100, now, &mut |_| {}).unwrap();
    assert_eq!(s.of_account(A, usize::MAX).len(), MAX_KEPT);
    assert!(
        s.get(&first.topup_id).is_none(),
        "the oldest completed one is pruned"
    );
}
