//! The web page: static HTML, CSS and JavaScript compiled into the binary, so
//! that `/` works from any directory and needs no build step.

use bytes::Bytes;
use hyper::StatusCode;

use super::super::response::{bytes_response, ApiError, Reply};

static INDEX: &str = include_str!("../../../assets/web/index.html");
static APP_JS: &str = include_str!("../../../assets/web/app.js");
static STYLE: &str = include_str!("../../../assets/web/style.css");

/// Serves one of the page's files.
pub fn asset(name: &str) -> Reply {
    let (ct, body) = match name {
        "/" => ("text/html; charset=utf-8", INDEX),
        "/app.js" => ("text/javascript; charset=utf-8", APP_JS),
        "/style.css" => ("text/css; charset=utf-8", STYLE),
        _ => return Err(ApiError::not_found("No such file.")),
    };
    let mut resp = bytes_response(StatusCode::OK, ct, Bytes::from_static(body.as_bytes()));
    resp.headers_mut().insert(
        hyper::header::CACHE_CONTROL,
        hyper::header::HeaderValue::from_static("no-cache"),
    );
    Ok(resp)
}
