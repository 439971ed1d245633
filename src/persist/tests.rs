//! Tests of the whole log, written as write → drop (or crash) → reopen →
//! assert, against [`FaultFs`] (and once against the real disk).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;

use super::format::{self, FileKind};
use super::testing::{FaultFs, Faults, EIO, ENOSPC};
use super::*;

fn dir() -> PathBuf {
    PathBuf::from("/data")
}

fn opts(fsync: FsyncMode) -> LogOptions {
    LogOptions {
        dir: dir(),
        fsync,
        repair: false,
        segment_bytes: 1 << 20,
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

async fn wait_writable(log: &Log) {
    for _ in 0..200 {
        if log.check_writable().is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the log did not become writable again");
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
    let full = fs.bytes(&seg).unwrap();
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
async fn zero_filled_tail_is_dropped() {
    let fs = FaultFs::new();
    let (log, _) = open_ok(&fs);
    write(&log, 1..=5).await;
    drop(log);
    let seg = segments(&fs).pop().unwrap();
    let mut bytes = fs.bytes(&seg).unwrap();
    let valid = bytes.len();
    bytes.extend_from_slice(&[0u8; 4096]);
    let fs = with_file(&fs, &seg, bytes);
    let (log, r) = open_ok(&fs);
    assert_records(&r, 1..=5);
    assert!(
        r.warnings[0].contains("zero-filled") && r.warnings[0].contains(&format!("offset {valid}"))
    );
    assert_eq!(fs.bytes(&seg).unwrap().len(), valid);
    drop(log);
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

#[tokio::test]
async fn snapshot_retention_keeps_the_previous_generation() {
    let fs = FaultFs::new();
    let (log, _) = open_ok(&fs);
    write(&log, 1..=10).await;
    let a = log.begin_snapshot().unwrap();
    assert_eq!(a, 10);
    log.write_snapshot(a, b"image A").unwrap();
    write(&log, 11..=20).await;
    let b = log.begin_snapshot().unwrap();
    log.write_snapshot(b, b"image B").unwrap();
    write(&log, 21..=30).await;
    let c = log.begin_snapshot().unwrap();
    log.write_snapshot(c, b"image C").unwrap();
    write(&log, 31..=35).await;
    assert_eq!(snapshots(&fs), vec![20, 30]);
    // Segments holding only records ≤ 20 are gone; the one starting at 21 stays.
    let firsts: Vec<Lsn> = segments(&fs)
        .iter()
        .map(|p| format::parse_segment_header(&fs.bytes(p).unwrap()).unwrap())
        .collect();
    assert_eq!(firsts, vec![21, 31]);
    let m = log.metrics();
    assert_eq!((m.snapshots, m.last_snapshot_bytes, m.last_lsn), (3, 7, 35));
    assert!(m.last_snapshot_at.is_some());
    drop(log);
    let (_, r) = open_ok(&fs);
    assert_eq!(r.snapshot, Some((30, b"image C".to_vec())));
    assert_records(&r, 31..=35);
}

#[tokio::test]
async fn crash_between_snapshot_and_cleanup_loses_nothing_repeats_nothing() {
    let fs = FaultFs::new();
    let (log, _) = open_ok(&fs);
    write(&log, 1..=10).await;
    let a = log.begin_snapshot().unwrap();
    log.write_snapshot(a, b"A").unwrap();
    write(&log, 11..=20).await;
    fs.set_faults(Faults {
        remove: Some(EIO),
        ..Faults::default()
    });
    let b = log.begin_snapshot().unwrap();
    write(&log, 21..=25).await;
    log.write_snapshot(b, b"B").unwrap();
    write(&log, 26..=27).await;
    let after = fs.crash();
    drop(log);
    assert_eq!(
        snapshots(&after),
        vec![10, 20],
        "the old files survived the crash"
    );
    let (log, r) = open_ok(&after);
    assert_eq!(r.snapshot, Some((20, b"B".to_vec())));
    assert_records(&r, 21..=27);
    // The next snapshot finishes the cleanup.
    let c = log.begin_snapshot().unwrap();
    log.write_snapshot(c, b"C").unwrap();
    assert_eq!(snapshots(&after), vec![20, 27]);
}

#[tokio::test]
async fn bad_newest_snapshot_falls_back_to_the_previous_plus_log() {
    let fs = FaultFs::new();
    let (log, _) = open_ok(&fs);
    write(&log, 1..=10).await;
    log.write_snapshot(log.begin_snapshot().unwrap(), b"A")
        .unwrap();
    write(&log, 11..=20).await;
    log.write_snapshot(log.begin_snapshot().unwrap(), b"B")
        .unwrap();
    write(&log, 21..=30).await;
    log.write_snapshot(log.begin_snapshot().unwrap(), b"C")
        .unwrap();
    write(&log, 31..=33).await;
    drop(log);

    let snap = |l: Lsn| dir().join(format::snapshot_name(l));
    let mut c = fs.bytes(&snap(30)).unwrap();
    let last = c.len() - 1;
    c[last] ^= 0xff;
    let one_bad = with_file(&fs, &snap(30), c.clone());
    let (_, r) = open_ok(&one_bad);
    assert_eq!(r.snapshot, Some((20, b"B".to_vec())));
    assert_records(&r, 21..=33);
    assert!(r
        .warnings
        .iter()
        .any(|w| w.contains("snap-00000000000000000030.bin") && w.contains("damaged")));

    // Both kept snapshots bad: the log before 21 is gone, so refuse.
    let mut b = fs.bytes(&snap(20)).unwrap();
    b[3] ^= 1;
    let both_bad = with_file(&one_bad, &snap(20), b);
    let err = open(&both_bad, opts(FsyncMode::Always)).unwrap_err();
    assert!(matches!(err, PersistError::BadSnapshot { .. }), "{err:?}");
    assert!(err.to_string().contains("partial state"), "{err}");
}

#[tokio::test]
async fn a_bad_snapshot_ahead_of_the_log_is_refused() {
    let fs = FaultFs::new();
    let (log, _) = open_ok(&fs);
    write(&log, 1..=5).await;
    drop(log);
    // A damaged snapshot claiming LSN 9 while the log ends at 5.
    fs.set_bytes(&dir().join(format::snapshot_name(9)), b"garbage".to_vec());
    let err = open(&fs, opts(FsyncMode::Always)).unwrap_err();
    assert!(matches!(err, PersistError::BadSnapshot { .. }), "{err:?}");
}

async fn fault_then_recover(faults: Faults) {
    let fs = FaultFs::new();
    let (log, _) = open_ok(&fs);
    write(&log, 1..=5).await;
    fs.set_faults(faults);
    let lsn = log.append(&rec(6)).unwrap();
    let err = log.durable(lsn).await.unwrap_err();
    assert!(matches!(err, PersistError::WriteFailed { .. }), "{err:?}");
    assert!(matches!(
        log.append(&rec(7)),
        Err(PersistError::Unavailable)
    ));
    assert!(matches!(
        log.check_writable(),
        Err(PersistError::Unavailable)
    ));
    assert!(log.metrics().failed);
    assert!(matches!(
        log.begin_snapshot(),
        Err(PersistError::Unavailable)
    ));
    // Still failing after a few retries.
    tokio::time::sleep(log::RETRY * 2).await;
    assert!(log.check_writable().is_err());
    fs.clear_faults();
    wait_writable(&log).await;
    // The retry wrote the record that failed; life goes on.
    log.durable(6).await.unwrap();
    write(&log, 7..=8).await;
    let after = fs.crash();
    drop(log);
    let (_, r) = open_ok(&after);
    assert_records(&r, 1..=8);
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

#[tokio::test]
async fn eio_on_write_fails_waiters_and_recovers() {
    fault_then_recover(Faults {
        write: Some(EIO),
        ..Faults::default()
    })
    .await;
}

#[tokio::test]
async fn torn_write_is_cut_before_the_retry() {
    fault_then_recover(Faults {
        tear_next_write_at: Some(5),
        sync: Some(EIO),
        ..Faults::default()
    })
    .await;
}

#[tokio::test]
async fn enospc_on_sync_fails_waiters_and_recovers() {
    fault_then_recover(Faults {
        sync: Some(ENOSPC),
        ..Faults::default()
    })
    .await;
}

#[tokio::test]
async fn failing_rotation_is_retried() {
    let fs = FaultFs::new();
    let (log, _) = open_ok(&fs);
    write(&log, 1..=3).await;
    fs.set_faults(Faults {
        meta: Some(ENOSPC),
        ..Faults::default()
    });
    assert_eq!(log.begin_snapshot().unwrap(), 3);
    // The writer cannot start the new segment: the log refuses changes.
    for _ in 0..200 {
        if log.check_writable().is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(matches!(
        log.append(&rec(4)),
        Err(PersistError::Unavailable)
    ));
    fs.clear_faults();
    wait_writable(&log).await;
    let lsn = log.append(&rec(4)).unwrap();
    log.durable(lsn).await.unwrap();
    drop(log);
    let segs = segments(&fs);
    assert_eq!(segs.len(), 2);
    assert_eq!(
        format::parse_segment_header(&fs.bytes(&segs[1]).unwrap()),
        Ok(4)
    );
    let (_, r) = open_ok(&fs);
    assert_records(&r, 1..=4);
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
    assert!(
        fs.bytes(&seg).unwrap().ends_with(&rec(5)),
        "written before acknowledged"
    );
    // A crash loses what was never flushed; close flushes.
    let (_, r) = open_ok(&fs.crash_keeping(0));
    assert!(r.records.is_empty());
    drop(log);

    let fs = FaultFs::new();
    let (log, _) = open(&fs, opts(FsyncMode::Everysec)).unwrap();
    let base = fs.sync_count();
    write(&log, 1..=5).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert!(fs.sync_count() > base, "everysec flushes within a second");
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

/// One step of the model test.
#[derive(Debug, Clone)]
enum Op {
    /// Append and wait for `n` records.
    Write(u8),
    /// Append `n` records without waiting, then crash keeping `keep` unsynced bytes.
    CrashMidWrite(u8, u16),
    /// Take a snapshot (image = every record so far).
    Snapshot,
    /// Clean close and reopen.
    Reopen,
    /// Power loss and reopen.
    Crash,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..20).prop_map(Op::Write),
        1 => (1u8..10, 0u16..200).prop_map(|(n, k)| Op::CrashMidWrite(n, k)),
        2 => Just(Op::Snapshot),
        1 => Just(Op::Reopen),
        1 => Just(Op::Crash),
    ]
}

/// The "domain state" of the model test: every record so far, in order.
fn image(state: &[(Lsn, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (l, p) in state {
        out.extend_from_slice(&l.to_le_bytes());
        out.extend_from_slice(&(p.len() as u32).to_le_bytes());
        out.extend_from_slice(p);
    }
    out
}

fn unimage(mut b: &[u8]) -> Vec<(Lsn, Vec<u8>)> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let l = u64::from_le_bytes(b[..8].try_into().unwrap());
        let n = u32::from_le_bytes(b[8..12].try_into().unwrap()) as usize;
        out.push((l, b[12..12 + n].to_vec()));
        b = &b[12 + n..];
    }
    out
}

/// Rebuilds the state the way the server does: snapshot, then replay.
fn rebuild(r: Recovered) -> Vec<(Lsn, Vec<u8>)> {
    let mut state = r.snapshot.map(|(_, img)| unimage(&img)).unwrap_or_default();
    for (l, p) in r.records {
        // Replay is idempotent: a record the image already holds is set again.
        state.retain(|(sl, _)| *sl != l);
        state.push((l, p));
    }
    state
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    /// Random writes, snapshots, clean restarts and crashes against a model:
    /// every acknowledged record is there after every reopen, LSNs are
    /// contiguous, and anything more is a prefix of what was appended.
    #[test]
    fn model(ops in proptest::collection::vec(op(), 1..25), seg in 80u64..600) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            let o = LogOptions { segment_bytes: seg, ..opts(FsyncMode::Always) };
            let mut fs = FaultFs::new();
            let (mut log, _) = Log::open(o.clone(), fs.clone()).unwrap();
            // What is acknowledged, and the live state (acknowledged or not).
            let mut acked: Vec<(Lsn, Vec<u8>)> = Vec::new();
            let mut state: Vec<(Lsn, Vec<u8>)> = Vec::new();
            let mut counter = 0u64;
            for op in ops {
                let crash_keep = match op {
                    Op::Write(n) => {
                        for _ in 0..n {
                            counter += 1;
                            let p = format!("p{counter}").into_bytes();
                            let lsn = log.append(&p).unwrap();
                            state.push((lsn, p));
                            log.durable(lsn).await.unwrap();
                        }
                        acked = state.clone();
                        None
                    }
                    Op::CrashMidWrite(n, keep) => {
                        fs.set_faults(Faults { sync: Some(EIO), ..Faults::default() });
                        for _ in 0..n {
                            counter += 1;
                            let p = format!("p{counter}").into_bytes();
                            if let Ok(lsn) = log.append(&p) {
                                state.push((lsn, p));
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        Some(keep as usize)
                    }
                    Op::Snapshot => {
                        let covers = log.begin_snapshot().unwrap();
                        let img = image(&state);
                        log.write_snapshot(covers, &img).unwrap();
                        // The snapshot made everything up to `covers` durable.
                        acked = state.clone();
                        None
                    }
                    Op::Reopen => {
                        log.close().await.unwrap();
                        acked = state.clone();
                        Some(usize::MAX)
                    }
                    Op::Crash => Some(0),
                };
                let Some(keep) = crash_keep else { continue };
                let next = if keep == usize::MAX { fs.clone() } else { fs.crash_keeping(keep) };
                drop(log);
                fs = next;
                let (l, r) = Log::open(o.clone(), fs.clone()).unwrap();
                log = l;
                let got = rebuild(r);
                let want_lsns: Vec<Lsn> = (1..=got.len() as u64).collect();
                prop_assert_eq!(got.iter().map(|g| g.0).collect::<Vec<_>>(), want_lsns);
                prop_assert!(got.len() >= acked.len(), "lost acknowledged records");
                prop_assert!(got.len() <= state.len());
                prop_assert_eq!(&got[..], &state[..got.len()]);
                state = got;
                acked = state.clone();
                prop_assert_eq!(log.last_lsn(), state.len() as u64);
            }
            Ok(())
        })?;
    }
}
