//! What a request to the API-key domain may say: the fields of a new key,
//! checked before anything changes, and the selector a revoke names a key by.

use uuid::Uuid;

use super::format::{check_format, key_hash, KEY_LEN, KEY_PREFIX};
use super::{ApiKeyError, CreateKey};

const MAX_NAME_CHARS: usize = 64;
/// Ten years: longer is "never", which is `expires_in` absent.
const MAX_EXPIRES_IN_SECS: u64 = 10 * 365 * 86_400;
const MAX_WINDOW_SECS: u32 = 86_400;

fn invalid(field: &'static str, message: impl Into<String>) -> ApiKeyError {
    ApiKeyError::Invalid {
        field,
        message: message.into(),
    }
}

/// Checks every field of a new key; the error names the first bad one.
pub(super) fn validate(req: &CreateKey) -> Result<(), ApiKeyError> {
    if let Some(name) = &req.name {
        let n = name.chars().count();
        if n == 0
            || n > MAX_NAME_CHARS
            || name.trim().is_empty()
            || name.chars().any(char::is_control)
        {
            return Err(invalid(
                "name",
                format!("Invalid name: use 1 to {MAX_NAME_CHARS} printable characters."),
            ));
        }
    }
    if let Some(s) = req.expires_in {
        if s == 0 || s > MAX_EXPIRES_IN_SECS {
            return Err(invalid(
                "expires_in",
                format!(
                    "Invalid expires_in: give a number of seconds from 1 to {MAX_EXPIRES_IN_SECS}."
                ),
            ));
        }
    }
    if let Some(rl) = req.rate_limit {
        if rl.limit == 0 || rl.window_secs == 0 || rl.window_secs > MAX_WINDOW_SECS {
            return Err(invalid(
                "rate_limit",
                format!(
                    "Invalid rate_limit: give {{\"limit\": N, \"window_secs\": S}} with N at least 1 \
                     and S from 1 to {MAX_WINDOW_SECS}."
                ),
            ));
        }
    }
    if let Some(message) = req.credits.as_ref().and_then(|c| c.invalid()) {
        return Err(invalid("credits", message));
    }
    Ok(())
}

/// What a revoke selector names among the caller's keys.
pub(super) enum Selector {
    Hash([u8; 32]),
    Id(Uuid),
    Prefix(String),
}

/// A full key (checksum verified), a key id, or a 12-character key prefix.
pub(super) fn parse_selector(s: &str) -> Option<Selector> {
    if s.len() == KEY_LEN && s.starts_with(KEY_PREFIX) {
        check_format(s).ok()?;
        return Some(Selector::Hash(key_hash(s)));
    }
    if let Ok(id) = Uuid::parse_str(s) {
        return Some(Selector::Id(id));
    }
    if s.len() == super::DISPLAY_PREFIX_LEN && s.starts_with(KEY_PREFIX) {
        return Some(Selector::Prefix(s.to_string()));
    }
    None
}
