//! One integration-test binary: every test starts the real `keypool` binary on
//! port 0 (see `support.rs`) and talks HTTP to it.
//!
//! - `pool`: the key-pool routes, expiry on time, exclusivity under concurrency.
//! - `documents`: `X-Request-Id`, JSON log lines, `/openapi.json` against `docs/openapi.json`.
//! - `errors`: bad input of every kind gets its status and a JSON error.
//! - `accounts`: register, login, sessions, API keys, authorization, limits.
//! - `durability`: kill -9, torn and damaged logs, snapshots, restarts.
//! - `faults`: EIO and ENOSPC on an in-process server with a fault-injecting disk.
//! - `hostile`: slow bodies, idle connections, per-IP and global connection caps,
//!   uploads refused while still being sent (issue 13).
//! - `full_disk`: a real full disk (a small tmpfs; needs root, skips otherwise).
//! - `credits`: credits per key: exact spending under concurrency, PUT, verify, restarts.
//! - `pipelined`: kill -9 during pipelined group commits; every acknowledged change survives.
//! - `idempotency`: `Idempotency-Key` retries get the first answer, across kill -9.
//! - `leases`: named pools, sealed values, ttl, batch and long-poll checkout, lease extension, cooldown.
//! - `platform`: API-key scopes and roles, IP allowlists, disable/enable, verify.
//! - `purchase`: the PIN, the purchase state machine, the gated stream.
//! - `undone`: a change answered 503 did not happen (failed writes and flushes).
//! - `analytics`: per-key per-route analytics: exact counts, templates, `days` bounds, kill -9 and snapshots.
//! - `browser`: the web page in headless Chromium (`#[ignore]`; `.ci/run` runs them).

mod accounts;
mod analytics;
mod browser;
mod credits;
mod documents;
mod durability;
mod errors;
mod faults;
mod full_disk;
mod hostile;
mod idempotency;
mod leases;
mod pipelined;
mod platform;
mod pool;
mod purchase;
mod support;
mod topups;
mod undone;
