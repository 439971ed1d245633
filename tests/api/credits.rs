//! Credits per key (issue 10): every authenticated request with a metered key
//! spends one, exactly once under concurrency; 429 at zero; set through
//! `PUT /api/keys/{key_id}/credits`; shown by `/list-keys` and verify; kept
//! across SIGTERM and kill -9 restarts.

use serde_json::{json, Value};

use crate::support::{list_item, new_key, register_and_login, Resp, Server, LASTING};

const NO_CREDITS: &str = "This API key has no credits left.";

fn spend(s: &Server, key: &str) -> Resp {
    s.call("GET", "/stats", Some(key), None)
}

fn rotate(s: &Server, token: &str, id: &str, body: Option<Value>) -> Resp {
    s.call("POST", &format!("/api/keys/{id}/rotate"), Some(token), body)
}

fn put_credits(s: &Server, token: &str, key_id: &str, body: Value) -> Resp {
    s.call(
        "PUT",
        &format!("/api/keys/{key_id}/credits"),
        Some(token),
        Some(body),
    )
}

#[test]
fn two_hundred_concurrent_requests_on_fifty_credits_get_exactly_fifty_answers() {
    let s = Server::start(LASTING);
    let session = register_and_login(&s, "alice");
    let (key, key_id) = new_key(
        &s,
        &session,
        json!({"name": "m", "credits": {"remaining": 50}}),
    );
    let url = s.url("/stats");
    let threads: Vec<_> = (0..20)
        .map(|_| {
            let (url, key) = (url.clone(), key.clone());
            std::thread::spawn(move || {
                (0..10)
                    .map(|_| crate::support::call("GET", &url, Some(&key), None))
                    .collect::<Vec<Resp>>()
            })
        })
        .collect();
    let answers: Vec<Resp> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let ok = answers.iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 50);
    for r in answers.iter().filter(|r| r.status != 200) {
        assert_eq!(r.status, 429, "{}", r.text);
        assert_eq!(r.error(), NO_CREDITS);
        // No refill: nothing to wait for.
        assert_eq!(r.header("retry-after"), None);
    }
    let it = list_item(&s, &session, &key_id);
    assert_eq!(it["credits_remaining"], 0);
    assert_eq!(it["refill"], Value::Null);
    assert_eq!(it["usage_count"], 50);
}

#[test]
fn credits_are_validated_set_through_the_api_and_seen_by_verify() {
    let s = Server::start(LASTING);
    let session = register_and_login(&s, "alice");
    let bob = register_and_login(&s, "bob");
    for bad in [
        json!({"remaining": -1}),
        json!({"remaining": 1, "refill": {"amount": 0, "interval": "daily"}}),
        json!({"remaining": 1, "refill": {"amount": 5, "interval": "weekly"}}),
        json!({"refill": {"amount": 5, "interval": "daily"}}),
        json!("lots"),
    ] {
        let r = s.call(
            "POST",
            "/generate-key",
            Some(&session),
            Some(json!({"name": "bad", "credits": bad})),
        );
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
    }
    let (plain, plain_id) = new_key(&s, &session, json!({"name": "plain"}));
    assert_eq!(
        list_item(&s, &session, &plain_id)["credits_remaining"],
        Value::Null
    );
    let (daily, daily_id) = new_key(
        &s,
        &session,
        json!({"name": "d", "credits": {"remaining": 1, "refill": {"amount": 3, "interval": "daily"}}}),
    );
    assert_eq!(
        list_item(&s, &session, &daily_id)["refill"],
        json!({"amount": 3, "interval": "daily"})
    );
    assert_eq!(spend(&s, &daily).status, 200);
    let r = spend(&s, &daily);
    assert_eq!(r.status, 429, "{}", r.text);
    assert_eq!(r.error(), NO_CREDITS);
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=86_400).contains(&wait), "{wait}");

    // PUT: 400 for a bad body, 404 for a stranger's or unknown key, 403 for
    // a key without keys:write; a session or a keys:write key may set.
    assert_eq!(
        put_credits(&s, &session, &daily_id, json!({"refill": null})).status,
        400
    );
    assert_eq!(
        put_credits(&s, &session, &daily_id, json!({"remaining": "x"})).status,
        400
    );
    assert_eq!(
        put_credits(&s, &bob, &daily_id, json!({"remaining": 5})).status,
        404
    );
    assert_eq!(
        put_credits(&s, &session, "nope", json!({"remaining": 5})).status,
        404
    );
    let (reader, _) = new_key(&s, &session, json!({"name": "r", "role": "reader"}));
    let r = put_credits(&s, &reader, &daily_id, json!({"remaining": 5}));
    assert_eq!(r.status, 403, "{}", r.text);
    let r = put_credits(&s, &plain, &daily_id, json!({"remaining": 2}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["credits_remaining"], 2);
    assert_eq!(r.body["refill"], Value::Null);
    assert_eq!(list_item(&s, &session, &daily_id)["refill"], Value::Null);

    // Verify spends a credit and says how many are left, then USAGE_EXCEEDED.
    let verify = |key: &str| {
        let r = s.call(
            "POST",
            "/api/keys/verify",
            Some(&session),
            Some(json!({"key": key})),
        );
        assert_eq!(r.status, 200, "{}", r.text);
        r
    };
    let v = verify(&daily);
    assert_eq!(
        (v.body["code"].clone(), v.body["credits_remaining"].clone()),
        (json!("VALID"), json!(1))
    );
    assert_eq!(spend(&s, &daily).status, 200);
    let v = verify(&daily);
    assert_eq!(v.body["code"], "USAGE_EXCEEDED");
    assert_eq!(v.body["valid"], false);
    assert_eq!(v.body["credits_remaining"], 0);
    assert_eq!(verify(&plain).body["credits_remaining"], Value::Null);

    // An unmetered key becomes metered by a PUT; seed 003's route takes credits.
    assert_eq!(
        put_credits(&s, &session, &plain_id, json!({"remaining": 0})).status,
        200
    );
    assert_eq!(spend(&s, &plain).status, 429);
    let r = s.call(
        "POST",
        "/api/user/key",
        Some(&session),
        Some(json!({"email": "alice", "credits": {"remaining": 1}})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let primary = r.str("key");
    assert_eq!(spend(&s, &primary).status, 200);
    assert_eq!(spend(&s, &primary).status, 429);
}

#[test]
fn credits_survive_sigterm_and_kill9_restarts() {
    let mut s = Server::start(LASTING);
    let session = register_and_login(&s, "alice");
    let (key, key_id) = new_key(
        &s,
        &session,
        json!({"name": "m", "credits": {"remaining": 5}}),
    );
    assert_eq!(spend(&s, &key).status, 200);
    assert_eq!(spend(&s, &key).status, 200);
    // SIGTERM flushes the spending and writes a snapshot.
    assert!(s.sigterm().success());
    s.restart();
    let session = crate::support::login(&s, "alice");
    assert_eq!(list_item(&s, &session, &key_id)["credits_remaining"], 3);
    assert_eq!(spend(&s, &key).status, 200);
    // An acknowledged set survives kill -9 (replayed from the log, over the
    // snapshot and the older spending).
    let r = put_credits(
        &s,
        &session,
        &key_id,
        json!({"remaining": 10, "refill": {"amount": 10, "interval": "monthly"}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    s.restart();
    let session = crate::support::login(&s, "alice");
    let it = list_item(&s, &session, &key_id);
    assert_eq!(it["credits_remaining"], 10);
    assert_eq!(it["refill"], json!({"amount": 10, "interval": "monthly"}));
    assert_eq!(spend(&s, &key).status, 200);
    assert!(s.sigterm().success());
    s.restart();
    let session = crate::support::login(&s, "alice");
    assert_eq!(list_item(&s, &session, &key_id)["credits_remaining"], 9);
}

#[test]
fn rotation_keeps_the_old_key_for_its_grace_then_401_also_across_a_restart() {
    let mut s = Server::start(LASTING);
    let session = register_and_login(&s, "alice");
    let bob = register_and_login(&s, "bob");
    let (old, old_id) = new_key(
        &s,
        &session,
        json!({"name": "fleet", "role": "worker", "credits": {"remaining": 4}}),
    );
    assert_eq!(spend(&s, &old).status, 200);
    assert_eq!(rotate(&s, &bob, &old_id, None).status, 404);
    assert_eq!(rotate(&s, &session, "nope", None).status, 404);
    assert_eq!(
        rotate(
            &s,
            &session,
            &old_id,
            Some(json!({"grace_secs": 2_592_001}))
        )
        .status,
        400
    );
    let r = rotate(&s, &session, &old_id, Some(json!({"grace_secs": 3600})));
    assert_eq!(r.status, 201, "{}", r.text);
    let (new, new_id) = (r.str("key"), r.str("key_id"));
    assert!(new.starts_with(&r.str("key_prefix")));
    assert!(r.body["old_key_expires_at"].is_string());
    assert_eq!(rotate(&s, &session, &old_id, None).status, 409);
    let it = list_item(&s, &session, &new_id);
    assert_eq!(it["name"], "fleet");
    assert_eq!(it["scopes"], json!(["pool:read", "pool:write"]));
    assert_eq!(it["credits_remaining"], 3);
    let it = list_item(&s, &session, &old_id);
    assert_eq!(it["rotated_to"], new_id.as_str());
    assert_eq!(it["grace_until"], r.body["old_key_expires_at"]);
    // Both work in the grace period and share the credits.
    assert_eq!(spend(&s, &old).status, 200);
    assert_eq!(spend(&s, &new).status, 200);
    s.restart();
    assert_eq!(spend(&s, &old).status, 200);
    let session = crate::support::login(&s, "alice");
    // The rotation survived kill -9; the old key's grace can end at once.
    assert_eq!(
        list_item(&s, &session, &old_id)["rotated_to"],
        new_id.as_str()
    );
    let (short, short_id) = new_key(&s, &session, json!({"name": "short"}));
    let r = rotate(&s, &session, &short_id, Some(json!({"grace_secs": 0})));
    assert_eq!(r.status, 201, "{}", r.text);
    let after = spend(&s, &short);
    assert_eq!(after.status, 401, "{}", after.text);
    assert!(after.error().contains("rotated"), "{}", after.text);
    assert_eq!(spend(&s, &r.str("key")).status, 200);
    assert!(s.sigterm().success());
    s.restart();
    assert_eq!(spend(&s, &short).status, 401);
    assert_eq!(spend(&s, &old).status, 200);
}
