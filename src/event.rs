//! Every state change is a typed [`Event`].
//!
//! A domain operation decides what changes, builds the event, applies it to its
//! own memory with the same `apply` that recovery uses, and hands the event to an
//! emitter while it still holds the lock that ordered the change. The emitter
//! (see `app.rs`) appends it to the write-ahead log; the response waits until the
//! log says the record is durable. Recovery replays the log through the same
//! `apply` functions: there is no second code path.
//!
//! # The idempotence rule
//!
//! Snapshots are *fuzzy*: they copy one shard or map at a time while requests go
//! on, so a snapshot that covers log position `L` may also contain some effects of
//! events after `L`. Replay then applies those events again. Every event must
//! therefore *set* state rather than *adjust* it: applying an event twice, or
//! applying a suffix of an entity's events to a state that already includes some
//! of them, gives the same state as applying each once. ("usage_count = 12", not
//! "usage_count += 1"; "key K is blocked under lease L until T", not "block a
//! random key".) Changes that must happen together (a purchase settling and the
//! balance it takes) are one event.

use std::cell::Cell;

use serde::{Deserialize, Deserializer, Serialize};

use crate::{accounts, apikeys, idempotency, pool, purchase};

/// One record of the write-ahead log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    /// A change to a key pool.
    Pool(pool::PoolEvent),
    /// A change to accounts or sessions.
    Account(accounts::AccountEvent),
    /// A change to API keys or their usage.
    ApiKey(apikeys::ApiKeyEvent),
    /// A change to purchases or PINs.
    Purchase(purchase::PurchaseEvent),
    /// Changes that must be applied together or not at all (a purchase settling
    /// and the balance it takes): one record, so a crash cannot split them.
    #[serde(deserialize_with = "bounded_batch")]
    Batch(Vec<Event>),
    /// A kept answer for `Idempotency-Key` retries (second round; after the
    /// first round's variants so that older logs still decode).
    Idempotency(idempotency::IdemEvent),
    /// API keys' per-day, per-route analytics (third round, issue 10 item 5).
    Analytics(apikeys::AnalyticsEvent),
    /// A change to credit top-ups (a settling one is batched with the new balance).
    TopUp(purchase::TopUpEvent),
}

/// A borrowed [`Event`], so that the hot path can log an event without cloning
/// it. It encodes to exactly the same bytes as the owned form (serde serialises
/// `&T` as `T`); the test below holds that true.
#[derive(Debug, Clone, Copy, Serialize)]
pub enum EventRef<'a> {
    Pool(&'a pool::PoolEvent),
    Account(&'a accounts::AccountEvent),
    ApiKey(&'a apikeys::ApiKeyEvent),
    Purchase(&'a purchase::PurchaseEvent),
    Batch(&'a [Event]),
    Idempotency(&'a idempotency::IdemEvent),
    Analytics(&'a apikeys::AnalyticsEvent),
    TopUp(&'a purchase::TopUpEvent),
}

impl<'a> From<&'a Event> for EventRef<'a> {
    fn from(e: &'a Event) -> Self {
        match e {
            Event::Pool(e) => EventRef::Pool(e),
            Event::Account(e) => EventRef::Account(e),
            Event::ApiKey(e) => EventRef::ApiKey(e),
            Event::Purchase(e) => EventRef::Purchase(e),
            Event::Batch(e) => EventRef::Batch(e),
            Event::Idempotency(e) => EventRef::Idempotency(e),
            Event::Analytics(e) => EventRef::Analytics(e),
            Event::TopUp(e) => EventRef::TopUp(e),
        }
    }
}

impl EventRef<'_> {
    /// The owned event.
    pub fn to_owned(self) -> Event {
        match self {
            EventRef::Pool(e) => Event::Pool(e.clone()),
            EventRef::Account(e) => Event::Account(e.clone()),
            EventRef::ApiKey(e) => Event::ApiKey(e.clone()),
            EventRef::Purchase(e) => Event::Purchase(e.clone()),
            EventRef::Batch(e) => Event::Batch(e.to_vec()),
            EventRef::Idempotency(e) => Event::Idempotency(e.clone()),
            EventRef::Analytics(e) => Event::Analytics(e.clone()),
            EventRef::TopUp(e) => Event::TopUp(e.clone()),
        }
    }
}

/// How deep batches may nest in a decoded record. The server writes batches of
/// plain events (depth 1); a damaged or hostile record of nested batches (two
/// bytes a level) would otherwise overflow the stack while decoding.
pub const MAX_BATCH_DEPTH: usize = 8;

thread_local! {
    static BATCH_DEPTH: Cell<usize> = const { Cell::new(0) };
}

/// Decodes a batch's events, refusing batches nested deeper than [`MAX_BATCH_DEPTH`].
fn bounded_batch<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Event>, D::Error> {
    struct Level;
    impl Drop for Level {
        fn drop(&mut self) {
            BATCH_DEPTH.with(|c| c.set(c.get() - 1));
        }
    }
    let depth = BATCH_DEPTH.with(|c| {
        c.set(c.get() + 1);
        c.get()
    });
    let _level = Level;
    if depth > MAX_BATCH_DEPTH {
        return Err(serde::de::Error::custom(format!(
            "batches nested deeper than {MAX_BATCH_DEPTH}"
        )));
    }
    Vec::<Event>::deserialize(d)
}
