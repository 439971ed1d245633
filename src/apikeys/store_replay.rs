//! Applying events and snapshots to [`ApiKeys`]: the one code path that live
//! operations (after deciding) and recovery (replaying) share, and the image
//! a snapshot holds.

use uuid::Uuid;

use super::super::{
    ApiKeyEvent, ApiKeysConfig, ApiKeysImage, ApiKeysImageCredits, ApiKeysImageExt, KeyAccess,
    KeyCredits, KeyRecord, Rotation,
};
use super::{ApiKeys, KeyState, OwnerKeys, DAY_MS};
use crate::clock::Millis;

impl ApiKeys {
    /// Applies a logged event; recovery calls it for every record, and live
    /// operations run the same code. Idempotent, and harmless over a snapshot
    /// that already holds some of its effects.
    pub fn apply(&self, ev: &ApiKeyEvent) {
        match ev {
            ApiKeyEvent::Created { record, revokes } => {
                let mut o = self.owners.entry(record.owner).or_default();
                self.apply_created(&mut o, record, *revokes, None, None);
            }
            ApiKeyEvent::CreatedWith {
                record,
                revokes,
                access,
            } => {
                let mut o = self.owners.entry(record.owner).or_default();
                self.apply_created(&mut o, record, *revokes, Some(access), None);
            }
            ApiKeyEvent::CreatedWithCredits {
                record,
                revokes,
                access,
                credits,
            } => {
                let mut o = self.owners.entry(record.owner).or_default();
                self.apply_created(&mut o, record, *revokes, Some(access), Some(credits));
            }
            ApiKeyEvent::Rotated { record, .. } => {
                let mut o = self.owners.entry(record.owner).or_default();
                self.apply_rotated(&mut o, ev);
            }
            ApiKeyEvent::CreditsSet { entries } => {
                for (key_id, credits) in entries {
                    self.apply_credits(*key_id, credits);
                }
            }
            ApiKeyEvent::DisabledSet { key_id, disabled } => {
                self.apply_disabled(*key_id, *disabled)
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
        self.image_full().0
    }

    /// [`Self::image`] and the third round's access rules, from one pass over
    /// the keys so that a key's record and rules are copied together.
    pub fn image_full(&self) -> (ApiKeysImage, ApiKeysImageExt) {
        let mut keys = Vec::with_capacity(self.by_hash.len());
        let mut access = Vec::new();
        for s in self.by_hash.iter() {
            keys.push(s.rec.clone());
            if s.access != KeyAccess::default() {
                access.push((s.rec.key_id, s.access.clone()));
            }
        }
        keys.sort_by_key(|k: &KeyRecord| (k.created_at, k.key_id));
        access.sort_by_key(|(id, _)| *id);
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
        (ApiKeysImage { keys, creations }, ApiKeysImageExt { access })
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
            me.insert_key(&mut o, &record, None);
        }
        me
    }

    /// The domain a snapshot with the third round's access rules describes.
    pub fn restore_full(cfg: ApiKeysConfig, image: ApiKeysImage, ext: ApiKeysImageExt) -> Self {
        let me = ApiKeys::restore(cfg, image);
        for (key_id, access) in ext.access {
            let Some(h) = me.by_id.get(&key_id).map(|h| *h) else {
                continue;
            };
            if let Some(mut s) = me.by_hash.get_mut(&h) {
                s.access = access;
            }
        }
        me
    }

    pub(super) fn apply_created(
        &self,
        o: &mut OwnerKeys,
        record: &KeyRecord,
        revokes: Option<Uuid>,
        access: Option<&KeyAccess>,
        credits: Option<&KeyCredits>,
    ) {
        self.insert_key(o, record, access);
        if let Some(c) = credits {
            self.apply_credits(record.key_id, c);
        }
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
    /// `access` `None` is the default access.
    pub(super) fn insert_key(
        &self,
        o: &mut OwnerKeys,
        record: &KeyRecord,
        access: Option<&KeyAccess>,
    ) {
        let id = record.key_id;
        // A key already here is this very key replayed over a snapshot that
        // holds it, perhaps with usage or a revocation: keep that.
        if !self.by_id.contains_key(&id) {
            self.by_id.insert(id, record.hash);
            self.by_hash.entry(record.hash).or_insert_with(|| KeyState {
                rec: record.clone(),
                access: access.cloned().unwrap_or_default(),
                credits: None,
                rotation: None,
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

    pub(super) fn apply_revoked(&self, key_id: Uuid, at: Millis) {
        let Some(h) = self.by_id.get(&key_id).map(|h| *h) else {
            return;
        };
        if let Some(mut s) = self.by_hash.get_mut(&h) {
            // The first revocation stands; a replay of it changes nothing.
            s.rec.revoked_at.get_or_insert(at);
        }
    }

    /// Keeps the later of the stored and the given credit state (a key that
    /// was unmetered takes the given one).
    pub(super) fn apply_credits(&self, key_id: Uuid, credits: &KeyCredits) {
        let Some(h) = self.by_id.get(&key_id).map(|h| *h) else {
            return;
        };
        if let Some(mut s) = self.by_hash.get_mut(&h) {
            // A metered key, once rotated, spends its replacement's credits:
            // a balance of its own logged before the rotation is moot.
            if s.rotation.is_some_and(|r| r.metered) {
                return;
            }
            match &mut s.credits {
                Some(c) => c.merge(credits),
                none => *none = Some(*credits),
            }
        }
    }

    /// The credits of every metered key for a snapshot, sorted by key id. A
    /// pass of its own: applying credits keeps the later state, so it does
    /// not matter that they are copied after [`Self::image_full`]'s records.
    pub fn image_credits(&self) -> ApiKeysImageCredits {
        let mut credits: Vec<(Uuid, KeyCredits)> = self
            .by_hash
            .iter()
            .filter_map(|s| s.credits.map(|c| (s.rec.key_id, c)))
            .collect();
        credits.sort_by_key(|(id, _)| *id);
        let mut rotations: Vec<(Uuid, Rotation)> = self
            .by_hash
            .iter()
            .filter_map(|s| s.rotation.map(|r| (s.rec.key_id, r)))
            .collect();
        rotations.sort_by_key(|(id, _)| *id);
        ApiKeysImageCredits { credits, rotations }
    }

    /// Adds a snapshot's credits to a domain [`Self::restore_full`] built.
    pub fn restore_credits(&self, image: ApiKeysImageCredits) {
        for (key_id, c) in image.credits {
            self.apply_credits(key_id, &c);
        }
        for (key_id, r) in image.rotations {
            self.set_rotation(key_id, r);
        }
    }

    pub(super) fn apply_disabled(&self, key_id: Uuid, disabled: bool) {
        let Some(h) = self.by_id.get(&key_id).map(|h| *h) else {
            return;
        };
        if let Some(mut s) = self.by_hash.get_mut(&h) {
            s.access.disabled = disabled;
        }
    }

    pub(super) fn apply_deleted(&self, o: &mut OwnerKeys, key_id: Uuid) {
        if let Some((_, h)) = self.by_id.remove(&key_id) {
            self.by_hash.remove(&h);
        }
        o.keys.retain(|(k, _)| *k != key_id);
    }
}
