//! (stub, being written)

use serde::{Deserialize, Serialize};

/// A change to this subsystem's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum PurchaseEvent {}
