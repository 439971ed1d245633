//! Snapshots and the log: retention, a crash between writing a snapshot and
//! deleting what it covers, and damaged snapshots at start-up.

use super::*;

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
