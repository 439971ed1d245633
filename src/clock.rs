//! Time, injected. Every domain module takes a `Millis` ("now") from a [`Clock`]
//! instead of reading the system time, so that tests can move time by hand and
//! expiry tests take milliseconds, not minutes.
//!
//! Deadlines that must survive a restart (key expiry, lease release, session
//! and purchase deadlines) are wall-clock milliseconds since the UNIX epoch.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the UNIX epoch, UTC.
pub type Millis = u64;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + 'static {
    /// The current time in milliseconds since the UNIX epoch.
    fn now(&self) -> Millis;
}

/// The real wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as Millis)
            // A clock set before 1970 is a broken machine; treat it as the epoch
            // rather than panic on a request path.
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to; for tests.
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicU64,
}

impl ManualClock {
    /// A clock that reads `start`.
    pub fn new(start: Millis) -> Self {
        Self {
            now: AtomicU64::new(start),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        self.now.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }

    /// Sets the clock to `to`.
    pub fn set(&self, to: Millis) {
        self.now.store(to, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        self.now.load(Ordering::SeqCst)
    }
}

/// Formats a timestamp as an RFC 3339 UTC string with milliseconds,
/// e.g. `2026-11-22T14:30:00.123Z`.
pub fn rfc3339(at: Millis) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(at)).to_string()
}

/// Formats the UTC calendar day of a timestamp as `YYYY-MM-DD`.
pub fn day_string(at: Millis) -> String {
    let mut s = rfc3339(at);
    s.truncate(10);
    s
}

/// The number of whole days since the UNIX epoch (UTC) at `at`.
pub fn day_number(at: Millis) -> u32 {
    (at / 86_400_000) as u32
}

/// Converts a `Duration` to milliseconds, saturating.
pub fn millis(d: Duration) -> Millis {
    d.as_millis().min(u64::MAX as u128) as Millis
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_with_millis() {
        assert_eq!(rfc3339(1_795_357_800_123), "2026-11-22T14:30:00.123Z");
        assert_eq!(day_string(1_795_357_800_123), "2026-11-22");
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(1_000);
        assert_eq!(c.now(), 1_000);
        c.advance(Duration::from_secs(2));
        assert_eq!(c.now(), 3_000);
        c.set(10);
        assert_eq!(c.now(), 10);
    }
}
