//! The background tasks: the reaper (key expiry and lease release on time), the
//! settler (purchases and credit top-ups leave `waiting` after `--payment-delay`), the usage flusher
//! (API-key usage, per-route analytics and session uses, batched into log
//! records every half second) and the snapshotter. All stop when [`Tasks::stop`] is called.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::App;
use crate::event::{Event, EventRef};

/// The longest the reaper sleeps even when no deadline is near: a safety net
/// for a missed wake-up, well inside the contract's "within a second".
const REAPER_MAX_SLEEP: Duration = Duration::from_millis(250);
/// How often usage counts are written to the log.
const FLUSH_EVERY: Duration = Duration::from_millis(500);
/// Every how many flushes the analytics of deleted keys are forgotten (~1 min).
const ANALYTICS_SWEEP_EVERY: u32 = 120;

/// Handles of the running background tasks.
pub struct Tasks {
    stop: watch::Sender<bool>,
    handles: Vec<JoinHandle<()>>,
}

impl Tasks {
    /// Starts every background task of `app`.
    pub fn start(app: &Arc<App>) -> Tasks {
        let (stop, rx) = watch::channel(false);
        let handles = vec![
            tokio::spawn(reaper(app.clone(), rx.clone())),
            tokio::spawn(settler(app.clone(), rx.clone())),
            tokio::spawn(flusher(app.clone(), rx.clone())),
            tokio::spawn(snapshotter(app.clone(), rx.clone())),
            tokio::spawn(fallback(app.clone(), rx)),
        ];
        Tasks { stop, handles }
    }

    /// Stops the tasks and waits for them, then flushes usage one last time.
    pub async fn stop(self, app: &Arc<App>) {
        let _ = self.stop.send(true);
        for h in self.handles {
            let _ = h.await;
        }
        flush_once(app, true).await;
    }
}

/// Sleeps for `d` unless told to stop first; returns whether to stop.
pub(super) async fn sleep_or_stop(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => false,
        _ = stop.changed() => true,
    }
}

/// Deletes expired keys and releases lapsed leases, sleeping until the earliest
/// deadline and woken early when an earlier one appears (mini-redis's purge task).
async fn reaper(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    loop {
        let now = app.now();
        let reaped = app
            .write(|st, rec| st.pools.reap(now, &mut |e| rec.record(EventRef::Pool(e))))
            .await;
        match reaped {
            Ok(r) if r.expired + r.released > 0 => {
                tracing::debug!(expired = r.expired, released = r.released, "reaped")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "reaper could not log; will retry"),
        }
        // `plan_wake` publishes the time we will wake; a deadline added after
        // it that is earlier calls the waker, so none is missed.
        let next = app.state().pools.plan_wake().unwrap_or(u64::MAX);
        let wait = Duration::from_millis(next.saturating_sub(app.now())).min(REAPER_MAX_SLEEP);
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = app.reaper_wake.notified() => {}
            _ = stop.changed() => return,
        }
    }
}

/// Settles purchases whose payment delay has passed: the price is taken from
/// the balance, or the purchase fails when the balance no longer covers it.
/// One task does all settling, so balances never race.
async fn settler(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    loop {
        let now = app.now();
        for due in app.state().purchases.due(now) {
            let balance = app.state().accounts.balance(due.account).unwrap_or(0);
            let ok = balance >= due.price;
            let Some(settled) = app
                .state()
                .purchases
                .settle_event(&due.purchase_id, ok, now)
            else {
                continue;
            };
            let mut events = vec![Event::Purchase(settled)];
            if ok {
                events.push(Event::Account(
                    crate::accounts::Accounts::set_balance_event(due.account, balance - due.price),
                ));
            }
            let result = app
                .write(|st, rec| {
                    events.iter().for_each(|e| st.apply(e));
                    rec.record(EventRef::Batch(&events));
                })
                .await;
            match result {
                Ok(()) => tracing::info!(purchase = %due.purchase_id, ok, "purchase settled"),
                Err(e) => tracing::warn!(error = %e, "cannot settle a purchase now; will retry"),
            }
        }
        for due in app.state().topups.due(now) {
            settle_topup(&app, &due, now).await;
        }
        let next = [
            app.state().purchases.next_settlement(),
            app.state().topups.next_settlement(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(u64::MAX);
        let wait =
            Duration::from_millis(next.saturating_sub(app.now())).min(Duration::from_secs(1));
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = app.settle_wake.notified() => {}
            _ = stop.changed() => return,
        }
    }
}

/// Completes a waiting top-up: `Settled` and the account's new absolute
/// balance in one record. The balance change is applied after the top-up
/// book's lock is released (no two domain locks at once); only this task
/// changes balances at settlement, so nothing moves it in between.
async fn settle_topup(app: &Arc<App>, due: &crate::purchase::TopUp, now: crate::clock::Millis) {
    let result = app
        .write(|st, rec| {
            let balance = st.accounts.balance(due.account);
            let mut raised = None;
            st.topups.settle(&due.topup_id, now, &mut |ev| {
                let mut events = vec![Event::TopUp(ev.clone())];
                if let Some(b) = balance {
                    let ev = crate::accounts::Accounts::set_balance_event(
                        due.account,
                        b.saturating_add(due.amount),
                    );
                    events.push(Event::Account(ev.clone()));
                    raised = Some(ev);
                }
                rec.record(EventRef::Batch(&events));
            });
            if let Some(ev) = raised {
                st.accounts.apply(&ev);
            }
        })
        .await;
    match result {
        Ok(()) => tracing::info!(topup = %due.topup_id, amount = due.amount, "top-up completed"),
        Err(e) => tracing::warn!(error = %e, "cannot complete a top-up now; will retry"),
    }
}

/// Writes usage counts and session uses once per [`FLUSH_EVERY`].
async fn flusher(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    for n in 1u32.. {
        if sleep_or_stop(FLUSH_EVERY, &mut stop).await {
            return;
        }
        flush_once(&app, n % ANALYTICS_SWEEP_EVERY == 0).await;
    }
}

/// One flush; `sweep` also forgets the analytics of deleted keys.
async fn flush_once(app: &Arc<App>, sweep: bool) {
    let now = app.now();
    let result = app
        .write(|st, rec| {
            st.apikeys
                .flush_usage(&mut |e| rec.record(EventRef::ApiKey(e)));
            st.accounts
                .flush_session_uses(&mut |e| rec.record(EventRef::Account(e)));
            st.accounts
                .purge_sessions(now, &mut |e| rec.record(EventRef::Account(e)));
            st.idempotency.purge(now);
            let exists = |id| st.apikeys.owner_of(id).is_some();
            st.analytics.flush(
                sweep.then_some(&exists as &dyn Fn(uuid::Uuid) -> bool),
                &mut |e| rec.record(EventRef::Analytics(e)),
            );
        })
        .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot write usage counts now; will retry");
    }
}

/// Falls back to what is durable whenever the log fails (see `App::fall_back`).
async fn fallback(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = app.log.failed() => {}
            _ = stop.changed() => return,
        }
        app.fall_back(&mut stop).await;
    }
}

/// Writes a snapshot every `--snapshot-interval`.
async fn snapshotter(app: Arc<App>, mut stop: watch::Receiver<bool>) {
    let every = app.config.snapshot_interval.max(Duration::from_millis(100));
    loop {
        if sleep_or_stop(every, &mut stop).await {
            return;
        }
        let started = std::time::Instant::now();
        match app.snapshot().await {
            Ok(lsn) => tracing::info!(
                covers = lsn,
                took_ms = started.elapsed().as_millis() as u64,
                "snapshot written"
            ),
            Err(e) => tracing::error!(error = %e, "snapshot failed"),
        }
    }
}
