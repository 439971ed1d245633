//! API keys: creation, verification on every authenticated request, usage
//! counting, listing, revocation and deletion (seeds 000, 001, 003, 004).
//!
//! This module is plain Rust: no HTTP, no tokio, no clock (callers pass
//! `now`). It never stores or logs a key: only its SHA-256 and its 12-character
//! display prefix. The full key exists in [`NewKey`] once, for the response
//! that shows it, and `NewKey`'s `Debug` hides it.
//!
//! Verification ([`ApiKeys::verify`]) is on the hot path of every pool
//! request: a format and checksum check, one SHA-256, one `DashMap` lookup and
//! a short per-shard critical section that counts the use. Uses are logged in
//! batches by [`ApiKeys::flush_usage`], never one record per request.
//!
//! Locks are taken in one order: an owner's entry in `owners`, then `by_id`,
//! then `by_hash`; the dirty list and the flush lock are never taken while a
//! map shard is held (see `store.rs`).

mod access;
mod analytics;
mod credits;
mod format;
mod request;
mod store;
mod usage;
mod view;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::Millis;
use crate::ids::AccountId;

pub use access::{
    valid_scope_name, Cidr, KeyAccess, Role, Scope, ScopeSet, MAX_ALLOWED_IPS, MAX_META_BYTES,
    MAX_SCOPES,
};
pub use analytics::{AnalyticsEvent, AnalyticsImage, DayStats, KeyAnalytics, ANALYTICS_DAYS};
pub use credits::{CreditSpec, KeyCredits, Refill, RefillInterval, MAX_CREDITS};
pub use format::{
    check_format, display_prefix, generate_key, key_hash, FormatError, DISPLAY_PREFIX_LEN, KEY_LEN,
    KEY_PREFIX,
};
pub use store::{ApiKeys, CheckedKey, KeyCheck, KeyStatus, MAX_GRACE_SECS};
pub use usage::KeyUsage;
pub use view::{DayCount, KeyPreference, KeyView, USAGE_DAYS};

/// The settings of the API keys domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeysConfig {
    /// Keys one account may create in any rolling 24 h (`--keys-per-day`),
    /// counting keys later revoked or deleted.
    pub keys_per_day: u32,
}

impl ApiKeysConfig {
    /// The API key settings of a parsed command line.
    pub fn from_config(c: &crate::config::Config) -> Self {
        ApiKeysConfig {
            keys_per_day: c.keys_per_day,
        }
    }
}

/// A per-key rate limit, stored with the key and enforced by the HTTP layer's
/// limiter: at most `limit` requests per `window_secs` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRateLimit {
    /// Requests allowed per window (at least 1).
    pub limit: u32,
    /// The window in seconds (1 to 86 400).
    pub window_secs: u32,
}

/// What a caller asks for when creating a key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateKey {
    /// A human-readable name, 1–64 characters; unique among the owner's live
    /// (neither revoked nor expired) keys.
    pub name: Option<String>,
    /// Lifetime in seconds from creation (1 s to 10 years); `None` = no expiry.
    pub expires_in: Option<u64>,
    /// An optional per-key rate limit.
    pub rate_limit: Option<KeyRateLimit>,
    /// Whether this is the account's primary key (seed 003's "the key").
    /// Callers normally use [`ApiKeys::replace_primary`] instead, which also
    /// revokes the previous one.
    pub primary: bool,
    /// Scopes, allowed addresses (and `disabled`, always false at creation).
    pub access: KeyAccess,
    /// Its credits; `None` = unmetered.
    pub credits: Option<CreditSpec>,
}

/// A key just created. `key` is the only copy of the secret anywhere: show it
/// to the user once and drop it.
#[derive(Clone, PartialEq, Eq)]
pub struct NewKey {
    /// The full key, `sk_live_…`.
    pub key: String,
    /// The key's id.
    pub key_id: Uuid,
    /// The first 12 characters of the key.
    pub key_prefix: String,
    /// When it was created.
    pub created_at: Millis,
    /// When it expires, if it does.
    pub expires_at: Option<Millis>,
}

impl std::fmt::Debug for NewKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewKey")
            .field("key", &"<redacted>")
            .field("key_id", &self.key_id)
            .field("key_prefix", &self.key_prefix)
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Who a verified key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyAuth {
    /// The account the key acts for.
    pub owner: AccountId,
    /// The key's id (the key for the HTTP layer's per-key limiter).
    pub key_id: Uuid,
    /// The key's own rate limit, if it has one.
    pub rate_limit: Option<KeyRateLimit>,
    /// Its built-in scopes.
    pub scopes: ScopeSet,
    /// Its credits left after this use, if it is metered.
    pub credits_remaining: Option<u64>,
}

/// Why a key management operation was refused. The `Display` text is the
/// sentence for `{"error": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    /// A field of the request is invalid (HTTP 400); `field` names it.
    #[error("{message}")]
    Invalid {
        /// `name`, `expires_in` or `rate_limit`.
        field: &'static str,
        /// A sentence naming the field and what is wrong with it.
        message: String,
    },
    /// The owner already has a live key with this name (HTTP 409).
    #[error("An API key with that name already exists.")]
    NameTaken,
    /// The owner created `keys_per_day` keys in the last 24 h (HTTP 429 with
    /// `Retry-After: retry_after_secs`).
    #[error("Rate limit exceeded. Try again later.")]
    DailyLimit {
        /// Seconds until one more key may be created (at least 1).
        retry_after_secs: u64,
    },
    /// The caller has no such key (HTTP 404). Another account's key is "not
    /// found" too, so that nobody can probe for other accounts' keys.
    #[error("API key not found.")]
    NotFound,
    /// The key cannot be rotated (HTTP 409): it was rotated already, or it
    /// is revoked or expired. The text is the sentence.
    #[error("{0}")]
    NotRotatable(&'static str),
    /// A `key_prefix` matches more than one of the caller's live keys; nothing
    /// was revoked (HTTP 409).
    #[error(
        "More than one of your API keys has that prefix; revoke it by its key_id or the full key."
    )]
    AmbiguousPrefix,
}

/// Why a presented key does not authenticate. All map to HTTP 401 except
/// [`KeyAuthError::AddressRefused`] (403).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyAuthError {
    /// Not shaped like one of our keys, or its checksum is wrong: refused
    /// before any lookup.
    #[error("The API key looks mistyped: it {0}. Copy it again.")]
    Malformed(FormatError),
    /// Well-formed, but no key has this hash (never issued, or deleted).
    #[error("Invalid API key.")]
    Unknown,
    /// The key was revoked.
    #[error("This API key has been revoked.")]
    Revoked,
    /// The key outlived its `expires_in`.
    #[error("This API key has expired.")]
    Expired,
    /// The key is disabled (until enabled again).
    #[error("This API key is disabled.")]
    Disabled,
    /// The key has an IP allowlist and the peer is not on it.
    #[error("This API key may not be used from this address.")]
    AddressRefused,
    /// The key was rotated and its grace period is over.
    #[error("This API key was rotated; use its replacement.")]
    Rotated,
    /// The key is metered and has no credits left (HTTP 429).
    #[error("This API key has no credits left.")]
    NoCredits {
        /// Seconds to its next refill, if it has a refill.
        retry_after_secs: Option<u64>,
    },
}

/// One key as stored: in memory, in snapshots and in
/// [`ApiKeyEvent::Created`]. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    /// The key's id (uuid v4).
    pub key_id: Uuid,
    /// The account it acts for.
    pub owner: AccountId,
    /// Its human-readable name.
    pub name: Option<String>,
    /// SHA-256 of the full key.
    pub hash: [u8; 32],
    /// The first 12 characters of the key.
    pub prefix: String,
    /// When it was created.
    pub created_at: Millis,
    /// When it stops working, if ever.
    pub expires_at: Option<Millis>,
    /// Its own rate limit, if any.
    pub rate_limit: Option<KeyRateLimit>,
    /// When it was revoked; `Some` = revoked.
    pub revoked_at: Option<Millis>,
    /// Seed 003's "the account's key".
    pub primary: bool,
    /// Its usage so far.
    pub usage: KeyUsage,
}

/// Absolute usage figures of one key, as logged by a flush.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageEntry {
    /// Which key.
    pub key_id: Uuid,
    /// Its usage at the flush.
    pub usage: KeyUsage,
}

/// A change to API keys. Every variant sets state (see the idempotence rule
/// in `event.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ApiKeyEvent {
    /// A new key (without its secret). When `revokes` is set, the key it
    /// replaces is revoked at the new key's `created_at` in the same record,
    /// so a crash cannot leave an account with its primary key revoked and
    /// no replacement.
    Created {
        /// The new key, usage zero (boxed: the other variants are small).
        record: Box<KeyRecord>,
        /// The primary key this one replaces.
        revokes: Option<Uuid>,
    },
    /// A key is revoked since `at`.
    Revoked {
        /// Which key.
        key_id: Uuid,
        /// When.
        at: Millis,
    },
    /// A key is gone (seed 000's delete); its creation still counts against
    /// the daily limit.
    Deleted {
        /// Which key.
        key_id: Uuid,
    },
    /// Absolute usage of the keys used since the previous flush. Applying
    /// keeps the larger of stored and logged figures (counts only grow), so an
    /// older record replayed over a newer snapshot changes nothing.
    UsageSet {
        /// One entry per key.
        entries: Vec<UsageEntry>,
    },
    // Variants below were added in the third round, after the older ones so
    // that older logs still decode (bincode numbers variants in order).
    /// A new key with scopes or an IP allowlist: [`ApiKeyEvent::Created`]
    /// plus its access rules, in one event. (A key with the default access
    /// is logged as a plain `Created`.)
    CreatedWith {
        /// The new key, usage zero.
        record: Box<KeyRecord>,
        /// The primary key this one replaces.
        revokes: Option<Uuid>,
        /// Its scopes and allowed addresses.
        access: KeyAccess,
    },
    /// A key is disabled (`true`) or enabled again (`false`).
    DisabledSet {
        /// Which key.
        key_id: Uuid,
        /// Its new state.
        disabled: bool,
    },
    /// A new metered key: [`ApiKeyEvent::CreatedWith`] plus its credits, in
    /// one event, so that a crash cannot leave the key unmetered.
    CreatedWithCredits {
        /// The new key, usage zero.
        record: Box<KeyRecord>,
        /// The primary key this one replaces.
        revokes: Option<Uuid>,
        /// Its scopes and allowed addresses.
        access: KeyAccess,
        /// Its credits.
        credits: KeyCredits,
    },
    /// A key is rotated: `record` is its replacement (inheriting its name,
    /// access, limits, expiry and remaining credits), and the old key works
    /// until `grace_until`, spending the replacement's credits if metered.
    Rotated {
        /// The old key.
        old: Uuid,
        /// When the old key stops working.
        grace_until: Millis,
        /// The new key, usage zero.
        record: Box<KeyRecord>,
        /// Its scopes and allowed addresses (the old key's).
        access: KeyAccess,
        /// Its credits (the old key's balance at rotation), if metered.
        credits: Option<KeyCredits>,
    },
    /// Absolute credit states: one key's, set through the API, or those of
    /// the metered keys used since the previous usage flush. Applying keeps
    /// the later state ([`KeyCredits::merge`]), so replay in any overlap with
    /// a snapshot gives the same balance.
    CreditsSet {
        /// `(key_id, credits)`.
        entries: Vec<(Uuid, KeyCredits)>,
    },
}

/// A snapshot of the API keys domain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeysImage {
    /// Every key that exists (revoked ones included), by id.
    pub keys: Vec<KeyRecord>,
    /// Per account, the keys it created in the last 24 h (or so) and when,
    /// deleted ones included: the daily limit counts them.
    pub creations: Vec<(AccountId, Vec<(Uuid, Millis)>)>,
}

/// The third round's addition to a snapshot of the API keys domain: the
/// access rules of every key whose rules are not the default (a key missing
/// here has [`KeyAccess::default`]). A separate trailing field of the
/// snapshot, so that older snapshots still decode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeysImageExt {
    /// `(key_id, access)`, sorted by key id.
    pub access: Vec<(Uuid, KeyAccess)>,
}

/// The fourth addition to a snapshot of the API keys domain: the credits of
/// every metered key (a key missing here is unmetered). A separate trailing
/// field of the snapshot, so that older snapshots still decode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeysImageCredits {
    /// `(key_id, credits)`, sorted by key id.
    pub credits: Vec<(Uuid, KeyCredits)>,
    /// `(old key_id, rotation)` of every rotated key, sorted by key id.
    pub rotations: Vec<(Uuid, Rotation)>,
}

/// Where a rotated key went, and until when it still works.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rotation {
    /// The replacement's key id.
    pub to: Uuid,
    /// When the old key stops working.
    pub grace_until: Millis,
    /// Whether the old key was metered: then its uses spend the
    /// replacement's credits (following further rotations).
    pub metered: bool,
}

#[cfg(test)]
mod fuzz_tests;
#[cfg(test)]
mod tests;
