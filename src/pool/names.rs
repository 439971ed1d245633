//! Named pools: which owner id each (account, name) has. An account's
//! `default` pool is owned by the account's own id; named pools get ids from
//! [`NAMED_POOL_BASE`] up, given by a `Named` event the first time a name
//! gets a key (or a waiter), never reused.

use std::collections::{BTreeMap, HashMap};

use super::{PoolEvent, Pools, Stats};
use crate::ids::AccountId;

/// The first owner id given to a named pool. An account's `default` pool is
/// owned by the account's own id (so first-round data needs no mapping);
/// named pools get ids from here up, far above any account id.
pub const NAMED_POOL_BASE: u64 = 1 << 62;

/// Which owner id each named pool of each account has.
#[derive(Debug, Default)]
pub(super) struct Names {
    pub(super) by_account: HashMap<AccountId, BTreeMap<String, AccountId>>,
    /// The next owner id to give a new name.
    pub(super) next: u64,
}

/// The name of the pool the plain routes (`/keys`, …) serve.
pub const DEFAULT_POOL: &str = "default";

impl Names {
    pub(super) fn apply(&mut self, ev: &PoolEvent) {
        if let PoolEvent::Named {
            account,
            name,
            pool,
        } = ev
        {
            self.by_account
                .entry(*account)
                .or_default()
                .insert(name.clone(), *pool);
            self.next = self.next.max(pool.0 + 1);
        }
    }
}

impl Pools {
    /// The owner id of `account`'s pool `name` (`default` is the account's
    /// own id), or `None` if the account never put a key in a pool of that name.
    pub fn pool_id(&self, account: AccountId, name: &str) -> Option<AccountId> {
        if name == DEFAULT_POOL {
            return Some(account);
        }
        self.names
            .read()
            .by_account
            .get(&account)
            .and_then(|m| m.get(name).copied())
    }

    /// The owner id of `account`'s pool `name`, naming it first (a `Named`
    /// event) if it is new.
    pub fn bind(
        &self,
        account: AccountId,
        name: &str,
        emit: &mut dyn FnMut(&PoolEvent),
    ) -> AccountId {
        if let Some(id) = self.pool_id(account, name) {
            return id;
        }
        let mut names = self.names.write();
        if let Some(&id) = names.by_account.get(&account).and_then(|m| m.get(name)) {
            return id;
        }
        let ev = PoolEvent::Named {
            account,
            name: name.to_owned(),
            pool: AccountId(names.next),
        };
        names.apply(&ev);
        emit(&ev);
        AccountId(names.next - 1)
    }

    /// `account`'s pools that hold at least one key, by name, with their counts.
    pub fn pools_of(&self, account: AccountId) -> Vec<(String, Stats)> {
        let mut named: Vec<(String, AccountId)> = vec![(DEFAULT_POOL.to_owned(), account)];
        if let Some(m) = self.names.read().by_account.get(&account) {
            named.extend(m.iter().map(|(n, &id)| (n.clone(), id)));
        }
        named.sort();
        named
            .into_iter()
            .map(|(name, id)| (name, self.stats(id)))
            .filter(|(_, s)| s.total > 0)
            .collect()
    }
}
