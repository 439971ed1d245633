//! Identifiers shared by several subsystems.

use serde::{Deserialize, Serialize};

/// An account, and so the owner of a key pool. Account ids are assigned in
/// order of registration starting at 1; [`AccountId::ANONYMOUS`] owns the shared
/// pool that `--open-pool` serves to credential-less requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AccountId(pub u64);

impl AccountId {
    /// The owner of the shared anonymous pool.
    pub const ANONYMOUS: AccountId = AccountId(0);
}

impl std::fmt::Display for AccountId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
