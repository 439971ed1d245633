//! Accounts, passwords, sessions and balances: the domain core behind
//! `POST /register`, `POST /login`, `POST /logout`, session authentication and
//! the account's credit balance.
//!
//! This module is plain Rust. It knows nothing of HTTP, JSON bodies or tokio;
//! it takes `now` as an argument and never reads the clock. Argon2 hashing
//! ([`password`]) is CPU-heavy and blocking: callers run it off the async
//! runtime. Every state change is an [`AccountEvent`] that is applied with the
//! same [`Accounts::apply`] that recovery uses, and handed to the caller's
//! emitter while the lock that ordered it is still held.
//!
//! What is stored: the argon2id PHC string of each password (never the
//! password), and the SHA-256 of each session token (never the token).
//!
//! # Namespace
//!
//! Usernames and emails share one case-insensitive namespace: a username may
//! not equal another account's email and vice versa. Seed 003 addresses an
//! account by "email" and we accept the username there too, so without this
//! rule someone could register another user's email as their username and
//! take over that address in `/api/user/key/{email}`.

mod password;
mod registry;
mod sessions;
mod validate;

use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::ids::AccountId;

pub use password::{dummy_hash, hash_password, verify_password, PasswordError};
pub use registry::Accounts;
pub use sessions::{is_session_token, NewSession, SessionUse, SESSION_TOKEN_PREFIX};
pub use validate::{normalize_email, validate_registration, MAX_PASSWORD_LEN};

/// The settings of the accounts domain, taken from the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountsConfig {
    /// Authenticated requests one session token serves (`--session-max-uses`).
    pub session_max_uses: u32,
    /// A session token's longest life in milliseconds (`--session-ttl`).
    pub session_ttl: Millis,
    /// The shortest password accepted at registration (`--min-password-len`).
    pub min_password_len: usize,
    /// Credits a new account starts with (`--signup-credits`).
    pub signup_credits: u64,
}

#[cfg(test)]
impl AccountsConfig {
    /// The settings the unit tests use: 10 uses, one hour, 8 characters, 1000 credits.
    pub(crate) fn for_tests() -> Self {
        AccountsConfig {
            session_max_uses: 10,
            session_ttl: 3_600_000,
            min_password_len: 8,
            signup_credits: 1000,
        }
    }
}

impl AccountsConfig {
    /// The accounts settings of a parsed command line.
    pub fn from_config(c: &crate::config::Config) -> Self {
        AccountsConfig {
            session_max_uses: c.session_max_uses,
            session_ttl: crate::clock::millis(c.session_ttl),
            min_password_len: c.min_password_len,
            signup_credits: c.signup_credits,
        }
    }
}

/// Why an account operation was refused. The `Display` text is the sentence
/// the HTTP layer puts in `{"error": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// A registration field is missing or invalid (HTTP 400). `field` names it.
    #[error("{message}")]
    Invalid {
        /// `username`, `password` or `email`.
        field: &'static str,
        /// A sentence naming the field and what is wrong with it.
        message: String,
    },
    /// The username (compared case-insensitively, also against emails) is
    /// taken (HTTP 409).
    #[error("Username already exists.")]
    UsernameTaken,
    /// The email (compared case-insensitively, also against usernames) is
    /// taken (HTTP 409).
    #[error("An account with that email already exists.")]
    EmailTaken,
    /// No account has this id.
    #[error("Account not found.")]
    UnknownAccount,
    /// A debit larger than the balance (HTTP 402).
    #[error("Insufficient balance.")]
    InsufficientBalance {
        /// The balance at the time of the refusal.
        balance: u64,
    },
}

/// Why a session token was refused. Both map to HTTP 401.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// No live session has this token (never issued, logged out, or purged
    /// after it ran out).
    #[error("Invalid or expired session token. Please log in again.")]
    Unknown,
    /// The session has served its `max_uses` requests or outlived its TTL.
    #[error("Session expired. Please log in again.")]
    Expired,
}

/// One account as stored, in snapshots and in [`AccountEvent::Registered`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// Assigned 1, 2, 3… in order of registration.
    pub id: AccountId,
    /// As the user typed it; compared lowercased.
    pub username: String,
    /// As the user typed it; compared lowercased.
    pub email: Option<String>,
    /// The argon2id PHC string of the password.
    pub password_hash: String,
    /// When the account was registered.
    pub created_at: Millis,
    /// Credits (cents).
    pub balance: u64,
}

impl std::fmt::Debug for AccountRecord {
    // The PHC string is not the password, but it is offline-crackable
    // material: keep it out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountRecord")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("email", &self.email)
            .field("password_hash", &"<redacted>")
            .field("created_at", &self.created_at)
            .field("balance", &self.balance)
            .finish()
    }
}

/// A session as stored: only the SHA-256 of its token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    /// SHA-256 of the token.
    pub token_hash: [u8; 32],
    /// Whose session it is.
    pub account: AccountId,
    /// When it was created (login).
    pub created_at: Millis,
    /// When it stops being accepted whatever its uses.
    pub expires_at: Millis,
    /// How many requests it serves in all.
    pub max_uses: u32,
    /// How many it has served.
    pub used: u32,
}

/// What the outside world may see of an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AccountView {
    /// The account id.
    pub id: AccountId,
    /// The username as registered.
    pub username: String,
    /// The email as registered.
    pub email: Option<String>,
    /// When the account was registered.
    pub created_at: Millis,
    /// Credits (cents).
    pub balance: u64,
}

/// A change to accounts or sessions. Every variant sets state (see the
/// idempotence rule in `event.rs`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AccountEvent {
    /// A new account, in full.
    Registered {
        /// The whole record, balance included.
        record: AccountRecord,
    },
    /// An account's balance is now `balance`.
    BalanceSet {
        /// Whose balance.
        account: AccountId,
        /// The new absolute balance.
        balance: u64,
    },
    /// A login created a session.
    SessionCreated {
        /// SHA-256 of the token.
        token_hash: [u8; 32],
        /// Whose session.
        account: AccountId,
        /// When it was created.
        created_at: Millis,
        /// When it expires whatever its uses.
        expires_at: Millis,
        /// How many requests it serves.
        max_uses: u32,
    },
    /// The absolute use counts of sessions used since the previous flush.
    /// Applying keeps the larger of the stored and the logged count: a count
    /// never goes down, so an older record replayed over a newer snapshot
    /// changes nothing.
    SessionUses {
        /// `(token_hash, used)` pairs.
        entries: Vec<([u8; 32], u32)>,
    },
    /// A session ended (logout, expiry or exhaustion) and is forgotten.
    SessionEnded {
        /// SHA-256 of the token.
        token_hash: [u8; 32],
    },
}

/// A snapshot of the accounts domain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountsImage {
    /// The id the next registration gets.
    pub next_id: u64,
    /// Every account, by id.
    pub accounts: Vec<AccountRecord>,
    /// Every live session, by token hash.
    pub sessions: Vec<SessionRecord>,
}
