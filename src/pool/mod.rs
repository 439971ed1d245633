//! (stub, being written)

use serde::{Deserialize, Serialize};

/// A change to a key pool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PoolEvent {}
