//! Disk faults: a failing write, flush or rotation fails the waiters of what
//! it covered, makes the log refuse appends, and is retried until the log is
//! writable again, losing nothing acknowledged.

use super::*;

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
