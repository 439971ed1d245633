//! `Idempotency-Key`: a retried request gets the first answer again without a
//! second effect, also after kill -9; a reused key for another request is 409.

use serde_json::{json, Value};

use crate::support::{raw, register_and_login, Resp, Server, RELAXED};

fn with_key(
    s: &Server,
    method: &str,
    path: &str,
    key: &str,
    auth: Option<&str>,
    body: Option<Value>,
) -> Resp {
    let mut h = vec![("Idempotency-Key".to_string(), key.to_string())];
    if let Some(t) = auth {
        h.push(("Authorization".to_string(), format!("Bearer {t}")));
    }
    raw(method, &s.url(path), &h, body.map(|b| b.to_string()))
}

#[test]
fn a_retried_create_and_checkout_get_the_first_answer_also_after_kill_9() {
    let mut s = Server::start(&["--open-pool"]);
    let body = json!({"value": "v-1"});
    let first = with_key(
        &s,
        "POST",
        "/pools/p/keys",
        "create-1",
        None,
        Some(body.clone()),
    );
    assert_eq!(first.status, 201, "{}", first.text);
    let again = with_key(
        &s,
        "POST",
        "/pools/p/keys",
        "create-1",
        None,
        Some(body.clone()),
    );
    assert_eq!(
        (again.status, again.text.clone()),
        (201, first.text.clone())
    );
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(s.call("GET", "/pools/p/stats", None, None).body["total"], 1);

    // The same key for something else is refused and changes nothing.
    let other = with_key(
        &s,
        "POST",
        "/pools/p/keys",
        "create-1",
        None,
        Some(json!({"value": "v-2"})),
    );
    assert_eq!(other.status, 409);
    assert_eq!(
        other.body["error"],
        "Idempotency-Key was already used for a different request."
    );
    let other = with_key(
        &s,
        "POST",
        "/pools/q/keys",
        "create-1",
        None,
        Some(body.clone()),
    );
    assert_eq!(other.status, 409);
    assert_eq!(s.call("GET", "/pools/q/stats", None, None).body["total"], 0);

    // A checkout retried gets the same lease, and takes no second key.
    with_key(&s, "POST", "/pools/p/keys", "create-2", None, None);
    let out = with_key(&s, "GET", "/pools/p/keys?count=1", "co-1", None, None);
    assert_eq!(out.status, 200, "{}", out.text);
    let out2 = with_key(&s, "GET", "/pools/p/keys?count=1", "co-1", None, None);
    assert_eq!(out2.text, out.text);
    assert_eq!(
        s.call("GET", "/pools/p/stats", None, None).body["blocked"],
        1
    );

    // Kept across kill -9: the retry after a crash is still the first answer.
    s.restart();
    let after = with_key(&s, "POST", "/pools/p/keys", "create-1", None, Some(body));
    assert_eq!((after.status, after.text), (201, first.text));
    let after = with_key(&s, "GET", "/pools/p/keys?count=1", "co-1", None, None);
    assert_eq!(after.text, out.text);
    assert_eq!(s.call("GET", "/pools/p/stats", None, None).body["total"], 2);

    for bad in ["", &"x".repeat(256), "tab\there", "é"] {
        let mut h = vec![];
        if let Ok(v) = ureq_safe(bad) {
            h.push(("Idempotency-Key".to_string(), v));
        } else {
            continue;
        }
        let r = raw("POST", &s.url("/keys"), &h, None);
        assert_eq!(r.status, 400, "{bad:?}: {}", r.text);
        assert!(r.text.contains("Idempotency-Key"));
    }
}

/// Header values the HTTP client can send at all.
fn ureq_safe(v: &str) -> Result<String, ()> {
    if v.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        Ok(v.to_owned())
    } else {
        Err(())
    }
}

#[test]
fn a_retried_generate_key_gives_the_same_key_once_and_keeps_it_sealed() {
    let s = Server::start(RELAXED);
    let token = register_and_login(&s, "idem-user");
    let body = json!({"name": "ci"});
    let first = with_key(
        &s,
        "POST",
        "/generate-key",
        "gen-1",
        Some(&token),
        Some(body.clone()),
    );
    assert_eq!(first.status, 201, "{}", first.text);
    let again = with_key(
        &s,
        "POST",
        "/generate-key",
        "gen-1",
        Some(&token),
        Some(body),
    );
    assert_eq!(again.text, first.text);
    let list = s.call("GET", "/list-keys", Some(&token), None);
    assert_eq!(
        list.body["items"].as_array().unwrap().len(),
        1,
        "{}",
        list.text
    );
    // The full key works, and is nowhere on disk in the clear.
    let key = first.str("key");
    assert_eq!(s.call("GET", "/stats", Some(&key), None).status, 200);
    let mut disk = Vec::new();
    for e in std::fs::read_dir(&s.dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            disk.extend(std::fs::read(p).unwrap());
        }
    }
    assert!(!disk.windows(key.len()).any(|w| w == key.as_bytes()));
    // Another account's same Idempotency-Key is its own.
    let token2 = register_and_login(&s, "idem-other");
    let theirs = with_key(
        &s,
        "POST",
        "/generate-key",
        "gen-1",
        Some(&token2),
        Some(json!({"name": "ci"})),
    );
    assert_eq!(theirs.status, 201);
    assert_ne!(theirs.str("key"), key);
}

#[test]
fn a_retried_purchase_gets_the_first_answer_and_a_changed_pin_is_409() {
    let s = Server::start(RELAXED);
    let token = register_and_login(&s, "idem-buyer");
    let r = s.call(
        "PUT",
        "/api/user/pin",
        Some(&token),
        Some(json!({"pin": "4321"})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let token = crate::support::login(&s, "idem-buyer");
    let first = with_key(
        &s,
        "POST",
        "/video/purchase",
        "buy-1",
        Some(&token),
        Some(json!({"pin": "4321"})),
    );
    assert_eq!(first.status, 202, "{}", first.text);
    let again = with_key(
        &s,
        "POST",
        "/video/purchase",
        "buy-1",
        Some(&token),
        Some(json!({"pin": "4321"})),
    );
    assert_eq!(
        (again.status, again.text.clone()),
        (202, first.text.clone())
    );
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    let other = with_key(
        &s,
        "POST",
        "/video/purchase",
        "buy-1",
        Some(&token),
        Some(json!({"pin": "9999"})),
    );
    assert_eq!(other.status, 409, "{}", other.text);
}
