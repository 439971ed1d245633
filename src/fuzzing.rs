//! Entry points for the coverage-guided fuzz targets in `fuzz/` (cargo-afl,
//! see README § Development). Each takes the fuzzer's raw bytes, feeds them
//! to the parsers that see outside bytes, and must never panic; the parsers
//! themselves are the crate's own, nothing here re-implements one.

use std::str::FromStr;

use hyper::header::{HeaderMap, HeaderName, HeaderValue};

use crate::app::StateImage;
use crate::event::Event;
use crate::persist::format;

/// A log record's payload, as recovery decodes it.
pub fn log_record(data: &[u8]) {
    let _ = crate::codec::decode_record::<Event>(data);
}

/// A snapshot file: its header and CRC, then the image inside it.
pub fn snapshot(data: &[u8]) {
    if let Ok((_, range)) = format::parse_snapshot(data) {
        let _ = StateImage::decode(&data[range]);
    }
    let _ = StateImage::decode(data);
}

/// A log segment file as recovery reads it: header, record frames and CRCs,
/// then each valid record's payload.
pub fn segment(data: &[u8]) {
    let _ = format::parse_segment_header(data);
    let scan = format::scan_records(data);
    for r in scan.records {
        let _ = crate::codec::decode_record::<Event>(&data[r]);
    }
    let _ = format::valid_record_after(data, scan.valid_len);
}

/// The request path: the first line is `METHOD path?query`, the next lines
/// are headers (`name: value`), and the rest after an empty line is the body.
pub fn request(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (head, body) = match text.find("\n\n") {
        Some(i) => (&text[..i], text[i + 2..].as_bytes()),
        None => (&text[..], &b""[..]),
    };
    let mut lines = head.lines();
    let first = lines.next().unwrap_or("");
    let (method, target) = first.split_once(' ').unwrap_or(("GET", first));
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    if let Some(route) = crate::http::router::resolve(path) {
        if let Ok(m) = hyper::Method::from_bytes(method.as_bytes()) {
            let _ = route.allows(&m);
            let _ = route.scope(&m);
        }
        let _ = route.label();
    }
    let _ = crate::http::request::percent_decode(path);
    for name in ["count", "wait", "block", "pool", "limit", "cursor", "q", ""] {
        let _ = crate::http::request::query_param(query, name);
    }
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').unwrap_or((line, ""));
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_bytes(value.trim().as_bytes()),
        ) {
            headers.append(n, v);
        }
    }
    let _ = crate::http::request::credential(&headers);
    if let Some(v) = headers.get("idempotency-key") {
        let _ = crate::http::idem::idempotency_key(v);
    }
    if let Some(Ok(v)) = headers.get("range").map(HeaderValue::to_str) {
        for len in [0, 1, 1000, u64::MAX] {
            let _ = crate::purchase::parse_range(v, len);
        }
    }
    let _ = crate::http::request::parse_json::<serde_json::Value>(&headers, body);
    crate::http::fuzz_bodies(&headers, body);
}

/// Credentials as presented: an API key and a session token.
pub fn credentials(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::apikeys::check_format(&text);
    let _ = crate::apikeys::display_prefix(&text);
    let _ = crate::accounts::is_session_token(&text);
    if let Ok(v) = HeaderValue::from_bytes(data) {
        let mut h = HeaderMap::new();
        h.insert(hyper::header::AUTHORIZATION, v.clone());
        let _ = crate::http::request::credential(&h);
        let mut h = HeaderMap::new();
        h.insert("x-api-key", v);
        let _ = crate::http::request::credential(&h);
    }
}

/// Values from flags and key settings: CIDRs, durations, rates, scope and role names.
pub fn values(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    for line in text.lines().chain([&*text]) {
        let _ = crate::apikeys::Cidr::parse(line);
        let _ = crate::config::parse_duration(line);
        let _ = crate::config::Rate::from_str(line);
        let _ = crate::apikeys::Scope::parse(line);
        let _ = crate::apikeys::Role::parse(line);
        let _ = crate::apikeys::valid_scope_name(line);
    }
}
