//! The PIN half of [`Purchases`]: setting the PIN, checking it, and the
//! lockout after too many wrong ones. Its state is the `pins` map of the store
//! (one [`PinRecord`] per account); argon2 runs with no lock held.

use serde::{Deserialize, Serialize};

use super::super::pin::{validate_pin, verify_pin};
use super::super::PurchaseEvent;
use super::Purchases;
use crate::clock::Millis;
use crate::ids::AccountId;

/// A PIN check that did not pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PinCheckError {
    /// The account has set no PIN (400).
    #[error("No PIN set. Set a purchase PIN first.")]
    NoPin,
    /// The PIN given is not 4 to 8 digits (400); not counted as a failure.
    #[error("pin must be 4 to 8 digits.")]
    Invalid,
    /// The PIN is wrong (403). `remaining` wrong PINs are left before the lock;
    /// 0 means this one locked purchases (the next attempt gets `Locked`).
    #[error("Incorrect PIN.")]
    Wrong {
        /// Wrong PINs left before purchases lock.
        remaining: u32,
    },
    /// Too many wrong PINs; purchases are locked (429, `Retry-After`).
    #[error("Too many incorrect PINs. Try again in {retry_after_secs} seconds.")]
    Locked {
        /// Seconds until the lock ends (at least 1).
        retry_after_secs: u64,
    },
}

/// Per-account PIN state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinRecord {
    /// The argon2id PHC string; `None` until the account sets a PIN.
    pub pin_hash: Option<String>,
    /// Times of recent wrong PINs, ascending; at most `max_pin_failures` kept.
    pub failures: Vec<Millis>,
}

impl Purchases {
    /// Sets (or replaces) the account's PIN hash; make it with
    /// [`crate::purchase::hash_pin`] outside any lock. Failures are kept: changing the
    /// PIN does not lift a lock (callers should refuse a change while
    /// [`Self::check_lock`] fails).
    pub fn set_pin(
        &self,
        account: AccountId,
        pin_hash: String,
        emit: &mut dyn FnMut(&PurchaseEvent),
    ) {
        let mut rec = self.pins.entry(account).or_default();
        let ev = PurchaseEvent::PinSet { account, pin_hash };
        apply_pin(&mut rec, &ev);
        emit(&ev);
    }

    /// The account's PIN hash, if it has set one.
    pub fn pin_hash(&self, account: AccountId) -> Option<String> {
        self.pins.get(&account).and_then(|r| r.pin_hash.clone())
    }

    /// Whether the account has set a PIN.
    pub fn has_pin(&self, account: AccountId) -> bool {
        self.pins
            .get(&account)
            .is_some_and(|r| r.pin_hash.is_some())
    }

    /// `Err(Locked)` while too many wrong PINs lock the account's purchases.
    pub fn check_lock(&self, account: AccountId, now: Millis) -> Result<(), PinCheckError> {
        match self.pins.get(&account) {
            Some(rec) => self.lock_state(&rec.failures, now),
            None => Ok(()),
        }
    }

    /// The whole PIN step of a purchase: refuses while locked (even the right
    /// PIN), verifies the PIN against the stored argon2 hash with no lock held,
    /// then records the outcome: a wrong PIN adds a failure (and may lock), a
    /// right one clears the failures. Emits `PinFailures` only when they change.
    ///
    /// The lockout: `max_pin_failures` wrong PINs within `pin_window` lock
    /// purchases until `pin_window` after the first of them, so no account can
    /// try more than `max_pin_failures` wrong PINs in any window.
    pub fn check_pin(
        &self,
        account: AccountId,
        pin: &str,
        now: Millis,
        emit: &mut dyn FnMut(&PurchaseEvent),
    ) -> Result<(), PinCheckError> {
        if validate_pin(pin).is_err() {
            return Err(PinCheckError::Invalid);
        }
        let hash = {
            let rec = self.pins.get(&account).ok_or(PinCheckError::NoPin)?;
            self.lock_state(&rec.failures, now)?;
            rec.pin_hash.clone().ok_or(PinCheckError::NoPin)?
        };
        let right = verify_pin(pin, &hash);
        if right {
            self.clear_pin_failures(account, now, emit)
        } else {
            self.record_wrong_pin(account, now, emit)
        }
    }

    /// Records a wrong PIN at `now` and says how many remain, or that the
    /// account is (already) locked.
    pub fn record_wrong_pin(
        &self,
        account: AccountId,
        now: Millis,
        emit: &mut dyn FnMut(&PurchaseEvent),
    ) -> Result<(), PinCheckError> {
        let mut rec = self.pins.entry(account).or_default();
        // Another request may have locked the account while we verified.
        self.lock_state(&rec.failures, now)?;
        let max = self.max_failures();
        let mut failures = self.recent_failures(&rec.failures, now);
        failures.push(now);
        let keep_from = failures.len().saturating_sub(max as usize);
        failures.drain(..keep_from);
        let ev = PurchaseEvent::PinFailures { account, failures };
        apply_pin(&mut rec, &ev);
        emit(&ev);
        let remaining = max.saturating_sub(rec.failures.len() as u32);
        Err(PinCheckError::Wrong { remaining })
    }

    /// After a right PIN: forgets the wrong ones, unless the account got
    /// locked meanwhile, in which case the right PIN is refused too.
    pub fn clear_pin_failures(
        &self,
        account: AccountId,
        now: Millis,
        emit: &mut dyn FnMut(&PurchaseEvent),
    ) -> Result<(), PinCheckError> {
        let Some(mut rec) = self.pins.get_mut(&account) else {
            return Ok(());
        };
        self.lock_state(&rec.failures, now)?;
        if !rec.failures.is_empty() {
            let ev = PurchaseEvent::PinFailures {
                account,
                failures: Vec::new(),
            };
            apply_pin(&mut rec, &ev);
            emit(&ev);
        }
        Ok(())
    }

    fn max_failures(&self) -> u32 {
        // Zero would lock everyone forever; treat it as one.
        self.cfg.max_pin_failures.max(1)
    }

    /// The failures within the window that ends at `now`, oldest first.
    fn recent_failures(&self, failures: &[Millis], now: Millis) -> Vec<Millis> {
        failures
            .iter()
            .copied()
            .filter(|&f| f <= now && now - f < self.cfg.pin_window)
            .collect()
    }

    /// Locked iff at least `max` failures lie within the window ending at
    /// `now`; the lock lasts until the oldest of the last `max` leaves it.
    fn lock_state(&self, failures: &[Millis], now: Millis) -> Result<(), PinCheckError> {
        let max = self.max_failures() as usize;
        let recent = self.recent_failures(failures, now);
        if recent.len() < max {
            return Ok(());
        }
        let until = recent[recent.len() - max] + self.cfg.pin_window;
        Err(PinCheckError::Locked {
            retry_after_secs: (until - now).div_ceil(1000).max(1),
        })
    }
}

pub(super) fn apply_pin(rec: &mut PinRecord, ev: &PurchaseEvent) {
    match ev {
        PurchaseEvent::PinSet { pin_hash, .. } => rec.pin_hash = Some(pin_hash.clone()),
        PurchaseEvent::PinFailures { failures, .. } => rec.failures = failures.clone(),
        PurchaseEvent::Started { .. } | PurchaseEvent::Settled { .. } => {}
    }
}
