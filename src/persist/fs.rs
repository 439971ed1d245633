//! The one door to the disk. Every file operation `persist` performs goes
//! through [`Fs`], so that tests can swap in [`super::testing::FaultFs`], which
//! loses unsynced bytes on a simulated crash, tears writes and fails them with
//! EIO or ENOSPC (the approach of tikv/raft-engine's file trait).
//!
//! The contract each method promises is the one the log relies on, spelled out
//! per method: in particular `truncate` and `copy` are durable when they return,
//! while a new or renamed directory entry is durable only after `sync_dir`.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// File-system operations used by the write-ahead log and snapshots.
pub trait Fs: Send + Sync + 'static {
    /// Creates a directory and its parents (like `mkdir -p`).
    fn create_dir_all(&self, dir: &Path) -> io::Result<()>;
    /// The paths of the entries of `dir`, in no particular order.
    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>>;
    /// Opens `path` for writing at given offsets ([`FsFile::write_at`]),
    /// creating it empty if it does not exist.
    fn open_write(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// The whole content of `path`.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Creates `path` empty (truncating it if it exists) and opens it for writing.
    fn write_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>>;
    /// Atomically replaces `to` with `from`; durable after [`Fs::sync_dir`].
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file; durable after [`Fs::sync_dir`].
    fn remove(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Cuts `path` to `len` bytes; durable when it returns.
    fn truncate(&self, path: &Path, len: u64) -> io::Result<()>;
    /// Copies `from` to `to` (replacing `to`); the copy's content is durable when
    /// it returns, its directory entry after [`Fs::sync_dir`].
    fn copy(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Takes an exclusive lock on `dir` for as long as the returned guard lives,
    /// so that two servers cannot write one log. Fails at once if another
    /// process holds it. The default (for test doubles) locks nothing.
    fn lock_dir(&self, _dir: &Path) -> io::Result<Box<dyn std::any::Any + Send + Sync>> {
        Ok(Box::new(()))
    }
}

/// An open file that is written sequentially. Shared between the task that
/// writes it and the thread that flushes it: a flush may run while a write
/// does, and makes durable at least everything written before it started.
pub trait FsFile: Send + Sync {
    /// Writes all of `buf` after what this handle wrote before (or fails,
    /// possibly after writing a prefix of it). Calls must not overlap.
    fn write_all(&self, buf: &[u8]) -> io::Result<()>;
    /// Writes all of `buf` at byte `offset`, over what is there and past the
    /// end as needed (or fails, possibly after writing a prefix of it).
    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()>;
    /// Makes everything written before the call durable (fdatasync).
    fn sync_data(&self) -> io::Result<()>;
}

/// The real file system (`std::fs`).
#[derive(Debug, Default, Clone, Copy)]
pub struct RealFs;

impl FsFile for File {
    fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        // `&File` is `Write`: one descriptor, written by one caller at a time.
        Write::write_all(&mut &*self, buf)
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(self, buf, offset)
    }

    fn sync_data(&self) -> io::Result<()> {
        File::sync_data(self)
    }
}

impl Fs for RealFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        std::fs::read_dir(dir)?
            .map(|e| e.map(|e| e.path()))
            .collect()
    }

    fn open_write(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
        Ok(Box::new(f))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn write_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        Ok(Box::new(File::create(path)?))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(len)?;
        f.sync_all()
    }

    fn copy(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::copy(from, to)?;
        OpenOptions::new().write(true).open(to)?.sync_all()
    }

    fn lock_dir(&self, dir: &Path) -> io::Result<Box<dyn std::any::Any + Send + Sync>> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))?;
        match file.try_lock() {
            Ok(()) => Ok(Box::new(file)),
            Err(std::fs::TryLockError::WouldBlock) => Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "another keypool process is using this data directory",
            )),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_fs_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let fs = RealFs;
        let sub = dir.path().join("a/b");
        fs.create_dir_all(&sub).unwrap();
        let p = sub.join("f");
        let f = fs.open_write(&p).unwrap();
        f.write_at(0, b"hello ").unwrap();
        f.sync_data().unwrap();
        drop(f);
        let f = fs.open_write(&p).unwrap();
        f.write_at(6, b"world").unwrap();
        f.write_at(0, b"H").unwrap();
        drop(f);
        assert_eq!(fs.read(&p).unwrap(), b"Hello world");
        fs.truncate(&p, 5).unwrap();
        assert_eq!(fs.read(&p).unwrap(), b"Hello");
        let q = sub.join("g");
        fs.copy(&p, &q).unwrap();
        let r = sub.join("h");
        fs.rename(&q, &r).unwrap();
        fs.sync_dir(&sub).unwrap();
        let mut names: Vec<_> = fs.list(&sub).unwrap();
        names.sort();
        assert_eq!(names, vec![sub.join("f"), sub.join("h")]);
        fs.remove(&p).unwrap();
        assert!(fs.read(&p).is_err());
        let w = fs.write_new(&r).unwrap();
        w.write_all(b"x").unwrap();
        drop(w);
        assert_eq!(fs.read(&r).unwrap(), b"x");
    }
}
