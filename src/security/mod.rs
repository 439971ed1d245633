//! The security event log (issue 10, part 6): what happened to an account's
//! sign-ins, API keys and purchases, newest 1,000 per account, for
//! `GET /api/user/events`.
//!
//! Synchronous, given `now`, no I/O. Every change is a [`SecurityEvent`] that
//! *sets* state (an entry with its id, or a key's last sight of an address),
//! so replaying twice or over a snapshot gives the same state.
//!
//! Rules:
//! - Ids are one counter per server, increasing; a page's `next_before` is
//!   the id of its last entry when older ones remain.
//! - Floods are coalesced: `login_failed`, `rate_limited`, `credits_exhausted`
//!   and `pin_failed` are logged at most once a minute per (account, type,
//!   key); the ones in between are only counted, and the next logged entry of
//!   that kind says how many were folded into it (`"count"` in detail). The
//!   counts live in memory only: a restart loses at most a minute's tally.
//! - `key_used_from_new_ip`: each key remembers up to [`MAX_ADDRESSES`]
//!   addresses with when it was last seen there (oldest evicted). A use from
//!   an address not seen for [`NEW_IP_AFTER`] fires the event; a known address
//!   is refreshed in the log at most once per [`REFRESH_EVERY`], so ordinary
//!   traffic writes no record per request. The addresses are in snapshots.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

use dashmap::DashMap;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::clock::Millis;
use crate::ids::AccountId;

/// Entries kept per account.
pub const KEEP_PER_ACCOUNT: usize = 1_000;
/// Addresses remembered per key.
pub const MAX_ADDRESSES: usize = 32;
/// An address unseen this long is new again.
pub const NEW_IP_AFTER: Millis = 30 * 86_400_000;
/// How often a known address's last sight is written to the log.
pub const REFRESH_EVERY: Millis = 86_400_000;
/// The coalescing window of flood-prone types.
pub const COALESCE_WINDOW: Millis = 60_000;

/// What kind of thing happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Kind {
    Login,
    LoginFailed,
    Logout,
    KeyCreated,
    KeyRevoked,
    KeyDeleted,
    KeyRotated,
    KeyDisabled,
    KeyEnabled,
    KeyUsedFromNewIp,
    RateLimited,
    CreditsExhausted,
    PinSet,
    PinFailed,
    PurchaseLocked,
    Purchase,
    Topup,
}

impl Kind {
    /// The contract's `type` string.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Login => "login",
            Kind::LoginFailed => "login_failed",
            Kind::Logout => "logout",
            Kind::KeyCreated => "key_created",
            Kind::KeyRevoked => "key_revoked",
            Kind::KeyDeleted => "key_deleted",
            Kind::KeyRotated => "key_rotated",
            Kind::KeyDisabled => "key_disabled",
            Kind::KeyEnabled => "key_enabled",
            Kind::KeyUsedFromNewIp => "key_used_from_new_ip",
            Kind::RateLimited => "rate_limited",
            Kind::CreditsExhausted => "credits_exhausted",
            Kind::PinSet => "pin_set",
            Kind::PinFailed => "pin_failed",
            Kind::PurchaseLocked => "purchase_locked",
            Kind::Purchase => "purchase",
            Kind::Topup => "topup",
        }
    }

    /// Whether hostile traffic can repeat it at will (so it is coalesced).
    pub fn floods(self) -> bool {
        matches!(
            self,
            Kind::LoginFailed | Kind::RateLimited | Kind::CreditsExhausted | Kind::PinFailed
        )
    }
}

/// One entry of an account's log. `detail` never holds a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub id: u64,
    pub account: AccountId,
    pub at: Millis,
    pub kind: Kind,
    pub ip: Option<IpAddr>,
    pub key_prefix: Option<String>,
    /// A short JSON object as text.
    pub detail: String,
}

/// A change to the security log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum SecurityEvent {
    /// This entry exists (inserted by id; the oldest beyond 1,000 dropped).
    Logged(Entry),
    /// `key` was last seen at `ip` at `at`.
    Seen { key: Uuid, ip: IpAddr, at: Millis },
}

/// What to log: everything of an [`Entry`] but its id.
#[derive(Debug, Clone, Default)]
pub struct Happened {
    pub ip: Option<IpAddr>,
    pub key_id: Option<Uuid>,
    pub key_prefix: Option<String>,
    /// Extra fields of `detail` (no secrets).
    pub detail: serde_json::Map<String, serde_json::Value>,
}

/// A [`Happened`] at `ip`, about `key` (id and public prefix), with the
/// fields of the JSON object `detail` (anything else: none).
pub fn happened(ip: IpAddr, key: Option<(Uuid, String)>, detail: serde_json::Value) -> Happened {
    let (key_id, key_prefix) = key.unzip();
    Happened {
        ip: Some(ip),
        key_id,
        key_prefix,
        detail: match detail {
            serde_json::Value::Object(m) => m,
            _ => serde_json::Map::new(),
        },
    }
}

/// Snapshot form.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SecurityImage {
    pub next_id: u64,
    pub entries: Vec<Entry>,
    pub seen: Vec<(Uuid, Vec<(IpAddr, Millis)>)>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    by_account: HashMap<AccountId, VecDeque<Entry>>,
    /// (account, kind, key) → (when its window started, folded since).
    windows: HashMap<(AccountId, Kind, Option<Uuid>), (Millis, u64)>,
}

/// Every account's security log.
#[derive(Default)]
pub struct SecurityLog {
    /// Entries, ids and coalescing windows. Never held while another lock is
    /// taken (a leaf: domain code may take it under its own locks).
    inner: Mutex<Inner>,
    /// Per key, the addresses it was used from and when last. Apart from
    /// `inner`, sharded, so that every API-key request can check its address
    /// without a global lock (a read of one shard).
    seen: DashMap<Uuid, Vec<(IpAddr, Millis)>>,
}

/// Applies a [`SecurityEvent::Seen`] to a key's addresses: keeps the later
/// sight; past [`MAX_ADDRESSES`], evicts the oldest (ties by address, so
/// replay agrees).
fn apply_seen(set: &mut Vec<(IpAddr, Millis)>, ip: IpAddr, at: Millis) {
    match set.iter_mut().find(|(a, _)| *a == ip) {
        Some(slot) => slot.1 = slot.1.max(at),
        None => {
            set.push((ip, at));
            if set.len() > MAX_ADDRESSES {
                if let Some(i) = (0..set.len()).min_by_key(|&i| (set[i].1, set[i].0)) {
                    set.swap_remove(i);
                }
            }
        }
    }
}

impl Inner {
    fn apply(&mut self, event: &SecurityEvent) {
        match event {
            SecurityEvent::Logged(e) => {
                self.next_id = self.next_id.max(e.id + 1);
                let list = self.by_account.entry(e.account).or_default();
                match list.binary_search_by_key(&e.id, |x| x.id) {
                    Ok(i) => list[i] = e.clone(),
                    Err(i) => {
                        // Older than all kept while the list is full: already gone.
                        if i == 0 && list.len() >= KEEP_PER_ACCOUNT {
                            return;
                        }
                        list.insert(i, e.clone());
                    }
                }
                while list.len() > KEEP_PER_ACCOUNT {
                    list.pop_front();
                }
            }
            SecurityEvent::Seen { .. } => {}
        }
    }
}

impl SecurityLog {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn restore(image: SecurityImage) -> Self {
        let log = Self::new();
        {
            let mut g = log.inner.lock();
            g.next_id = image.next_id;
            for e in image.entries {
                g.apply(&SecurityEvent::Logged(e));
            }
        }
        for (key, set) in image.seen {
            log.seen.insert(key, set);
        }
        log
    }

    pub fn image(&self) -> SecurityImage {
        let mut seen: Vec<_> = self
            .seen
            .iter()
            .map(|r| (*r.key(), r.value().clone()))
            .collect();
        seen.sort_by_key(|(k, _)| *k);
        let g = self.inner.lock();
        let mut entries: Vec<Entry> = g.by_account.values().flatten().cloned().collect();
        entries.sort_by_key(|e| e.id);
        SecurityImage {
            next_id: g.next_id,
            entries,
            seen,
        }
    }

    pub fn apply(&self, event: &SecurityEvent) {
        match event {
            SecurityEvent::Seen { key, ip, at } => {
                apply_seen(&mut self.seen.entry(*key).or_default(), *ip, *at)
            }
            SecurityEvent::Logged(_) => self.inner.lock().apply(event),
        }
    }

    /// Whether `key` was used from `ip` recently enough that a use now is
    /// neither new nor due a refresh: the hot path of every API-key request,
    /// one read of one shard, no log record. When false, call
    /// [`SecurityLog::note_use`].
    pub fn known(&self, key: Uuid, ip: IpAddr, now: Millis) -> bool {
        self.seen.get(&key).is_some_and(|set| {
            set.iter()
                .any(|(a, t)| *a == ip && now.saturating_sub(*t) < REFRESH_EVERY)
        })
    }

    /// Logs that `kind` happened to `account` (or, for a flood-prone kind
    /// inside its window, only counts it). Returns whether an entry was logged.
    pub fn log(
        &self,
        account: AccountId,
        kind: Kind,
        what: Happened,
        now: Millis,
        emit: &mut dyn FnMut(&SecurityEvent),
    ) -> bool {
        let mut g = self.inner.lock();
        let mut detail = what.detail;
        if kind.floods() {
            let w = g
                .windows
                .entry((account, kind, what.key_id))
                .or_insert((0, 0));
            if w.0 != 0 && now.saturating_sub(w.0) < COALESCE_WINDOW {
                w.1 += 1;
                return false;
            }
            let folded = w.1;
            *w = (now.max(1), 0);
            detail.insert("count".into(), (folded + 1).into());
            if g.windows.len() > 100_000 {
                g.windows
                    .retain(|_, w| now.saturating_sub(w.0) < COALESCE_WINDOW);
            }
        }
        let event = SecurityEvent::Logged(Entry {
            id: g.next_id,
            account,
            at: now,
            kind,
            ip: what.ip,
            key_prefix: what.key_prefix,
            detail: serde_json::Value::Object(detail).to_string(),
        });
        g.apply(&event);
        emit(&event);
        true
    }

    /// Notes a use of `key` from `ip`: true when the address is new to it
    /// (unseen for 30 days). Emits a `Seen` at most once a day per address.
    pub fn note_use(
        &self,
        key: Uuid,
        ip: IpAddr,
        now: Millis,
        emit: &mut dyn FnMut(&SecurityEvent),
    ) -> bool {
        // The key's shard stays locked from the check to the change, so two
        // first uses from one address report it once.
        let mut set = self.seen.entry(key).or_default();
        let last = set.iter().find(|(a, _)| *a == ip).map(|(_, t)| *t);
        let (new, write) = match last {
            None => (true, true),
            Some(t) if now.saturating_sub(t) >= NEW_IP_AFTER => (true, true),
            Some(t) => (false, now.saturating_sub(t) >= REFRESH_EVERY),
        };
        if write {
            let event = SecurityEvent::Seen { key, ip, at: now };
            apply_seen(&mut set, ip, now);
            emit(&event);
        }
        new
    }

    /// A page of `account`'s entries older than `before`, newest first, and
    /// the `next_before` cursor when older ones remain.
    pub fn page(
        &self,
        account: AccountId,
        before: Option<u64>,
        limit: usize,
    ) -> (Vec<Entry>, Option<u64>) {
        let g = self.inner.lock();
        let Some(list) = g.by_account.get(&account) else {
            return (Vec::new(), None);
        };
        let mut out: Vec<Entry> = list
            .iter()
            .rev()
            .filter(|e| before.is_none_or(|b| e.id < b))
            .take(limit + 1)
            .cloned()
            .collect();
        let more = out.len() > limit;
        out.truncate(limit);
        let next = if more { out.last().map(|e| e.id) } else { None };
        (out, next)
    }
}

#[cfg(test)]
mod tests;
