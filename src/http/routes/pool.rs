//! The key pool routes (seed 002): `/keys`, `/keys/{key_id}`, `/keepalive/{key_id}`.

use hyper::StatusCode;
use serde_json::json;
use uuid::Uuid;

use super::super::auth::Need;
use super::super::response::{json, message, ApiError, Reply};
use super::super::{Ctx, Http};
use crate::clock::rfc3339;
use crate::event::EventRef;
use crate::pool::PoolError;

/// The one mapping of pool errors to answers.
fn pool_error(e: PoolError) -> ApiError {
    match e {
        PoolError::NoAvailableKeys => ApiError::not_found("No available keys."),
        PoolError::NotFound => ApiError::not_found("Key not found."),
        PoolError::NotBlocked => ApiError::not_found("Key not found or not blocked."),
        PoolError::LeaseMismatch => ApiError::conflict(
            "The key is no longer held under that lease_id; it was released or checked out again.",
        ),
    }
}

/// A key id from the path: anything that is not a UUID names no key.
fn key_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::not_found("Key not found."))
}

/// The optional `?lease_id=` of release and delete.
fn lease(ctx: &Ctx) -> Result<Option<Uuid>, ApiError> {
    match ctx.query("lease_id") {
        None => Ok(None),
        Some(s) => Uuid::parse_str(&s).map(Some).map_err(|_| {
            ApiError::bad_request("Invalid query parameter `lease_id`: expected a UUID.")
        }),
    }
}

/// `POST /keys`.
pub async fn create(http: &Http, ctx: &mut Ctx) -> Reply {
    let caller = http.authenticate(ctx, Need::Pool)?;
    let app = &http.app;
    let now = app.now();
    let created = app
        .write(|st, rec| {
            st.pools
                .create(caller.account, now, &mut |e| rec.record(EventRef::Pool(e)))
        })
        .await?;
    Ok(json(
        StatusCode::CREATED,
        &json!({"key_id": created.key_id, "expires_at": rfc3339(created.expires_at)}),
    ))
}

/// `GET /keys`: a random free key, now blocked under a new lease.
pub async fn checkout(http: &Http, ctx: &mut Ctx) -> Reply {
    let caller = http.authenticate(ctx, Need::Pool)?;
    let app = &http.app;
    let now = app.now();
    let c = app
        .write(|st, rec| {
            st.pools
                .checkout(caller.account, now, &mut |e| rec.record(EventRef::Pool(e)))
        })
        .await?
        .map_err(pool_error)?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "key_id": c.key_id,
            "lease_id": c.lease_id,
            "blocked_until": rfc3339(c.blocked_until),
            "expires_at": rfc3339(c.expires_at),
        }),
    ))
}

/// `GET /keys/{key_id}`.
pub fn get(http: &Http, ctx: &mut Ctx, raw: &str) -> Reply {
    let caller = http.authenticate(ctx, Need::Pool)?;
    let id = key_id(raw)?;
    let info = http
        .app
        .state()
        .pools
        .get(caller.account, id, http.app.now())
        .map_err(pool_error)?;
    let blocked = info.blocked.as_ref();
    Ok(json(
        StatusCode::OK,
        &json!({
            "key_id": info.key_id,
            "isBlocked": blocked.is_some(),
            "blockedAt": blocked.map(|b| rfc3339(b.blocked_at)),
            "createdAt": rfc3339(info.created_at),
            "expiresAt": rfc3339(info.expires_at),
            "blockedUntil": blocked.map(|b| rfc3339(b.blocked_until)),
        }),
    ))
}

/// `PUT /keys/{key_id}[?lease_id=]`: release.
pub async fn release(http: &Http, ctx: &mut Ctx, raw: &str) -> Reply {
    let caller = http.authenticate(ctx, Need::Pool)?;
    let id = key_id(raw).map_err(|_| pool_error(PoolError::NotBlocked))?;
    let lease = lease(ctx)?;
    let app = &http.app;
    let now = app.now();
    app.write(|st, rec| {
        st.pools.release(caller.account, id, lease, now, &mut |e| {
            rec.record(EventRef::Pool(e))
        })
    })
    .await?
    .map_err(|e| match e {
        PoolError::NotFound => pool_error(PoolError::NotBlocked),
        e => pool_error(e),
    })?;
    message(StatusCode::OK, "Key unblocked.")
}

/// `DELETE /keys/{key_id}[?lease_id=]`.
pub async fn delete(http: &Http, ctx: &mut Ctx, raw: &str) -> Reply {
    let caller = http.authenticate(ctx, Need::Pool)?;
    let id = key_id(raw)?;
    let lease = lease(ctx)?;
    let app = &http.app;
    let now = app.now();
    app.write(|st, rec| {
        st.pools.delete(caller.account, id, lease, now, &mut |e| {
            rec.record(EventRef::Pool(e))
        })
    })
    .await?
    .map_err(pool_error)?;
    message(StatusCode::OK, "Key deleted.")
}

/// `PUT /keepalive/{key_id}`.
pub async fn keepalive(http: &Http, ctx: &mut Ctx, raw: &str) -> Reply {
    let caller = http.authenticate(ctx, Need::Pool)?;
    let id = key_id(raw)?;
    let app = &http.app;
    let now = app.now();
    let expires_at = app
        .write(|st, rec| {
            st.pools.keepalive(caller.account, id, now, &mut |e| {
                rec.record(EventRef::Pool(e))
            })
        })
        .await?
        .map_err(pool_error)?;
    Ok(json(
        StatusCode::OK,
        &json!({"message": "Key kept alive.", "expires_at": rfc3339(expires_at)}),
    ))
}
