//! API-key management: seed 000 (`/api/key/create`, `/api/key/delete`), seed 001
//! (`/generate-key`, `/list-keys`, `/revoke-key`) and seed 003
//! (`/api/user/key…`, `/api/user/usage/{email}`); the platform's routes about
//! one key are in `platform.rs`. The full key appears in a response once, at
//! creation, and nowhere else.

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::super::auth::{not_yours, Caller, Need, Via};
use super::super::idem::{self, Begun};
use super::super::response::{bytes_response, json, message, ApiError, Reply};
use super::super::{Ctx, Http};
use super::key_notes::KeyNotes;
use super::param;
use crate::apikeys::{
    ApiKeyError, CreateKey, CreditSpec, KeyAccess, KeyPreference, KeyRateLimit, MAX_META_BYTES,
};
use crate::clock::rfc3339;

/// The one mapping of API-key errors to answers.
pub(super) fn key_error(e: ApiKeyError) -> ApiError {
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
    ip: std::net::IpAddr,
    caller: Caller,
    req: CreateKey,
) -> Result<crate::apikeys::NewKey, ApiError> {
    let app = &http.app;
    let now = app.now();
    app.write(|st, rec| {
        let notes = KeyNotes::new(st, ip, caller.account, http.app.now());
        st.apikeys
            .create(caller.account, req, now, &mut |e| notes.record(st, rec, e))
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
        ctx.peer.ip(),
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
    let ip = ctx.peer.ip();
    app.write(|st, rec| {
        let notes = KeyNotes::new(st, ip, caller.account, http.app.now());
        st.apikeys
            .delete_by_name(caller.account, &body.name, &mut |e| {
                notes.record(st, rec, e)
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
    let ip = ctx.peer.ip();
    let new = app
        .write(|st, rec| {
            let notes = KeyNotes::new(st, ip, caller.account, http.app.now());
            // With an Idempotency-Key, the new key and the kept answer (the
            // full key, sealed) are one record. Nobody can reach the new key
            // before it is answered, so logging it at the end keeps its order.
            if fresh.is_some() {
                rec.begin_batch();
            }
            let new = st
                .apikeys
                .create(caller.account, req, now, &mut |e| notes.record(st, rec, e));
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
pub(super) fn meta_value(text: Option<&str>) -> Value {
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
    let ip = ctx.peer.ip();
    app.write(|st, rec| {
        let notes = KeyNotes::new(st, ip, caller.account, http.app.now());
        st.apikeys
            .revoke(caller.account, body.key.trim(), now, &mut |e| {
                notes.record(st, rec, e)
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
    let ip = ctx.peer.ip();
    let new = app
        .write(|st, rec| {
            let notes = KeyNotes::new(st, ip, caller.account, http.app.now());
            st.apikeys.replace_primary_with(
                caller.account,
                body.key_name,
                access,
                body.credits,
                now,
                &mut |e| notes.record(st, rec, e),
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
    let ip = ctx.peer.ip();
    app.write(|st, rec| {
        let notes = KeyNotes::new(st, ip, caller.account, http.app.now());
        st.apikeys
            .revoke_primary(caller.account, now, &mut |e| notes.record(st, rec, e))
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
