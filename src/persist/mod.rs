//! Durability: the write-ahead log (with group commit), atomic snapshots, and
//! recovery. This module alone touches the disk, and it deals only in bytes: the
//! caller encodes events with `crate::codec` and hands them over as `&[u8]`.
//!
//! # Files (all in `LogOptions::dir`)
//! - `wal-<seq>.log`: log segments (see [`mod@format`]), each opening with a header
//!   naming its first LSN; records follow with a length and a CRC32 each. A new
//!   segment is started past `segment_bytes` and at every snapshot.
//! - `snap-<lsn>.bin`: a snapshot image covering every record up to `lsn`,
//!   written to `.tmp`, fsynced, renamed and the directory fsynced.
//! - `*.damaged-<n>` / `*.dropped-<n>`: what `--repair` kept aside.
//!
//! # Invariants
//! - An LSN is assigned once, in `append`, under one short mutex; records reach
//!   the file in LSN order and a segment's records are contiguous from its
//!   header's LSN; consecutive segments are contiguous too (a gap is damage).
//! - A snapshot covering `C` is written only after the log is synced through
//!   `C`, so the log never ends before a snapshot's LSN (unless `--repair` cut it).
//! - Retention: after snapshot `C` is written, the previous snapshot `P` is
//!   kept, older snapshots are deleted, and only segments whose records all lie
//!   at or below `P` are deleted. So if `C` turns out unreadable, recovery falls
//!   back to `P` plus the log after it, which is still complete.
//! - A write or flush failure freezes the log at its last durable record: the
//!   records after it are dropped, never retried, their waiters are answered
//!   [`PersistError::Dropped`] once the owner of the state has rolled it back,
//!   and appends are refused until the log has been cut back (see `fallback.rs`).
//! - `persist` never panics on disk contents: every damage is a warning (torn
//!   tail, skipped snapshot) or a typed [`PersistError`].

mod fallback;
pub mod format;
pub mod fs;
mod leader;
mod log;
mod log_snapshot;
pub mod master_key;
mod recovery;
mod shared;
mod syncer;
pub mod testing;
#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;

pub use self::fs::{Fs, FsFile, RealFs};
pub use self::log::{Log, RETRY};
use crate::clock::Millis;
pub use crate::config::FsyncMode;

/// Log sequence number: 1-based, strictly increasing, never reused.
pub type Lsn = u64;

/// Default size past which a new segment is started.
pub const DEFAULT_SEGMENT_BYTES: u64 = 64 << 20;

/// How far ahead of the last record a segment is filled with zeros by default.
pub const DEFAULT_PREALLOCATE: u64 = 1 << 20;

/// How the log is opened.
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// The data directory (created if missing).
    pub dir: PathBuf,
    /// When a record counts as durable (see [`Log::durable`]).
    pub fsync: FsyncMode,
    /// Repair a damaged log instead of refusing to open it: keep a copy of the
    /// damaged file, cut it at the damage, set later segments aside.
    pub repair: bool,
    /// A new segment is started once the current one is this long.
    pub segment_bytes: u64,
    /// How far ahead of the last record the segment is filled with zeros
    /// (written and flushed once), so that records overwrite blocks that are
    /// already allocated: an fdatasync then writes the data alone, not also the
    /// inode for the file's new size (a second I/O, about a quarter of a flush
    /// on the development machine's disk). 0 turns it off.
    pub preallocate: u64,
}

impl LogOptions {
    /// Options for `dir` with the given fsync mode, no repair, 64 MiB segments.
    pub fn new(dir: impl Into<PathBuf>, fsync: FsyncMode) -> Self {
        LogOptions {
            dir: dir.into(),
            fsync,
            repair: false,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            preallocate: DEFAULT_PREALLOCATE,
        }
    }
}

/// What was on disk when the log was opened.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The newest valid snapshot image and the LSN it covers.
    pub snapshot: Option<(Lsn, Vec<u8>)>,
    /// Every log record after that LSN, in order (LSNs contiguous).
    pub records: Vec<(Lsn, Vec<u8>)>,
    /// What recovery had to do: torn tail dropped, bad snapshot skipped, repair
    /// done. Each was also logged with `tracing::warn!`.
    pub warnings: Vec<String>,
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogMetrics {
    /// Records written to the log since open.
    pub records: u64,
    /// Bytes written to segments since open (retries included).
    pub bytes_written: u64,
    /// Successful fdatasync calls on segments since open.
    pub fsyncs: u64,
    /// Time spent in the flusher's fdatasync calls, in microseconds.
    pub fsync_micros: u64,
    /// Records those fdatasyncs made durable (records per flush = this / `fsyncs`).
    pub synced_records: u64,
    /// Requests that had to wait for their record to become durable (the
    /// others found it durable at once), and their total wait.
    pub waits: u64,
    /// Sum of those waits, in microseconds.
    pub wait_micros: u64,
    /// Times the log fell back to its durable end after a failed write or flush.
    pub fallbacks: u64,
    /// Write batches (group commits) since open.
    pub batches: u64,
    /// The last LSN assigned.
    pub last_lsn: Lsn,
    /// The highest LSN durable per the fsync mode.
    pub durable_lsn: Lsn,
    /// Segment files currently on disk.
    pub segments: u64,
    /// Snapshots written since open.
    pub snapshots: u64,
    /// When the last snapshot was written (wall-clock ms), if any since open.
    pub last_snapshot_at: Option<Millis>,
    /// Size of the last snapshot image in bytes.
    pub last_snapshot_bytes: u64,
    /// Is the log refusing writes because of a disk fault?
    pub failed: bool,
}

/// Why the log could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// A file operation failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "write", "fsync", …).
        op: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// The log is damaged before its end; start-up refuses without `--repair`.
    #[error(
        "the write-ahead log is damaged: {} at byte offset {offset}: {reason}; \
         start with --repair to keep a copy of the file, cut the log at the damage \
         and drop the records after it",
        file.display()
    )]
    Corrupt {
        /// The damaged segment.
        file: PathBuf,
        /// Where the damage starts.
        offset: u64,
        /// What is wrong there.
        reason: String,
    },
    /// No consistent state can be built from the snapshots and the log.
    #[error("cannot recover from {}: {reason}", file.display())]
    BadSnapshot {
        /// The snapshot (or data directory) concerned.
        file: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },
    /// A file in the data directory has a format this build does not read.
    #[error("{}: {reason}", file.display())]
    Unsupported {
        /// The file.
        file: PathBuf,
        /// Its version or magic, and what this build reads.
        reason: String,
    },
    /// The log is failing (a write or flush failed and has not yet been retried
    /// successfully): no change may be made.
    #[error("the write-ahead log cannot write to disk; changes are refused until it can")]
    Unavailable,
    /// The write or flush covering this record failed; it is not known durable.
    #[error("the write-ahead log could not make the change durable: {reason}")]
    WriteFailed {
        /// The failure, as the writer logged it.
        reason: String,
    },
    /// A failed write or flush dropped this record: it is not in the log and
    /// never will be, and the state was rolled back to what is durable.
    #[error("the write-ahead log could not write the change, so it was dropped and undone")]
    Dropped,
    /// The log was closed.
    #[error("the write-ahead log is closed")]
    Closed,
    /// A record is empty or larger than [`format::MAX_RECORD`].
    #[error(
        "a log record must be 1 to {} bytes, this one is {len}",
        format::MAX_RECORD
    )]
    BadRecord {
        /// The record's length.
        len: usize,
    },
    /// `write_snapshot` was called with an LSN the log has not reached.
    #[error("a snapshot cannot cover LSN {covers}: the last LSN assigned is {last}")]
    SnapshotAhead {
        /// The LSN asked for.
        covers: Lsn,
        /// The last LSN assigned.
        last: Lsn,
    },
}

impl PersistError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        PersistError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
