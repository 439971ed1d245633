//! Credit top-ups over HTTP: `POST /api/user/credits` waits for payment like a
//! purchase and then raises the balance; the amount bounds; the PIN answers
//! and the lockout shared with purchases; a waiting top-up that outlives
//! kill -9 completes exactly once; listing, privacy and the `purchase` scope.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{eventually, raw, register_and_login, Resp, Server};

/// Sessions that last the whole test, and a short payment delay.
fn start(delay: &str) -> Server {
    Server::start(&[
        "--ip-rate-limit",
        "100000/1m",
        "--keys-per-day",
        "1000",
        "--session-max-uses",
        "100000",
        "--payment-delay",
        delay,
    ])
}

/// A new account with PIN `pin`; returns its session.
fn account(s: &Server, user: &str, pin: &str) -> String {
    let t = register_and_login(s, user);
    let r = s.call("PUT", "/api/user/pin", Some(&t), Some(json!({"pin": pin})));
    assert_eq!(r.status, 200, "{}", r.text);
    t
}

fn top_up(s: &Server, t: &str, body: Value) -> Resp {
    s.call("POST", "/api/user/credits", Some(t), Some(body))
}

fn credits(s: &Server, t: &str) -> Resp {
    let r = s.call("GET", "/api/user/credits", Some(t), None);
    assert_eq!(r.status, 200, "{}", r.text);
    r
}

fn balance(s: &Server, t: &str) -> u64 {
    credits(s, t).body["balance"].as_u64().unwrap()
}

#[test]
fn a_top_up_waits_then_raises_the_balance_and_is_listed() {
    let s = start("1s");
    let t = account(&s, "saver", "4321");
    let before = balance(&s, &t);
    let r = top_up(&s, &t, json!({"amount": 500, "pin": "4321"}));
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (202, Some("waiting")),
        "{}",
        r.text
    );
    let id = r.str("topup_id");
    assert!(id.len() >= 32, "unguessable id: {id}");
    let l = credits(&s, &t);
    assert_eq!(l.body["topups"][0]["topup_id"], id.as_str());
    assert_eq!(l.body["topups"][0]["amount"], 500);
    assert!(l.body["topups"][0]["created_at"].is_u64());
    assert!(eventually(Duration::from_secs(6), || {
        credits(&s, &t).body["topups"][0]["status"] == "completed"
    }));
    assert_eq!(balance(&s, &t), before + 500);

    // Newest first.
    let r2 = top_up(&s, &t, json!({"amount": 100, "pin": "4321"}));
    assert_eq!(r2.status, 202, "{}", r2.text);
    let l = credits(&s, &t);
    let ids: Vec<&str> = l.body["topups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["topup_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![r2.str("topup_id").as_str(), id.as_str()]);

    // Another account sees neither the top-ups nor the balance change.
    let other = account(&s, "stranger", "1111");
    let l = credits(&s, &other);
    assert_eq!(l.body["topups"], json!([]));
    assert_eq!(l.body["balance"].as_u64(), Some(before));
    assert_eq!(s.call("GET", "/api/user/credits", None, None).status, 401);
}

#[test]
fn amounts_are_integers_from_100_to_100000() {
    let s = start("60s");
    let t = account(&s, "bounds", "2468");
    for (amount, want) in [
        (json!(99), 400),
        (json!(100), 202),
        (json!(100000), 202),
        (json!(100001), 400),
        (json!(0), 400),
        (json!(-500), 400),
        (json!(150.5), 400),
        (json!("500"), 400),
        (Value::Null, 400),
    ] {
        let r = top_up(&s, &t, json!({"amount": amount, "pin": "2468"}));
        assert_eq!(r.status, want, "{amount}: {}", r.text);
        if want == 400 {
            assert_eq!(
                r.error(),
                "Field `amount` must be an integer number of cents from 100 to 100000."
            );
        }
    }
    let r = top_up(&s, &t, json!({"amount": 500}));
    assert_eq!((r.status, r.error()), (400, "Field `pin` is required."));
    assert_eq!(credits(&s, &t).body["topups"].as_array().unwrap().len(), 2);
}

#[test]
fn pin_answers_and_the_lockout_are_shared_with_purchases() {
    let s = start("60s");
    let t = register_and_login(&s, "forgetful");
    let no_pin_topup = top_up(&s, &t, json!({"amount": 500, "pin": "1234"}));
    let no_pin_buy = s.call(
        "POST",
        "/video/purchase",
        Some(&t),
        Some(json!({"pin": "1234"})),
    );
    assert_eq!(
        (no_pin_topup.status, no_pin_topup.error()),
        (no_pin_buy.status, no_pin_buy.error())
    );
    assert_eq!(no_pin_topup.status, 400);
    let r = s.call(
        "PUT",
        "/api/user/pin",
        Some(&t),
        Some(json!({"pin": "9753"})),
    );
    assert_eq!(r.status, 200);
    let bad = top_up(&s, &t, json!({"amount": 500, "pin": "12"}));
    assert_eq!(
        (bad.status, bad.error()),
        (400, "Field `pin` must be 4 to 8 digits.")
    );

    // Five wrong PINs in all, mixed between top-ups and purchases, lock both.
    for i in 0..5 {
        let r = if i % 2 == 0 {
            top_up(&s, &t, json!({"amount": 500, "pin": "0000"}))
        } else {
            s.call(
                "POST",
                "/video/purchase",
                Some(&t),
                Some(json!({"pin": "0000"})),
            )
        };
        assert_eq!(
            (r.status, r.error()),
            (403, "Incorrect PIN."),
            "wrong PIN {i}"
        );
    }
    let locked_topup = top_up(&s, &t, json!({"amount": 500, "pin": "9753"}));
    let locked_buy = s.call(
        "POST",
        "/video/purchase",
        Some(&t),
        Some(json!({"pin": "9753"})),
    );
    assert_eq!(locked_topup.status, 429, "{}", locked_topup.text);
    assert_eq!(locked_buy.status, 429, "{}", locked_buy.text);
    assert_eq!(locked_topup.error(), locked_buy.error());
    assert!(locked_topup.header("retry-after").is_some());
    assert_eq!(credits(&s, &t).body["topups"], json!([]));
}

#[test]
fn a_key_needs_the_purchase_scope() {
    let s = start("60s");
    let t = account(&s, "scoped", "8642");
    let mk = |scopes: Value| {
        let r = s.call(
            "POST",
            "/generate-key",
            Some(&t),
            Some(json!({"name": format!("k{scopes}"), "scopes": scopes})),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        r.str("key")
    };
    let reader = mk(json!(["pool:read"]));
    let buyer = mk(json!(["purchase"]));
    let body = json!({"amount": 300, "pin": "8642"});
    let auth = |k: &str| vec![("X-API-Key".to_string(), k.to_string())];
    let r = raw(
        "POST",
        &s.url("/api/user/credits"),
        &auth(&reader),
        Some(body.to_string()),
    );
    assert_eq!(r.status, 403, "{}", r.text);
    assert_eq!(r.error(), "This API key lacks the scope `purchase`.");
    let r = raw("GET", &s.url("/api/user/credits"), &auth(&reader), None);
    assert_eq!(r.status, 403, "{}", r.text);
    let r = raw(
        "POST",
        &s.url("/api/user/credits"),
        &auth(&buyer),
        Some(body.to_string()),
    );
    assert_eq!(r.status, 202, "{}", r.text);
    let r = raw("GET", &s.url("/api/user/credits"), &auth(&buyer), None);
    assert_eq!(
        (r.status, r.body["topups"][0]["amount"].as_u64()),
        (200, Some(300))
    );
}

#[test]
fn a_retried_top_up_with_an_idempotency_key_is_made_once() {
    let s = start("60s");
    let t = account(&s, "retrier", "1357");
    let h = vec![
        ("Idempotency-Key".to_string(), "topup-1".to_string()),
        ("Authorization".to_string(), format!("Bearer {t}")),
    ];
    let body = json!({"amount": 700, "pin": "1357"}).to_string();
    let first = raw("POST", &s.url("/api/user/credits"), &h, Some(body.clone()));
    let again = raw("POST", &s.url("/api/user/credits"), &h, Some(body));
    assert_eq!(first.status, 202, "{}", first.text);
    assert_eq!(
        (again.status, again.str("topup_id")),
        (202, first.str("topup_id"))
    );
    assert_eq!(credits(&s, &t).body["topups"].as_array().unwrap().len(), 1);
}

#[test]
fn a_waiting_top_up_survives_kill_9_and_completes_once() {
    let mut s = start("2s");
    let t = account(&s, "patient", "8642");
    let before = balance(&s, &t);
    let r = top_up(&s, &t, json!({"amount": 1234, "pin": "8642"}));
    assert_eq!(r.status, 202, "{}", r.text);
    s.kill9();
    s.restart();
    let t = crate::support::login(&s, "patient");
    assert_eq!(credits(&s, &t).body["topups"][0]["status"], "waiting");
    assert!(eventually(Duration::from_secs(8), || {
        credits(&s, &t).body["topups"][0]["status"] == "completed"
    }));
    assert_eq!(balance(&s, &t), before + 1234);
    // And once more across a restart: replay does not raise it again.
    s.kill9();
    s.restart();
    let t = crate::support::login(&s, "patient");
    assert_eq!(balance(&s, &t), before + 1234);
    assert_eq!(credits(&s, &t).body["topups"][0]["status"], "completed");
}
