//! Snapshots on the log's side: marking the position a snapshot covers, and
//! writing its image atomically once the log is durable through it, then
//! deleting the snapshots and segments it makes redundant.

use std::sync::atomic::Ordering;

use super::format;
use super::leader::write_atomically;
use super::log::Log;
use super::shared::{Chunk, Snaps};
use super::{Lsn, PersistError};
use crate::clock::{Clock, SystemClock};

impl Log {
    /// Starts a snapshot: asks for a new segment to start after the last LSN
    /// assigned, and returns that LSN (`covers`). Take the image after this
    /// returns: it then holds every change up to `covers` (and maybe some after,
    /// which replay sets again).
    pub fn begin_snapshot(&self) -> Result<Lsn, PersistError> {
        let sh = self.shared();
        let covers = {
            let mut app = sh.app.lock();
            app.writable()?;
            let next = app.next_lsn;
            app.chunks.push(Chunk {
                rotate: true,
                first_lsn: next,
                last_lsn: next - 1,
                bytes: Vec::new(),
            });
            next - 1
        };
        // The next leader (or `write_snapshot`'s own flush) rolls there.
        Ok(covers)
    }

    /// Writes the snapshot image for `covers` atomically (after making sure the
    /// log is fdatasynced through `covers`): `.tmp` file, fsync, rename, fsync of
    /// the directory. Then applies the retention policy
    /// ([`Self::apply_retention`]). Blocking: call it off the async runtime.
    pub fn write_snapshot(&self, covers: Lsn, image: &[u8]) -> Result<(), PersistError> {
        let sh = self.shared();
        let mut snaps = sh.snaps.lock();
        let last = self.last_lsn();
        if covers > last {
            return Err(PersistError::SnapshotAhead { covers, last });
        }
        sh.sync_through(covers)?;

        let dir = &sh.opts.dir;
        let path = dir.join(format::snapshot_name(covers));
        let header = format::snapshot_header(covers, image);
        write_atomically(&*sh.fs, dir, &path, &[&header, image])?;
        sh.counters.snapshots.fetch_add(1, Ordering::Relaxed);
        sh.counters
            .last_snapshot_at
            .store(SystemClock.now(), Ordering::Relaxed);
        sh.counters
            .last_snapshot_bytes
            .store(image.len() as u64, Ordering::Relaxed);

        self.apply_retention(&mut snaps, covers)
    }

    /// Keeps the snapshot for `covers` and the one before it; deletes older
    /// snapshots and the segments whose records all lie at or below the
    /// previous snapshot's LSN, then fsyncs the directory if anything went.
    fn apply_retention(&self, snaps: &mut Snaps, covers: Lsn) -> Result<(), PersistError> {
        let sh = self.shared();
        let (dir, fs) = (&sh.opts.dir, &sh.fs);
        snaps.known.retain(|&l| l < covers);
        let prev = snaps.known.last().copied();
        snaps.known = prev.into_iter().chain(Some(covers)).collect();
        let mut removed = false;
        match fs.list(dir) {
            Ok(entries) => {
                for p in entries {
                    if let format::FileKind::Snapshot(l) = format::classify(&p) {
                        if l < covers && Some(l) != prev {
                            match fs.remove(&p) {
                                Ok(()) => removed = true,
                                Err(e) => tracing::warn!(
                                    "cannot remove old snapshot {}: {e}",
                                    p.display()
                                ),
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::warn!("cannot list {}: {e}", dir.display()),
        }
        if let Some(p) = prev {
            let mut segs = sh.segments.lock();
            while segs.len() > 1 && segs[1].first_lsn <= p + 1 {
                match fs.remove(&segs[0].path) {
                    Ok(()) => {
                        removed = true;
                        segs.remove(0);
                    }
                    Err(e) => {
                        tracing::warn!(
                            "cannot remove old log segment {}: {e}",
                            segs[0].path.display()
                        );
                        break;
                    }
                }
            }
        }
        if removed {
            fs.sync_dir(dir)
                .map_err(|e| PersistError::io("fsync", dir, e))?;
        }
        Ok(())
    }
}
