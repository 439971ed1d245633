//! The workers' lease API (the second round): named pools, values and metadata
//! sealed at rest, per-key ttl, batch and long-poll checkout, per-lease block,
//! lease extension, release with a cooldown. Open pool unless a test says otherwise.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::support::{api_key, call, eventually, raw, register_and_login, Server, RELAXED};

fn open(extra: &[&str]) -> Server {
    let mut args = vec!["--open-pool"];
    args.extend_from_slice(extra);
    Server::start(&args)
}

fn create_in(s: &Server, pool: &str, body: Option<Value>) -> String {
    let r = s.call("POST", &format!("/pools/{pool}/keys"), None, body);
    assert_eq!(r.status, 201, "{}", r.text);
    r.str("key_id")
}

/// Every byte of every file in the data directory but the key file, in name order.
fn data_bytes(s: &Server) -> Vec<u8> {
    let mut all = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir(&s.dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for p in paths {
        if p.is_file() && p.file_name() != Some(std::ffi::OsStr::new("master.key")) {
            all.extend(std::fs::read(&p).unwrap());
        }
    }
    all
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn named_pools_are_separate_listed_and_deleted() {
    let s = open(&[]);
    let a = create_in(&s, "scrapers", None);
    create_in(&s, "scrapers", None);
    let r = s.call("POST", "/keys", None, None);
    assert_eq!(r.status, 201);

    // A key of one pool is unknown in another, and in the plain routes.
    let r = s.call("GET", &format!("/keys/{a}"), None, None);
    assert_eq!(r.status, 404);
    let r = s.call("GET", &format!("/pools/ci/keys/{a}"), None, None);
    assert_eq!(r.status, 404);
    let r = s.call("GET", &format!("/pools/scrapers/keys/{a}"), None, None);
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s.call("GET", "/pools/ci/keys", None, None);
    assert_eq!((r.status, r.error()), (404, "No available keys."));

    let r = s.call("GET", "/pools", None, None);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!({"pools": [
            {"name": "default", "total": 1, "available": 1, "blocked": 0, "cooling": 0},
            {"name": "scrapers", "total": 2, "available": 2, "blocked": 0, "cooling": 0},
        ]})
    );
    let r = s.call("GET", "/pools/scrapers/keys", None, None);
    assert_eq!(r.status, 200);
    let r = s.call("GET", "/pools/scrapers/stats", None, None);
    assert_eq!(
        r.body,
        json!({"total": 2, "available": 1, "blocked": 1, "cooling": 0})
    );

    for bad in [
        "/pools/a%20b/keys",
        "/pools/%C3%A9/stats",
        &format!("/pools/{}/keys", "x".repeat(65)),
    ] {
        let r = s.call("GET", bad, None, None);
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert!(r.error().contains("pool name"), "{}", r.text);
    }

    let r = s.call("DELETE", "/pools/scrapers", None, None);
    assert_eq!(
        (r.status, r.body["message"].as_str()),
        (200, Some("Pool deleted."))
    );
    let r = s.call("GET", &format!("/pools/scrapers/keys/{a}"), None, None);
    assert_eq!(r.status, 404);
    let r = s.call("DELETE", "/pools/scrapers", None, None);
    assert_eq!(r.status, 404);
    let r = s.call("DELETE", "/pools/never", None, None);
    assert_eq!(r.status, 404);
    let r = s.call("GET", "/pools", None, None);
    assert_eq!(r.body["pools"].as_array().unwrap().len(), 1);
    // The name can be used again.
    create_in(&s, "scrapers", None);
    assert_eq!(
        s.call("GET", "/pools/scrapers/stats", None, None).body["total"],
        1
    );
}

#[test]
fn pools_of_different_accounts_never_meet() {
    let s = Server::start(RELAXED);
    register_and_login(&s, "alice");
    register_and_login(&s, "bobby");
    let alice = api_key(&s, "alice");
    let bob = api_key(&s, "bobby");
    let r = s.call("POST", "/pools/shared/keys", Some(&alice), None);
    assert_eq!(r.status, 201);
    let id = r.str("key_id");
    let r = s.call("GET", "/pools/shared/keys", Some(&bob), None);
    assert_eq!(r.status, 404);
    let r = s.call("GET", &format!("/pools/shared/keys/{id}"), Some(&bob), None);
    assert_eq!(r.status, 404);
    let r = s.call("DELETE", "/pools/shared", Some(&bob), None);
    assert_eq!(r.status, 404);
    assert_eq!(
        s.call("GET", "/pools", Some(&bob), None).body,
        json!({"pools": []})
    );
    let r = s.call("GET", "/pools/shared/keys", Some(&alice), None);
    assert_eq!(r.status, 200);
    let r = s.call("GET", "/pools", None, None);
    assert_eq!(r.status, 401);
}

#[test]
fn values_and_metadata_come_back_and_are_sealed_on_disk() {
    let mut s = open(&["--snapshot-interval", "300ms"]);
    let secret = "sk-third-party-Zq81mPV3";
    let meta = json!({"provider": "acme-maps", "quota": 1000});
    let id = create_in(&s, "maps", Some(json!({"value": secret, "metadata": meta})));

    let r = s.call("GET", &format!("/pools/maps/keys/{id}"), None, None);
    assert_eq!(r.body["value"], secret);
    assert_eq!(r.body["metadata"], meta);
    assert_eq!(r.body["coolingUntil"], Value::Null);
    let r = s.call("GET", "/pools/maps/keys", None, None);
    assert_eq!(
        (r.str("key_id"), r.str("value")),
        (id.clone(), secret.to_owned())
    );
    assert_eq!(r.body["metadata"], meta);
    // A key without them answers without them.
    let plain = s.call("POST", "/keys", None, None).str("key_id");
    let r = s.call("GET", "/keys", None, None);
    assert_eq!(r.str("key_id"), plain);
    assert!(r.body.get("value").is_none() && r.body.get("metadata").is_none());

    // Neither the log nor a snapshot holds the plaintext.
    // Wait for a snapshot taken after the key was made.
    std::thread::sleep(Duration::from_millis(800));
    assert!(!crate::support::snapshots(&s.dir).is_empty());
    let disk = data_bytes(&s);
    assert!(
        !contains(&disk, secret.as_bytes()),
        "the value is on disk in the clear"
    );
    assert!(
        !contains(&disk, b"acme-maps"),
        "the metadata is on disk in the clear"
    );
    let key_file = s.dir.join("master.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // After kill -9 the value is still there, decrypted with the same key.
    s.restart();
    let r = s.call("GET", &format!("/pools/maps/keys/{id}"), None, None);
    assert_eq!((r.status, r.body["value"].as_str()), (200, Some(secret)));
    assert!(!s.stderr().contains(secret));

    // A wrong master key stops start-up with a clear error and changes nothing.
    s.kill9();
    let good = std::fs::read(&key_file).unwrap();
    let before = data_bytes(&s);
    std::fs::write(&key_file, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n").unwrap();
    let err = Server::start_in(&s.dir, &["--open-pool"])
        .err()
        .expect("refuses a wrong key");
    assert!(err.contains("does not decrypt"), "{err}");
    // A missing one too, and no new key file is made.
    std::fs::remove_file(&key_file).unwrap();
    let err = Server::start_in(&s.dir, &["--open-pool"])
        .err()
        .expect("refuses a missing key");
    assert!(
        err.contains("master key file") && err.contains("missing"),
        "{err}"
    );
    assert!(!key_file.exists());
    assert!(data_bytes(&s) == before, "a refused start changed the data");
    // With the key back (here through KEYPOOL_MASTER_KEY's file twin) all is well.
    std::fs::write(&key_file, good).unwrap();
    s.restart();
    let r = s.call("GET", &format!("/pools/maps/keys/{id}"), None, None);
    assert_eq!(r.body["value"], secret);
}

#[test]
fn creation_bodies_are_checked() {
    let s = open(&[]);
    let cases = [
        (json!({"value": "x".repeat(4097)}), "value"),
        (json!({"value": 12}), "value"),
        (json!({"metadata": [1, 2]}), "metadata"),
        (json!({"metadata": {"k": "x".repeat(4100)}}), "metadata"),
        (json!({"ttl": 0}), "ttl"),
        (json!({"ttl": 30 * 86400 + 1}), "ttl"),
        (json!({"ttl": "1h"}), "ttl"),
    ];
    for (body, field) in cases {
        let r = s.call("POST", "/keys", None, Some(body.clone()));
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.error().contains(field), "{body}: {}", r.text);
    }
    assert_eq!(s.call("GET", "/stats", None, None).body["total"], 0);
    let r = s.call(
        "POST",
        "/keys",
        None,
        Some(json!({"value": "x".repeat(4096)})),
    );
    assert_eq!(r.status, 201);
}

#[test]
fn a_keys_own_ttl_expires_it_and_keepalive_restarts_that_ttl() {
    let s = open(&["--key-ttl", "1h"]);
    let id = create_in(&s, "short", Some(json!({"ttl": 2})));
    let r = s.call("GET", &format!("/pools/short/keys/{id}"), None, None);
    let created = r.str("createdAt");
    let expires = r.str("expiresAt");
    let span = humantime::parse_rfc3339(&expires)
        .unwrap()
        .duration_since(humantime::parse_rfc3339(&created).unwrap())
        .unwrap();
    assert_eq!(span, Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(1200));
    let r = s.call("PUT", &format!("/pools/short/keepalive/{id}"), None, None);
    assert_eq!(r.status, 200);
    let renewed = humantime::parse_rfc3339(&r.str("expires_at")).unwrap();
    let left = renewed
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    assert!(
        left <= Duration::from_secs(2) && left > Duration::from_millis(1500),
        "{left:?}"
    );
    // Gone on time, by itself.
    assert!(eventually(Duration::from_secs(5), || {
        s.call("GET", "/pools/short/stats", None, None).body["total"] == 0
    }));
}

#[test]
fn batch_checkout_hands_out_distinct_keys_each_with_its_lease() {
    let s = open(&[]);
    for _ in 0..5 {
        create_in(&s, "batch", None);
    }
    let r = s.call("GET", "/pools/batch/keys?count=3", None, None);
    assert_eq!(r.status, 200, "{}", r.text);
    let keys = r.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3);
    let ids: std::collections::HashSet<_> = keys.iter().map(|k| k["key_id"].clone()).collect();
    let leases: std::collections::HashSet<_> = keys.iter().map(|k| k["lease_id"].clone()).collect();
    assert_eq!((ids.len(), leases.len()), (3, 3));
    // Fewer than asked when fewer are free; 404 when none.
    let r = s.call("GET", "/pools/batch/keys?count=100", None, None);
    assert_eq!(r.body["keys"].as_array().unwrap().len(), 2);
    let r = s.call("GET", "/pools/batch/keys?count=1", None, None);
    assert_eq!(r.status, 404);
    // Each lease releases its own key only.
    let k = &keys[0];
    let wrong = keys[1]["lease_id"].as_str().unwrap();
    let path = format!("/pools/batch/keys/{}", k["key_id"].as_str().unwrap());
    assert_eq!(
        s.call("PUT", &format!("{path}?lease_id={wrong}"), None, None)
            .status,
        409
    );
    let lease = k["lease_id"].as_str().unwrap();
    assert_eq!(
        s.call("PUT", &format!("{path}?lease_id={lease}"), None, None)
            .status,
        200
    );
    for bad in [
        "count=0",
        "count=101",
        "count=x",
        "wait=31",
        "wait=-1",
        "block=0",
        "block=13h",
        "wait=soon",
    ] {
        let r = s.call("GET", &format!("/pools/batch/keys?{bad}"), None, None);
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
}

#[test]
fn a_long_poll_is_answered_when_a_key_is_freed_and_times_out_otherwise() {
    let s = open(&[]);
    // Nothing comes: 404 after the wait, not before.
    let t = Instant::now();
    let r = s.call("GET", "/pools/lp/keys?wait=1", None, None);
    assert_eq!((r.status, r.error()), (404, "No available keys."));
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "{:?}",
        t.elapsed()
    );

    // A key created while two wait goes to the first; a release wakes the second.
    let url = s.url("/pools/lp/keys?wait=20");
    let first = std::thread::spawn({
        let url = url.clone();
        move || call("GET", &url, None, None)
    });
    assert!(eventually(Duration::from_secs(5), || waiters(&s) == 1));
    let second = std::thread::spawn(move || call("GET", &url, None, None));
    assert!(eventually(Duration::from_secs(5), || waiters(&s) == 2));
    let t = Instant::now();
    let id = create_in(&s, "lp", None);
    let got = first.join().unwrap();
    assert_eq!((got.status, got.str("key_id")), (200, id.clone()));
    assert!(t.elapsed() < Duration::from_secs(2));
    let lease = got.str("lease_id");
    let r = s.call(
        "PUT",
        &format!("/pools/lp/keys/{id}?lease_id={lease}"),
        None,
        None,
    );
    assert_eq!(r.status, 200);
    let got = second.join().unwrap();
    assert_eq!((got.status, got.str("key_id")), (200, id));
    assert_eq!(waiters(&s), 0);
}

/// Regression: a key created with an `Idempotency-Key` (as the Python client
/// always sends) is logged in one batch with its kept answer, and that batch
/// woke no waiter, so the long poll ran out with 404 beside a free key.
#[test]
fn a_key_created_with_an_idempotency_key_wakes_a_waiter() {
    let s = open(&[]);
    let url = s.url("/pools/idem-wake/keys?wait=20");
    let waiter = std::thread::spawn(move || call("GET", &url, None, None));
    assert!(eventually(Duration::from_secs(5), || waiters(&s) == 1));
    let h = [("Idempotency-Key".to_string(), "wake-1".to_string())];
    let created = raw("POST", &s.url("/pools/idem-wake/keys"), &h, None);
    assert_eq!(created.status, 201, "{}", created.text);
    let got = waiter.join().unwrap();
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.str("key_id"), created.str("key_id"));
}

/// The server's count of waiting long polls.
fn waiters(s: &Server) -> u64 {
    let r = s.call("GET", "/metrics", None, None);
    r.text
        .lines()
        .find_map(|l| l.strip_prefix("keypool_pool_waiters "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the waiters gauge")
}

#[test]
fn a_lapsed_lease_wakes_a_waiter_and_a_closed_connection_ends_its_wait() {
    use std::io::Write;
    let s = open(&[]);
    create_in(&s, "lapse", None);
    let r = s.call("GET", "/pools/lapse/keys?block=1", None, None);
    assert_eq!(r.status, 200);
    let t = Instant::now();
    let r = s.call("GET", "/pools/lapse/keys?wait=10", None, None);
    assert_eq!(r.status, 200, "{}", r.text);
    let waited = t.elapsed();
    assert!(
        waited > Duration::from_millis(500) && waited < Duration::from_secs(3),
        "{waited:?}"
    );

    // A client that gives up: its wait ends with its connection.
    let addr = s.base.strip_prefix("http://").unwrap().to_owned();
    let mut sock = std::net::TcpStream::connect(&addr).unwrap();
    write!(
        sock,
        "GET /pools/lapse/keys?wait=30 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    .unwrap();
    assert!(eventually(Duration::from_secs(5), || waiters(&s) == 1));
    drop(sock);
    assert!(
        eventually(Duration::from_secs(5), || waiters(&s) == 0),
        "a closed connection still waits"
    );
}

#[test]
fn shutdown_answers_waiters_503_at_once() {
    let mut s = open(&[]);
    let url = s.url("/pools/idle/keys?wait=30");
    let waiting = std::thread::spawn(move || {
        let t = Instant::now();
        (call("GET", &url, None, None), t)
    });
    assert!(eventually(Duration::from_secs(5), || waiters(&s) == 1));
    let t = Instant::now();
    let status = s.sigterm();
    assert!(status.success());
    let (r, _) = waiting.join().unwrap();
    assert_eq!(r.status, 503, "{}", r.text);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[test]
fn a_lease_is_extended_under_its_lease_id_only() {
    let s = open(&["--block-ttl", "2s", "--max-block-ttl", "1h"]);
    let id = create_in(&s, "ext", None);
    let r = s.call("GET", "/pools/ext/keys?block=1h", None, None);
    let lease = r.str("lease_id");
    let until = humantime::parse_rfc3339(&r.str("blocked_until")).unwrap();
    let left = until.duration_since(std::time::SystemTime::now()).unwrap();
    assert!(left > Duration::from_secs(3500), "{left:?}");
    let path = format!("/pools/ext/keys/{id}/lease");

    let r = s.call(
        "PUT",
        &format!("{path}?lease_id={lease}&block=3"),
        None,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (r.str("key_id"), r.str("lease_id")),
        (id.clone(), lease.clone())
    );
    let until = humantime::parse_rfc3339(&r.str("blocked_until")).unwrap();
    let left = until.duration_since(std::time::SystemTime::now()).unwrap();
    assert!(
        left <= Duration::from_secs(3) && left > Duration::from_secs(2),
        "{left:?}"
    );

    let other = uuid::Uuid::new_v4();
    let r = s.call("PUT", &format!("{path}?lease_id={other}"), None, None);
    assert_eq!(r.status, 409);
    let r = s.call("PUT", &path, None, None);
    assert_eq!(r.status, 400);
    assert!(r.error().contains("lease_id"));
    let r = s.call(
        "PUT",
        &format!("{path}?lease_id={lease}&block=2h"),
        None,
        None,
    );
    assert_eq!(r.status, 400);
    let missing = uuid::Uuid::new_v4();
    let r = s.call(
        "PUT",
        &format!("/pools/ext/keys/{missing}/lease?lease_id={lease}"),
        None,
        None,
    );
    assert_eq!(r.status, 404);
    // Default block: --block-ttl; after it lapses, the old lease is lost.
    let r = s.call(
        "PUT",
        &format!("/keys/{id}/lease?lease_id={lease}"),
        None,
        None,
    );
    assert_eq!(
        r.status, 404,
        "the plain route is the default pool: {}",
        r.text
    );
    let r = s.call("PUT", &format!("{path}?lease_id={lease}"), None, None);
    assert_eq!(r.status, 200);
    assert!(eventually(Duration::from_secs(5), || {
        s.call("GET", "/pools/ext/stats", None, None).body["available"] == 1
    }));
    let r = s.call("PUT", &format!("{path}?lease_id={lease}"), None, None);
    assert_eq!(r.status, 404, "{}", r.text);
}

#[test]
fn a_cooldown_keeps_the_key_out_until_it_ends_across_a_restart() {
    let mut s = open(&[]);
    let id = create_in(&s, "cool", None);
    let r = s.call("GET", "/pools/cool/keys", None, None);
    let lease = r.str("lease_id");
    let r = s.call(
        "PUT",
        &format!("/pools/cool/keys/{id}?lease_id={lease}&cooldown=3s"),
        None,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let started = Instant::now();
    assert_eq!(
        s.call("GET", "/pools/cool/stats", None, None).body,
        json!({"total": 1, "available": 0, "blocked": 0, "cooling": 1})
    );
    let r = s.call("GET", &format!("/pools/cool/keys/{id}"), None, None);
    assert!(r.body["coolingUntil"].is_string() && r.body["isBlocked"] == false);
    assert_eq!(s.call("GET", "/pools/cool/keys", None, None).status, 404);
    // A cooling key is not blocked: a second release is refused.
    assert_eq!(
        s.call("PUT", &format!("/pools/cool/keys/{id}"), None, None)
            .status,
        404
    );

    s.restart();
    assert_eq!(
        s.call("GET", "/pools/cool/stats", None, None).body["cooling"],
        1
    );
    // A waiter gets it the moment the cooldown ends.
    let r = s.call("GET", "/pools/cool/keys?wait=10", None, None);
    assert_eq!((r.status, r.str("key_id")), (200, id));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(2900) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
    let r = s.call("PUT", "/pools/cool/keys/x?cooldown=25h", None, None);
    assert_eq!(r.status, 400);
}

#[test]
fn waiters_beyond_max_waiters_are_refused_429() {
    let s = open(&["--max-waiters", "1"]);
    let url = s.url("/pools/few/keys?wait=5");
    let first = std::thread::spawn(move || call("GET", &url, None, None));
    assert!(eventually(Duration::from_secs(5), || waiters(&s) == 1));
    let r = s.call("GET", "/pools/few/keys?wait=5", None, None);
    assert_eq!(r.status, 429, "{}", r.text);
    assert!(r.error().contains("waiting"), "{}", r.text);
    assert_eq!(r.header("retry-after"), Some("1"));
    // Without wait, nothing is refused.
    assert_eq!(s.call("GET", "/pools/few/keys", None, None).status, 404);
    create_in(&s, "few", None);
    assert_eq!(first.join().unwrap().status, 200);
}

#[test]
fn fifty_waiters_on_ten_keys_each_get_a_distinct_key_and_no_lease_is_doubled() {
    let s = open(&[]);
    let url = s.url("/pools/crowd/keys?wait=20&block=30");
    let waiting: Vec<_> = (0..50)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || call("GET", &url, None, None))
        })
        .collect();
    assert!(eventually(Duration::from_secs(10), || waiters(&s) == 50));
    let t = Instant::now();
    let ids: Vec<String> = (0..10).map(|_| create_in(&s, "crowd", None)).collect();
    // Ten are answered with the ten keys; then each key released goes to one
    // more waiter, until all fifty have had one.
    let mut got = Vec::new();
    let mut pending = waiting;
    while !pending.is_empty() {
        let (done, rest): (Vec<_>, Vec<_>) = pending.into_iter().partition(|h| h.is_finished());
        pending = rest;
        for h in done {
            let r = h.join().unwrap();
            assert_eq!(r.status, 200, "{}", r.text);
            let (key, lease) = (r.str("key_id"), r.str("lease_id"));
            assert!(ids.contains(&key));
            let rel = s.call(
                "PUT",
                &format!("/pools/crowd/keys/{key}?lease_id={lease}"),
                None,
                None,
            );
            assert_eq!(
                rel.status, 200,
                "a lease was handed out twice: {}",
                rel.text
            );
            got.push((key, lease));
        }
        assert!(t.elapsed() < Duration::from_secs(20), "waiters starved");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(got.len(), 50);
    let leases: std::collections::HashSet<_> = got.iter().map(|g| &g.1).collect();
    assert_eq!(leases.len(), 50, "every answer its own lease");
    assert_eq!(waiters(&s), 0);
}

#[test]
fn a_lease_extended_past_its_first_end_is_still_held() {
    let s = open(&[]);
    let id = create_in(&s, "held", None);
    let r = s.call("GET", "/pools/held/keys?block=1", None, None);
    let lease = r.str("lease_id");
    let r = s.call(
        "PUT",
        &format!("/pools/held/keys/{id}/lease?lease_id={lease}&block=5"),
        None,
        None,
    );
    assert_eq!(r.status, 200);
    std::thread::sleep(Duration::from_millis(1800));
    // Past the first end: still blocked, nobody else gets it, and it is still ours.
    assert_eq!(s.call("GET", "/pools/held/keys", None, None).status, 404);
    let r = s.call("GET", &format!("/pools/held/keys/{id}"), None, None);
    assert_eq!(r.body["isBlocked"], true);
    let r = s.call(
        "PUT",
        &format!("/pools/held/keys/{id}?lease_id={lease}"),
        None,
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
}
