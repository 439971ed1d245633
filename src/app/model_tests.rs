//! The model test of durability: random sequences of pool operations, with
//! snapshots, clean restarts and power losses at random points, against the
//! real `App` on the fault-injecting disk (`persist::testing::FaultFs`). After
//! every restart the state must be exactly what was acknowledged before it,
//! and `restore(image(state)) == state`. Disk failures strike at random too:
//! every change made while the disk fails is refused or undone, so after the
//! fall-back the state must be exactly what it was before the failure.

use std::sync::Arc;

use clap::Parser;
use proptest::prelude::*;

use super::App;
use crate::clock::{Clock, ManualClock};
use crate::config::Config;
use crate::event::EventRef;
use crate::ids::AccountId;
use crate::persist::testing::{FaultFs, Faults};
use crate::pool::{KeyImage, PoolImage, Pools};

#[derive(Debug, Clone)]
enum Op {
    Create(u8),
    Checkout(u8),
    Release(u8),
    ReleaseStale(u8),
    Delete(u8),
    Keepalive(u8),
    Advance(u16),
    Snapshot,
    CleanRestart,
    PowerLoss,
    /// The disk fails (on write if the flag says so, else on flush) during `n`
    /// changes, then recovers; the server falls back.
    DiskFails(bool, u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3).prop_map(Op::Create),
        3 => (0u8..3).prop_map(Op::Checkout),
        2 => any::<u8>().prop_map(Op::Release),
        1 => any::<u8>().prop_map(Op::ReleaseStale),
        1 => any::<u8>().prop_map(Op::Delete),
        2 => any::<u8>().prop_map(Op::Keepalive),
        2 => (0u16..4000).prop_map(Op::Advance),
        1 => Just(Op::Snapshot),
        1 => Just(Op::CleanRestart),
        1 => Just(Op::PowerLoss),
        1 => (any::<bool>(), 1u8..6).prop_map(|(w, n)| Op::DiskFails(w, n)),
    ]
}

fn sorted(mut image: PoolImage) -> Vec<KeyImage> {
    image.keys.sort_by_key(|k| k.key_id);
    image.keys
}

fn open(fs: &Arc<FaultFs>, clock: &Arc<ManualClock>) -> Arc<App> {
    // A slow flush widens the window in which a write is in the log buffer but
    // not yet durable, so that acknowledging too early would be caught.
    fs.set_faults(Faults {
        sync_delay: Some(std::time::Duration::from_millis(2)),
        ..Faults::default()
    });
    let config = Config::parse_from([
        "keypool",
        "--data-dir",
        "/model",
        "--key-ttl",
        "5s",
        "--block-ttl",
        "2s",
    ]);
    App::open(config, clock.clone(), fs.clone()).expect("recovers")
}

fn run(ops: Vec<Op>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let clock = Arc::new(ManualClock::new(1_800_000_000_000));
        let mut fs = FaultFs::new();
        let mut app = open(&fs, &clock);
        // Keys we have seen, with the lease we last got for each.
        let mut seen: Vec<(AccountId, uuid::Uuid, Option<uuid::Uuid>)> = vec![];
        for op in ops {
            let now = clock.now();
            let pick = |i: u8, seen: &[(AccountId, uuid::Uuid, Option<uuid::Uuid>)]| {
                (!seen.is_empty()).then(|| seen[i as usize % seen.len()])
            };
            match op {
                Op::Create(owner) => {
                    let owner = AccountId(owner as u64);
                    let c = app
                        .write(|st, r| {
                            st.pools
                                .create(owner, now, &mut |e| r.record(EventRef::Pool(e)))
                        })
                        .await
                        .unwrap();
                    seen.push((owner, c.key_id, None));
                }
                Op::Checkout(owner) => {
                    let owner = AccountId(owner as u64);
                    let got = app
                        .write(|st, r| {
                            st.pools
                                .checkout(owner, now, &mut |e| r.record(EventRef::Pool(e)))
                        })
                        .await
                        .unwrap();
                    if let Ok(c) = got {
                        if let Some(s) = seen.iter_mut().find(|s| s.1 == c.key_id) {
                            s.2 = Some(c.lease_id);
                        }
                    }
                }
                Op::Release(i) | Op::ReleaseStale(i) => {
                    if let Some((owner, id, lease)) = pick(i, &seen) {
                        let lease = match op {
                            Op::ReleaseStale(_) => Some(uuid::Uuid::new_v4()),
                            _ => lease,
                        };
                        let _ = app
                            .write(|st, r| {
                                st.pools.release(owner, id, lease, now, &mut |e| {
                                    r.record(EventRef::Pool(e))
                                })
                            })
                            .await
                            .unwrap();
                    }
                }
                Op::Delete(i) => {
                    if let Some((owner, id, _)) = pick(i, &seen) {
                        let _ = app
                            .write(|st, r| {
                                st.pools.delete(owner, id, None, now, &mut |e| {
                                    r.record(EventRef::Pool(e))
                                })
                            })
                            .await
                            .unwrap();
                    }
                }
                Op::Keepalive(i) => {
                    if let Some((owner, id, _)) = pick(i, &seen) {
                        let _ = app
                            .write(|st, r| {
                                st.pools
                                    .keepalive(owner, id, now, &mut |e| r.record(EventRef::Pool(e)))
                            })
                            .await
                            .unwrap();
                    }
                }
                Op::Advance(ms) => clock.advance(std::time::Duration::from_millis(ms as u64)),
                Op::Snapshot => {
                    app.snapshot().await.unwrap();
                }
                Op::DiskFails(on_write, n) => {
                    let before = sorted(app.state().pools.image());
                    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
                    let fallback = {
                        let app = app.clone();
                        tokio::spawn(async move {
                            app.log.failed().await;
                            app.fall_back(&mut stop_rx).await;
                        })
                    };
                    fs.set_faults(if on_write {
                        Faults {
                            write: Some(crate::persist::testing::EIO),
                            ..Faults::default()
                        }
                    } else {
                        Faults {
                            sync: Some(crate::persist::testing::EIO),
                            ..Faults::default()
                        }
                    });
                    for i in 0..n {
                        let target = pick(i, &seen);
                        let result = match (i % 3, target) {
                            (0, _) | (_, None) => {
                                app.write(|st, r| {
                                    st.pools.create(AccountId(1), now, &mut |e| {
                                        r.record(EventRef::Pool(e))
                                    });
                                })
                                .await
                            }
                            (1, Some((owner, _, _))) => {
                                app.write(|st, r| {
                                    let _ = st
                                        .pools
                                        .checkout(owner, now, &mut |e| r.record(EventRef::Pool(e)));
                                })
                                .await
                            }
                            (_, Some((owner, id, _))) => {
                                app.write(|st, r| {
                                    let _ = st.pools.keepalive(owner, id, now, &mut |e| {
                                        r.record(EventRef::Pool(e))
                                    });
                                })
                                .await
                            }
                        };
                        assert!(
                            result.is_err(),
                            "a change was acknowledged on a failing disk"
                        );
                    }
                    assert_eq!(
                        sorted(app.state().pools.image()),
                        before,
                        "undone changes are gone"
                    );
                    fs.clear_faults();
                    let resumed =
                        tokio::time::timeout(std::time::Duration::from_secs(10), fallback).await;
                    assert!(resumed.is_ok(), "the log did not resume");
                    drop(stop_tx);
                    assert!(app.log.check_writable().is_ok());
                    assert_eq!(sorted(app.state().pools.image()), before);
                }
                Op::CleanRestart | Op::PowerLoss => {
                    let before = sorted(app.state().pools.image());
                    if matches!(op, Op::CleanRestart) {
                        app.snapshot().await.unwrap();
                        app.log.close().await.unwrap();
                    }
                    // The power goes before the process can flush anything more.
                    if matches!(op, Op::PowerLoss) {
                        fs = fs.crash();
                    }
                    drop(app);
                    app = open(&fs, &clock);
                    let after = sorted(app.state().pools.image());
                    assert_eq!(before, after, "{op:?} changed the acknowledged state");
                }
            }
            // replay(snapshot(state)) == state, at every step.
            let image = app.state().pools.image();
            let restored = Pools::restore(App::pool_config(&app.config), image.clone());
            assert_eq!(sorted(restored.image()), sorted(image));
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn acknowledged_pool_state_survives_restarts_and_power_loss(ops in prop::collection::vec(op(), 1..60)) {
        run(ops);
    }
}
