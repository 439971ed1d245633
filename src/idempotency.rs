//! `Idempotency-Key`: the first answer to a request, kept for 24 hours so that
//! a retry of the same request by the same account gets that answer again
//! instead of a second effect, also after a restart.
//!
//! Plain Rust like the other domains: no I/O, no clock (every call takes
//! `now`). A kept answer is stored by an [`IdemEvent::Stored`] that the HTTP
//! layer logs *in the same record* as the change it answers, so a crash keeps
//! both or neither. The answer's body is sealed by the caller (it may hold a
//! new API key or a key's value), so the log and snapshots hold ciphertext.
//!
//! Bounded: at most [`MAX_PER_ACCOUNT`] answers per account (the oldest go
//! first when more arrive, in `apply`, so replay evicts the same ones) and
//! none past its `expires_at` (dropped by [`Idempotency::purge`] and never
//! answered, whether purged yet or not). Only successful answers are kept: a
//! retry after an error is a new attempt.

use std::collections::{HashMap, HashSet, VecDeque};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::clock::Millis;
use crate::ids::AccountId;

/// How long an answer is kept.
pub const TTL: Millis = 24 * 3_600_000;
/// The most answers kept per account.
pub const MAX_PER_ACCOUNT: usize = 10_000;

/// One kept answer.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub account: AccountId,
    /// The client's `Idempotency-Key`.
    pub key: String,
    /// A keyed hash of the request (method, path, query, body; see
    /// `MasterKey::fingerprint`): a reuse of the key for another request is
    /// refused.
    pub fingerprint: [u8; 32],
    pub status: u16,
    /// The sealed response body.
    pub body: Vec<u8>,
    pub expires_at: Millis,
}

/// A change to the kept answers.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub enum IdemEvent {
    /// This answer is kept (replaces one with the same account and key).
    Stored(Kept),
}

/// What a request with an `Idempotency-Key` should do.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Nothing kept: go ahead (the key is now marked in flight until
    /// [`Idempotency::finish`]).
    Fresh,
    /// Answer this again.
    Replay { status: u16, body: Vec<u8> },
    /// The key was used for a different request.
    Mismatch,
    /// The same key is being served right now by another request.
    InFlight,
}

/// Every account's kept answers. `Send + Sync`.
#[derive(Default)]
pub struct Idempotency {
    /// Held for one lookup, mark, apply or purge; never across an `.await`.
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    accounts: HashMap<AccountId, Answers>,
    /// Keys being served now (memory only).
    in_flight: HashSet<(AccountId, String)>,
}

#[derive(Default)]
struct Answers {
    by_key: HashMap<String, Kept>,
    /// Keys in the order they were kept (oldest first).
    order: VecDeque<String>,
}

/// The kept answers, for snapshots.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub struct IdemImage {
    pub kept: Vec<Kept>,
}

impl Idempotency {
    /// What to do with a request of `account` carrying `key` and `fingerprint`.
    pub fn begin(
        &self,
        account: AccountId,
        key: &str,
        fingerprint: &[u8; 32],
        now: Millis,
    ) -> Lookup {
        let mut inner = self.inner.lock();
        let kept = inner
            .accounts
            .get(&account)
            .and_then(|a| a.by_key.get(key))
            .filter(|k| k.expires_at > now);
        match kept {
            Some(k) if &k.fingerprint == fingerprint => Lookup::Replay {
                status: k.status,
                body: k.body.clone(),
            },
            Some(_) => Lookup::Mismatch,
            None => {
                if inner.in_flight.insert((account, key.to_owned())) {
                    Lookup::Fresh
                } else {
                    Lookup::InFlight
                }
            }
        }
    }

    /// The request that got [`Lookup::Fresh`] is done (answered or failed).
    pub fn finish(&self, account: AccountId, key: &str) {
        self.inner
            .lock()
            .in_flight
            .remove(&(account, key.to_owned()));
    }

    /// Applies a logged event (live and in replay).
    pub fn apply(&self, ev: &IdemEvent) {
        let IdemEvent::Stored(k) = ev;
        let mut inner = self.inner.lock();
        let answers = inner.accounts.entry(k.account).or_default();
        if answers.by_key.insert(k.key.clone(), k.clone()).is_none() {
            answers.order.push_back(k.key.clone());
        }
        while answers.by_key.len() > MAX_PER_ACCOUNT {
            match answers.order.pop_front() {
                Some(old) => {
                    answers.by_key.remove(&old);
                }
                None => break,
            }
        }
    }

    /// Drops answers past their time. O(answers dropped + accounts).
    pub fn purge(&self, now: Millis) {
        let mut inner = self.inner.lock();
        inner.accounts.retain(|_, a| {
            while let Some(front) = a.order.front() {
                match a.by_key.get(front) {
                    Some(k) if k.expires_at > now => break,
                    _ => {
                        let old = a.order.pop_front().expect("front exists");
                        a.by_key.remove(&old);
                    }
                }
            }
            !a.by_key.is_empty()
        });
    }

    /// How many answers are kept.
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .accounts
            .values()
            .map(|a| a.by_key.len())
            .sum()
    }

    /// Whether no answer is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies every kept answer.
    pub fn image(&self) -> IdemImage {
        let inner = self.inner.lock();
        let kept = inner
            .accounts
            .values()
            .flat_map(|a| a.order.iter().filter_map(|k| a.by_key.get(k).cloned()))
            .collect();
        IdemImage { kept }
    }

    /// The answers of `image`.
    pub fn restore(image: IdemImage) -> Self {
        let me = Self::default();
        for k in image.kept {
            me.apply(&IdemEvent::Stored(k));
        }
        me
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(account: u64, key: &str, fp: u8, expires_at: Millis) -> IdemEvent {
        IdemEvent::Stored(Kept {
            account: AccountId(account),
            key: key.into(),
            fingerprint: [fp; 32],
            status: 201,
            body: vec![fp],
            expires_at,
        })
    }

    #[test]
    fn replays_refuses_mismatches_and_in_flight_twins() {
        let i = Idempotency::default();
        let a = AccountId(1);
        assert_eq!(i.begin(a, "k", &[1; 32], 0), Lookup::Fresh);
        assert_eq!(i.begin(a, "k", &[1; 32], 0), Lookup::InFlight);
        i.apply(&kept(1, "k", 1, 100));
        i.finish(a, "k");
        assert_eq!(
            i.begin(a, "k", &[1; 32], 50),
            Lookup::Replay {
                status: 201,
                body: vec![1]
            }
        );
        assert_eq!(i.begin(a, "k", &[2; 32], 50), Lookup::Mismatch);
        // Another account's key of the same name is its own.
        assert_eq!(i.begin(AccountId(2), "k", &[2; 32], 50), Lookup::Fresh);
        // Expired: fresh again, purged or not.
        assert_eq!(i.begin(a, "k", &[2; 32], 100), Lookup::Fresh);
        i.purge(100);
        assert_eq!(i.len(), 0);
    }

    #[test]
    fn keeps_at_most_the_newest_per_account_and_replay_is_idempotent() {
        let i = Idempotency::default();
        for n in 0..MAX_PER_ACCOUNT + 5 {
            i.apply(&kept(1, &format!("k{n}"), 1, 1000));
        }
        assert_eq!(i.len(), MAX_PER_ACCOUNT);
        assert_eq!(i.begin(AccountId(1), "k0", &[1; 32], 0), Lookup::Fresh);
        let image = i.image();
        let again = Idempotency::restore(image.clone());
        for e in &image.kept[image.kept.len() - 10..] {
            again.apply(&IdemEvent::Stored(e.clone()));
        }
        assert_eq!(again.image(), image);
    }
}
