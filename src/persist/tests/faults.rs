//! Disk faults: a failing write, flush or rotation freezes the log at its last
//! durable record; the records after it are dropped (their waiters are told so
//! once the caller has rolled back), never retried; the log resumes after the
//! durable end once the disk lets it, and nothing acknowledged is lost.

use super::*;

/// Waits (bounded) until the log reports a failure; answers its durable end.
async fn failure_of(log: &Log) -> Lsn {
    for _ in 0..500 {
        if let Some((_, end)) = log.failure() {
            return end;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("the log did not fail");
}

/// Starts waiting for `lsn` in a task of its own (which leads its write).
fn wait_for(log: &Log, lsn: Lsn) -> tokio::task::JoinHandle<Result<(), PersistError>> {
    let log = log.clone();
    tokio::spawn(async move { log.durable(lsn).await })
}

/// The whole fall-back as the server runs it, checking each step.
async fn fall_back_and_resume(fs: &Arc<FaultFs>, log: &Log, durable_end: Lsn) {
    let r = log.read_durable().expect("what is durable can be read");
    assert_records(&r, 1..=durable_end);
    // The disk still fails: the log cannot resume before the rollback, nor after it.
    assert!(
        log.resume().is_err(),
        "resumed before the state rolled back"
    );
    let epoch = log.rolled_back();
    assert_eq!(epoch, 1);
    assert!(log.resume().is_err(), "resumed on a failing disk");
    assert!(matches!(
        log.append(&rec(99)),
        Err(PersistError::Unavailable)
    ));
    fs.clear_faults();
    log.resume().expect("resumes once the disk works");
    assert_eq!(log.metrics().fallbacks, 1);
}

async fn fault_then_fall_back(faults: Faults, mode: FsyncMode) {
    let fs = FaultFs::new();
    let (log, _) = open(&fs, opts(mode)).unwrap();
    write(&log, 1..=5).await;
    fs.set_faults(faults.clone());
    let lsn6 = log.append(&rec(6)).unwrap();
    let lsn7 = log.append(&rec(7)).unwrap();
    let w6 = wait_for(&log, lsn6);
    let w7 = wait_for(&log, lsn7);
    let end = failure_of(&log).await;
    assert_eq!(end, 5, "{faults:?}: only acknowledged records stay");
    assert!(matches!(
        log.append(&rec(8)),
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
    // The waiters are not answered before the caller has rolled back.
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert!(!w6.is_finished() && !w7.is_finished());
    fall_back_and_resume(&fs, &log, end).await;
    for w in [w6, w7] {
        let got = w.await.unwrap();
        assert!(matches!(got, Err(PersistError::Dropped)), "{got:?}");
    }
    // Life goes on after the durable end, in the new epoch: LSN 6 is new.
    let lsn = log.append(b"after").unwrap();
    assert_eq!(lsn, 6);
    log.durable(lsn).await.unwrap();
    write_named(&log, 7, b"later").await;
    let after = fs.crash();
    drop(log);
    let (_, r) = open(&after, opts(mode)).unwrap();
    let got: Vec<_> = r.records.iter().map(|(l, p)| (*l, p.clone())).collect();
    let mut want: Vec<_> = (1..=5).map(|i| (i, rec(i))).collect();
    want.push((6, b"after".to_vec()));
    want.push((7, b"later".to_vec()));
    if mode == FsyncMode::Always {
        assert_eq!(got, want, "{faults:?}");
    } else {
        // Without fdatasync the crash may keep only a prefix of the new records.
        assert_eq!(got[..5], want[..5], "{faults:?}");
        assert!(got.iter().all(|g| want.contains(g)), "{faults:?}: {got:?}");
    }
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}

async fn write_named(log: &Log, want: Lsn, payload: &[u8]) {
    let lsn = log.append(payload).unwrap();
    assert_eq!(lsn, want);
    log.durable(lsn).await.unwrap();
}

#[tokio::test]
async fn eio_on_write_drops_the_batch_and_resumes_after_the_durable_end() {
    for mode in [FsyncMode::Always, FsyncMode::Never] {
        let faults = Faults {
            write: Some(EIO),
            ..Faults::default()
        };
        fault_then_fall_back(faults, mode).await;
    }
}

#[tokio::test]
async fn a_torn_write_is_cut_away() {
    for mode in [FsyncMode::Always, FsyncMode::Everysec] {
        let faults = Faults {
            tear_next_write_at: Some(5),
            sync: Some(EIO),
            ..Faults::default()
        };
        fault_then_fall_back(faults, mode).await;
    }
}

#[tokio::test]
async fn enospc_on_flush_drops_the_batch_and_resumes_after_the_durable_end() {
    let faults = Faults {
        sync: Some(ENOSPC),
        ..Faults::default()
    };
    fault_then_fall_back(faults, FsyncMode::Always).await;
}

/// The pipelined group commit: batch N+1 was written while the flush of batch
/// N ran; when that flush fails, N+1 goes too, though its own write worked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_flush_also_drops_the_batch_written_during_it() {
    let fs = FaultFs::new();
    let (log, _) = open_ok(&fs);
    write(&log, 1..=5).await;
    fs.set_faults(Faults {
        sync: Some(EIO),
        sync_delay: Some(Duration::from_millis(500)),
        ..Faults::default()
    });
    let w6 = wait_for(&log, log.append(&rec(6)).unwrap());
    // The flush of 6 is under way (it sleeps before it fails) when 7 is written.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let w7 = wait_for(&log, log.append(&rec(7)).unwrap());
    let seg = segments(&fs).pop().unwrap();
    let holds = |bytes: Vec<u8>, r: Vec<u8>| bytes.windows(r.len()).any(|w| w == r);
    let mut written = false;
    for _ in 0..300 {
        written = holds(fs.bytes(&seg).unwrap(), rec(7));
        if written || log.failure().is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(written, "7 was written during the flush of 6");
    assert_eq!(failure_of(&log).await, 5);
    fall_back_and_resume(&fs, &log, 5).await;
    for w in [w6, w7] {
        assert!(matches!(w.await.unwrap(), Err(PersistError::Dropped)));
    }
    // The failed segment was cut back: neither 6 nor 7 is on disk.
    assert!(!holds(fs.bytes(&seg).unwrap(), rec(7)));
    drop(log);
    let (_, r) = open_ok(&fs.crash());
    assert_records(&r, 1..=5);
}

#[tokio::test]
async fn a_failing_rotation_freezes_the_log_and_resumes() {
    let fs = FaultFs::new();
    let (log, _) = open_ok(&fs);
    write(&log, 1..=3).await;
    fs.set_faults(Faults {
        meta: Some(ENOSPC),
        ..Faults::default()
    });
    assert_eq!(log.begin_snapshot().unwrap(), 3);
    // The next write must first start the new segment, which fails.
    let w4 = wait_for(&log, log.append(&rec(4)).unwrap());
    assert_eq!(failure_of(&log).await, 3);
    fall_back_and_resume(&fs, &log, 3).await;
    assert!(matches!(w4.await.unwrap(), Err(PersistError::Dropped)));
    write(&log, 4..=4).await;
    drop(log);
    let (_, r) = open_ok(&fs.crash());
    assert_records(&r, 1..=4);
}

/// A request still holding the state of the old epoch cannot log into the new one.
#[tokio::test]
async fn appends_of_an_old_epoch_are_refused() {
    let fs = FaultFs::new();
    let (log, _) = open_ok(&fs);
    write(&log, 1..=2).await;
    fs.set_faults(Faults {
        write: Some(EIO),
        ..Faults::default()
    });
    let _w = wait_for(&log, log.append(&rec(3)).unwrap());
    failure_of(&log).await;
    fall_back_and_resume(&fs, &log, 2).await;
    assert!(matches!(
        log.append_in(0, &rec(3)),
        Err(PersistError::Unavailable)
    ));
    assert_eq!(log.append_in(1, &rec(3)).unwrap(), 3);
}
