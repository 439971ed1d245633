//! Accounts, sessions and API keys (seeds 000, 001, 003/004) over HTTP.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use crate::support::{api_key, call, eventually, login, raw, register_and_login, Server, RELAXED};

fn with_key(method: &str, s: &Server, path: &str, key: &str) -> crate::support::Resp {
    raw(
        method,
        &s.url(path),
        &[("X-API-Key".into(), key.into())],
        None,
    )
}

#[test]
fn register_login_and_the_eleventh_session_use() {
    let s = Server::start(RELAXED);
    let body = json!({"username": "alice", "password": "correct horse battery", "email": "alice@example.com"});
    let r = s.call("POST", "/register", None, Some(body.clone()));
    assert_eq!(
        (r.status, r.body["message"].as_str()),
        (201, Some("User registered successfully."))
    );
    let r = s.call(
        "POST",
        "/register",
        None,
        Some(json!({"username": "ALICE", "password": "another password"})),
    );
    assert_eq!((r.status, r.error()), (409, "Username already exists."));

    let r = s.call(
        "POST",
        "/login",
        None,
        Some(json!({"username": "alice", "password": "correct horse battery"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["remaining_uses"], 10);
    assert!(r.body["expires_at"].is_string());
    let token = r.str("token");

    let wrong = s.call(
        "POST",
        "/login",
        None,
        Some(json!({"username": "alice", "password": "wrong password"})),
    );
    let unknown = s.call(
        "POST",
        "/login",
        None,
        Some(json!({"username": "nobody", "password": "wrong password"})),
    );
    assert_eq!(
        (wrong.status, wrong.error()),
        (401, "Invalid username or password.")
    );
    assert_eq!(
        (unknown.status, unknown.body.clone()),
        (wrong.status, wrong.body.clone())
    );

    for i in 1..=10 {
        let r = s.call("GET", "/list-keys", Some(&token), None);
        assert_eq!(r.status, 200, "use {i}: {}", r.text);
    }
    let r = s.call("GET", "/list-keys", Some(&token), None);
    assert_eq!(
        (r.status, r.error()),
        (401, "Session expired. Please log in again.")
    );
}

#[test]
fn a_session_expires_after_its_ttl_with_uses_left() {
    let mut args = RELAXED.to_vec();
    args.extend(["--session-ttl", "1s"]);
    let s = Server::start(&args);
    let token = register_and_login(&s, "brief");
    let r = s.call("GET", "/list-keys", Some(&token), None);
    assert_eq!(r.status, 200, "{}", r.text);
    std::thread::sleep(Duration::from_millis(1_300));
    let r = s.call("GET", "/list-keys", Some(&token), None);
    assert_eq!(
        (r.status, r.error()),
        (401, "Session expired. Please log in again."),
        "9 of its 10 uses were left"
    );
}

#[test]
fn thirty_requests_racing_on_one_session_are_served_exactly_ten_times() {
    let s = Arc::new(Server::start(RELAXED));
    let token = Arc::new(register_and_login(&s, "racer"));
    let (ok, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let barrier = Arc::new(std::sync::Barrier::new(30));
    let threads: Vec<_> = (0..30)
        .map(|_| {
            let (s, token, ok, refused, barrier) = (
                s.clone(),
                token.clone(),
                ok.clone(),
                refused.clone(),
                barrier.clone(),
            );
            std::thread::spawn(move || {
                barrier.wait();
                match s.call("GET", "/list-keys", Some(&token), None).status {
                    200 => ok.fetch_add(1, Ordering::SeqCst),
                    401 => refused.fetch_add(1, Ordering::SeqCst),
                    other => panic!("unexpected status {other}"),
                };
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(
        (ok.load(Ordering::SeqCst), refused.load(Ordering::SeqCst)),
        (10, 20)
    );
}

#[test]
fn an_api_key_works_for_the_pool_counts_its_use_and_dies_when_revoked() {
    let s = Server::start(RELAXED);
    let token = register_and_login(&s, "worker-owner");
    let r = s.call(
        "POST",
        "/generate-key",
        Some(&token),
        Some(json!({"name": "fleet"})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let key = r.str("key");
    let (key_id, prefix) = (r.str("key_id"), r.str("key_prefix"));
    assert!(
        key.starts_with("sk_live_") && key.len() >= 8 + 32 + 6,
        "{key}"
    );
    assert_eq!(prefix, key[..12]);

    for _ in 0..3 {
        assert_eq!(with_key("POST", &s, "/keys", &key).status, 201);
    }
    let r = call("GET", &s.url("/stats"), Some(&key), None);
    assert_eq!(r.body["total"], 3, "Bearer works too: {}", r.text);

    // A one-character typo is refused by the checksum, before any lookup.
    let mut typo = key.clone().into_bytes();
    let i = 20;
    typo[i] = if typo[i] == b'a' { b'b' } else { b'a' };
    let r = with_key("GET", &s, "/stats", &String::from_utf8(typo).unwrap());
    assert_eq!(r.status, 401);
    assert!(r.error().contains("mistyped"), "{}", r.text);

    let token = login(&s, "worker-owner");
    assert!(
        eventually(Duration::from_millis(1500), || {
            let r = s.call("GET", "/list-keys", Some(&token), None);
            r.body["items"][0]["usage_count"] == 4
        }),
        "usage visible within a second"
    );
    let r = s.call("GET", "/list-keys", Some(&token), None);
    assert_eq!(r.body["keys"], json!([prefix]));
    let item = &r.body["items"][0];
    assert_eq!(item["key_id"], key_id.as_str());
    assert_eq!(item["name"], "fleet");
    assert!(item["last_used"].is_string());
    assert_eq!(item["usage_by_day"].as_array().map(Vec::len), Some(30));
    assert_eq!(item["usage_by_day"][29]["count"], 4);
    assert!(!r.text.contains(&key), "the full key is never listed");

    let r = s.call(
        "POST",
        "/revoke-key",
        Some(&token),
        Some(json!({"key": prefix})),
    );
    assert_eq!(
        (r.status, r.body["message"].as_str()),
        (200, Some("Key revoked"))
    );
    let r = with_key("GET", &s, "/stats", &key);
    assert_eq!(r.status, 401);
    assert!(r.error().contains("revoked"), "{}", r.text);
    let r = s.call(
        "POST",
        "/revoke-key",
        Some(&token),
        Some(json!({"key": "sk_live_nothing"})),
    );
    assert_eq!(r.status, 404);
}

#[test]
fn the_sixth_key_in_a_day_is_refused() {
    let s = Server::start(&["--ip-rate-limit", "100000/1m"]);
    register_and_login(&s, "greedy");
    let token = login(&s, "greedy");
    for i in 0..5 {
        let r = s.call(
            "POST",
            "/generate-key",
            Some(&token),
            Some(json!({"name": format!("k{i}")})),
        );
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let r = s.call(
        "POST",
        "/generate-key",
        Some(&token),
        Some(json!({"name": "k5"})),
    );
    assert_eq!(
        (r.status, r.error()),
        (429, "Rate limit exceeded. Try again later.")
    );
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(wait > 23 * 3600 && wait <= 24 * 3600, "{wait}");
}

#[test]
fn one_user_cannot_touch_anothers_keys_or_pool() {
    let s = Server::start(RELAXED);
    let alice = register_and_login(&s, "alice");
    let r = s.call(
        "POST",
        "/api/key/create",
        Some(&alice),
        Some(json!({"name": "dev1", "creator": "alice"})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["message"], "API key created successfully.");
    let alice_key = r.str("api_key");
    let alice_key_id = r.str("key_id");
    let pool_key = with_key("POST", &s, "/keys", &alice_key).str("key_id");

    register_and_login(&s, "bob");
    let bob_key = api_key(&s, "bob");
    let bob = login(&s, "bob");
    for (m, p) in [
        ("GET", format!("/keys/{pool_key}")),
        ("DELETE", format!("/keys/{pool_key}")),
        ("PUT", format!("/keepalive/{pool_key}")),
    ] {
        assert_eq!(with_key(m, &s, &p, &bob_key).status, 404, "{m} {p}");
    }
    assert_eq!(
        with_key("GET", &s, "/keys", &bob_key).status,
        404,
        "bob's pool is empty"
    );
    for sel in [alice_key.as_str(), alice_key_id.as_str(), &alice_key[..12]] {
        let r = s.call("POST", "/revoke-key", Some(&bob), Some(json!({"key": sel})));
        assert_eq!(r.status, 404, "{sel}: {}", r.text);
    }
    let bob = login(&s, "bob");
    let r = s.call(
        "DELETE",
        "/api/key/delete",
        Some(&bob),
        Some(json!({"name": "dev1"})),
    );
    assert_eq!(r.status, 404, "{}", r.text);
    let r = s.call(
        "POST",
        "/api/key/create",
        Some(&bob),
        Some(json!({"name": "x", "creator": "alice"})),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    let r = s.call("GET", "/api/user/key/alice", Some(&bob), None);
    assert_eq!(
        (r.status, r.body["success"].as_bool()),
        (403, Some(false)),
        "{}",
        r.text
    );
    let r = s.call("DELETE", "/api/user/key/alice", Some(&bob), None);
    assert_eq!(r.status, 403);
    // Alice's key and pool are untouched.
    assert_eq!(
        with_key("GET", &s, &format!("/keys/{pool_key}"), &alice_key).status,
        200
    );
}

#[test]
fn seed_000_create_and_delete_by_name() {
    let s = Server::start(RELAXED);
    let t = register_and_login(&s, "jim");
    let r = s.call(
        "POST",
        "/api/key/create",
        Some(&t),
        Some(json!({"name": "dev1", "creator": "jim"})),
    );
    assert_eq!(r.status, 201);
    let key = r.str("api_key");
    let r = s.call(
        "POST",
        "/api/key/create",
        Some(&t),
        Some(json!({"name": "dev1", "creator": "jim"})),
    );
    assert_eq!(r.status, 409, "{}", r.text);
    let r = s.call(
        "POST",
        "/api/key/create",
        None,
        Some(json!({"name": "dev2", "creator": "jim"})),
    );
    assert_eq!(r.status, 401);
    let r = raw(
        "POST",
        &s.url("/api/key/create"),
        &[("X-API-Key".into(), key.clone())],
        Some(json!({"name": "dev2", "creator": "jim"}).to_string()),
    );
    assert_eq!(r.status, 401, "seed 000 routes take a session: {}", r.text);
    let r = s.call(
        "DELETE",
        "/api/key/delete",
        Some(&t),
        Some(json!({"name": "dev1"})),
    );
    assert_eq!(
        (r.status, r.body["message"].as_str()),
        (200, Some("API key deleted successfully."))
    );
    assert_eq!(with_key("GET", &s, "/stats", &key).status, 401);
    let r = s.call(
        "DELETE",
        "/api/key/delete",
        Some(&t),
        Some(json!({"name": "dev1"})),
    );
    assert_eq!(r.status, 404);
}

#[test]
fn seed_003_primary_key_status_usage_and_revocation() {
    let s = Server::start(RELAXED);
    let r = s.call("POST", "/register", None, Some(json!({"username": "sensei", "password": "correct horse battery", "email": "s@example.com"})));
    assert_eq!(r.status, 201);
    let t = login(&s, "sensei");
    let r = s.call("GET", "/api/user/key/s@example.com", Some(&t), None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["success"], true);
    assert_eq!(r.body["keyPreference"]["hasKey"], false);
    assert_eq!(r.body["keyPreference"]["balance"], 1000);

    let r = s.call(
        "POST",
        "/api/user/key",
        Some(&t),
        Some(json!({"email": "s@example.com", "key_name": "Production Key"})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(
        (r.body["success"].as_bool(), r.body["message"].as_str()),
        (Some(true), Some("API key generated successfully"))
    );
    let first = r.str("key");
    assert_eq!(r.str("keyPrefix"), first[..12]);
    assert_eq!(with_key("GET", &s, "/stats", &first).status, 200);

    let r = s.call(
        "POST",
        "/api/user/key",
        Some(&t),
        Some(json!({"email": "sensei", "key_name": "Rotated"})),
    );
    let second = r.str("key");
    assert_eq!(
        with_key("GET", &s, "/stats", &first).status,
        401,
        "replaced key is refused"
    );
    assert_eq!(with_key("GET", &s, "/stats", &second).status, 200);

    assert!(eventually(Duration::from_millis(1500), || {
        let r = with_key("GET", &s, "/api/user/usage/sensei", &second);
        r.body["usage"]["usageCount"].as_u64() >= Some(2)
    }));
    let r = with_key("GET", &s, "/api/user/usage/sensei", &second);
    let u = &r.body["usage"];
    assert_eq!(
        (u["hasKey"].as_bool(), u["keyName"].as_str()),
        (Some(true), Some("Rotated"))
    );
    assert!(u["lastUsed"].is_string() && u["generatedAt"].is_string());

    let r = s.call("DELETE", "/api/user/key/sensei", Some(&t), None);
    assert_eq!(
        r.body,
        json!({"success": true, "message": "API key revoked successfully"})
    );
    assert_eq!(with_key("GET", &s, "/stats", &second).status, 401);
    let r = s.call("DELETE", "/api/user/key/sensei", Some(&t), None);
    assert_eq!((r.status, r.body["success"].as_bool()), (404, Some(false)));
}

#[test]
fn failed_logins_are_limited_per_ip() {
    // 5 an hour: one comes back every 12 minutes, so a slow machine running
    // five argon2 checks cannot earn a sixth before the test asks for it.
    let s = Server::start(&["--ip-rate-limit", "5/1h"]);
    for i in 0..5 {
        let r = s.call(
            "POST",
            "/login",
            None,
            Some(json!({"username": "nobody", "password": "wrong password"})),
        );
        assert_eq!(r.status, 401, "attempt {i}");
    }
    let r = s.call(
        "POST",
        "/login",
        None,
        Some(json!({"username": "nobody", "password": "wrong password"})),
    );
    assert_eq!(
        (r.status, r.error()),
        (429, "Rate limit exceeded. Try again later.")
    );
    assert!(r.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    // Wrong credentials on other routes are anonymous traffic too.
    assert_eq!(s.call("GET", "/stats", Some("st_bogus"), None).status, 429);
}

#[test]
fn expiring_keys_rate_limited_keys_and_logout() {
    let s = Server::start(RELAXED);
    let t = register_and_login(&s, "tempo");
    let r = s.call(
        "POST",
        "/generate-key",
        Some(&t),
        Some(json!({"name": "short", "expires_in": 1})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let short = r.str("key");
    assert!(r.body["expires_at"].is_string());
    let r = s.call(
        "POST",
        "/generate-key",
        Some(&t),
        Some(json!({"name": "slow", "rate_limit": {"limit": 2, "window_secs": 60}})),
    );
    let slow = r.str("key");
    assert_eq!(with_key("GET", &s, "/stats", &slow).status, 200);
    assert_eq!(with_key("GET", &s, "/stats", &slow).status, 200);
    let r = with_key("GET", &s, "/stats", &slow);
    assert_eq!(
        (r.status, r.error()),
        (429, "Rate limit exceeded. Try again later.")
    );
    assert!(r.header("retry-after").is_some());
    std::thread::sleep(Duration::from_millis(1100));
    let r = with_key("GET", &s, "/stats", &short);
    assert_eq!(r.status, 401);
    assert!(r.error().contains("expired"), "{}", r.text);

    let r = s.call("POST", "/logout", Some(&t), None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(s.call("GET", "/list-keys", Some(&t), None).status, 401);
}

#[test]
fn the_open_pool_and_account_pools_are_separate() {
    let s = Server::start(&["--open-pool", "--ip-rate-limit", "100000/1m"]);
    let anon = s.call("POST", "/keys", None, None).str("key_id");
    register_and_login(&s, "owner");
    let key = api_key(&s, "owner");
    assert_eq!(
        with_key("GET", &s, &format!("/keys/{anon}"), &key).status,
        404
    );
    assert_eq!(with_key("GET", &s, "/stats", &key).body["total"], 0);
    assert_eq!(s.call("GET", "/stats", None, None).body["total"], 1);
}
