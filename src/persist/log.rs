//! [`Log`]: the write-ahead log handle.
//!
//! # The write path (who writes, who flushes, who wakes whom)
//!
//! - `append` assigns the LSN and frames the record into an in-memory buffer
//!   under one short mutex; the caller holds the domain lock that ordered the
//!   change, so log order is apply order.
//! - `durable` is called by the request's own task. Whoever finds records
//!   written to the buffer but not to the file *leads*: under the file lock it
//!   takes the whole buffer and writes it with one `write(2)` (RocksDB's write
//!   group, PostgreSQL's committing backend). A task whose record another
//!   leader already wrote just sees `written >= lsn`. So with `--fsync never`
//!   and `everysec` an answer costs no hand-off to another thread: the record is
//!   in the OS before the answer, by the answering task.
//! - With `--fsync always` the leader then waits for the flusher thread
//!   (`syncer.rs`), which fdatasyncs what was written while the tasks go on
//!   writing the next batch (pipelined group commit), and wakes exactly the
//!   waiters whose LSNs the flush covered.
//! - A failed write or flush freezes the log at its last durable record and
//!   drops everything after it; see `fallback.rs`.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::format;
use super::leader::{create_segment, FileState};
use super::recovery::{self, SegInfo};
use super::shared::{Appending, Chunk, Counters, Shared, Snaps, SyncCtl, Waiter, Waiters};
use super::{Fs, LogMetrics, LogOptions, Lsn, PersistError, Recovered};

/// How long a caller waits between retries of a failed fall-back step.
pub const RETRY: Duration = Duration::from_millis(200);
/// How often `--fsync everysec` flushes.
pub(super) const EVERYSEC: Duration = Duration::from_secs(1);

/// Stops the flusher when the last [`Log`] clone goes away.
struct Handle {
    /// The data directory's lock, released when the last handle goes.
    _dir_lock: Box<dyn std::any::Any + Send + Sync>,
    shared: Arc<Shared>,
    syncer: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        // A failure to flush was logged by `close_now`; nobody is left to tell.
        let _ = self.shared.close_now();
        if let Some(h) = self.syncer.lock().take() {
            let _ = h.join();
        }
    }
}

/// The write-ahead log: a cheap-to-clone handle.
#[derive(Clone)]
pub struct Log {
    handle: Arc<Handle>,
}

impl std::fmt::Debug for Log {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.shared().opts.dir)
            .field("last_lsn", &self.last_lsn())
            .finish()
    }
}

impl Log {
    pub(super) fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    /// Recovers what is on disk and opens the log for appending after it.
    pub fn open(opts: LogOptions, fs: Arc<dyn Fs>) -> Result<(Log, Recovered), PersistError> {
        fs.create_dir_all(&opts.dir)
            .map_err(|e| PersistError::io("create", &opts.dir, e))?;
        let dir_lock = fs
            .lock_dir(&opts.dir)
            .map_err(|e| PersistError::io("lock", &opts.dir, e))?;
        let opened = recovery::recover(&opts, &*fs)?;
        let next_lsn = opened.next_lsn;
        let mut segments = opened.segments;

        // Append to the last segment if the next record belongs there;
        // otherwise (fresh directory, or the snapshot is ahead of the log)
        // start a new segment at `next_lsn`.
        let (file, seg_first, seg_records, len, allocated) = match (segments.last(), opened.tail) {
            (Some(seg), Some(tail)) if tail.next_lsn == next_lsn => {
                let file = fs
                    .open_write(&seg.path)
                    .map_err(|e| PersistError::io("open", &seg.path, e))?;
                let records = next_lsn - seg.first_lsn;
                (file, seg.first_lsn, records, tail.len, tail.file_len)
            }
            _ => {
                let seq = opened.next_seq;
                let (file, path, allocated) = create_segment(&*fs, &opts, seq, next_lsn)?;
                segments.push(SegInfo {
                    seq,
                    first_lsn: next_lsn,
                    path,
                });
                let len = format::SEGMENT_HEADER as u64;
                (file, next_lsn, 0, len, allocated)
            }
        };
        let seg = segments
            .last()
            .cloned()
            .expect("a segment was found or created");
        let last = next_lsn - 1;
        let shared = Arc::new(Shared {
            app: Mutex::new(Appending {
                next_lsn,
                chunks: Vec::new(),
                spare: Vec::new(),
                failed: false,
                closing: false,
                epoch: 0,
            }),
            file: Mutex::new(FileState {
                file: Arc::from(file),
                seg_seq: seg.seq,
                seg_first,
                seg_records,
                seg_path: seg.path,
                written_len: len,
                synced_len: len,
                allocated_len: allocated,
                torn: false,
                dirty: false,
                last_sync: Instant::now(),
                failure: None,
            }),
            written: AtomicU64::new(last),
            synced: AtomicU64::new(last),
            epoch: AtomicU64::new(0),
            waiters: Mutex::new(Waiters::default()),
            progress_cv: Condvar::new(),
            sync: Mutex::new(SyncCtl {
                want: usize::MAX,
                ..SyncCtl::default()
            }),
            sync_cv: Condvar::new(),
            failed_notify: tokio::sync::Notify::new(),
            segments: Mutex::new(segments),
            snaps: Mutex::new(Snaps {
                known: opened.snapshot.into_iter().collect(),
            }),
            counters: Counters::default(),
            fs,
            opts,
        });
        let sh = shared.clone();
        let join = std::thread::Builder::new()
            .name("keypool-wal-sync".into())
            .spawn(move || sh.run_syncer())
            .map_err(|e| PersistError::io("spawn the flusher for", &shared.opts.dir, e))?;
        let log = Log {
            handle: Arc::new(Handle {
                _dir_lock: dir_lock,
                shared,
                syncer: Mutex::new(Some(join)),
            }),
        };
        Ok((log, opened.recovered))
    }

    /// Assigns the next LSN and copies the record into the write buffer, in
    /// the current epoch. See [`Log::append_in`].
    pub fn append(&self, record: &[u8]) -> Result<Lsn, PersistError> {
        self.append_in(self.epoch(), record)
    }

    /// Assigns the next LSN and copies the record into the write buffer.
    /// Cheap (one short mutex, no I/O): call it while holding the domain lock
    /// that ordered the change. Refused with [`PersistError::Unavailable`]
    /// while the log is failing, or when `epoch` is not the log's current one
    /// (the change was applied to a state that has since been replaced, see
    /// `app::State`), so that the caller logs nothing it cannot keep.
    pub fn append_in(&self, epoch: u64, record: &[u8]) -> Result<Lsn, PersistError> {
        if record.is_empty() || record.len() > format::MAX_RECORD {
            return Err(PersistError::BadRecord { len: record.len() });
        }
        let sh = self.shared();
        let mut app = sh.app.lock();
        app.writable()?;
        if app.epoch != epoch {
            return Err(PersistError::Unavailable);
        }
        let lsn = app.next_lsn;
        app.next_lsn += 1;
        let app = &mut *app;
        let chunk = match app.chunks.last_mut() {
            Some(c) => c,
            None => {
                let bytes = app.spare.pop().unwrap_or_else(|| Vec::with_capacity(4096));
                app.chunks.push(Chunk {
                    rotate: false,
                    first_lsn: lsn,
                    last_lsn: lsn - 1,
                    bytes,
                });
                app.chunks.last_mut().expect("just pushed")
            }
        };
        format::encode_record(&mut chunk.bytes, record);
        chunk.last_lsn = lsn;
        Ok(lsn)
    }

    /// The log's current epoch: it grows by one each time the log falls back
    /// after a failure.
    pub fn epoch(&self) -> u64 {
        self.shared().epoch.load(Ordering::Acquire)
    }

    /// Is the log accepting writes? Cheap; check it before changing memory.
    pub fn check_writable(&self) -> Result<(), PersistError> {
        self.shared().app.lock().writable()
    }

    /// [`Log::durable_in`] for a record of the current epoch.
    pub async fn durable(&self, lsn: Lsn) -> Result<(), PersistError> {
        self.durable_in(self.epoch(), lsn).await
    }

    /// Resolves when record `lsn`, appended in `epoch`, is durable per the
    /// fsync mode: `Always`, written and fdatasynced; `Everysec`/`Never`,
    /// written to the file (the OS has it). The calling task writes the
    /// buffer itself if nobody has (see the module docs). Errors with
    /// [`PersistError::Dropped`] if a failed write or flush dropped the record
    /// (it will never be in the log), or [`PersistError::Closed`] if the log
    /// closed first. Pass only LSNs that `append` returned.
    pub async fn durable_in(&self, epoch: u64, lsn: Lsn) -> Result<(), PersistError> {
        let sh = self.shared();
        if sh.written.load(Ordering::Acquire) < lsn {
            // Let the other requests that are ready append first (tokio runs
            // them before this task again), so that one write(2) carries them
            // all: what Redis does before it goes back to its event loop.
            tokio::task::yield_now().await;
            if sh.written.load(Ordering::Acquire) < lsn {
                sh.lead(lsn);
            }
        }
        // `written` and `synced` never pass a failure's durable end, so a
        // record at or below them is durable. The epoch is read after them: had
        // a fall-back reused `lsn` for a newer record, it would show (the epoch
        // changes before that record can exist).
        if sh.durable_lsn() >= lsn && sh.epoch.load(Ordering::Acquire) == epoch {
            return Ok(());
        }
        let started = Instant::now();
        let result = DurableWait {
            shared: sh,
            epoch,
            lsn,
        }
        .await;
        let c = &sh.counters;
        c.waits.fetch_add(1, Ordering::Relaxed);
        c.wait_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        result
    }

    /// The last LSN assigned so far.
    pub fn last_lsn(&self) -> Lsn {
        self.shared().app.lock().next_lsn - 1
    }

    /// Writes and fdatasyncs (whatever the mode) everything appended, then
    /// stops the flusher. Later appends fail with [`PersistError::Closed`].
    pub async fn close(&self) -> Result<(), PersistError> {
        let sh = self.handle.shared.clone();
        let result = tokio::task::spawn_blocking(move || sh.close_now())
            .await
            .map_err(|_| PersistError::Closed)?;
        if let Some(h) = self.handle.syncer.lock().take() {
            // It has stopped (close_now waits for that): joining is immediate.
            let _ = h.join();
        }
        result
    }

    /// Counters for `/metrics`.
    pub fn metrics(&self) -> LogMetrics {
        let sh = self.shared();
        let c = &sh.counters;
        let (last_lsn, failed) = {
            let app = sh.app.lock();
            (app.next_lsn - 1, app.failed)
        };
        let at = c.last_snapshot_at.load(Ordering::Relaxed);
        LogMetrics {
            records: c.records_total(),
            bytes_written: c.bytes.load(Ordering::Relaxed),
            fsyncs: c.fsyncs.load(Ordering::Relaxed),
            fsync_micros: c.fsync_micros.load(Ordering::Relaxed),
            synced_records: c.synced_records.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            waits: c.waits.load(Ordering::Relaxed),
            wait_micros: c.wait_micros.load(Ordering::Relaxed),
            fallbacks: c.fallbacks.load(Ordering::Relaxed),
            last_lsn,
            durable_lsn: sh.durable_lsn(),
            segments: sh.segments.lock().len() as u64,
            snapshots: c.snapshots.load(Ordering::Relaxed),
            last_snapshot_at: (at > 0).then_some(at),
            last_snapshot_bytes: c.last_snapshot_bytes.load(Ordering::Relaxed),
            failed,
        }
    }
}

impl Counters {
    fn records_total(&self) -> u64 {
        self.records.load(Ordering::Relaxed)
    }
}

/// Waits until a record is durable, dropped, or the log closes. Registers its
/// waker in the waiters' heap, which the flusher pops in LSN order.
struct DurableWait<'a> {
    shared: &'a Shared,
    epoch: u64,
    lsn: Lsn,
}

impl Future for DurableWait<'_> {
    type Output = Result<(), PersistError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let sh = self.shared;
        let mut w = sh.waiters.lock();
        if let Some(r) = sh.decide(self.epoch, self.lsn, &w.status) {
            return Poll::Ready(r);
        }
        w.heap.push(Waiter {
            lsn: self.lsn,
            waker: cx.waker().clone(),
        });
        let n = w.heap.len();
        drop(w);
        sh.waiter_added(n);
        Poll::Pending
    }
}
