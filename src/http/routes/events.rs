//! `GET /api/user/events?limit=N&before=ID`: the caller's security log
//! (issue 10 part 6), newest first, paged by id. A session, or an API key
//! with `keys:read` (checked by `authenticate` from `Route::scope`).

use hyper::StatusCode;
use serde_json::{json, Value};

use super::super::auth::Need;
use super::super::response::{json, ApiError, Reply};
use super::super::{Ctx, Http};
use crate::clock::rfc3339;
use crate::security::Entry;

/// The most entries a page may hold, and how many it holds by default.
const MAX_LIMIT: usize = 200;
const DEFAULT_LIMIT: usize = 50;

/// `limit`: a whole number from 1 to 200 (default 50); `before`: an event id.
fn page_params(ctx: &Ctx) -> Result<(usize, Option<u64>), ApiError> {
    let limit = match ctx.query("limit") {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| (1..=MAX_LIMIT).contains(l))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Query parameter `limit` must be a whole number from 1 to {MAX_LIMIT}."
                ))
            })?,
    };
    let before = match ctx.query("before") {
        None => None,
        Some(b) => Some(b.parse::<u64>().map_err(|_| {
            ApiError::bad_request(
                "Query parameter `before` must be an event id (the `next_before` of the previous page).",
            )
        })?),
    };
    Ok((limit, before))
}

/// One entry as the contract shows it; `key_prefix` only for key events.
fn entry_json(e: &Entry) -> Value {
    let mut m = serde_json::Map::new();
    m.insert("id".into(), json!(e.id));
    m.insert("at".into(), json!(rfc3339(e.at)));
    m.insert("type".into(), json!(e.kind.name()));
    m.insert("ip".into(), json!(e.ip.map(|ip| ip.to_string())));
    if let Some(p) = &e.key_prefix {
        m.insert("key_prefix".into(), json!(p));
    }
    let detail = serde_json::from_str::<Value>(&e.detail)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| json!({}));
    m.insert("detail".into(), detail);
    Value::Object(m)
}

/// `GET /api/user/events` → 200 `{"events": [...], "next_before"}`.
pub fn list(http: &Http, ctx: &mut Ctx) -> Reply {
    let caller = http.authenticate(ctx, Need::Any)?;
    let (limit, before) = page_params(ctx)?;
    let (entries, next) = http
        .app
        .state()
        .security
        .page(caller.account, before, limit);
    let events: Vec<Value> = entries.iter().map(entry_json).collect();
    Ok(json(
        StatusCode::OK,
        &json!({"events": events, "next_before": next}),
    ))
}
