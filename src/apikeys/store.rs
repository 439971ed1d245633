//! [`ApiKeys`]: every key, indexed by the SHA-256 of the key (the hot path's
//! one lookup), by id, and by owner.
//!
//! # Locks
//!
//! - `owners` entry of one account: held by every management operation of
//!   that account (create, revoke, delete, replace) from its decision to its
//!   emit, so that the daily limit and name uniqueness are decided atomically
//!   and the account's events are logged in the order they were applied.
//! - `by_id`, then `by_hash` shards: short, never held while taking an owner.
//! - `dirty` and `flush_lock`: never taken while a map shard is held by the
//!   same thread, except that a flush holds `flush_lock` while it visits
//!   `by_hash` shards (nobody takes `flush_lock` under a shard).

use std::net::IpAddr;

use dashmap::DashMap;
use parking_lot::Mutex;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::format::{check_format, display_prefix, generate_key, key_hash};
use super::request::{parse_selector, validate, Selector};
use super::view::KeyView;
use super::{
    ApiKeyError, ApiKeyEvent, ApiKeysConfig, CreateKey, CreditSpec, KeyAccess, KeyAuth,
    KeyAuthError, KeyCredits, KeyRecord, KeyUsage, NewKey, Rotation, UsageEntry,
};
use crate::clock::Millis;
use crate::ids::AccountId;

const DAY_MS: Millis = 86_400_000;

/// A key in memory.
#[derive(Debug, Clone)]
struct KeyState {
    rec: KeyRecord,
    /// Scopes, allowed addresses, disabled (third round; not in `rec`, whose
    /// layout older logs fix).
    access: KeyAccess,
    /// Its credits, when it is metered (fourth addition; the hot path pays
    /// one branch for an unmetered key).
    credits: Option<KeyCredits>,
    /// Set once the key is rotated (then its own `credits` are unused when
    /// it was metered: it spends the replacement's).
    rotation: Option<Rotation>,
    /// Used since the last flush, and already listed in `ApiKeys::dirty`.
    dirty: bool,
}

/// One account's keys.
#[derive(Debug, Default)]
struct OwnerKeys {
    /// `(key_id, hash)` of every key the account has (revoked ones included),
    /// oldest first.
    keys: Vec<(Uuid, [u8; 32])>,
    /// Keys created recently and when, deleted ones included; pruned to the
    /// last 24 h when a key is created.
    creations: Vec<(Uuid, Millis)>,
}

/// The API keys of every account. `Send + Sync`; share it in an `Arc`.
pub struct ApiKeys {
    cfg: ApiKeysConfig,
    /// Every key by the SHA-256 of the key.
    by_hash: DashMap<[u8; 32], KeyState>,
    /// key_id → hash.
    by_id: DashMap<Uuid, [u8; 32]>,
    /// Each account's keys and recent creations.
    owners: DashMap<AccountId, OwnerKeys>,
    /// Hashes of keys used since the last flush, each listed once.
    dirty: Mutex<Vec<[u8; 32]>>,
    /// Serialises flushes so the usage they log for one key never goes down.
    flush_lock: Mutex<()>,
}

impl std::fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("keys", &self.by_hash.len())
            .field("owners", &self.owners.len())
            .finish()
    }
}

impl ApiKeys {
    /// No keys.
    pub fn new(cfg: ApiKeysConfig) -> Self {
        ApiKeys {
            cfg,
            by_hash: DashMap::new(),
            by_id: DashMap::new(),
            owners: DashMap::new(),
            dirty: Mutex::new(Vec::new()),
            flush_lock: Mutex::new(()),
        }
    }

    /// The settings this domain runs with.
    pub fn config(&self) -> &ApiKeysConfig {
        &self.cfg
    }

    /// Creates a key for `owner`. Refuses an invalid field, a name already
    /// used by one of the owner's live keys ([`ApiKeyError::NameTaken`]), and
    /// a creation beyond `keys_per_day` in the last 24 h
    /// ([`ApiKeyError::DailyLimit`]). Returns the full key, once.
    pub fn create(
        &self,
        owner: AccountId,
        req: CreateKey,
        now: Millis,
        emit: &mut dyn FnMut(&ApiKeyEvent),
    ) -> Result<NewKey, ApiKeyError> {
        validate(&req)?;
        let mut o = self.owners.entry(owner).or_default();
        self.create_locked(&mut o, owner, req, None, now, emit)
    }

    /// The account's primary key (seed 003's "the key") if it has one that is
    /// neither revoked nor expired.
    pub fn primary(&self, owner: AccountId, now: Millis) -> Option<KeyView> {
        let o = self.owners.get(&owner)?;
        let (_, h) = self.current_primary(&o)?;
        let s = self.by_hash.get(&h)?;
        let v = KeyView::of(
            &s.rec,
            &s.access,
            s.credits.as_ref(),
            s.rotation.as_ref(),
            now,
        );
        (!v.expired).then_some(v)
    }

    /// Creates a new primary key for `owner` named `name` and, in the same
    /// event, revokes the previous one if there is one. Counts against the
    /// daily limit like any creation; the old key's name is free for the new
    /// one.
    pub fn replace_primary(
        &self,
        owner: AccountId,
        name: Option<String>,
        access: KeyAccess,
        now: Millis,
        emit: &mut dyn FnMut(&ApiKeyEvent),
    ) -> Result<NewKey, ApiKeyError> {
        self.replace_primary_with(owner, name, access, None, now, emit)
    }

    /// [`Self::replace_primary`] with credits for the new key.
    pub fn replace_primary_with(
        &self,
        owner: AccountId,
        name: Option<String>,
        access: KeyAccess,
        credits: Option<CreditSpec>,
        now: Millis,
        emit: &mut dyn FnMut(&ApiKeyEvent),
    ) -> Result<NewKey, ApiKeyError> {
        let req = CreateKey {
            name,
            primary: true,
            access,
            credits,
            ..CreateKey::default()
        };
        validate(&req)?;
        let mut o = self.owners.entry(owner).or_default();
        let old = self.current_primary(&o).map(|(id, _)| id);
        self.create_locked(&mut o, owner, req, old, now, emit)
    }

    /// Revokes the account's primary key; [`ApiKeyError::NotFound`] when it
    /// has none that is not already revoked.
    pub fn revoke_primary(
        &self,
        owner: AccountId,
        now: Millis,
        emit: &mut dyn FnMut(&ApiKeyEvent),
    ) -> Result<Uuid, ApiKeyError> {
        let o = self.owners.get_mut(&owner).ok_or(ApiKeyError::NotFound)?;
        let (key_id, _) = self.current_primary(&o).ok_or(ApiKeyError::NotFound)?;
        let ev = ApiKeyEvent::Revoked { key_id, at: now };
        self.apply_revoked(key_id, now);
        emit(&ev);
        drop(o);
        Ok(key_id)
    }

    /// Checks a presented key, used from `peer`, and counts the use. Refuses
    /// a malformed key before any lookup; then one SHA-256, one map lookup and
    /// a constant-time comparison of the stored hash; then revoked, expired,
    /// disabled, and the IP allowlist (a refused use is not counted). The
    /// count is visible in [`Self::list`] at once and logged by the next
    /// [`Self::flush_usage`].
    pub fn verify(
        &self,
        presented: &str,
        peer: IpAddr,
        now: Millis,
    ) -> Result<KeyAuth, KeyAuthError> {
        check_format(presented).map_err(KeyAuthError::Malformed)?;
        let h = key_hash(presented);
        let (auth, newly_dirty) = {
            let mut s = self.by_hash.get_mut(&h).ok_or(KeyAuthError::Unknown)?;
            if !bool::from(s.rec.hash.ct_eq(&h)) {
                return Err(KeyAuthError::Unknown);
            }
            if s.rec.revoked_at.is_some() {
                return Err(KeyAuthError::Revoked);
            }
            if s.rec.expires_at.is_some_and(|e| now >= e) {
                return Err(KeyAuthError::Expired);
            }
            if s.access.disabled {
                return Err(KeyAuthError::Disabled);
            }
            if !s.access.allows_ip(peer) {
                return Err(KeyAuthError::AddressRefused);
            }
            if let Some(r) = s.rotation {
                if now >= r.grace_until {
                    return Err(KeyAuthError::Rotated);
                }
                if r.metered {
                    // The replacement's credits, under its own lock (not
                    // this one's: two shard locks are never held at once).
                    drop(s);
                    return self.verify_via(h, r.to, now);
                }
            }
            // Under the shard lock: two requests never take the same credit.
            let credits_remaining = match &mut s.credits {
                None => None,
                Some(c) => {
                    c.spend(now)
                        .map_err(|retry_after_secs| KeyAuthError::NoCredits { retry_after_secs })?;
                    Some(c.remaining)
                }
            };
            s.rec.usage.record(now);
            let newly_dirty = !s.dirty;
            s.dirty = true;
            let auth = KeyAuth {
                owner: s.rec.owner,
                key_id: s.rec.key_id,
                rate_limit: s.rec.rate_limit,
                scopes: s.access.scopes,
                credits_remaining,
            };
            (auth, newly_dirty)
        };
        // After the shard lock is released: a flush takes `dirty` first and
        // shard locks after it.
        if newly_dirty {
            self.dirty.lock().push(h);
        }
        Ok(auth)
    }

    /// All of `owner`'s keys, revoked and expired ones included, newest first.
    pub fn list(&self, owner: AccountId, now: Millis) -> Vec<KeyView> {
        let Some(o) = self.owners.get(&owner) else {
            return Vec::new();
        };
        let mut views: Vec<KeyView> = o
            .keys
            .iter()
            .rev()
            .filter_map(|(_, h)| {
                self.by_hash.get(h).map(|s| {
                    KeyView::of(
                        &s.rec,
                        &s.access,
                        s.credits.as_ref(),
                        s.rotation.as_ref(),
                        now,
                    )
                })
            })
            .collect();
        drop(o);
        // Stable: keys created in the same millisecond stay newest first.
        views.sort_by_key(|v| std::cmp::Reverse(v.created_at));
        views
    }

    /// Revokes one of `owner`'s keys named by the full key, its `key_id` or
    /// its `key_prefix`. Returns the key's id. Revoking a revoked key again
    /// succeeds and logs nothing. A prefix that matches several of the
    /// caller's unrevoked keys revokes none ([`ApiKeyError::AmbiguousPrefix`]);
    /// a prefix matching one unrevoked key and some revoked ones revokes the
    /// unrevoked one. Anything that is not one of the caller's keys (another
    /// account's included) is [`ApiKeyError::NotFound`].
    pub fn revoke(
        &self,
        owner: AccountId,
        selector: &str,
        now: Millis,
        emit: &mut dyn FnMut(&ApiKeyEvent),
    ) -> Result<Uuid, ApiKeyError> {
        let sel = parse_selector(selector).ok_or(ApiKeyError::NotFound)?;
        let o = self.owners.get_mut(&owner).ok_or(ApiKeyError::NotFound)?;
        // (key_id, revoked) of every key of this owner the selector names.
        let named: Vec<(Uuid, bool)> = o
            .keys
            .iter()
            .filter_map(|(id, h)| {
                let s = self.by_hash.get(h)?;
                let hit = match &sel {
                    Selector::Hash(want) => bool::from(h.ct_eq(want)),
                    Selector::Id(want) => id == want,
                    Selector::Prefix(p) => s.rec.prefix == *p,
                };
                hit.then_some((*id, s.rec.revoked_at.is_some()))
            })
            .collect();
        let live: Vec<Uuid> = named
            .iter()
            .filter(|(_, r)| !r)
            .map(|(id, _)| *id)
            .collect();
        match (live.as_slice(), named.first()) {
            ([key_id], _) => {
                let ev = ApiKeyEvent::Revoked {
                    key_id: *key_id,
                    at: now,
                };
                self.apply_revoked(*key_id, now);
                emit(&ev);
                drop(o);
                Ok(*key_id)
            }
            ([], Some((key_id, _))) => Ok(*key_id),
            ([], None) => Err(ApiKeyError::NotFound),
            _ => Err(ApiKeyError::AmbiguousPrefix),
        }
    }

    /// Deletes every key of `owner` named `name` (seed 000): a request with
    /// one of them is then refused as unknown. Returns how many were deleted;
    /// [`ApiKeyError::NotFound`] when the caller has no key of that name
    /// (whoever else does). Deleted keys still count against the daily limit.
    pub fn delete_by_name(
        &self,
        owner: AccountId,
        name: &str,
        emit: &mut dyn FnMut(&ApiKeyEvent),
    ) -> Result<usize, ApiKeyError> {
        let mut o = self.owners.get_mut(&owner).ok_or(ApiKeyError::NotFound)?;
        let doomed: Vec<Uuid> = o
            .keys
            .iter()
            .filter(|(_, h)| {
                self.by_hash
                    .get(h)
                    .is_some_and(|s| s.rec.name.as_deref() == Some(name))
            })
            .map(|(id, _)| *id)
            .collect();
        if doomed.is_empty() {
            return Err(ApiKeyError::NotFound);
        }
        for key_id in &doomed {
            let ev = ApiKeyEvent::Deleted { key_id: *key_id };
            self.apply_deleted(&mut o, *key_id);
            emit(&ev);
        }
        Ok(doomed.len())
    }

    /// Logs the usage of the keys used since the previous flush as one
    /// [`ApiKeyEvent::UsageSet`] with absolute figures; emits nothing when no
    /// key was used. Returns how many keys it covered. The HTTP layer calls it
    /// every ~500 ms so usage is durable within a second.
    pub fn flush_usage(&self, emit: &mut dyn FnMut(&ApiKeyEvent)) -> usize {
        let _serial = self.flush_lock.lock();
        let hashes = std::mem::take(&mut *self.dirty.lock());
        let mut entries = Vec::with_capacity(hashes.len());
        let mut credits = Vec::new();
        for h in hashes {
            if let Some(mut s) = self.by_hash.get_mut(&h) {
                s.dirty = false;
                entries.push(UsageEntry {
                    key_id: s.rec.key_id,
                    usage: s.rec.usage.clone(),
                });
                if let Some(c) = s.credits {
                    credits.push((s.rec.key_id, c));
                }
            }
        }
        let n = entries.len();
        if n > 0 {
            emit(&ApiKeyEvent::UsageSet { entries });
        }
        if !credits.is_empty() {
            emit(&ApiKeyEvent::CreditsSet { entries: credits });
        }
        n
    }

    /// How many keys exist (revoked ones included).
    pub fn count(&self) -> usize {
        self.by_hash.len()
    }

    /// The owner of the key `key_id`, if it exists (revoked or not).
    pub fn owner_of(&self, key_id: Uuid) -> Option<AccountId> {
        let h = *self.by_id.get(&key_id)?;
        self.by_hash.get(&h).map(|s| s.rec.owner)
    }

    /// The id of the key `presented`, if it is one (no other check: for
    /// counting the analytics of a use [`Self::verify`] refused).
    pub fn key_id_of(&self, presented: &str) -> Option<Uuid> {
        check_format(presented).ok()?;
        let h = key_hash(presented);
        self.by_hash.get(&h).map(|s| s.rec.key_id)
    }

    /// The newest primary key of this owner that is not revoked (expired or
    /// not).
    fn current_primary(&self, o: &OwnerKeys) -> Option<(Uuid, [u8; 32])> {
        o.keys.iter().rev().copied().find(|(_, h)| {
            self.by_hash
                .get(h)
                .is_some_and(|s| s.rec.primary && s.rec.revoked_at.is_none())
        })
    }

    /// Creation under the owner's lock: limits, then the event.
    fn create_locked(
        &self,
        o: &mut OwnerKeys,
        owner: AccountId,
        req: CreateKey,
        revokes: Option<Uuid>,
        now: Millis,
        emit: &mut dyn FnMut(&ApiKeyEvent),
    ) -> Result<NewKey, ApiKeyError> {
        if let Some(name) = &req.name {
            let taken = o.keys.iter().any(|(id, h)| {
                Some(*id) != revokes
                    && self.by_hash.get(h).is_some_and(|s| {
                        s.rec.name.as_ref() == Some(name)
                            && s.rec.revoked_at.is_none()
                            && s.rec.expires_at.is_none_or(|e| now < e)
                    })
            });
            if taken {
                return Err(ApiKeyError::NameTaken);
            }
        }
        // Creations in the future (a clock stepped back) stay counted.
        o.creations.retain(|&(_, t)| t.saturating_add(DAY_MS) > now);
        let allowed = self.cfg.keys_per_day as usize;
        if o.creations.len() >= allowed {
            let mut times: Vec<Millis> = o.creations.iter().map(|&(_, t)| t).collect();
            times.sort_unstable();
            // The creation whose leaving the window brings us under the limit.
            let frees_at = times
                .get(times.len() - allowed)
                .map_or(now.saturating_add(DAY_MS), |t| t.saturating_add(DAY_MS));
            let retry_after_secs = frees_at.saturating_sub(now).div_ceil(1000).max(1);
            return Err(ApiKeyError::DailyLimit { retry_after_secs });
        }
        let (key, hash) = loop {
            let key = generate_key();
            let hash = key_hash(&key);
            // 190 random bits never collide in practice; if they did, a
            // second owner of one hash would be a disaster, so check.
            if !self.by_hash.contains_key(&hash) {
                break (key, hash);
            }
        };
        let record = KeyRecord {
            key_id: Uuid::new_v4(),
            owner,
            name: req.name,
            hash,
            prefix: display_prefix(&key),
            created_at: now,
            expires_at: req
                .expires_in
                .map(|s| now.saturating_add(s.saturating_mul(1000))),
            rate_limit: req.rate_limit,
            revoked_at: None,
            primary: req.primary,
            usage: KeyUsage::default(),
        };
        let new = NewKey {
            key,
            key_id: record.key_id,
            key_prefix: record.prefix.clone(),
            created_at: now,
            expires_at: record.expires_at,
        };
        // A key with the default access is logged as the first round logged
        // it, so that its record stays readable by an older binary.
        let access = (req.access != KeyAccess::default()).then_some(req.access);
        let credits = req
            .credits
            .map(|c| KeyCredits::new(c.remaining, c.refill, 0, now));
        self.apply_created(o, &record, revokes, access.as_ref(), credits.as_ref());
        let record = Box::new(record);
        let ev = match (access, credits) {
            (None, None) => ApiKeyEvent::Created { record, revokes },
            (Some(access), None) => ApiKeyEvent::CreatedWith {
                record,
                revokes,
                access,
            },
            (access, Some(credits)) => ApiKeyEvent::CreatedWithCredits {
                record,
                revokes,
                access: access.unwrap_or_default(),
                credits,
            },
        };
        emit(&ev);
        Ok(new)
    }
}

#[path = "store_access.rs"]
mod access;
#[path = "store_replay.rs"]
mod replay;
#[path = "store_rotate.rs"]
mod rotate;

pub use access::{CheckedKey, KeyCheck, KeyStatus};
pub use rotate::MAX_GRACE_SECS;
