//! What the pool routes read from a request (pool names, `count`, `wait`,
//! `block`, `cooldown`, the creation body) and how they show a key: parsing
//! and shaping only, no state.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::super::response::ApiError;
use super::super::Ctx;
use crate::app::recovery::seal_aad;
use crate::clock::{rfc3339, Millis};
use crate::pool::Checkout;
use crate::seal::MasterKey;

/// Longest long poll.
pub const MAX_WAIT: Millis = 30_000;
/// Longest cooldown.
pub const MAX_COOLDOWN: Millis = 24 * 3_600_000;
/// Most keys one checkout hands out.
pub const MAX_COUNT: usize = 100;
/// Largest value, in bytes.
pub const MAX_VALUE: usize = 4096;
/// Largest metadata object, encoded, in bytes.
pub const MAX_METADATA: usize = 4096;
/// A key's lifetime bounds (`ttl`), in seconds.
pub const TTL_SECS: (u64, u64) = (1, 30 * 86_400);

/// A pool name from the path (percent-decoded): 1–64 letters, digits, `_ . -`.
pub fn pool_name(raw: &str) -> Result<String, ApiError> {
    let name = super::param(raw);
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if ok {
        Ok(name)
    } else {
        Err(ApiError::bad_request(
            "Invalid pool name: use 1-64 letters, digits, `_`, `.` or `-`.",
        ))
    }
}

/// A duration query parameter: seconds (`20`, `1.5`) or with a unit
/// (`500ms`, `20s`, `5m`), within `min..=max` milliseconds.
pub fn duration(
    ctx: &Ctx,
    name: &str,
    min: Millis,
    max: Millis,
) -> Result<Option<Millis>, ApiError> {
    let Some(raw) = ctx.query(name) else {
        return Ok(None);
    };
    let bad = || {
        ApiError::bad_request(format!(
            "Invalid query parameter `{name}`: expected a duration from {} to {} (seconds, or with a unit such as 500ms, 20s, 5m).",
            show(min),
            show(max)
        ))
    };
    let raw = raw.trim();
    let ms = match raw.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => (secs * 1000.0).round() as u64,
        Ok(_) => return Err(bad()),
        Err(_) => humantime::parse_duration(raw)
            .map_err(|_| bad())?
            .as_millis()
            .try_into()
            .map_err(|_| bad())?,
    };
    if ms < min || ms > max {
        return Err(bad());
    }
    Ok(Some(ms))
}

/// A duration in words for error messages.
fn show(ms: Millis) -> String {
    if ms.is_multiple_of(3_600_000) && ms > 0 {
        format!("{} h", ms / 3_600_000)
    } else if ms.is_multiple_of(1000) {
        format!("{} s", ms / 1000)
    } else {
        format!("{ms} ms")
    }
}

/// `count` (1–100).
pub fn count(ctx: &Ctx) -> Result<Option<usize>, ApiError> {
    match ctx.query("count") {
        None => Ok(None),
        Some(raw) => match raw.trim().parse::<usize>() {
            Ok(n) if (1..=MAX_COUNT).contains(&n) => Ok(Some(n)),
            _ => Err(ApiError::bad_request(format!(
                "Invalid query parameter `count`: expected a whole number from 1 to {MAX_COUNT}."
            ))),
        },
    }
}

/// The optional `?lease_id=`.
pub fn lease(ctx: &Ctx) -> Result<Option<Uuid>, ApiError> {
    match ctx.query("lease_id") {
        None => Ok(None),
        Some(s) => Uuid::parse_str(&s).map(Some).map_err(|_| {
            ApiError::bad_request("Invalid query parameter `lease_id`: expected a UUID.")
        }),
    }
}

/// The optional body of `POST /keys`.
#[derive(Deserialize, Default)]
pub struct CreateBody {
    pub value: Option<String>,
    pub metadata: Option<Map<String, Value>>,
    pub ttl: Option<f64>,
}

/// A creation body, checked: (value, encoded metadata, ttl in ms).
pub type Checked = (Option<String>, Option<Vec<u8>>, Option<Millis>);

impl CreateBody {
    /// Checks the limits of the contract.
    pub fn check(self) -> Result<Checked, ApiError> {
        if let Some(v) = &self.value {
            if v.len() > MAX_VALUE {
                return Err(ApiError::bad_request(format!(
                    "Invalid field `value`: at most {MAX_VALUE} bytes."
                )));
            }
        }
        let metadata = match self.metadata {
            None => None,
            Some(m) => {
                let bytes = serde_json::to_vec(&m).expect("a JSON object encodes");
                if bytes.len() > MAX_METADATA {
                    return Err(ApiError::bad_request(format!(
                        "Invalid field `metadata`: at most {MAX_METADATA} bytes when encoded."
                    )));
                }
                Some(bytes)
            }
        };
        let ttl = match self.ttl {
            None => None,
            Some(t) if t.is_finite() && t >= TTL_SECS.0 as f64 && t <= TTL_SECS.1 as f64 => {
                Some((t * 1000.0).round() as Millis)
            }
            Some(_) => {
                return Err(ApiError::bad_request(format!(
                    "Invalid field `ttl`: expected seconds from {} to {} (30 days).",
                    TTL_SECS.0, TTL_SECS.1
                )))
            }
        };
        Ok((self.value, metadata, ttl))
    }
}

/// Opens a key's sealed value into its string.
pub fn open_value(key: &MasterKey, key_id: Uuid, sealed: &[u8]) -> Result<Value, ApiError> {
    let plain = key.open(&seal_aad(key_id, true), sealed).map_err(|e| {
        tracing::error!(%key_id, error = %e, "a key value does not decrypt");
        ApiError::internal()
    })?;
    Ok(Value::String(String::from_utf8_lossy(&plain).into_owned()))
}

/// Opens a key's sealed metadata into its JSON object.
pub fn open_metadata(key: &MasterKey, key_id: Uuid, sealed: &[u8]) -> Result<Value, ApiError> {
    let plain = key.open(&seal_aad(key_id, false), sealed).map_err(|e| {
        tracing::error!(%key_id, error = %e, "key metadata does not decrypt");
        ApiError::internal()
    })?;
    serde_json::from_slice(&plain).map_err(|_| ApiError::internal())
}

/// One checked-out key as checkout answers it: value and metadata only when
/// the key has them.
pub fn checkout_json(key: &MasterKey, c: &Checkout) -> Result<Value, ApiError> {
    let mut v = json!({
        "key_id": c.key_id,
        "lease_id": c.lease_id,
        "blocked_until": rfc3339(c.blocked_until),
        "expires_at": rfc3339(c.expires_at),
    });
    if let Some(s) = &c.value {
        v["value"] = open_value(key, c.key_id, s)?;
    }
    if let Some(s) = &c.metadata {
        v["metadata"] = open_metadata(key, c.key_id, s)?;
    }
    Ok(v)
}
