//! API-key management: seed 000 (`/api/key/create`, `/api/key/delete`), seed 001
//! (`/generate-key`, `/list-keys`, `/revoke-key`) and seed 003
//! (`/api/user/key…`, `/api/user/usage/{email}`), and the platform's
//! disable/enable and verify (`/api/keys/…`). The full key appears in a
//! response once, at creation, and nowhere else.

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::super::auth::{not_yours, Caller, Need, Via};
use super::super::idem::{self, Begun};
use super::super::response::{bytes_response, json, message, ApiError, Reply};
use super::super::{Ctx, Http};
use super::param;
use crate::apikeys::{
    valid_scope_name, ApiKeyError, CreateKey, CreditSpec, KeyAccess, KeyPreference, KeyRateLimit,
    KeyStatus, ANALYTICS_DAYS, MAX_META_BYTES,
};
use crate::clock::{day_string, rfc3339};
use crate::event::EventRef;

/// The one mapping of API-key errors to answers.
fn key_error(e: ApiKeyError) -> ApiError {
    match e {
        ApiKeyError::NameTaken => ApiError::conflict("You already have an API key with that name."),
        ApiKeyError::DailyLimit { retry_after_secs } => ApiError::rate_limited(retry_after_secs),
        ApiKeyError::NotFound => ApiError::not_found("API key not found."),
        ApiKeyError::Invalid { .. } => ApiError::bad_request(e.to_string()),
        ApiKeyError::NotRotatable(why) => ApiError::conflict(why),
        ApiKeyError::AmbiguousPrefix => ApiError::conflict(
            "That key_prefix matches several of your keys; revoke by key_id or the full key.",
        ),
    }
}

async fn create(
    http: &Http,
    caller: Caller,
    req: CreateKey,
) -> Result<crate::apikeys::NewKey, ApiError> {
    let app = &http.app;
    let now = app.now();
    app.write(|st, rec| {
        st.apikeys.create(caller.account, req, now, &mut |e| {
            rec.record(EventRef::ApiKey(e))
        })
    })
    .await?
    .map_err(key_error)
}

#[derive(Deserialize)]
struct Seed000Create {
    name: String,
    creator: String,
}

/// `POST /api/key/create` (seed 000; session required).
pub async fn seed000_create(http: &Http, ctx: &mut Ctx) -> Reply {
    let caller = http.authenticate(ctx, Need::Session)?;
    let body: Seed000Create = ctx.json().await?;
    let me = http
        .app
        .state()
        .accounts
        .get(caller.account)
        .ok_or_else(ApiError::internal)?;
    if !body.creator.eq_ignore_ascii_case(&me.username) {
        return Err(ApiError::forbidden(
            "Field `creator` must be the signed-in user's username.",
        ));
    }
    if body.name.trim().is_empty() {
        return Err(ApiError::bad_request("Field `name` must not be empty."));
    }
    let new = create(
        http,
        caller,
        CreateKey {
            name: Some(body.name),
            expires_in: None,
            rate_limit: None,
            primary: false,
            access: KeyAccess::default(),
            credits: None,
        },
    )
    .await?;
    Ok(json(
        StatusCode::CREATED,
        &json!({"message": "API key created successfully.", "api_key": new.key, "key_id": new.key_id, "key_prefix": new.key_prefix}),
    ))
}

#[derive(Deserialize)]
struct ByName {
    name: String,
}

/// `DELETE /api/key/delete` (seed 000; session required).
pub async fn seed000_delete(http: &Http, ctx: &mut Ctx) -> Reply {
    let caller = http.authenticate(ctx, Need::Session)?;
    let body: ByName = ctx.json().await?;
    let app = &http.app;
    app.write(|st, rec| {
        st.apikeys
            .delete_by_name(caller.account, &body.name, &mut |e| {
                rec.record(EventRef::ApiKey(e))
            })
    })
    .await?
    .map_err(|e| match e {
        ApiKeyError::NotFound => ApiError::not_found("You have no API key with that name."),
        e => key_error(e),
    })?;
    message(StatusCode::OK, "API key deleted successfully.")
}

#[derive(Deserialize, Default)]
pub(super) struct Generate {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    rate_limit: Option<KeyRateLimit>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    allowed_ips: Option<Vec<String>>,
    #[serde(default)]
    meta: Option<Value>,
    #[serde(default)]
    credits: Option<CreditSpec>,
}

/// The platform's optional access fields of a new key (not `#[serde(flatten)]`
/// into the bodies: flattening loses the field's name from type errors).
struct AccessFields<'a> {
    scopes: Option<&'a [String]>,
    role: Option<&'a str>,
    allowed_ips: Option<&'a [String]>,
    meta: Option<&'a Value>,
}

impl AccessFields<'_> {
    /// The access asked for, refused with 400 (naming the field) when invalid
    /// and 403 when an API key asks for a built-in scope it does not have
    /// itself: a key cannot make a key mightier than itself.
    fn access(&self, caller: Caller) -> Result<KeyAccess, ApiError> {
        let mut access =
            KeyAccess::from_request(self.scopes, self.role, self.allowed_ips).map_err(key_error)?;
        if let Some(meta) = self.meta {
            let text = meta.to_string();
            if !meta.is_object() || text.len() > MAX_META_BYTES {
                return Err(ApiError::bad_request(format!(
                    "Invalid meta: give a JSON object of at most {MAX_META_BYTES} bytes."
                )));
            }
            access.meta = Some(text);
        }
        if let Via::ApiKey(_) = caller.via {
            if let Some(s) = access.scopes.first_missing_from(caller.scopes) {
                return Err(ApiError::forbidden(format!(
                    "This API key cannot grant the scope `{}`, which it lacks itself.",
                    s.name()
                )));
            }
        }
        Ok(access)
    }
}

/// `POST /generate-key` (seed 001).
pub async fn generate(http: &Http, ctx: &mut Ctx) -> Reply {
    let caller = http.authenticate(ctx, Need::Any)?;
    let body: Generate = ctx.json().await?;
    let access = AccessFields {
        scopes: body.scopes.as_deref(),
        role: body.role.as_deref(),
        allowed_ips: body.allowed_ips.as_deref(),
        meta: body.meta.as_ref(),
    }
    .access(caller)?;
    let fresh = match idem::begin(http, ctx, caller.account).await? {
        Begun::Replay(first) => return Ok(first),
        Begun::Fresh(f) => Some(f),
        Begun::Plain => None,
    };
    let req = CreateKey {
        name: body.name,
        expires_in: body.expires_in,
        rate_limit: body.rate_limit,
        primary: false,
        access,
        credits: body.credits,
    };
    let app = &http.app;
    let now = app.now();
    let answer = |new: &crate::apikeys::NewKey| {
        serde_json::to_vec(&json!({
            "key": new.key,
            "key_id": new.key_id,
            "key_prefix": new.key_prefix,
            "created_at": rfc3339(new.created_at),
            "expires_at": new.expires_at.map(rfc3339),
        }))
        .expect("a JSON value encodes")
    };
    let new = app
        .write(|st, rec| {
            // With an Idempotency-Key, the new key and the kept answer (the
            // full key, sealed) are one record. Nobody can reach the new key
            // before it is answered, so logging it at the end keeps its order.
            if fresh.is_some() {
                rec.begin_batch();
            }
            let new = st.apikeys.create(caller.account, req, now, &mut |e| {
                rec.record(EventRef::ApiKey(e))
            });
            if let Some(f) = &fresh {
                let kept = new
                    .as_ref()
                    .ok()
                    .map(|n| f.keep(st, &app.master_key, StatusCode::CREATED, &answer(n), now));
                rec.end_batch(kept);
            }
            new
        })
        .await?
        .map_err(key_error)?;
    Ok(bytes_response(
        StatusCode::CREATED,
        "application/json",
        answer(&new).into(),
    ))
}

/// `GET /list-keys` (seed 001): prefixes (a hashed store cannot list keys) and details.
pub fn list(http: &Http, ctx: &mut Ctx) -> Reply {
    let caller = http.authenticate(ctx, Need::Any)?;
    let keys = http
        .app
        .state()
        .apikeys
        .list(caller.account, http.app.now());
    let items: Vec<Value> = keys
        .iter()
        .map(|k| {
            let mut item = serde_json::to_value(k).unwrap_or(Value::Null);
            item["meta"] = meta_value(k.meta.as_deref());
            item
        })
        .collect();
    Ok(json(
        StatusCode::OK,
        &json!({
            "keys": keys.iter().map(|k| k.key_prefix.as_str()).collect::<Vec<_>>(),
            "items": items,
        }),
    ))
}

/// A key's `meta` as the JSON object it was given as (null when none).
fn meta_value(text: Option<&str>) -> Value {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
}

#[derive(Deserialize)]
struct Revoke {
    key: String,
}

/// `POST /revoke-key` (seed 001): by full key, key_id or key_prefix.
pub async fn revoke(http: &Http, ctx: &mut Ctx) -> Reply {
    let caller = http.authenticate(ctx, Need::Any)?;
    let body: Revoke = ctx.json().await?;
    let app = &http.app;
    let now = app.now();
    app.write(|st, rec| {
        st.apikeys
            .revoke(caller.account, body.key.trim(), now, &mut |e| {
                rec.record(EventRef::ApiKey(e))
            })
    })
    .await?
    .map_err(|e| match e {
        ApiKeyError::NotFound => ApiError::not_found("Key not found."),
        e => key_error(e),
    })?;
    message(StatusCode::OK, "Key revoked")
}

/// Seed 003's `{email}`: the caller's own email or username, else 403.
fn own_account(http: &Http, caller: Caller, who: &str) -> Result<(), ApiError> {
    match http.app.state().accounts.find(&param(who)) {
        Some(id) if id == caller.account => Ok(()),
        _ => Err(not_yours()),
    }
}

/// The seed 003 view of the account's primary key.
fn preference(http: &Http, caller: Caller) -> Value {
    let balance = http
        .app
        .state()
        .accounts
        .balance(caller.account)
        .unwrap_or(0);
    let primary = http
        .app
        .state()
        .apikeys
        .primary(caller.account, http.app.now());
    serde_json::to_value(KeyPreference::new(primary.as_ref(), balance)).unwrap_or(Value::Null)
}

/// `GET /api/user/key/{email}` and `GET /api/user/usage/{email}` (seed 003).
pub fn seed003_status(http: &Http, ctx: &mut Ctx, who: &str, field: &str) -> Reply {
    let caller = http.authenticate(ctx, Need::Any)?;
    own_account(http, caller, who)?;
    let mut body = serde_json::Map::new();
    body.insert("success".into(), Value::Bool(true));
    body.insert(field.into(), preference(http, caller));
    Ok(json(StatusCode::OK, &body))
}

#[derive(Deserialize)]
struct Seed003Create {
    email: String,
    #[serde(default)]
    key_name: Option<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    allowed_ips: Option<Vec<String>>,
    #[serde(default)]
    meta: Option<Value>,
    #[serde(default)]
    credits: Option<CreditSpec>,
}

/// `POST /api/user/key` (seed 003): replaces the account's primary key.
pub async fn seed003_create(http: &Http, ctx: &mut Ctx) -> Reply {
    let caller = http.authenticate(ctx, Need::Any)?;
    let body: Seed003Create = ctx.json().await?;
    own_account(http, caller, &body.email)?;
    let access = AccessFields {
        scopes: body.scopes.as_deref(),
        role: body.role.as_deref(),
        allowed_ips: body.allowed_ips.as_deref(),
        meta: body.meta.as_ref(),
    }
    .access(caller)?;
    let app = &http.app;
    let now = app.now();
    let new = app
        .write(|st, rec| {
            st.apikeys.replace_primary_with(
                caller.account,
                body.key_name,
                access,
                body.credits,
                now,
                &mut |e| rec.record(EventRef::ApiKey(e)),
            )
        })
        .await?
        .map_err(key_error)?;
    Ok(json(
        StatusCode::CREATED,
        &json!({
            "success": true,
            "message": "API key generated successfully",
            "key": new.key,
            "keyPrefix": new.key_prefix,
        }),
    ))
}

/// `DELETE /api/user/key/{email}` (seed 003).
pub async fn seed003_revoke(http: &Http, ctx: &mut Ctx, who: &str) -> Reply {
    let caller = http.authenticate(ctx, Need::Any)?;
    own_account(http, caller, who)?;
    let app = &http.app;
    let now = app.now();
    app.write(|st, rec| {
        st.apikeys.revoke_primary(caller.account, now, &mut |e| {
            rec.record(EventRef::ApiKey(e))
        })
    })
    .await?
    .map_err(|e| match e {
        ApiKeyError::NotFound => ApiError::not_found("This account has no API key to revoke."),
        e => key_error(e),
    })?;
    Ok(json(
        StatusCode::OK,
        &json!({"success": true, "message": "API key revoked successfully"}),
    ))
}

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
    app.write(|st, rec| {
        st.apikeys
            .set_disabled(caller.account, key_id, disabled, &mut |e| {
                rec.record(EventRef::ApiKey(e))
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
    let (new, until) = app
        .write(|st, rec| {
            st.apikeys
                .rotate(caller.account, key_id, grace, now, &mut |e| {
                    rec.record(EventRef::ApiKey(e))
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
