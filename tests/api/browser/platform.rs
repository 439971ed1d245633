//! The API-key platform in the browser (issue 10): access, allowed IPs,
//! credits, disable/enable, rotation, the analytics view, the Security page
//! and the Add-credits flow.

use super::*;

/// A bad CIDR is refused with the server's sentence; a worker key limited to
/// 10.0.0.0/8 with 50 credits refilled daily is listed so and refused from
/// here; a custom-scoped key lacks `pool:write`; credits are edited; a key is
/// disabled (401) and enabled again; a key is rotated with a grace period, the
/// new key shown once with the old key's end, both working meanwhile.
#[test]
#[ignore = "needs Chromium and chromedriver; .ci/run runs it"]
fn browser_api_keys_access_credits_disable_rotate() {
    run_with("api-keys-platform", PLATFORM_ARGS, |p| async move {
        register(&p.base, "erin");
        p.open("/#keys").await;
        p.sign_in("erin").await;
        p.until_displayed("keys-empty").await;

        // A bad CIDR: the server's sentence, and no key.
        p.fill("key-name", "bad-net").await;
        p.fill("key-ips", "10.0.0.0/33").await;
        p.click("create-key-btn").await;
        let err = p.until_text("create-key-error", "allowed_ips").await;
        assert!(err.contains("10.0.0.0/33"), "{err}");
        assert!(!p.displayed("new-key").await);
        p.shot("api-keys-bad-cidr").await;

        // A worker key, only from 10.0.0.0/8, 50 credits refilled to 100 daily.
        p.fill("key-name", "office-worker").await;
        p.fill("key-ips", "10.0.0.0/8").await;
        p.select("key-role", "worker").await;
        p.fill("key-credits", "50").await;
        p.fill("key-refill-amount", "100").await;
        p.select("key-refill-interval", "daily").await;
        p.click("create-key-btn").await;
        p.until_displayed("new-key").await;
        let office = p.text("new-key-value").await;
        assert!(office.starts_with("sk_live_"), "{office:?}");
        p.click("new-key-dismiss").await;
        let r = with_key(&p.base, "GET", "/stats", &office);
        assert_eq!(r.status, 403, "refused from 127.0.0.1: {}", r.text);
        assert_eq!(
            r.str("error"),
            "This API key may not be used from this address."
        );

        // A key with chosen scopes: pool:read and one of the owner's own.
        p.fill("key-name", "dashboard").await;
        p.select("key-role", "custom").await;
        p.until_displayed("key-scopes").await;
        p.click_css("#key-scopes input[value='pool:read']").await;
        p.fill("key-custom-scopes", "billing:read").await;
        p.click("create-key-btn").await;
        p.until_displayed("new-key").await;
        let dash = p.text("new-key-value").await;
        p.click("new-key-dismiss").await;
        assert_eq!(with_key(&p.base, "GET", "/stats", &dash).status, 200);
        let w = with_key(&p.base, "POST", "/keys", &dash);
        assert_eq!(w.status, 403, "{}", w.text);
        assert!(w.str("error").contains("pool:write"), "{}", w.text);

        // The list, as the server has it.
        p.click("keys-refresh").await;
        p.until(
            "both keys listed",
            "document.querySelectorAll('[data-testid=key-row]').length === 2",
        )
        .await;
        let rows = p.platform_rows().await;
        let office_row = find_row(&rows, "office-worker");
        assert_eq!(office_row["scopes"], "pool:read pool:write", "{rows:?}");
        assert_eq!(office_row["ips"], "10.0.0.0/8", "{rows:?}");
        assert_eq!(office_row["refill"], "refills to 100 daily", "{rows:?}");
        let left: u64 = office_row["credits"].as_str().unwrap().parse().unwrap();
        assert!(left <= 50, "{rows:?}");
        let dash_row = find_row(&rows, "dashboard");
        assert_eq!(dash_row["scopes"], "pool:read billing:read", "{rows:?}");
        assert_eq!(dash_row["ips"], "any IP", "{rows:?}");
        assert_eq!(dash_row["credits"], "Unmetered", "{rows:?}");
        assert_eq!(dash_row["disabled"], false);
        p.shot("api-keys-access").await;

        // Edit the office key's credits: 500, refilled to 1000 monthly.
        let office_id = office_row["id"].as_str().unwrap().to_string();
        p.click_css(&row_button(&office_id, "credits-btn")).await;
        p.until_dialog("credits-dialog").await;
        p.fill("credits-remaining", "500").await;
        p.fill("credits-refill-amount", "1000").await;
        p.select("credits-refill-interval", "monthly").await;
        p.shot("api-keys-credits-dialog").await;
        p.click("credits-submit").await;
        p.until(
            "the credits dialog to close",
            "!document.getElementById('credits-dialog').open",
        )
        .await;
        let rows = p.platform_rows().await;
        assert_eq!(find_row(&rows, "office-worker")["credits"], "500");
        assert_eq!(
            find_row(&rows, "office-worker")["refill"],
            "refills to 1000 monthly"
        );
        let listed = list_keys(&p.base, "erin");
        let item = listed
            .iter()
            .find(|k| k["key_id"] == office_id.as_str())
            .expect("listed");
        assert_eq!(item["credits_remaining"], 500, "{item}");
        assert_eq!(item["refill"]["interval"], "monthly", "{item}");
        // Credits that are not a number are refused on the page.
        p.click_css(&row_button(&office_id, "credits-btn")).await;
        p.until_dialog("credits-dialog").await;
        p.fill("credits-remaining", "-3").await;
        p.click("credits-submit").await;
        p.until_text("credits-error", "whole number").await;
        p.click("credits-cancel").await;

        // Disable the dashboard key: 401 with the contract's sentence; enable.
        let dash_id = dash_row["id"].as_str().unwrap().to_string();
        p.click_css(&row_button(&dash_id, "toggle-btn")).await;
        p.until(
            "the disabled badge",
            &format!(
                "!!document.querySelector(\"[data-key-id='{dash_id}'] [data-testid=key-disabled]\")"
            ),
        )
        .await;
        let r = with_key(&p.base, "GET", "/stats", &dash);
        assert_eq!(r.status, 401, "{}", r.text);
        assert_eq!(r.str("error"), "This API key is disabled.");
        p.shot("api-keys-disabled").await;
        p.click_css(&row_button(&dash_id, "toggle-btn")).await;
        p.until(
            "the badge to go",
            &format!(
                "!document.querySelector(\"[data-key-id='{dash_id}'] [data-testid=key-disabled]\")"
            ),
        )
        .await;
        assert_eq!(with_key(&p.base, "GET", "/stats", &dash).status, 200);

        // Rotate it with a 2-hour grace: the new key once, the old key's end.
        p.click_css(&row_button(&dash_id, "rotate-btn")).await;
        p.until_dialog("rotate-dialog").await;
        p.fill("rotate-grace", "2").await;
        p.click("rotate-submit").await;
        p.until_displayed("rotate-result").await;
        let new_key = p.text("rotate-new-key").await;
        assert!(
            new_key.starts_with("sk_live_") && new_key != dash,
            "{new_key:?}"
        );
        let end = p.attr("rotate-old-end", "datetime").await;
        assert!(!end.is_empty(), "the old key's end");
        assert!(!p.text("rotate-old-end").await.is_empty());
        p.click("rotate-copy").await;
        p.until(
            "the copy to report",
            "document.getElementById('rotate-copy-status').textContent !== ''",
        )
        .await;
        p.shot("api-keys-rotated").await;
        assert_eq!(with_key(&p.base, "GET", "/stats", &new_key).status, 200);
        assert_eq!(
            with_key(&p.base, "GET", "/stats", &dash).status,
            200,
            "the old key works during the grace"
        );
        p.click("rotate-done").await;
        p.until(
            "the rotate dialog to close",
            "!document.getElementById('rotate-dialog').open",
        )
        .await;
        assert_eq!(p.text("rotate-new-key").await, "", "shown once");
        let rows = p.platform_rows().await;
        let old = rows.iter().find(|r| r["id"] == dash_id.as_str()).unwrap();
        assert!(
            old["grace"]
                .as_str()
                .unwrap_or("")
                .starts_with("Rotated; works until"),
            "{rows:?}"
        );
        assert_eq!(old["can_rotate"], false, "{rows:?}");
        let dashes = rows
            .iter()
            .filter(|r| r["name"].as_str().unwrap_or("").starts_with("dashboard"))
            .count();
        assert_eq!(dashes, 2, "the old key and its successor: {rows:?}");
        p.click("keys-refresh").await;
        p.until(
            "three keys listed by the server",
            "document.querySelectorAll('[data-testid=key-row]').length === 3",
        )
        .await;
        let rows = p.platform_rows().await;
        let new_row = rows
            .iter()
            .find(|r| r["prefix"] == format!("{}…", &new_key[..12]))
            .expect("the new key listed");
        assert_eq!(
            new_row["scopes"], "pool:read billing:read",
            "inherited: {rows:?}"
        );
        assert_eq!(p.text("keys-error").await, "");
        p.shot("api-keys-platform-list").await;
    });
}

/// Add credits from the header: amount and PIN in the dialog, a wrong PIN,
/// the waiting state, then the new balance, in the header too; five wrong
/// PINs lock top-ups (the right PIN then gets the lockout sentence).
#[test]
#[ignore = "needs Chromium and chromedriver; .ci/run runs it"]
fn browser_add_credits_flow() {
    run_with("add-credits", PLATFORM_ARGS, |p| async move {
        register(&p.base, "heidi");
        let token = login(&p.base, "heidi");
        let pin = raw(
            "PUT",
            &format!("{}/api/user/pin", p.base),
            &[("Authorization".into(), format!("Bearer {token}"))],
            Some(json!({"pin": "4321"}).to_string()),
        );
        assert_eq!(pin.status, 200, "{}", pin.text);
        let before = get(
            &p.base,
            "/api/user/credits",
            &[("Authorization".into(), format!("Bearer {token}"))],
        );
        assert_eq!(before.status, 200, "{}", before.text);
        let balance = before.body["balance"].as_u64().expect("a balance");

        p.open("/#keys").await;
        p.sign_in("heidi").await;
        p.until_displayed("balance").await;
        assert_eq!(p.attr("balance", "data-cents").await, balance.to_string());
        p.click("topup-open").await;
        p.until_dialog("topup-dialog").await;

        // Out of range, then a wrong PIN: the server's sentence.
        p.fill("topup-amount", "0.5").await;
        p.fill("topup-pin", "4321").await;
        p.click("topup-submit").await;
        p.until_text("topup-error", "Enter an amount").await;
        p.fill("topup-amount", "25").await;
        p.fill("topup-pin", "9999").await;
        p.click("topup-submit").await;
        p.until_text("topup-error", "Incorrect PIN.").await;

        // The right PIN: waiting, then the new balance.
        p.js(
            "window.__topup = [];
             new MutationObserver(() => window.__topup.push(document.getElementById('topup-dialog').dataset.state))
               .observe(document.getElementById('topup-dialog'), {attributes: true, attributeFilter: ['data-state']});
             return true;",
        )
        .await;
        p.fill("topup-pin", "4321").await;
        p.shot("add-credits-dialog").await;
        p.click("topup-submit").await;
        p.until_displayed("topup-done").await;
        let states = p.js("return window.__topup").await;
        assert_eq!(states, json!(["waiting", "done"]), "{states}");
        let want = balance + 2500;
        assert_eq!(p.attr("balance", "data-cents").await, want.to_string());
        assert!(!p.text("topup-balance").await.is_empty());
        p.shot("add-credits-done").await;
        let after = get(
            &p.base,
            "/api/user/credits",
            &[("Authorization".into(), format!("Bearer {token}"))],
        );
        assert_eq!(after.body["balance"].as_u64(), Some(want), "{}", after.text);
        p.click("topup-close").await;
        p.until(
            "the dialog to close",
            "!document.getElementById('topup-dialog').open",
        )
        .await;

        // Five wrong PINs lock top-ups as they lock purchases: then even the
        // right PIN gets the lockout sentence, and the balance stays.
        p.click("topup-open").await;
        p.until_dialog("topup-dialog").await;
        p.fill("topup-amount", "10").await;
        for attempt in 1..=5 {
            p.fill("topup-pin", "9999").await;
            p.click("topup-submit").await;
            let shown = p
                .until(
                    "the answer to a wrong PIN",
                    "!document.getElementById('topup-submit').disabled
                     && document.getElementById('topup-error').textContent",
                )
                .await;
            assert_eq!(shown, "Incorrect PIN.", "attempt {attempt}");
        }
        p.fill("topup-pin", "4321").await;
        p.click("topup-submit").await;
        let locked = p.until_text("topup-error", "locked").await;
        assert!(locked.starts_with("Too many incorrect PINs"), "{locked}");
        assert!(locked.contains("15 minute"), "{locked}");
        assert_eq!(p.attr("topup-dialog", "data-state").await, "form");
        p.shot("add-credits-locked").await;
        let after = get(
            &p.base,
            "/api/user/credits",
            &[("Authorization".into(), format!("Bearer {token}"))],
        );
        assert_eq!(after.body["balance"].as_u64(), Some(want), "{}", after.text);
        assert_eq!(
            after.body["topups"].as_array().map(Vec::len),
            Some(1),
            "no second top-up: {}",
            after.text
        );
        assert_eq!(p.attr("balance", "data-cents").await, want.to_string());
    });
}
