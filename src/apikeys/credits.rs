//! Credits per key: a balance that each authenticated request with the key
//! spends by one, optionally set back to an amount at each UTC day or month
//! start. Plain arithmetic on a clock value the caller passes in.
//!
//! # Durability without adjusting
//!
//! Spending is counted in memory under the key's `by_hash` shard lock (so two
//! requests never both take the last credit) and logged as absolute figures
//! by the usage flush. A set through the API bumps `generation`. States are
//! ordered by `(generation, period, fewer remaining)`, and applying a logged
//! state keeps the later of the two ([`KeyCredits::merge`]): replaying an
//! older record, or a record over a snapshot that already holds a newer
//! state, changes nothing, whatever order the flush and a set reached the log.

use serde::{Deserialize, Serialize};

use crate::clock::{day_number, Millis};

const DAY_MS: Millis = 86_400_000;

/// How often a refill happens: at each UTC day start or month start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RefillInterval {
    /// At 00:00 UTC every day.
    Daily,
    /// At 00:00 UTC on the first of every month.
    Monthly,
}

/// A refill rule: `remaining` becomes `amount` at each interval start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refill {
    /// The balance after a refill.
    pub amount: u64,
    /// When refills happen.
    pub interval: RefillInterval,
}

/// A key's credits as stored, logged and snapshotted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCredits {
    /// Credits left in the current period.
    pub remaining: u64,
    /// The refill rule, if any.
    pub refill: Option<Refill>,
    /// How many times the balance was set through the API (creation is 0): a
    /// later set outranks any spending logged before it.
    pub generation: u64,
    /// The refill period `remaining` belongs to (a day number, or a month
    /// index `year * 12 + month - 1`); 0 without a refill.
    pub period: u32,
}

impl KeyCredits {
    /// A balance set at `now` (creation: generation 0).
    pub fn new(remaining: u64, refill: Option<Refill>, generation: u64, now: Millis) -> Self {
        KeyCredits {
            remaining,
            refill,
            generation,
            period: refill.map_or(0, |r| period_of(r.interval, now)),
        }
    }

    /// Applies a refill due at `now`, if one is.
    fn refresh(&mut self, now: Millis) {
        if let Some(r) = self.refill {
            let p = period_of(r.interval, now);
            // A clock stepped back never undoes a refill.
            if p > self.period {
                self.period = p;
                self.remaining = r.amount;
            }
        }
    }

    /// Spends one credit at `now`. `Err` when none is left, holding the
    /// seconds to the next refill (at least 1), if there is a refill.
    pub(super) fn spend(&mut self, now: Millis) -> Result<(), Option<u64>> {
        self.refresh(now);
        if self.remaining == 0 {
            return Err(self.refill.map(|r| secs_to_next(r.interval, now)));
        }
        self.remaining -= 1;
        Ok(())
    }

    /// The balance as it stands at `now` (a refill due counts as done).
    pub fn remaining_at(&self, now: Millis) -> u64 {
        let mut c = *self;
        c.refresh(now);
        c.remaining
    }

    /// Keeps the later of the two states (see the module comment).
    pub(super) fn merge(&mut self, other: &KeyCredits) {
        let rank = |c: &KeyCredits| (c.generation, c.period, std::cmp::Reverse(c.remaining));
        if rank(other) > rank(self) {
            *self = *other;
        }
    }
}

/// The largest balance or refill amount accepted (well below 2^53, so that
/// every JSON client reads it exactly).
pub const MAX_CREDITS: u64 = 1_000_000_000_000;

/// What a request asks for: `{"remaining": N, "refill"?: {"amount": N,
/// "interval": "daily" | "monthly"}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditSpec {
    /// The balance to start from.
    pub remaining: u64,
    /// The refill rule, if any.
    #[serde(default)]
    pub refill: Option<Refill>,
}

impl CreditSpec {
    /// The sentence for a 400 when the figures are out of range.
    pub fn invalid(&self) -> Option<String> {
        let amount_bad = self
            .refill
            .is_some_and(|r| r.amount == 0 || r.amount > MAX_CREDITS);
        (self.remaining > MAX_CREDITS || amount_bad).then(|| {
            format!(
                "Invalid credits: give {{\"remaining\": N, \"refill\"?: {{\"amount\": A, \"interval\": \"daily\" or \"monthly\"}}}} with N from 0 and A from 1 to {MAX_CREDITS}."
            )
        })
    }
}

/// The period `now` falls in.
fn period_of(interval: RefillInterval, now: Millis) -> u32 {
    match interval {
        RefillInterval::Daily => day_number(now),
        RefillInterval::Monthly => {
            let (y, m, _) = civil_from_days(i64::from(day_number(now)));
            (y * 12 + m - 1) as u32
        }
    }
}

/// Seconds from `now` to the next period start (at least 1).
pub(super) fn secs_to_next(interval: RefillInterval, now: Millis) -> u64 {
    let next = match interval {
        RefillInterval::Daily => (now / DAY_MS + 1) * DAY_MS,
        RefillInterval::Monthly => {
            let (y, m, _) = civil_from_days(i64::from(day_number(now)));
            let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
            days_from_civil(ny, nm, 1).max(0) as Millis * DAY_MS
        }
    };
    next.saturating_sub(now).div_ceil(1000).max(1)
}

/// `(year, month 1-12, day 1-31)` of a day number (Howard Hinnant's
/// `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The day number of a civil date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-03T13:00:00Z.
    const NOW: Millis = 1_796_302_800_000;

    fn at(y: i64, m: i64, d: i64, secs: u64) -> Millis {
        days_from_civil(y, m, d) as Millis * DAY_MS + secs * 1000
    }

    #[test]
    fn civil_dates_round_trip() {
        for (y, m, d) in [(1970, 1, 1), (2024, 2, 29), (2026, 12, 31), (2100, 3, 1)] {
            assert_eq!(civil_from_days(days_from_civil(y, m, d)), (y, m, d));
        }
        assert_eq!(at(2026, 12, 3, 13 * 3600), NOW);
    }

    #[test]
    fn spending_stops_at_zero_and_daily_refill_restores_amount() {
        let refill = Refill {
            amount: 3,
            interval: RefillInterval::Daily,
        };
        let mut c = KeyCredits::new(2, Some(refill), 0, NOW);
        assert_eq!(c.spend(NOW), Ok(()));
        assert_eq!(c.spend(NOW), Ok(()));
        // 11 h to midnight UTC.
        assert_eq!(c.spend(NOW), Err(Some(11 * 3600)));
        assert_eq!(c.remaining_at(NOW), 0);
        let midnight = at(2026, 12, 4, 0);
        assert_eq!(c.spend(midnight - 1), Err(Some(1)));
        assert_eq!(c.remaining_at(midnight), 3);
        assert_eq!(c.spend(midnight), Ok(()));
        assert_eq!(c.remaining, 2);
        // A clock stepped back does not refill again or undo the refill.
        assert_eq!(c.spend(NOW), Ok(()));
        assert_eq!(c.remaining, 1);
    }

    #[test]
    fn monthly_refill_happens_at_month_start_including_year_end() {
        let refill = Refill {
            amount: 10,
            interval: RefillInterval::Monthly,
        };
        let mut c = KeyCredits::new(0, Some(refill), 0, NOW);
        let jan1 = at(2027, 1, 1, 0);
        assert_eq!(c.spend(NOW), Err(Some((jan1 - NOW) / 1000)));
        assert_eq!(c.remaining_at(at(2026, 12, 31, 86_399)), 0);
        assert_eq!(c.remaining_at(jan1), 10);
        let mut feb = KeyCredits::new(0, Some(refill), 0, at(2028, 2, 10, 0));
        assert_eq!(feb.spend(at(2028, 2, 29, 86_399)), Err(Some(1)));
        assert_eq!(feb.spend(at(2028, 3, 1, 0)), Ok(()));
        assert_eq!(feb.remaining, 9);
    }

    #[test]
    fn without_refill_zero_has_no_retry_after() {
        let mut c = KeyCredits::new(1, None, 0, NOW);
        assert_eq!(c.spend(NOW), Ok(()));
        assert_eq!(c.spend(NOW + 100 * DAY_MS), Err(None));
    }

    #[test]
    fn merge_keeps_the_later_state_in_any_order() {
        let refill = Some(Refill {
            amount: 5,
            interval: RefillInterval::Daily,
        });
        let spent = KeyCredits::new(2, refill, 0, NOW);
        let set = KeyCredits::new(100, None, 1, NOW);
        let refilled = KeyCredits::new(5, refill, 0, NOW + DAY_MS);
        let cases = [
            (KeyCredits::new(4, refill, 0, NOW), spent, spent),
            (spent, KeyCredits::new(4, refill, 0, NOW), spent),
            (spent, set, set),
            (set, spent, set),
            (spent, refilled, refilled),
            (refilled, spent, refilled),
        ];
        for (i, (mut base, other, want)) in cases.into_iter().enumerate() {
            base.merge(&other);
            assert_eq!(base, want, "case {i}");
            base.merge(&other);
            assert_eq!(base, want, "case {i} twice");
        }
    }
}
