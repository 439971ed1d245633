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
use super::{PurchaseError, PurchaseEvent};
use crate::clock::Millis;
use crate::ids::AccountId;
use pins::apply_pin;
pub use pins::{PinCheckError, PinRecord};

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

/// `pur_` + 128 random bits in hex, from the thread's CSPRNG.
fn new_purchase_id() -> String {
    let mut raw = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut raw);
    format!("pur_{}", hex::encode(raw))
}

#[path = "store_pins.rs"]
mod pins;
#[cfg(test)]
#[path = "store_tests.rs"]
mod tests;
