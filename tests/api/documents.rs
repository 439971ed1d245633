//! The documents of issue 12 over HTTP: `X-Request-Id` on every response
//! (echoed or made), the request's JSON log line, and `/openapi.json`.

use std::time::Duration;

use serde_json::Value;

use crate::support::{eventually, raw, Server, RELAXED};

fn with_id(id: &str) -> Vec<(String, String)> {
    vec![("X-Request-Id".to_string(), id.to_string())]
}

#[test]
fn a_well_formed_request_id_is_echoed_on_every_kind_of_answer() {
    let s = Server::start(RELAXED);
    let id = "client-req.42:a_b";
    // 200, 401, 404 (unknown route), 405 (wrong method), 204 (preflight), 400.
    let cases = [
        ("GET", "/healthz", None, 200),
        ("GET", "/keys", None, 401),
        ("GET", "/no/such/route", None, 404),
        ("DELETE", "/healthz", None, 405),
        ("OPTIONS", "/keys", None, 204),
        ("POST", "/login", Some("{not json".to_string()), 400),
    ];
    for (method, path, body, status) in cases {
        let r = raw(method, &s.url(path), &with_id(id), body);
        assert_eq!(r.status, status, "{method} {path}: {}", r.text);
        assert_eq!(r.header("x-request-id"), Some(id), "{method} {path}");
    }
    let longest = "a".repeat(128);
    let r = raw("GET", &s.url("/healthz"), &with_id(&longest), None);
    assert_eq!(r.header("x-request-id"), Some(longest.as_str()));
}

#[test]
fn a_missing_or_malformed_request_id_is_replaced_by_a_new_one() {
    let s = Server::start(RELAXED);
    let too_long = "a".repeat(129);
    let mut seen = std::collections::HashSet::new();
    for incoming in [
        None,
        Some("has space"),
        Some("semi;colon"),
        Some(too_long.as_str()),
    ] {
        let headers = incoming.map(with_id).unwrap_or_default();
        let r = raw("GET", &s.url("/healthz"), &headers, None);
        let made = r.header("x-request-id").expect("a request id").to_string();
        assert_ne!(Some(made.as_str()), incoming);
        assert!(
            !made.is_empty()
                && made.len() <= 128
                && made
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b)),
            "{made:?}"
        );
        assert!(seen.insert(made.clone()), "{made} was handed out twice");
    }
}

#[test]
fn json_logs_carry_the_request_id_route_template_status_and_duration() {
    let s = Server::start_with_env(
        &[RELAXED, &["--log-format", "json"]].concat(),
        &[("RUST_LOG", "info,keypool::http=debug")],
    );
    let key_id = "5b0c1f0e-8f0b-4e43-9f4e-2f5d3c1a9b77";
    let r = raw(
        "GET",
        &s.url(&format!("/keys/{key_id}")),
        &with_id("log-line-test-1"),
        None,
    );
    assert_eq!(r.status, 401);
    let mut line: Option<Value> = None;
    let found = eventually(Duration::from_secs(5), || {
        line = s
            .stderr()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["request_id"] == "log-line-test-1");
        line.is_some()
    });
    assert!(
        found,
        "no JSON line with the request id in:\n{}",
        s.stderr()
    );
    let line = line.unwrap();
    assert_eq!(line["route"], "/keys/{key_id}", "{line}");
    assert_eq!(line["status"], 401, "{line}");
    assert_eq!(line["method"], "GET", "{line}");
    assert!(
        line["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
        "{line}"
    );
    assert!(
        !line.to_string().contains(key_id),
        "raw path logged: {line}"
    );
    // Every line of stderr is one JSON object, the start-up lines included.
    for l in s.stderr().lines() {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        assert!(v["level"].is_string() && v["timestamp"].is_string(), "{l}");
    }
}

#[test]
fn text_logs_by_default_and_no_line_per_request_at_info() {
    let s = Server::start(RELAXED);
    let r = raw("GET", &s.url("/healthz"), &with_id("quiet-request"), None);
    assert_eq!(r.status, 200);
    // The server logged "serving" before it printed its address.
    assert!(s.stderr().contains("serving"), "{}", s.stderr());
    assert!(serde_json::from_str::<Value>(s.stderr().lines().next().unwrap_or("")).is_err());
    std::thread::sleep(Duration::from_millis(200));
    assert!(!s.stderr().contains("quiet-request"), "{}", s.stderr());
}

#[test]
fn the_served_openapi_document_is_docs_openapi_json_byte_for_byte() {
    let s = Server::start(RELAXED);
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))
            .expect("docs/openapi.json");
    let r = raw("GET", &s.url("/openapi.json"), &[], None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(
        r.text == committed,
        "GET /openapi.json differs from docs/openapi.json"
    );
    assert_eq!(r.body["openapi"], "3.1.0");
    // Public: no credential needed, and every path it lists is one the server routes.
    for path in r.body["paths"].as_object().unwrap().keys() {
        let probe = path.replace(['{', '}'], "");
        let answer = raw("OPTIONS", &s.url(&probe), &[], None);
        assert_eq!(answer.status, 204, "OPTIONS {probe}: {}", answer.text);
    }
}
