use super::*;

const DAY: Millis = 86_400_000;
/// 2026-11-22 14:30 UTC.
const T0: Millis = 1_795_357_800_000;

fn flushed(a: &KeyAnalytics) -> Vec<AnalyticsEvent> {
    let mut evs = Vec::new();
    a.flush(None, &mut |e| evs.push(e.clone()));
    evs
}

#[test]
fn buckets_are_log_spaced_and_monotone() {
    assert_eq!(bucket_of(0), 0);
    assert_eq!(bucket_of(50), 0);
    assert_eq!(bucket_of(51), 1);
    assert_eq!(bucket_of(10_000_000), BUCKETS - 1);
    assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    assert!((bound_us(BUCKETS - 1) - LAST_BOUND_US).abs() < 1.0);
    let mut last = 0;
    for us in (0..20_000_000).step_by(997) {
        let b = bucket_of(us);
        assert!(b >= last, "{us}");
        assert!(bound_us(b) >= us as f64 || b == BUCKETS - 1, "{us}");
        assert!(b == 0 || bound_us(b - 1) < us as f64, "{us}");
        last = b;
    }
}

#[test]
fn percentiles_come_from_bucket_bounds() {
    let a = KeyAnalytics::default();
    let k = Uuid::new_v4();
    // 98 fast (1 ms), 2 slow (500 ms).
    for _ in 0..98 {
        a.record(k, "GET", "/keys", 200, 1_000, T0);
    }
    for _ in 0..2 {
        a.record(k, "GET", "/keys", 200, 500_000, T0);
    }
    let d = &a.days(k, 1, T0)[0];
    let p50 = d.percentile_ms(0.5);
    let p99 = d.percentile_ms(0.99);
    assert!((1.0..1.37).contains(&p50), "{p50}");
    assert!((500.0..685.0).contains(&p99), "{p99}");
    assert_eq!(DayStats::empty(0).percentile_ms(0.5), 0.0);
}

#[test]
fn counts_statuses_and_routes_per_day() {
    let a = KeyAnalytics::default();
    let k = Uuid::new_v4();
    a.record(k, "GET", "/keys/{key_id}", 200, 100, T0);
    a.record(k, "GET", "/keys/{key_id}", 404, 100, T0);
    a.record(k, "PUT", "/keys/{key_id}", 403, 100, T0);
    a.record(k, "GET", "/keys", 429, 100, T0);
    a.record(k, "GET", "/keys", 503, 100, T0);
    let days = a.days(k, 3, T0);
    assert_eq!(days.len(), 3);
    assert_eq!(days[0], DayStats::empty(day_number(T0) - 2));
    let d = &days[2];
    assert_eq!(d.day, day_number(T0));
    assert_eq!(
        (d.requests, d.errors_4xx, d.errors_5xx, d.rate_limited),
        (5, 3, 1, 1)
    );
    assert_eq!(
        d.by_route,
        vec![
            ("GET /keys/{key_id}".to_string(), 2),
            ("PUT /keys/{key_id}".to_string(), 1),
            ("GET /keys".to_string(), 2),
        ]
    );
}

#[test]
fn day_boundaries_are_utc_midnight() {
    let a = KeyAnalytics::default();
    let k = Uuid::new_v4();
    let midnight = (T0 / DAY + 1) * DAY;
    a.record(k, "GET", "/keys", 200, 100, midnight - 1);
    a.record(k, "GET", "/keys", 200, 100, midnight);
    a.record(k, "GET", "/keys", 200, 100, midnight + 1);
    let days = a.days(k, 2, midnight);
    assert_eq!(days[0].requests, 1);
    assert_eq!(days[1].requests, 2);
    // A clock that steps back counts on the newest day.
    a.record(k, "GET", "/keys", 200, 100, midnight - 5 * DAY);
    assert_eq!(a.days(k, 1, midnight)[0].requests, 3);
}

#[test]
fn keeps_ninety_days_also_on_replay() {
    let a = KeyAnalytics::default();
    let k = Uuid::new_v4();
    let mut log = Vec::new();
    for i in 0..100 {
        a.record(k, "GET", "/keys", 200, 100, T0 + i * DAY);
        log.extend(flushed(&a));
    }
    assert_eq!(a.keys.get(&k).unwrap().days.len(), ANALYTICS_DAYS as usize);
    let days = a.days(k, 90, T0 + 99 * DAY);
    assert!(days.iter().all(|d| d.requests == 1));
    assert_eq!(days[0].day, day_number(T0) + 10);
    let b = KeyAnalytics::default();
    log.iter().for_each(|e| b.apply(e));
    assert_eq!(b.image(), a.image());
    assert_eq!(b.keys.get(&k).unwrap().days.len(), ANALYTICS_DAYS as usize);
}

#[test]
fn replaying_twice_or_over_a_snapshot_gives_the_same_state() {
    let a = KeyAnalytics::default();
    let (k1, k2) = (Uuid::new_v4(), Uuid::new_v4());
    let mut log = Vec::new();
    let mut snapshot_at = None;
    for i in 0..40u64 {
        let k = if i % 3 == 0 { k2 } else { k1 };
        let route = if i % 2 == 0 { "/keys" } else { "/stats" };
        a.record(
            k,
            "GET",
            route,
            200 + (i % 4) as u16 * 100,
            i * 977,
            T0 + i * DAY / 7,
        );
        log.extend(flushed(&a));
        if i == 20 {
            snapshot_at = Some((log.len(), a.image()));
        }
    }
    let want = a.image();
    let twice = KeyAnalytics::default();
    log.iter().chain(&log).for_each(|e| twice.apply(e));
    assert_eq!(twice.image(), want);
    // A fuzzy snapshot: taken later than the position it covers.
    let (_, image) = snapshot_at.unwrap();
    let over = KeyAnalytics::restore(image);
    log[..10].iter().chain(&log).for_each(|e| over.apply(e));
    assert_eq!(over.image(), want);
}

#[test]
fn flush_logs_only_changed_days_and_forgets_deleted_keys() {
    let a = KeyAnalytics::default();
    let (k1, k2) = (Uuid::new_v4(), Uuid::new_v4());
    a.record(k1, "GET", "/keys", 200, 100, T0);
    a.record(k2, "GET", "/keys", 200, 100, T0);
    assert_eq!(a.flush(None, &mut |_| {}), 2);
    assert_eq!(a.flush(None, &mut |_| {}), 0);
    a.record(k1, "GET", "/keys", 200, 100, T0);
    let mut evs = Vec::new();
    let exists = |id: Uuid| id == k1;
    assert_eq!(a.flush(Some(&exists), &mut |e| evs.push(e.clone())), 1);
    assert_eq!(evs.len(), 2);
    assert_eq!(evs[1], AnalyticsEvent::Forget { key_ids: vec![k2] });
    assert_eq!(a.days(k2, 1, T0)[0].requests, 0);
    assert_eq!(a.days(k1, 1, T0)[0].requests, 2);
}
