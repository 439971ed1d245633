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

use dashmap::DashMap;
use parking_lot::Mutex;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::format::{check_format, display_prefix, generate_key, key_hash, KEY_LEN, KEY_PREFIX};
use super::view::{KeyView, USAGE_DAYS};
use super::{
    ApiKeyError, ApiKeyEvent, ApiKeysConfig, ApiKeysImage, CreateKey, KeyAuth, KeyAuthError,
    KeyRecord, KeyUsage, NewKey, UsageEntry,
};
use crate::clock::{day_number, Millis};
use crate::ids::AccountId;

const DAY_MS: Millis = 86_400_000;
const MAX_NAME_CHARS: usize = 64;
/// Ten years: longer is "never", which is `expires_in` absent.
const MAX_EXPIRES_IN_SECS: u64 = 10 * 365 * 86_400;
const MAX_WINDOW_SECS: u32 = 86_400;

/// A key in memory.
#[derive(Debug, Clone)]
struct KeyState {
    rec: KeyRecord,
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

fn invalid(field: &'static str, message: impl Into<String>) -> ApiKeyError {
    ApiKeyError::Invalid {
        field,
        message: message.into(),
    }
}

fn validate(req: &CreateKey) -> Result<(), ApiKeyError> {
    if let Some(name) = &req.name {
        let n = name.chars().count();
        if n == 0
            || n > MAX_NAME_CHARS
            || name.trim().is_empty()
            || name.chars().any(char::is_control)
        {
            return Err(invalid(
                "name",
                format!("Invalid name: use 1 to {MAX_NAME_CHARS} printable characters."),
            ));
        }
    }
    if let Some(s) = req.expires_in {
        if s == 0 || s > MAX_EXPIRES_IN_SECS {
            return Err(invalid(
                "expires_in",
                format!(
                    "Invalid expires_in: give a number of seconds from 1 to {MAX_EXPIRES_IN_SECS}."
                ),
            ));
        }
    }
    if let Some(rl) = req.rate_limit {
        if rl.limit == 0 || rl.window_secs == 0 || rl.window_secs > MAX_WINDOW_SECS {
            return Err(invalid(
                "rate_limit",
                format!(
                    "Invalid rate_limit: give {{\"limit\": N, \"window_secs\": S}} with N at least 1 \
                     and S from 1 to {MAX_WINDOW_SECS}."
                ),
            ));
        }
    }
    Ok(())
}

impl KeyUsage {
    /// Counts one use at `now`.
    fn record(&mut self, now: Millis) {
        self.count += 1;
        self.last_used = Some(self.last_used.map_or(now, |l| l.max(now)));
        let today = day_number(now);
        match self.by_day.last_mut() {
            Some((d, c)) if *d == today => *c += 1,
            // A clock that stepped back: count it on the latest day we have.
            Some((d, c)) if *d > today => *c += 1,
            _ => self.by_day.push((today, 1)),
        }
        self.prune();
    }

    /// Keeps the days within [`USAGE_DAYS`] of the newest one.
    fn prune(&mut self) {
        if let Some(&(newest, _)) = self.by_day.last() {
            self.by_day.retain(|(d, _)| d + USAGE_DAYS > newest);
        }
    }

    /// Takes the larger of each figure: usage only grows, so this is the
    /// newer state whichever side is older.
    fn merge(&mut self, other: &KeyUsage) {
        self.count = self.count.max(other.count);
        self.last_used = self.last_used.max(other.last_used);
        for &(day, count) in &other.by_day {
            match self.by_day.binary_search_by_key(&day, |(d, _)| *d) {
                Ok(i) => self.by_day[i].1 = self.by_day[i].1.max(count),
                Err(i) => self.by_day.insert(i, (day, count)),
            }
        }
        self.prune();
    }
}

/// What a revoke selector names among the caller's keys.
enum Selector {
    Hash([u8; 32]),
    Id(Uuid),
    Prefix(String),
}

fn parse_selector(s: &str) -> Option<Selector> {
    if s.len() == KEY_LEN && s.starts_with(KEY_PREFIX) {
        check_format(s).ok()?;
        return Some(Selector::Hash(key_hash(s)));
    }
    if let Ok(id) = Uuid::parse_str(s) {
        return Some(Selector::Id(id));
    }
    if s.len() == super::DISPLAY_PREFIX_LEN && s.starts_with(KEY_PREFIX) {
        return Some(Selector::Prefix(s.to_string()));
    }
    None
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
        let v = KeyView::of(&self.by_hash.get(&h)?.rec, now);
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
        now: Millis,
        emit: &mut dyn FnMut(&ApiKeyEvent),
    ) -> Result<NewKey, ApiKeyError> {
        let req = CreateKey {
            name,
            primary: true,
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

    /// Checks a presented key and counts the use. Refuses a malformed key
    /// before any lookup; then one SHA-256, one map lookup and a constant-time
    /// comparison of the stored hash. The count is visible in [`Self::list`]
    /// at once and logged by the next [`Self::flush_usage`].
    pub fn verify(&self, presented: &str, now: Millis) -> Result<KeyAuth, KeyAuthError> {
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
            s.rec.usage.record(now);
            let newly_dirty = !s.dirty;
            s.dirty = true;
            let auth = KeyAuth {
                owner: s.rec.owner,
                key_id: s.rec.key_id,
                rate_limit: s.rec.rate_limit,
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
            .filter_map(|(_, h)| self.by_hash.get(h).map(|s| KeyView::of(&s.rec, now)))
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
        for h in hashes {
            if let Some(mut s) = self.by_hash.get_mut(&h) {
                s.dirty = false;
                entries.push(UsageEntry {
                    key_id: s.rec.key_id,
                    usage: s.rec.usage.clone(),
                });
            }
        }
        let n = entries.len();
        if n > 0 {
            emit(&ApiKeyEvent::UsageSet { entries });
        }
        n
    }

    /// How many keys exist (revoked ones included).
    pub fn count(&self) -> usize {
        self.by_hash.len()
    }

    /// Applies a logged event; recovery calls it for every record, and live
    /// operations run the same code. Idempotent, and harmless over a snapshot
    /// that already holds some of its effects.
    pub fn apply(&self, ev: &ApiKeyEvent) {
        match ev {
            ApiKeyEvent::Created { record, revokes } => {
                let mut o = self.owners.entry(record.owner).or_default();
                self.apply_created(&mut o, record, *revokes);
            }
            ApiKeyEvent::Revoked { key_id, at } => self.apply_revoked(*key_id, *at),
            ApiKeyEvent::Deleted { key_id } => {
                let owner = self
                    .by_id
                    .get(key_id)
                    .map(|h| *h)
                    .and_then(|h| self.by_hash.get(&h).map(|s| s.rec.owner));
                if let Some(owner) = owner {
                    let mut o = self.owners.entry(owner).or_default();
                    self.apply_deleted(&mut o, *key_id);
                }
            }
            ApiKeyEvent::UsageSet { entries } => {
                for e in entries {
                    let Some(h) = self.by_id.get(&e.key_id).map(|h| *h) else {
                        continue;
                    };
                    if let Some(mut s) = self.by_hash.get_mut(&h) {
                        s.rec.usage.merge(&e.usage);
                    }
                }
            }
        }
    }

    /// A copy of every key and recent creation for a snapshot, taken shard by
    /// shard while requests go on. Sorted, so equal states give equal images.
    pub fn image(&self) -> ApiKeysImage {
        let mut keys: Vec<KeyRecord> = self.by_hash.iter().map(|s| s.rec.clone()).collect();
        keys.sort_by_key(|k| (k.created_at, k.key_id));
        let mut creations: Vec<_> = self
            .owners
            .iter()
            .filter(|o| !o.creations.is_empty())
            .map(|o| {
                let mut c = o.creations.clone();
                c.sort_by_key(|&(id, t)| (t, id));
                (*o.key(), c)
            })
            .collect();
        creations.sort_by_key(|(owner, _)| *owner);
        ApiKeysImage { keys, creations }
    }

    /// The domain a snapshot describes. Usage in the image counts as flushed.
    pub fn restore(cfg: ApiKeysConfig, image: ApiKeysImage) -> Self {
        let me = ApiKeys::new(cfg);
        for (owner, creations) in image.creations {
            me.owners.entry(owner).or_default().creations = creations;
        }
        for record in image.keys {
            let mut o = me.owners.entry(record.owner).or_default();
            // The image's creations are the whole truth about the daily
            // limit: a key's own creation may have been pruned from them.
            me.insert_key(&mut o, &record);
        }
        me
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
        let ev = ApiKeyEvent::Created {
            record: Box::new(record),
            revokes,
        };
        if let ApiKeyEvent::Created { record, revokes } = &ev {
            self.apply_created(o, record, *revokes);
        }
        emit(&ev);
        Ok(new)
    }

    fn apply_created(&self, o: &mut OwnerKeys, record: &KeyRecord, revokes: Option<Uuid>) {
        self.insert_key(o, record);
        let id = record.key_id;
        if !o.creations.iter().any(|(k, _)| *k == id) {
            // The same pruning as a live creation does before its check, so
            // replay leaves the same list as the live run did.
            let at = record.created_at;
            o.creations.retain(|&(_, t)| t.saturating_add(DAY_MS) > at);
            o.creations.push((id, at));
        }
        if let Some(old) = revokes {
            self.apply_revoked(old, record.created_at);
        }
    }

    /// Adds a key to the maps and its owner's list, unless it is there.
    fn insert_key(&self, o: &mut OwnerKeys, record: &KeyRecord) {
        let id = record.key_id;
        // A key already here is this very key replayed over a snapshot that
        // holds it, perhaps with usage or a revocation: keep that.
        if !self.by_id.contains_key(&id) {
            self.by_id.insert(id, record.hash);
            self.by_hash.entry(record.hash).or_insert_with(|| KeyState {
                rec: record.clone(),
                dirty: false,
            });
        }
        if !o.keys.iter().any(|(k, _)| *k == id) {
            o.keys.push((id, record.hash));
            // Keep oldest first when a restore inserts out of order.
            if o.keys.len() > 1 {
                let by_time = |h: &[u8; 32]| self.by_hash.get(h).map_or(0, |s| s.rec.created_at);
                let n = o.keys.len();
                if by_time(&o.keys[n - 2].1) > record.created_at {
                    o.keys.sort_by_key(|(_, h)| by_time(h));
                }
            }
        }
    }

    fn apply_revoked(&self, key_id: Uuid, at: Millis) {
        let Some(h) = self.by_id.get(&key_id).map(|h| *h) else {
            return;
        };
        if let Some(mut s) = self.by_hash.get_mut(&h) {
            // The first revocation stands; a replay of it changes nothing.
            s.rec.revoked_at.get_or_insert(at);
        }
    }

    fn apply_deleted(&self, o: &mut OwnerKeys, key_id: Uuid) {
        if let Some((_, h)) = self.by_id.remove(&key_id) {
            self.by_hash.remove(&h);
        }
        o.keys.retain(|(k, _)| *k != key_id);
    }
}
