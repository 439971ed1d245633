//! Tests of the whole log, written as write → drop (or crash) → reopen →
//! assert, against [`FaultFs`] (and once against the real disk): here the
//! log's own life (LSNs, crashes, torn and damaged records, group commit, the
//! fsync modes) and the helpers; in `tests/` snapshots, disk faults and the
//! property test.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::format::{self, FileKind};
use super::testing::{FaultFs, Faults, EIO, ENOSPC};
use super::*;

mod faults;
mod fuzz;
mod model;
mod snapshots;

fn dir() -> PathBuf {
    PathBuf::from("/data")
}

fn opts(fsync: FsyncMode) -> LogOptions {
    LogOptions {
        dir: dir(),
        fsync,
        repair: false,
        segment_bytes: 1 << 20,
        // Small, so that the tests cross many preallocation steps.
        preallocate: 300,
    }
}

fn rec(i: u64) -> Vec<u8> {
    format!("record number {i}").into_bytes()
}

fn open(fs: &Arc<FaultFs>, o: LogOptions) -> Result<(Log, Recovered), PersistError> {
    Log::open(o, fs.clone())
}

fn open_ok(fs: &Arc<FaultFs>) -> (Log, Recovered) {
    open(fs, opts(FsyncMode::Always)).expect("open")
}

async fn write(log: &Log, range: std::ops::RangeInclusive<u64>) {
    for i in range {
        let lsn = log.append(&rec(i)).unwrap();
        assert_eq!(lsn, i, "LSNs follow the test's numbering");
        log.durable(lsn).await.unwrap();
    }
}

fn lsns(r: &Recovered) -> Vec<Lsn> {
    r.records.iter().map(|r| r.0).collect()
}

fn assert_records(r: &Recovered, range: std::ops::RangeInclusive<u64>) {
    assert_eq!(lsns(r), range.clone().collect::<Vec<_>>());
    for (lsn, payload) in &r.records {
        assert_eq!(payload, &rec(*lsn), "payload of {lsn}");
    }
}

fn segments(fs: &FaultFs) -> Vec<PathBuf> {
    fs.paths()
        .into_iter()
        .filter(|p| matches!(format::classify(p), FileKind::Segment(_)))
        .collect()
}

fn snapshots(fs: &FaultFs) -> Vec<Lsn> {
    fs.paths()
        .iter()
        .filter_map(|p| match format::classify(p) {
            FileKind::Snapshot(l) => Some(l),
            _ => None,
        })
        .collect()
}

/// A copy of the durable image of `fs` with one file replaced.
fn with_file(fs: &FaultFs, path: &Path, content: Vec<u8>) -> Arc<FaultFs> {
    let copy = FaultFs::new();
    for p in fs.paths() {
        copy.set_bytes(&p, fs.bytes(&p).unwrap());
    }
    copy.set_bytes(path, content);
    copy
}

#[tokio::test]
async fn fresh_directory_then_reopen_continues_lsns() {
    let fs = FaultFs::new();
    let (log, r) = open_ok(&fs);
    assert!(r.snapshot.is_none() && r.records.is_empty() && r.warnings.is_empty());
    assert_eq!(log.last_lsn(), 0);
    write(&log, 1..=10).await;
    log.close().await.unwrap();
    assert!(matches!(log.append(b"x"), Err(PersistError::Closed)));
    drop(log);

    let (log, r) = open_ok(&fs);
    assert_records(&r, 1..=10);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    write(&log, 11..=12).await;
    drop(log);
    let (_, r) = open_ok(&fs);
    assert_records(&r, 1..=12);
    assert!(matches!(
        open_ok(&fs).0.append(b""),
        Err(PersistError::BadRecord { len: 0 })
    ));
}

#[tokio::test]
async fn acknowledged_records_survive_a_crash_unacknowledged_are_a_prefix() {
    for keep in [0usize, 5, 13, 40, 1000] {
        let fs = FaultFs::new();
        let (log, _) = open_ok(&fs);
        write(&log, 1..=50).await;
        // Appended, never awaited: may or may not be there, never half there.
        fs.set_faults(Faults {
            sync: Some(EIO),
            ..Faults::default()
        });
        let mut appended = 50;
        for i in 51..=55 {
            // Refused once the writer has noticed the failing flush.
            if log.append(&rec(i)).is_ok() {
                appended = i;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        let after = fs.crash_keeping(keep);
        drop(log);
        let (log, r) = open_ok(&after);
        let got = lsns(&r);
        assert!(
            got.len() >= 50 && got.len() as u64 <= appended,
            "keep {keep}: {got:?}"
        );
        assert_records(&r, 1..=got.len() as u64);
        // New records continue after whatever survived.
        let next = log.append(b"next").unwrap();
        assert_eq!(next, got.len() as u64 + 1);
    }
}

#[tokio::test]
async fn torn_tail_at_every_byte_of_the_last_record_is_dropped() {
    let fs = FaultFs::new();
    let (log, _) = open_ok(&fs);
    write(&log, 1..=3).await;
    log.close().await.unwrap();
    let seg = segments(&fs).pop().unwrap();
    let mut full = fs.bytes(&seg).unwrap();
    full.truncate(format::scan_records(&full).valid_len);
    let last_start = full.len() - format::RECORD_HEADER - rec(3).len();
    for cut in last_start + 1..full.len() {
        let damaged = with_file(&fs, &seg, full[..cut].to_vec());
        let (log, r) = open_ok(&damaged);
        assert_records(&r, 1..=2);
        assert_eq!(r.warnings.len(), 1, "cut {cut}");
        let w = &r.warnings[0];
        assert!(
            w.contains(seg.to_str().unwrap()) && w.contains(&format!("offset {last_start}")),
            "cut {cut}: {w}"
        );
        // The file was cut there: appending continues cleanly.
        assert_eq!(log.append(&rec(3)).unwrap(), 3);
        log.close().await.unwrap();
        drop(log);
        let (_, r) = open_ok(&damaged);
        assert_records(&r, 1..=3);
        assert!(r.warnings.is_empty(), "cut {cut}: {:?}", r.warnings);
    }
}

#[tokio::test]
async fn zeros_written_ahead_are_the_normal_end_of_the_log() {
    let fs = FaultFs::new();
    let (log, _) = open_ok(&fs);
    write(&log, 1..=5).await;
    drop(log);
    let seg = segments(&fs).pop().unwrap();
    let bytes = fs.bytes(&seg).unwrap();
    let records_end = format::scan_records(&bytes).valid_len;
    assert!(bytes.len() > records_end, "zeros were written ahead");
    assert!(bytes[records_end..].iter().all(|&b| b == 0));
    // More zeros than one step ahead (as a crash after an extension leaves).
    let mut more = bytes.clone();
    more.extend_from_slice(&[0u8; 4096]);
    let fs = with_file(&fs, &seg, more.clone());
    let (log, r) = open_ok(&fs);
    assert_records(&r, 1..=5);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    assert_eq!(fs.bytes(&seg).unwrap(), more, "nothing was cut");
    // New records go over the zeros, right after the old ones.
    write(&log, 6..=40).await;
    drop(log);
    let (_, r) = open_ok(&fs.crash());
    assert_records(&r, 1..=40);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[tokio::test]
async fn a_torn_record_before_the_zeros_is_dropped() {
    let fs = FaultFs::new();
    let (log, _) = open_ok(&fs);
    write(&log, 1..=3).await;
    drop(log);
    let seg = segments(&fs).pop().unwrap();
    let mut bytes = fs.bytes(&seg).unwrap();
    let end = format::scan_records(&bytes).valid_len;
    // Half a record's frame, then the zeros.
    bytes[end..end + 6].copy_from_slice(&[9, 0, 0, 0, 0xde, 0xad]);
    let fs = with_file(&fs, &seg, bytes);
    let (_, r) = open_ok(&fs);
    assert_records(&r, 1..=3);
    assert!(r.warnings[0].contains("torn") && r.warnings[0].contains(&format!("offset {end}")));
    assert_eq!(fs.bytes(&seg).unwrap().len(), end, "cut at the torn record");
}

#[tokio::test]
async fn flipped_byte_mid_segment_refuses_then_repair_keeps_a_copy() {
    let fs = FaultFs::new();
    let (log, _) = open_ok(&fs);
    write(&log, 1..=10).await;
    drop(log);
    let seg = segments(&fs).pop().unwrap();
    let original = fs.bytes(&seg).unwrap();
    let frame = format::RECORD_HEADER + rec(1).len();
    let third = format::SEGMENT_HEADER + 2 * frame;
    let mut bad = original.clone();
    bad[third + format::RECORD_HEADER + 3] ^= 0x20;
    let fs = with_file(&fs, &seg, bad.clone());

    let err = open(&fs, opts(FsyncMode::Always)).unwrap_err();
    match &err {
        PersistError::Corrupt { file, offset, .. } => {
            assert_eq!(file, &seg);
            assert_eq!(*offset, third as u64);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(seg.to_str().unwrap())
            && msg.contains(&third.to_string())
            && msg.contains("--repair")
    );
    // Refusing changed nothing.
    assert_eq!(fs.bytes(&seg).unwrap(), bad);

    let mut o = opts(FsyncMode::Always);
    o.repair = true;
    let (log, r) = open(&fs, o).unwrap();
    assert_records(&r, 1..=2);
    assert!(r
        .warnings
        .iter()
        .any(|w| w.contains("repaired") && w.contains(&third.to_string())));
    let copy = PathBuf::from(format!("{}.damaged-1", seg.display()));
    assert_eq!(fs.bytes(&copy).unwrap(), bad, "the damaged file is kept");
    assert_eq!(log.append(&rec(3)).unwrap(), 3);
    drop(log);
    let (_, r) = open_ok(&fs);
    assert_records(&r, 1..=3);
    assert!(r.warnings.is_empty());
}

#[tokio::test]
async fn damage_at_the_end_of_an_earlier_segment_is_not_a_torn_tail() {
    let fs = FaultFs::new();
    let mut o = opts(FsyncMode::Always);
    o.segment_bytes = 100;
    let (log, _) = open(&fs, o.clone()).unwrap();
    write(&log, 1..=20).await;
    drop(log);
    let segs = segments(&fs);
    assert!(segs.len() >= 3, "{segs:?}");
    let first = &segs[0];
    let mut b = fs.bytes(first).unwrap();
    let n = b.len();
    b[n - 1] ^= 1;
    let fs = with_file(&fs, first, b);
    assert!(
        matches!(open(&fs, o.clone()), Err(PersistError::Corrupt { file, .. }) if &file == first)
    );

    // Repair keeps the first segment's good records and sets the rest aside.
    o.repair = true;
    let (_, r) = open(&fs, o).unwrap();
    let kept = r.records.len() as u64;
    assert!(kept >= 1);
    assert_records(&r, 1..=kept);
    assert!(r.warnings[0].contains("dropped-1"), "{:?}", r.warnings);
    assert_eq!(segments(&fs).len(), 1);
}

#[tokio::test]
async fn a_missing_middle_segment_is_a_gap() {
    let fs = FaultFs::new();
    let mut o = opts(FsyncMode::Always);
    o.segment_bytes = 100;
    let (log, _) = open(&fs, o.clone()).unwrap();
    write(&log, 1..=20).await;
    drop(log);
    let segs = segments(&fs);
    fs.remove(&segs[1]).unwrap();
    match open(&fs, o) {
        Err(PersistError::Corrupt {
            file,
            offset: 0,
            reason,
        }) => {
            assert_eq!(file, segs[2]);
            assert!(reason.contains("LSN"), "{reason}");
        }
        other => panic!("expected a gap, got {other:?}"),
    }
}

#[tokio::test]
async fn segments_roll_over_and_replay_in_order() {
    let fs = FaultFs::new();
    let mut o = opts(FsyncMode::Always);
    o.segment_bytes = 256;
    let (log, _) = open(&fs, o.clone()).unwrap();
    write(&log, 1..=100).await;
    assert!(log.metrics().segments > 5);
    drop(log);
    assert!(segments(&fs).len() > 5);
    let (log, r) = open(&fs, o).unwrap();
    assert_records(&r, 1..=100);
    write(&log, 101..=110).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_shares_flushes() {
    let fs = FaultFs::new();
    fs.set_faults(Faults {
        sync_delay: Some(Duration::from_millis(2)),
        ..Faults::default()
    });
    let (log, _) = open_ok(&fs);
    let before = log.metrics().fsyncs;
    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let log = log.clone();
            tokio::spawn(async move {
                for i in 0..20 {
                    let lsn = log.append(format!("{t}/{i}").as_bytes()).unwrap();
                    log.durable(lsn).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let m = log.metrics();
    let fsyncs = m.fsyncs - before;
    assert_eq!(m.records, 64 * 20);
    assert!(
        fsyncs * 8 < m.records,
        "{fsyncs} fsyncs for {} records",
        m.records
    );
    drop(log);
    let (_, r) = open_ok(&fs.crash());
    assert_eq!(r.records.len(), 64 * 20);
}

#[tokio::test]
async fn never_and_everysec_acknowledge_after_write() {
    let fs = FaultFs::new();
    let (log, _) = open(&fs, opts(FsyncMode::Never)).unwrap();
    let base = fs.sync_count();
    write(&log, 1..=5).await;
    assert_eq!(fs.sync_count(), base, "never: no flush on the write path");
    let seg = segments(&fs).pop().unwrap();
    let r5 = rec(5);
    assert!(
        fs.bytes(&seg).unwrap().windows(r5.len()).any(|w| w == r5),
        "written before acknowledged"
    );
    // A crash loses what was never flushed; close flushes.
    let (_, r) = open_ok(&fs.crash_keeping(0));
    assert!(r.records.is_empty());
    drop(log);

    let fs = FaultFs::new();
    let (log, _) = open(&fs, opts(FsyncMode::Everysec)).unwrap();
    let base = fs.sync_count();
    // Let the flusher go idle first: a write must wake it (it once did not,
    // and then slept past its second until something else woke it).
    tokio::time::sleep(Duration::from_millis(100)).await;
    write(&log, 1..=5).await;
    // Once a second; a loaded machine may run the flusher late, so wait up
    // to 20 s for it rather than asserting on the time.
    for _ in 0..200 {
        if fs.sync_count() > base {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(fs.sync_count() > base, "everysec flushes on its own");
    let (_, r) = open_ok(&fs.crash());
    assert_records(&r, 1..=5);
    drop(log);

    let fs = FaultFs::new();
    let (log, _) = open(&fs, opts(FsyncMode::Never)).unwrap();
    write(&log, 1..=3).await;
    log.close().await.unwrap();
    let (_, r) = open_ok(&fs.crash());
    assert_records(&r, 1..=3);
}

#[tokio::test]
async fn real_disk_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let o = LogOptions::new(tmp.path().join("data"), FsyncMode::Always);
    let (log, _) = Log::open(o.clone(), Arc::new(RealFs)).unwrap();
    write(&log, 1..=20).await;
    let c = log.begin_snapshot().unwrap();
    log.write_snapshot(c, b"state").unwrap();
    write(&log, 21..=25).await;
    log.close().await.unwrap();
    drop(log);
    let (log, r) = Log::open(o, Arc::new(RealFs)).unwrap();
    assert_eq!(r.snapshot, Some((20, b"state".to_vec())));
    assert_records(&r, 21..=25);
    assert_eq!(log.append(b"more").unwrap(), 26);
}
