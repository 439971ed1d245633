//! Property-based fuzzing (proptest) of the parsers that read a client's
//! bytes: routing, percent-decoding and query strings, JSON bodies, the
//! credential headers and request IDs. Every test is named `fuzz_*` and
//! bounded in cases, so `cargo test fuzz_` runs them all in seconds.

use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{HeaderMap, Method, StatusCode};
use proptest::prelude::*;

use super::request::{credential, parse_json, percent_decode, query_param, Credential};
use super::request_id::{self, RequestIds, X_REQUEST_ID};
use super::router::{resolve, Route};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Path segments the router knows, plus hostile ones.
fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(vec![
            "pools", "keys", "lease", "keepalive", "stats", "api", "user", "key", "usage",
            "pin", "verify", "disable", "enable", "video", "info", "purchase", "stream",
            "create", "delete", "healthz", "metrics", "openapi.json", "index.html", "app.js",
            "", "%2F", "%", "..", ".", "é", "\u{0}", "%00", "+", "{key_id}",
        ])
        .prop_map(str::to_owned),
        1 => ".{0,12}",
    ]
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        (proptest::collection::vec(segment(), 0..7), any::<bool>()).prop_map(|(s, slash)| {
            let mut p = format!("/{}", s.join("/"));
            if slash {
                p.push('/');
            }
            p
        }),
    ]
}

const METHODS: [Method; 8] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
    Method::TRACE,
];

proptest! {
    #![proptest_config(config(2000))]

    /// Any path resolves or not without panicking; a resolved route's label is
    /// the path with its parameters replaced by `{name}`, every method its
    /// `Allow` lists is allowed (and no other), and OPTIONS is always allowed.
    #[test]
    fn fuzz_router_resolve(p in path()) {
        let Some(route) = resolve(&p) else { return Ok(()) };
        let label = route.label();
        prop_assert!(label.starts_with('/'), "{p:?} -> {label}");
        let trimmed = p.strip_prefix('/').unwrap();
        let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
        if !matches!(route, Route::Index) {
            let got: Vec<&str> = trimmed.split('/').collect();
            let want: Vec<&str> = label[1..].split('/').collect();
            prop_assert_eq!(got.len(), want.len(), "{:?} -> {}", p, label);
            for (g, w) in got.iter().zip(&want) {
                if w.starts_with('{') {
                    prop_assert!(!g.is_empty(), "{p:?}: empty parameter for {w}");
                } else {
                    prop_assert_eq!(g, w, "{:?} -> {}", p, label);
                }
            }
        } else {
            prop_assert!(trimmed.is_empty() || trimmed == "index.html", "{p:?}");
        }
        let allow = route.allow();
        prop_assert!(!allow.is_empty());
        prop_assert!(route.allows(&Method::OPTIONS), "{label}: {allow}");
        for m in &METHODS {
            let listed = allow.split(", ").any(|a| a == m.as_str());
            prop_assert_eq!(route.allows(m), listed, "{} {}: {}", m, label, allow);
            let _ = route.scope(m);
        }
        // The label resolves back to the same route.
        let again = label.replace(['{', '}'], "");
        prop_assert_eq!(resolve(&again).map(|r| r.label()), Some(label));
    }

    /// Decoding never panics, never grows the input, and leaves text without
    /// `%` or `+` alone.
    #[test]
    fn fuzz_percent_decode_any(s in prop_oneof![any::<String>(), "[%+0-9a-fA-Fé]{0,24}"]) {
        let out = percent_decode(&s);
        prop_assert!(out.len() <= s.len().max(3), "{s:?} -> {out:?}");
        if !s.contains(['%', '+']) {
            prop_assert_eq!(out, s);
        }
    }

    /// Every byte string, percent-encoded (in either case), decodes back.
    #[test]
    fn fuzz_percent_decode_round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..64), upper in any::<bool>()) {
        let enc: String = bytes
            .iter()
            .map(|b| if upper { format!("%{b:02X}") } else { format!("%{b:02x}") })
            .collect();
        prop_assert_eq!(percent_decode(&enc), String::from_utf8_lossy(&bytes).into_owned());
    }

    /// A query built from pairs gives back the first value of each name; a
    /// name that is not there is `None`; hostile query strings never panic.
    #[test]
    fn fuzz_query_param(
        pairs in proptest::collection::vec((".{1,8}", ".{0,12}"), 0..6),
        junk in any::<String>(),
        missing in "[A-Z]{9}",
    ) {
        let enc = |s: &str| s.bytes().map(|b| format!("%{b:02X}")).collect::<String>();
        let q = pairs
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        for (k, _) in &pairs {
            let first = &pairs.iter().find(|(k2, _)| k2 == k).unwrap().1;
            let got = query_param(Some(&q), k);
            prop_assert_eq!(got.as_ref(), Some(first));
        }
        prop_assert_eq!(query_param(Some(&q), &missing), None);
        prop_assert_eq!(query_param(None, "x"), None);
        let _ = query_param(Some(&junk), "count");
        let _ = query_param(Some(&junk), "");
    }
}

#[derive(Debug, serde::Deserialize)]
#[allow(dead_code)]
struct Body {
    name: Option<String>,
    count: Option<u32>,
    tags: Option<Vec<String>>,
}

fn content_type() -> impl Strategy<Value = Option<Vec<u8>>> {
    proptest::option::of(prop_oneof![
        Just(b"application/json".to_vec()),
        Just(b"application/json; charset=utf-8".to_vec()),
        Just(b"text/plain".to_vec()),
        Just(b"APPLICATION/JSON".to_vec()),
        proptest::collection::vec(any::<u8>(), 0..40),
    ])
}

fn headers_with(name: hyper::header::HeaderName, value: Option<Vec<u8>>) -> HeaderMap {
    let mut h = HeaderMap::new();
    if let Some(v) = value.and_then(|v| HeaderValue::from_bytes(&v).ok()) {
        h.insert(name, v);
    }
    h
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        // Exact in binary, so that the text round trip is exact (serde_json
        // does not promise it for every f64 without `float_roundtrip`).
        any::<i32>().prop_map(|n| Value::from(f64::from(n) / 4.0)),
        ".{0,10}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Mutations of a valid body: truncation, a flipped byte, an inserted byte.
fn mutated_json() -> impl Strategy<Value = Vec<u8>> {
    (
        json_value(),
        any::<prop::sample::Index>(),
        any::<u8>(),
        0..3u8,
    )
        .prop_map(|(v, at, b, how)| {
            let mut s = serde_json::to_vec(&v).unwrap();
            let i = at.index(s.len() + 1);
            match how {
                0 => s.truncate(i),
                1 if i < s.len() => s[i] ^= b | 1,
                _ => s.insert(i, b),
            }
            s
        })
}

proptest! {
    #![proptest_config(config(1500))]

    /// Any body under any Content-Type is parsed or refused with 400/415,
    /// never a panic and never another status.
    #[test]
    fn fuzz_parse_json_any_bytes(
        ct in content_type(),
        body in prop_oneof![proptest::collection::vec(any::<u8>(), 0..200), mutated_json()],
    ) {
        let h = headers_with(CONTENT_TYPE, ct);
        for r in [
            parse_json::<Body>(&h, &body).err(),
            parse_json::<serde_json::Value>(&h, &body).err(),
        ].into_iter().flatten() {
            prop_assert!(
                matches!(r.status, StatusCode::BAD_REQUEST | StatusCode::UNSUPPORTED_MEDIA_TYPE),
                "{:?}: {}", r.status, r.message
            );
            prop_assert!(!r.message.is_empty());
        }
    }

    /// Valid JSON that is not an object is refused with 400 (serde would read a
    /// struct from an array); an object is accepted.
    #[test]
    fn fuzz_parse_json_objects_only(v in json_value(), pad in "[ \t\r\n]{0,3}") {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let body = format!("{pad}{v}{pad}");
        let got = parse_json::<serde_json::Value>(&h, body.as_bytes());
        if v.is_object() {
            prop_assert_eq!(got.unwrap(), v);
        } else {
            let e = got.unwrap_err();
            prop_assert_eq!(e.status, StatusCode::BAD_REQUEST);
        }
    }

    /// Any `Authorization`/`X-API-Key` value gives a credential without
    /// panicking: a key or token is never empty nor padded, a Bearer token
    /// starting `sk_` is a key, and anything else is a session token.
    #[test]
    fn fuzz_credential(
        auth in proptest::option::of(prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..60),
            "(Bearer|bearer|BEARER|Basic|) {0,2}(sk_live_)?[ -~]{0,20}".prop_map(String::into_bytes),
        ]),
        key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..60)),
    ) {
        let mut h = headers_with(AUTHORIZATION, auth);
        if let Some(v) = key.and_then(|v| HeaderValue::from_bytes(&v).ok()) {
            h.insert("x-api-key", v);
        }
        match credential(&h) {
            Credential::ApiKey(s) | Credential::Session(s) => {
                prop_assert!(!s.is_empty() && s.trim() == s, "{s:?}");
                if h.get("x-api-key").is_none() {
                    prop_assert_eq!(s.starts_with("sk_"), matches!(credential(&h), Credential::ApiKey(_)));
                }
            }
            Credential::None => {
                prop_assert!(h.get("x-api-key").is_none() && h.get(AUTHORIZATION).is_none());
            }
            Credential::Malformed => {}
        }
    }

    /// An incoming request ID is echoed exactly when it is 1-128 bytes of the
    /// allowed set; otherwise a generated (valid) ID replaces it.
    #[test]
    fn fuzz_request_id(id in prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        "[A-Za-z0-9._:-]{0,140}".prop_map(String::into_bytes),
    ]) {
        let ids = RequestIds::new();
        let h = headers_with(X_REQUEST_ID, Some(id.clone()));
        let got = ids.for_request(&h);
        prop_assert!(request_id::is_valid(got.as_bytes()));
        let ok = !id.is_empty()
            && id.len() <= request_id::MAX_LEN
            && id.iter().all(|b| b.is_ascii_alphanumeric() || b".:_-".contains(b));
        prop_assert_eq!(request_id::is_valid(&id), ok);
        if ok {
            prop_assert_eq!(got.as_bytes(), &id[..]);
        } else {
            prop_assert_ne!(got.as_bytes(), &id[..]);
        }
    }
}
