//! [`Log`]: the write-ahead log handle and its writer thread.
//!
//! `append` only assigns an LSN and frames the record into an in-memory buffer
//! under one short mutex (it runs while the caller holds a domain lock). A
//! dedicated writer thread takes everything buffered, writes it with one
//! `write`, fdatasyncs once (`--fsync always`) and publishes the durable LSN:
//! every record appended while the previous flush ran shares the next one
//! (group commit). `durable(lsn)` waits on that publication.
//!
//! On a write or flush failure the writer publishes the failure (the waiters of
//! every record assigned so far get an error), makes `append` refuse, and keeps
//! the failed bytes: every [`RETRY`] it cuts the file back to the last good
//! length and writes them again. When that succeeds the log is writable again.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use super::format;
use super::recovery::{self, SegInfo};
use super::writer::{create_segment, Writer};
use super::{Fs, LogMetrics, LogOptions, Lsn, PersistError, Recovered};

/// How long the writer waits between retries of a failed write or flush.
pub(super) const RETRY: Duration = Duration::from_millis(200);
/// How often `--fsync everysec` flushes.
pub(super) const EVERYSEC: Duration = Duration::from_secs(1);

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
    /// Records not yet taken by the writer.
    pub(super) chunks: Vec<Chunk>,
    /// Set while a write or flush has failed and not been retried successfully.
    pub(super) failed: bool,
    /// Set by `close` (or the last handle's drop): flush and stop.
    pub(super) closing: bool,
    /// Someone (a snapshot) needs the log fdatasynced through this LSN.
    pub(super) sync_upto: Lsn,
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

/// What the writer publishes.
#[derive(Debug, Clone, Default)]
pub(super) struct Progress {
    /// Highest LSN durable per the fsync mode.
    pub(super) durable: Lsn,
    /// Highest LSN fdatasynced.
    pub(super) synced: Lsn,
    /// While `error` is set: records up to here were pending when it happened.
    pub(super) failed_through: Lsn,
    /// The current failure, if any.
    pub(super) error: Option<Arc<str>>,
    /// The writer has stopped; `close_error` says whether its last flush worked.
    pub(super) closed: bool,
    pub(super) close_error: Option<Arc<str>>,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) records: AtomicU64,
    pub(super) bytes: AtomicU64,
    pub(super) fsyncs: AtomicU64,
    pub(super) batches: AtomicU64,
    pub(super) snapshots: AtomicU64,
    pub(super) last_snapshot_at: AtomicU64,
    pub(super) last_snapshot_bytes: AtomicU64,
}

/// Snapshot bookkeeping; its mutex also serialises `write_snapshot` calls.
#[derive(Debug, Default)]
struct Snaps {
    /// Valid snapshots known to be on disk, ascending.
    known: Vec<Lsn>,
}

pub(super) struct Shared {
    pub(super) opts: LogOptions,
    pub(super) fs: Arc<dyn Fs>,
    pub(super) app: Mutex<Appending>,
    /// Wakes the writer (new records, sync request, close).
    pub(super) wake: Condvar,
    /// The writer's publication, for blocking waiters (`write_snapshot`).
    pub(super) progress: Mutex<Progress>,
    pub(super) progress_cv: Condvar,
    /// The same publication, for async waiters (`durable`, `close`).
    pub(super) progress_tx: watch::Sender<Progress>,
    /// Segments on disk, oldest first; the last is the one being written.
    /// The writer appends on roll, `write_snapshot` removes from the front.
    pub(super) segments: Mutex<Vec<SegInfo>>,
    snaps: Mutex<Snaps>,
    pub(super) counters: Counters,
}

impl Shared {
    pub(super) fn publish(&self, f: impl FnOnce(&mut Progress)) {
        let p = {
            let mut p = self.progress.lock();
            f(&mut p);
            p.clone()
        };
        self.progress_cv.notify_all();
        self.progress_tx.send_replace(p);
    }
}

/// Stops the writer when the last [`Log`] clone goes away.
struct Handle {
    /// The data directory's lock, released when the last handle goes.
    _dir_lock: Box<dyn std::any::Any + Send + Sync>,
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.app.lock().closing = true;
        self.shared.wake.notify_all();
        if let Some(h) = self.writer.lock().take() {
            // The writer flushes what is buffered and exits; it never blocks
            // for long (one retry at most when the disk is failing).
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
    fn shared(&self) -> &Shared {
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
        let (file, seg_first, seg_records, len) = match (segments.last(), opened.tail) {
            (Some(seg), Some((len, end))) if end == next_lsn => {
                let file = fs
                    .open_append(&seg.path)
                    .map_err(|e| PersistError::io("open", &seg.path, e))?;
                (file, seg.first_lsn, next_lsn - seg.first_lsn, len)
            }
            _ => {
                let seq = opened.next_seq;
                let (file, path) = create_segment(&*fs, &opts, seq, next_lsn)?;
                segments.push(SegInfo {
                    seq,
                    first_lsn: next_lsn,
                    path,
                });
                (file, next_lsn, 0, format::SEGMENT_HEADER as u64)
            }
        };
        let seg = segments
            .last()
            .cloned()
            .expect("a segment was found or created");
        let last = next_lsn - 1;
        let progress = Progress {
            durable: last,
            synced: last,
            ..Progress::default()
        };
        let (progress_tx, _) = watch::channel(progress.clone());
        let shared = Arc::new(Shared {
            fs,
            app: Mutex::new(Appending {
                next_lsn,
                chunks: Vec::new(),
                failed: false,
                closing: false,
                sync_upto: 0,
                epoch: 0,
            }),
            wake: Condvar::new(),
            progress: Mutex::new(progress),
            progress_cv: Condvar::new(),
            progress_tx,
            segments: Mutex::new(segments),
            snaps: Mutex::new(Snaps {
                known: opened.snapshot.into_iter().collect(),
            }),
            counters: Counters::default(),
            opts,
        });
        let writer = Writer {
            file,
            seg_seq: seg.seq,
            seg_first,
            seg_records,
            seg_path: seg.path,
            file_len: len,
            good_len: len,
            dirty: false,
            sync_failed: false,
            last_sync: Instant::now(),
            pending: VecDeque::new(),
            written: last,
            synced: last,
        };
        let sh = shared.clone();
        let join = std::thread::Builder::new()
            .name("keypool-wal".into())
            .spawn(move || writer.run(&sh))
            .map_err(|e| PersistError::io("spawn the writer for", &shared.opts.dir, e))?;
        let log = Log {
            handle: Arc::new(Handle {
                _dir_lock: dir_lock,
                shared,
                writer: Mutex::new(Some(join)),
            }),
        };
        Ok((log, opened.recovered))
    }

    /// Assigns the next LSN and copies the record into the write buffer.
    /// Cheap (one short mutex, no I/O): call it while holding the domain lock
    /// that ordered the change. Errors with [`PersistError::Unavailable`] while
    /// the log is failing, so that the caller changes nothing.
    pub fn append(&self, record: &[u8]) -> Result<Lsn, PersistError> {
        let epoch = self.shared().app.lock().epoch;
        self.append_in(epoch, record)
    }

    /// [`Log::append`] for a change made to the state of `epoch`: refused with
    /// [`PersistError::Unavailable`] unless that is the log's current epoch, so
    /// a change applied to a state that has since been replaced (after a failed
    /// write, see `app::State`) is never logged.
    pub fn append_in(&self, epoch: u64, record: &[u8]) -> Result<Lsn, PersistError> {
        if record.is_empty() || record.len() > format::MAX_RECORD {
            return Err(PersistError::BadRecord { len: record.len() });
        }
        let sh = self.shared();
        let lsn = {
            let mut app = sh.app.lock();
            app.writable()?;
            if app.epoch != epoch {
                return Err(PersistError::Unavailable);
            }
            let lsn = app.next_lsn;
            app.next_lsn += 1;
            let chunk = match app.chunks.last_mut() {
                Some(c) => c,
                None => {
                    app.chunks.push(Chunk {
                        rotate: false,
                        first_lsn: lsn,
                        last_lsn: lsn - 1,
                        bytes: Vec::with_capacity(4096),
                    });
                    app.chunks.last_mut().expect("just pushed")
                }
            };
            format::encode_record(&mut chunk.bytes, record);
            chunk.last_lsn = lsn;
            lsn
        };
        sh.counters.records.fetch_add(1, Ordering::Relaxed);
        sh.wake.notify_one();
        Ok(lsn)
    }

    /// Is the log accepting writes? Cheap; check it before changing memory.
    pub fn check_writable(&self) -> Result<(), PersistError> {
        self.shared().app.lock().writable()
    }

    /// Resolves when `lsn` is durable per the fsync mode: `Always` → written
    /// and fdatasynced (one flush covers every record appended before it
    /// started); `Everysec`/`Never` → written to the file. Errors if the write
    /// or flush covering `lsn` failed ([`PersistError::WriteFailed`]), or the
    /// log closed first. Pass only LSNs that `append` returned: a later one
    /// waits until some append reaches it.
    pub async fn durable(&self, lsn: Lsn) -> Result<(), PersistError> {
        let mut rx = self.shared().progress_tx.subscribe();
        loop {
            {
                let p = rx.borrow_and_update();
                if p.durable >= lsn {
                    return Ok(());
                }
                if let Some(e) = &p.error {
                    if lsn <= p.failed_through {
                        return Err(PersistError::WriteFailed {
                            reason: e.to_string(),
                        });
                    }
                }
                if p.closed {
                    return Err(match &p.close_error {
                        Some(e) => PersistError::WriteFailed {
                            reason: e.to_string(),
                        },
                        None => PersistError::Closed,
                    });
                }
            }
            if rx.changed().await.is_err() {
                return Err(PersistError::Closed);
            }
        }
    }

    /// The last LSN assigned so far.
    pub fn last_lsn(&self) -> Lsn {
        self.shared().app.lock().next_lsn - 1
    }

    /// Flushes (and fdatasyncs, whatever the mode) everything appended, then
    /// stops the writer. Later appends fail with [`PersistError::Closed`].
    pub async fn close(&self) -> Result<(), PersistError> {
        let sh = self.shared();
        sh.app.lock().closing = true;
        sh.wake.notify_all();
        let mut rx = sh.progress_tx.subscribe();
        let p = rx
            .wait_for(|p| p.closed)
            .await
            .map(|p| p.clone())
            .map_err(|_| PersistError::Closed)?;
        if let Some(h) = self.handle.writer.lock().take() {
            // It has published `closed`, its last act: joining is immediate.
            let _ = h.join();
        }
        match p.close_error {
            Some(e) => Err(PersistError::WriteFailed {
                reason: e.to_string(),
            }),
            None => Ok(()),
        }
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
            records: c.records.load(Ordering::Relaxed),
            bytes_written: c.bytes.load(Ordering::Relaxed),
            fsyncs: c.fsyncs.load(Ordering::Relaxed),
            batches: c.batches.load(Ordering::Relaxed),
            last_lsn,
            durable_lsn: sh.progress.lock().durable,
            segments: sh.segments.lock().len() as u64,
            snapshots: c.snapshots.load(Ordering::Relaxed),
            last_snapshot_at: (at > 0).then_some(at),
            last_snapshot_bytes: c.last_snapshot_bytes.load(Ordering::Relaxed),
            failed,
        }
    }
}

#[path = "log_snapshot.rs"]
mod snapshot;
