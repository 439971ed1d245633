//! A change answered 503 did not happen (issue: "a change answered 503 must
//! not happen"): on a fault-injecting disk, a storm of every kind of change
//! (create, checkout, release, delete, keepalive, register, key creation,
//! purchase) meets a failing write or flush. Each gets 503, and none of them
//! is visible afterwards: while the disk still fails, after it recovers, and
//! after a power loss and restart. What was acknowledged before and after is
//! there.

use std::time::Duration;

use keypool::persist::testing::{FaultFs, Faults, EIO, ENOSPC};
use serde_json::{json, Value};

use crate::faults::serve_with;
use crate::support::{call, eventually, raw, Resp};

const FLAGS: &[&str] = &[
    "--ip-rate-limit",
    "100000/1m",
    "--keys-per-day",
    "1000",
    "--payment-delay",
    "200ms",
    "--session-max-uses",
    "1000",
];

/// The account and keys a round works with.
struct Fixture {
    base: String,
    session: String,
    key: String,
    blocked: String,
    lease: String,
    doomed: String,
    kept_alive: String,
}

fn with_key(method: &str, url: &str, key: &str, body: Option<Value>) -> Resp {
    raw(
        method,
        url,
        &[("X-API-Key".to_string(), key.to_string())],
        body.map(|b| b.to_string()),
    )
}

impl Fixture {
    fn url(&self, p: &str) -> String {
        format!("{}{p}", self.base)
    }

    /// Builds an acknowledged state: an account with a PIN, an API key, a
    /// blocked key, and two free keys.
    fn new(base: String) -> Fixture {
        let url = |p: &str| format!("{base}{p}");
        let user = json!({"username": "alice", "password": "correct horse battery"});
        assert_eq!(
            call("POST", &url("/register"), None, Some(user.clone())).status,
            201
        );
        let session = call("POST", &url("/login"), None, Some(user)).str("token");
        let r = call(
            "PUT",
            &url("/api/user/pin"),
            Some(&session),
            Some(json!({"pin": "1234"})),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        let r = call(
            "POST",
            &url("/generate-key"),
            Some(&session),
            Some(json!({"name": "w"})),
        );
        let key = r.str("key");
        let create = || with_key("POST", &url("/keys"), &key, None).str("key_id");
        let blocked = create();
        let r = with_key("GET", &url("/keys"), &key, None);
        assert_eq!(r.str("key_id"), blocked);
        let lease = r.str("lease_id");
        let (doomed, kept_alive) = (create(), create());
        Fixture {
            base,
            session,
            key,
            blocked,
            lease,
            doomed,
            kept_alive,
        }
    }

    /// Everything a user could see of the state, read without changing it.
    fn observe(&self) -> Value {
        let k = |m: &str, p: &str| with_key(m, &self.url(p), &self.key, None);
        let key = |id: &str| {
            let r = k("GET", &format!("/keys/{id}"));
            json!([
                r.status,
                r.body["isBlocked"],
                r.body["expiresAt"],
                r.body["blockedUntil"]
            ])
        };
        let bob = call(
            "POST",
            &self.url("/login"),
            None,
            Some(json!({"username": "bob", "password": "correct horse battery"})),
        );
        let keys = k("GET", "/list-keys");
        let video = k("GET", "/video/info");
        json!({
            "stats": k("GET", "/stats").body,
            "blocked": key(&self.blocked),
            "doomed": key(&self.doomed),
            "kept_alive": key(&self.kept_alive),
            "bob_can_log_in": bob.status == 200,
            "api_keys": keys.body["keys"],
            "video": [video.body["status"], video.body["purchased"]],
        })
    }

    /// One of every kind of change, all at once; answers each one's response.
    fn storm(&self) -> Vec<(&'static str, Resp)> {
        let changes: Vec<(&'static str, String, String, Option<Value>, bool)> = vec![
            ("create", "POST".into(), "/keys".into(), None, false),
            ("checkout", "GET".into(), "/keys".into(), None, false),
            (
                "release",
                "PUT".into(),
                format!("/keys/{}?lease_id={}", self.blocked, self.lease),
                None,
                false,
            ),
            (
                "delete",
                "DELETE".into(),
                format!("/keys/{}", self.doomed),
                None,
                false,
            ),
            (
                "keepalive",
                "PUT".into(),
                format!("/keepalive/{}", self.kept_alive),
                None,
                false,
            ),
            (
                "register",
                "POST".into(),
                "/register".into(),
                Some(json!({"username": "bob", "password": "correct horse battery"})),
                true,
            ),
            (
                "key creation",
                "POST".into(),
                "/generate-key".into(),
                Some(json!({"name": "second"})),
                false,
            ),
            (
                "purchase",
                "POST".into(),
                "/video/purchase".into(),
                Some(json!({"pin": "1234"})),
                false,
            ),
        ];
        let threads: Vec<_> = changes
            .into_iter()
            .map(|(what, method, path, body, anonymous)| {
                let url = self.url(&path);
                let session = self.session.clone();
                let key = self.key.clone();
                std::thread::spawn(move || {
                    let r = match (anonymous, &body, what) {
                        (true, _, _) => call(&method, &url, None, body),
                        (_, _, "key creation") => call(&method, &url, Some(&session), body),
                        _ => with_key(&method, &url, &key, body),
                    };
                    (what, r)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    }
}

fn round(what: &str, faults: Faults) {
    let fs = FaultFs::new();
    let (base, stop, thread) = serve_with(fs.clone(), FLAGS);
    let fx = Fixture::new(base);
    let before = fx.observe();

    fs.set_faults(faults);
    for (change, r) in fx.storm() {
        assert_eq!(r.status, 503, "{what}: {change} was answered {}", r.text);
        assert!(
            r.error().contains("nothing was changed"),
            "{what}: {change}: {}",
            r.text
        );
        assert_eq!(r.header("retry-after"), Some("1"), "{what}: {change}");
    }
    assert_eq!(fx.observe(), before, "{what}: visible while the disk fails");

    fs.clear_faults();
    let acked = eventually(Duration::from_secs(10), || {
        with_key("POST", &fx.url("/keys"), &fx.key, None).status == 201
    });
    assert!(acked, "{what}: writes resume once the disk recovers");
    let mut after = before.clone();
    after["stats"]["total"] = json!(before["stats"]["total"].as_u64().unwrap() + 1);
    after["stats"]["available"] = json!(before["stats"]["available"].as_u64().unwrap() + 1);
    assert_eq!(
        fx.observe(),
        after,
        "{what}: visible once the disk recovered"
    );
    let m = call("GET", &fx.url("/metrics"), None, None).text;
    assert!(
        m.contains("keypool_wal_fallbacks_total 1"),
        "{what}: one fall-back"
    );

    // A power loss now: the durable image holds exactly what was acknowledged.
    stop.send(()).unwrap();
    thread.join().unwrap();
    let (base, stop, thread) = serve_with(fs.crash(), FLAGS);
    let fx = Fixture { base, ..fx };
    assert_eq!(fx.observe(), after, "{what}: after a restart");
    stop.send(()).unwrap();
    thread.join().unwrap();
}

#[test]
fn a_change_answered_503_did_not_happen_eio_on_write() {
    round(
        "EIO on write",
        Faults {
            write: Some(EIO),
            ..Faults::default()
        },
    );
}

#[test]
fn a_change_answered_503_did_not_happen_enospc_on_write() {
    round(
        "ENOSPC on write",
        Faults {
            write: Some(ENOSPC),
            ..Faults::default()
        },
    );
}

#[test]
fn a_change_answered_503_did_not_happen_short_write() {
    round(
        "a short write",
        Faults {
            tear_next_write_at: Some(7),
            write: Some(EIO),
            ..Faults::default()
        },
    );
}

#[test]
fn a_change_answered_503_did_not_happen_failed_flush() {
    // The flush takes a while before it fails, so the storm's changes are
    // applied and wait on it together.
    round(
        "EIO on flush",
        Faults {
            sync: Some(EIO),
            sync_delay: Some(Duration::from_millis(30)),
            ..Faults::default()
        },
    );
}
