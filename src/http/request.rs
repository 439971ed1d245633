//! Reading requests: bounded bodies, JSON with errors that name the field,
//! query strings, and credentials.

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::StatusCode;
use serde::de::DeserializeOwned;
use tokio::time::Instant;

use super::response::ApiError;

/// 413 for a body over the limit.
fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("Request body is larger than the limit of {limit} bytes."),
    )
}

/// 408 for a body that did not arrive in time.
fn timed_out() -> ApiError {
    ApiError::new(StatusCode::REQUEST_TIMEOUT, "Request body timed out.")
}

/// Reads the whole body, refusing one over `limit` bytes whether it was sent
/// with a Content-Length or chunked, or one not complete by `deadline`
/// (`--body-timeout` after its headers). A declared length over the limit is
/// refused before a byte of the body is read, so that a client sending
/// `Expect: 100-continue` gets the 413 without being asked for the body.
pub async fn read_body(
    headers: &HeaderMap,
    body: Incoming,
    limit: usize,
    deadline: Instant,
) -> Result<Bytes, ApiError> {
    if let Some(len) = headers.get(CONTENT_LENGTH) {
        let declared = len
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or_else(|| ApiError::bad_request("Content-Length is not a number."))?;
        if declared > limit as u64 {
            return Err(too_large(limit));
        }
    }
    let collected = tokio::time::timeout_at(deadline, Limited::new(body, limit).collect())
        .await
        .map_err(|_| timed_out())?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(too_large(limit)),
        Err(e) => Err(ApiError::bad_request(format!(
            "The request body could not be read: {e}."
        ))),
    }
}

/// Parses a JSON body into `T`. An empty body parses as `{}` so that routes
/// whose fields are all optional accept none. Errors are 415 for a body declared
/// as something other than JSON, 400 naming the field for the rest.
pub fn parse_json<T: DeserializeOwned>(headers: &HeaderMap, body: &[u8]) -> Result<T, ApiError> {
    if let Some(ct) = headers.get(CONTENT_TYPE) {
        let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
        if !body.is_empty() && !ct.contains("json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Request body must be JSON; send it with Content-Type: application/json.",
            ));
        }
    }
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    };
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let reason = inner.to_string();
        // serde_json's messages end with " at line 1 column 9"; keep them, they help.
        if inner.is_syntax() || inner.is_eof() {
            ApiError::bad_request(format!("Malformed JSON: {reason}."))
        } else if path == "." || path.is_empty() {
            ApiError::bad_request(format!("Invalid request body: {reason}."))
        } else {
            ApiError::bad_request(format!("Invalid field `{path}`: {reason}."))
        }
    })
}

/// The value of query parameter `name`, percent-decoded.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        (percent_decode(k) == name).then(|| percent_decode(v))
    })
}

/// Decodes `%XX` escapes and `+` (as a space) in a query component.
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// A credential as the request presents it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// No credential at all.
    None,
    /// An API key (`X-API-Key`, or a Bearer token that starts with `sk_`).
    ApiKey(&'a str),
    /// A session token (any other Bearer token).
    Session(&'a str),
    /// An `Authorization` header we cannot read.
    Malformed,
}

/// Reads the credential: `X-API-Key: <key>` or `Authorization: Bearer <API key or session token>`.
pub fn credential(headers: &HeaderMap) -> Credential<'_> {
    if let Some(v) = headers.get("x-api-key") {
        return match v.to_str() {
            Ok(s) if !s.trim().is_empty() => Credential::ApiKey(s.trim()),
            _ => Credential::Malformed,
        };
    }
    let Some(v) = headers.get(AUTHORIZATION) else {
        return Credential::None;
    };
    let Ok(s) = v.to_str() else {
        return Credential::Malformed;
    };
    let s = s.trim();
    let token = match s.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => return Credential::Malformed,
    };
    if token.is_empty() {
        Credential::Malformed
    } else if token.starts_with("sk_") {
        Credential::ApiKey(token)
    } else {
        Credential::Session(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn query_params_are_decoded() {
        assert_eq!(
            query_param(Some("a=1&lease_id=x%2Dy"), "lease_id").as_deref(),
            Some("x-y")
        );
        assert_eq!(query_param(Some("a=1"), "lease_id"), None);
        assert_eq!(query_param(None, "a"), None);
        assert_eq!(
            query_param(Some("t=a+b%zz%4"), "t").as_deref(),
            Some("a b%zz%4")
        );
    }

    #[test]
    fn credentials_are_told_apart() {
        let mut h = HeaderMap::new();
        assert_eq!(credential(&h), Credential::None);
        h.insert(AUTHORIZATION, HeaderValue::from_static("Bearer st_abc"));
        assert_eq!(credential(&h), Credential::Session("st_abc"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("bearer sk_live_x"));
        assert_eq!(credential(&h), Credential::ApiKey("sk_live_x"));
        h.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(credential(&h), Credential::Malformed);
        h.insert("x-api-key", HeaderValue::from_static("sk_live_y"));
        assert_eq!(credential(&h), Credential::ApiKey("sk_live_y"));
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Login {
        username: String,
        password: String,
    }

    #[test]
    fn json_errors_name_the_field() {
        let h = HeaderMap::new();
        let e = parse_json::<Login>(&h, br#"{"username": 5, "password": "x"}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert!(e.message.contains("`username`"), "{}", e.message);
        let e = parse_json::<Login>(&h, br#"{"username": "a""#).unwrap_err();
        assert!(e.message.starts_with("Malformed JSON"), "{}", e.message);
        let e = parse_json::<Login>(&h, br#"{"username": "a"}"#).unwrap_err();
        assert!(e.message.contains("password"), "{}", e.message);
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        let e = parse_json::<Login>(&h, b"hello").unwrap_err();
        assert_eq!(e.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    }
}
