//! What the outside world sees of a key: [`KeyView`] (an item of
//! `GET /list-keys`) and [`KeyPreference`] (seed 003's `keyPreference` and
//! `usage` objects). Both serialize to the contract's JSON shapes, times as
//! RFC 3339 strings, so that the HTTP layer can put them in a response as is.

use serde::{Serialize, Serializer};
use uuid::Uuid;

use super::{KeyAccess, KeyCredits, KeyRateLimit, KeyRecord, KeyUsage, Refill, Rotation};
use crate::clock::{day_number, day_string, rfc3339, Millis};

/// How many calendar days `usage_by_day` covers, today included.
pub const USAGE_DAYS: u32 = 30;
const DAY_MS: Millis = 86_400_000;

fn time<S: Serializer>(t: &Millis, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&rfc3339(*t))
}

fn opt_time<S: Serializer>(t: &Option<Millis>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_some(&rfc3339(*t)),
        None => s.serialize_none(),
    }
}

/// Requests on one UTC calendar day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayCount {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Authenticated requests that day.
    pub count: u64,
}

/// One of an account's keys, without its secret. Serializes as an item of
/// `GET /list-keys`: `key_id, name, key_prefix, created_at, last_used,
/// usage_count, usage_by_day, expires_at, revoked` (plus `revoked_at`,
/// `expired`, `primary` and `rate_limit`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyView {
    /// The key's id.
    pub key_id: Uuid,
    /// Its name.
    pub name: Option<String>,
    /// Its first 12 characters.
    pub key_prefix: String,
    /// When it was created.
    #[serde(serialize_with = "time")]
    pub created_at: Millis,
    /// When it was last used.
    #[serde(serialize_with = "opt_time")]
    pub last_used: Option<Millis>,
    /// Authenticated requests in all.
    pub usage_count: u64,
    /// The last 30 calendar days (UTC), oldest first, zeros included.
    pub usage_by_day: Vec<DayCount>,
    /// When it expires, if it does.
    #[serde(serialize_with = "opt_time")]
    pub expires_at: Option<Millis>,
    /// Whether it was revoked.
    pub revoked: bool,
    /// When it was revoked.
    #[serde(serialize_with = "opt_time")]
    pub revoked_at: Option<Millis>,
    /// Whether it is past `expires_at` at the time of the view.
    pub expired: bool,
    /// Whether it is (or was) the account's primary key.
    pub primary: bool,
    /// Its own rate limit.
    pub rate_limit: Option<KeyRateLimit>,
    /// Every scope name it has: built-in ones, then the owner's own.
    pub scopes: Vec<String>,
    /// The networks it may be used from (CIDR strings); empty = anywhere.
    pub allowed_ips: Vec<String>,
    /// Whether it is disabled.
    pub disabled: bool,
    /// Its credits left (a refill due counts as done); null = unmetered.
    pub credits_remaining: Option<u64>,
    /// Its refill rule, if any.
    pub refill: Option<Refill>,
    /// The key it was rotated to, if it was.
    pub rotated_to: Option<Uuid>,
    /// When it stops working because it was rotated.
    #[serde(serialize_with = "opt_time")]
    pub grace_until: Option<Millis>,
    /// The owner's `meta` as JSON text; the HTTP layer puts it in the item
    /// as an object (this module does not know JSON).
    #[serde(skip)]
    pub meta: Option<String>,
}

impl KeyView {
    /// The view of `rec` at `now`.
    pub(super) fn of(
        rec: &KeyRecord,
        access: &KeyAccess,
        credits: Option<&KeyCredits>,
        rotation: Option<&Rotation>,
        now: Millis,
    ) -> Self {
        KeyView {
            key_id: rec.key_id,
            name: rec.name.clone(),
            key_prefix: rec.prefix.clone(),
            created_at: rec.created_at,
            last_used: rec.usage.last_used,
            usage_count: rec.usage.count,
            usage_by_day: last_days(&rec.usage, now),
            expires_at: rec.expires_at,
            revoked: rec.revoked_at.is_some(),
            revoked_at: rec.revoked_at,
            expired: rec.expires_at.is_some_and(|e| now >= e),
            primary: rec.primary,
            rate_limit: rec.rate_limit,
            scopes: access.scope_names(),
            allowed_ips: access.allowed_ips.iter().map(|c| c.to_string()).collect(),
            disabled: access.disabled,
            credits_remaining: credits.map(|c| c.remaining_at(now)),
            refill: credits.and_then(|c| c.refill),
            rotated_to: rotation.map(|r| r.to),
            grace_until: rotation.map(|r| r.grace_until),
            meta: access.meta.clone(),
        }
    }
}

/// The last [`USAGE_DAYS`] days up to `now`'s, oldest first, zeros filled in.
fn last_days(usage: &KeyUsage, now: Millis) -> Vec<DayCount> {
    let today = day_number(now);
    (0..USAGE_DAYS)
        .rev()
        .map(|back| {
            let d = today.saturating_sub(back);
            let count = usage
                .by_day
                .iter()
                .find(|(day, _)| *day == d)
                .map_or(0, |(_, c)| *c);
            DayCount {
                day: day_string(Millis::from(d) * DAY_MS),
                count,
            }
        })
        .collect()
}

/// Seed 003's `keyPreference` / `usage` object: the account's primary key
/// and its balance, camelCase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyPreference {
    /// Whether the account has a primary key that works (not revoked, not
    /// expired).
    pub has_key: bool,
    /// When that key was created.
    #[serde(serialize_with = "opt_time")]
    pub generated_at: Option<Millis>,
    /// When it was last used.
    #[serde(serialize_with = "opt_time")]
    pub last_used: Option<Millis>,
    /// Its authenticated requests in all.
    pub usage_count: u64,
    /// Its name.
    pub key_name: Option<String>,
    /// Its first 12 characters.
    pub key_prefix: Option<String>,
    /// The account's credits.
    pub balance: u64,
}

impl KeyPreference {
    /// The object for an account whose primary key is `primary` (from
    /// [`super::ApiKeys::primary`]) and whose balance is `balance`.
    pub fn new(primary: Option<&KeyView>, balance: u64) -> Self {
        match primary {
            Some(k) => KeyPreference {
                has_key: true,
                generated_at: Some(k.created_at),
                last_used: k.last_used,
                usage_count: k.usage_count,
                key_name: k.name.clone(),
                key_prefix: Some(k.key_prefix.clone()),
                balance,
            },
            None => KeyPreference {
                has_key: false,
                generated_at: None,
                last_used: None,
                usage_count: 0,
                key_name: None,
                key_prefix: None,
                balance,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AccountId;

    // 2026-11-22T14:30:00.123Z
    const NOW: Millis = 1_795_357_800_123;

    fn record() -> KeyRecord {
        let today = day_number(NOW);
        KeyRecord {
            key_id: Uuid::nil(),
            owner: AccountId(1),
            name: Some("dev1".into()),
            hash: [7; 32],
            prefix: "sk_live_AbCd".into(),
            created_at: NOW - 40 * DAY_MS,
            expires_at: Some(NOW + 1),
            rate_limit: None,
            revoked_at: None,
            primary: false,
            usage: KeyUsage {
                count: 20,
                last_used: Some(NOW),
                by_day: vec![(today - 29, 3), (today - 1, 5), (today, 12)],
            },
        }
    }

    #[test]
    fn usage_by_day_is_thirty_days_oldest_first_with_zeros() {
        let v = KeyView::of(&record(), &KeyAccess::default(), None, None, NOW);
        assert_eq!(v.usage_by_day.len(), 30);
        assert_eq!(v.usage_by_day[0].day, "2026-10-24");
        assert_eq!(v.usage_by_day[0].count, 3);
        assert_eq!(v.usage_by_day[28].count, 5);
        assert_eq!(
            v.usage_by_day[29],
            DayCount {
                day: "2026-11-22".into(),
                count: 12
            }
        );
        assert_eq!(v.usage_by_day.iter().map(|d| d.count).sum::<u64>(), 20);
        // A day later the oldest day falls out.
        let later = KeyView::of(&record(), &KeyAccess::default(), None, None, NOW + DAY_MS);
        assert_eq!(later.usage_by_day[0].day, "2026-10-25");
        assert_eq!(later.usage_by_day.iter().map(|d| d.count).sum::<u64>(), 17);
        assert!(later.expired);
        assert!(!v.expired);
    }

    #[test]
    fn list_item_json_shape() {
        let j = serde_json::to_value(KeyView::of(
            &record(),
            &KeyAccess::default(),
            None,
            None,
            NOW,
        ))
        .unwrap();
        for field in [
            "key_id",
            "name",
            "key_prefix",
            "created_at",
            "last_used",
            "usage_count",
            "usage_by_day",
            "expires_at",
            "revoked",
            "scopes",
            "allowed_ips",
            "disabled",
        ] {
            assert!(j.get(field).is_some(), "missing {field}: {j}");
        }
        assert_eq!(j["last_used"], "2026-11-22T14:30:00.123Z");
        assert_eq!(j["created_at"], "2026-10-13T14:30:00.123Z");
        assert_eq!(j["usage_by_day"][29]["day"], "2026-11-22");
        assert_eq!(j["usage_by_day"][29]["count"], 12);
        assert_eq!(j["revoked"], false);
        assert_eq!(j["key_prefix"], "sk_live_AbCd");
        assert_eq!(
            j["scopes"],
            serde_json::json!([
                "pool:read",
                "pool:write",
                "keys:read",
                "keys:write",
                "purchase"
            ])
        );
        assert_eq!(j["allowed_ips"], serde_json::json!([]));
        assert_eq!(j["disabled"], false);
    }

    #[test]
    fn key_preference_shape() {
        let v = KeyView::of(&record(), &KeyAccess::default(), None, None, NOW);
        let j = serde_json::to_value(KeyPreference::new(Some(&v), 250)).unwrap();
        assert_eq!(
            j,
            serde_json::json!({
                "hasKey": true,
                "generatedAt": "2026-10-13T14:30:00.123Z",
                "lastUsed": "2026-11-22T14:30:00.123Z",
                "usageCount": 20,
                "keyName": "dev1",
                "keyPrefix": "sk_live_AbCd",
                "balance": 250
            })
        );
        let j = serde_json::to_value(KeyPreference::new(None, 0)).unwrap();
        assert_eq!(j["hasKey"], false);
        assert_eq!(j["generatedAt"], serde_json::Value::Null);
        assert_eq!(j["usageCount"], 0);
    }
}
