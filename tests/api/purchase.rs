//! Purchases over HTTP: the PIN, the waiting → purchased state machine, the
//! lockout, the balance, the gated stream with Range, and a waiting purchase
//! that outlives kill -9.

use std::io::Read;
use std::time::Duration;

use serde_json::json;

use crate::support::{eventually, login, register_and_login, Server, RELAXED};

/// GET returning (status, headers we need, body bytes).
fn get_bytes(url: &str, range: Option<&str>) -> (u16, Option<String>, Option<String>, Vec<u8>) {
    let mut req = ureq::get(url);
    if let Some(r) = range {
        req = req.set("Range", r);
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{url}: {e}"),
    };
    let status = resp.status();
    let ct = resp.header("content-type").map(str::to_string);
    let cr = resp.header("content-range").map(str::to_string);
    let mut body = vec![];
    resp.into_reader().read_to_end(&mut body).unwrap();
    (status, ct, cr, body)
}

fn start(extra: &[&str]) -> Server {
    let mut args = RELAXED.to_vec();
    args.extend_from_slice(&["--payment-delay", "500ms"]);
    args.extend_from_slice(extra);
    Server::start(&args)
}

fn set_pin(s: &Server, user: &str, pin: &str) {
    let t = login(s, user);
    let r = s.call("PUT", "/api/user/pin", Some(&t), Some(json!({"pin": pin})));
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn buy_the_video_then_watch_it_with_range_requests() {
    // Long enough that the second purchase below surely finds it still waiting.
    let s = start(&["--payment-delay", "3s"]);
    let anon = s.call("GET", "/video/info", None, None);
    assert_eq!(anon.status, 200, "{}", anon.text);
    assert_eq!(anon.body["status"], "not_purchased");
    assert_eq!(anon.body["purchased"], false);
    let price = anon.body["price"].as_u64().unwrap();
    assert!(anon.body["title"].is_string() && anon.body["currency"].is_string());

    let t = register_and_login(&s, "viewer");
    let r = s.call(
        "POST",
        "/video/purchase",
        Some(&t),
        Some(json!({"pin": "1234"})),
    );
    assert_eq!(r.status, 400, "no PIN set yet: {}", r.text);
    let r = s.call("PUT", "/api/user/pin", Some(&t), Some(json!({"pin": "12"})));
    assert_eq!(r.status, 400);
    assert!(r.error().contains("pin"), "{}", r.text);
    set_pin(&s, "viewer", "4321");

    let t = login(&s, "viewer");
    let r = s.call(
        "POST",
        "/video/purchase",
        Some(&t),
        Some(json!({"pin": "1111"})),
    );
    assert_eq!((r.status, r.error()), (403, "Incorrect PIN."));
    let r = s.call(
        "POST",
        "/video/purchase",
        Some(&t),
        Some(json!({"pin": "4321"})),
    );
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.body["status"], "waiting");
    let id = r.str("purchase_id");
    assert!(id.len() >= 32, "unguessable id: {id}");
    let again = s.call(
        "POST",
        "/video/purchase",
        Some(&t),
        Some(json!({"pin": "4321"})),
    );
    assert_eq!(
        (again.status, again.str("purchase_id")),
        (202, id.clone()),
        "no double charge while waiting"
    );

    let r = s.call("GET", &format!("/video/purchase/{id}"), None, None);
    assert_eq!(r.body["status"], "waiting");
    assert!(eventually(Duration::from_secs(6), || {
        s.call("GET", &format!("/video/purchase/{id}"), None, None)
            .body["status"]
            == "purchased"
    }));
    let t = login(&s, "viewer");
    let info = s.call("GET", "/video/info", Some(&t), None);
    assert_eq!(
        (
            info.body["status"].as_str(),
            info.body["purchased"].as_bool()
        ),
        (Some("purchased"), Some(true))
    );
    assert_eq!(
        info.body["balance"].as_u64(),
        Some(1000 - price),
        "charged exactly once"
    );
    let url = s.url(info.body["stream_url"].as_str().unwrap());
    let r = s.call(
        "POST",
        "/video/purchase",
        Some(&t),
        Some(json!({"pin": "4321"})),
    );
    assert_eq!(
        (r.status, r.body["status"].as_str()),
        (200, Some("purchased"))
    );

    let (status, ct, _, whole) = get_bytes(&url, None);
    assert_eq!(status, 200);
    assert!(ct.unwrap().starts_with("video/"));
    assert!(whole.len() > 1000 && whole.len() < 1 << 20);
    let (status, _, cr, part) = get_bytes(&url, Some("bytes=100-199"));
    assert_eq!(status, 206);
    assert_eq!(cr.unwrap(), format!("bytes 100-199/{}", whole.len()));
    assert_eq!(part, whole[100..200]);
    let (status, _, _, tail) = get_bytes(&url, Some("bytes=-10"));
    assert_eq!((status, tail.as_slice()), (206, &whole[whole.len() - 10..]));
    let (status, _, cr, _) = get_bytes(&url, Some(&format!("bytes={}-", whole.len())));
    assert_eq!(status, 416);
    assert_eq!(cr.unwrap(), format!("bytes */{}", whole.len()));
}

#[test]
fn the_stream_is_gated() {
    let s = start(&[]);
    let t = register_and_login(&s, "buyer");
    set_pin(&s, "buyer", "2468");
    let t2 = login(&s, "buyer");
    let id = s
        .call(
            "POST",
            "/video/purchase",
            Some(&t2),
            Some(json!({"pin": "2468"})),
        )
        .str("purchase_id");
    assert!(eventually(Duration::from_secs(3), || {
        s.call("GET", &format!("/video/purchase/{id}"), None, None)
            .body["status"]
            == "purchased"
    }));
    let url = s
        .call("GET", &format!("/video/purchase/{id}"), None, None)
        .str("stream_url");
    assert_eq!(get_bytes(&s.url(&url), Some("bytes=0-9")).0, 206);
    let _ = t;

    let video = url.split('?').next().unwrap();
    assert_eq!(get_bytes(&s.url(video), None).0, 403, "no token");
    assert_eq!(
        get_bytes(&s.url(&format!("{video}?token=forged")), None).0,
        403,
        "forged token"
    );
    // The same token with another account's id in it: the signature no longer matches.
    let token = url.split("token=").nth(1).unwrap();
    let mut tampered = token.to_string();
    let digit = tampered.find(|c: char| c.is_ascii_digit()).unwrap();
    let c = tampered.as_bytes()[digit];
    tampered.replace_range(digit..=digit, if c == b'9' { "8" } else { "9" });
    assert_eq!(
        get_bytes(&s.url(&format!("{video}?token={tampered}")), None).0,
        403,
        "another account's token"
    );

    // Someone who did not buy gets no stream_url and cannot use the buyer's for another video.
    let other = register_and_login(&s, "freeloader");
    let info = s.call("GET", "/video/info", Some(&other), None);
    assert_eq!(info.body["status"], "not_purchased");
    assert!(info.body.get("stream_url").is_none());
    assert_eq!(
        s.call("GET", "/video/purchase/pur_nonexistent", None, None)
            .status,
        404
    );
}

#[test]
fn five_wrong_pins_lock_purchases_even_for_the_right_pin() {
    let s = start(&[]);
    register_and_login(&s, "guesser");
    set_pin(&s, "guesser", "9999");
    let t = login(&s, "guesser");
    for i in 0..5 {
        let r = s.call(
            "POST",
            "/video/purchase",
            Some(&t),
            Some(json!({"pin": format!("000{i}")})),
        );
        assert_eq!(r.status, 403, "attempt {i}: {}", r.text);
    }
    let t = login(&s, "guesser");
    let r = s.call(
        "POST",
        "/video/purchase",
        Some(&t),
        Some(json!({"pin": "9999"})),
    );
    assert_eq!(r.status, 429, "{}", r.text);
    let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(wait > 14 * 60 && wait <= 15 * 60, "{wait}");
    // Nor can the lock be dodged by setting a new PIN.
    let r = s.call(
        "PUT",
        "/api/user/pin",
        Some(&t),
        Some(json!({"pin": "1111"})),
    );
    assert_eq!(r.status, 429, "{}", r.text);
}

#[test]
fn a_purchase_the_balance_cannot_cover_is_refused() {
    let s = start(&["--signup-credits", "10"]);
    register_and_login(&s, "broke");
    set_pin(&s, "broke", "1357");
    let t = login(&s, "broke");
    let r = s.call(
        "POST",
        "/video/purchase",
        Some(&t),
        Some(json!({"pin": "1357"})),
    );
    assert_eq!((r.status, r.error()), (402, "Insufficient balance."));
    let r = s.call(
        "POST",
        "/video/purchase",
        Some(&t),
        Some(json!({"video_id": "no-such-video", "pin": "1357"})),
    );
    assert_eq!(r.status, 404);
    let r = s.call("GET", "/video/info?video_id=no-such-video", Some(&t), None);
    assert_eq!((r.status, r.error()), (404, "No video with that video_id."));
}

#[test]
fn a_waiting_purchase_survives_kill_9_and_settles_after_restart() {
    let mut s = start(&["--payment-delay", "2s"]);
    register_and_login(&s, "patient");
    set_pin(&s, "patient", "8642");
    let t = login(&s, "patient");
    let r = s.call(
        "POST",
        "/video/purchase",
        Some(&t),
        Some(json!({"pin": "8642"})),
    );
    assert_eq!(r.status, 202);
    let id = r.str("purchase_id");
    s.kill9();
    s.restart();
    assert_eq!(
        s.call("GET", &format!("/video/purchase/{id}"), None, None)
            .body["status"],
        "waiting"
    );
    assert!(eventually(Duration::from_secs(5), || {
        s.call("GET", &format!("/video/purchase/{id}"), None, None)
            .body["status"]
            == "purchased"
    }));
    let t = login(&s, "patient");
    let info = s.call("GET", "/video/info", Some(&t), None);
    assert_eq!(
        info.body["balance"].as_u64(),
        Some(1000 - info.body["price"].as_u64().unwrap())
    );
}
