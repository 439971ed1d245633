//! [`Accounts`]: the accounts registry (ids, usernames, emails, password
//! hashes, balances), plus replay and snapshots for the whole domain. The
//! session half of `Accounts` lives in `sessions.rs`.
//!
//! Locks: the registry is one `RwLock` (registrations are rare: each costs an
//! argon2 hash before it gets here); sessions are a `DashMap` with their own
//! shard locks. No operation holds a registry lock and a session lock at once.

use std::collections::HashMap;

use dashmap::DashMap;
use parking_lot::{Mutex, RwLock};

use super::sessions::SessionState;
use super::validate::normalize_email;
use super::{
    AccountError, AccountEvent, AccountRecord, AccountView, AccountsConfig, AccountsImage,
};
use crate::clock::Millis;
use crate::ids::AccountId;

/// Every account by id, and the shared lowercase namespace of usernames and
/// emails.
#[derive(Debug, Default)]
pub(super) struct Registry {
    /// The id the next registration gets; ids start at 1 (0 is the anonymous
    /// pool).
    next_id: u64,
    by_id: HashMap<AccountId, AccountRecord>,
    /// Lowercased usernames and emails → the account that holds them.
    names: HashMap<String, AccountId>,
}

impl Registry {
    fn apply(&mut self, ev: &AccountEvent) {
        match ev {
            AccountEvent::Registered { record } => {
                self.names
                    .insert(record.username.to_ascii_lowercase(), record.id);
                if let Some(e) = &record.email {
                    self.names.insert(e.to_lowercase(), record.id);
                }
                self.next_id = self.next_id.max(record.id.0 + 1);
                self.by_id.insert(record.id, record.clone());
            }
            AccountEvent::BalanceSet { account, balance } => {
                if let Some(r) = self.by_id.get_mut(account) {
                    r.balance = *balance;
                }
            }
            _ => {}
        }
    }
}

/// The accounts and sessions of the server. `Send + Sync`; share it in an
/// `Arc`. All methods are synchronous and short, except that the caller hashes
/// and verifies passwords (see [`super::hash_password`]) before calling in.
pub struct Accounts {
    pub(super) cfg: AccountsConfig,
    /// Accounts; taken for writing only by registration and balance changes.
    pub(super) registry: RwLock<Registry>,
    /// Live sessions by SHA-256 of the token.
    pub(super) sessions: DashMap<[u8; 32], SessionState>,
    /// Sessions used since the last flush. Pushed to only when a session's
    /// own `dirty` flag goes from false to true, after its shard lock is
    /// released, so this lock is taken at most once per session per flush.
    pub(super) dirty_sessions: Mutex<Vec<[u8; 32]>>,
    /// Serialises flushes so that the use counts they log for one session
    /// never go down.
    pub(super) flush_lock: Mutex<()>,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("accounts", &self.registry.read().by_id.len())
            .field("sessions", &self.sessions.len())
            .finish()
    }
}

impl Accounts {
    /// An empty domain: no accounts, no sessions; the first account gets id 1.
    pub fn new(cfg: AccountsConfig) -> Self {
        Accounts {
            cfg,
            registry: RwLock::new(Registry {
                next_id: 1,
                ..Registry::default()
            }),
            sessions: DashMap::new(),
            dirty_sessions: Mutex::new(Vec::new()),
            flush_lock: Mutex::new(()),
        }
    }

    /// The settings this domain runs with.
    pub fn config(&self) -> &AccountsConfig {
        &self.cfg
    }

    /// Registers an account with the next id and `signup_credits`.
    ///
    /// The caller has already run [`super::validate_registration`] and hashed
    /// the password. A blank `email` counts as none. Fails with
    /// [`AccountError::UsernameTaken`] or [`AccountError::EmailTaken`] when the
    /// name is already a username or email of another account (compared
    /// case-insensitively).
    pub fn register(
        &self,
        username: &str,
        email: Option<&str>,
        password_hash: String,
        now: Millis,
        emit: &mut dyn FnMut(&AccountEvent),
    ) -> Result<AccountId, AccountError> {
        let email = normalize_email(email);
        let mut reg = self.registry.write();
        if reg.names.contains_key(&username.to_ascii_lowercase()) {
            return Err(AccountError::UsernameTaken);
        }
        if let Some(e) = email {
            let lc = e.to_lowercase();
            // The account's own username may equal its email.
            if lc != username.to_ascii_lowercase() && reg.names.contains_key(&lc) {
                return Err(AccountError::EmailTaken);
            }
        }
        let id = AccountId(reg.next_id);
        let ev = AccountEvent::Registered {
            record: AccountRecord {
                id,
                username: username.to_string(),
                email: email.map(str::to_string),
                password_hash,
                created_at: now,
                balance: self.cfg.signup_credits,
            },
        };
        reg.apply(&ev);
        emit(&ev);
        Ok(id)
    }

    /// The account and PHC hash for a login name: a username or an email,
    /// case-insensitively. `None` for an unknown name; the caller then
    /// verifies against [`super::dummy_hash`] so the answer takes as long.
    pub fn login_lookup(&self, username_or_email: &str) -> Option<(AccountId, String)> {
        let reg = self.registry.read();
        let id = reg.names.get(&username_or_email.to_lowercase())?;
        let r = reg.by_id.get(id)?;
        Some((r.id, r.password_hash.clone()))
    }

    /// The account whose username or email is `username_or_email`
    /// (case-insensitively). Seed 003 routes use it for `{email}`; seed 000
    /// for `creator`.
    pub fn find(&self, username_or_email: &str) -> Option<AccountId> {
        self.registry
            .read()
            .names
            .get(&username_or_email.to_lowercase())
            .copied()
    }

    /// An account's public fields.
    pub fn get(&self, id: AccountId) -> Option<AccountView> {
        self.registry.read().by_id.get(&id).map(|r| AccountView {
            id: r.id,
            username: r.username.clone(),
            email: r.email.clone(),
            created_at: r.created_at,
            balance: r.balance,
        })
    }

    /// How many accounts exist.
    pub fn count(&self) -> usize {
        self.registry.read().by_id.len()
    }

    /// An account's balance in credits.
    pub fn balance(&self, id: AccountId) -> Option<u64> {
        self.registry.read().by_id.get(&id).map(|r| r.balance)
    }

    /// The event that sets `id`'s balance to `balance`. Nothing changes until
    /// it is applied: for callers that log a balance change inside an event of
    /// their own (a purchase settling) and apply it themselves.
    pub fn set_balance_event(id: AccountId, balance: u64) -> AccountEvent {
        AccountEvent::BalanceSet {
            account: id,
            balance,
        }
    }

    /// Sets `id`'s balance to `balance`.
    pub fn set_balance(
        &self,
        id: AccountId,
        balance: u64,
        emit: &mut dyn FnMut(&AccountEvent),
    ) -> Result<(), AccountError> {
        let mut reg = self.registry.write();
        if !reg.by_id.contains_key(&id) {
            return Err(AccountError::UnknownAccount);
        }
        let ev = Self::set_balance_event(id, balance);
        reg.apply(&ev);
        emit(&ev);
        Ok(())
    }

    /// Takes `amount` from `id`'s balance if it covers it, atomically, and
    /// returns the new balance. The emitted event is a
    /// [`AccountEvent::BalanceSet`] with the new absolute balance; a purchase
    /// settling can wrap it in its own event so that both are one record.
    pub fn debit(
        &self,
        id: AccountId,
        amount: u64,
        emit: &mut dyn FnMut(&AccountEvent),
    ) -> Result<u64, AccountError> {
        let mut reg = self.registry.write();
        let balance = reg
            .by_id
            .get(&id)
            .ok_or(AccountError::UnknownAccount)?
            .balance;
        let left = balance
            .checked_sub(amount)
            .ok_or(AccountError::InsufficientBalance { balance })?;
        let ev = Self::set_balance_event(id, left);
        reg.apply(&ev);
        emit(&ev);
        Ok(left)
    }

    /// Applies a logged event; recovery calls it for every record, and every
    /// live operation calls the same code. Applying any event twice, or a
    /// suffix of events over a snapshot that already holds some of their
    /// effects, gives the same state.
    pub fn apply(&self, ev: &AccountEvent) {
        match ev {
            AccountEvent::Registered { .. } | AccountEvent::BalanceSet { .. } => {
                self.registry.write().apply(ev)
            }
            _ => self.apply_session_event(ev),
        }
    }

    /// A copy of the whole domain for a snapshot. The registry is copied under
    /// one read lock; sessions shard by shard while requests go on (fuzzy, as
    /// the idempotence rule allows). Sorted, so equal states give equal images.
    pub fn image(&self) -> AccountsImage {
        let (next_id, mut accounts) = {
            let reg = self.registry.read();
            (reg.next_id, reg.by_id.values().cloned().collect::<Vec<_>>())
        };
        accounts.sort_by_key(|a| a.id);
        let mut sessions: Vec<_> = self.sessions.iter().map(|s| s.rec.clone()).collect();
        sessions.sort_by_key(|s| s.token_hash);
        AccountsImage {
            next_id,
            accounts,
            sessions,
        }
    }

    /// The domain a snapshot describes. Session use counts in the image are
    /// taken as flushed.
    pub fn restore(cfg: AccountsConfig, image: AccountsImage) -> Self {
        let me = Accounts::new(cfg);
        {
            let mut reg = me.registry.write();
            for record in image.accounts {
                reg.apply(&AccountEvent::Registered { record });
            }
            reg.next_id = reg.next_id.max(image.next_id).max(1);
        }
        for rec in image.sessions {
            me.sessions
                .insert(rec.token_hash, SessionState { rec, dirty: false });
        }
        me
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AccountsConfig {
        AccountsConfig::for_tests()
    }

    // A syntactically valid PHC string: registry tests need no real argon2.
    const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaA";

    #[test]
    fn ids_start_at_one_and_names_are_case_insensitive() {
        let a = Accounts::new(cfg());
        let mut events = Vec::new();
        let mut emit = |e: &AccountEvent| events.push(e.clone());
        let id1 = a
            .register("TestUser", Some("Me@Example.com"), PHC.into(), 5, &mut emit)
            .unwrap();
        let id2 = a.register("other", None, PHC.into(), 6, &mut emit).unwrap();
        assert_eq!((id1, id2), (AccountId(1), AccountId(2)));
        assert_eq!(
            a.register("testuser", None, PHC.into(), 7, &mut emit),
            Err(AccountError::UsernameTaken)
        );
        assert_eq!(
            a.register("third", Some("me@EXAMPLE.com"), PHC.into(), 7, &mut emit),
            Err(AccountError::EmailTaken)
        );
        // One namespace: a username may not be another account's email, nor
        // an email another account's username.
        assert_eq!(
            a.register("me@example.com", None, PHC.into(), 7, &mut emit),
            Err(AccountError::UsernameTaken)
        );
        assert_eq!(
            a.register("fourth", Some("OTHER"), PHC.into(), 7, &mut emit),
            Err(AccountError::EmailTaken)
        );
        // But an account's username may be its own email.
        let id3 = a
            .register("x@y.z", Some("X@Y.Z"), PHC.into(), 8, &mut emit)
            .unwrap();
        assert_eq!(id3, AccountId(3));
        assert_eq!(events.len(), 3, "refusals emit nothing");

        assert_eq!(a.login_lookup("TESTUSER"), Some((id1, PHC.to_string())));
        assert_eq!(
            a.login_lookup("me@example.COM"),
            Some((id1, PHC.to_string()))
        );
        assert_eq!(a.login_lookup("nobody"), None);
        assert_eq!(a.find("Other"), Some(id2));
        let v = a.get(id1).unwrap();
        assert_eq!(v.username, "TestUser");
        assert_eq!(v.email.as_deref(), Some("Me@Example.com"));
        assert_eq!(v.created_at, 5);
        assert_eq!(v.balance, 1000);
        assert_eq!(a.get(AccountId(0)), None);
    }

    #[test]
    fn blank_email_is_no_email() {
        let a = Accounts::new(cfg());
        let mut emit = |_: &AccountEvent| {};
        let id = a
            .register("u1", Some(""), PHC.into(), 1, &mut emit)
            .unwrap();
        assert_eq!(a.get(id).unwrap().email, None);
        assert!(a
            .register("u2", Some(" "), PHC.into(), 1, &mut emit)
            .is_ok());
    }

    #[test]
    fn balances_set_and_debit() {
        let a = Accounts::new(cfg());
        let mut events = Vec::new();
        let mut emit = |e: &AccountEvent| events.push(e.clone());
        let id = a.register("user", None, PHC.into(), 1, &mut emit).unwrap();
        assert_eq!(a.balance(id), Some(1000));
        assert_eq!(a.debit(id, 300, &mut emit), Ok(700));
        assert_eq!(
            a.debit(id, 701, &mut emit),
            Err(AccountError::InsufficientBalance { balance: 700 })
        );
        a.set_balance(id, 50, &mut emit).unwrap();
        assert_eq!(a.balance(id), Some(50));
        assert_eq!(
            a.debit(AccountId(9), 1, &mut emit),
            Err(AccountError::UnknownAccount)
        );
        assert_eq!(
            &events[1..],
            &[
                AccountEvent::BalanceSet {
                    account: id,
                    balance: 700
                },
                AccountEvent::BalanceSet {
                    account: id,
                    balance: 50
                },
            ]
        );
        // Replaying the log twice over a fresh domain gives the same balance.
        let b = Accounts::new(cfg());
        for e in events.iter().chain(events.iter()) {
            b.apply(e);
        }
        assert_eq!(b.image(), a.image());
        // A standalone event applies like one from `set_balance`.
        b.apply(&Accounts::set_balance_event(id, 7));
        assert_eq!(b.balance(id), Some(7));
    }

    #[test]
    fn next_id_survives_restore_and_replay() {
        let a = Accounts::new(cfg());
        let mut events = Vec::new();
        let mut emit = |e: &AccountEvent| events.push(e.clone());
        a.register("one", None, PHC.into(), 1, &mut emit).unwrap();
        a.register("two", None, PHC.into(), 1, &mut emit).unwrap();
        let b = Accounts::restore(cfg(), a.image());
        assert_eq!(b.image(), a.image());
        let mut none = |_: &AccountEvent| {};
        assert_eq!(
            b.register("three", None, PHC.into(), 2, &mut none),
            Ok(AccountId(3))
        );
        // Replay of the first event over a later snapshot does not move ids back.
        b.apply(&events[0]);
        assert_eq!(
            b.register("four", None, PHC.into(), 2, &mut none),
            Ok(AccountId(4))
        );
        assert_eq!(b.find("two"), Some(AccountId(2)));
    }

    #[test]
    fn image_and_events_never_hold_the_password() {
        let password = "hunter2hunter2";
        let phc = super::super::hash_password(password).unwrap();
        let a = Accounts::new(cfg());
        let mut events = Vec::new();
        let mut emit = |e: &AccountEvent| events.push(e.clone());
        a.register("user", None, phc, 1, &mut emit).unwrap();
        assert!(
            !format!("{events:?}").contains("$argon2id"),
            "Debug hides the hash"
        );
        for bytes in [
            crate::codec::encode(&a.image()).unwrap(),
            crate::codec::encode(&events).unwrap(),
        ] {
            assert!(!bytes
                .windows(password.len())
                .any(|w| w == password.as_bytes()));
            assert!(
                bytes.windows(9).any(|w| w == b"$argon2id"),
                "the hash is kept"
            );
        }
    }
}
