use super::*;

const A: AccountId = AccountId(1);
const B: AccountId = AccountId(2);

fn log_n(log: &SecurityLog, account: AccountId, n: usize, events: &mut Vec<SecurityEvent>) {
    for i in 0..n {
        log.log(
            account,
            Kind::Login,
            Happened::default(),
            1_000 + i as u64,
            &mut |e| events.push(e.clone()),
        );
    }
}

#[test]
fn keeps_the_newest_thousand_per_account() {
    let log = SecurityLog::new();
    let mut ev = Vec::new();
    log_n(&log, A, KEEP_PER_ACCOUNT + 5, &mut ev);
    log_n(&log, B, 3, &mut ev);
    let (page, next) = log.page(A, None, 200);
    assert_eq!(page.len(), 200);
    assert_eq!(page[0].id, (KEEP_PER_ACCOUNT + 4) as u64);
    let mut all = page.clone();
    let mut cursor = next;
    while let Some(c) = cursor {
        let (p, n) = log.page(A, Some(c), 200);
        assert!(p.iter().all(|e| e.id < c));
        all.extend(p);
        cursor = n;
    }
    assert_eq!(all.len(), KEEP_PER_ACCOUNT);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id));
    assert_eq!(all.last().unwrap().id, 5, "the five oldest were dropped");
    assert_eq!(log.page(B, None, 50).0.len(), 3);
}

#[test]
fn pagination_ends_with_no_cursor() {
    let log = SecurityLog::new();
    let mut ev = Vec::new();
    log_n(&log, A, 5, &mut ev);
    let (p, n) = log.page(A, None, 2);
    assert_eq!(
        (p.iter().map(|e| e.id).collect::<Vec<_>>(), n),
        (vec![4, 3], Some(3))
    );
    let (p, n) = log.page(A, Some(3), 3);
    assert_eq!(
        (p.iter().map(|e| e.id).collect::<Vec<_>>(), n),
        (vec![2, 1, 0], None)
    );
    assert_eq!(log.page(A, Some(0), 3), (vec![], None));
}

#[test]
fn new_address_rule_over_thirty_days() {
    let log = SecurityLog::new();
    let key = Uuid::from_u128(7);
    let ip1: IpAddr = "127.0.0.1".parse().unwrap();
    let ip2: IpAddr = "127.0.0.2".parse().unwrap();
    let mut writes = 0;
    let mut count = |_: &SecurityEvent| writes += 1;
    let t0 = 10 * 86_400_000;
    assert!(log.note_use(key, ip1, t0, &mut count));
    assert!(!log.note_use(key, ip1, t0 + 1_000, &mut count));
    assert!(log.note_use(key, ip2, t0 + 2_000, &mut count));
    // Used again within a day: no record; after a day: one refresh.
    assert!(!log.note_use(key, ip1, t0 + 3_600_000, &mut count));
    assert!(!log.note_use(key, ip1, t0 + REFRESH_EVERY + 5, &mut count));
    // 30 days after the refresh, the address is new again.
    assert!(!log.note_use(key, ip1, t0 + REFRESH_EVERY + NEW_IP_AFTER - 1, &mut count));
    assert!(log.note_use(key, ip2, t0 + 2_000 + NEW_IP_AFTER, &mut count));
    assert_eq!(writes, 5);
}

#[test]
fn addresses_are_bounded_oldest_evicted() {
    let log = SecurityLog::new();
    let key = Uuid::from_u128(9);
    for i in 0..(MAX_ADDRESSES as u32 + 1) {
        let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        assert!(log.note_use(key, ip, 1_000 + u64::from(i), &mut |_| {}));
    }
    assert_eq!(log.image().seen[0].1.len(), MAX_ADDRESSES);
    // The first (oldest) was evicted, so it counts as new again.
    let first = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000));
    assert!(log.note_use(key, first, 2_000, &mut |_| {}));
}

#[test]
fn floods_are_coalesced_per_minute() {
    let log = SecurityLog::new();
    let key = Some(Uuid::from_u128(3));
    let what = || Happened {
        key_id: key,
        ..Happened::default()
    };
    let mut logged = Vec::new();
    for t in 0..50u64 {
        log.log(A, Kind::RateLimited, what(), 1_000 + t * 1_000, &mut |e| {
            logged.push(e.clone())
        });
    }
    // All fifty fall in the window opened at 1s: one record.
    assert_eq!(logged.len(), 1);
    log.log(A, Kind::RateLimited, what(), 62_000, &mut |e| {
        logged.push(e.clone())
    });
    assert_eq!(logged.len(), 2);
    let SecurityEvent::Logged(e) = &logged[1] else {
        panic!()
    };
    assert_eq!(e.detail, r#"{"count":50}"#, "49 folded into it plus itself");
    // Another key, or a kind that does not flood, is not held back.
    log.log(
        A,
        Kind::RateLimited,
        Happened::default(),
        62_001,
        &mut |e| logged.push(e.clone()),
    );
    log.log(A, Kind::Login, Happened::default(), 62_002, &mut |e| {
        logged.push(e.clone())
    });
    log.log(A, Kind::Login, Happened::default(), 62_003, &mut |e| {
        logged.push(e.clone())
    });
    assert_eq!(logged.len(), 5);
}

#[test]
fn replay_twice_or_over_a_snapshot_gives_the_same_state() {
    let log = SecurityLog::new();
    let mut ev = Vec::new();
    log_n(&log, A, KEEP_PER_ACCOUNT + 10, &mut ev);
    let key = Uuid::from_u128(5);
    for i in 0..40u32 {
        let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i % 35));
        log.note_use(key, ip, u64::from(i) * REFRESH_EVERY * 2, &mut |e| {
            ev.push(e.clone())
        });
    }
    let want = log.image();
    let twice = SecurityLog::new();
    ev.iter().chain(&ev).for_each(|e| twice.apply(e));
    assert_eq!(twice.image(), want);
    let mid = SecurityLog::new();
    ev[..600].iter().for_each(|e| mid.apply(e));
    let over = SecurityLog::restore(mid.image());
    ev[300..].iter().for_each(|e| over.apply(e));
    assert_eq!(over.image(), want);
    assert_eq!(SecurityLog::restore(want.clone()).image(), want);
}

#[test]
fn a_known_address_is_a_read_that_writes_nothing() {
    let log = SecurityLog::new();
    let key = Uuid::from_u128(11);
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    let other: IpAddr = "127.0.0.2".parse().unwrap();
    assert!(!log.known(key, ip, 1_000), "never seen");
    let mut writes = 0;
    assert!(log.note_use(key, ip, 1_000, &mut |_| writes += 1));
    assert_eq!(writes, 1);
    assert!(log.known(key, ip, 2_000));
    assert!(!log.known(key, other, 2_000), "another address");
    assert!(!log.known(Uuid::from_u128(12), ip, 2_000), "another key");
    assert!(!log.known(key, ip, 1_000 + REFRESH_EVERY), "due a refresh");
}
