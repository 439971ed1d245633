//! The security entries that API-key changes report (`key_created`,
//! `key_revoked`, `key_deleted`, `key_rotated`, `key_disabled`,
//! `key_enabled`), derived from the domain's own [`ApiKeyEvent`]s, so that
//! every route that changes a key (the seeds' and the platform's) reports
//! it the same way, in the same log record as the change.

use serde_json::json;
use std::collections::HashMap;
use uuid::Uuid;

use std::net::IpAddr;

use crate::apikeys::ApiKeyEvent;
use crate::app::{Recorder, State};
use crate::clock::Millis;
use crate::event::EventRef;
use crate::ids::AccountId;
use crate::security::{happened, Kind};

/// What a key change's entries need besides the event.
pub(super) struct KeyNotes {
    /// The client's address (the TCP peer).
    ip: IpAddr,
    account: AccountId,
    now: Millis,
    /// The prefixes of the account's keys before the change (a deleted key
    /// is gone from the domain by the time its event is emitted).
    prefixes: HashMap<Uuid, String>,
}

impl KeyNotes {
    /// Called in the write, before the change.
    pub(super) fn new(st: &State, ip: IpAddr, account: AccountId, now: Millis) -> Self {
        let prefixes = st
            .apikeys
            .list(account, now)
            .into_iter()
            .map(|k| (k.key_id, k.key_prefix))
            .collect();
        KeyNotes {
            ip,
            account,
            now,
            prefixes,
        }
    }

    /// Logs `e` with the entries it reports, as one record.
    pub(super) fn record(&self, st: &State, rec: &mut Recorder<'_>, e: &ApiKeyEvent) {
        let notes = self.notes(e);
        if notes.is_empty() {
            return rec.record(EventRef::ApiKey(e));
        }
        rec.record_noted(EventRef::ApiKey(e), |emit| {
            for (kind, key_id, prefix, detail) in notes {
                let what = happened(self.ip, prefix.map(|p| (key_id, p)), detail);
                st.security.log(self.account, kind, what, self.now, emit);
            }
        });
    }

    fn prefix(&self, key_id: &Uuid) -> Option<String> {
        self.prefixes.get(key_id).cloned()
    }

    /// (kind, key, its prefix, detail) of each entry `e` reports.
    fn notes(&self, e: &ApiKeyEvent) -> Vec<(Kind, Uuid, Option<String>, serde_json::Value)> {
        use ApiKeyEvent as E;
        match e {
            E::Created { record, revokes }
            | E::CreatedWith {
                record, revokes, ..
            }
            | E::CreatedWithCredits {
                record, revokes, ..
            } => {
                let mut out = vec![(
                    Kind::KeyCreated,
                    record.key_id,
                    Some(record.prefix.clone()),
                    json!({"key_id": record.key_id, "name": record.name}),
                )];
                if let Some(old) = revokes {
                    out.push((
                        Kind::KeyRevoked,
                        *old,
                        self.prefix(old),
                        json!({"key_id": old, "replaced_by": record.key_id}),
                    ));
                }
                out
            }
            E::Revoked { key_id, .. } => vec![(
                Kind::KeyRevoked,
                *key_id,
                self.prefix(key_id),
                json!({"key_id": key_id}),
            )],
            E::Deleted { key_id } => vec![(
                Kind::KeyDeleted,
                *key_id,
                self.prefix(key_id),
                json!({"key_id": key_id}),
            )],
            E::DisabledSet { key_id, disabled } => vec![(
                if *disabled {
                    Kind::KeyDisabled
                } else {
                    Kind::KeyEnabled
                },
                *key_id,
                self.prefix(key_id),
                json!({"key_id": key_id}),
            )],
            E::Rotated {
                old,
                grace_until,
                record,
                ..
            } => vec![(
                Kind::KeyRotated,
                *old,
                self.prefix(old),
                json!({
                    "key_id": old,
                    "new_key_id": record.key_id,
                    "new_key_prefix": record.prefix,
                    "old_key_expires_at": crate::clock::rfc3339(*grace_until),
                }),
            )],
            E::UsageSet { .. } | E::CreditsSet { .. } => Vec::new(),
        }
    }
}
