//! The state one write-ahead log shares between its handles, the leaders
//! that write its buffer (`leader.rs`), the flusher thread (`syncer.rs`) and
//! the fall-back (`fallback.rs`): what each mutex guards, and how a waiter's
//! answer is decided. The lock order is in ARCHITECTURE.md (§ Locks).

use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::Waker;

use parking_lot::{Condvar, Mutex};

use super::leader::FileState;
use super::recovery::SegInfo;
use super::{Fs, FsyncMode, LogOptions, Lsn, PersistError};

/// A run of framed records bound for one segment, in LSN order.
#[derive(Debug)]
pub(super) struct Chunk {
    /// Start a new segment (at `first_lsn`) before writing this chunk: a
    /// snapshot asked for a segment boundary here.
    pub(super) rotate: bool,
    /// LSN of the first record in `bytes` (or that the next one would have).
    pub(super) first_lsn: Lsn,
    /// LSN of the last record in `bytes` (`first_lsn - 1` when empty).
    pub(super) last_lsn: Lsn,
    /// Framed records.
    pub(super) bytes: Vec<u8>,
}

/// What `append` touches, behind one short mutex.
#[derive(Debug)]
pub(super) struct Appending {
    pub(super) next_lsn: Lsn,
    /// Records not yet taken by a leader.
    pub(super) chunks: Vec<Chunk>,
    /// Emptied buffers, reused so that appending does not allocate.
    pub(super) spare: Vec<Vec<u8>>,
    /// Set from a failed write or flush until the log has fallen back.
    pub(super) failed: bool,
    /// Set by `close` (or the last handle's drop).
    pub(super) closing: bool,
    /// The epoch records must carry (see [`Log::append_in`]).
    pub(super) epoch: u64,
}

impl Appending {
    /// `Ok` while the log takes appends: not closing, and not failing.
    pub(super) fn writable(&self) -> Result<(), PersistError> {
        if self.closing {
            Err(PersistError::Closed)
        } else if self.failed {
            Err(PersistError::Unavailable)
        } else {
            Ok(())
        }
    }
}

/// A write or flush that failed, and what it left durable.
#[derive(Debug, Clone)]
pub(super) struct Failure {
    pub(super) reason: Arc<str>,
    /// The last LSN that stays: everything after it is dropped.
    pub(super) durable_end: Lsn,
    /// Set once the waiters of dropped records may be told (the caller has
    /// rolled its state back, or given up trying).
    pub(super) released: bool,
}

/// What waiters need to decide, behind the waiters' mutex.
#[derive(Debug, Default)]
pub(super) struct Status {
    /// The failure being handled, if any.
    pub(super) failure: Option<Failure>,
    /// For each ended epoch (by index), its last durable LSN.
    pub(super) ended: Vec<Lsn>,
    /// The log has closed; `close_error` says whether its last flush worked.
    pub(super) closed: bool,
    pub(super) close_error: Option<Arc<str>>,
}

/// A task waiting for an LSN, ordered so that the heap pops the lowest first.
#[derive(Debug)]
pub(super) struct Waiter {
    pub(super) lsn: Lsn,
    pub(super) waker: Waker,
}

impl PartialEq for Waiter {
    fn eq(&self, o: &Self) -> bool {
        self.lsn == o.lsn
    }
}
impl Eq for Waiter {}
impl PartialOrd for Waiter {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Waiter {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        o.lsn.cmp(&self.lsn)
    }
}

/// Waiting tasks and the status they are decided by.
#[derive(Debug, Default)]
pub(super) struct Waiters {
    pub(super) heap: BinaryHeap<Waiter>,
    pub(super) status: Status,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) records: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(super) fsyncs: AtomicU64,
    pub(super) fsync_micros: AtomicU64,
    pub(super) synced_records: AtomicU64,
    pub(super) batches: AtomicU64,
    pub(super) waits: AtomicU64,
    pub(super) wait_micros: AtomicU64,
    pub(super) fallbacks: AtomicU64,
    pub(super) snapshots: AtomicU64,
    pub(super) last_snapshot_at: AtomicU64,
    pub(super) last_snapshot_bytes: AtomicU64,
}

/// Snapshot bookkeeping; its mutex also serialises `write_snapshot` calls.
#[derive(Debug, Default)]
pub(super) struct Snaps {
    /// Valid snapshots known to be on disk, ascending.
    pub(super) known: Vec<Lsn>,
}

/// What the flusher thread is asked to do, behind its own mutex.
#[derive(Debug, Default)]
pub(super) struct SyncCtl {
    /// Flush through this LSN (a snapshot or `close` asked).
    pub(super) upto: Lsn,
    /// Stop after the last flush.
    pub(super) stop: bool,
    /// The flusher is asleep waiting for this many waiters (always mode);
    /// the waiter that makes the count reach it wakes the flusher.
    pub(super) want: usize,
    /// Asleep, with nothing to do until kicked.
    pub(super) idle: bool,
}

pub(super) struct Shared {
    pub(super) opts: LogOptions,
    pub(super) fs: Arc<dyn Fs>,
    pub(super) app: Mutex<Appending>,
    /// The leader lock: the segment being written. Held for one `write(2)`
    /// (or a segment roll), never across an `.await`.
    pub(super) file: Mutex<FileState>,
    /// Highest LSN written to the file (in the OS). Changed under `file`.
    pub(super) written: AtomicU64,
    /// Highest LSN fdatasynced. Changed under `file`.
    pub(super) synced: AtomicU64,
    /// The current epoch (changed under `waiters` after a fall-back).
    pub(super) epoch: AtomicU64,
    pub(super) waiters: Mutex<Waiters>,
    /// Blocking waiters (`write_snapshot`, `close` on drop) wait here for changes of
    /// `synced` or of the status.
    pub(super) progress_cv: Condvar,
    pub(super) sync: Mutex<SyncCtl>,
    pub(super) sync_cv: Condvar,
    /// Tells the task that rebuilds the state that the log failed.
    pub(super) failed_notify: tokio::sync::Notify,
    /// Segments on disk, oldest first; the last is the one being written.
    pub(super) segments: Mutex<Vec<SegInfo>>,
    pub(super) snaps: Mutex<Snaps>,
    pub(super) counters: Counters,
}

impl Shared {
    /// The highest LSN durable per the fsync mode.
    pub(super) fn durable_lsn(&self) -> Lsn {
        match self.opts.fsync {
            FsyncMode::Always => self.synced.load(Ordering::Acquire),
            FsyncMode::Everysec | FsyncMode::Never => self.written.load(Ordering::Acquire),
        }
    }

    /// Wakes every waiting task (after a status change) and blocking waiter.
    pub(super) fn wake_all(&self, w: &mut Waiters) {
        for waiter in w.heap.drain() {
            waiter.waker.wake();
        }
        self.progress_cv.notify_all();
    }

    /// Decides the wait of a record of `epoch` at `lsn`, or `None` to wait on.
    pub(super) fn decide(
        &self,
        epoch: u64,
        lsn: Lsn,
        st: &Status,
    ) -> Option<Result<(), PersistError>> {
        if let Some(&end) = st.ended.get(epoch as usize) {
            return Some(if lsn <= end {
                Ok(())
            } else {
                Err(PersistError::Dropped)
            });
        }
        if let Some(f) = &st.failure {
            if lsn <= f.durable_end {
                return Some(Ok(()));
            }
            if f.released {
                return Some(Err(PersistError::Dropped));
            }
            return None;
        }
        if self.durable_lsn() >= lsn {
            return Some(Ok(()));
        }
        if st.closed {
            return Some(Err(match &st.close_error {
                Some(e) => PersistError::WriteFailed {
                    reason: e.to_string(),
                },
                None => PersistError::Closed,
            }));
        }
        None
    }
}
