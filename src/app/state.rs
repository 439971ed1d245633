//! [`State`]: every domain together, as one value that can be replaced whole.
//!
//! The server keeps one `State` behind an `ArcSwap` in [`super::App`]. It is
//! built in exactly one way, [`State::recover`]: from a snapshot image (or
//! nothing) plus the log records after it, applied through the same `apply`
//! that live changes use. Start-up does that once; after a failed log write the
//! server does it again from what is durable and swaps the result in, so that a
//! change the log could not keep is gone from memory too (see ARCHITECTURE.md,
//! "A 5xx answer to a change means the change did not and will not happen").
//!
//! A state belongs to one *epoch* of the log: the log refuses records tagged
//! with another epoch, so a request still holding the state that was replaced
//! cannot log a change that the new state does not have.

use serde::{Deserialize, Serialize};

use crate::accounts::{Accounts, AccountsImage};
use crate::apikeys::{
    AnalyticsImage, ApiKeys, ApiKeysImage, ApiKeysImageCredits, ApiKeysImageExt, KeyAnalytics,
};
use crate::codec;
use crate::config::Config;
use crate::event::Event;
use crate::idempotency::{IdemImage, Idempotency};
use crate::persist::{Lsn, Recovered};
use crate::pool::{PoolImage, PoolImageExt, Pools};
use crate::purchase::{Purchases, PurchasesImage, TopUps, TopUpsImage};

use super::recovery::OpenError;
use super::App;

/// The whole state as a snapshot stores it. Fields are only ever added at the
/// end, and [`StateImage::decode`] still reads the first round's layout.
#[derive(Serialize, Deserialize)]
pub struct StateImage {
    pub pools: PoolImage,
    pub accounts: AccountsImage,
    pub apikeys: ApiKeysImage,
    pub purchases: PurchasesImage,
    /// Second round: key extras, cooldowns, pool names.
    pub pools_ext: PoolImageExt,
    /// Second round: answers kept for `Idempotency-Key` retries.
    pub idempotency: IdemImage,
    /// Third round: API keys' scopes, IP allowlists and disabled flags.
    pub apikeys_ext: ApiKeysImageExt,
    /// Third round, credits: every metered key's balance.
    pub apikeys_credits: ApiKeysImageCredits,
    /// Third round, analytics: every key's per-day, per-route figures.
    pub analytics: AnalyticsImage,
    /// Third round: credit top-ups.
    pub topups: TopUpsImage,
}

impl StateImage {
    /// Decodes a snapshot of this layout, or of an earlier one (which lacks
    /// the later fields: they take their defaults).
    pub fn decode(bytes: &[u8]) -> Result<StateImage, codec::CodecError> {
        let mut r = codec::SnapshotReader::new(bytes);
        let image = StateImage {
            pools: r.field()?,
            accounts: r.field()?,
            apikeys: r.field()?,
            purchases: r.field()?,
            pools_ext: r.later_field()?,
            idempotency: r.later_field()?,
            apikeys_ext: r.later_field()?,
            apikeys_credits: r.later_field()?,
            analytics: r.later_field()?,
            topups: r.later_field()?,
        };
        r.finish()?;
        Ok(image)
    }
}

/// Every domain of the server: what a request reads and changes.
pub struct State {
    /// Key pools of every account.
    pub pools: Pools,
    /// Accounts, passwords and sessions.
    pub accounts: Accounts,
    /// API keys and their usage.
    pub apikeys: ApiKeys,
    /// Purchases and PINs.
    pub purchases: Purchases,
    /// Answers kept for `Idempotency-Key` retries.
    pub idempotency: Idempotency,
    /// API keys' per-day, per-route analytics.
    pub analytics: KeyAnalytics,
    /// Credit top-ups.
    pub topups: TopUps,
    /// The log epoch this state was built for; records it emits carry it.
    pub(crate) epoch: u64,
}

impl State {
    /// Builds the state from a snapshot image (if any) and the log records after
    /// it: the one way a state is made, at start-up and after a failed write.
    pub fn recover(config: &Config, recovered: &Recovered, epoch: u64) -> Result<State, OpenError> {
        let pool_cfg = App::pool_config(config);
        let acc_cfg = App::accounts_config(config);
        let key_cfg = App::apikeys_config(config);
        let pur_cfg = App::purchase_config(config);
        let state = match &recovered.snapshot {
            Some((lsn, bytes)) => {
                let image = StateImage::decode(bytes).map_err(|e| OpenError::Snapshot {
                    lsn: *lsn,
                    reason: e.to_string(),
                })?;
                State {
                    pools: Pools::restore_full(pool_cfg, image.pools, image.pools_ext),
                    accounts: Accounts::restore(acc_cfg, image.accounts),
                    apikeys: {
                        let k = ApiKeys::restore_full(key_cfg, image.apikeys, image.apikeys_ext);
                        k.restore_credits(image.apikeys_credits);
                        k
                    },
                    purchases: Purchases::restore(pur_cfg, image.purchases),
                    idempotency: Idempotency::restore(image.idempotency),
                    analytics: KeyAnalytics::restore(image.analytics),
                    topups: TopUps::restore(pur_cfg.payment_delay, image.topups),
                    epoch,
                }
            }
            None => State {
                pools: Pools::new(pool_cfg),
                accounts: Accounts::new(acc_cfg),
                apikeys: ApiKeys::new(key_cfg),
                purchases: Purchases::new(pur_cfg),
                idempotency: Idempotency::default(),
                analytics: KeyAnalytics::default(),
                topups: TopUps::new(pur_cfg.payment_delay),
                epoch,
            },
        };
        for (lsn, bytes) in &recovered.records {
            state.apply_record(*lsn, bytes)?;
        }
        Ok(state)
    }

    fn apply_record(&self, lsn: Lsn, bytes: &[u8]) -> Result<(), OpenError> {
        let event: Event = codec::decode_record(bytes).map_err(|e| OpenError::Record {
            lsn,
            reason: e.to_string(),
        })?;
        self.apply(&event);
        Ok(())
    }

    /// Applies one event to memory: the same code for live changes and replay.
    pub fn apply(&self, event: &Event) {
        match event {
            Event::Pool(e) => self.pools.apply(e),
            Event::Account(e) => self.accounts.apply(e),
            Event::ApiKey(e) => self.apikeys.apply(e),
            Event::Purchase(e) => self.purchases.apply(e),
            Event::Batch(events) => events.iter().for_each(|e| self.apply(e)),
            Event::Idempotency(e) => self.idempotency.apply(e),
            Event::Analytics(e) => self.analytics.apply(e),
            Event::TopUp(e) => self.topups.apply(e),
        }
    }

    /// Copies the whole state, one lock at a time.
    pub fn image(&self) -> StateImage {
        let (pools, pools_ext) = self.pools.image_full();
        let (apikeys, apikeys_ext) = self.apikeys.image_full();
        StateImage {
            pools,
            accounts: self.accounts.image(),
            apikeys,
            purchases: self.purchases.image(),
            pools_ext,
            idempotency: self.idempotency.image(),
            apikeys_ext,
            apikeys_credits: self.apikeys.image_credits(),
            analytics: self.analytics.image(),
            topups: self.topups.image(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apikeys::{KeyAccess, KeyCredits};

    /// The third round's first snapshot layout (before credits).
    #[derive(Serialize)]
    struct StateImageV3 {
        pools: PoolImage,
        accounts: AccountsImage,
        apikeys: ApiKeysImage,
        purchases: PurchasesImage,
        pools_ext: PoolImageExt,
        idempotency: IdemImage,
        apikeys_ext: ApiKeysImageExt,
    }

    /// The second round's snapshot layout.
    #[derive(Serialize)]
    struct StateImageV2 {
        pools: PoolImage,
        accounts: AccountsImage,
        apikeys: ApiKeysImage,
        purchases: PurchasesImage,
        pools_ext: PoolImageExt,
        idempotency: IdemImage,
    }

    /// The first round's snapshot layout.
    #[derive(Serialize)]
    struct StateImageV1 {
        pools: PoolImage,
        accounts: AccountsImage,
        apikeys: ApiKeysImage,
        purchases: PurchasesImage,
    }

    fn apikeys_image() -> ApiKeysImage {
        let k = ApiKeys::new(crate::apikeys::ApiKeysConfig { keys_per_day: 5 });
        let req = crate::apikeys::CreateKey {
            name: Some("k".into()),
            ..Default::default()
        };
        k.create(crate::ids::AccountId(1), req, 1_000, &mut |_| {})
            .unwrap();
        k.image()
    }

    #[test]
    fn snapshots_of_every_earlier_layout_decode() {
        let apikeys = apikeys_image();
        let v1 = codec::encode(&StateImageV1 {
            pools: PoolImage::default(),
            accounts: AccountsImage::default(),
            apikeys: apikeys.clone(),
            purchases: PurchasesImage::default(),
        })
        .unwrap();
        let v2 = codec::encode(&StateImageV2 {
            pools: PoolImage::default(),
            accounts: AccountsImage::default(),
            apikeys: apikeys.clone(),
            purchases: PurchasesImage::default(),
            pools_ext: PoolImageExt::default(),
            idempotency: IdemImage::default(),
        })
        .unwrap();
        let ext = ApiKeysImageExt {
            access: vec![(
                apikeys.keys[0].key_id,
                KeyAccess {
                    disabled: true,
                    ..KeyAccess::default()
                },
            )],
        };
        let v3 = codec::encode(&StateImageV3 {
            pools: PoolImage::default(),
            accounts: AccountsImage::default(),
            apikeys: apikeys.clone(),
            purchases: PurchasesImage::default(),
            pools_ext: PoolImageExt::default(),
            idempotency: IdemImage::default(),
            apikeys_ext: ext.clone(),
        })
        .unwrap();
        let credits = ApiKeysImageCredits {
            credits: vec![(apikeys.keys[0].key_id, KeyCredits::new(7, None, 2, 1_000))],
            ..ApiKeysImageCredits::default()
        };
        let v4 = codec::encode(&StateImage {
            pools: PoolImage::default(),
            accounts: AccountsImage::default(),
            apikeys: apikeys.clone(),
            purchases: PurchasesImage::default(),
            pools_ext: PoolImageExt::default(),
            idempotency: IdemImage::default(),
            apikeys_ext: ext.clone(),
            apikeys_credits: credits.clone(),
            // Not empty, so that the truncation below cuts into a field.
            analytics: AnalyticsImage {
                keys: vec![(
                    apikeys.keys[0].key_id,
                    vec![crate::apikeys::DayStats::empty(1)],
                )],
            },
            topups: TopUpsImage::default(),
        })
        .unwrap();
        let none = ApiKeysImageCredits::default();
        for (name, bytes, want_ext, want_credits) in [
            ("v1", &v1, ApiKeysImageExt::default(), &none),
            ("v2", &v2, ApiKeysImageExt::default(), &none),
            ("v3", &v3, ext.clone(), &none),
            ("v4", &v4, ext, &credits),
        ] {
            let image = StateImage::decode(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(image.apikeys, apikeys, "{name}");
            assert_eq!(image.apikeys_ext, want_ext, "{name}");
            assert_eq!(&image.apikeys_credits, want_credits, "{name}");
        }
        // The current layout, with a top-up in its last field: cutting a
        // byte off must be an error, not a silently missing field.
        let topups = crate::purchase::TopUps::new(0);
        topups
            .start(crate::ids::AccountId(1), 500, 1, &mut |_| {})
            .unwrap();
        let mut current = StateImage::decode(&v4).unwrap();
        current.topups = topups.image();
        let v5 = codec::encode(&current).unwrap();
        assert_eq!(StateImage::decode(&v5).unwrap().topups, topups.image());
        assert!(StateImage::decode(&v5[..v5.len() - 1]).is_err());
    }
}
