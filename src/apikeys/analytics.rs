//! Per-key, per-day, per-route analytics (issue 10, item 5): for every request
//! an API key authenticated (refused ones after authentication included), the
//! UTC day's request count, 4xx/5xx/429 counts, a latency histogram and the
//! count per route template.
//!
//! Memory is bounded: at most [`ANALYTICS_DAYS`] days per key, each a fixed
//! histogram of [`BUCKETS`] counters and one counter per route used that day.
//! The hot path ([`KeyAnalytics::record`]) takes one `DashMap` shard lock (keys
//! are sharded by id, no lock is shared by all connections) and allocates only
//! for a key's first request of a day or a route's first of a day.
//!
//! Durability is like usage: [`KeyAnalytics::flush`] logs the days changed
//! since the previous flush as absolute figures ([`AnalyticsEvent::Set`]), and
//! applying takes the larger of each counter (counters only grow within a
//! day), so replaying twice or over a fuzzy snapshot gives the same state.

use dashmap::DashMap;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::{day_number, Millis};

/// How many days of analytics a key keeps (the newest day it has and the
/// 89 before it); older days are dropped, on replay too.
pub const ANALYTICS_DAYS: u32 = 90;
/// Latency buckets per day.
pub const BUCKETS: usize = 40;
/// The upper bound of the first bucket, in microseconds (0.05 ms).
const FIRST_BOUND_US: f64 = 50.0;
/// The upper bound of the last bucket, in microseconds (10 s); slower
/// requests are counted in the last bucket.
const LAST_BOUND_US: f64 = 10_000_000.0;

/// Bucket `i`'s upper bound in microseconds: log-spaced from 0.05 ms to 10 s,
/// each bound ~1.37 times the one before.
fn bound_us(i: usize) -> f64 {
    let ratio = (LAST_BOUND_US / FIRST_BOUND_US).ln() / (BUCKETS - 1) as f64;
    FIRST_BOUND_US * (ratio * i as f64).exp()
}

/// The bucket of a latency of `us` microseconds: the first whose upper bound
/// is at least `us`.
pub fn bucket_of(us: u64) -> usize {
    let us = us as f64;
    if us <= FIRST_BOUND_US {
        return 0;
    }
    let ratio = (LAST_BOUND_US / FIRST_BOUND_US).ln() / (BUCKETS - 1) as f64;
    let i = ((us / FIRST_BOUND_US).ln() / ratio).ceil() as usize;
    // Rounding may put `us` one bucket low of a bound it equals; never past
    // the last.
    let i = if bound_us(i.min(BUCKETS - 1)) < us {
        i + 1
    } else {
        i
    };
    i.min(BUCKETS - 1)
}

/// One key's figures for one UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DayStats {
    /// Days since the UNIX epoch (UTC).
    pub day: u32,
    /// Requests authenticated by the key.
    pub requests: u64,
    /// Of those, answered 4xx (429s included).
    pub errors_4xx: u64,
    /// Answered 5xx.
    pub errors_5xx: u64,
    /// Answered 429 (the key's rate limit or its credits).
    pub rate_limited: u64,
    /// Requests per latency bucket ([`BUCKETS`] entries).
    pub latency: Vec<u64>,
    /// `("METHOD /template", requests)`, in order of first use that day.
    pub by_route: Vec<(String, u64)>,
}

impl DayStats {
    /// A day without requests.
    pub fn empty(day: u32) -> DayStats {
        DayStats {
            day,
            requests: 0,
            errors_4xx: 0,
            errors_5xx: 0,
            rate_limited: 0,
            latency: vec![0; BUCKETS],
            by_route: Vec::new(),
        }
    }

    fn count(&mut self, method: &str, route: &str, status: u16, micros: u64) {
        self.requests += 1;
        match status {
            400..=499 => self.errors_4xx += 1,
            500..=599 => self.errors_5xx += 1,
            _ => {}
        }
        if status == 429 {
            self.rate_limited += 1;
        }
        if let Some(b) = self.latency.get_mut(bucket_of(micros)) {
            *b += 1;
        }
        let is = |s: &str| {
            s.len() == method.len() + 1 + route.len()
                && s.starts_with(method)
                && s.ends_with(route)
                && s.as_bytes()[method.len()] == b' '
        };
        match self.by_route.iter_mut().find(|(s, _)| is(s)) {
            Some((_, n)) => *n += 1,
            None => self.by_route.push((format!("{method} {route}"), 1)),
        }
    }

    /// Takes the larger of each counter: within a day they only grow, so
    /// this is the newer figure whichever side is older.
    fn merge(&mut self, other: &DayStats) {
        self.requests = self.requests.max(other.requests);
        self.errors_4xx = self.errors_4xx.max(other.errors_4xx);
        self.errors_5xx = self.errors_5xx.max(other.errors_5xx);
        self.rate_limited = self.rate_limited.max(other.rate_limited);
        self.latency.resize(BUCKETS, 0);
        for (mine, theirs) in self.latency.iter_mut().zip(&other.latency) {
            *mine = (*mine).max(*theirs);
        }
        for (route, n) in &other.by_route {
            match self.by_route.iter_mut().find(|(r, _)| r == route) {
                Some((_, m)) => *m = (*m).max(*n),
                None => self.by_route.push((route.clone(), *n)),
            }
        }
    }

    /// The latency under which a fraction `q` (0..=1) of the day's requests
    /// were answered, in milliseconds: the upper bound of the bucket holding
    /// that rank (so at most ~37% above the true figure). 0 for no requests.
    pub fn percentile_ms(&self, q: f64) -> f64 {
        let total: u64 = self.latency.iter().sum();
        if total == 0 {
            return 0.0;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, n) in self.latency.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return (bound_us(i) / 1000.0 * 1000.0).round() / 1000.0;
            }
        }
        LAST_BOUND_US / 1000.0
    }
}

/// One key's retained days, oldest first.
#[derive(Debug, Default)]
struct KeyDays {
    days: Vec<DayStats>,
    /// Days changed since the last flush.
    dirty_days: Vec<u32>,
}

impl KeyDays {
    /// The day to count a request of `day` in (a clock that stepped back
    /// counts on the newest day there is), created if need be.
    fn day_mut(&mut self, day: u32) -> &mut DayStats {
        let newest = self.days.last().map(|d| d.day);
        let i = match newest {
            Some(n) if n >= day => self.days.len() - 1,
            _ => {
                self.days.push(DayStats::empty(day));
                self.prune();
                self.days.len() - 1
            }
        };
        let d = self.days[i].day;
        if !self.dirty_days.contains(&d) {
            self.dirty_days.push(d);
        }
        &mut self.days[i]
    }

    /// Merges in logged figures for one day.
    fn merge(&mut self, stats: &DayStats) {
        match self.days.binary_search_by_key(&stats.day, |d| d.day) {
            Ok(i) => self.days[i].merge(stats),
            Err(i) => {
                let mut d = DayStats::empty(stats.day);
                d.merge(stats);
                self.days.insert(i, d);
            }
        }
        self.prune();
    }

    /// Keeps the days within [`ANALYTICS_DAYS`] of the newest one.
    fn prune(&mut self) {
        if let Some(newest) = self.days.last().map(|d| d.day) {
            self.days.retain(|d| d.day + ANALYTICS_DAYS > newest);
            self.dirty_days.retain(|d| d + ANALYTICS_DAYS > newest);
        }
    }
}

/// A change to analytics, as logged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnalyticsEvent {
    /// Absolute figures of the (key, day)s changed since the previous flush.
    /// Applying takes the larger of each counter.
    Set { entries: Vec<(Uuid, DayStats)> },
    /// The analytics of deleted keys go with them.
    Forget { key_ids: Vec<Uuid> },
}

/// Every key's analytics, as a snapshot stores them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalyticsImage {
    /// `(key_id, days oldest first)`.
    pub keys: Vec<(Uuid, Vec<DayStats>)>,
}

/// Every key's analytics. `Send + Sync`.
#[derive(Debug, Default)]
pub struct KeyAnalytics {
    keys: DashMap<Uuid, KeyDays>,
    /// Keys with days changed since the last flush, each listed once.
    dirty: Mutex<Vec<Uuid>>,
    /// Serialises flushes.
    flush_lock: Mutex<()>,
}

impl KeyAnalytics {
    /// Counts one request of `key_id` on `method route` (a route template),
    /// answered `status` after `micros`, at `now`.
    pub fn record(
        &self,
        key_id: Uuid,
        method: &str,
        route: &str,
        status: u16,
        micros: u64,
        now: Millis,
    ) {
        let newly_dirty = {
            let mut k = self.keys.entry(key_id).or_default();
            let was_clean = k.dirty_days.is_empty();
            k.day_mut(day_number(now))
                .count(method, route, status, micros);
            was_clean
        };
        // After the shard lock: a flush takes `dirty` first, shards after.
        if newly_dirty {
            self.dirty.lock().push(key_id);
        }
    }

    /// `days` days of `key_id`'s figures ending with the UTC day of `now`,
    /// oldest first, every day present (empty ones for days without
    /// requests).
    pub fn days(&self, key_id: Uuid, days: u32, now: Millis) -> Vec<DayStats> {
        let today = day_number(now);
        let first = today.saturating_sub(days.saturating_sub(1));
        let k = self.keys.get(&key_id);
        (first..=today)
            .map(|day| {
                k.as_ref()
                    .and_then(|k| k.days.iter().find(|d| d.day == day).cloned())
                    .unwrap_or_else(|| DayStats::empty(day))
            })
            .collect()
    }

    /// Logs the days changed since the previous flush as one
    /// [`AnalyticsEvent::Set`], and, when `exists` is given, forgets the
    /// keys it says no longer exist ([`AnalyticsEvent::Forget`]). Returns how
    /// many (key, day)s it logged.
    pub fn flush(
        &self,
        exists: Option<&dyn Fn(Uuid) -> bool>,
        emit: &mut dyn FnMut(&AnalyticsEvent),
    ) -> usize {
        let _serial = self.flush_lock.lock();
        let keys = std::mem::take(&mut *self.dirty.lock());
        let mut entries = Vec::new();
        for key_id in keys {
            if let Some(mut k) = self.keys.get_mut(&key_id) {
                let k = &mut *k;
                for day in k.dirty_days.drain(..) {
                    if let Some(d) = k.days.iter().find(|d| d.day == day) {
                        entries.push((key_id, d.clone()));
                    }
                }
            }
        }
        let n = entries.len();
        if n > 0 {
            emit(&AnalyticsEvent::Set { entries });
        }
        if let Some(exists) = exists {
            let gone: Vec<Uuid> = self
                .keys
                .iter()
                .map(|e| *e.key())
                .filter(|id| !exists(*id))
                .collect();
            if !gone.is_empty() {
                let ev = AnalyticsEvent::Forget { key_ids: gone };
                self.apply(&ev);
                emit(&ev);
            }
        }
        n
    }

    /// Applies a logged change: the same code for live changes and replay.
    pub fn apply(&self, ev: &AnalyticsEvent) {
        match ev {
            AnalyticsEvent::Set { entries } => {
                for (key_id, stats) in entries {
                    self.keys.entry(*key_id).or_default().merge(stats);
                }
            }
            AnalyticsEvent::Forget { key_ids } => {
                for key_id in key_ids {
                    self.keys.remove(key_id);
                }
            }
        }
    }

    /// Copies every key's days, one shard at a time.
    pub fn image(&self) -> AnalyticsImage {
        let mut keys: Vec<(Uuid, Vec<DayStats>)> = self
            .keys
            .iter()
            .map(|e| (*e.key(), e.days.clone()))
            .collect();
        keys.sort_by_key(|(id, _)| *id);
        AnalyticsImage { keys }
    }

    /// The analytics a snapshot describes (counted as flushed).
    pub fn restore(image: AnalyticsImage) -> KeyAnalytics {
        let a = KeyAnalytics::default();
        for (key_id, days) in image.keys {
            let mut k = KeyDays::default();
            for d in &days {
                k.merge(d);
            }
            a.keys.insert(key_id, k);
        }
        a
    }
}

#[cfg(test)]
mod tests {
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
}
