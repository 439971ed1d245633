//! The key pool routes: seed 002's `/keys`, `/keys/{key_id}`,
//! `/keepalive/{key_id}`, `/stats`, and the second round's named pools
//! (`/pools/{pool}/…`, `GET /pools`, `DELETE /pools/{pool}`), long-poll and
//! batch checkout, lease extension and release with a cooldown. The plain
//! routes are the pool named `default` (`pool: None` below).

use std::borrow::Cow;
use std::cell::RefCell;

use hyper::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use super::super::auth::{Caller, Need};
use super::super::idem::{self, Begun};
use super::super::response::{bytes_response, json, message, ApiError, Reply};
use super::super::{Ctx, Http};
use super::pool_params::{self as params, CreateBody};
use crate::app::recovery::seal_aad;
use crate::app::waiters::{WaitRefused, Woken};
use crate::clock::rfc3339;
use crate::event::{Event, EventRef};
use crate::ids::AccountId;
use crate::pool::{Checkout, KeyExtras, PoolError, PoolEvent, DEFAULT_POOL};

/// The one mapping of pool errors to answers.
fn pool_error(e: PoolError) -> ApiError {
    match e {
        PoolError::NoAvailableKeys => ApiError::not_found("No available keys."),
        PoolError::NotFound => ApiError::not_found("Key not found."),
        PoolError::NotBlocked => ApiError::not_found("Key not found or not blocked."),
        PoolError::NoSuchPool => ApiError::not_found("Pool not found."),
        PoolError::LeaseMismatch => ApiError::conflict(
            "The key is no longer held under that lease_id; it was released or checked out again.",
        ),
    }
}

/// The mapping for routes about a held key (release, extend): a missing key
/// is "not found or not blocked", as seed 002 answers a release.
fn held_error(e: PoolError) -> ApiError {
    match e {
        PoolError::NotFound => pool_error(PoolError::NotBlocked),
        e => pool_error(e),
    }
}

/// A key id from the path: anything that is not a UUID names no key.
fn key_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found("Key not found."))
}

/// The caller and the name of the pool a request is about.
fn target(
    http: &Http,
    ctx: &Ctx,
    pool: Option<&str>,
) -> Result<(Caller, Cow<'static, str>), ApiError> {
    // The name is checked first: a bad name is the same 400 for everyone.
    let name = match pool {
        None => Cow::Borrowed(DEFAULT_POOL),
        Some(raw) => Cow::Owned(params::pool_name(raw)?),
    };
    let caller = http.authenticate(ctx, Need::Pool)?;
    Ok((caller, name))
}

/// The owner id of an existing pool, or `missing` when the account has no
/// pool of that name.
fn existing(
    http: &Http,
    account: AccountId,
    name: &str,
    missing: PoolError,
) -> Result<AccountId, ApiError> {
    http.app
        .state()
        .pools
        .pool_id(account, name)
        .ok_or_else(|| pool_error(missing))
}

/// `POST /keys`, `POST /pools/{pool}/keys`, with an optional body
/// `{"value", "metadata", "ttl"}`.
pub async fn create(http: &Http, ctx: &mut Ctx, pool: Option<&str>) -> Reply {
    let (caller, name) = target(http, ctx, pool)?;
    let body: CreateBody = ctx.json().await?;
    let (value, metadata, ttl) = body.check()?;
    let fresh = match idem::begin(http, ctx, caller.account).await? {
        Begun::Replay(first) => return Ok(first),
        Begun::Fresh(f) => Some(f),
        Begun::Plain => None,
    };
    let app = &http.app;
    let key_id = crate::pool::Pools::new_key_id();
    let extras = KeyExtras {
        ttl,
        value: value.map(|v| app.master_key.seal(&seal_aad(key_id, true), v.as_bytes())),
        metadata: metadata.map(|m| app.master_key.seal(&seal_aad(key_id, false), &m)),
    };
    let now = app.now();
    let created = app
        .write(|st, rec| {
            let owner = st.pools.bind(caller.account, &name, &mut |e| {
                rec.record(EventRef::Pool(e))
            });
            let mut emit = |e: &PoolEvent| match &fresh {
                None => rec.record(EventRef::Pool(e)),
                Some(f) => {
                    // The creation and its kept answer: one record.
                    let expires_at = now.saturating_add(ttl.unwrap_or(app.key_ttl()));
                    let body = created_body(key_id, expires_at);
                    let kept = f.keep(st, &app.master_key, StatusCode::CREATED, &body, now);
                    rec.record(EventRef::Batch(&[Event::Pool(e.clone()), kept]));
                }
            };
            st.pools.create_key(owner, key_id, extras, now, &mut emit)
        })
        .await?;
    Ok(bytes_response(
        StatusCode::CREATED,
        "application/json",
        created_body(created.key_id, created.expires_at).into(),
    ))
}

/// The answer to a creation.
fn created_body(key_id: Uuid, expires_at: crate::clock::Millis) -> Vec<u8> {
    serde_json::to_vec(&json!({"key_id": key_id, "expires_at": rfc3339(expires_at)}))
        .expect("a JSON value encodes")
}

/// The answer to a checkout: one key, or `{"keys": [...]}` when a `count` was asked.
fn checkout_body(http: &Http, keys: &[Checkout], batch: bool) -> Result<Vec<u8>, ApiError> {
    let key = &http.app.master_key;
    let body = if batch {
        let items: Result<Vec<Value>, ApiError> =
            keys.iter().map(|c| params::checkout_json(key, c)).collect();
        json!({ "keys": items? })
    } else {
        params::checkout_json(key, &keys[0])?
    };
    Ok(serde_json::to_vec(&body).expect("a JSON value encodes"))
}

/// `GET /keys[?count=&wait=&block=]`: random free keys, each now blocked
/// under a lease of its own; with `wait`, a long poll.
pub async fn checkout(http: &Http, ctx: &mut Ctx, pool: Option<&str>) -> Reply {
    let (caller, name) = target(http, ctx, pool)?;
    let count = params::count(ctx)?;
    let wait = params::duration(ctx, "wait", 0, params::MAX_WAIT)?.unwrap_or(0);
    let max_block = crate::clock::millis(http.app.config.max_block_ttl);
    let block =
        params::duration(ctx, "block", 1000, max_block)?.unwrap_or(http.app.pools_block_ttl());
    let app = &http.app;
    let owner = if wait > 0 {
        // A waiter needs the pool's id before the pool's first key exists.
        app.write(|st, rec| {
            st.pools.bind(caller.account, &name, &mut |e| {
                rec.record(EventRef::Pool(e))
            })
        })
        .await?
    } else {
        match app.state().pools.pool_id(caller.account, &name) {
            Some(id) => id,
            None => return Err(pool_error(PoolError::NoAvailableKeys)),
        }
    };
    let fresh = match idem::begin(http, ctx, caller.account).await? {
        Begun::Replay(first) => return Ok(first),
        Begun::Fresh(f) => Some(f),
        Begun::Plain => None,
    };
    let want = count.unwrap_or(1);
    // The answer, when it was built inside the change to be kept with it.
    let kept_body: parking_lot::Mutex<Option<Result<Vec<u8>, ApiError>>> =
        parking_lot::Mutex::new(None);
    let attempt = || async {
        let now = app.now();
        app.write(|st, rec| {
            let rec = RefCell::new(rec);
            st.pools.checkout_batch(
                owner,
                want,
                block,
                now,
                &mut |e| rec.borrow_mut().record(EventRef::Pool(e)),
                &mut |evs, keys| {
                    let mut rec = rec.borrow_mut();
                    let mut kept = None;
                    if let Some(f) = &fresh {
                        let body = checkout_body(http, keys, count.is_some());
                        if let Ok(b) = &body {
                            kept = Some(f.keep(st, &app.master_key, StatusCode::OK, b, now));
                        }
                        *kept_body.lock() = Some(body);
                    }
                    match (evs, kept) {
                        ([one], None) => rec.record(EventRef::Pool(one)),
                        (evs, kept) => {
                            // One record for the batch and its kept answer:
                            // all of it or none.
                            let mut batch: Vec<Event> =
                                evs.iter().cloned().map(Event::Pool).collect();
                            batch.extend(kept);
                            rec.record(EventRef::Batch(&batch));
                        }
                    }
                },
            )
        })
        .await
    };
    let got = if wait == 0 {
        attempt().await?
    } else {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(wait);
        let waiter = app
            .waiters
            .register(caller.account, owner, app.config.max_waiters)
            .map_err(|e| match e {
                WaitRefused::TooMany => ApiError {
                    retry_after: Some(1),
                    ..ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "Too many checkouts of this account are waiting already; wait with fewer at once.",
                    )
                },
                WaitRefused::Closed => shutting_down(),
            })?;
        loop {
            let armed = waiter.arm();
            match attempt().await? {
                Err(PoolError::NoAvailableKeys) => {}
                done => break done,
            }
            // The wait does not count toward `--max-in-flight`.
            let waiting = crate::http::Waiting::begin(http);
            let woken = armed.wait(deadline).await;
            drop(waiting);
            match woken {
                Woken::Freed => continue,
                Woken::TimedOut => break Err(PoolError::NoAvailableKeys),
                Woken::Closed => return Err(shutting_down()),
            }
        }
    };
    let keys = got.map_err(pool_error)?;
    let body = match kept_body.into_inner() {
        Some(body) => body?,
        None => checkout_body(http, &keys, count.is_some())?,
    };
    Ok(bytes_response(
        StatusCode::OK,
        "application/json",
        body.into(),
    ))
}

/// The answer to a long poll cut short by shutdown.
fn shutting_down() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "The server is shutting down; try again shortly.",
    )
}

/// `GET /keys/{key_id}`.
pub fn get(http: &Http, ctx: &mut Ctx, pool: Option<&str>, raw: &str) -> Reply {
    let (caller, name) = target(http, ctx, pool)?;
    let id = key_id(raw)?;
    let owner = existing(http, caller.account, &name, PoolError::NotFound)?;
    let info = http
        .app
        .state()
        .pools
        .get(owner, id, http.app.now())
        .map_err(pool_error)?;
    let blocked = info.blocked.as_ref();
    let key = &http.app.master_key;
    let value = match &info.value {
        Some(s) => params::open_value(key, id, s)?,
        None => Value::Null,
    };
    let metadata = match &info.metadata {
        Some(s) => params::open_metadata(key, id, s)?,
        None => Value::Null,
    };
    Ok(json(
        StatusCode::OK,
        &json!({
            "key_id": info.key_id,
            "isBlocked": blocked.is_some(),
            "blockedAt": blocked.map(|b| rfc3339(b.blocked_at)),
            "createdAt": rfc3339(info.created_at),
            "expiresAt": rfc3339(info.expires_at),
            "blockedUntil": blocked.map(|b| rfc3339(b.blocked_until)),
            "coolingUntil": info.cooling_until.map(rfc3339),
            "value": value,
            "metadata": metadata,
        }),
    ))
}

/// `PUT /keys/{key_id}[?lease_id=&cooldown=]`: release, at once or after a cooldown.
pub async fn release(http: &Http, ctx: &mut Ctx, pool: Option<&str>, raw: &str) -> Reply {
    let (caller, name) = target(http, ctx, pool)?;
    let lease = params::lease(ctx)?;
    let cooldown = params::duration(ctx, "cooldown", 0, params::MAX_COOLDOWN)?.unwrap_or(0);
    let id = key_id(raw).map_err(|_| pool_error(PoolError::NotBlocked))?;
    let owner = existing(http, caller.account, &name, PoolError::NotBlocked)?;
    let app = &http.app;
    let now = app.now();
    app.write(|st, rec| {
        st.pools
            .release_cooling(owner, id, lease, cooldown, now, &mut |e| {
                rec.record(EventRef::Pool(e))
            })
    })
    .await?
    .map_err(held_error)?;
    message(StatusCode::OK, "Key unblocked.")
}

/// `PUT /keys/{key_id}/lease?lease_id=L[&block=]`: the lease now ends
/// `block` (default `--block-ttl`) from now.
pub async fn extend(http: &Http, ctx: &mut Ctx, pool: Option<&str>, raw: &str) -> Reply {
    let (caller, name) = target(http, ctx, pool)?;
    let lease = params::lease(ctx)?.ok_or_else(|| {
        ApiError::bad_request("Missing query parameter `lease_id`: the lease to extend.")
    })?;
    let max_block = crate::clock::millis(http.app.config.max_block_ttl);
    let block =
        params::duration(ctx, "block", 1000, max_block)?.unwrap_or(http.app.pools_block_ttl());
    let id = key_id(raw).map_err(|_| pool_error(PoolError::NotBlocked))?;
    let owner = existing(http, caller.account, &name, PoolError::NotBlocked)?;
    let app = &http.app;
    let now = app.now();
    let ext = app
        .write(|st, rec| {
            st.pools.extend(owner, id, lease, block, now, &mut |e| {
                rec.record(EventRef::Pool(e))
            })
        })
        .await?
        .map_err(held_error)?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "key_id": ext.key_id,
            "lease_id": ext.lease_id,
            "blocked_until": rfc3339(ext.blocked_until),
        }),
    ))
}

/// `DELETE /keys/{key_id}[?lease_id=]`.
pub async fn delete(http: &Http, ctx: &mut Ctx, pool: Option<&str>, raw: &str) -> Reply {
    let (caller, name) = target(http, ctx, pool)?;
    let id = key_id(raw)?;
    let lease = params::lease(ctx)?;
    let owner = existing(http, caller.account, &name, PoolError::NotFound)?;
    let app = &http.app;
    let now = app.now();
    app.write(|st, rec| {
        st.pools.delete(owner, id, lease, now, &mut |e| {
            rec.record(EventRef::Pool(e))
        })
    })
    .await?
    .map_err(pool_error)?;
    message(StatusCode::OK, "Key deleted.")
}

/// `PUT /keepalive/{key_id}`: the key's lifetime (its own `ttl`, else
/// `--key-ttl`) starts again.
pub async fn keepalive(http: &Http, ctx: &mut Ctx, pool: Option<&str>, raw: &str) -> Reply {
    let (caller, name) = target(http, ctx, pool)?;
    let id = key_id(raw)?;
    let owner = existing(http, caller.account, &name, PoolError::NotFound)?;
    let app = &http.app;
    let now = app.now();
    let expires_at = app
        .write(|st, rec| {
            st.pools
                .keepalive(owner, id, now, &mut |e| rec.record(EventRef::Pool(e)))
        })
        .await?
        .map_err(pool_error)?;
    Ok(json(
        StatusCode::OK,
        &json!({"message": "Key kept alive.", "expires_at": rfc3339(expires_at)}),
    ))
}

/// `GET /stats`, `GET /pools/{pool}/stats`: the pool's counts (all zero for
/// a pool that holds no key).
pub fn stats(http: &Http, ctx: &Ctx, pool: Option<&str>) -> Reply {
    let (caller, name) = target(http, ctx, pool)?;
    let pools = &http.app.state().pools;
    let stats = pools
        .pool_id(caller.account, &name)
        .map(|id| pools.stats(id))
        .unwrap_or_default();
    Ok(json(StatusCode::OK, &stats))
}

/// `GET /pools`: the caller's pools that hold keys.
pub fn list(http: &Http, ctx: &Ctx) -> Reply {
    let caller = http.authenticate(ctx, Need::Pool)?;
    let pools: Vec<Value> = http
        .app
        .state()
        .pools
        .pools_of(caller.account)
        .into_iter()
        .map(|(name, s)| {
            json!({
                "name": name,
                "total": s.total,
                "available": s.available,
                "blocked": s.blocked,
                "cooling": s.cooling,
            })
        })
        .collect();
    Ok(json(StatusCode::OK, &json!({ "pools": pools })))
}

/// `DELETE /pools/{pool}`: every key of the pool goes.
pub async fn drop_pool(http: &Http, ctx: &mut Ctx, raw: &str) -> Reply {
    let (caller, name) = target(http, ctx, Some(raw))?;
    let owner = existing(http, caller.account, &name, PoolError::NoSuchPool)?;
    let removed = http
        .app
        .write(|st, rec| {
            st.pools
                .purge(owner, &mut |e| rec.record(EventRef::Pool(e)))
        })
        .await?
        .map_err(pool_error)?;
    tracing::info!(pool = %name, removed, "pool deleted");
    message(StatusCode::OK, "Pool deleted.")
}
