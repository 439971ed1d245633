//! The security event log over HTTP, continued: PIN, purchase and top-up
//! entries; pages, bad parameters and scopes; kill -9 and a snapshot restart.

use serde_json::{json, Value};

use crate::events::{
    all, assert_no_secret, get_from, new_key, of, page, start, types, with_key, PASSWORD,
};
use crate::support::{login, register_and_login, snapshots, Server};

const PIN: &str = "97531864";
const WRONG: &str = "86420135";

fn buy(s: &Server, t: &str, pin: &str) -> (u16, Value) {
    let r = s.call(
        "POST",
        "/video/purchase",
        Some(t),
        Some(json!({"pin": pin})),
    );
    (r.status, r.body)
}

#[test]
fn pin_purchase_and_top_up_entries() {
    let s = start();
    let t = register_and_login(&s, "frank");
    let r = s.call("PUT", "/api/user/pin", Some(&t), Some(json!({"pin": PIN})));
    assert_eq!(r.status, 200, "{}", r.text);
    let (status, body) = buy(&s, &t, PIN);
    assert_eq!(status, 202, "{body}");
    let r = s.call(
        "POST",
        "/api/user/credits",
        Some(&t),
        Some(json!({"amount": 500, "pin": PIN})),
    );
    assert_eq!(r.status, 202, "{}", r.text);
    let topup_id = r.str("topup_id");
    let events = all(&s, &t);
    assert_eq!(types(&events), ["login", "pin_set", "purchase", "topup"]);
    let bought = &of(&events, "purchase")[0]["detail"];
    assert_eq!(bought["purchase_id"], body["purchase_id"]);
    assert_eq!(bought["video_id"], body["video_id"]);
    let topup = &of(&events, "topup")[0]["detail"];
    assert_eq!(
        (&topup["topup_id"], &topup["amount"]),
        (&json!(topup_id), &json!(500))
    );

    // Five wrong PINs lock purchases: one pin_failed (the others fold into
    // it within the minute) and purchase_locked with the fifth; the sixth
    // is refused as locked and logs nothing.
    let g = register_and_login(&s, "grace");
    let r = s.call("PUT", "/api/user/pin", Some(&g), Some(json!({"pin": PIN})));
    assert_eq!(r.status, 200);
    let statuses: Vec<u16> = (0..6).map(|_| buy(&s, &g, WRONG).0).collect();
    assert_eq!(statuses, [403, 403, 403, 403, 403, 429]);
    let events = all(&s, &g);
    assert_eq!(
        types(&events),
        ["login", "pin_set", "pin_failed", "purchase_locked"],
        "{events:?}"
    );
    assert_eq!(of(&events, "pin_failed")[0]["detail"]["count"], 1);
    assert_eq!(of(&events, "purchase_locked")[0]["detail"]["failures"], 5);
    // A locked account cannot log more by trying again.
    assert_eq!(buy(&s, &g, PIN).0, 429);
    assert_eq!(all(&s, &g).len(), 4);
    for token in [&t, &g] {
        assert_no_secret(&s, token, &[PIN, WRONG, PASSWORD, token]);
    }
}

#[test]
fn pages_follow_next_before_and_bad_parameters_are_400() {
    let s = start();
    let t = register_and_login(&s, "heidi");
    for _ in 0..6 {
        login(&s, "heidi");
    }
    let everything = all(&s, &t);
    assert_eq!(everything.len(), 7);
    let mut seen = Vec::new();
    let mut query = "?limit=3".to_string();
    let mut pages = 0;
    loop {
        let p = page(&s, &t, &query);
        let events = p["events"].as_array().unwrap();
        assert!(events.len() <= 3);
        seen.extend(events.iter().cloned());
        pages += 1;
        match p["next_before"].as_u64() {
            Some(b) => {
                assert_eq!(Some(b), events.last().unwrap()["id"].as_u64());
                query = format!("?limit=3&before={b}");
            }
            None => break,
        }
        assert!(pages < 5);
    }
    assert_eq!((pages, &seen), (3, &everything));
    assert_eq!(
        page(&s, &t, "")["events"].as_array().unwrap().len(),
        7,
        "default 50"
    );
    let oldest = everything.last().unwrap()["id"].as_u64().unwrap();
    assert_eq!(
        page(&s, &t, &format!("?before={oldest}")),
        json!({"events": [], "next_before": null})
    );
    for bad in [
        "?limit=0",
        "?limit=201",
        "?limit=ten",
        "?limit=-1",
        "?before=x",
        "?before=-3",
    ] {
        let r = s.call("GET", &format!("/api/user/events{bad}"), Some(&t), None);
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert!(r.error().contains("must be"), "{bad}: {}", r.text);
    }
    assert_eq!(
        page(&s, &t, "?limit=200")["events"]
            .as_array()
            .unwrap()
            .len(),
        7
    );
    assert_eq!(
        page(&s, &t, "?limit=1")["events"].as_array().unwrap().len(),
        1
    );
}

#[test]
fn a_reader_key_reads_its_own_account_only_and_a_worker_key_is_403() {
    let s = start();
    let t = register_and_login(&s, "ivan");
    let other = register_and_login(&s, "judy");
    let (reader, _) = new_key(&s, &t, json!({"name": "r", "role": "reader"}));
    let (worker, _) = new_key(&s, &t, json!({"name": "w", "role": "worker"}));
    let r = with_key(&s, "GET", "/api/user/events", &reader, None);
    assert_eq!(r.status, 200, "{}", r.text);
    let types_seen: Vec<&str> = r.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    // The reader's own first use is logged before the page is read.
    assert_eq!(
        types_seen,
        [
            "key_used_from_new_ip",
            "key_created",
            "key_created",
            "login"
        ]
    );
    let r = with_key(&s, "GET", "/api/user/events", &worker, None);
    assert_eq!(
        (r.status, r.error()),
        (403, "This API key lacks the scope `keys:read`.")
    );
    // Judy's log has her sign-in only: nothing of Ivan's.
    let judy = all(&s, &other);
    assert_eq!(types(&judy), ["login"]);
    assert!(!serde_json::to_string(&judy)
        .unwrap()
        .contains(&reader[..12]));
}

#[test]
fn entries_survive_kill_9_and_a_snapshot_restart() {
    let mut s = start();
    let t = register_and_login(&s, "mallory");
    let (key, key_id) = new_key(&s, &t, json!({"name": "k"}));
    assert_eq!(
        s.call(
            "POST",
            &format!("/api/keys/{key_id}/disable"),
            Some(&t),
            None
        )
        .status,
        200
    );
    assert_eq!(
        s.call(
            "POST",
            &format!("/api/keys/{key_id}/enable"),
            Some(&t),
            None
        )
        .status,
        200
    );
    assert_eq!(get_from("127.0.0.2", &s, "/list-keys", &key), 200);
    let r = with_key(&s, "GET", "/api/user/events?limit=200", &key, None);
    assert_eq!(r.status, 200);
    let before = r.body;
    assert_eq!(before["events"].as_array().unwrap().len(), 6, "{before}");
    // Killed at once: every entry was durable before its answer.
    s.kill9();
    s.restart();
    let r = with_key(&s, "GET", "/api/user/events?limit=200", &key, None);
    assert_eq!(
        r.body, before,
        "the key's addresses survived too: no new entry"
    );
    assert_eq!(get_from("127.0.0.2", &s, "/list-keys", &key), 200);
    // A clean stop writes a snapshot; the restart reads the log from it.
    assert!(s.sigterm().success());
    assert!(!snapshots(&s.dir).is_empty());
    s.restart();
    let r = with_key(&s, "GET", "/api/user/events?limit=200", &key, None);
    assert_eq!(r.body, before);
    assert_eq!(get_from("127.0.0.2", &s, "/list-keys", &key), 200);
    let r = with_key(&s, "GET", "/api/user/events?limit=200", &key, None);
    assert_eq!(
        r.body, before,
        "127.0.0.2 is known after the snapshot restart"
    );
}
