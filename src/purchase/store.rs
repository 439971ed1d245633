//! [`Purchases`]: per-account purchases (`waiting → purchased | failed`), the
//! settlement deadline index, and per-account PIN state with its lockout.
//!
//! Locks: `book` (one mutex over every purchase and its indexes) and `pins` (a
//! dashmap, one shard lock per group of accounts). No method holds both, and no
//! method calls out to argon2 while holding either. Callers that settle a
//! purchase together with a balance change take the account's lock first and
//! then call [`Purchases::settle`], so the order is always account → book.

use std::collections::{BTreeSet, HashMap};

use dashmap::DashMap;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::catalog::Video;
use super::pin::{validate_pin, verify_pin};
use super::{PurchaseError, PurchaseEvent};
use crate::clock::Millis;
use crate::ids::AccountId;

/// Tunables, from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurchaseConfig {
    /// How long a purchase stays waiting before it settles (`--payment-delay`).
    pub payment_delay: Millis,
    /// Wrong PINs within `pin_window` that lock purchases (5).
    pub max_pin_failures: u32,
    /// The window over which wrong PINs are counted, and the lock's length (15 min).
    pub pin_window: Millis,
}

impl Default for PurchaseConfig {
    fn default() -> Self {
        Self {
            payment_delay: 2_000,
            max_pin_failures: 5,
            pin_window: 15 * 60 * 1000,
        }
    }
}

/// Where a purchase stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PurchaseStatus {
    /// Payment not yet settled; settles at `settles_at`.
    Waiting,
    /// Paid: the account may stream the video.
    Purchased,
    /// The balance did not cover the price at settlement.
    Failed,
}

impl PurchaseStatus {
    /// The contract's spelling: `waiting`, `purchased`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            PurchaseStatus::Waiting => "waiting",
            PurchaseStatus::Purchased => "purchased",
            PurchaseStatus::Failed => "failed",
        }
    }
}

/// One purchase, as logged, snapshotted and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Purchase {
    /// `pur_` + 32 hex digits of 128 random bits: unguessable, so polling
    /// `GET /video/purchase/{id}` needs no credential.
    pub purchase_id: String,
    /// The buyer.
    pub account: AccountId,
    /// The catalog id of the video bought.
    pub video_id: String,
    /// The price at the time of purchase, in credits (cents of `currency`).
    pub price: u64,
    /// The currency the price was in.
    pub currency: String,
    /// When the purchase was made.
    pub created_at: Millis,
    /// When the payment settles (wall clock, so it survives a restart).
    pub settles_at: Millis,
    /// Where it stands.
    pub status: PurchaseStatus,
    /// When it settled; `None` while waiting.
    pub settled_at: Option<Millis>,
}

/// What [`Purchases::start`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// A new waiting purchase (answer 202 with its id).
    Started(Purchase),
    /// The account already has a waiting purchase of this video: nothing new
    /// was charged; answer 202 with the existing id.
    AlreadyWaiting(Purchase),
    /// The account already owns this video: answer 200 `purchased`.
    AlreadyPurchased(Purchase),
}

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

/// Everything [`Purchases`] holds, for a snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchasesImage {
    /// Every purchase, in no particular order.
    pub purchases: Vec<Purchase>,
    /// PIN state of every account that has any.
    pub pins: Vec<(AccountId, PinRecord)>,
}

/// Purchases and their indexes, behind one mutex: purchases are few per
/// account and the routes that change them are not hot.
#[derive(Debug, Default)]
struct Book {
    /// purchase_id → purchase.
    by_id: HashMap<String, Purchase>,
    /// account → its purchase ids (all videos, all states), in insertion order.
    by_account: HashMap<AccountId, Vec<String>>,
    /// Waiting purchases ordered by `(settles_at, purchase_id)`: `due` and
    /// `next_settlement` cost O(log n) plus what they return.
    due: BTreeSet<(Millis, String)>,
}

impl Book {
    fn apply(&mut self, ev: &PurchaseEvent) {
        match ev {
            PurchaseEvent::Started { purchase } => {
                if let Some(existing) = self.by_id.get(&purchase.purchase_id) {
                    // A Started for a known id is a replay. A settled purchase
                    // never goes back to waiting: its Settled event follows in
                    // the log anyway, and keeping the settled state makes the
                    // replay order-insensitive.
                    if existing.status != PurchaseStatus::Waiting {
                        return;
                    }
                    self.due
                        .remove(&(existing.settles_at, existing.purchase_id.clone()));
                } else {
                    self.by_account
                        .entry(purchase.account)
                        .or_default()
                        .push(purchase.purchase_id.clone());
                }
                if purchase.status == PurchaseStatus::Waiting {
                    self.due
                        .insert((purchase.settles_at, purchase.purchase_id.clone()));
                }
                self.by_id
                    .insert(purchase.purchase_id.clone(), purchase.clone());
            }
            PurchaseEvent::Settled {
                purchase_id,
                status,
                settled_at,
            } => {
                // An unknown id cannot happen (Started precedes Settled in the
                // log and both are replayed); ignoring it is the safe answer.
                if let Some(p) = self.by_id.get_mut(purchase_id) {
                    self.due.remove(&(p.settles_at, p.purchase_id.clone()));
                    p.status = *status;
                    p.settled_at = if *status == PurchaseStatus::Waiting {
                        None
                    } else {
                        Some(*settled_at)
                    };
                    if p.status == PurchaseStatus::Waiting {
                        self.due.insert((p.settles_at, p.purchase_id.clone()));
                    }
                }
            }
            PurchaseEvent::PinSet { .. } | PurchaseEvent::PinFailures { .. } => {}
        }
    }

    fn of_account(&self, account: AccountId) -> impl Iterator<Item = &Purchase> {
        self.by_account
            .get(&account)
            .into_iter()
            .flatten()
            .filter_map(|id| self.by_id.get(id))
    }

    /// The purchase that decides the status of (account, video): a purchased
    /// one, else a waiting one, else the most recent failed one.
    fn latest(&self, account: AccountId, video_id: &str) -> Option<&Purchase> {
        let rank = |p: &Purchase| match p.status {
            PurchaseStatus::Purchased => 2,
            PurchaseStatus::Waiting => 1,
            PurchaseStatus::Failed => 0,
        };
        self.of_account(account)
            .filter(|p| p.video_id == video_id)
            .max_by(|a, b| {
                (rank(a), a.created_at, &a.purchase_id).cmp(&(
                    rank(b),
                    b.created_at,
                    &b.purchase_id,
                ))
            })
    }
}

/// Per-account purchases and PINs. `Send + Sync`; see the module doc for locks.
#[derive(Debug)]
pub struct Purchases {
    cfg: PurchaseConfig,
    /// Never held across an await (domain code is synchronous) nor while
    /// hashing.
    book: Mutex<Book>,
    /// PIN hash and recent failures per account.
    pins: DashMap<AccountId, PinRecord>,
}

impl Purchases {
    /// An empty store.
    pub fn new(cfg: PurchaseConfig) -> Self {
        Self {
            cfg,
            book: Mutex::new(Book::default()),
            pins: DashMap::new(),
        }
    }

    /// The configuration this store runs with.
    pub fn config(&self) -> &PurchaseConfig {
        &self.cfg
    }

    // ----- PIN -----

    /// Sets (or replaces) the account's PIN hash; make it with
    /// [`super::hash_pin`] outside any lock. Failures are kept: changing the
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
        let mut failures: Vec<Millis> = rec
            .failures
            .iter()
            .copied()
            .filter(|&f| f <= now && now - f < self.cfg.pin_window)
            .collect();
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

    /// Locked iff at least `max` failures lie within the window ending at
    /// `now`; the lock lasts until the oldest of the last `max` leaves it.
    fn lock_state(&self, failures: &[Millis], now: Millis) -> Result<(), PinCheckError> {
        let max = self.max_failures() as usize;
        let recent: Vec<Millis> = failures
            .iter()
            .copied()
            .filter(|&f| f <= now && now - f < self.cfg.pin_window)
            .collect();
        if recent.len() < max {
            return Ok(());
        }
        let until = recent[recent.len() - max] + self.cfg.pin_window;
        Err(PinCheckError::Locked {
            retry_after_secs: (until - now).div_ceil(1000).max(1),
        })
    }

    // ----- purchases -----

    /// Starts a purchase of `video` for `account` at `now`, unless it already
    /// owns the video or has a waiting purchase of it. `balance` is the
    /// account's balance now: a new purchase needs it to cover the price plus
    /// every other waiting purchase of the account
    /// (`Err(InsufficientBalance)`, 402); settlement checks again.
    pub fn start(
        &self,
        account: AccountId,
        video: &Video,
        balance: u64,
        now: Millis,
        emit: &mut dyn FnMut(&PurchaseEvent),
    ) -> Result<StartOutcome, PurchaseError> {
        let mut book = self.book.lock();
        if let Some(p) = book.latest(account, &video.id) {
            match p.status {
                PurchaseStatus::Purchased => return Ok(StartOutcome::AlreadyPurchased(p.clone())),
                PurchaseStatus::Waiting => return Ok(StartOutcome::AlreadyWaiting(p.clone())),
                PurchaseStatus::Failed => {}
            }
        }
        let committed: u64 = book
            .of_account(account)
            .filter(|p| p.status == PurchaseStatus::Waiting)
            .map(|p| p.price)
            .fold(0u64, u64::saturating_add);
        if committed.saturating_add(video.price) > balance {
            return Err(PurchaseError::InsufficientBalance);
        }
        let purchase = Purchase {
            purchase_id: new_purchase_id(),
            account,
            video_id: video.id.clone(),
            price: video.price,
            currency: video.currency.clone(),
            created_at: now,
            settles_at: now.saturating_add(self.cfg.payment_delay),
            status: PurchaseStatus::Waiting,
            settled_at: None,
        };
        let ev = PurchaseEvent::Started {
            purchase: purchase.clone(),
        };
        book.apply(&ev);
        emit(&ev);
        Ok(StartOutcome::Started(purchase))
    }

    /// The purchase with this id.
    pub fn get(&self, purchase_id: &str) -> Option<Purchase> {
        self.book.lock().by_id.get(purchase_id).cloned()
    }

    /// The purchase that decides `status` in `/video/info` for this account
    /// and video: a purchased one, else a waiting one, else the latest failed.
    pub fn latest(&self, account: AccountId, video_id: &str) -> Option<Purchase> {
        self.book.lock().latest(account, video_id).cloned()
    }

    /// Whether the account owns the video (may stream it).
    pub fn has_purchased(&self, account: AccountId, video_id: &str) -> bool {
        self.latest(account, video_id)
            .is_some_and(|p| p.status == PurchaseStatus::Purchased)
    }

    /// Every purchase of the account, oldest first.
    pub fn of_account(&self, account: AccountId) -> Vec<Purchase> {
        let book = self.book.lock();
        let mut v: Vec<Purchase> = book.of_account(account).cloned().collect();
        v.sort_by(|a, b| (a.created_at, &a.purchase_id).cmp(&(b.created_at, &b.purchase_id)));
        v
    }

    /// Waiting purchases with `settles_at <= now`, earliest first.
    pub fn due(&self, now: Millis) -> Vec<Purchase> {
        let book = self.book.lock();
        book.due
            .iter()
            .take_while(|(at, _)| *at <= now)
            .filter_map(|(_, id)| book.by_id.get(id).cloned())
            .collect()
    }

    /// The earliest `settles_at` of any waiting purchase (for the settlement
    /// task's sleep).
    pub fn next_settlement(&self) -> Option<Millis> {
        self.book.lock().due.first().map(|(at, _)| *at)
    }

    /// The `Settled` event that would settle this purchase now (`ok`: paid,
    /// else failed), or `None` if it is unknown or not waiting. Builds only:
    /// the caller applies it with [`Self::apply`] and logs it in one record
    /// with the balance change. Prefer [`Self::settle`], which cannot settle
    /// a purchase twice when two callers race.
    pub fn settle_event(&self, purchase_id: &str, ok: bool, now: Millis) -> Option<PurchaseEvent> {
        let book = self.book.lock();
        settled_event(&book, purchase_id, ok, now)
    }

    /// Settles a waiting purchase: builds `Settled`, applies it and calls
    /// `emit` (which should debit the balance when `ok` and log both in one
    /// record) while holding the book lock, so a second call for the same
    /// purchase finds it settled and returns `None` without emitting.
    pub fn settle(
        &self,
        purchase_id: &str,
        ok: bool,
        now: Millis,
        emit: &mut dyn FnMut(&PurchaseEvent),
    ) -> Option<Purchase> {
        let mut book = self.book.lock();
        let ev = settled_event(&book, purchase_id, ok, now)?;
        book.apply(&ev);
        emit(&ev);
        book.by_id.get(purchase_id).cloned()
    }

    // ----- replay and snapshots -----

    /// Applies an event: the same code for live changes and for replay.
    /// Idempotent: every event sets state.
    pub fn apply(&self, ev: &PurchaseEvent) {
        match ev {
            PurchaseEvent::Started { .. } | PurchaseEvent::Settled { .. } => {
                self.book.lock().apply(ev)
            }
            PurchaseEvent::PinSet { account, .. } | PurchaseEvent::PinFailures { account, .. } => {
                apply_pin(&mut self.pins.entry(*account).or_default(), ev)
            }
        }
    }

    /// A copy of everything, for a snapshot: the book under its lock, then the
    /// PINs shard by shard.
    pub fn image(&self) -> PurchasesImage {
        let purchases = self.book.lock().by_id.values().cloned().collect();
        let pins = self
            .pins
            .iter()
            .map(|r| (*r.key(), r.value().clone()))
            .collect();
        PurchasesImage { purchases, pins }
    }

    /// A store holding what `image` held.
    pub fn restore(cfg: PurchaseConfig, image: PurchasesImage) -> Self {
        let s = Self::new(cfg);
        {
            let mut book = s.book.lock();
            for purchase in image.purchases {
                book.apply(&PurchaseEvent::Started { purchase });
            }
        }
        for (account, rec) in image.pins {
            s.pins.insert(account, rec);
        }
        s
    }
}

fn settled_event(book: &Book, purchase_id: &str, ok: bool, now: Millis) -> Option<PurchaseEvent> {
    let p = book.by_id.get(purchase_id)?;
    if p.status != PurchaseStatus::Waiting {
        return None;
    }
    Some(PurchaseEvent::Settled {
        purchase_id: p.purchase_id.clone(),
        status: if ok {
            PurchaseStatus::Purchased
        } else {
            PurchaseStatus::Failed
        },
        settled_at: now,
    })
}

fn apply_pin(rec: &mut PinRecord, ev: &PurchaseEvent) {
    match ev {
        PurchaseEvent::PinSet { pin_hash, .. } => rec.pin_hash = Some(pin_hash.clone()),
        PurchaseEvent::PinFailures { failures, .. } => rec.failures = failures.clone(),
        PurchaseEvent::Started { .. } | PurchaseEvent::Settled { .. } => {}
    }
}

/// `pur_` + 128 random bits in hex, from the thread's CSPRNG.
fn new_purchase_id() -> String {
    let mut raw = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut raw);
    format!("pur_{}", hex::encode(raw))
}

#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
