//! Bad input of every kind gets its status and a one-sentence JSON error, never
//! a panic or a 500, and the server keeps serving afterwards.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::{raw, Server, RELAXED};

fn json_header() -> Vec<(String, String)> {
    vec![("Content-Type".into(), "application/json".into())]
}

#[test]
fn unknown_routes_and_wrong_methods() {
    let s = Server::start(&["--open-pool"]);
    let r = s.call("GET", "/nope", None, None);
    assert_eq!(r.status, 404);
    assert!(r.error().contains("/nope"), "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let r = s.call("PATCH", "/keys", None, None);
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, POST, OPTIONS"));
    assert!(!r.error().is_empty());
    let r = s.call("POST", "/keys/abc", None, None);
    assert_eq!(
        (r.status, r.header("allow")),
        (405, Some("GET, PUT, DELETE, OPTIONS"))
    );
    let r = s.call("GET", "/keys/not-a-uuid", None, None);
    assert_eq!(r.status, 404);
    let r = s.call("OPTIONS", "/keys", None, None);
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert!(r
        .header("access-control-allow-headers")
        .unwrap_or("")
        .contains("X-API-Key"));
}

#[test]
fn malformed_wrong_typed_and_non_json_bodies() {
    let s = Server::start(RELAXED);
    let url = s.url("/register");
    let cases: &[(&str, u16, &str)] = &[
        (r#"{"username": "bob", "password": "#, 400, "Malformed JSON"),
        (r#"not json"#, 400, "Malformed JSON"),
        (
            r#"{"username": 5, "password": "long enough"}"#,
            400,
            "`username`",
        ),
        (r#"{"username": "bob"}"#, 400, "password"),
        (r#"[1, 2]"#, 400, "Invalid"),
        (r#"42"#, 400, "Invalid request body"),
        (
            r#"{"username": "b", "password": "long enough"}"#,
            400,
            "username",
        ),
        (
            r#"{"username": "bob", "password": "short"}"#,
            400,
            "password",
        ),
    ];
    for (body, status, needle) in cases {
        let r = raw("POST", &url, &json_header(), Some(body.to_string()));
        assert_eq!(r.status, *status, "{body}: {}", r.text);
        assert!(r.error().contains(needle), "{body}: {}", r.text);
    }
    let r = raw(
        "POST",
        &url,
        &[("Content-Type".into(), "text/plain".into())],
        Some("hello".into()),
    );
    assert_eq!(r.status, 415, "{}", r.text);
    // Nothing was registered by any of that, and the server still answers.
    assert_eq!(s.call("GET", "/healthz", None, None).status, 200);
}

#[test]
fn oversized_bodies_are_refused_with_content_length_or_chunked() {
    let s = Server::start(&["--max-body", "1024", "--open-pool"]);
    let big = format!(r#"{{"username": "{}", "password": "x"}}"#, "a".repeat(5000));
    let r = raw(
        "POST",
        &s.url("/register"),
        &json_header(),
        Some(big.clone()),
    );
    assert_eq!(r.status, 413, "{}", r.text);
    assert!(r.error().contains("1024"));

    // Chunked: no Content-Length, so the limit must apply while reading.
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut tcp = TcpStream::connect(&addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = String::from(
        "POST /register HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    for chunk in big.as_bytes().chunks(500) {
        req.push_str(&format!(
            "{:x}\r\n{}\r\n",
            chunk.len(),
            std::str::from_utf8(chunk).unwrap()
        ));
    }
    req.push_str("0\r\n\r\n");
    tcp.write_all(req.as_bytes()).unwrap();
    let mut buf = vec![0; 4096];
    let n = tcp.read(&mut buf).unwrap();
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert_eq!(s.call("GET", "/healthz", None, None).status, 200);
}

#[test]
fn garbage_on_the_socket_does_not_hurt_the_server() {
    let s = Server::start(&["--open-pool"]);
    let addr = s.base.trim_start_matches("http://").to_string();
    for junk in [
        &b"\x00\x01\x02 garbage\r\n\r\n"[..],
        b"GET / HTTP/9.9\r\n\r\n",
        b"GET /keys HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    ] {
        let mut tcp = TcpStream::connect(&addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = tcp.write_all(junk);
        let mut buf = vec![0; 1024];
        let _ = tcp.read(&mut buf);
    }
    assert_eq!(s.call("POST", "/keys", None, None).status, 201);
}

#[test]
fn a_slow_client_is_cut_off_by_the_header_timeout() {
    let s = Server::start(&["--header-timeout", "500ms", "--open-pool"]);
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut tcp = TcpStream::connect(&addr).unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap(); // never finishes its headers
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let started = std::time::Instant::now();
    let mut buf = vec![0; 1024];
    let n = tcp.read(&mut buf).unwrap_or(0);
    // hyper answers 408 or just closes; either way well before our 10 s read timeout.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "connection held for {:?}",
        started.elapsed()
    );
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(n == 0 || head.starts_with("HTTP/1.1 408"), "{head}");
    assert_eq!(s.call("GET", "/healthz", None, None).status, 200);
}

/// Found by schemathesis: `POST /generate-key` with the body `[null, null]`
/// created a key (serde reads a struct from a JSON array), and `POST /login`
/// took `["alice", "password"]` as credentials. Every body must be an object.
#[test]
fn regression_a_json_array_body_is_refused_not_read_as_the_fields_in_order() {
    let s = Server::start(RELAXED);
    let token = crate::support::register_and_login(&s, "arrays");
    let auth = vec![
        ("Content-Type".to_string(), "application/json".to_string()),
        ("Authorization".to_string(), format!("Bearer {token}")),
    ];
    let r = raw(
        "POST",
        &s.url("/generate-key"),
        &auth,
        Some("[null, null]".into()),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.error().contains("JSON object"), "{}", r.text);
    let r = raw(
        "POST",
        &s.url("/login"),
        &json_header(),
        Some(r#"["arrays", "correct horse battery"]"#.into()),
    );
    assert_eq!(r.status, 400, "{}", r.text);
    for body in ["5", "null", "\"text\""] {
        let r = raw("POST", &s.url("/revoke-key"), &auth, Some(body.into()));
        assert_eq!(r.status, 400, "{body}: {}", r.text);
    }
    // No key was created by the array.
    let r = s.call("GET", "/list-keys", Some(&token), None);
    assert_eq!(
        r.body["items"].as_array().map(Vec::len),
        Some(0),
        "{}",
        r.text
    );
}
