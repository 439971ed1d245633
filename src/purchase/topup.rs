//! [`TopUps`]: credit top-ups (`waiting → completed`). A top-up is confirmed
//! with the purchase PIN (the same check and lockout as a purchase, in
//! `store_pins.rs`), waits `--payment-delay` like a purchase, and is then
//! settled by the same settler task, which logs `Settled` together with the
//! account's new absolute balance in one record.
//!
//! Bounds: an account keeps its newest [`MAX_KEPT`] top-ups (older completed
//! ones are pruned when a new one starts) and may have at most
//! [`MAX_WAITING`] waiting at once.
//!
//! Lock: `book`, one mutex over every top-up and its indexes. Never held
//! while another domain's lock is taken: the settler applies the balance
//! change after [`TopUps::settle`] returns.

use std::collections::{BTreeSet, HashMap};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::ids::AccountId;

/// The smallest top-up, in cents.
pub const MIN_TOPUP: u64 = 100;
/// The largest top-up, in cents.
pub const MAX_TOPUP: u64 = 100_000;
/// Top-ups kept per account; older completed ones are pruned.
pub const MAX_KEPT: usize = 1_000;
/// Top-ups one account may have waiting at once.
pub const MAX_WAITING: usize = 100;
/// How many top-ups `GET /api/user/credits` shows (the newest).
pub const MAX_SHOWN: usize = 100;

/// Where a top-up stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TopUpStatus {
    /// Payment not yet settled; settles at `settles_at`.
    Waiting,
    /// Paid: the amount was added to the balance.
    Completed,
}

impl TopUpStatus {
    /// The contract's spelling: `waiting`, `completed`.
    pub fn as_str(self) -> &'static str {
        match self {
            TopUpStatus::Waiting => "waiting",
            TopUpStatus::Completed => "completed",
        }
    }
}

/// One top-up, as logged, snapshotted and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopUp {
    /// `top_` + 32 hex digits of 128 random bits.
    pub topup_id: String,
    /// Whose balance grows.
    pub account: AccountId,
    /// Cents added at settlement.
    pub amount: u64,
    /// When it was made.
    pub created_at: Millis,
    /// When the payment settles (wall clock, so it survives a restart).
    pub settles_at: Millis,
    /// Where it stands.
    pub status: TopUpStatus,
    /// When it settled; `None` while waiting.
    pub settled_at: Option<Millis>,
}

/// A change to top-ups. Each one sets state (the idempotence rule in
/// `event.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum TopUpEvent {
    /// A top-up began; the full record, status `Waiting`. Applying it also
    /// prunes the account's oldest completed top-ups beyond [`MAX_KEPT`].
    Started {
        /// The top-up as created.
        topup: TopUp,
    },
    /// A waiting top-up completed. Logged in one record with the account's
    /// new balance.
    Settled {
        /// Which top-up.
        topup_id: String,
        /// When it settled.
        settled_at: Millis,
    },
}

/// Why a top-up could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TopUpError {
    /// The amount is outside 100 – 100000 cents (400).
    #[error("Field `amount` must be an integer number of cents from 100 to 100000.")]
    Amount,
    /// The account already has [`MAX_WAITING`] top-ups waiting (429).
    #[error("Too many top-ups are waiting for payment; try again once they complete.")]
    TooManyWaiting,
}

/// Everything [`TopUps`] holds, for a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopUpsImage {
    /// Every kept top-up, in no particular order.
    pub topups: Vec<TopUp>,
}

#[derive(Debug, Default)]
struct Book {
    /// topup_id → top-up.
    by_id: HashMap<String, TopUp>,
    /// account → its top-ups ordered by `(created_at, topup_id)`.
    by_account: HashMap<AccountId, BTreeSet<(Millis, String)>>,
    /// Waiting top-ups ordered by `(settles_at, topup_id)`.
    due: BTreeSet<(Millis, String)>,
}

impl Book {
    fn apply(&mut self, ev: &TopUpEvent) {
        match ev {
            TopUpEvent::Started { topup } => {
                if let Some(existing) = self.by_id.get(&topup.topup_id) {
                    // A replay: a completed top-up never goes back to waiting.
                    if existing.status != TopUpStatus::Waiting {
                        return;
                    }
                    self.due
                        .remove(&(existing.settles_at, existing.topup_id.clone()));
                }
                self.by_account
                    .entry(topup.account)
                    .or_default()
                    .insert((topup.created_at, topup.topup_id.clone()));
                if topup.status == TopUpStatus::Waiting {
                    self.due.insert((topup.settles_at, topup.topup_id.clone()));
                }
                self.by_id.insert(topup.topup_id.clone(), topup.clone());
                self.prune(topup.account);
            }
            TopUpEvent::Settled {
                topup_id,
                settled_at,
            } => {
                if let Some(t) = self.by_id.get_mut(topup_id) {
                    self.due.remove(&(t.settles_at, t.topup_id.clone()));
                    t.status = TopUpStatus::Completed;
                    t.settled_at = Some(*settled_at);
                }
            }
        }
    }

    /// Drops the account's oldest completed top-ups while it has more than
    /// [`MAX_KEPT`]. Depends only on the state, so replaying gives the same.
    fn prune(&mut self, account: AccountId) {
        let Some(ids) = self.by_account.get_mut(&account) else {
            return;
        };
        if ids.len() <= MAX_KEPT {
            return;
        }
        let excess = ids.len() - MAX_KEPT;
        let gone: Vec<(Millis, String)> = ids
            .iter()
            .filter(|(_, id)| {
                self.by_id
                    .get(id)
                    .is_some_and(|t| t.status == TopUpStatus::Completed)
            })
            .take(excess)
            .cloned()
            .collect();
        for k in gone {
            ids.remove(&k);
            self.by_id.remove(&k.1);
        }
    }

    fn waiting_of(&self, account: AccountId) -> usize {
        self.by_account.get(&account).map_or(0, |ids| {
            ids.iter()
                .filter(|(_, id)| {
                    self.by_id
                        .get(id)
                        .is_some_and(|t| t.status == TopUpStatus::Waiting)
                })
                .count()
        })
    }
}

/// Every account's top-ups. `Send + Sync`.
#[derive(Debug)]
pub struct TopUps {
    /// How long a top-up waits (`--payment-delay`).
    payment_delay: Millis,
    /// Never held across an await nor while another domain's lock is taken.
    book: Mutex<Book>,
}

impl TopUps {
    /// An empty store whose top-ups wait `payment_delay`.
    pub fn new(payment_delay: Millis) -> Self {
        Self {
            payment_delay,
            book: Mutex::new(Book::default()),
        }
    }

    /// Checks an amount (cents) against the contract's range.
    pub fn validate_amount(amount: u64) -> Result<(), TopUpError> {
        if (MIN_TOPUP..=MAX_TOPUP).contains(&amount) {
            Ok(())
        } else {
            Err(TopUpError::Amount)
        }
    }

    /// Starts a top-up of `amount` cents for `account` at `now`; the caller
    /// has checked the PIN. The one place a top-up is created.
    pub fn start(
        &self,
        account: AccountId,
        amount: u64,
        now: Millis,
        emit: &mut dyn FnMut(&TopUpEvent),
    ) -> Result<TopUp, TopUpError> {
        Self::validate_amount(amount)?;
        let mut book = self.book.lock();
        if book.waiting_of(account) >= MAX_WAITING {
            return Err(TopUpError::TooManyWaiting);
        }
        let topup = TopUp {
            topup_id: new_topup_id(),
            account,
            amount,
            created_at: now,
            settles_at: now.saturating_add(self.payment_delay),
            status: TopUpStatus::Waiting,
            settled_at: None,
        };
        let ev = TopUpEvent::Started {
            topup: topup.clone(),
        };
        book.apply(&ev);
        emit(&ev);
        Ok(topup)
    }

    /// The top-up with this id.
    pub fn get(&self, topup_id: &str) -> Option<TopUp> {
        self.book.lock().by_id.get(topup_id).cloned()
    }

    /// The account's newest `limit` top-ups, newest first.
    pub fn of_account(&self, account: AccountId, limit: usize) -> Vec<TopUp> {
        let book = self.book.lock();
        book.by_account
            .get(&account)
            .into_iter()
            .flat_map(|ids| ids.iter().rev())
            .filter_map(|(_, id)| book.by_id.get(id).cloned())
            .take(limit)
            .collect()
    }

    /// Waiting top-ups with `settles_at <= now`, earliest first.
    pub fn due(&self, now: Millis) -> Vec<TopUp> {
        let book = self.book.lock();
        book.due
            .iter()
            .take_while(|(at, _)| *at <= now)
            .filter_map(|(_, id)| book.by_id.get(id).cloned())
            .collect()
    }

    /// The earliest `settles_at` of any waiting top-up.
    pub fn next_settlement(&self) -> Option<Millis> {
        self.book.lock().due.first().map(|(at, _)| *at)
    }

    /// Completes a waiting top-up: applies `Settled` and calls `emit` (which
    /// should log it in one record with the new balance) under the book lock,
    /// so a second call finds it completed and returns `None` without
    /// emitting.
    pub fn settle(
        &self,
        topup_id: &str,
        now: Millis,
        emit: &mut dyn FnMut(&TopUpEvent),
    ) -> Option<TopUp> {
        let mut book = self.book.lock();
        if book.by_id.get(topup_id)?.status != TopUpStatus::Waiting {
            return None;
        }
        let ev = TopUpEvent::Settled {
            topup_id: topup_id.to_string(),
            settled_at: now,
        };
        book.apply(&ev);
        emit(&ev);
        book.by_id.get(topup_id).cloned()
    }

    /// Applies an event: the same code for live changes and replay.
    pub fn apply(&self, ev: &TopUpEvent) {
        self.book.lock().apply(ev);
    }

    /// A copy of everything, for a snapshot.
    pub fn image(&self) -> TopUpsImage {
        TopUpsImage {
            topups: self.book.lock().by_id.values().cloned().collect(),
        }
    }

    /// A store holding what `image` held.
    pub fn restore(payment_delay: Millis, image: TopUpsImage) -> Self {
        let s = Self::new(payment_delay);
        {
            let mut book = s.book.lock();
            let mut all = image.topups;
            all.sort_by(|a, b| (a.created_at, &a.topup_id).cmp(&(b.created_at, &b.topup_id)));
            for topup in all {
                book.apply(&TopUpEvent::Started { topup });
            }
        }
        s
    }
}

/// `top_` + 128 random bits in hex, from the thread's CSPRNG.
fn new_topup_id() -> String {
    let mut raw = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut raw);
    format!("top_{}", hex::encode(raw))
}

#[cfg(test)]
#[path = "topup_tests.rs"]
mod tests;
