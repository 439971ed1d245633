//! Building responses, and the one place where errors become status codes.
//!
//! Every error a handler can meet is an [`ApiError`]: a status, one sentence a
//! person can act on, and the headers that status needs (`Allow`, `Retry-After`).
//! Seed 003's routes answer errors as `{"success": false, "error": …}`; the rest as
//! `{"error": …}`.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde::Serialize;

/// The response body type of every route.
pub type Body = Full<Bytes>;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The status code.
    pub status: StatusCode,
    /// One sentence a person can act on.
    pub message: String,
    /// Seconds to wait, for 429 (and 503 while the disk is failing).
    pub retry_after: Option<u64>,
    /// The allowed methods, for 405.
    pub allow: Option<&'static str>,
    /// Answer as `{"success": false, "error": …}` (seed 003's routes).
    pub with_success_flag: bool,
}

impl ApiError {
    /// An error with a status and a message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
            allow: None,
            with_success_flag: false,
        }
    }

    /// 400 for a missing or invalid field or a malformed body.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 404.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    /// 409.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self {
            retry_after: Some(retry_after_secs.max(1)),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit exceeded. Try again later.",
            )
        }
    }

    /// 503 while the write-ahead log cannot write: nothing was changed.
    pub fn unavailable() -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server cannot write to its disk right now, so nothing was changed. Try again shortly.",
            )
        }
    }

    /// 503 for a change the log could not write: it was undone (see
    /// `app::WriteError::Undone`), so nothing was changed either.
    pub fn undone() -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "The server could not write this change to its disk, so it was undone and nothing was changed. Try again shortly.",
            )
        }
    }

    /// 500, for a bug; never for bad input.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error. It has been logged.",
        )
    }

    /// Marks this error as one of seed 003's (`{"success": false, …}`).
    pub fn seed003(mut self) -> Self {
        self.with_success_flag = true;
        self
    }

    /// Turns the error into its response.
    pub fn into_response(self) -> Response<Body> {
        let body = if self.with_success_flag {
            serde_json::json!({"success": false, "error": self.message})
        } else {
            serde_json::json!({"error": self.message})
        };
        let mut resp = json(self.status, &body);
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(allow) = self.allow {
            resp.headers_mut()
                .insert(ALLOW, HeaderValue::from_static(allow));
        }
        resp
    }
}

/// A JSON response.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => bytes_response(status, "application/json", Bytes::from(bytes)),
        Err(e) => {
            tracing::error!(error = %e, "cannot serialise a response");
            bytes_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "application/json",
                Bytes::from_static(br#"{"error": "Internal error. It has been logged."}"#),
            )
        }
    }
}

/// A response with a body and a content type.
pub fn bytes_response(
    status: StatusCode,
    content_type: &'static str,
    body: Bytes,
) -> Response<Body> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// The result every handler returns.
pub type Reply = Result<Response<Body>, ApiError>;

/// 200 with `{"message": …}`.
pub fn message(status: StatusCode, text: &str) -> Reply {
    Ok(json(status, &serde_json::json!({ "message": text })))
}
