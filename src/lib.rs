//! keypool: an HTTP server that hands out keys to workers.
//!
//! The crate is a library with a thin binary (`main.rs`) so that tests and
//! benchmarks can start the real server in-process on port 0. See
//! ARCHITECTURE.md for the map.

pub mod accounts;
pub mod apikeys;
pub mod clock;
pub mod codec;
pub mod config;
pub mod event;
pub mod ids;
pub mod persist;
pub mod pool;
pub mod purchase;
