//! Recovery: reads the data directory, picks the newest valid snapshot, checks
//! every segment and returns the records after the snapshot, plus what the log
//! needs to keep appending (segment list, tail, next LSN).
//!
//! Rules (see the module docs of `persist` for why they are safe):
//! - Snapshots are tried newest first; a damaged one is skipped with a warning.
//!   Falling back is allowed only if the log still reaches every LSN the skipped
//!   snapshot covered; otherwise start-up is refused (no silent partial state).
//! - The last segment may end in zeros written ahead of its records
//!   (`LogOptions::preallocate`): that is its normal end, kept as it is.
//! - In the last segment, damage that no valid record follows is a torn tail:
//!   dropped with a warning naming file and offset, and the file is cut there.
//! - Any other damage (mid-segment, in an earlier segment, a bad header, an LSN
//!   gap between segments) is [`PersistError::Corrupt`], unless it lies wholly
//!   inside what the snapshot covers (then it cannot matter: warning only), or
//!   `repair` is set (copy kept, file cut, later segments set aside, warning).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use super::format::{self, FileKind};
use super::{Fs, LogOptions, Lsn, PersistError, Recovered};

/// A segment file the log knows about.
#[derive(Debug, Clone)]
pub(super) struct SegInfo {
    pub seq: u64,
    pub first_lsn: Lsn,
    pub path: PathBuf,
}

/// The end of the last segment.
#[derive(Debug, Clone, Copy)]
pub(super) struct Tail {
    /// Bytes of header and records.
    pub len: u64,
    /// The LSN its next record would have.
    pub next_lsn: Lsn,
    /// The file's length (more than `len` when zeros were written ahead).
    pub file_len: u64,
}

/// The result of recovery: what to hand the caller and how to continue.
pub(super) struct Opened {
    pub recovered: Recovered,
    /// Valid segments in order; the last one is the tail.
    pub segments: Vec<SegInfo>,
    /// Where the last segment ends, if there is a last segment.
    pub tail: Option<Tail>,
    /// The next LSN to assign.
    pub next_lsn: Lsn,
    /// The sequence number for the next new segment.
    pub next_seq: u64,
    /// The snapshot recovery used, if any (known valid).
    pub snapshot: Option<Lsn>,
}

fn warn(warnings: &mut Vec<String>, msg: String) {
    tracing::warn!("{msg}");
    warnings.push(msg);
}

fn name_of(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A free `<name>.<tag>-<n>` next to `path`.
fn aside_path(path: &Path, tag: &str, taken: &mut HashSet<String>) -> PathBuf {
    let name = name_of(path);
    let mut n = 1u32;
    loop {
        let candidate = format!("{name}.{tag}-{n}");
        if taken.insert(candidate.clone()) {
            return path.with_file_name(candidate);
        }
        n += 1;
    }
}

pub(super) fn recover(opts: &LogOptions, fs: &dyn Fs) -> Result<Opened, PersistError> {
    let dir = &opts.dir;
    let mut warnings = Vec::new();
    let entries = fs.list(dir).map_err(|e| PersistError::io("list", dir, e))?;
    let mut taken: HashSet<String> = entries.iter().map(|p| name_of(p)).collect();
    let mut segs: Vec<(u64, PathBuf)> = Vec::new();
    let mut snaps: Vec<(Lsn, PathBuf)> = Vec::new();
    for p in entries {
        match format::classify(&p) {
            FileKind::Segment(seq) => segs.push((seq, p)),
            FileKind::Snapshot(lsn) => snaps.push((lsn, p)),
            FileKind::Temporary => {
                // Left by a crash before its rename: never part of the state.
                fs.remove(&p)
                    .map_err(|e| PersistError::io("remove", &p, e))?;
            }
            FileKind::Other => {}
        }
    }
    segs.sort();
    snaps.sort();
    let next_seq = segs.last().map(|s| s.0 + 1).unwrap_or(1);

    let (snapshot, skipped) = newest_snapshot(fs, &snaps, Lsn::MAX, &mut warnings)?;
    let base = snapshot.as_ref().map(|s| s.0).unwrap_or(0);

    let mut records: Vec<(Lsn, Vec<u8>)> = Vec::new();
    let mut infos: Vec<SegInfo> = Vec::new();
    let mut tail_len: u64 = 0;
    let mut tail_file_len: u64 = 0;
    // The LSN the next record would have (after the last valid segment).
    let mut expected: Option<Lsn> = None;
    let mut i = 0;
    while i < segs.len() {
        let (seq, path) = segs[i].clone();
        let is_last = i + 1 == segs.len();
        let bytes = fs
            .read(&path)
            .map_err(|e| PersistError::io("read", &path, e))?;
        // Where this segment is damaged, if it is: (offset, reason, records kept).
        let mut damage: Option<(usize, String)> = None;
        let mut first = None;
        match format::parse_segment_header(&bytes) {
            Ok(f) => first = Some(f),
            Err(why) => {
                if why.starts_with("format version") {
                    return Err(PersistError::Unsupported {
                        file: path,
                        reason: why,
                    });
                }
                damage = Some((0, why));
            }
        }
        if let (Some(f), Some(exp)) = (first, expected) {
            if f != exp && !(f <= base + 1 && exp <= base + 1) {
                damage = Some((
                    0,
                    format!(
                        "segment starts at LSN {f}, the log before it ends at LSN {}",
                        exp - 1
                    ),
                ));
            }
        }
        let scan = match (first, &damage) {
            (Some(_), None) => Some(format::scan_records(&bytes)),
            _ => None,
        };
        let mut file_len = bytes.len() as u64;
        if let Some(s) = &scan {
            if let Some((why, followed)) = s.damage {
                let offset = s.valid_len;
                if is_last && why == format::ZERO_TAIL {
                    // The zeros written ahead of the records (see
                    // `LogOptions::preallocate`): the normal end of the log.
                } else if is_last && !followed {
                    warn(
                        &mut warnings,
                        format!(
                            "dropping a torn record at the end of {} at byte offset {offset} ({why}; {} bytes)",
                            path.display(),
                            bytes.len() - offset
                        ),
                    );
                    fs.truncate(&path, offset as u64)
                        .map_err(|e| PersistError::io("truncate", &path, e))?;
                    file_len = offset as u64;
                } else {
                    damage = Some((offset, why.to_string()));
                }
            }
        }

        if let Some((offset, why)) = damage {
            // Is the damage wholly inside what the snapshot covers? Only if the
            // next segment starts at or before base + 1.
            let next_first = segs
                .get(i + 1)
                .and_then(|(_, p)| fs.read(p).ok())
                .and_then(|b| format::parse_segment_header(&b).ok());
            let gap = first.is_some() && offset == 0;
            let covered = !gap && next_first.is_some_and(|n| n <= base + 1);
            if covered {
                warn(
                    &mut warnings,
                    format!(
                        "{} is damaged at byte offset {offset} ({why}), but the snapshot covering LSN {base} \
                         holds everything it held; ignored",
                        path.display()
                    ),
                );
                expected = match (first, &scan) {
                    (Some(f), Some(s)) => Some(keep_segment(&mut infos, seq, f, s, path.clone())),
                    _ => None,
                };
                i += 1;
                continue;
            }
            if !opts.repair {
                return Err(PersistError::Corrupt {
                    file: path,
                    offset: offset as u64,
                    reason: why,
                });
            }
            // Repair: keep a copy, cut at the damage, set later segments aside.
            let copy = aside_path(&path, "damaged", &mut taken);
            fs.copy(&path, &copy)
                .map_err(|e| PersistError::io("copy", &path, e))?;
            let kept = match (first, &scan) {
                (Some(f), Some(s)) if offset > 0 => {
                    fs.truncate(&path, offset as u64)
                        .map_err(|e| PersistError::io("truncate", &path, e))?;
                    Some((f, s))
                }
                _ => {
                    fs.remove(&path)
                        .map_err(|e| PersistError::io("remove", &path, e))?;
                    None
                }
            };
            let mut dropped = Vec::new();
            for (_, later) in &segs[i + 1..] {
                let to = aside_path(later, "dropped", &mut taken);
                fs.rename(later, &to)
                    .map_err(|e| PersistError::io("rename", later, e))?;
                dropped.push(name_of(&to));
            }
            fs.sync_dir(dir)
                .map_err(|e| PersistError::io("sync", dir, e))?;
            let mut msg = format!(
                "repaired the write-ahead log: {} was damaged at byte offset {offset} ({why}); kept a copy as {}, ",
                path.display(),
                name_of(&copy)
            );
            if kept.is_some() {
                msg.push_str("cut the file there");
            } else {
                msg.push_str("removed the file");
            }
            if !dropped.is_empty() {
                msg.push_str(&format!(
                    ", and set the later segments aside as {}",
                    dropped.join(", ")
                ));
            }
            msg.push_str("; the records after the damage are lost");
            warn(&mut warnings, msg);
            if let Some((f, s)) = kept {
                records.extend(records_after(base, f, s, &bytes));
                expected = Some(keep_segment(&mut infos, seq, f, s, path));
                tail_len = offset as u64;
                tail_file_len = offset as u64;
            }
            break;
        }

        // Without damage the header parsed and the records were scanned.
        let (Some(f), Some(s)) = (first, scan) else {
            i += 1;
            continue;
        };
        records.extend(records_after(base, f, &s, &bytes));
        expected = Some(keep_segment(&mut infos, seq, f, &s, path));
        tail_len = s.valid_len as u64;
        tail_file_len = file_len;
        i += 1;
    }

    // Is the log complete after the snapshot?
    let data_dir = dir.clone();
    if let Some(start) = infos.first().map(|s| s.first_lsn) {
        if start > base + 1 {
            let what = match &snapshot {
                Some((b, _)) => format!("the newest valid snapshot covers LSN {b}"),
                None => "there is no valid snapshot".to_string(),
            };
            return Err(PersistError::BadSnapshot {
                file: skipped.first().map(|s| s.1.clone()).unwrap_or(data_dir),
                reason: format!(
                    "the log starts at LSN {start} but {what}: records {}..{} are missing; \
                     refusing to start with a partial state (restore the data directory from a backup)",
                    base + 1,
                    start - 1
                ),
            });
        }
    }
    let log_end = expected.map(|e| e - 1).unwrap_or(0).max(base);
    if let Some((lsn, path, why)) = skipped.iter().rev().find(|s| s.0 > log_end) {
        return Err(PersistError::BadSnapshot {
            file: path.clone(),
            reason: format!(
                "the snapshot is damaged ({why}) and the log after the previous snapshot ends at LSN {log_end}, \
                 before the LSN {lsn} it covered; refusing to start with a partial state \
                 (restore it from a backup, or move it aside to accept losing those changes)"
            ),
        });
    }
    let next_lsn = log_end + 1;
    let tail = match (infos.last(), expected) {
        (Some(_), Some(e)) => Some(Tail {
            len: tail_len,
            next_lsn: e,
            file_len: tail_file_len,
        }),
        _ => None,
    };
    Ok(Opened {
        segments: infos,
        tail,
        next_lsn,
        next_seq,
        snapshot: snapshot.as_ref().map(|s| s.0),
        recovered: Recovered {
            snapshot,
            records,
            warnings,
        },
    })
}

/// A damaged snapshot that recovery skipped: its LSN, path and what is wrong.
type Skipped = (Lsn, PathBuf, String);
/// A snapshot image and the LSN it covers.
type Image = (Lsn, Vec<u8>);

/// The newest valid snapshot covering at most `upto`, and the damaged ones
/// newer than it that were skipped (each with a warning).
fn newest_snapshot(
    fs: &dyn Fs,
    snaps: &[(Lsn, PathBuf)],
    upto: Lsn,
    warnings: &mut Vec<String>,
) -> Result<(Option<Image>, Vec<Skipped>), PersistError> {
    let mut skipped: Vec<Skipped> = Vec::new();
    for (lsn, path) in snaps.iter().rev().filter(|s| s.0 <= upto) {
        let mut bytes = fs
            .read(path)
            .map_err(|e| PersistError::io("read", path, e))?;
        match format::parse_snapshot(&bytes) {
            Ok((covers, _)) if covers == *lsn => {
                bytes.drain(..format::SNAPSHOT_HEADER);
                return Ok((Some((covers, bytes)), skipped));
            }
            Ok((covers, _)) => skipped.push((
                *lsn,
                path.clone(),
                format!("its header covers LSN {covers}, its name says {lsn}"),
            )),
            Err(why) => skipped.push((*lsn, path.clone(), why)),
        }
        let (_, p, why) = skipped.last().expect("just pushed");
        warn(
            warnings,
            format!(
                "snapshot {} is damaged ({why}); falling back to an older snapshot and the log",
                p.display()
            ),
        );
    }
    Ok((None, skipped))
}

/// What is durable through `upto`, read as start-up reads it but changing no
/// file: the newest valid snapshot at or below `upto` and every record after
/// it through `upto`. For the fall-back after a failed write, whose durable
/// prefix is intact by construction; any damage before `upto` is an error.
pub(super) fn read_upto(
    opts: &LogOptions,
    fs: &dyn Fs,
    upto: Lsn,
) -> Result<Recovered, PersistError> {
    let dir = &opts.dir;
    let mut warnings = Vec::new();
    let entries = fs.list(dir).map_err(|e| PersistError::io("list", dir, e))?;
    let mut segs: Vec<(u64, PathBuf)> = Vec::new();
    let mut snaps: Vec<(Lsn, PathBuf)> = Vec::new();
    for p in entries {
        match format::classify(&p) {
            FileKind::Segment(seq) => segs.push((seq, p)),
            FileKind::Snapshot(lsn) => snaps.push((lsn, p)),
            FileKind::Temporary | FileKind::Other => {}
        }
    }
    segs.sort();
    snaps.sort();
    let (snapshot, _) = newest_snapshot(fs, &snaps, upto, &mut warnings)?;
    let base = snapshot.as_ref().map(|s| s.0).unwrap_or(0);
    let mut records = Vec::new();
    let mut next = base + 1;
    for (_, path) in &segs {
        if next > upto {
            break;
        }
        let bytes = fs
            .read(path)
            .map_err(|e| PersistError::io("read", path, e))?;
        let corrupt = |offset: usize, reason: String| PersistError::Corrupt {
            file: path.clone(),
            offset: offset as u64,
            reason,
        };
        let first = format::parse_segment_header(&bytes).map_err(|why| corrupt(0, why))?;
        let scan = format::scan_records(&bytes);
        let end = first + scan.records.len() as Lsn;
        if end <= next {
            continue; // wholly covered by the snapshot
        }
        if first > next {
            return Err(corrupt(
                0,
                format!(
                    "segment starts at LSN {first}, the log before it ends at LSN {}",
                    next - 1
                ),
            ));
        }
        records.extend(records_after(base, first, &scan, &bytes).take_while(|r| r.0 <= upto));
        next = end;
    }
    if next <= upto {
        return Err(PersistError::BadSnapshot {
            file: dir.clone(),
            reason: format!(
                "the log ends at LSN {}, before the durable end {upto} it must reach",
                next - 1
            ),
        });
    }
    Ok(Recovered {
        snapshot,
        records,
        warnings,
    })
}

/// The records of a scanned segment whose first record is LSN `first` that
/// come after `base` (what the snapshot covers), with their LSNs.
fn records_after<'a>(
    base: Lsn,
    first: Lsn,
    scan: &'a format::Scan,
    bytes: &'a [u8],
) -> impl Iterator<Item = (Lsn, Vec<u8>)> + 'a {
    (first..)
        .zip(&scan.records)
        .filter(move |(lsn, _)| *lsn > base)
        .map(|(lsn, r)| (lsn, bytes[r.clone()].to_vec()))
}

/// Counts a segment as part of the log; answers the LSN the next one must start at.
fn keep_segment(
    infos: &mut Vec<SegInfo>,
    seq: u64,
    first: Lsn,
    scan: &format::Scan,
    path: PathBuf,
) -> Lsn {
    infos.push(SegInfo {
        seq,
        first_lsn: first,
        path,
    });
    first + scan.records.len() as Lsn
}
