//! Session tokens: created at login, good for `max_uses` authenticated
//! requests and at most `session_ttl`, stored only as SHA-256.
//!
//! A use is counted in memory under the session's shard lock, so the count is
//! exact however many threads race on one token; it is logged in batches by
//! [`Accounts::flush_session_uses`] (absolute counts, one record per flush),
//! never one record per request. A crash can lose the uses since the last
//! flush (about half a second's worth): the token then serves those few
//! requests again, which we accept in exchange for not writing the log on
//! every request.

use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};

use super::registry::Accounts;
use super::{AccountEvent, SessionError, SessionRecord};
use crate::clock::Millis;
use crate::ids::AccountId;

/// Every session token starts with this, so the HTTP layer can tell a
/// session token from an `sk_live_` API key in `Authorization: Bearer`.
pub const SESSION_TOKEN_PREFIX: &str = "st_";

/// Whether `token` looks like a session token (by its prefix only).
pub fn is_session_token(token: &str) -> bool {
    token.starts_with(SESSION_TOKEN_PREFIX)
}

fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A session in memory.
#[derive(Debug, Clone)]
pub(super) struct SessionState {
    pub(super) rec: SessionRecord,
    /// Used since the last flush, and already listed in `dirty_sessions`.
    pub(super) dirty: bool,
}

/// A session just created. The token is shown to the user once and is not
/// stored anywhere.
#[derive(Clone, PartialEq, Eq)]
pub struct NewSession {
    /// `st_` + 64 hex digits (256 random bits from the OS).
    pub token: String,
    /// When the session expires whatever its uses.
    pub expires_at: Millis,
    /// The requests it serves (`--session-max-uses`).
    pub remaining_uses: u32,
}

impl std::fmt::Debug for NewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("remaining_uses", &self.remaining_uses)
            .finish()
    }
}

/// A successful use of a session token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionUse {
    /// Whose session it is.
    pub account: AccountId,
    /// How many more requests it serves after this one.
    pub remaining_uses: u32,
    /// When it expires whatever its uses.
    pub expires_at: Millis,
}

impl Accounts {
    /// Creates a session for `account` (the caller has verified the password)
    /// with `session_max_uses` uses and `session_ttl` of life.
    pub fn create_session(
        &self,
        account: AccountId,
        now: Millis,
        emit: &mut dyn FnMut(&AccountEvent),
    ) -> NewSession {
        let mut raw = [0u8; 32];
        OsRng.fill_bytes(&mut raw);
        let token = format!("{SESSION_TOKEN_PREFIX}{}", hex::encode(raw));
        let expires_at = now.saturating_add(self.cfg.session_ttl);
        let ev = AccountEvent::SessionCreated {
            token_hash: token_hash(&token),
            account,
            created_at: now,
            expires_at,
            max_uses: self.cfg.session_max_uses,
        };
        // Nobody else holds the token yet, so no use of this session can be
        // ordered before its creation: applying and emitting need no lock
        // beyond the shard lock `apply` takes.
        self.apply_session_event(&ev);
        emit(&ev);
        NewSession {
            token,
            expires_at,
            remaining_uses: self.cfg.session_max_uses,
        }
    }

    /// Spends one use of the session `token`. Exactly `max_uses` calls succeed
    /// over the session's life, even when many threads race on one token;
    /// after that, or from `expires_at` on, it answers
    /// [`SessionError::Expired`].
    pub fn use_session(&self, token: &str, now: Millis) -> Result<SessionUse, SessionError> {
        let hash = token_hash(token);
        let (used, newly_dirty) = {
            let mut s = self.sessions.get_mut(&hash).ok_or(SessionError::Unknown)?;
            if now >= s.rec.expires_at || s.rec.used >= s.rec.max_uses {
                return Err(SessionError::Expired);
            }
            s.rec.used += 1;
            let newly_dirty = !s.dirty;
            s.dirty = true;
            (
                SessionUse {
                    account: s.rec.account,
                    remaining_uses: s.rec.max_uses - s.rec.used,
                    expires_at: s.rec.expires_at,
                },
                newly_dirty,
            )
        };
        // Outside the shard lock: the flush takes `dirty_sessions` and then
        // shard locks, so taking them the other way round could deadlock.
        if newly_dirty {
            self.dirty_sessions.lock().push(hash);
        }
        Ok(used)
    }

    /// Ends the session `token` (logout). Returns whether it existed.
    pub fn end_session(&self, token: &str, emit: &mut dyn FnMut(&AccountEvent)) -> bool {
        let token_hash = token_hash(token);
        match self.sessions.remove(&token_hash) {
            Some(_) => {
                // `remove` returned it to this caller only, so SessionEnded is
                // logged once. A flush racing with us may log this session's
                // uses after the end; replay ignores uses of unknown sessions.
                emit(&AccountEvent::SessionEnded { token_hash });
                true
            }
            None => false,
        }
    }

    /// Logs the use counts of the sessions used since the previous flush as
    /// one [`AccountEvent::SessionUses`] with absolute counts; emits nothing
    /// when there are none. Returns how many sessions it covered. The HTTP
    /// layer calls it every ~500 ms.
    pub fn flush_session_uses(&self, emit: &mut dyn FnMut(&AccountEvent)) -> usize {
        let _serial = self.flush_lock.lock();
        let hashes = std::mem::take(&mut *self.dirty_sessions.lock());
        let mut entries = Vec::with_capacity(hashes.len());
        for h in hashes {
            if let Some(mut s) = self.sessions.get_mut(&h) {
                s.dirty = false;
                entries.push((h, s.rec.used));
            }
        }
        let n = entries.len();
        if n > 0 {
            emit(&AccountEvent::SessionUses { entries });
        }
        n
    }

    /// Forgets sessions that have expired or used up their requests, logging
    /// a [`AccountEvent::SessionEnded`] for each. Returns how many. A token of
    /// a purged session answers [`SessionError::Unknown`] from then on.
    pub fn purge_sessions(&self, now: Millis, emit: &mut dyn FnMut(&AccountEvent)) -> usize {
        let done: Vec<[u8; 32]> = self
            .sessions
            .iter()
            .filter(|s| now >= s.rec.expires_at || s.rec.used >= s.rec.max_uses)
            .map(|s| *s.key())
            .collect();
        let mut n = 0;
        for token_hash in done {
            if self.sessions.remove(&token_hash).is_some() {
                emit(&AccountEvent::SessionEnded { token_hash });
                n += 1;
            }
        }
        n
    }

    /// How many sessions are in memory (live, or dead but not yet purged).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    pub(super) fn apply_session_event(&self, ev: &AccountEvent) {
        match ev {
            AccountEvent::SessionCreated {
                token_hash,
                account,
                created_at,
                expires_at,
                max_uses,
            } => {
                // Token hashes are 256 random bits: one that is already here
                // is this very session, replayed over a snapshot that holds
                // it, perhaps with uses; keep those.
                self.sessions
                    .entry(*token_hash)
                    .or_insert_with(|| SessionState {
                        rec: SessionRecord {
                            token_hash: *token_hash,
                            account: *account,
                            created_at: *created_at,
                            expires_at: *expires_at,
                            max_uses: *max_uses,
                            used: 0,
                        },
                        dirty: false,
                    });
            }
            AccountEvent::SessionUses { entries } => {
                for (h, used) in entries {
                    if let Some(mut s) = self.sessions.get_mut(h) {
                        s.rec.used = s.rec.used.max(*used);
                    }
                }
            }
            AccountEvent::SessionEnded { token_hash } => {
                self.sessions.remove(token_hash);
            }
            AccountEvent::Registered { .. } | AccountEvent::BalanceSet { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::super::AccountsConfig;
    use super::*;

    fn cfg() -> AccountsConfig {
        AccountsConfig::for_tests()
    }

    fn recorder() -> (
        Arc<parking_lot::Mutex<Vec<AccountEvent>>>,
        impl FnMut(&AccountEvent),
    ) {
        let log = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let l = log.clone();
        (log, move |e: &AccountEvent| l.lock().push(e.clone()))
    }

    #[test]
    fn token_is_random_prefixed_and_never_stored() {
        let a = Accounts::new(cfg());
        let (log, mut emit) = recorder();
        let s1 = a.create_session(AccountId(1), 0, &mut emit);
        let s2 = a.create_session(AccountId(1), 0, &mut emit);
        assert_ne!(s1.token, s2.token);
        assert!(is_session_token(&s1.token));
        assert!(!is_session_token("sk_live_abc"));
        assert_eq!(s1.token.len(), 3 + 64);
        assert_eq!(s1.remaining_uses, 10);
        assert_eq!(s1.expires_at, 3_600_000);
        assert!(!format!("{s1:?}").contains(&s1.token));
        let image = crate::codec::encode(&a.image()).unwrap();
        let events = crate::codec::encode(&*log.lock()).unwrap();
        for bytes in [image, events] {
            for t in [&s1.token, &s2.token] {
                assert!(!contains(&bytes, t.as_bytes()));
                assert!(!contains(&bytes, &t.as_bytes()[3..]));
                assert!(!contains(&bytes, &hex::decode(&t[3..]).unwrap()));
            }
        }
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn tenth_use_is_served_and_eleventh_is_expired() {
        let a = Accounts::new(cfg());
        let (_, mut emit) = recorder();
        let s = a.create_session(AccountId(7), 0, &mut emit);
        for i in 1..=10u32 {
            let u = a.use_session(&s.token, 1).unwrap();
            assert_eq!(u.account, AccountId(7));
            assert_eq!(u.remaining_uses, 10 - i);
        }
        assert_eq!(a.use_session(&s.token, 1), Err(SessionError::Expired));
        assert_eq!(a.use_session("st_nope", 1), Err(SessionError::Unknown));
    }

    #[test]
    fn thirty_threads_racing_on_one_token_get_exactly_ten() {
        let a = Arc::new(Accounts::new(cfg()));
        let (_, mut emit) = recorder();
        let s = a.create_session(AccountId(1), 0, &mut emit);
        let ok = Arc::new(AtomicUsize::new(0));
        let expired = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(std::sync::Barrier::new(30));
        let threads: Vec<_> = (0..30)
            .map(|_| {
                let (a, ok, expired, barrier, token) = (
                    a.clone(),
                    ok.clone(),
                    expired.clone(),
                    barrier.clone(),
                    s.token.clone(),
                );
                std::thread::spawn(move || {
                    barrier.wait();
                    match a.use_session(&token, 5) {
                        Ok(_) => ok.fetch_add(1, Ordering::SeqCst),
                        Err(SessionError::Expired) => expired.fetch_add(1, Ordering::SeqCst),
                        Err(e) => panic!("{e:?}"),
                    };
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(ok.load(Ordering::SeqCst), 10);
        assert_eq!(expired.load(Ordering::SeqCst), 20);
    }

    #[test]
    fn ttl_expires_the_session() {
        let a = Accounts::new(cfg());
        let (_, mut emit) = recorder();
        let s = a.create_session(AccountId(1), 1_000, &mut emit);
        assert!(a.use_session(&s.token, 1_000 + 3_600_000 - 1).is_ok());
        assert_eq!(
            a.use_session(&s.token, 1_000 + 3_600_000),
            Err(SessionError::Expired)
        );
    }

    #[test]
    fn flush_logs_absolute_counts_once_per_batch() {
        let a = Accounts::new(cfg());
        let (log, mut emit) = recorder();
        let s1 = a.create_session(AccountId(1), 0, &mut emit);
        let s2 = a.create_session(AccountId(2), 0, &mut emit);
        assert_eq!(a.flush_session_uses(&mut emit), 0);
        for _ in 0..3 {
            a.use_session(&s1.token, 1).unwrap();
        }
        a.use_session(&s2.token, 1).unwrap();
        assert_eq!(a.flush_session_uses(&mut emit), 2);
        a.use_session(&s1.token, 1).unwrap();
        assert_eq!(a.flush_session_uses(&mut emit), 1);
        assert_eq!(a.flush_session_uses(&mut emit), 0);
        let log = log.lock();
        assert_eq!(log.len(), 4, "two creations and two flushes");
        let (h1, h2) = (token_hash(&s1.token), token_hash(&s2.token));
        let AccountEvent::SessionUses { entries } = &log[2] else {
            panic!("{:?}", log[2])
        };
        let mut entries = entries.clone();
        entries.sort();
        let mut want = vec![(h1, 3), (h2, 1)];
        want.sort();
        assert_eq!(entries, want);
        assert_eq!(
            log[3],
            AccountEvent::SessionUses {
                entries: vec![(h1, 4)]
            }
        );
    }

    #[test]
    fn replay_restores_uses_and_tolerates_repeats_and_older_records() {
        let a = Accounts::new(cfg());
        let (log, mut emit) = recorder();
        let s = a.create_session(AccountId(1), 0, &mut emit);
        let gone = a.create_session(AccountId(1), 0, &mut emit);
        for _ in 0..4 {
            a.use_session(&s.token, 1).unwrap();
        }
        a.flush_session_uses(&mut emit);
        assert!(a.end_session(&gone.token, &mut emit));
        assert!(!a.end_session(&gone.token, &mut emit));
        for _ in 0..2 {
            a.use_session(&s.token, 1).unwrap();
        }
        a.flush_session_uses(&mut emit);
        let log = log.lock().clone();

        // The whole log, twice.
        let b = Accounts::new(cfg());
        for e in log.iter().chain(log.iter()) {
            b.apply(e);
        }
        assert_eq!(b.image(), a.image());
        assert_eq!(b.use_session(&s.token, 1).unwrap().remaining_uses, 3);
        assert_eq!(b.use_session(&gone.token, 1), Err(SessionError::Unknown));

        // A fuzzy snapshot that already holds the latest counts, then the
        // whole log replayed over it: counts do not go back.
        let c = Accounts::restore(cfg(), a.image());
        for e in &log {
            c.apply(e);
        }
        assert_eq!(c.image(), a.image());
    }

    #[test]
    fn purge_drops_expired_and_used_up_sessions() {
        let a = Accounts::new(cfg());
        let (log, mut emit) = recorder();
        let expired = a.create_session(AccountId(1), 0, &mut emit);
        let used_up = a.create_session(AccountId(1), 0, &mut emit);
        let old = a.create_session(AccountId(1), 0, &mut emit);
        for _ in 0..10 {
            a.use_session(&used_up.token, 1).unwrap();
        }
        // `expired` and `old` are past their TTL at this `now`; `late` is not.
        let late = a.create_session(AccountId(1), 3_000_000, &mut emit);
        let now = 3_600_000;
        assert_eq!(a.purge_sessions(now, &mut emit), 3);
        assert_eq!(a.session_count(), 1);
        assert!(a.use_session(&late.token, now).is_ok());
        for t in [&expired.token, &used_up.token, &old.token] {
            assert_eq!(a.use_session(t, now), Err(SessionError::Unknown));
        }
        let ended = log
            .lock()
            .iter()
            .filter(|e| matches!(e, AccountEvent::SessionEnded { .. }))
            .count();
        assert_eq!(ended, 3);
    }
}
