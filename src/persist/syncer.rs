//! The flusher: the one thread that fdatasyncs the segment being written, so
//! that with `--fsync always` the tasks go on writing batch N+1 while the flush
//! of batch N runs (pipelined group commit). It wakes exactly the waiters whose
//! LSNs a flush covered, lowest first. With `everysec` it flushes once a second;
//! with `never` only when a snapshot or `close` asks.
//!
//! # When a flush starts (`--fsync always`)
//!
//! A flush covers what was written before it started. Started the instant the
//! previous one ends, it would catch only the first of the requests that flush
//! just woke, and the rest would wait for it and then for their own. So after a
//! flush that woke `k` waiters the flusher waits, briefly, until `k` new waiters
//! have arrived (the woken requests' clients have had the time to come back),
//! or until the group-commit delay has passed since the first one, whichever
//! comes first (PostgreSQL's `commit_delay`, MySQL's
//! `binlog_group_commit_sync_delay`). The delay adapts: a fraction of the last
//! flushes' duration, so a slow disk waits longer and a fast one barely at all.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::log::{Shared, EVERYSEC};
use super::{FsyncMode, Lsn, PersistError};

/// The longest a flush is held back for more records to join it.
const MAX_COMMIT_DELAY: Duration = Duration::from_micros(500);

/// The group-commit delay as a fraction (1/n) of the recent flush time.
const DELAY_FRACTION: u32 = 2;

impl Shared {
    /// The flusher thread's loop.
    pub(super) fn run_syncer(&self) {
        // Waiters the last flush woke: that many should come back.
        let mut woken = 0usize;
        // A moving average of how long a flush takes.
        let mut flush_time = Duration::from_micros(200);
        loop {
            let mut ctl = self.sync.lock();
            let mut first_seen: Option<Instant> = None;
            let stop = loop {
                if ctl.stop {
                    break true;
                }
                let written = self.written.load(Ordering::Acquire);
                let synced = self.synced.load(Ordering::Acquire);
                if ctl.upto > synced {
                    break false;
                }
                let unsynced = written > synced && !self.is_failing();
                match self.opts.fsync {
                    FsyncMode::Always if unsynced => {
                        let waiting = self.waiters.lock().heap.len();
                        let started = *first_seen.get_or_insert_with(Instant::now);
                        let delay = (flush_time / DELAY_FRACTION).min(MAX_COMMIT_DELAY);
                        if waiting >= woken.max(1) || started.elapsed() >= delay {
                            break false;
                        }
                        ctl.want = woken.max(1);
                        let _ = self.sync_cv.wait_until(&mut ctl, started + delay);
                        ctl.want = usize::MAX;
                    }
                    FsyncMode::Everysec if unsynced => {
                        // Never the file lock under `sync`: a leader holds
                        // the file lock when it takes `sync` to wake us.
                        let last = parking_lot::MutexGuard::unlocked(&mut ctl, || {
                            self.file.lock().last_sync
                        });
                        let due = last + EVERYSEC;
                        if Instant::now() >= due {
                            break false;
                        }
                        let _ = self.sync_cv.wait_until(&mut ctl, due);
                    }
                    _ => {
                        ctl.idle = true;
                        self.sync_cv.wait(&mut ctl);
                        ctl.idle = false;
                    }
                }
            };
            let upto = ctl.upto;
            drop(ctl);
            if stop {
                return;
            }
            if upto > self.written.load(Ordering::Acquire) {
                self.lead(upto);
            }
            let started = Instant::now();
            if let Some(n) = self.flush_once() {
                woken = n;
                flush_time = (flush_time * 3 + started.elapsed()) / 4;
            }
        }
    }

    fn is_failing(&self) -> bool {
        self.app.lock().failed
    }

    /// One fdatasync of what has been written; wakes the waiters it covered.
    /// Answers how many it woke, or `None` if there was nothing to flush.
    pub(super) fn flush_once(&self) -> Option<usize> {
        let (lsn, len, seq, file) = {
            let f = self.file.lock();
            if f.failure.is_some() {
                return None;
            }
            let lsn = self.written.load(Ordering::Acquire);
            if lsn <= self.synced.load(Ordering::Acquire) && !f.dirty {
                return None;
            }
            (lsn, f.written_len, f.seg_seq, f.file.clone())
        };
        let started = Instant::now();
        let result = file.sync_data();
        self.counters
            .fsync_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        let mut f = self.file.lock();
        match result {
            Ok(()) => {
                self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
                Some(self.synced_through(&mut f, lsn, len, seq))
            }
            Err(e) => {
                let path = f.seg_path.clone();
                self.fail(&mut f, PersistError::io("fsync", &path, e));
                None
            }
        }
    }

    /// Wakes every waiter at or below `lsn` (and blocking waiters); answers
    /// how many tasks it woke.
    pub(super) fn wake_through(&self, lsn: Lsn) -> usize {
        let mut wake = Vec::new();
        {
            let mut w = self.waiters.lock();
            while w.heap.peek().is_some_and(|top| top.lsn <= lsn) {
                if let Some(top) = w.heap.pop() {
                    wake.push(top.waker);
                }
            }
            self.progress_cv.notify_all();
        }
        let n = wake.len();
        for waker in wake {
            waker.wake();
        }
        n
    }

    /// A leader wrote records (`always` or `everysec`): wake the flusher if it
    /// sleeps with nothing to do.
    pub(super) fn records_written(&self) {
        let ctl = self.sync.lock();
        if ctl.idle {
            self.sync_cv.notify_one();
        }
    }

    /// A task started waiting; `n` are waiting now. Wakes the flusher when it
    /// was waiting for that many.
    pub(super) fn waiter_added(&self, n: usize) {
        if self.opts.fsync != FsyncMode::Always {
            return;
        }
        let ctl = self.sync.lock();
        if n >= ctl.want {
            self.sync_cv.notify_one();
        }
    }

    /// Blocks until the log is written and fdatasynced through `lsn`,
    /// whatever the mode (snapshots need it).
    pub(super) fn sync_through(&self, lsn: Lsn) -> Result<(), PersistError> {
        self.lead(lsn);
        {
            let mut ctl = self.sync.lock();
            ctl.upto = ctl.upto.max(lsn);
            self.sync_cv.notify_one();
        }
        let mut w = self.waiters.lock();
        loop {
            if let Some(f) = &w.status.failure {
                return Err(PersistError::WriteFailed {
                    reason: f.reason.to_string(),
                });
            }
            if self.synced.load(Ordering::Acquire) >= lsn {
                return Ok(());
            }
            if w.status.closed {
                return Err(PersistError::Closed);
            }
            self.progress_cv.wait(&mut w);
        }
    }

    /// Writes and fdatasyncs everything appended, marks the log closed (waiters
    /// are answered) and stops the flusher. Idempotent.
    pub(super) fn close_now(&self) -> Result<(), PersistError> {
        self.app.lock().closing = true;
        let mut error = None;
        {
            let mut f = self.file.lock();
            self.write_pending(&mut f);
            match &f.failure {
                Some(fr) => error = Some(fr.reason.clone()),
                None if f.dirty => match f.file.sync_data() {
                    Ok(()) => {
                        self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
                        let (written, len, seq) = (
                            self.written.load(Ordering::Acquire),
                            f.written_len,
                            f.seg_seq,
                        );
                        self.synced_through(&mut f, written, len, seq);
                    }
                    Err(e) => {
                        let path = f.seg_path.clone();
                        let e = PersistError::io("fsync", &path, e);
                        error = Some(e.to_string().into());
                        self.fail(&mut f, e);
                    }
                },
                None => {}
            }
        }
        let result = {
            let mut w = self.waiters.lock();
            if !w.status.closed {
                w.status.closed = true;
                w.status.close_error = error;
            }
            let r = match &w.status.close_error {
                Some(e) => Err(PersistError::WriteFailed {
                    reason: e.to_string(),
                }),
                None => Ok(()),
            };
            self.wake_all(&mut w);
            r
        };
        let mut ctl = self.sync.lock();
        ctl.stop = true;
        self.sync_cv.notify_all();
        result
    }
}
