//! The API-key platform (issue 10, first slice): scopes and roles checked on
//! every route, IP allowlists against the TCP peer, disable/enable, and
//! `POST /api/keys/verify` with each result code; all across a restart.

use serde_json::{json, Value};

use crate::support::{list_item, new_key, register_and_login, Resp, Server, LASTING};

fn key_with(s: &Server, session: &str, body: Value) -> Resp {
    s.call("POST", "/generate-key", Some(session), Some(body))
}

fn lacks(r: &Resp, scope: &str) {
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(
        r.error(),
        format!("This API key lacks the scope `{scope}`."),
        "{}",
        r.text
    );
}

#[test]
fn a_reader_key_cannot_check_out_and_each_route_needs_its_scope() {
    let s = Server::start(LASTING);
    let session = register_and_login(&s, "alice");
    s.call("POST", "/keys", Some(&session), None);
    let (reader, _) = new_key(&s, &session, json!({"name": "r", "role": "reader"}));
    let (worker, _) = new_key(&s, &session, json!({"name": "w", "role": "worker"}));
    let (default, default_id) = new_key(&s, &session, json!({"name": "d"}));
    let (buyer, _) = new_key(&s, &session, json!({"name": "b", "scopes": ["purchase"]}));

    // Reader: pool:read and keys:read only.
    lacks(&s.call("GET", "/keys", Some(&reader), None), "pool:write");
    lacks(&s.call("POST", "/keys", Some(&reader), None), "pool:write");
    lacks(
        &s.call("POST", "/pools/p/keys", Some(&reader), None),
        "pool:write",
    );
    lacks(
        &s.call("DELETE", "/pools/p", Some(&reader), None),
        "pool:write",
    );
    assert_eq!(s.call("GET", "/stats", Some(&reader), None).status, 200);
    assert_eq!(s.call("GET", "/pools", Some(&reader), None).status, 200);
    assert_eq!(
        s.call("GET", "/pools/default/stats", Some(&reader), None)
            .status,
        200
    );
    assert_eq!(s.call("GET", "/list-keys", Some(&reader), None).status, 200);
    assert_eq!(
        s.call("GET", "/api/user/usage/alice", Some(&reader), None)
            .status,
        200
    );
    lacks(
        &s.call("POST", "/generate-key", Some(&reader), Some(json!({}))),
        "keys:write",
    );
    lacks(
        &s.call(
            "POST",
            "/revoke-key",
            Some(&reader),
            Some(json!({"key": default_id})),
        ),
        "keys:write",
    );
    lacks(
        &s.call("DELETE", "/api/user/key/alice", Some(&reader), None),
        "keys:write",
    );
    lacks(
        &s.call(
            "POST",
            "/video/purchase",
            Some(&reader),
            Some(json!({"pin": "1234"})),
        ),
        "purchase",
    );

    // Worker: the pool, nothing else.
    let out = s.call("GET", "/keys", Some(&worker), None);
    assert_eq!(out.status, 200, "{}", out.text);
    let id = out.str("key_id");
    assert_eq!(
        s.call("GET", &format!("/keys/{id}"), Some(&worker), None)
            .status,
        200
    );
    let lease = out.str("lease_id");
    let ext = s.call(
        "PUT",
        &format!("/keys/{id}/lease?lease_id={lease}"),
        Some(&worker),
        None,
    );
    assert_eq!(ext.status, 200, "{}", ext.text);
    assert_eq!(
        s.call("PUT", &format!("/keys/{id}"), Some(&worker), None)
            .status,
        200
    );
    assert_eq!(
        s.call("PUT", &format!("/keepalive/{id}"), Some(&worker), None)
            .status,
        200
    );
    lacks(
        &s.call("GET", "/list-keys", Some(&worker), None),
        "keys:read",
    );
    lacks(
        &s.call("GET", "/api/user/key/alice", Some(&worker), None),
        "keys:read",
    );
    lacks(
        &s.call(
            "POST",
            "/api/user/key",
            Some(&worker),
            Some(json!({"email": "alice"})),
        ),
        "keys:write",
    );
    // The default: everything built in but keys:verify.
    assert_eq!(
        s.call("DELETE", &format!("/keys/{id}"), Some(&default), None)
            .status,
        200
    );
    lacks(
        &s.call(
            "POST",
            "/api/keys/verify",
            Some(&default),
            Some(json!({"key": worker})),
        ),
        "keys:verify",
    );
    // Purchase only.
    lacks(&s.call("GET", "/stats", Some(&buyer), None), "pool:read");
    let pin = s.call(
        "PUT",
        "/api/user/pin",
        Some(&buyer),
        Some(json!({"pin": "1234"})),
    );
    assert_ne!(pin.status, 403, "{}", pin.text);

    // Sessions keep full rights.
    assert_eq!(
        s.call("GET", "/list-keys", Some(&session), None).status,
        200
    );
    let items = s.call("GET", "/list-keys", Some(&session), None);
    let scopes = |name: &str| {
        items.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == name)
            .unwrap()["scopes"]
            .clone()
    };
    assert_eq!(scopes("r"), json!(["pool:read", "keys:read"]));
    assert_eq!(scopes("w"), json!(["pool:read", "pool:write"]));
    assert_eq!(
        scopes("d"),
        json!([
            "pool:read",
            "pool:write",
            "keys:read",
            "keys:write",
            "purchase"
        ])
    );
    assert_eq!(scopes("b"), json!(["purchase"]));
}

#[test]
fn scopes_and_roles_are_validated_and_a_key_cannot_grant_more_than_it_has() {
    let s = Server::start(LASTING);
    let session = register_and_login(&s, "bob");
    for (body, field) in [
        (json!({"scopes": ["Pool:Write"]}), "scopes"),
        (json!({"scopes": "pool:write"}), "scopes"),
        (json!({"role": "root"}), "role"),
        (json!({"allowed_ips": ["10.0.0.0/33"]}), "allowed_ips"),
        (json!({"allowed_ips": ["not an ip"]}), "allowed_ips"),
    ] {
        let r = key_with(&s, &session, body.clone());
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert!(r.error().contains(field), "{body}: {}", r.text);
    }
    // Role and scopes together: the union; custom names are kept.
    let (_, id) = new_key(
        &s,
        &session,
        json!({"role": "worker", "scopes": ["keys:verify", "billing.read"]}),
    );
    assert_eq!(
        list_item(&s, &session, &id)["scopes"],
        json!(["pool:read", "pool:write", "keys:verify", "billing.read"])
    );
    // A keys:write key may create keys with its own scopes, not more.
    let (writer, _) = new_key(&s, &session, json!({"scopes": ["keys:write", "pool:read"]}));
    let r = key_with(&s, &writer, json!({"scopes": ["pool:read"]}));
    assert_eq!(r.status, 201, "{}", r.text);
    let r = key_with(&s, &writer, json!({"role": "worker"}));
    assert_eq!(r.status, 403, "{}", r.text);
    assert!(r.error().contains("`pool:write`"), "{}", r.text);
    let r = key_with(&s, &writer, json!({}));
    assert_eq!(r.status, 403, "the default exceeds it too: {}", r.text);
    // Seed 003's route takes them too.
    let r = s.call(
        "POST",
        "/api/user/key",
        Some(&session),
        Some(json!({"email": "bob", "key_name": "primary", "role": "reader"})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    lacks(
        &s.call("GET", "/keys", Some(&r.str("key")), None),
        "pool:write",
    );
}

#[test]
fn an_allowlist_refuses_other_addresses_and_survives_a_restart() {
    let mut s = Server::start(LASTING);
    let session = register_and_login(&s, "carol");
    let (far, far_id) = new_key(
        &s,
        &session,
        json!({"allowed_ips": ["10.0.0.0/8"], "meta": {"team": "ml"}}),
    );
    let (near, near_id) = new_key(
        &s,
        &session,
        json!({"allowed_ips": ["2001:db8::/32", "127.0.0.0/8"], "role": "worker"}),
    );
    let refused = s.call("GET", "/stats", Some(&far), None);
    assert_eq!(refused.status, 403, "{}", refused.text);
    assert_eq!(
        refused.error(),
        "This API key may not be used from this address."
    );
    assert_eq!(s.call("GET", "/stats", Some(&near), None).status, 200);
    assert_eq!(
        list_item(&s, &session, &far_id)["allowed_ips"],
        json!(["10.0.0.0/8"])
    );
    assert_eq!(list_item(&s, &session, &far_id)["usage_count"], 0);
    assert_eq!(
        list_item(&s, &session, &near_id)["allowed_ips"],
        json!(["2001:db8::/32", "127.0.0.0/8"])
    );
    for snapshot in [false, true] {
        // kill -9 replays the log; SIGTERM writes a snapshot first.
        if snapshot {
            assert!(s.sigterm().success());
        }
        s.restart();
        assert_eq!(s.call("GET", "/stats", Some(&far), None).status, 403);
        assert_eq!(s.call("GET", "/stats", Some(&near), None).status, 200);
        assert_eq!(
            list_item(&s, &session, &far_id)["meta"],
            json!({"team": "ml"})
        );
    }
    lacks(&s.call("GET", "/list-keys", Some(&near), None), "keys:read");
}

#[test]
fn disable_and_enable_across_a_restart_and_not_for_another_account() {
    let mut s = Server::start(LASTING);
    let session = register_and_login(&s, "dave");
    let other = register_and_login(&s, "erin");
    let (key, id) = new_key(&s, &session, json!({"name": "k"}));
    let disable = format!("/api/keys/{id}/disable");
    let enable = format!("/api/keys/{id}/enable");
    assert_eq!(s.call("POST", &disable, Some(&other), None).status, 404);
    assert_eq!(
        s.call("POST", "/api/keys/not-a-uuid/disable", Some(&session), None)
            .status,
        404
    );
    let r = s.call("POST", &disable, Some(&session), None);
    assert_eq!(r.status, 200, "{}", r.text);
    let refused = s.call("GET", "/stats", Some(&key), None);
    assert_eq!(refused.status, 401);
    assert_eq!(refused.error(), "This API key is disabled.");
    assert_eq!(list_item(&s, &session, &id)["disabled"], true);
    s.restart();
    assert_eq!(s.call("GET", "/stats", Some(&key), None).status, 401);
    // A key with keys:write can manage keys; one without cannot.
    let (admin, _) = new_key(&s, &session, json!({"role": "admin"}));
    let (reader, _) = new_key(&s, &session, json!({"role": "reader"}));
    lacks(&s.call("POST", &enable, Some(&reader), None), "keys:write");
    assert_eq!(s.call("POST", &enable, Some(&admin), None).status, 200);
    assert_eq!(s.call("GET", "/stats", Some(&key), None).status, 200);
    assert_eq!(list_item(&s, &session, &id)["disabled"], false);
    // SIGTERM writes a snapshot: this start reads the access rules from it.
    assert!(s.sigterm().success());
    s.restart();
    assert_eq!(s.call("GET", "/stats", Some(&key), None).status, 200);
}

#[test]
fn verify_gives_each_code() {
    let s = Server::start(LASTING);
    let session = register_and_login(&s, "frank");
    let verify = |key: &str, scope: Option<&str>| {
        let mut body = json!({"key": key});
        if let Some(sc) = scope {
            body["scope"] = json!(sc);
        }
        let r = s.call("POST", "/api/keys/verify", Some(&session), Some(body));
        assert_eq!(r.status, 200, "{}", r.text);
        r
    };
    let code = |key: &str, scope: Option<&str>| verify(key, scope).str("code");
    let (svc, _) = new_key(
        &s,
        &session,
        json!({"name": "svc", "scopes": ["keys:verify"]}),
    );
    let (user, user_id) = new_key(
        &s,
        &session,
        json!({"name": "user", "scopes": ["billing.read"], "expires_in": 3600,
               "allowed_ips": ["10.0.0.0/8"], "meta": {"plan": "pro", "seats": 3}}),
    );
    assert_eq!(
        list_item(&s, &session, &user_id)["meta"],
        json!({"plan": "pro", "seats": 3})
    );
    for meta in [json!("text"), json!([1]), json!({"x": "y".repeat(1100)})] {
        let r = key_with(&s, &session, json!({"meta": meta}));
        assert_eq!(r.status, 400, "{}", r.text);
        assert!(r.error().contains("meta"), "{}", r.text);
    }
    // The service's own key, with keys:verify.
    let r = s.call(
        "POST",
        "/api/keys/verify",
        Some(&svc),
        Some(json!({"key": user})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["valid"], true);
    assert_eq!(r.body["code"], "VALID");
    assert_eq!(r.body["key_id"], user_id.as_str());
    assert_eq!(r.body["name"], "user");
    assert_eq!(r.body["scopes"], json!(["billing.read"]));
    assert!(r.body["expires_at"].is_string(), "{}", r.text);
    assert_eq!(r.body["meta"], json!({"plan": "pro", "seats": 3}));
    assert_eq!(code(&user, Some("billing.read")), "VALID");
    let forbidden = verify(&user, Some("billing.write"));
    assert_eq!(forbidden.body["valid"], false);
    assert_eq!(forbidden.str("code"), "FORBIDDEN");
    assert_eq!(code(&user, Some("pool:read")), "FORBIDDEN");
    // Unknown, malformed, another account's.
    assert_eq!(code("sk_live_nothing", None), "NOT_FOUND");
    let other = register_and_login(&s, "grace");
    let (theirs, _) = new_key(&s, &other, json!({}));
    let nf = verify(&theirs, None);
    assert_eq!(nf.str("code"), "NOT_FOUND");
    assert!(nf.body.get("key_id").is_none(), "{}", nf.text);
    // Disabled, revoked, expired.
    let (d, d_id) = new_key(&s, &session, json!({}));
    s.call(
        "POST",
        &format!("/api/keys/{d_id}/disable"),
        Some(&session),
        None,
    );
    assert_eq!(code(&d, None), "DISABLED");
    let (rv, _) = new_key(&s, &session, json!({}));
    s.call(
        "POST",
        "/revoke-key",
        Some(&session),
        Some(json!({"key": rv})),
    );
    assert_eq!(code(&rv, None), "REVOKED");
    let (ex, _) = new_key(&s, &session, json!({"expires_in": 1}));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(code(&ex, None), "EXPIRED");
    // Rate limited: the verification is a use of the key.
    let (rl, rl_id) = new_key(
        &s,
        &session,
        json!({"rate_limit": {"limit": 2, "window_secs": 3600}}),
    );
    assert_eq!(code(&rl, None), "VALID");
    assert_eq!(code(&rl, None), "VALID");
    assert_eq!(code(&rl, None), "RATE_LIMITED");
    assert_eq!(s.call("GET", "/stats", Some(&rl), None).status, 429);
    assert_eq!(list_item(&s, &session, &rl_id)["usage_count"], 4);
    // Bad requests.
    let bad = s.call(
        "POST",
        "/api/keys/verify",
        Some(&session),
        Some(json!({"scope": "x"})),
    );
    assert_eq!(bad.status, 400, "{}", bad.text);
    let bad = s.call(
        "POST",
        "/api/keys/verify",
        Some(&session),
        Some(json!({"key": user, "scope": "Bad Scope"})),
    );
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert_eq!(
        s.call("POST", "/api/keys/verify", None, Some(json!({"key": user})))
            .status,
        401
    );
}
