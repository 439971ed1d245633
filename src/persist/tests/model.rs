//! The property test of the log: random writes, crashes mid-write, snapshots
//! and reopenings, checked against the records acknowledged so far.

use super::*;

/// One step of the model test.
#[derive(Debug, Clone)]
enum Op {
    /// Append and wait for `n` records.
    Write(u8),
    /// Append `n` records without waiting, then crash keeping `keep` unsynced bytes.
    CrashMidWrite(u8, u16),
    /// Append `n` records on a failing disk (flush fails if the flag says so,
    /// else the write), then fall back to the durable end and resume.
    FailAndFallBack(u8, bool),
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
        1 => (1u8..6, any::<bool>()).prop_map(|(n, f)| Op::FailAndFallBack(n, f)),
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
                                // Lead the write, but never see it acknowledged.
                                let wait = log.durable(lsn);
                                let _ = tokio::time::timeout(Duration::from_millis(1), wait).await;
                            }
                        }
                        Some(keep as usize)
                    }
                    Op::FailAndFallBack(n, on_flush) => {
                        let f = if on_flush {
                            Faults { sync: Some(EIO), ..Faults::default() }
                        } else {
                            Faults { write: Some(ENOSPC), ..Faults::default() }
                        };
                        fs.set_faults(f);
                        for _ in 0..n {
                            counter += 1;
                            let p = format!("p{counter}").into_bytes();
                            if let Ok(lsn) = log.append(&p) {
                                let wait = log.durable(lsn);
                                let got = tokio::time::timeout(Duration::from_millis(1), wait).await;
                                prop_assert!(got.is_err(), "acknowledged on a failing disk");
                            }
                        }
                        // The caller's fall-back: rebuild from what is durable.
                        let mut failure = None;
                        for _ in 0..1000 {
                            failure = log.failure();
                            if failure.is_some() { break; }
                            tokio::time::sleep(Duration::from_millis(1)).await;
                        }
                        let end = failure.map(|f| f.1).expect("the log failed");
                        let rebuilt = rebuild(log.read_durable().unwrap());
                        prop_assert_eq!(&rebuilt[..], &acked[..], "the durable end is what was acknowledged");
                        prop_assert_eq!(end, acked.len() as u64);
                        log.rolled_back();
                        fs.clear_faults();
                        log.resume().unwrap();
                        state = rebuilt;
                        prop_assert_eq!(log.last_lsn(), state.len() as u64);
                        None
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
