//! Long-poll checkouts (`GET /keys?wait=…`): the requests waiting for a key of
//! a pool to become free, and the wake-ups that end their wait.
//!
//! A waiter holds no lock and spins no loop: it registers here (one
//! `tokio::sync::Notify` per pool with waiters, whose queue is first come
//! first served), tries a checkout, and if none is free sleeps on the pool's
//! `Notify` until a key of that pool is created, released, cooled down or has
//! its lease lapse ([`Waiters::freed`], called by `App::write` for every change
//! that frees a key), or until its time is up, its connection closes (the
//! request future is dropped, and with it the registration) or the server
//! shuts down ([`Waiters::close`]). Registering *before* the checkout attempt
//! means a key freed in between leaves a permit in the `Notify`, so no wake-up
//! is lost.
//!
//! Cost when nobody waits: one atomic load per freed key.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::ids::AccountId;

/// Every waiting checkout, by pool.
#[derive(Default)]
pub struct Waiters {
    /// How many waiters are registered over all pools (read without the lock
    /// on every freed key).
    total: AtomicUsize,
    /// Per pool (owner id) its wake-up queue; per account its waiter count.
    /// Held only to add or remove a waiter or to find a pool's queue.
    inner: Mutex<Inner>,
    /// Set once at shutdown; waiters answer 503.
    closed: AtomicBool,
    /// Wakes every waiter at shutdown.
    closing: Notify,
}

#[derive(Default)]
struct Inner {
    pools: HashMap<AccountId, (Arc<Notify>, usize)>,
    accounts: HashMap<AccountId, usize>,
}

/// Why a checkout may not wait.
#[derive(Debug, PartialEq, Eq)]
pub enum WaitRefused {
    /// The account already has this many waiters (`--max-waiters`).
    TooMany,
    /// The server is shutting down.
    Closed,
}

/// One registered waiter; dropping it (the request ended, or its connection
/// closed and hyper dropped the request) unregisters it.
pub struct Waiter<'a> {
    waiters: &'a Waiters,
    account: AccountId,
    pool: AccountId,
    notify: Arc<Notify>,
}

impl Waiters {
    /// Registers a waiter of `account` for pool `pool`, at most `max` per account.
    pub fn register(
        &self,
        account: AccountId,
        pool: AccountId,
        max: usize,
    ) -> Result<Waiter<'_>, WaitRefused> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(WaitRefused::Closed);
        }
        let mut inner = self.inner.lock();
        let mine = inner.accounts.entry(account).or_default();
        if *mine >= max {
            return Err(WaitRefused::TooMany);
        }
        *mine += 1;
        let (notify, n) = inner
            .pools
            .entry(pool)
            .or_insert_with(|| (Arc::new(Notify::new()), 0));
        *n += 1;
        let notify = notify.clone();
        self.total.fetch_add(1, Ordering::SeqCst);
        Ok(Waiter {
            waiters: self,
            account,
            pool,
            notify,
        })
    }

    /// A key of `pool` became free: wakes its longest-waiting waiter.
    pub fn freed(&self, pool: AccountId) {
        if self.total.load(Ordering::SeqCst) == 0 {
            return;
        }
        let notify = self.inner.lock().pools.get(&pool).map(|(n, _)| n.clone());
        if let Some(n) = notify {
            n.notify_one();
        }
    }

    /// Shutdown: every waiter, now and later, is refused.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.closing.notify_waiters();
    }

    /// Waiters registered now (for `/metrics` and tests).
    pub fn len(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }

    /// Whether nobody waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How a wait ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Woken {
    /// A key of the pool may be free: try again.
    Freed,
    /// The time ran out.
    TimedOut,
    /// The server is shutting down.
    Closed,
}

impl Waiter<'_> {
    /// Arms a wake-up: from now on a key freed in the pool (or shutdown) ends
    /// the wait of the returned [`Armed`], even if it happens before that is
    /// awaited. Arm, then try a checkout, then wait on what was armed.
    pub fn arm(&self) -> Armed<'_> {
        let mut freed = Box::pin(self.notify.notified());
        let mut closing = Box::pin(self.waiters.closing.notified());
        freed.as_mut().enable();
        closing.as_mut().enable();
        Armed {
            freed,
            closing,
            closed: &self.waiters.closed,
        }
    }
}

/// A wake-up armed by [`Waiter::arm`].
pub struct Armed<'a> {
    freed: std::pin::Pin<Box<tokio::sync::futures::Notified<'a>>>,
    closing: std::pin::Pin<Box<tokio::sync::futures::Notified<'a>>>,
    closed: &'a AtomicBool,
}

impl Armed<'_> {
    /// Waits until a key of the pool may be free, `deadline` passes or the
    /// server shuts down.
    pub async fn wait(mut self, deadline: tokio::time::Instant) -> Woken {
        if self.closed.load(Ordering::SeqCst) {
            return Woken::Closed;
        }
        tokio::select! {
            () = &mut self.freed => Woken::Freed,
            () = &mut self.closing => Woken::Closed,
            () = tokio::time::sleep_until(deadline) => Woken::TimedOut,
        }
    }
}

impl Drop for Waiter<'_> {
    fn drop(&mut self) {
        let mut inner = self.waiters.inner.lock();
        if let Some(n) = inner.accounts.get_mut(&self.account) {
            *n -= 1;
            if *n == 0 {
                inner.accounts.remove(&self.account);
            }
        }
        if let Some((_, n)) = inner.pools.get_mut(&self.pool) {
            *n -= 1;
            if *n == 0 {
                inner.pools.remove(&self.pool);
            }
        }
        self.waiters.total.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const A: AccountId = AccountId(1);
    const P: AccountId = AccountId(1);

    #[tokio::test]
    async fn a_key_freed_between_arming_and_waiting_is_not_missed() {
        let w = Waiters::default();
        let me = w.register(A, P, 10).unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let armed = me.arm();
        // The key is freed while the checkout attempt runs.
        w.freed(P);
        assert_eq!(armed.wait(deadline).await, Woken::Freed);
    }

    #[tokio::test]
    async fn times_out_closes_and_counts() {
        let w = Waiters::default();
        let me = w.register(A, P, 2).unwrap();
        let _second = w.register(A, AccountId(7), 2).unwrap();
        assert_eq!(w.register(A, P, 2).err(), Some(WaitRefused::TooMany));
        assert_eq!(w.len(), 2);
        w.freed(AccountId(7));
        let soon = tokio::time::Instant::now() + Duration::from_millis(20);
        assert_eq!(me.arm().wait(soon).await, Woken::TimedOut);
        let later = tokio::time::Instant::now() + Duration::from_secs(5);
        let armed = me.arm();
        w.close();
        assert_eq!(armed.wait(later).await, Woken::Closed);
        drop(me);
        assert_eq!(w.len(), 1);
        assert_eq!(w.register(A, P, 2).err(), Some(WaitRefused::Closed));
    }
}
