//! What a failed write or flush does: the log freezes at its last durable
//! record and everything after it is dropped, never retried.
//!
//! After a failed fdatasync the kernel may already have marked the pages clean
//! without writing them (PostgreSQL's 2018 fsync findings), so retrying the
//! flush proves nothing; Redis and etcd stop at that point. keypool goes back to
//! what it knows is durable instead, in four steps:
//!
//! 1. [`Shared::fail`] (inside the leader lock): appends are refused, `written`
//!    and `synced` stop moving, and the *durable end* is fixed: with `always`
//!    the last fdatasynced record; with `everysec`/`never` the last record the
//!    OS accepted (those were acknowledged; the modes' loss window covers them).
//! 2. The owner of the state reads what is durable ([`Log::read_durable`]:
//!    the newest snapshot plus the log through the durable end), rebuilds its
//!    state from it with the start-up code and swaps it in.
//! 3. [`Log::rolled_back`]: the epoch grows (a change to the old state can no
//!    longer be appended), and every waiter of a dropped record is answered
//!    [`PersistError::Dropped`].
//! 4. [`Log::resume`] (retried until the disk lets it): the segment is cut back
//!    to the durable end (and, without `always`, flushed, so that no later
//!    segment follows an incomplete one), a new segment starts after it, so
//!    that nothing is written again into pages a flush failed on and the disk
//!    is known to take writes again, and appends are accepted again.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::leader::{create_segment, FileState, Frozen};
use super::log::Log;
use super::recovery::{self, SegInfo};
use super::shared::{Failure, Shared};
use super::{format, FsyncMode, Lsn, PersistError, Recovered};

impl Shared {
    /// Freezes the log after `err` (step 1). Called with the file lock held.
    pub(super) fn fail(&self, f: &mut FileState, err: PersistError) {
        if f.failure.is_some() {
            return;
        }
        let reason: Arc<str> = Arc::from(err.to_string());
        let (durable_end, durable_len) = match self.opts.fsync {
            FsyncMode::Always => (self.synced.load(Ordering::Acquire), f.synced_len),
            FsyncMode::Everysec | FsyncMode::Never => {
                (self.written.load(Ordering::Acquire), f.written_len)
            }
        };
        let (epoch, dropped) = {
            let mut app = self.app.lock();
            app.failed = true;
            (app.epoch, app.next_lsn - 1 - durable_end)
        };
        tracing::error!(
            "write-ahead log: {reason}; refusing changes, dropping the {dropped} record(s) \
             after LSN {durable_end}, and falling back to what is durable"
        );
        f.failure = Some(Frozen {
            reason: reason.clone(),
            durable_end,
            durable_len,
            epoch,
        });
        {
            let mut w = self.waiters.lock();
            w.status.failure = Some(Failure {
                reason,
                durable_end,
                released: false,
            });
            self.wake_all(&mut w);
        }
        self.failed_notify.notify_one();
    }
}

impl Log {
    /// Resolves when the log has failed and waits to fall back (at once if it
    /// already has). For the task that rebuilds the state.
    pub async fn failed(&self) {
        loop {
            if self.shared().file.lock().failure.is_some() {
                return;
            }
            self.shared().failed_notify.notified().await;
        }
    }

    /// The failure being handled and the last LSN it keeps, if the log is failing.
    pub fn failure(&self) -> Option<(String, Lsn)> {
        let f = self.shared().file.lock();
        f.failure
            .as_ref()
            .map(|fr| (fr.reason.to_string(), fr.durable_end))
    }

    /// Step 2: what is durable, read from the disk as start-up reads it: the
    /// newest snapshot and the log records after it through the durable end.
    /// Blocking; changes no file.
    pub fn read_durable(&self) -> Result<Recovered, PersistError> {
        let sh = self.shared();
        let upto = {
            let f = sh.file.lock();
            match &f.failure {
                Some(fr) => fr.durable_end,
                None => sh.durable_lsn(),
            }
        };
        recovery::read_upto(&sh.opts, &*sh.fs, upto)
    }

    /// Answers the waiters of the dropped records without starting a new
    /// epoch: for when the state cannot be rebuilt yet, so that nobody waits
    /// for it. The dropped records stay dropped either way.
    pub fn release_dropped(&self) {
        let sh = self.shared();
        let mut w = sh.waiters.lock();
        if let Some(fail) = &mut w.status.failure {
            fail.released = true;
        }
        sh.wake_all(&mut w);
    }

    /// Step 3: the caller's state no longer holds anything after the durable
    /// end. Starts the next epoch (answered), and answers the waiters of the
    /// dropped records.
    pub fn rolled_back(&self) -> u64 {
        let sh = self.shared();
        let f = sh.file.lock();
        let Some(fr) = &f.failure else {
            return sh.epoch.load(Ordering::Acquire);
        };
        let mut app = sh.app.lock();
        let mut w = sh.waiters.lock();
        if app.epoch == fr.epoch {
            app.epoch += 1;
            w.status.ended.resize(fr.epoch as usize, 0);
            w.status.ended.push(fr.durable_end);
            sh.epoch.store(app.epoch, Ordering::Release);
        }
        if let Some(fail) = &mut w.status.failure {
            fail.released = true;
        }
        sh.wake_all(&mut w);
        app.epoch
    }

    /// Step 4: cuts the segment back to the durable end, starts a new segment
    /// after it and accepts appends again (in the epoch [`Log::rolled_back`]
    /// started). Errors if the disk still refuses; call it again later.
    pub fn resume(&self) -> Result<(), PersistError> {
        let sh = self.shared();
        let mut f = sh.file.lock();
        let Some(fr) = f.failure.clone() else {
            return Ok(());
        };
        if sh.epoch.load(Ordering::Acquire) == fr.epoch {
            return Err(PersistError::Unavailable);
        }
        let path = f.seg_path.clone();
        sh.fs
            .truncate(&path, fr.durable_len)
            .map_err(|e| PersistError::io("truncate", &path, e))?;
        f.allocated_len = fr.durable_len;
        // Without `always` the segment may end in records the OS has but the
        // disk may not: flush them before a later segment exists, or a power
        // loss would leave a gap. (A failing disk fails this; we try later.)
        if f.synced_len < fr.durable_len {
            f.file
                .sync_data()
                .map_err(|e| PersistError::io("fsync", &path, e))?;
        }
        let first = fr.durable_end + 1;
        let seq = f.seg_seq + 1;
        let (file, new_path, allocated) = create_segment(&*sh.fs, &sh.opts, seq, first)?;
        f.allocated_len = allocated;
        f.file = Arc::from(file);
        f.seg_seq = seq;
        f.seg_first = first;
        f.seg_records = 0;
        f.seg_path = new_path.clone();
        f.written_len = format::SEGMENT_HEADER as u64;
        f.synced_len = f.written_len;
        f.dirty = false;
        sh.segments.lock().push(SegInfo {
            seq,
            first_lsn: first,
            path: new_path,
        });
        f.torn = false;
        f.failure = None;
        // Everything through the durable end is on disk now, in every mode.
        sh.written.store(fr.durable_end, Ordering::Release);
        sh.synced.store(fr.durable_end, Ordering::Release);
        {
            let mut app = sh.app.lock();
            app.chunks.clear();
            app.next_lsn = first;
            app.failed = false;
        }
        {
            // A flush asked for past the durable end asked for LSNs that are
            // now gone (and will be reused): forget it.
            let mut ctl = sh.sync.lock();
            ctl.upto = ctl.upto.min(fr.durable_end);
        }
        sh.waiters.lock().status.failure = None;
        sh.counters.fallbacks.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            "the write-ahead log is writing again after LSN {}; changes are accepted",
            fr.durable_end
        );
        Ok(())
    }
}
