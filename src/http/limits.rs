//! Rate limits, with governor's GCRA limiters: per client IP for anonymous
//! traffic (`--ip-rate-limit`: `/register`, `/login`, and requests whose
//! credential is missing or wrong), and per API key for keys created with a
//! `rate_limit`. The daily cap on key creation is domain state (`apikeys`),
//! because it must survive restarts.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use uuid::Uuid;

use crate::apikeys::KeyRateLimit;
use crate::config::Rate;

/// How often the per-IP table drops IPs that are back to full allowance.
const PRUNE_EVERY: u64 = 4096;

/// The server's rate limiters.
pub struct Limits {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    /// Limiters of keys that have a `rate_limit`, created on first use.
    per_key: DashMap<Uuid, (KeyRateLimit, DefaultDirectRateLimiter)>,
    checks: AtomicU64,
    clock: DefaultClock,
}

/// `n` per `per`, allowing a burst of `n`.
fn quota(n: u32, per: Duration) -> Quota {
    let n = NonZeroU32::new(n.max(1)).unwrap_or(NonZeroU32::MIN);
    let period = (per / n.get()).max(Duration::from_nanos(1));
    Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(n))
        .allow_burst(n)
}

impl Limits {
    /// Limiters with the per-IP rate `ip`.
    pub fn new(ip: Rate) -> Limits {
        Limits {
            per_ip: RateLimiter::keyed(quota(ip.count, ip.per)),
            per_key: DashMap::new(),
            checks: AtomicU64::new(0),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one anonymous request from `ip`; `Err(seconds to wait)` when over.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), u64> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            self.per_ip.retain_recent();
        }
        self.per_ip
            .check_key(&ip)
            .map_err(|not_until| ceil_secs(not_until.wait_time_from(self.clock.now())))
    }

    /// Counts one request made with API key `key_id` whose limit is `limit`.
    pub fn check_key(&self, key_id: Uuid, limit: KeyRateLimit) -> Result<(), u64> {
        let entry = self.per_key.entry(key_id).or_insert_with(|| {
            (
                limit,
                RateLimiter::direct(quota(
                    limit.limit,
                    Duration::from_secs(limit.window_secs.max(1) as u64),
                )),
            )
        });
        entry
            .1
            .check()
            .map_err(|not_until| ceil_secs(not_until.wait_time_from(self.clock.now())))
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_limit_allows_the_burst_then_refuses_with_a_wait() {
        let l = Limits::new(Rate {
            count: 3,
            per: Duration::from_secs(60),
        });
        let ip: IpAddr = "127.0.0.1".parse().unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(l.check_ip(ip).is_ok());
        }
        let wait = l.check_ip(ip).unwrap_err();
        assert!((1..=20).contains(&wait), "{wait}");
        assert!(l.check_ip(other).is_ok(), "limits are per IP");
    }

    #[test]
    fn key_limit() {
        let l = Limits::new(Rate {
            count: 3,
            per: Duration::from_secs(60),
        });
        let k = Uuid::new_v4();
        let lim = KeyRateLimit {
            limit: 2,
            window_secs: 60,
        };
        assert!(l.check_key(k, lim).is_ok());
        assert!(l.check_key(k, lim).is_ok());
        assert!(l.check_key(k, lim).is_err());
        assert!(l.check_key(Uuid::new_v4(), lim).is_ok());
    }
}
