//! The platform's views in the browser (issue 10): a key's analytics and the
//! Security page, with and without the server's event log.

use super::*;

/// A key used on a known mix of routes and statuses: the analytics view shows
/// the totals, the error rate, p99, a bar per day and the routes by template.
#[test]
#[ignore = "needs Chromium and chromedriver; .ci/run runs it"]
fn browser_key_analytics_view() {
    run_with("key-analytics", PLATFORM_ARGS, |p| async move {
        register(&p.base, "frank");
        let token = login(&p.base, "frank");
        let made = raw(
            "POST",
            &format!("{}/generate-key", p.base),
            &[("Authorization".into(), format!("Bearer {token}"))],
            Some(json!({"name": "ingest"}).to_string()),
        );
        assert_eq!(made.status, 201, "{}", made.text);
        let key = made.str("key");
        // 6 creations, 3 reads of the list, 1 read of a key that is not there (404).
        for _ in 0..6 {
            assert_eq!(with_key(&p.base, "POST", "/keys", &key).status, 201);
        }
        for _ in 0..3 {
            assert_eq!(with_key(&p.base, "GET", "/keys", &key).status, 200);
        }
        let missing = "/keys/00000000-0000-0000-0000-000000000000";
        assert_eq!(with_key(&p.base, "GET", missing, &key).status, 404);
        // The server's own count, persisted within a second: wait for it.
        let key_id = made.str("key_id");
        let deadline = Instant::now() + WAIT;
        let days = loop {
            let a = get(
                &p.base,
                &format!("/api/keys/{key_id}/analytics?days=30"),
                &[("Authorization".into(), format!("Bearer {token}"))],
            );
            assert_eq!(a.status, 200, "{}", a.text);
            let total: u64 = a.body["days"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["requests"].as_u64().unwrap_or(0))
                .sum();
            if total >= 10 || Instant::now() > deadline {
                break a.body["days"].as_array().unwrap().clone();
            }
            std::thread::sleep(Duration::from_millis(200));
        };
        assert_eq!(days.len(), 30);
        let total: u64 = days.iter().map(|d| d["requests"].as_u64().unwrap()).sum();
        let errors: u64 = days
            .iter()
            .map(|d| d["errors_4xx"].as_u64().unwrap() + d["errors_5xx"].as_u64().unwrap())
            .sum();
        // The ten requests above and nothing else: the one 404 is the error.
        assert_eq!((total, errors), (10, 1), "{days:?}");
        // Latencies are bucket bounds in milliseconds with fractions ("0.836").
        let p99 = days
            .iter()
            .map(|d| d["p99_ms"].as_f64().expect("p99_ms a number"))
            .fold(0.0, f64::max);
        assert!(p99 > 0.0, "{days:?}");

        p.open("/#keys").await;
        p.sign_in("frank").await;
        p.until_displayed("keys-table").await;
        let row = format!("[data-testid=key-row][data-key-id='{key_id}']");
        p.click_css(&format!("{row} [data-testid=analytics-btn]"))
            .await;
        p.until(
            "the analytics to load",
            "document.getElementById('analytics-panel').dataset.state === 'ready'",
        )
        .await;
        assert_eq!(p.text("analytics-error").await, "");
        assert_eq!(p.text("an-requests").await, "10");
        assert_eq!(p.text("an-error-rate").await, "10%", "1 error in 10");
        assert_eq!(p.attr("an-error-rate", "data-errors").await, "1");
        assert_eq!(p.text("an-limited").await, "0");
        // Both sides print the shortest form of the same f64.
        assert_eq!(p.text("an-p99").await, format!("{p99} ms"));
        let bars = p
            .js("return document.querySelectorAll('#an-requests-svg rect.bar:not(.err)').length")
            .await;
        assert_eq!(bars, 30, "a bar per day");
        let today = p
            .js("const d = new Date().toISOString().slice(0, 10);
                 const r = document.querySelector(`#an-requests-svg rect[data-day='${d}']`);
                 return r ? Number(r.getAttribute('data-value')) : -1;")
            .await;
        assert_eq!(
            today.as_u64(),
            Some(total),
            "today's bar holds today's requests"
        );
        let routes = p
            .js("return [...document.querySelectorAll('[data-testid=route-row]')].map((r) => [r.cells[0].innerText.trim(), Number(r.cells[1].innerText)])")
            .await;
        let routes = routes.as_array().unwrap();
        let count = |t: &str| {
            routes
                .iter()
                .find(|r| r[0] == t)
                .and_then(|r| r[1].as_u64())
                .unwrap_or(0)
        };
        assert_eq!(count("POST /keys"), 6, "{routes:?}");
        assert_eq!(count("GET /keys"), 3, "{routes:?}");
        assert_eq!(
            count("GET /keys/{key_id}"),
            1,
            "a template, not the raw path: {routes:?}"
        );
        assert_eq!(
            routes[0][0], "POST /keys",
            "the busiest route first: {routes:?}"
        );
        // The p99 chart's bar for today is the day's p99.
        let today_p99 = p
            .js("const d = new Date().toISOString().slice(0, 10);
                 const r = document.querySelector(`#an-p99-svg rect[data-day='${d}']`);
                 return r ? Number(r.getAttribute('data-value')) : -1;")
            .await;
        assert_eq!(today_p99.as_f64(), Some(p99), "{days:?}");
        // A window tall enough for the whole panel, routes table included.
        bounded("set_window_size", p.c.set_window_size(1280, 1400))
            .await
            .expect("resize the window");
        p.js("document.getElementById('analytics-panel').scrollIntoView(); return true")
            .await;
        p.shot("key-analytics").await;
        p.readme_shot_of("analytics-panel", "key-analytics").await;
    });
}

/// The Security page lists the account's events newest first (a failed
/// sign-in, the sign-ins, a created key, 30 disables and 30 enables of it),
/// and "Older events" pages back with `before` until the first.
///
/// Flood-prone types (`login_failed`, …) are logged once a minute with a
/// count (branch `events`), so the second page comes from key changes, which
/// are each logged.
///
/// Needs `GET /api/user/events` (branch `events`); against a server without
/// it, see [`browser_security_page_without_the_event_log`].
#[test]
#[ignore = "needs Chromium and chromedriver; .ci/run runs it"]
fn browser_security_events_page() {
    run_with("security-events", PLATFORM_ARGS, |p| async move {
        register(&p.base, "grace");
        let r = raw(
            "POST",
            &format!("{}/login", p.base),
            &[],
            Some(json!({"username": "grace", "password": "wrong password"}).to_string()),
        );
        assert_eq!(r.status, 401, "{}", r.text);
        let token = login(&p.base, "grace");
        let auth = [("Authorization".to_string(), format!("Bearer {token}"))];
        let made = raw(
            "POST",
            &format!("{}/generate-key", p.base),
            &auth,
            Some(json!({"name": "audited"}).to_string()),
        );
        assert_eq!(made.status, 201, "{}", made.text);
        let key_id = made.str("key_id");
        let prefix = made.str("key_prefix");
        for _ in 0..30 {
            for change in ["disable", "enable"] {
                let path = format!("{}/api/keys/{key_id}/{change}", p.base);
                let r = raw("POST", &path, &auth, Some("{}".into()));
                assert_eq!(r.status, 200, "{change}: {}", r.text);
            }
        }

        p.open("/#security").await;
        p.sign_in("grace").await;
        p.until_displayed("security-view").await;
        p.until_displayed("events-table").await;
        let events = p.events().await;
        assert_eq!(events.len(), 50, "the first page: {events:?}");
        // Newest first: the page's own sign-in, then the last enable.
        assert_eq!(events[0]["type"], "login", "{events:?}");
        assert_eq!(events[0]["label"], "Signed in");
        assert_eq!(events[0]["ip"], "127.0.0.1", "{events:?}");
        assert_eq!(events[1]["type"], "key_enabled", "{events:?}");
        assert_eq!(events[1]["key"], format!("{prefix}…"), "{events:?}");
        assert_eq!(events[2]["type"], "key_disabled", "{events:?}");
        assert_eq!(events[2]["label"], "Key disabled");
        let ids: Vec<u64> = events
            .iter()
            .map(|e| e["id"].as_str().unwrap().parse().unwrap())
            .collect();
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
        assert!(p.displayed("events-older").await);
        assert!(!p.displayed("events-unavailable").await);
        p.shot("security-events").await;

        p.click("events-older").await;
        p.until(
            "the older page",
            "document.querySelectorAll('[data-testid=event-row]').length > 50",
        )
        .await;
        p.until(
            "no older page after the first event",
            "document.getElementById('events-older').hidden",
        )
        .await;
        let all = p.events().await;
        let types: Vec<&str> = all.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(all.len(), 64, "{types:?}");
        let ids: Vec<u64> = all
            .iter()
            .map(|e| e["id"].as_str().unwrap().parse().unwrap())
            .collect();
        assert!(
            ids.windows(2).all(|w| w[0] > w[1]),
            "newest first, no repeats: {ids:?}"
        );
        let count = |t: &str| types.iter().filter(|&&x| x == t).count();
        assert_eq!(count("key_disabled"), 30, "{types:?}");
        assert_eq!(count("key_enabled"), 30, "{types:?}");
        // The oldest three, last on the page.
        assert_eq!(
            types[61..],
            ["key_created", "login", "login_failed"],
            "{types:?}"
        );
        assert_eq!(all[63]["label"], "Sign-in failed");
        assert_eq!(p.text("events-error").await, "");
        p.js("window.scrollTo(0, document.body.scrollHeight); return true")
            .await;
        p.shot("security-events-oldest").await;
    });
}

/// A server without the event log (GET /api/user/events answers 404, as a
/// server built before it does): the Security page says so in a sentence, with
/// no table, no error and no "Older events". Against a server that has the
/// route the page's fetch of it is answered 404 in the browser instead, so the
/// test checks the same thing either way.
#[test]
#[ignore = "needs Chromium and chromedriver; .ci/run runs it"]
fn browser_security_page_without_the_event_log() {
    run_with("security-no-event-log", PLATFORM_ARGS, |p| async move {
        register(&p.base, "ivan");
        let token = login(&p.base, "ivan");
        let real = get(
            &p.base,
            "/api/user/events",
            &[("Authorization".into(), format!("Bearer {token}"))],
        );
        p.open("/#security").await;
        p.until_dialog_open().await;
        if real.status != 404 {
            assert_eq!(real.status, 200, "{}", real.text);
            p.js(r#"const real = window.fetch.bind(window);
                 window.fetch = (url, opts) => String(url).startsWith("/api/user/events")
                   ? Promise.resolve(new Response(JSON.stringify({error: "No route for GET /api/user/events."}),
                       {status: 404, headers: {"Content-Type": "application/json"}}))
                   : real(url, opts);
                 return true;"#)
                .await;
        }
        p.sign_in("ivan").await;
        p.until_displayed("security-view").await;
        let said = p
            .until_text("events-unavailable", "security event log")
            .await;
        assert!(said.contains("does not keep"), "{said}");
        assert!(!p.displayed("events-table").await);
        assert!(!p.displayed("events-older").await);
        assert!(!p.displayed("events-empty").await);
        assert_eq!(p.text("events-error").await, "");
        p.shot("security-no-event-log").await;
        // Refresh asks again and says the same.
        p.click("events-refresh").await;
        p.until(
            "the refresh to finish",
            "!document.getElementById('events-refresh').disabled",
        )
        .await;
        assert!(p.displayed("events-unavailable").await);
        assert_eq!(p.text("events-error").await, "");
    });
}
