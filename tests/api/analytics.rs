//! Per-key, per-route analytics (issue 10, item 5): a known mix of routes and
//! statuses counted exactly, routes by template, the `days` bounds, other
//! accounts' keys, and the counts across kill -9 and a snapshot restart.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{login, register_and_login, snapshots, Server};

/// RELAXED, and sessions that last the whole test.
const ARGS: &[&str] = &[
    "--ip-rate-limit",
    "100000/1m",
    "--keys-per-day",
    "1000",
    "--session-max-uses",
    "100000",
];

/// A new key of `session`'s account with these fields; returns (key, key_id).
fn new_key(s: &Server, session: &str, body: Value) -> (String, String) {
    let r = s.call("POST", "/generate-key", Some(session), Some(body));
    assert_eq!(r.status, 201, "{}", r.text);
    (r.str("key"), r.str("key_id"))
}

fn status(s: &Server, method: &str, path: &str, token: &str) -> u16 {
    s.call(method, path, Some(token), None).status
}

/// The analytics of `key_id` as `token` sees them.
fn analytics(s: &Server, token: &str, key_id: &str, query: &str) -> Value {
    let r = s.call(
        "GET",
        &format!("/api/keys/{key_id}/analytics{query}"),
        Some(token),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r.body
}

/// A reader key (pool:read, keys:read) limited to 10 requests a minute, used
/// for 7 GETs of a pool key (200), 3 of unknown ones (404), 2 checkouts
/// (403: no pool:write) and 3 more GETs (429: the rate limit). Returns
/// (session, key_id).
fn known_mix(s: &Server, user: &str) -> (String, String) {
    let session = register_and_login(s, user);
    let r = s.call("POST", "/keys", Some(&session), None);
    assert_eq!(r.status, 201, "{}", r.text);
    let pool_key = r.str("key_id");
    let (key, key_id) = new_key(
        s,
        &session,
        json!({"name": "r", "role": "reader", "rate_limit": {"limit": 10, "window_secs": 3600}}),
    );
    for _ in 0..7 {
        assert_eq!(status(s, "GET", &format!("/keys/{pool_key}"), &key), 200);
    }
    for _ in 0..3 {
        let unknown = uuid::Uuid::new_v4();
        assert_eq!(status(s, "GET", &format!("/keys/{unknown}"), &key), 404);
    }
    for _ in 0..2 {
        assert_eq!(status(s, "POST", "/keys", &key), 403);
    }
    for _ in 0..3 {
        assert_eq!(status(s, "GET", &format!("/keys/{pool_key}"), &key), 429);
    }
    (session, key_id)
}

fn today(a: &Value) -> &Value {
    a["days"].as_array().unwrap().last().unwrap()
}

#[test]
fn a_known_mix_of_routes_and_statuses_is_counted_exactly_by_template() {
    let s = Server::start(ARGS);
    let (session, key_id) = known_mix(&s, "alice");
    let a = analytics(&s, &session, &key_id, "");
    assert_eq!(a["key_id"], key_id.as_str());
    let days = a["days"].as_array().unwrap();
    assert_eq!(days.len(), 30, "default 30 days");
    let d = today(&a);
    assert_eq!(d["requests"], 15, "{d}");
    assert_eq!(d["errors_4xx"], 8, "{d}");
    assert_eq!(d["errors_5xx"], 0, "{d}");
    assert_eq!(d["rate_limited"], 3, "{d}");
    assert_eq!(
        d["by_route"],
        json!({"GET /keys/{key_id}": 13, "POST /keys": 2}),
        "templates, never raw paths"
    );
    let (p50, p99) = (d["p50_ms"].as_f64().unwrap(), d["p99_ms"].as_f64().unwrap());
    assert!(p50 > 0.0 && p99 >= p50, "{d}");
    // Every earlier day is present, consecutive, and empty.
    let names: Vec<&str> = days.iter().map(|d| d["day"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, names, "oldest first, no repeats");
    for d in &days[..29] {
        assert_eq!(d["requests"], 0, "{d}");
        assert_eq!(d["by_route"], json!({}), "{d}");
        assert_eq!(d["p50_ms"], 0.0, "{d}");
    }
    // The session's own requests are not the key's.
    assert_eq!(today(&analytics(&s, &session, &key_id, ""))["requests"], 15);
}

#[test]
fn days_is_bounded_and_other_accounts_keys_are_not_found() {
    let s = Server::start(ARGS);
    let alice = register_and_login(&s, "alice");
    let bob = register_and_login(&s, "bob");
    let (_, key_id) = new_key(&s, &alice, json!({"name": "k"}));
    for q in [
        "?days=0",
        "?days=91",
        "?days=junk",
        "?days=",
        "?days=-1",
        "?days=1.5",
    ] {
        let r = s.call(
            "GET",
            &format!("/api/keys/{key_id}/analytics{q}"),
            Some(&alice),
            None,
        );
        assert_eq!(r.status, 400, "{q}: {}", r.text);
        assert!(r.error().contains("days"), "{}", r.text);
    }
    assert_eq!(
        analytics(&s, &alice, &key_id, "?days=1")["days"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        analytics(&s, &alice, &key_id, "?days=90")["days"]
            .as_array()
            .unwrap()
            .len(),
        90
    );
    let unknown = uuid::Uuid::new_v4().to_string();
    for (who, id) in [
        (&bob, key_id.as_str()),
        (&alice, &unknown),
        (&alice, "nope"),
    ] {
        let r = s.call("GET", &format!("/api/keys/{id}/analytics"), Some(who), None);
        assert_eq!(r.status, 404, "{}", r.text);
    }
    // An API key needs keys:read; a reader key of the account may look.
    let (worker, _) = new_key(&s, &alice, json!({"name": "w", "role": "worker"}));
    let (reader, _) = new_key(&s, &alice, json!({"name": "r", "role": "reader"}));
    let path = format!("/api/keys/{key_id}/analytics");
    assert_eq!(status(&s, "GET", &path, &worker), 403);
    assert_eq!(status(&s, "GET", &path, &reader), 200);
    // A deleted key's analytics go with it.
    let r = s.call(
        "DELETE",
        "/api/key/delete",
        Some(&alice),
        Some(json!({"name": "k"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(status(&s, "GET", &path, &alice), 404);
}

#[test]
fn counts_survive_kill_9_after_a_second_and_a_snapshot_restart() {
    let mut s = Server::start(ARGS);
    let (session, key_id) = known_mix(&s, "alice");
    let before = analytics(&s, &session, &key_id, "?days=3");
    assert_eq!(today(&before)["requests"], 15);
    // The flusher writes every 500 ms: a second later the counts are durable.
    std::thread::sleep(Duration::from_millis(1100));
    s.kill9();
    s.restart();
    let session = login(&s, "alice");
    assert_eq!(analytics(&s, &session, &key_id, "?days=3"), before);
    // A clean stop writes a snapshot; the restart reads the counts from it.
    assert!(s.sigterm().success());
    assert!(!snapshots(&s.dir).is_empty());
    s.restart();
    let session = login(&s, "alice");
    assert_eq!(analytics(&s, &session, &key_id, "?days=3"), before);
}
