//! Purchases: the video catalog, per-account purchases that wait for a
//! payment to settle, the purchase PIN with its lockout, and the signed tokens
//! and byte ranges that gate streaming.
//!
//! Plain Rust: this module knows nothing of HTTP, JSON bodies, tokio or the
//! disk (apart from checking that catalog files exist). Time comes in as
//! `now: Millis`. Every change is a [`PurchaseEvent`] applied by the same
//! [`Purchases::apply`] that replay uses. Account balances are not kept here:
//! the caller reads the balance for [`Purchases::start`] and, at settlement,
//! logs the `Settled` event together with the new balance in one record.
//!
//! - `catalog.rs`: [`Catalog`], [`Video`], [`VideoSource`]
//! - `store.rs`: [`Purchases`], the state machine `waiting → purchased | failed`, PIN lockout
//! - `pin.rs`: [`hash_pin`], [`verify_pin`] (argon2id)
//! - `stream.rs`: [`StreamSigner`] tokens and [`parse_range`]
//! - `topup.rs`: [`TopUps`], credit top-ups `waiting → completed` (PIN as for purchases)

mod catalog;
mod pin;
mod store;
mod stream;
mod topup;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::ids::AccountId;

pub use catalog::{Catalog, CatalogError, Video, VideoSource, FEATURED_ID, SAMPLE_MP4};
pub use pin::{
    hash_pin, hash_pin_with, validate_pin, verify_pin, PinFormatError, MAX_PIN_LEN, MIN_PIN_LEN,
};
pub use store::{
    PinCheckError, PinRecord, Purchase, PurchaseConfig, PurchaseStatus, Purchases, PurchasesImage,
    StartOutcome,
};
pub use stream::{parse_range, RangeError, StreamError, StreamSigner};
pub use topup::{
    TopUp, TopUpError, TopUpEvent, TopUpStatus, TopUps, TopUpsImage, MAX_KEPT, MAX_SHOWN,
    MAX_TOPUP, MAX_WAITING, MIN_TOPUP,
};

/// A change to purchases or PINs. Each one *sets* state (see the idempotence
/// rule in `event.rs`), so replaying it over a state that already has it is
/// harmless.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PurchaseEvent {
    /// A purchase began; the full record, status `Waiting`.
    Started {
        /// The purchase as created.
        purchase: Purchase,
    },
    /// A waiting purchase settled. The caller logs it in the same record as
    /// the balance it took, so that both or neither survive a crash.
    Settled {
        /// Which purchase.
        purchase_id: String,
        /// `Purchased` or `Failed`.
        status: PurchaseStatus,
        /// When it settled.
        settled_at: Millis,
    },
    /// The account's PIN is now this argon2id hash.
    PinSet {
        /// Whose PIN.
        account: AccountId,
        /// PHC string.
        pin_hash: String,
    },
    /// The account's recent wrong PINs are now exactly these (empty after a
    /// right PIN).
    PinFailures {
        /// Whose PIN.
        account: AccountId,
        /// Times of the wrong PINs that still count, ascending.
        failures: Vec<Millis>,
    },
}

/// Why a purchase could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PurchaseError {
    /// The balance does not cover the price plus the account's other waiting
    /// purchases (402).
    #[error("Insufficient balance.")]
    InsufficientBalance,
}
