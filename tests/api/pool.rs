//! The key pool over HTTP (seed 002), on the open pool unless a test says otherwise.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{call, eventually, Server};

fn open(extra: &[&str]) -> Server {
    let mut args = vec!["--open-pool"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

fn create(s: &Server) -> String {
    let r = s.call("POST", "/keys", None, None);
    assert_eq!(r.status, 201, "{}", r.text);
    r.str("key_id")
}

#[test]
fn every_pool_route_answers_as_the_contract_says() {
    let s = open(&[]);
    let r = s.call("POST", "/keys", None, None);
    assert_eq!(r.status, 201);
    let id = r.str("key_id");
    assert!(uuid::Uuid::parse_str(&id).is_ok());
    assert!(r.str("expires_at").ends_with('Z'));

    let r = s.call("GET", &format!("/keys/{id}"), None, None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["key_id"], id.as_str());
    assert_eq!(r.body["isBlocked"], false);
    assert_eq!(r.body["blockedAt"], Value::Null);
    assert_eq!(r.body["blockedUntil"], Value::Null);
    assert!(r.body["createdAt"].is_string() && r.body["expiresAt"].is_string());

    let r = s.call("GET", "/keys", None, None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.str("key_id"), id);
    let lease = r.str("lease_id");
    assert!(r.body["blocked_until"].is_string() && r.body["expires_at"].is_string());

    let r = s.call("GET", "/keys", None, None);
    assert_eq!((r.status, r.error()), (404, "No available keys."));

    let r = s.call("GET", &format!("/keys/{id}"), None, None);
    assert_eq!(r.body["isBlocked"], true);
    assert!(r.body["blockedAt"].is_string() && r.body["blockedUntil"].is_string());

    let stats = s.call("GET", "/stats", None, None);
    assert_eq!(
        stats.body,
        serde_json::json!({"total": 1, "available": 0, "blocked": 1, "cooling": 0})
    );

    let other = uuid::Uuid::new_v4();
    let r = s.call("PUT", &format!("/keys/{id}?lease_id={other}"), None, None);
    assert_eq!(r.status, 409, "{}", r.text);
    let r = s.call("PUT", &format!("/keys/{id}?lease_id={lease}"), None, None);
    assert_eq!(
        (r.status, r.body["message"].as_str()),
        (200, Some("Key unblocked."))
    );
    let r = s.call("PUT", &format!("/keys/{id}"), None, None);
    assert_eq!(
        (r.status, r.error()),
        (404, "Key not found or not blocked.")
    );

    let r = s.call("PUT", &format!("/keepalive/{id}"), None, None);
    assert_eq!(
        (r.status, r.body["message"].as_str()),
        (200, Some("Key kept alive."))
    );
    assert!(r.body["expires_at"].is_string());

    let r = s.call("DELETE", &format!("/keys/{id}"), None, None);
    assert_eq!(
        (r.status, r.body["message"].as_str()),
        (200, Some("Key deleted."))
    );
    for (m, p) in [
        ("GET", format!("/keys/{id}")),
        ("DELETE", format!("/keys/{id}")),
        ("PUT", format!("/keepalive/{id}")),
    ] {
        let r = s.call(m, &p, None, None);
        assert_eq!(r.status, 404, "{m} {p}: {}", r.text);
        assert!(!r.error().is_empty());
    }
    let r = s.call("GET", "/healthz", None, None);
    assert_eq!(r.body, serde_json::json!({"status": "ok"}));
    let m = s.call("GET", "/metrics", None, None);
    assert!(
        m.text
            .contains("keypool_requests_total{route=\"/keys\",status=\"201\"} 1"),
        "{}",
        m.text
    );
    assert!(m.text.contains("keypool_pool_keys 0"));
}

#[test]
fn keys_expire_and_leases_lapse_on_time_without_requests() {
    let s = open(&["--key-ttl", "3s", "--block-ttl", "1s"]);
    let t0 = Instant::now();
    let a = create(&s);
    let _b = create(&s);
    let r = s.call("GET", "/keys", None, None);
    assert_eq!(r.status, 200);
    let stats = || s.call("GET", "/stats", None, None).body;
    // Not released early ...
    std::thread::sleep(Duration::from_millis(600));
    let st = stats();
    if t0.elapsed() < Duration::from_millis(950) {
        assert_eq!(st["blocked"], 1, "released before its time: {st}");
    }
    // ... and released within a second of its deadline (1 s after checkout),
    // by the reaper alone: /stats does not touch keys.
    assert!(
        eventually(Duration::from_secs(2).saturating_sub(t0.elapsed()), || {
            let st = stats();
            st["blocked"] == 0 && st["available"] == 2
        }),
        "lease not released on time: {}",
        stats()
    );
    // Keys live 3 s from creation: gone within a second of that.
    assert!(
        eventually(
            Duration::from_secs(4).saturating_sub(t0.elapsed()),
            || stats()["total"] == 0
        ),
        "keys not expired on time: {}",
        stats()
    );
    assert!(t0.elapsed() >= Duration::from_secs(3), "expired early");
    assert_eq!(s.call("GET", &format!("/keys/{a}"), None, None).status, 404);
}

#[test]
fn keepalive_restarts_the_lifetime() {
    let s = open(&["--key-ttl", "3s"]);
    let id = create(&s);
    for _ in 0..4 {
        std::thread::sleep(Duration::from_millis(1000));
        assert_eq!(
            s.call("PUT", &format!("/keepalive/{id}"), None, None)
                .status,
            200
        );
    }
    // 4 s after creation, past its first lifetime, still alive thanks to keepalives.
    assert_eq!(
        s.call("GET", &format!("/keys/{id}"), None, None).status,
        200
    );
}

#[test]
fn sixteen_workers_never_hold_the_same_key() {
    let s = Arc::new(open(&[]));
    for _ in 0..8 {
        create(&s);
    }
    let held = Arc::new(Mutex::new(HashSet::new()));
    let cycles = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (s, held, cycles) = (s.clone(), held.clone(), cycles.clone());
            std::thread::spawn(move || {
                for _ in 0..60 {
                    let r = s.call("GET", "/keys", None, None);
                    if r.status == 404 {
                        continue;
                    }
                    assert_eq!(r.status, 200, "{}", r.text);
                    let (id, lease) = (r.str("key_id"), r.str("lease_id"));
                    assert!(
                        held.lock().unwrap().insert(id.clone()),
                        "{id} handed out twice"
                    );
                    std::thread::sleep(Duration::from_millis(1));
                    assert!(held.lock().unwrap().remove(&id));
                    let r = s.call("PUT", &format!("/keys/{id}?lease_id={lease}"), None, None);
                    assert_eq!(r.status, 200, "{}", r.text);
                    cycles.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("worker thread");
    }
    assert!(cycles.load(std::sync::atomic::Ordering::Relaxed) > 100);
    let st = s.call("GET", "/stats", None, None).body;
    assert_eq!(
        st,
        serde_json::json!({"total": 8, "available": 8, "blocked": 0, "cooling": 0})
    );
}

#[test]
fn a_stale_lease_cannot_release_or_delete_the_new_holders_key() {
    let s = open(&["--block-ttl", "1s"]);
    let id = create(&s);
    let first = s.call("GET", "/keys", None, None);
    let stale = first.str("lease_id");
    assert!(eventually(Duration::from_secs(3), || s
        .call("GET", "/stats", None, None)
        .body["available"]
        == 1));
    let second = s.call("GET", "/keys", None, None);
    assert_eq!(second.str("key_id"), id);
    let fresh = second.str("lease_id");
    assert_ne!(stale, fresh, "every checkout gets a new lease");
    let r = s.call("PUT", &format!("/keys/{id}?lease_id={stale}"), None, None);
    assert_eq!(r.status, 409, "{}", r.text);
    let r = s.call(
        "DELETE",
        &format!("/keys/{id}?lease_id={stale}"),
        None,
        None,
    );
    assert_eq!(r.status, 409, "{}", r.text);
    let r = s.call("GET", &format!("/keys/{id}"), None, None);
    assert_eq!(r.body["isBlocked"], true, "the new holder still holds it");
    let r = s.call("PUT", &format!("/keys/{id}?lease_id={fresh}"), None, None);
    assert_eq!(r.status, 200);
}

#[test]
fn checkout_draws_keys_at_random() {
    let s = open(&[]);
    for _ in 0..50 {
        create(&s);
    }
    let mut seen = HashSet::new();
    for _ in 0..150 {
        let r = s.call("GET", "/keys", None, None);
        let (id, lease) = (r.str("key_id"), r.str("lease_id"));
        seen.insert(id.clone());
        assert_eq!(
            call(
                "PUT",
                &s.url(&format!("/keys/{id}?lease_id={lease}")),
                None,
                None
            )
            .status,
            200
        );
    }
    // 150 uniform draws from 50 keys see ~47 distinct keys; a FIFO or LIFO pick sees 1 or 50 in order.
    assert!(seen.len() >= 35, "only {} distinct keys", seen.len());
}

#[test]
fn the_pool_needs_a_credential_unless_open() {
    let s = Server::start(&[]);
    let r = s.call("POST", "/keys", None, None);
    assert_eq!(r.status, 401, "{}", r.text);
    assert!(r.error().contains("credential"), "{}", r.text);
    assert_eq!(s.call("GET", "/stats", None, None).status, 401);
}
