//! The values the pool speaks in: its settings, its events, what its
//! operations answer, its errors, and its snapshot image. [`super::Pools`]
//! is the pool itself.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::Millis;
use crate::ids::AccountId;

/// The number of shards when nothing else is said.
pub const DEFAULT_SHARDS: usize = 32;

/// How a [`super::Pools`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolConfig {
    /// A key's lifetime after its creation or last keepalive (`--key-ttl`).
    pub key_ttl: Millis,
    /// How long a checkout blocks a key (`--block-ttl`).
    pub block_ttl: Millis,
    /// How many lock stripes; 0 is taken as 1.
    pub shards: usize,
}

impl Default for PoolConfig {
    /// The contract's defaults: 5 minutes, 60 seconds, [`DEFAULT_SHARDS`].
    fn default() -> Self {
        Self {
            key_ttl: 5 * 60_000,
            block_ttl: 60_000,
            shards: DEFAULT_SHARDS,
        }
    }
}

/// A change to a key pool. Each one *sets* state (see the idempotence rule in
/// `event.rs`): applying a suffix of a key's events again gives the same state.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub enum PoolEvent {
    /// The key exists, fresh and unblocked, with these times.
    Created {
        owner: AccountId,
        key_id: Uuid,
        created_at: Millis,
        expires_at: Millis,
    },
    /// The key is blocked under this lease until `blocked_until`.
    CheckedOut {
        owner: AccountId,
        key_id: Uuid,
        lease_id: Uuid,
        blocked_at: Millis,
        blocked_until: Millis,
    },
    /// The key is not blocked (released by request or by timeout).
    Released { owner: AccountId, key_id: Uuid },
    /// The key now expires at `expires_at`.
    KeptAlive {
        owner: AccountId,
        key_id: Uuid,
        expires_at: Millis,
    },
    /// The key no longer exists (deleted by request or by expiry).
    Deleted { owner: AccountId, key_id: Uuid },
}

impl PoolEvent {
    /// The key the event is about.
    pub fn key_id(&self) -> Uuid {
        match *self {
            PoolEvent::Created { key_id, .. }
            | PoolEvent::CheckedOut { key_id, .. }
            | PoolEvent::Released { key_id, .. }
            | PoolEvent::KeptAlive { key_id, .. }
            | PoolEvent::Deleted { key_id, .. } => key_id,
        }
    }
}

/// What `create` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Created {
    pub key_id: Uuid,
    pub expires_at: Millis,
}

/// What a successful checkout answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checkout {
    pub key_id: Uuid,
    /// New on every checkout; release and delete may demand it.
    pub lease_id: Uuid,
    pub blocked_until: Millis,
    pub expires_at: Millis,
}

/// One key as `GET /keys/{key_id}` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyInfo {
    pub key_id: Uuid,
    pub created_at: Millis,
    pub expires_at: Millis,
    /// `None` when the key is free.
    pub blocked: Option<BlockInfo>,
}

/// The lease that holds a checked-out key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockInfo {
    pub lease_id: Uuid,
    pub blocked_at: Millis,
    pub blocked_until: Millis,
}

/// Key counts of one pool, or of all pools.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Stats {
    pub total: u64,
    pub available: u64,
    pub blocked: u64,
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        self.total += o.total;
        self.available += o.available;
        self.blocked += o.blocked;
    }
}

/// What one [`super::Pools::reap`] did.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reaped {
    /// Keys deleted because they expired.
    pub expired: usize,
    /// Blocks released because their time ran out.
    pub released: usize,
}

impl std::ops::AddAssign for Reaped {
    fn add_assign(&mut self, o: Reaped) {
        self.expired += o.expired;
        self.released += o.released;
    }
}

/// Why a pool operation was refused.
#[derive(thiserror::Error, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolError {
    /// Checkout found no free key in the caller's pool.
    #[error("No available keys.")]
    NoAvailableKeys,
    /// The key does not exist, belongs to another owner, or has expired.
    #[error("Key not found.")]
    NotFound,
    /// Release of a key that exists but is not blocked.
    #[error("Key not found or not blocked.")]
    NotBlocked,
    /// A lease was given and the key is not held under it now.
    #[error("The key is no longer held under this lease.")]
    LeaseMismatch,
}

/// One key in a [`PoolImage`].
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyImage {
    pub key_id: Uuid,
    pub owner: AccountId,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub blocked: Option<BlockInfo>,
}

/// Every key with its state, for snapshots. Independent of the shard count.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct PoolImage {
    pub keys: Vec<KeyImage>,
}
