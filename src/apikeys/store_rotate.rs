//! Rotation: a replacement key inheriting the old one's name, access, limits,
//! expiry and remaining credits, and the old key working until its grace ends
//! (spending the replacement's credits if it was metered, along a chain of
//! rotations). Locks as in `store.rs`: the owner's entry, then one `by_hash`
//! shard at a time; `dirty` after.

use uuid::Uuid;

use super::super::format::{display_prefix, generate_key, key_hash};
use super::super::{
    ApiKeyError, ApiKeyEvent, KeyAuth, KeyAuthError, KeyCredits, KeyRecord, KeyUsage, NewKey,
    Rotation,
};
use super::ApiKeys;
use crate::clock::Millis;
use crate::ids::AccountId;

/// Longest grace period: 30 days.
pub const MAX_GRACE_SECS: u64 = 30 * 86_400;
/// How many rotations a metered old key's spending follows.
const MAX_HOPS: usize = 64;

impl ApiKeys {
    /// Rotates one of `owner`'s keys: returns the replacement (shown once)
    /// and when the old key stops working. Another account's key is
    /// [`ApiKeyError::NotFound`]; a rotated, revoked or expired one is
    /// [`ApiKeyError::NotRotatable`]. Rotation does not count against the
    /// daily creation limit's refusal, but is counted in it like a creation.
    pub fn rotate(
        &self,
        owner: AccountId,
        key_id: Uuid,
        grace_secs: u64,
        now: Millis,
        emit: &mut dyn FnMut(&ApiKeyEvent),
    ) -> Result<(NewKey, Millis), ApiKeyError> {
        if grace_secs > MAX_GRACE_SECS {
            return Err(ApiKeyError::Invalid {
                field: "grace_secs",
                message: format!("Invalid grace_secs: give 0 to {MAX_GRACE_SECS} seconds."),
            });
        }
        let mut o = self.owners.get_mut(&owner).ok_or(ApiKeyError::NotFound)?;
        let (_, h) = *o
            .keys
            .iter()
            .find(|(id, _)| *id == key_id)
            .ok_or(ApiKeyError::NotFound)?;
        let (old, access, credits) = {
            let s = self.by_hash.get(&h).ok_or(ApiKeyError::NotFound)?;
            if s.rotation.is_some() {
                return Err(ApiKeyError::NotRotatable(
                    "This API key has already been rotated.",
                ));
            }
            if s.rec.revoked_at.is_some() || s.rec.expires_at.is_some_and(|e| now >= e) {
                return Err(ApiKeyError::NotRotatable(
                    "A revoked or expired API key cannot be rotated.",
                ));
            }
            let credits = s
                .credits
                .map(|c| KeyCredits::new(c.remaining_at(now), c.refill, 0, now));
            (s.rec.clone(), s.access.clone(), credits)
        };
        let (key, hash) = loop {
            let key = generate_key();
            let hash = key_hash(&key);
            if !self.by_hash.contains_key(&hash) {
                break (key, hash);
            }
        };
        let record = KeyRecord {
            key_id: Uuid::new_v4(),
            owner,
            name: old.name,
            hash,
            prefix: display_prefix(&key),
            created_at: now,
            expires_at: old.expires_at,
            rate_limit: old.rate_limit,
            revoked_at: None,
            primary: old.primary,
            usage: KeyUsage::default(),
        };
        let new = NewKey {
            key,
            key_id: record.key_id,
            key_prefix: record.prefix.clone(),
            created_at: now,
            expires_at: record.expires_at,
        };
        let grace_until = now.saturating_add(grace_secs * 1000);
        let ev = ApiKeyEvent::Rotated {
            old: key_id,
            grace_until,
            record: Box::new(record),
            access,
            credits,
        };
        self.apply_rotated(&mut o, &ev);
        emit(&ev);
        drop(o);
        Ok((new, grace_until))
    }

    /// Applies [`ApiKeyEvent::Rotated`] (any other event: nothing). The
    /// first rotation of a key stands.
    pub(super) fn apply_rotated(&self, o: &mut super::OwnerKeys, ev: &ApiKeyEvent) {
        let ApiKeyEvent::Rotated {
            old,
            grace_until,
            record,
            access,
            credits,
        } = ev
        else {
            return;
        };
        self.apply_created(o, record, None, Some(access), credits.as_ref());
        self.set_rotation(
            *old,
            Rotation {
                to: record.key_id,
                grace_until: *grace_until,
                metered: credits.is_some(),
            },
        );
    }

    pub(super) fn set_rotation(&self, key_id: Uuid, r: Rotation) {
        let Some(h) = self.by_id.get(&key_id).map(|h| *h) else {
            return;
        };
        if let Some(mut s) = self.by_hash.get_mut(&h) {
            if s.rotation.is_none() {
                s.rotation = Some(r);
                if r.metered {
                    s.credits = None;
                }
            }
        }
    }

    /// The rest of [`Self::verify`] for a metered old key in its grace
    /// period: spend one of its replacement's credits (following further
    /// rotations), then count the use on the old key.
    pub(super) fn verify_via(
        &self,
        old: [u8; 32],
        to: Uuid,
        now: Millis,
    ) -> Result<KeyAuth, KeyAuthError> {
        let remaining = self
            .spend_along(to, now)
            .map_err(|retry_after_secs| KeyAuthError::NoCredits { retry_after_secs })?;
        let (auth, newly_dirty) = {
            let mut s = self.by_hash.get_mut(&old).ok_or(KeyAuthError::Unknown)?;
            s.rec.usage.record(now);
            let newly_dirty = !s.dirty;
            s.dirty = true;
            let auth = KeyAuth {
                owner: s.rec.owner,
                key_id: s.rec.key_id,
                rate_limit: s.rec.rate_limit,
                scopes: s.access.scopes,
                credits_remaining: remaining,
            };
            (auth, newly_dirty)
        };
        if newly_dirty {
            self.dirty.lock().push(old);
        }
        Ok(auth)
    }

    /// Spends one credit of `key_id`, or of the key it was rotated to if it
    /// was metered then, and so on. `Ok(None)`: the end of the chain is not
    /// metered (or is gone). The key spent from is marked for the next flush.
    pub(super) fn spend_along(
        &self,
        mut key_id: Uuid,
        now: Millis,
    ) -> Result<Option<u64>, Option<u64>> {
        for _ in 0..MAX_HOPS {
            let Some(h) = self.by_id.get(&key_id).map(|h| *h) else {
                return Ok(None);
            };
            let (result, newly_dirty) = {
                let Some(mut s) = self.by_hash.get_mut(&h) else {
                    return Ok(None);
                };
                if let Some(r) = s.rotation.filter(|r| r.metered) {
                    key_id = r.to;
                    continue;
                }
                let Some(c) = s.credits.as_mut() else {
                    return Ok(None);
                };
                let result = c.spend(now).map(|()| Some(c.remaining));
                let newly_dirty = result.is_ok() && !s.dirty;
                if result.is_ok() {
                    s.dirty = true;
                }
                (result, newly_dirty)
            };
            if newly_dirty {
                self.dirty.lock().push(h);
            }
            return result;
        }
        Ok(None)
    }
}
