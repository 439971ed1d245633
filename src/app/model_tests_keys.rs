//! The model test of the API-key platform's durability: random sequences of
//! key creations (metered or not, with refills), uses, verifications, usage
//! flushes, disables, credit sets, rotations and revocations, with snapshots,
//! clean restarts and power losses at random points, against the real `App` on
//! the fault-injecting disk. What is checked:
//!
//! - after a restart or a power loss that follows a flush (the 500 ms flusher
//!   ran), the whole domain is exactly what it was: records, access rules,
//!   credits, rotations;
//! - after a power loss before the flush, every acknowledged change is still
//!   there and credits may only come back (a spent credit is durable like a
//!   use, see ARCHITECTURE.md), never be lost;
//! - `restore(image(state)) == state` at every step;
//! - a metered key that is not part of a rotation never spends more credits
//!   than it had: its balance is what a plain counter says.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use clap::Parser;
use proptest::prelude::*;
use uuid::Uuid;

use super::App;
use crate::apikeys::{
    ApiKeys, ApiKeysImage, ApiKeysImageCredits, ApiKeysImageExt, CreateKey, CreditSpec,
    KeyAuthError, Refill, RefillInterval,
};
use crate::clock::{Clock, ManualClock};
use crate::config::Config;
use crate::event::EventRef;
use crate::ids::AccountId;
use crate::persist::testing::{FaultFs, Faults};

#[derive(Debug, Clone)]
enum Op {
    /// A key for owner `.0`; metered with `.1` credits when `Some`, with a
    /// daily refill when `.2`.
    Create(u8, Option<u8>, bool),
    Use(u8),
    Check(u8),
    Flush,
    Disable(u8, bool),
    SetCredits(u8, u8),
    Rotate(u8, u16),
    Revoke(u8),
    Advance(u32),
    Snapshot,
    CleanRestart,
    /// The power goes; `true`: right after the flusher ran.
    PowerLoss(bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..3, prop::option::of(0u8..6), any::<bool>()).prop_map(|(o, c, r)| Op::Create(o, c, r)),
        6 => any::<u8>().prop_map(Op::Use),
        1 => any::<u8>().prop_map(Op::Check),
        2 => Just(Op::Flush),
        1 => (any::<u8>(), any::<bool>()).prop_map(|(i, d)| Op::Disable(i, d)),
        1 => (any::<u8>(), 0u8..6).prop_map(|(i, n)| Op::SetCredits(i, n)),
        1 => (any::<u8>(), 0u16..20).prop_map(|(i, g)| Op::Rotate(i, g)),
        1 => any::<u8>().prop_map(Op::Revoke),
        // Up to a day and a half: refills happen at UTC midnights.
        2 => (0u32..130_000_000).prop_map(Op::Advance),
        1 => Just(Op::Snapshot),
        1 => Just(Op::CleanRestart),
        1 => any::<bool>().prop_map(Op::PowerLoss),
    ]
}

type Image = (ApiKeysImage, ApiKeysImageExt, ApiKeysImageCredits);

fn image(keys: &ApiKeys) -> Image {
    let (image, ext) = keys.image_full();
    (image, ext, keys.image_credits())
}

fn open(fs: &Arc<FaultFs>, clock: &Arc<ManualClock>) -> Arc<App> {
    fs.set_faults(Faults {
        sync_delay: Some(std::time::Duration::from_millis(1)),
        ..Faults::default()
    });
    let config = Config::parse_from(["keypool", "--data-dir", "/model-keys"]);
    App::open(config, clock.clone(), fs.clone()).expect("recovers")
}

async fn flush(app: &App) {
    app.write(|st, r| {
        st.apikeys
            .flush_usage(&mut |e| r.record(EventRef::ApiKey(e)));
    })
    .await
    .unwrap();
}

/// A key the test made: owner, id, the full secret, and the balance a plain
/// counter says it has (`None`: not modelled — unmetered, refilled, or part
/// of a rotation).
struct Made {
    owner: AccountId,
    key_id: Uuid,
    secret: String,
    model: Option<u64>,
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
        let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let mut made: Vec<Made> = vec![];
        let mut names = 0u32;
        for op in ops {
            let now = clock.now();
            let pick = |i: u8, n: usize| (n > 0).then(|| i as usize % n);
            match op {
                Op::Create(owner, credits, refill) => {
                    names += 1;
                    let req = CreateKey {
                        name: Some(format!("k{names}")),
                        credits: credits.map(|c| CreditSpec {
                            remaining: c as u64,
                            refill: refill.then_some(Refill {
                                amount: 3,
                                interval: RefillInterval::Daily,
                            }),
                        }),
                        ..CreateKey::default()
                    };
                    let owner = AccountId(owner as u64 + 1);
                    let got = app
                        .write(|st, r| {
                            st.apikeys
                                .create(owner, req, now, &mut |e| r.record(EventRef::ApiKey(e)))
                        })
                        .await
                        .unwrap();
                    // The daily creation cap may refuse; nothing is made then.
                    if let Ok(k) = got {
                        made.push(Made {
                            owner,
                            key_id: k.key_id,
                            secret: k.key,
                            model: credits.filter(|_| !refill).map(u64::from),
                        });
                    }
                }
                Op::Use(i) => {
                    if let Some(i) = pick(i, made.len()) {
                        let got = app.state().apikeys.verify(&made[i].secret, peer, now);
                        let m = &mut made[i];
                        if let Some(left) = m.model.as_mut() {
                            match &got {
                                Ok(auth) => {
                                    assert!(*left > 0, "a use was admitted with no credits left");
                                    *left -= 1;
                                    assert_eq!(auth.credits_remaining, Some(*left));
                                }
                                Err(KeyAuthError::NoCredits { .. }) => {
                                    assert_eq!(*left, 0, "refused with credits left")
                                }
                                Err(_) => {}
                            }
                        }
                    }
                }
                Op::Check(i) => {
                    if let Some(i) = pick(i, made.len()) {
                        // Verification counts as a use: the key is no longer
                        // modelled by the plain counter's rules for errors.
                        let m = &mut made[i];
                        let _ = app.state().apikeys.check(m.owner, &m.secret, None, now);
                        m.model = None;
                    }
                }
                Op::Flush => flush(&app).await,
                Op::Disable(i, disabled) => {
                    if let Some(i) = pick(i, made.len()) {
                        let (owner, id) = (made[i].owner, made[i].key_id);
                        let _ = app
                            .write(|st, r| {
                                st.apikeys.set_disabled(owner, id, disabled, &mut |e| {
                                    r.record(EventRef::ApiKey(e))
                                })
                            })
                            .await
                            .unwrap();
                    }
                }
                Op::SetCredits(i, n) => {
                    if let Some(i) = pick(i, made.len()) {
                        let (owner, id) = (made[i].owner, made[i].key_id);
                        let spec = CreditSpec {
                            remaining: n as u64,
                            refill: None,
                        };
                        let got = app
                            .write(|st, r| {
                                st.apikeys.set_credits(owner, id, spec, now, &mut |e| {
                                    r.record(EventRef::ApiKey(e))
                                })
                            })
                            .await
                            .unwrap();
                        if got.is_ok() && made[i].model.is_some() {
                            made[i].model = Some(n as u64);
                        }
                    }
                }
                Op::Rotate(i, grace) => {
                    if let Some(i) = pick(i, made.len()) {
                        let (owner, id) = (made[i].owner, made[i].key_id);
                        let got = app
                            .write(|st, r| {
                                st.apikeys.rotate(owner, id, grace as u64, now, &mut |e| {
                                    r.record(EventRef::ApiKey(e))
                                })
                            })
                            .await
                            .unwrap();
                        if let Ok((k, _)) = got {
                            made[i].model = None;
                            made.push(Made {
                                owner,
                                key_id: k.key_id,
                                secret: k.key,
                                model: None,
                            });
                        }
                    }
                }
                Op::Revoke(i) => {
                    if let Some(i) = pick(i, made.len()) {
                        let owner = made[i].owner;
                        let id = made[i].key_id.to_string();
                        let _ = app
                            .write(|st, r| {
                                st.apikeys
                                    .revoke(owner, &id, now, &mut |e| r.record(EventRef::ApiKey(e)))
                            })
                            .await
                            .unwrap();
                    }
                }
                Op::Advance(ms) => clock.advance(std::time::Duration::from_millis(ms as u64)),
                Op::Snapshot => {
                    app.snapshot().await.unwrap();
                }
                Op::CleanRestart | Op::PowerLoss(true) => {
                    flush(&app).await;
                    let before = image(&app.state().apikeys);
                    if matches!(op, Op::CleanRestart) {
                        app.snapshot().await.unwrap();
                        app.log.close().await.unwrap();
                    } else {
                        fs = fs.crash();
                    }
                    drop(app);
                    app = open(&fs, &clock);
                    assert_eq!(
                        before,
                        image(&app.state().apikeys),
                        "{op:?} changed the state"
                    );
                }
                Op::PowerLoss(false) => {
                    let (keys, ext, credits) = image(&app.state().apikeys);
                    fs = fs.crash();
                    drop(app);
                    app = open(&fs, &clock);
                    let (keys2, ext2, credits2) = image(&app.state().apikeys);
                    assert_eq!(
                        ext, ext2,
                        "access rules are changes, logged before the answer"
                    );
                    assert_eq!(credits.rotations, credits2.rotations);
                    let strip = |mut k: ApiKeysImage| {
                        k.keys.iter_mut().for_each(|k| k.usage = Default::default());
                        k
                    };
                    assert_eq!(strip(keys), strip(keys2), "records survive, uses aside");
                    let after: HashMap<_, _> = credits2.credits.iter().cloned().collect();
                    for (id, c) in &credits.credits {
                        let a = after.get(id).expect("a metered key stays metered");
                        assert_eq!((a.generation, a.refill), (c.generation, c.refill));
                        if a.period == c.period {
                            assert!(a.remaining >= c.remaining, "credits were lost");
                        }
                    }
                    // Unflushed spending may come back: the counter no longer knows.
                    made.iter_mut().for_each(|m| m.model = None);
                }
            }
            let state = app.state();
            let now_image = image(&state.apikeys);
            let restored = ApiKeys::restore_full(
                state.apikeys.config().clone(),
                now_image.0.clone(),
                now_image.1.clone(),
            );
            restored.restore_credits(now_image.2.clone());
            assert_eq!(
                image(&restored),
                now_image,
                "restore(image(state)) != state"
            );
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn acknowledged_api_key_state_survives_restarts_and_power_loss(ops in prop::collection::vec(op(), 1..60)) {
        run(ops);
    }
}
