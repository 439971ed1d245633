//! The security event log over HTTP (`GET /api/user/events`): what each
//! route logs, with the peer address and the key's public prefix; coalescing;
//! a key's new address (a client bound to 127.0.0.2); pages; scopes; no
//! secret in any entry; kill -9 and a snapshot restart.

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{login, raw, register_and_login, Resp, Server};

pub const PASSWORD: &str = "correct horse battery";

/// Sessions that last the whole test, a short payment delay.
pub fn start() -> Server {
    Server::start(&[
        "--ip-rate-limit",
        "100000/1m",
        "--keys-per-day",
        "1000",
        "--session-max-uses",
        "100000",
        "--payment-delay",
        "100ms",
    ])
}

/// One page, asserted 200.
pub fn page(s: &Server, token: &str, query: &str) -> Value {
    let r = s.call(
        "GET",
        &format!("/api/user/events{query}"),
        Some(token),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

/// Every entry of the caller's log, newest first, following `next_before`.
pub fn all(s: &Server, token: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut query = "?limit=200".to_string();
    for _ in 0..10 {
        let p = page(s, token, &query);
        out.extend(p["events"].as_array().unwrap().iter().cloned());
        match p["next_before"].as_u64() {
            Some(b) => query = format!("?limit=200&before={b}"),
            None => return out,
        }
    }
    panic!("more than 10 pages");
}

/// The entries' types, oldest first.
pub fn types(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .rev()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

/// The entries of one type, newest first.
pub fn of<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["type"] == kind).collect()
}

/// No secret appears anywhere in the caller's log.
pub fn assert_no_secret(s: &Server, token: &str, secrets: &[&str]) {
    let text = serde_json::to_string(&all(s, token)).unwrap();
    for secret in secrets {
        assert!(!text.contains(secret), "{secret:?} is in the log: {text}");
    }
}

/// A request with an API key in `X-API-Key`.
pub fn with_key(s: &Server, method: &str, path: &str, key: &str, body: Option<Value>) -> Resp {
    raw(
        method,
        &s.url(path),
        &[("X-API-Key".to_string(), key.to_string())],
        body.map(|b| b.to_string()),
    )
}

/// `GET path` with `key` from the source address `src` (any of 127/8 is
/// loopback on Linux); answers the status.
pub fn get_from(src: &str, s: &Server, path: &str, key: &str) -> u16 {
    let to: std::net::SocketAddr = s.base.trim_start_matches("http://").parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let mut c = rt
        .block_on(async {
            let sock = tokio::net::TcpSocket::new_v4()?;
            sock.bind(format!("{src}:0").parse().unwrap())?;
            sock.connect(to).await?.into_std()
        })
        .expect("connect from another loopback address");
    c.set_nonblocking(false).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    c.read_to_string(&mut text).unwrap();
    text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap()
}

/// A new key of the session's account: (full key, key_id).
pub fn new_key(s: &Server, token: &str, body: Value) -> (String, String) {
    let r = s.call("POST", "/generate-key", Some(token), Some(body));
    assert_eq!(r.status, 201, "{}", r.text);
    (r.str("key"), r.str("key_id"))
}

#[test]
fn sign_ins_are_logged_with_the_peer_address_and_failures_coalesce() {
    let s = start();
    let alice = register_and_login(&s, "alice");
    let bob = register_and_login(&s, "bob");
    for _ in 0..4 {
        let r = s.call(
            "POST",
            "/login",
            None,
            Some(json!({"username": "alice", "password": "wrong password!"})),
        );
        assert_eq!(r.status, 401);
    }
    // An unknown name has no log to go to; the answer is the same.
    let r = s.call(
        "POST",
        "/login",
        None,
        Some(json!({"username": "nobody", "password": "wrong password!"})),
    );
    assert_eq!(r.status, 401);
    let second = login(&s, "alice");
    assert_eq!(s.call("POST", "/logout", Some(&second), None).status, 200);
    let events = all(&s, &alice);
    assert_eq!(
        types(&events),
        ["login", "login_failed", "login", "logout"],
        "{events:?}"
    );
    // Four failures within the minute: one entry, standing for the first.
    let failed = of(&events, "login_failed");
    assert_eq!(failed[0]["detail"], json!({"count": 1}));
    for e in &events {
        assert_eq!(e["ip"], "127.0.0.1", "{e}");
        assert!(e.get("key_prefix").is_none(), "{e}");
        assert!(e["at"].as_str().unwrap().ends_with('Z'), "{e}");
        assert!(e["detail"].is_object(), "{e}");
    }
    let ids: Vec<u64> = events.iter().map(|e| e["id"].as_u64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    // Bob sees his own sign-in only.
    assert_eq!(types(&all(&s, &bob)), ["login"]);
    assert_no_secret(&s, &alice, &[PASSWORD, "wrong password!", &alice, &second]);
    assert_eq!(s.call("GET", "/api/user/events", None, None).status, 401);
}

#[test]
fn every_key_change_is_logged_with_its_public_prefix() {
    let s = start();
    let t = register_and_login(&s, "carol");
    let (key, key_id) = new_key(&s, &t, json!({"name": "ci"}));
    let prefix = &key[..12];
    let path = |what: &str| format!("/api/keys/{key_id}/{what}");
    for what in ["disable", "disable", "enable"] {
        assert_eq!(s.call("POST", &path(what), Some(&t), None).status, 200);
    }
    let r = s.call(
        "POST",
        &path("rotate"),
        Some(&t),
        Some(json!({"grace_secs": 60})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let (new, new_id) = (r.str("key"), r.str("key_id"));
    let r = s.call(
        "POST",
        "/revoke-key",
        Some(&t),
        Some(json!({"key": new_id})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // Seed 000's create and delete, seed 003's replacement of the primary key.
    let r = s.call(
        "POST",
        "/api/key/create",
        Some(&t),
        Some(json!({"name": "old", "creator": "carol"})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let seed000 = r.str("api_key");
    let r = s.call(
        "DELETE",
        "/api/key/delete",
        Some(&t),
        Some(json!({"name": "old"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let mut primaries = Vec::new();
    for _ in 0..2 {
        let r = s.call(
            "POST",
            "/api/user/key",
            Some(&t),
            Some(json!({"email": "carol"})),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        primaries.push(r.str("key"));
    }
    let events = all(&s, &t);
    // The second disable changed nothing: no entry for it.
    let want = [
        ("login", None),
        ("key_created", Some(prefix.to_string())),
        ("key_disabled", Some(prefix.to_string())),
        ("key_enabled", Some(prefix.to_string())),
        ("key_rotated", Some(prefix.to_string())),
        ("key_revoked", Some(new[..12].to_string())),
        ("key_created", Some(seed000[..12].to_string())),
        ("key_deleted", Some(seed000[..12].to_string())),
        ("key_created", Some(primaries[0][..12].to_string())),
        ("key_created", Some(primaries[1][..12].to_string())),
        ("key_revoked", Some(primaries[0][..12].to_string())),
    ];
    let got: Vec<(String, Option<String>)> = events
        .iter()
        .rev()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["key_prefix"].as_str().map(str::to_string),
            )
        })
        .collect();
    let want: Vec<(String, Option<String>)> = want
        .iter()
        .map(|(k, p)| (k.to_string(), p.clone()))
        .collect();
    assert_eq!(got, want, "{events:?}");
    let rotated = &of(&events, "key_rotated")[0]["detail"];
    assert_eq!(rotated["key_id"], key_id.as_str());
    assert_eq!(rotated["new_key_id"], new_id.as_str());
    assert_eq!(rotated["new_key_prefix"], &new[..12]);
    assert_eq!(
        of(&events, "key_created").last().unwrap()["detail"]["name"],
        "ci"
    );
    let mut secrets = vec![PASSWORD, &t, &key, &new, &seed000];
    secrets.extend(primaries.iter().map(String::as_str));
    assert_no_secret(&s, &t, &secrets);
}

#[test]
fn a_key_used_from_a_new_address_is_logged_once_per_address() {
    let s = start();
    let t = register_and_login(&s, "dave");
    let (key, _) = new_key(&s, &t, json!({"name": "w"}));
    let new_ip = |s: &Server| {
        of(&all(s, &t), "key_used_from_new_ip")
            .iter()
            .map(|e| {
                assert_eq!(e["key_prefix"], &key[..12], "{e}");
                e["ip"].as_str().unwrap().to_string()
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(new_ip(&s), Vec::<String>::new(), "not used yet");
    for _ in 0..3 {
        assert_eq!(get_from("127.0.0.1", &s, "/list-keys", &key), 200);
    }
    assert_eq!(new_ip(&s), ["127.0.0.1"]);
    for _ in 0..3 {
        assert_eq!(get_from("127.0.0.2", &s, "/list-keys", &key), 200);
    }
    // Newest first: the second address, then the first; each once.
    assert_eq!(new_ip(&s), ["127.0.0.2", "127.0.0.1"]);
    // A refused use (a scope the key lacks) is still a use from that address.
    let (worker, _) = new_key(&s, &t, json!({"name": "w2", "role": "worker"}));
    assert_eq!(get_from("127.0.0.2", &s, "/list-keys", &worker), 403);
    let events = all(&s, &t);
    assert_eq!(of(&events, "key_used_from_new_ip").len(), 3);
    assert_eq!(
        of(&events, "key_used_from_new_ip")[0]["key_prefix"],
        &worker[..12]
    );
    assert_no_secret(&s, &t, &[&key, &worker, &t]);
}

#[test]
fn rate_limits_and_spent_credits_are_logged_once_a_minute_per_key() {
    let s = start();
    let t = register_and_login(&s, "erin");
    let (limited, _) = new_key(
        &s,
        &t,
        json!({"name": "l", "rate_limit": {"limit": 1, "window_secs": 3600}}),
    );
    let (metered, _) = new_key(&s, &t, json!({"name": "m", "credits": {"remaining": 1}}));
    for key in [&limited, &metered] {
        let statuses: Vec<u16> = (0..4)
            .map(|_| with_key(&s, "GET", "/list-keys", key, None).status)
            .collect();
        assert_eq!(statuses, [200, 429, 429, 429]);
    }
    let events = all(&s, &t);
    let limited_e = of(&events, "rate_limited");
    assert_eq!(limited_e.len(), 1, "{events:?}");
    assert_eq!(limited_e[0]["key_prefix"], &limited[..12]);
    assert_eq!(limited_e[0]["detail"]["count"], 1);
    let spent = of(&events, "credits_exhausted");
    assert_eq!(spent.len(), 1, "{events:?}");
    assert_eq!(spent[0]["key_prefix"], &metered[..12]);
    assert_eq!(spent[0]["ip"], "127.0.0.1");
    assert_no_secret(&s, &t, &[&limited, &metered, &t]);
}
