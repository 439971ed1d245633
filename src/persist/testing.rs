//! [`FaultFs`]: an in-memory [`Fs`] for crash and fault tests (in the manner of
//! cberner/redb's crash test).
//!
//! It keeps two images of everything: the *live* one that reads see, and the
//! *durable* one that a power loss would leave. File bytes become durable on
//! `sync_data` (or `truncate`/`copy`, which are durable by contract); directory
//! entries (creations, renames, removals) become durable on `sync_dir`.
//! [`FaultFs::crash`] returns a new file system holding only the durable image
//! and kills the old one, so a writer thread still running against it fails
//! instead of writing into the "rebooted" machine. Faults: a write or sync can
//! fail with an errno of the test's choice, and a write can be torn after a
//! chosen number of bytes.
//!
//! Public (not `cfg(test)`) so that integration tests and benches can use it;
//! nothing in the server constructs one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;

use super::fs::{Fs, FsFile};

/// `EIO`: an I/O error.
pub const EIO: i32 = 5;
/// `ENOSPC`: no space left on device.
pub const ENOSPC: i32 = 28;

/// Faults to inject; `None` means "works".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Faults {
    /// Every `write_all` fails with this errno without writing anything.
    pub write: Option<i32>,
    /// Every `sync_data` fails with this errno (nothing becomes durable).
    pub sync: Option<i32>,
    /// The next `write_all` writes only this many bytes, then fails with EIO
    /// (one shot: cleared when it fires).
    pub tear_next_write_at: Option<usize>,
    /// Every metadata operation (`write_new`, `rename`, `sync_dir`, `truncate`,
    /// `copy`, `remove`) fails with this errno.
    pub meta: Option<i32>,
    /// Every `remove` fails with this errno (a crash between writing a
    /// snapshot and deleting what it made unnecessary looks like this).
    pub remove: Option<i32>,
    /// Every successful `sync_data` first sleeps this long, as a disk flush
    /// would (makes group commit observable).
    pub sync_delay: Option<std::time::Duration>,
}

#[derive(Debug, Default, Clone)]
struct Inode {
    live: Vec<u8>,
    durable: Vec<u8>,
}

#[derive(Debug, Default)]
struct State {
    /// Set by `crash`: every later operation fails, as the process is gone.
    dead: bool,
    dirs: BTreeSet<PathBuf>,
    live_dir: BTreeMap<PathBuf, u64>,
    durable_dir: BTreeMap<PathBuf, u64>,
    inodes: HashMap<u64, Inode>,
    next_ino: u64,
    faults: Faults,
    syncs: u64,
    writes: u64,
}

impl State {
    fn alive(&self) -> io::Result<()> {
        if self.dead {
            Err(io::Error::other("the file system crashed"))
        } else {
            Ok(())
        }
    }

    fn meta(&self) -> io::Result<()> {
        self.alive()?;
        match self.faults.meta {
            Some(errno) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        }
    }

    fn new_inode(&mut self, content: Vec<u8>, durable: bool) -> u64 {
        self.next_ino += 1;
        let ino = self.next_ino;
        let d = if durable { content.clone() } else { Vec::new() };
        self.inodes.insert(
            ino,
            Inode {
                live: content,
                durable: d,
            },
        );
        ino
    }

    fn lookup(&self, p: &Path) -> io::Result<u64> {
        self.live_dir.get(p).copied().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} not found", p.display()),
            )
        })
    }

    fn check_parent(&self, p: &Path) -> io::Result<()> {
        match p.parent() {
            Some(d) if self.dirs.contains(d) => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no directory for {}", p.display()),
            )),
        }
    }
}

/// An in-memory file system with a durable image, crashes and injected faults.
#[derive(Debug, Default)]
pub struct FaultFs {
    state: Arc<Mutex<State>>,
}

impl FaultFs {
    /// An empty file system.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Replaces the injected faults.
    pub fn set_faults(&self, faults: Faults) {
        self.state.lock().faults = faults;
    }

    /// Clears every injected fault.
    pub fn clear_faults(&self) {
        self.set_faults(Faults::default());
    }

    /// A power loss: returns the file system a reboot would find (durable image
    /// only) and kills this one.
    pub fn crash(&self) -> Arc<FaultFs> {
        self.crash_keeping(0)
    }

    /// Like [`FaultFs::crash`], but up to `extra` unsynced bytes at the end of
    /// every file survive (the disk wrote part of what was pending), which is
    /// how torn records come to be.
    pub fn crash_keeping(&self, extra: usize) -> Arc<FaultFs> {
        let mut st = self.state.lock();
        st.dead = true;
        let mut inodes = HashMap::new();
        for ino in st.durable_dir.values() {
            if let Some(i) = st.inodes.get(ino) {
                // The disk wrote the first `extra` bytes of what was pending,
                // from the first byte where the live image differs.
                let mut content = i.durable.clone();
                let from = (0..i.live.len())
                    .find(|&b| content.get(b) != Some(&i.live[b]))
                    .unwrap_or(i.live.len());
                let to = i.live.len().min(from.saturating_add(extra));
                if content.len() < to {
                    content.resize(to, 0);
                }
                content[from..to].copy_from_slice(&i.live[from..to]);
                inodes.insert(
                    *ino,
                    Inode {
                        live: content.clone(),
                        durable: content,
                    },
                );
            }
        }
        let next = State {
            dead: false,
            dirs: st.dirs.clone(),
            live_dir: st.durable_dir.clone(),
            durable_dir: st.durable_dir.clone(),
            inodes,
            next_ino: st.next_ino,
            faults: Faults::default(),
            syncs: 0,
            writes: 0,
        };
        Arc::new(FaultFs {
            state: Arc::new(Mutex::new(next)),
        })
    }

    /// The live content of `path`, if it exists.
    pub fn bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.state.lock();
        let ino = st.live_dir.get(path)?;
        st.inodes.get(ino).map(|i| i.live.clone())
    }

    /// The durable content of `path`, if its entry is durable.
    pub fn durable_bytes(&self, path: &Path) -> Option<Vec<u8>> {
        let st = self.state.lock();
        let ino = st.durable_dir.get(path)?;
        st.inodes.get(ino).map(|i| i.durable.clone())
    }

    /// Sets the content of `path` (live and durable, entry included), as a test
    /// that damages a file on purpose would.
    pub fn set_bytes(&self, path: &Path, content: Vec<u8>) {
        let mut st = self.state.lock();
        if let Some(parent) = path.parent() {
            st.dirs.insert(parent.to_path_buf());
        }
        let ino = st.new_inode(content, true);
        st.live_dir.insert(path.to_path_buf(), ino);
        st.durable_dir.insert(path.to_path_buf(), ino);
    }

    /// Every live file path, sorted.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.state.lock().live_dir.keys().cloned().collect()
    }

    /// How many `sync_data` calls succeeded.
    pub fn sync_count(&self) -> u64 {
        self.state.lock().syncs
    }

    /// How many `write_all` calls succeeded.
    pub fn write_count(&self) -> u64 {
        self.state.lock().writes
    }
}

struct FaultFile {
    state: Arc<Mutex<State>>,
    ino: u64,
}

impl FsFile for FaultFile {
    fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        let mut st = self.state.lock();
        st.alive()?;
        if let Some(n) = st.faults.tear_next_write_at.take() {
            let n = n.min(buf.len());
            if let Some(i) = st.inodes.get_mut(&self.ino) {
                i.live.extend_from_slice(&buf[..n]);
            }
            return Err(io::Error::from_raw_os_error(EIO));
        }
        if let Some(errno) = st.faults.write {
            return Err(io::Error::from_raw_os_error(errno));
        }
        st.writes += 1;
        match st.inodes.get_mut(&self.ino) {
            Some(i) => {
                i.live.extend_from_slice(buf);
                Ok(())
            }
            None => Err(io::Error::other("stale file handle")),
        }
    }

    fn write_at(&self, offset: u64, buf: &[u8]) -> io::Result<()> {
        let mut st = self.state.lock();
        st.alive()?;
        let at = usize::try_from(offset).map_err(io::Error::other)?;
        let (buf, torn) = match st.faults.tear_next_write_at.take() {
            Some(n) => (&buf[..n.min(buf.len())], true),
            None => {
                if let Some(errno) = st.faults.write {
                    return Err(io::Error::from_raw_os_error(errno));
                }
                (buf, false)
            }
        };
        let Some(i) = st.inodes.get_mut(&self.ino) else {
            return Err(io::Error::other("stale file handle"));
        };
        if i.live.len() < at + buf.len() {
            i.live.resize(at + buf.len(), 0);
        }
        i.live[at..at + buf.len()].copy_from_slice(buf);
        if torn {
            return Err(io::Error::from_raw_os_error(EIO));
        }
        st.writes += 1;
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let delay = self.state.lock().faults.sync_delay;
        if let Some(d) = delay {
            std::thread::sleep(d);
        }
        let mut st = self.state.lock();
        st.alive()?;
        if let Some(errno) = st.faults.sync {
            return Err(io::Error::from_raw_os_error(errno));
        }
        st.syncs += 1;
        match st.inodes.get_mut(&self.ino) {
            Some(i) => {
                i.durable = i.live.clone();
                Ok(())
            }
            None => Err(io::Error::other("stale file handle")),
        }
    }
}

impl Fs for FaultFs {
    fn create_dir_all(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.alive()?;
        for a in dir.ancestors() {
            st.dirs.insert(a.to_path_buf());
        }
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<PathBuf>> {
        let st = self.state.lock();
        st.alive()?;
        if !st.dirs.contains(dir) {
            return Err(io::Error::new(io::ErrorKind::NotFound, "no such directory"));
        }
        Ok(st
            .live_dir
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .cloned()
            .collect())
    }

    fn open_write(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let mut st = self.state.lock();
        st.alive()?;
        st.check_parent(path)?;
        let ino = match st.live_dir.get(path) {
            Some(ino) => *ino,
            None => {
                let ino = st.new_inode(Vec::new(), false);
                st.live_dir.insert(path.to_path_buf(), ino);
                ino
            }
        };
        Ok(Box::new(FaultFile {
            state: self.state.clone(),
            ino,
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let st = self.state.lock();
        st.alive()?;
        let ino = st.lookup(path)?;
        Ok(st
            .inodes
            .get(&ino)
            .map(|i| i.live.clone())
            .unwrap_or_default())
    }

    fn write_new(&self, path: &Path) -> io::Result<Box<dyn FsFile>> {
        let mut st = self.state.lock();
        st.meta()?;
        st.check_parent(path)?;
        let ino = st.new_inode(Vec::new(), false);
        st.live_dir.insert(path.to_path_buf(), ino);
        Ok(Box::new(FaultFile {
            state: self.state.clone(),
            ino,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.meta()?;
        st.check_parent(to)?;
        let ino = st.lookup(from)?;
        st.live_dir.remove(from);
        st.live_dir.insert(to.to_path_buf(), ino);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.meta()?;
        if let Some(errno) = st.faults.remove {
            return Err(io::Error::from_raw_os_error(errno));
        }
        st.lookup(path)?;
        st.live_dir.remove(path);
        Ok(())
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.meta()?;
        let in_dir = |p: &PathBuf| p.parent() == Some(dir);
        st.durable_dir.retain(|p, _| !in_dir(p));
        let live: Vec<(PathBuf, u64)> = st
            .live_dir
            .iter()
            .filter(|(p, _)| in_dir(p))
            .map(|(p, i)| (p.clone(), *i))
            .collect();
        st.durable_dir.extend(live);
        Ok(())
    }

    fn truncate(&self, path: &Path, len: u64) -> io::Result<()> {
        let mut st = self.state.lock();
        st.meta()?;
        let ino = st.lookup(path)?;
        let len = usize::try_from(len).map_err(io::Error::other)?;
        if let Some(i) = st.inodes.get_mut(&ino) {
            i.live.truncate(len);
            i.durable = i.live.clone();
        }
        Ok(())
    }

    fn copy(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.meta()?;
        st.check_parent(to)?;
        let ino = st.lookup(from)?;
        let content = st
            .inodes
            .get(&ino)
            .map(|i| i.live.clone())
            .unwrap_or_default();
        let new = st.new_inode(content, true);
        st.live_dir.insert(to.to_path_buf(), new);
        Ok(())
    }
}

#[cfg(test)]
#[path = "testing_tests.rs"]
mod tests;
