//! Counting a key's uses: the total, the last use and the per-day counts of
//! the last [`USAGE_DAYS`] days, and merging two views of them.

use serde::{Deserialize, Serialize};

use super::view::USAGE_DAYS;
use crate::clock::{day_number, Millis};

/// How much a key has been used.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyUsage {
    /// Authenticated requests in all.
    pub count: u64,
    /// The last one.
    pub last_used: Option<Millis>,
    /// `(day_number, requests)` for the days with requests among the last 30,
    /// oldest first; at most 30 entries.
    pub by_day: Vec<(u32, u64)>,
}

impl KeyUsage {
    /// Counts one use at `now`.
    pub(super) fn record(&mut self, now: Millis) {
        self.count += 1;
        self.last_used = Some(self.last_used.map_or(now, |l| l.max(now)));
        let today = day_number(now);
        match self.by_day.last_mut() {
            Some((d, c)) if *d == today => *c += 1,
            // A clock that stepped back: count it on the latest day we have.
            Some((d, c)) if *d > today => *c += 1,
            _ => self.by_day.push((today, 1)),
        }
        self.prune();
    }

    /// Keeps the days within [`USAGE_DAYS`] of the newest one.
    fn prune(&mut self) {
        if let Some(&(newest, _)) = self.by_day.last() {
            self.by_day.retain(|(d, _)| d + USAGE_DAYS > newest);
        }
    }

    /// Takes the larger of each figure: usage only grows, so this is the
    /// newer state whichever side is older.
    pub(super) fn merge(&mut self, other: &KeyUsage) {
        self.count = self.count.max(other.count);
        self.last_used = self.last_used.max(other.last_used);
        for &(day, count) in &other.by_day {
            match self.by_day.binary_search_by_key(&day, |(d, _)| *d) {
                Ok(i) => self.by_day[i].1 = self.by_day[i].1.max(count),
                Err(i) => self.by_day.insert(i, (day, count)),
            }
        }
        self.prune();
    }
}
