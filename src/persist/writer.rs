//! The writer thread of the [`Log`](super::Log): the only code that writes to
//! the segment being appended. It takes what `append` buffered, writes it with
//! one `write`, fdatasyncs as the mode says, publishes progress, rolls to new
//! segments, and on a failure keeps the bytes and retries them.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::log::{Chunk, Shared, EVERYSEC, RETRY};
use super::recovery::SegInfo;
use super::{format, Fs, FsFile, FsyncMode, LogOptions, Lsn, PersistError};

/// Writes `parts` as the whole of file `path` in `dir` so that a crash leaves
/// either no file or all of it: a `.tmp` beside it, fdatasynced, renamed over
/// `path`, and the directory fsynced.
pub(super) fn write_atomically(
    fs: &dyn Fs,
    dir: &Path,
    path: &Path,
    parts: &[&[u8]],
) -> Result<(), PersistError> {
    let tmp = format::tmp_path(path);
    let mut f = fs
        .write_new(&tmp)
        .map_err(|e| PersistError::io("create", &tmp, e))?;
    parts
        .iter()
        .try_for_each(|p| f.write_all(p))
        .map_err(|e| PersistError::io("write", &tmp, e))?;
    f.sync_data()
        .map_err(|e| PersistError::io("fsync", &tmp, e))?;
    drop(f);
    fs.rename(&tmp, path)
        .map_err(|e| PersistError::io("rename", &tmp, e))?;
    fs.sync_dir(dir)
        .map_err(|e| PersistError::io("fsync", dir, e))
}

/// Creates segment `seq` starting at `first_lsn` atomically (header written to
/// a `.tmp`, fdatasynced, renamed, directory fsynced) and opens it for appending.
pub(super) fn create_segment(
    fs: &dyn Fs,
    opts: &LogOptions,
    seq: u64,
    first_lsn: Lsn,
) -> Result<(Box<dyn FsFile>, PathBuf), PersistError> {
    let path = opts.dir.join(format::segment_name(seq));
    write_atomically(fs, &opts.dir, &path, &[&format::segment_header(first_lsn)])?;
    let file = fs
        .open_append(&path)
        .map_err(|e| PersistError::io("open", &path, e))?;
    Ok((file, path))
}

/// The writer thread's state; only it touches the segment being written.
pub(super) struct Writer {
    pub(super) file: Box<dyn FsFile>,
    pub(super) seg_seq: u64,
    pub(super) seg_first: Lsn,
    /// Records in the current segment.
    pub(super) seg_records: u64,
    pub(super) seg_path: PathBuf,
    /// Bytes in the file, as far as we wrote them.
    pub(super) file_len: u64,
    /// Bytes known good: everything before is published. A retry cuts back here.
    pub(super) good_len: u64,
    /// Written since the last fdatasync.
    pub(super) dirty: bool,
    /// The last fdatasync failed (everysec/never background flush).
    pub(super) sync_failed: bool,
    pub(super) last_sync: Instant,
    /// Chunks taken from `append` but not yet done (kept across failures).
    pub(super) pending: VecDeque<Chunk>,
    /// Highest LSN written to the file.
    pub(super) written: Lsn,
    /// Highest LSN fdatasynced.
    pub(super) synced: Lsn,
}

impl Writer {
    /// What counts as durable in this mode: fdatasynced with `--fsync always`,
    /// written to the file (the OS's page cache) otherwise.
    fn durable(&self, mode: FsyncMode) -> Lsn {
        match mode {
            FsyncMode::Always => self.synced,
            FsyncMode::Everysec | FsyncMode::Never => self.written,
        }
    }

    pub(super) fn run(mut self, sh: &Shared) {
        let mut failed_at: Option<Instant> = None;
        loop {
            let (closing, sync_upto) = {
                let mut app = sh.app.lock();
                loop {
                    self.pending.extend(app.chunks.drain(..));
                    if app.closing {
                        break;
                    }
                    let now = Instant::now();
                    if let Some(t) = failed_at {
                        let due = t + RETRY;
                        if now >= due {
                            break;
                        }
                        sh.wake.wait_until(&mut app, due);
                        continue;
                    }
                    if !self.pending.is_empty() || app.sync_upto > self.synced {
                        break;
                    }
                    if sh.opts.fsync == FsyncMode::Everysec && self.dirty {
                        let due = self.last_sync + EVERYSEC;
                        if now >= due {
                            break;
                        }
                        sh.wake.wait_until(&mut app, due);
                    } else {
                        sh.wake.wait(&mut app);
                    }
                }
                (app.closing, app.sync_upto)
            };

            let result = self.work(sh, closing, sync_upto);
            match result {
                Ok(()) => {
                    if failed_at.take().is_some() {
                        tracing::info!("the write-ahead log is writing again");
                        sh.app.lock().failed = false;
                    }
                    let durable = self.durable(sh.opts.fsync);
                    let synced = self.synced;
                    sh.publish(|p| {
                        p.durable = durable;
                        p.synced = synced;
                        p.error = None;
                        if closing {
                            p.closed = true;
                        }
                    });
                    if closing {
                        return;
                    }
                }
                Err(e) => {
                    let msg: Arc<str> = Arc::from(e.to_string());
                    tracing::error!(
                        "write-ahead log: {msg}; refusing changes until a retry succeeds"
                    );
                    let through = {
                        let mut app = sh.app.lock();
                        app.failed = true;
                        app.next_lsn - 1
                    };
                    failed_at = Some(Instant::now());
                    let durable = self.durable(sh.opts.fsync);
                    let synced = self.synced;
                    sh.publish(|p| {
                        p.durable = durable;
                        p.synced = synced;
                        p.failed_through = through;
                        p.error = Some(msg.clone());
                        if closing {
                            p.closed = true;
                            p.close_error = Some(msg.clone());
                        }
                    });
                    if closing {
                        return;
                    }
                }
            }
        }
    }

    /// Writes every pending chunk, then flushes as the mode, a snapshot or
    /// closing requires.
    fn work(&mut self, sh: &Shared, closing: bool, sync_upto: Lsn) -> Result<(), PersistError> {
        let always = sh.opts.fsync == FsyncMode::Always;
        let mut wrote = false;
        while let Some(chunk) = self.pending.front_mut() {
            let needs_roll = if chunk.rotate {
                !(self.seg_records == 0 && self.seg_first == chunk.first_lsn)
            } else {
                !chunk.bytes.is_empty() && self.file_len >= sh.opts.segment_bytes
            };
            if needs_roll {
                let first = chunk.first_lsn;
                self.roll(sh, first)?;
            }
            let Some(chunk) = self.pending.front_mut() else {
                break;
            };
            chunk.rotate = false;
            if !chunk.bytes.is_empty() {
                if self.file_len != self.good_len {
                    // A failed write may have left part of the chunk: cut it.
                    sh.fs
                        .truncate(&self.seg_path, self.good_len)
                        .map_err(|e| PersistError::io("truncate", &self.seg_path, e))?;
                    self.file_len = self.good_len;
                }
                self.file_len += chunk.bytes.len() as u64;
                self.dirty = true;
                self.file
                    .write_all(&chunk.bytes)
                    .map_err(|e| PersistError::io("write", &self.seg_path, e))?;
                sh.counters
                    .bytes
                    .fetch_add(chunk.bytes.len() as u64, Ordering::Relaxed);
                wrote = true;
                let (first, last) = (chunk.first_lsn, chunk.last_lsn);
                // `written` may run ahead of `good_len` until the flush below
                // succeeds: in `always` mode durability is `synced`, and a
                // failed flush rewrites the chunk from `good_len`.
                self.written = last;
                if always {
                    self.sync(sh)?;
                }
                self.good_len = self.file_len;
                self.seg_records += last + 1 - first;
            }
            self.pending.pop_front();
        }
        if wrote {
            sh.counters.batches.fetch_add(1, Ordering::Relaxed);
        }
        let everysec_due =
            sh.opts.fsync == FsyncMode::Everysec && self.last_sync.elapsed() >= EVERYSEC;
        if self.dirty && (closing || sync_upto > self.synced || everysec_due || self.sync_failed) {
            self.sync(sh)?;
        }
        Ok(())
    }

    fn sync(&mut self, sh: &Shared) -> Result<(), PersistError> {
        if let Err(e) = self.file.sync_data() {
            self.sync_failed = true;
            return Err(PersistError::io("fsync", &self.seg_path, e));
        }
        sh.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.sync_failed = false;
        self.dirty = false;
        self.last_sync = Instant::now();
        // Invariant: not dirty ⇒ everything written is synced.
        self.synced = self.written;
        Ok(())
    }

    /// Finishes the current segment (fdatasynced, so it is complete before a
    /// later one exists) and starts segment `seg_seq + 1` at `first_lsn`.
    fn roll(&mut self, sh: &Shared, first_lsn: Lsn) -> Result<(), PersistError> {
        if self.dirty {
            self.sync(sh)?;
        }
        let seq = self.seg_seq + 1;
        let (file, path) = create_segment(&*sh.fs, &sh.opts, seq, first_lsn)?;
        self.file = file;
        self.seg_seq = seq;
        self.seg_first = first_lsn;
        self.seg_records = 0;
        self.seg_path = path.clone();
        self.file_len = format::SEGMENT_HEADER as u64;
        self.good_len = self.file_len;
        sh.segments.lock().push(SegInfo {
            seq,
            first_lsn,
            path,
        });
        Ok(())
    }
}
