//! The API-key platform's routes about one key of the caller's
//! (`/api/keys/{key_id}/disable`, `…/enable`, `…/credits`, `…/rotate`,
//! `…/analytics`) and `POST /api/keys/verify` for the account's own services.

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::super::auth::Need;
use super::super::response::{json, ApiError, Reply};
use super::super::{Ctx, Http};
use super::key_notes::KeyNotes;
use super::param;
use crate::apikeys::{valid_scope_name, ApiKeyError, CreditSpec, KeyStatus, ANALYTICS_DAYS};
use crate::clock::{day_string, rfc3339};
use crate::event::EventRef;

use super::keys::{key_error, meta_value};

/// The `{key_id}` of an `/api/keys/{key_id}/…` route: anything not a uuid
/// names no key.
fn path_key_id(raw: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(&param(raw)).map_err(|_| ApiError::not_found("API key not found."))
}

/// The mapping for routes about one key of the caller's (another
/// account's key is not found).
fn owned_key_error(e: ApiKeyError) -> ApiError {
    match e {
        ApiKeyError::NotFound => ApiError::not_found("API key not found."),
        e => key_error(e),
    }
}

/// `POST /api/keys/{key_id}/disable` and `…/enable`: another account's key,
/// or a key id that is not a uuid, is 404.
pub async fn set_disabled(http: &Http, ctx: &mut Ctx, key_id: &str, disabled: bool) -> Reply {
    let caller = http.authenticate(ctx, Need::Any)?;
    let key_id = path_key_id(key_id)?;
    let app = &http.app;
    let ip = ctx.peer.ip();
    app.write(|st, rec| {
        let notes = KeyNotes::new(st, ip, caller.account, http.app.now());
        st.apikeys
            .set_disabled(caller.account, key_id, disabled, &mut |e| {
                notes.record(st, rec, e)
            })
    })
    .await?
    .map_err(owned_key_error)?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "message": if disabled { "Key disabled." } else { "Key enabled." },
            "key_id": key_id,
            "disabled": disabled,
        }),
    ))
}

/// `PUT /api/keys/{key_id}/credits` `{"remaining", "refill"?}`: sets a key's
/// balance and refill (an unmetered key becomes metered). Another account's
/// key, or a key id that is not a uuid, is 404.
pub async fn set_credits(http: &Http, ctx: &mut Ctx, key_id: &str) -> Reply {
    let caller = http.authenticate(ctx, Need::Any)?;
    let key_id = path_key_id(key_id)?;
    let spec: CreditSpec = ctx.json().await?;
    let app = &http.app;
    let now = app.now();
    let credits = app
        .write(|st, rec| {
            st.apikeys
                .set_credits(caller.account, key_id, spec, now, &mut |e| {
                    rec.record(EventRef::ApiKey(e))
                })
        })
        .await?
        .map_err(owned_key_error)?;
    Ok(json(
        StatusCode::OK,
        &json!({
            "key_id": key_id,
            "credits_remaining": credits.remaining,
            "refill": credits.refill,
        }),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Rotate {
    #[serde(default)]
    grace_secs: Option<u64>,
}

/// `POST /api/keys/{key_id}/rotate` `{"grace_secs"?}` (an empty body is `{}`):
/// 201 with the replacement, shown once. Another account's key, or a key id
/// that is not a uuid, is 404; a rotated, revoked or expired key 409.
pub async fn rotate(http: &Http, ctx: &mut Ctx, key_id: &str) -> Reply {
    let caller = http.authenticate(ctx, Need::Any)?;
    let key_id = path_key_id(key_id)?;
    let body: Rotate = ctx.json().await?;
    let app = &http.app;
    let now = app.now();
    let grace = body.grace_secs.unwrap_or(86_400);
    let ip = ctx.peer.ip();
    let (new, until) = app
        .write(|st, rec| {
            let notes = KeyNotes::new(st, ip, caller.account, http.app.now());
            st.apikeys
                .rotate(caller.account, key_id, grace, now, &mut |e| {
                    notes.record(st, rec, e)
                })
        })
        .await?
        .map_err(owned_key_error)?;
    Ok(json(
        StatusCode::CREATED,
        &json!({
            "key": new.key,
            "key_id": new.key_id,
            "key_prefix": new.key_prefix,
            "old_key_expires_at": rfc3339(until),
        }),
    ))
}

#[derive(Deserialize)]
pub(super) struct Verify {
    key: String,
    #[serde(default)]
    scope: Option<String>,
}

/// `POST /api/keys/verify`: one of the caller's own keys, checked for the
/// caller's service. The answer is 200 with a `code` whatever the key's fate;
/// only a malformed request is 400. A key that works has its use counted and
/// its rate limit charged, as any request with it would.
pub async fn verify(http: &Http, ctx: &mut Ctx) -> Reply {
    let caller = http.authenticate(ctx, Need::Any)?;
    let body: Verify = ctx.json().await?;
    if let Some(s) = &body.scope {
        if !valid_scope_name(s) {
            return Err(ApiError::bad_request(
                "Invalid scope: use 1 to 64 of a-z 0-9 : . _ -.",
            ));
        }
    }
    let check = http.app.state().apikeys.check(
        caller.account,
        body.key.trim(),
        body.scope.as_deref(),
        http.app.now(),
    );
    let code = match check.status {
        KeyStatus::NotFound => "NOT_FOUND",
        KeyStatus::Revoked => "REVOKED",
        KeyStatus::Expired => "EXPIRED",
        KeyStatus::Disabled => "DISABLED",
        KeyStatus::UsageExceeded => "USAGE_EXCEEDED",
        KeyStatus::Live { has_scope } => {
            let limited = match check
                .key
                .as_ref()
                .and_then(|k| k.rate_limit.map(|l| (k, l)))
            {
                Some((k, limit)) => http.limits.check_key(k.key_id, limit).is_err(),
                None => false,
            };
            match (limited, has_scope) {
                (true, _) => "RATE_LIMITED",
                (false, false) => "FORBIDDEN",
                (false, true) => "VALID",
            }
        }
    };
    let mut out = serde_json::Map::new();
    out.insert("valid".into(), Value::Bool(code == "VALID"));
    out.insert("code".into(), Value::from(code));
    if let Some(k) = check.key {
        out.insert("key_id".into(), Value::from(k.key_id.to_string()));
        out.insert("name".into(), k.name.map_or(Value::Null, Value::from));
        out.insert("scopes".into(), Value::from(k.scopes));
        out.insert("meta".into(), meta_value(k.meta.as_deref()));
        out.insert(
            "credits_remaining".into(),
            k.credits_remaining.map_or(Value::Null, Value::from),
        );
        out.insert(
            "expires_at".into(),
            k.expires_at
                .map_or(Value::Null, |t| Value::from(rfc3339(t))),
        );
    }
    Ok(json(StatusCode::OK, &out))
}

/// `GET /api/keys/{key_id}/analytics?days=N` (1–90, default 30): the key's
/// figures per UTC day, oldest first, every day present. Another account's
/// key, or a key id that is not a uuid, is 404.
pub fn analytics(http: &Http, ctx: &mut Ctx, key_id: &str) -> Reply {
    let caller = http.authenticate(ctx, Need::Any)?;
    let days = match ctx.query("days") {
        None => 30,
        Some(d) => d
            .parse::<u32>()
            .ok()
            .filter(|d| (1..=ANALYTICS_DAYS).contains(d))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Query parameter `days` must be a whole number from 1 to {ANALYTICS_DAYS}."
                ))
            })?,
    };
    let key_id = path_key_id(key_id)?;
    let st = http.app.state();
    if st.apikeys.owner_of(key_id) != Some(caller.account) {
        return Err(ApiError::not_found("API key not found."));
    }
    let days: Vec<Value> = st
        .analytics
        .days(key_id, days, http.app.now())
        .iter()
        .map(|d| {
            let by_route: serde_json::Map<String, Value> = d
                .by_route
                .iter()
                .map(|(r, n)| (r.clone(), json!(n)))
                .collect();
            json!({
                "day": day_string(u64::from(d.day) * 86_400_000),
                "requests": d.requests,
                "errors_4xx": d.errors_4xx,
                "errors_5xx": d.errors_5xx,
                "rate_limited": d.rate_limited,
                "p50_ms": d.percentile_ms(0.5),
                "p99_ms": d.percentile_ms(0.99),
                "by_route": by_route,
            })
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &json!({"key_id": key_id, "days": days}),
    ))
}
