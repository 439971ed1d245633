//! The platform's operations on a key's access rules: disable/enable, and
//! [`ApiKeys::check`], the domain half of `POST /api/keys/verify` (what
//! [`ApiKeys::verify`] would say, as a verdict instead of an error). Locks as
//! in `store.rs`: the owner's entry, then `by_hash` shards; `dirty` after.

use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::super::format::{check_format, key_hash};
use super::super::{ApiKeyError, ApiKeyEvent, CreditSpec, KeyCredits, KeyRateLimit};
use super::ApiKeys;
use crate::clock::Millis;
use crate::ids::AccountId;

/// What [`ApiKeys::check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyCheck {
    /// The verdict.
    pub status: KeyStatus,
    /// The key, when it is one of the owner's.
    pub key: Option<CheckedKey>,
}

/// The verdict of [`ApiKeys::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    /// Not a key of this owner (malformed, unknown, deleted, or another's).
    NotFound,
    /// Revoked.
    Revoked,
    /// Past its `expires_at`.
    Expired,
    /// Disabled.
    Disabled,
    /// Metered and out of credits (nothing was counted).
    UsageExceeded,
    /// Works; its use was counted. `has_scope`: it has the scope asked for
    /// (true when none was asked for).
    Live {
        /// Whether it has the scope asked for.
        has_scope: bool,
    },
}

/// What [`ApiKeys::check`] shows of a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedKey {
    /// Its id.
    pub key_id: Uuid,
    /// Its name.
    pub name: Option<String>,
    /// Every scope name it has.
    pub scopes: Vec<String>,
    /// When it expires.
    pub expires_at: Option<Millis>,
    /// Its rate limit (the HTTP layer's limiter counts the verification).
    pub rate_limit: Option<KeyRateLimit>,
    /// The owner's `meta` (JSON text), if any.
    pub meta: Option<String>,
    /// Its credits left (after this verification), when it is metered.
    pub credits_remaining: Option<u64>,
}

impl ApiKeys {
    /// Disables (`disabled = true`) or enables one of `owner`'s keys. Another
    /// account's key is [`ApiKeyError::NotFound`]. Setting the state a key
    /// already has succeeds and logs nothing.
    pub fn set_disabled(
        &self,
        owner: AccountId,
        key_id: Uuid,
        disabled: bool,
        emit: &mut dyn FnMut(&ApiKeyEvent),
    ) -> Result<(), ApiKeyError> {
        let o = self.owners.get_mut(&owner).ok_or(ApiKeyError::NotFound)?;
        let (_, h) = *o
            .keys
            .iter()
            .find(|(id, _)| *id == key_id)
            .ok_or(ApiKeyError::NotFound)?;
        let current = self
            .by_hash
            .get(&h)
            .map(|s| s.access.disabled)
            .ok_or(ApiKeyError::NotFound)?;
        if current != disabled {
            let ev = ApiKeyEvent::DisabledSet { key_id, disabled };
            self.apply_disabled(key_id, disabled);
            emit(&ev);
        }
        drop(o);
        Ok(())
    }

    /// Sets the credits of one of `owner`'s keys (a key that was unmetered
    /// becomes metered). The new state outranks any spending logged before
    /// it. Another account's key is [`ApiKeyError::NotFound`].
    pub fn set_credits(
        &self,
        owner: AccountId,
        key_id: Uuid,
        spec: CreditSpec,
        now: Millis,
        emit: &mut dyn FnMut(&ApiKeyEvent),
    ) -> Result<KeyCredits, ApiKeyError> {
        if let Some(message) = spec.invalid() {
            return Err(ApiKeyError::Invalid {
                field: "credits",
                message,
            });
        }
        let o = self.owners.get_mut(&owner).ok_or(ApiKeyError::NotFound)?;
        let (_, h) = *o
            .keys
            .iter()
            .find(|(id, _)| *id == key_id)
            .ok_or(ApiKeyError::NotFound)?;
        // Sets are serialised by the owner's lock, so the generation read
        // here is still the latest when the new state is applied.
        let generation = self
            .by_hash
            .get(&h)
            .map(|s| s.credits.map_or(0, |c| c.generation))
            .ok_or(ApiKeyError::NotFound)?;
        let credits = KeyCredits::new(spec.remaining, spec.refill, generation + 1, now);
        let ev = ApiKeyEvent::CreditsSet {
            entries: vec![(key_id, credits)],
        };
        self.apply_credits(key_id, &credits);
        emit(&ev);
        drop(o);
        Ok(credits)
    }

    /// Verification of a key on behalf of `owner`'s own service
    /// (`POST /api/keys/verify`): what [`Self::verify`] would say, as a result
    /// instead of an error, plus whether the key has the scope named `scope`.
    /// Keys of other accounts are [`KeyStatus::NotFound`]. A key that is
    /// neither revoked, expired nor disabled has its use counted, whether it
    /// has the scope or not. The IP allowlist is not checked: the peer is the
    /// verifying service, not the key's user.
    pub fn check(
        &self,
        owner: AccountId,
        presented: &str,
        scope: Option<&str>,
        now: Millis,
    ) -> KeyCheck {
        let not_found = KeyCheck {
            status: KeyStatus::NotFound,
            key: None,
        };
        if check_format(presented).is_err() {
            return not_found;
        }
        let h = key_hash(presented);
        // A metered old key in its grace spends its replacement's credits,
        // taken before the key's own lock (never two shard locks at once).
        let via = self.by_hash.get(&h).and_then(|s| {
            let usable = s.rec.owner == owner
                && s.rec.revoked_at.is_none()
                && s.rec.expires_at.is_none_or(|e| now < e)
                && !s.access.disabled;
            s.rotation
                .filter(|r| usable && r.metered && now < r.grace_until)
                .map(|r| r.to)
        });
        let spent_via = via.map(|to| self.spend_along(to, now));
        let (check, newly_dirty) = {
            let Some(mut s) = self.by_hash.get_mut(&h) else {
                return not_found;
            };
            if !bool::from(s.rec.hash.ct_eq(&h)) || s.rec.owner != owner {
                return not_found;
            }
            let status = if s.rec.revoked_at.is_some() {
                KeyStatus::Revoked
            } else if s.rec.expires_at.is_some_and(|e| now >= e)
                || s.rotation.is_some_and(|r| now >= r.grace_until)
            {
                KeyStatus::Expired
            } else if s.access.disabled {
                KeyStatus::Disabled
            } else if spent_via.is_some_and(|r| r.is_err())
                || s.credits.as_mut().is_some_and(|c| c.spend(now).is_err())
            {
                KeyStatus::UsageExceeded
            } else {
                KeyStatus::Live {
                    has_scope: scope.is_none_or(|n| s.access.has_named(n)),
                }
            };
            let live = matches!(status, KeyStatus::Live { .. });
            if live {
                s.rec.usage.record(now);
            }
            let newly_dirty = live && !s.dirty;
            if live {
                s.dirty = true;
            }
            let key = CheckedKey {
                key_id: s.rec.key_id,
                name: s.rec.name.clone(),
                scopes: s.access.scope_names(),
                expires_at: s.rec.expires_at,
                rate_limit: s.rec.rate_limit,
                meta: s.access.meta.clone(),
                credits_remaining: match spent_via {
                    Some(Ok(left)) => left,
                    Some(Err(_)) => Some(0),
                    None => s.credits.map(|c| c.remaining_at(now)),
                },
            };
            (
                KeyCheck {
                    status,
                    key: Some(key),
                },
                newly_dirty,
            )
        };
        if newly_dirty {
            self.dirty.lock().push(h);
        }
        check
    }
}
