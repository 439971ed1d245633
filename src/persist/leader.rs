//! The leader's half of the write path: whoever holds the file lock writes
//! every record buffered so far with one `write(2)`, rolls to a new segment
//! when one is full or a snapshot asked for a boundary, and publishes
//! `written`. Requests lead in their own task (see `log.rs`); the flusher,
//! snapshots and `close` lead too when they need records on disk.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::log::{Chunk, Shared};
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
    let f = fs
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

/// Creates segment `seq` starting at `first_lsn` atomically (header and
/// `opts.preallocate` zeros written to a `.tmp`, fdatasynced, renamed,
/// directory fsynced) and opens it for writing. Answers its length.
pub(super) fn create_segment(
    fs: &dyn Fs,
    opts: &LogOptions,
    seq: u64,
    first_lsn: Lsn,
) -> Result<(Box<dyn FsFile>, PathBuf, u64), PersistError> {
    let path = opts.dir.join(format::segment_name(seq));
    let zeros = vec![0u8; opts.preallocate as usize];
    write_atomically(
        fs,
        &opts.dir,
        &path,
        &[&format::segment_header(first_lsn), &zeros],
    )?;
    let file = fs
        .open_write(&path)
        .map_err(|e| PersistError::io("open", &path, e))?;
    Ok((file, path, format::SEGMENT_HEADER as u64 + opts.preallocate))
}

/// A failure as the file lock's holders see it: where the log is cut back to.
#[derive(Debug, Clone)]
pub(super) struct Frozen {
    pub(super) reason: Arc<str>,
    /// The last LSN that stays.
    pub(super) durable_end: Lsn,
    /// Its end in bytes in the current segment.
    pub(super) durable_len: u64,
    /// The epoch that failed; `resume` needs a newer one.
    pub(super) epoch: u64,
}

/// The segment being written, behind the leader lock.
pub(super) struct FileState {
    /// Shared with the flusher, which fdatasyncs it while leaders write on.
    pub(super) file: Arc<dyn FsFile>,
    pub(super) seg_seq: u64,
    pub(super) seg_first: Lsn,
    /// Records in the current segment.
    pub(super) seg_records: u64,
    pub(super) seg_path: PathBuf,
    /// Bytes of the segment through `written`.
    pub(super) written_len: u64,
    /// Bytes of the segment through `synced`.
    pub(super) synced_len: u64,
    /// The file's length: past `written_len` it holds zeros written ahead
    /// (see `LogOptions::preallocate`).
    pub(super) allocated_len: u64,
    /// A failed write may have left bytes past `written_len`.
    pub(super) torn: bool,
    /// Written since the last fdatasync.
    pub(super) dirty: bool,
    pub(super) last_sync: Instant,
    /// Set by a failure until the log resumes; nothing is written meanwhile.
    pub(super) failure: Option<Frozen>,
}

impl Shared {
    /// Makes sure record `lsn` has been written to the file: writes the whole
    /// buffer unless another leader already wrote it (or the log is failing).
    pub(super) fn lead(&self, lsn: Lsn) {
        let mut f = self.file.lock();
        if self.written.load(Ordering::Acquire) >= lsn || f.failure.is_some() {
            return;
        }
        self.write_pending(&mut f);
    }

    /// Writes every buffered chunk in order. On a failure the log freezes (see
    /// `fallback.rs`) and the chunks not written are dropped with it.
    pub(super) fn write_pending(&self, f: &mut FileState) {
        let chunks = std::mem::take(&mut self.app.lock().chunks);
        if chunks.is_empty() {
            return;
        }
        let mut spare = Vec::new();
        let mut wrote = false;
        for mut chunk in chunks {
            if let Err(e) = self.write_chunk(f, &chunk) {
                self.fail(f, e);
                return;
            }
            wrote |= !chunk.bytes.is_empty();
            if chunk.bytes.capacity() <= 1 << 20 {
                chunk.bytes.clear();
                spare.push(chunk.bytes);
            }
        }
        if wrote {
            self.counters.batches.fetch_add(1, Ordering::Relaxed);
        }
        if !spare.is_empty() {
            let mut app = self.app.lock();
            spare.truncate(4usize.saturating_sub(app.spare.len()));
            app.spare.append(&mut spare);
        }
        // `everysec` needs the wake-up too: a flusher that went idle with
        // nothing unsynced would otherwise sleep past its second.
        if wrote && self.opts.fsync != FsyncMode::Never {
            self.records_written();
        }
    }

    fn write_chunk(&self, f: &mut FileState, chunk: &Chunk) -> Result<(), PersistError> {
        let needs_roll = if chunk.rotate {
            !(f.seg_records == 0 && f.seg_first == chunk.first_lsn)
        } else {
            !chunk.bytes.is_empty() && f.written_len >= self.opts.segment_bytes
        };
        if needs_roll {
            self.roll(f, chunk.first_lsn)?;
        }
        if chunk.bytes.is_empty() {
            return Ok(());
        }
        let n = chunk.bytes.len() as u64;
        f.dirty = true;
        if f.written_len + n > f.allocated_len && self.opts.preallocate > 0 {
            // Zeros ahead again; the next flush writes them with the size
            // change, once per `preallocate` bytes.
            let end = (f.written_len + n).max(f.allocated_len + self.opts.preallocate);
            let zeros = vec![0u8; (end - f.allocated_len) as usize];
            f.file
                .write_at(f.allocated_len, &zeros)
                .map_err(|e| PersistError::io("write", &f.seg_path, e))?;
            f.allocated_len = end;
        }
        if let Err(e) = f.file.write_at(f.written_len, &chunk.bytes) {
            f.torn = true;
            return Err(PersistError::io("write", &f.seg_path, e));
        }
        f.allocated_len = f.allocated_len.max(f.written_len + n);
        f.written_len += n;
        f.seg_records += chunk.last_lsn + 1 - chunk.first_lsn;
        self.counters.bytes.fetch_add(n, Ordering::Relaxed);
        self.counters
            .records
            .fetch_add(chunk.last_lsn + 1 - chunk.first_lsn, Ordering::Relaxed);
        self.written.store(chunk.last_lsn, Ordering::Release);
        Ok(())
    }

    /// Finishes the current segment (fdatasynced and cut to its records, so
    /// that it is complete before a later one exists) and starts the next one
    /// at `first_lsn`.
    pub(super) fn roll(&self, f: &mut FileState, first_lsn: Lsn) -> Result<(), PersistError> {
        if f.dirty {
            f.file
                .sync_data()
                .map_err(|e| PersistError::io("fsync", &f.seg_path, e))?;
            self.counters.fsyncs.fetch_add(1, Ordering::Relaxed);
            let written = self.written.load(Ordering::Acquire);
            let (len, seq) = (f.written_len, f.seg_seq);
            self.synced_through(f, written, len, seq);
        }
        self.cut_zeros(f)?;
        let seq = f.seg_seq + 1;
        let (file, path, allocated) = create_segment(&*self.fs, &self.opts, seq, first_lsn)?;
        f.allocated_len = allocated;
        f.file = Arc::from(file);
        f.seg_seq = seq;
        f.seg_first = first_lsn;
        f.seg_records = 0;
        f.seg_path = path.clone();
        f.written_len = format::SEGMENT_HEADER as u64;
        f.synced_len = f.written_len;
        f.torn = false;
        f.dirty = false;
        self.segments.lock().push(SegInfo {
            seq,
            first_lsn,
            path,
        });
        Ok(())
    }

    /// Cuts the zeros written ahead off the end of the current segment
    /// (durably): only the last segment of the log may end in zeros.
    pub(super) fn cut_zeros(&self, f: &mut FileState) -> Result<(), PersistError> {
        if f.allocated_len > f.written_len {
            self.fs
                .truncate(&f.seg_path, f.written_len)
                .map_err(|e| PersistError::io("truncate", &f.seg_path, e))?;
            f.allocated_len = f.written_len;
        }
        Ok(())
    }

    /// Publishes that a flush of segment `seq` made everything through `lsn`
    /// (`len` bytes of it) durable, and wakes the waiters it covered (answers
    /// how many). Called with the file lock held; does nothing once the log is
    /// failing (the failure already fixed what stays).
    pub(super) fn synced_through(&self, f: &mut FileState, lsn: Lsn, len: u64, seq: u64) -> usize {
        if f.failure.is_some() {
            return 0;
        }
        let before = self.synced.fetch_max(lsn, Ordering::AcqRel);
        if f.seg_seq == seq {
            f.synced_len = f.synced_len.max(len);
            if f.synced_len == f.written_len {
                f.dirty = false;
            }
        }
        f.last_sync = Instant::now();
        if lsn <= before {
            return 0;
        }
        self.counters
            .synced_records
            .fetch_add(lsn - before, Ordering::Relaxed);
        self.wake_through(lsn)
    }
}
