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
    // Variants below were added in the second round; they go after the first
    // round's so that logs written before still decode (bincode numbers
    // variants in order).
    /// [`PoolEvent::Created`] with a per-key lifetime, a value and metadata
    /// (both sealed by the caller: the pool stores them as opaque bytes).
    CreatedWith {
        owner: AccountId,
        key_id: Uuid,
        created_at: Millis,
        expires_at: Millis,
        extras: KeyExtras,
    },
    /// The key is neither blocked nor free: it was released with a cooldown
    /// and is handed out again only from `until` on.
    Cooling {
        owner: AccountId,
        key_id: Uuid,
        until: Millis,
    },
    /// Every key of `owner` (one pool) is gone (`DELETE /pools/{pool}`).
    Purged { owner: AccountId },
    /// The account's pool called `name` is the pool whose keys carry owner `pool`.
    Named {
        account: AccountId,
        name: String,
        pool: AccountId,
    },
}

impl PoolEvent {
    /// The key the event is about (`None` for events about a whole pool).
    pub fn key_id(&self) -> Option<Uuid> {
        match *self {
            PoolEvent::Created { key_id, .. }
            | PoolEvent::CheckedOut { key_id, .. }
            | PoolEvent::Released { key_id, .. }
            | PoolEvent::KeptAlive { key_id, .. }
            | PoolEvent::Deleted { key_id, .. }
            | PoolEvent::CreatedWith { key_id, .. }
            | PoolEvent::Cooling { key_id, .. } => Some(key_id),
            PoolEvent::Purged { .. } | PoolEvent::Named { .. } => None,
        }
    }
}

/// What a key may carry besides its times: its own lifetime (instead of
/// `--key-ttl`) and the owner's value and metadata, sealed (encrypted) by the
/// caller before they reach the pool, so the pool, the log and snapshots only
/// ever hold ciphertext.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyExtras {
    /// The key's lifetime after creation or keepalive, when not `--key-ttl`.
    pub ttl: Option<Millis>,
    /// The sealed value.
    pub value: Option<Vec<u8>>,
    /// The sealed metadata (a JSON object, encoded before sealing).
    pub metadata: Option<Vec<u8>>,
}

impl KeyExtras {
    /// Whether there is nothing to keep.
    pub fn is_empty(&self) -> bool {
        self.ttl.is_none() && self.value.is_none() && self.metadata.is_none()
    }
}

/// What `create` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Created {
    pub key_id: Uuid,
    pub expires_at: Millis,
}

/// What a successful checkout answers, per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    pub key_id: Uuid,
    /// New on every checkout; release and delete may demand it.
    pub lease_id: Uuid,
    pub blocked_until: Millis,
    pub expires_at: Millis,
    /// The key's sealed value, if it has one.
    pub value: Option<Vec<u8>>,
    /// The key's sealed metadata, if it has any.
    pub metadata: Option<Vec<u8>>,
}

/// What a lease extension answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Extended {
    pub key_id: Uuid,
    pub lease_id: Uuid,
    pub blocked_until: Millis,
}

/// One key as `GET /keys/{key_id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub key_id: Uuid,
    pub created_at: Millis,
    pub expires_at: Millis,
    /// `None` when the key is free or cooling.
    pub blocked: Option<BlockInfo>,
    /// When a cooling key becomes free again.
    pub cooling_until: Option<Millis>,
    /// The key's sealed value, if it has one.
    pub value: Option<Vec<u8>>,
    /// The key's sealed metadata, if it has any.
    pub metadata: Option<Vec<u8>>,
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
    /// Released with a cooldown that has not ended.
    pub cooling: u64,
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Stats) {
        self.total += o.total;
        self.available += o.available;
        self.blocked += o.blocked;
        self.cooling += o.cooling;
    }
}

/// What one [`super::Pools::reap`] did.
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reaped {
    /// Keys deleted because they expired.
    pub expired: usize,
    /// Blocks released because their time ran out.
    pub released: usize,
    /// Keys free again because their cooldown ended.
    pub cooled: usize,
}

impl std::ops::AddAssign for Reaped {
    fn add_assign(&mut self, o: Reaped) {
        self.expired += o.expired;
        self.released += o.released;
        self.cooled += o.cooled;
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
    /// `DELETE /pools/{pool}` of a pool that holds no key.
    #[error("Pool not found.")]
    NoSuchPool,
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
/// Its layout is the first round's; what keys gained since is in
/// [`PoolImageExt`], so that older snapshots still decode.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct PoolImage {
    pub keys: Vec<KeyImage>,
}

/// What a key has beyond a [`KeyImage`]: extras and a cooldown.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct KeyImageExt {
    pub key_id: Uuid,
    pub extras: Option<KeyExtras>,
    pub cooling_until: Option<Millis>,
}

/// The second round's part of a pool snapshot: key extras, cooldowns and
/// pool names.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct PoolImageExt {
    pub keys: Vec<KeyImageExt>,
    /// (account, name, pool) for every named pool.
    pub names: Vec<(AccountId, String, AccountId)>,
}
