//! Browser tests: the web page at `/` in real headless Chromium.
//!
//! Each test starts the real server (see `support.rs`), its own chromedriver
//! on a free port and a Chromium with a fresh profile, and drives the page over
//! WebDriver with `fantoccini` the way a person would: typing into the forms,
//! clicking the buttons, and asserting what is on screen. Every test saves the
//! last screen to `target/browser-screenshots/<test>.png` (also when it fails),
//! plus a few named steps.
//!
//! They are `#[ignore]`: a fresh machine has no browser. `.ci/run` installs
//! Debian's `chromium` and `chromium-driver` and runs
//! `cargo test --test api browser -- --ignored --test-threads=1`.
//! `CHROMEDRIVER` and `CHROMIUM` override the binaries' paths.
//!
//! The README's screenshots come from these tests: run them with
//! `KEYPOOL_README_SCREENSHOTS=1` to rewrite `docs/screenshots/*.png`.
//!
//! Every wait is a poll with a deadline ([`WAIT`]), never a fixed sleep, and
//! every WebDriver command is bounded too, so a hung browser fails the test
//! instead of hanging it.

use std::time::{Duration, Instant};

use fantoccini::Locator;
use serde_json::{json, Value};

use crate::support::raw;

mod driver;
mod page;
mod platform;
mod platform_views;

use driver::*;
use page::*;

/// How long any one thing may take to show up on the page.
const WAIT: Duration = Duration::from_secs(15);

/// The longest a whole test body may run.
const TEST_LIMIT: Duration = Duration::from_secs(180);

/// The password of every account these tests create.
const PASSWORD: &str = "correct horse battery";

/// The server's flags for every browser test (the brief's: no per-IP limit in
/// the way, and a payment that stays `waiting` long enough to be seen).
const SERVER_ARGS: &[&str] = &["--ip-rate-limit", "100000/1m", "--payment-delay", "1s"];

/// The API-key platform's tests use the page for longer than 10 requests:
/// a session that lasts, so that no sign-in dialog interrupts them.
const PLATFORM_ARGS: &[&str] = &[
    "--ip-rate-limit",
    "100000/1m",
    "--payment-delay",
    "1s",
    "--session-max-uses",
    "1000",
];

/// Chromium's flags. Without the background-networking ones Chromium tries to
/// reach Google's services and, on a closed network, hangs on the connections.
/// `--lang` pins the number format, so the price reads "$4.99".
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
    "--window-size=1280,900",
    "--lang=en-US",
];

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

/// Register through the dialog, sign out, a wrong password, sign in again.
#[test]
#[ignore = "needs Chromium and chromedriver; .ci/run runs it"]
fn browser_register_and_sign_in_through_the_forms() {
    run("register-and-sign-in", |p| async move {
        p.open("/").await;
        p.until_dialog_open().await;
        assert_eq!(p.text("auth-title").await, "Sign in");

        p.click("show-register").await;
        p.until_displayed("register-form").await;
        assert_eq!(p.text("auth-title").await, "Create an account");
        p.fill("register-username", "alice").await;
        p.fill("register-email", "alice@example.com").await;
        p.fill("register-password", PASSWORD).await;
        p.click("register-submit").await;

        // Registering signs in: the dialog closes, the header names the user.
        p.until_dialog_closed().await;
        p.until_text("user-name", "alice").await;
        assert!(
            p.displayed("account-box").await,
            "the account box shows once signed in"
        );
        assert!(p.displayed("logout-btn").await);
        p.until_text("session-uses", "left").await;
        // The page goes on to the video.
        p.until_displayed("purchase-modal").await;

        // Sign out: the dialog comes back, the user name already filled in.
        p.click("logout-btn").await;
        p.until_dialog_open().await;
        assert_eq!(p.text("auth-reason").await, "You have signed out.");
        assert_eq!(p.value("login-username").await, "alice");

        // The same name cannot be registered twice.
        p.click("show-register").await;
        p.until_displayed("register-form").await;
        assert_eq!(p.value("register-username").await, "alice");
        p.fill("register-password", PASSWORD).await;
        p.click("register-submit").await;
        p.until_text("auth-error", "Username already exists.").await;
        p.click("show-login").await;
        p.until_displayed("login-form").await;

        // A wrong password is refused and says so.
        p.fill("login-username", "alice").await;
        p.fill("login-password", "not the password").await;
        p.click("login-submit").await;
        p.until_text("auth-error", "Invalid username or password.")
            .await;
        assert!(
            p.dialog_open().await,
            "a wrong password keeps the dialog open"
        );

        // The right one signs in.
        p.fill("login-password", PASSWORD).await;
        p.click("login-submit").await;
        p.until_dialog_closed().await;
        p.until_text("user-name", "alice").await;
        p.until_text("session-uses", "left").await;
        p.until_displayed("purchase-modal").await;
    });
}

/// The modal shows title and price; no PIN → set one; a wrong PIN; the right
/// PIN → waiting → the player, playing; a reload goes straight to the player.
#[test]
#[ignore = "needs Chromium and chromedriver; .ci/run runs it"]
fn browser_buy_the_video_and_watch_it() {
    run("buy-and-watch", |p| async move {
        register(&p.base, "bob");
        let info = get(&p.base, "/video/info", &[]);
        assert_eq!(info.status, 200, "{}", info.text);
        let title = info.str("title");
        let price = info.body["price"].as_u64().expect("a price");
        let currency = info.str("currency");
        let credits = 1000; // --signup-credits' default

        p.open("/").await;
        p.sign_in("bob").await;

        // The modal over the video: title, price, PIN input, confirm.
        p.until_displayed("purchase-modal").await;
        p.until_text("modal-title", &title).await;
        assert_eq!(p.text("modal-title").await, title);
        assert_eq!(p.text("video-title").await, title);
        let shown_price = p.text("modal-price").await;
        if currency == "USD" {
            assert_eq!(shown_price, format!("${}.{:02}", price / 100, price % 100));
        }
        assert_eq!(p.attr("modal-price", "data-price").await, price.to_string());
        assert_eq!(p.attr("modal-price", "data-currency").await, currency);
        assert_eq!(p.attr("video-view", "data-state").await, "not_purchased");
        assert!(p.displayed("pin-input").await && p.displayed("confirm-btn").await);
        assert!(!p.displayed("player").await, "no player before buying");

        // Record every state the video view goes through from here on.
        p.js(
            "window.__states = [];
             new MutationObserver(() => window.__states.push(
                 document.getElementById('video-view').dataset.state))
               .observe(document.getElementById('video-view'), {attributes: true, attributeFilter: ['data-state']});
             return true;",
        )
        .await;

        p.fill("pin-input", "2468").await;
        p.shot("purchase-modal").await;
        p.readme_shot("purchase-modal").await;

        // No PIN yet: the server says so and the modal offers to set one.
        p.click("confirm-btn").await;
        p.until_displayed("set-pin-form").await;
        // The hint carries the server's reason ("No purchase PIN is set. …").
        let hint = p.until_text("set-pin-hint", "Choose 4 to 8 digits").await;
        assert!(hint.to_lowercase().contains("no purchase pin"), "{hint}");
        assert!(!p.displayed("purchase-form").await);
        p.fill("new-pin-input", "2468").await;
        p.fill("new-pin-confirm", "2468").await;
        p.click("set-pin-btn").await;
        p.until_displayed("purchase-form").await;
        p.until_text("modal-message", "PIN set.").await;

        // A wrong PIN.
        p.fill("pin-input", "1357").await;
        p.click("confirm-btn").await;
        p.until_text("modal-error", "Incorrect PIN.").await;
        assert_eq!(p.attr("video-view", "data-state").await, "not_purchased");
        assert!(!p.displayed("player").await);
        p.shot("buy-and-watch-wrong-pin").await;

        // The right PIN: the waiting state, then the player.
        p.fill("pin-input", "2468").await;
        p.click("confirm-btn").await;
        p.until_displayed("modal-waiting").await;
        p.until_text("waiting-text", "Waiting for your payment")
            .await;
        let purchase_id = p.attr("modal-waiting", "data-purchase-id").await;
        assert!(
            !purchase_id.is_empty(),
            "the waiting state knows its purchase"
        );
        p.shot("buy-and-watch-waiting").await;

        p.until_displayed("player").await;
        p.until_text("video-status", "Purchased. Enjoy!").await;
        assert!(
            !p.displayed("purchase-modal").await,
            "the modal is gone once bought"
        );
        let states = p.js("return window.__states;").await;
        let states: Vec<&str> = states
            .as_array()
            .expect("a list")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let waiting = states.iter().position(|s| *s == "waiting");
        let purchased = states.iter().position(|s| *s == "purchased");
        assert!(
            matches!((waiting, purchased), (Some(w), Some(b)) if w < b),
            "waiting, then purchased: {states:?}"
        );

        // Actually playing: the clock has moved and frames were decoded.
        p.until(
            "the video to play",
            "(() => { const v = document.getElementById('player');
                      return !v.error && v.readyState >= 2 && v.currentTime > 0 && v.videoWidth > 0; })()",
        )
        .await;
        p.shot("buy-and-watch-playing").await;

        // The server agrees, and the price came off the balance shown in the header.
        let settled = get(&p.base, &format!("/video/purchase/{purchase_id}"), &[]);
        assert_eq!(settled.body["status"], "purchased", "{}", settled.text);
        p.until(
            "the balance to show the price paid",
            &format!(
                "document.getElementById('balance').dataset.cents === '{}'",
                credits - price
            ),
        )
        .await;

        // Bought: a reload goes straight to the player, no modal.
        p.c.refresh().await.expect("reload");
        p.until_displayed("player").await;
        p.until_text("video-status", "Purchased").await;
        assert!(!p.displayed("purchase-modal").await);
        assert!(!p.dialog_open().await, "the session survives a reload");
    });
}

/// Create a key (shown once), see it listed, use it, refresh to see its
/// usage count and chart, revoke it.
#[test]
#[ignore = "needs Chromium and chromedriver; .ci/run runs it"]
fn browser_api_keys_create_list_use_revoke() {
    run("api-keys", |p| async move {
        register(&p.base, "carol");
        p.open("/#keys").await;
        p.sign_in("carol").await;
        p.until_displayed("keys-view").await;
        assert!(!p.displayed("video-view").await);
        p.until_displayed("keys-empty").await;
        p.until_text("stat-total", "0").await;

        // Create: the full key once, and the row with its name and prefix.
        p.fill("key-name", "build-server").await;
        p.click("create-key-btn").await;
        p.until_displayed("new-key").await;
        let key = p.text("new-key-value").await;
        assert!(
            key.starts_with("sk_live_") && key.len() > 40,
            "the full key: {key:?}"
        );
        p.until_displayed("keys-table").await;
        let rows = p.rows().await;
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0]["name"], "build-server");
        assert_eq!(rows[0]["prefix"], format!("{}…", &key[..12]));
        assert_eq!(rows[0]["uses"], "0");

        // A second key, made elsewhere (not on this page), used less.
        let token = login(&p.base, "carol");
        let other = raw(
            "POST",
            &format!("{}/generate-key", p.base),
            &[("Authorization".into(), format!("Bearer {token}"))],
            Some(json!({"name": "nightly-ci"}).to_string()),
        );
        assert_eq!(other.status, 201, "{}", other.text);
        let other_key = other.str("key");

        // Use the keys like a worker would: 3 new pool keys and a checkout.
        for _ in 0..3 {
            let r = with_key(&p.base, "POST", "/keys", &key);
            assert_eq!(r.status, 201, "{}", r.text);
        }
        assert_eq!(with_key(&p.base, "GET", "/keys", &key).status, 200);
        assert_eq!(with_key(&p.base, "GET", "/stats", &other_key).status, 200);
        let used = 4;

        // Refresh: the usage count, the chart, the pool's stats.
        p.click("keys-refresh").await;
        p.until(
            "the refreshed list to show both keys",
            "document.querySelectorAll('[data-testid=key-row]').length === 2",
        )
        .await;
        let rows = p.rows().await;
        let row = rows
            .iter()
            .find(|r| r["name"] == "build-server")
            .expect("build-server listed");
        assert_eq!(row["uses"], used.to_string(), "{rows:?}");
        assert_eq!(row["chart_total"], used.to_string(), "{rows:?}");
        assert_eq!(
            row["today"],
            used.to_string(),
            "today's bar counts the uses: {rows:?}"
        );
        assert_ne!(row["last_used"], "—", "last used is set: {rows:?}");
        let nightly = rows
            .iter()
            .find(|r| r["name"] == "nightly-ci")
            .expect("nightly-ci listed");
        assert_eq!(nightly["uses"], "1", "{rows:?}");
        p.until_text("stat-total", "3").await;
        assert_eq!(p.text("stat-available").await, "2");
        assert_eq!(p.text("stat-blocked").await, "1");
        p.shot("api-keys-usage").await;

        // Shown once: dismissed, it is gone from the page.
        p.click("new-key-dismiss").await;
        p.until(
            "the new key to be hidden",
            "document.getElementById('new-key').hidden",
        )
        .await;
        assert_eq!(
            p.js("return document.getElementById('new-key-value').textContent")
                .await,
            ""
        );
        // The README's picture: both keys, their usage, the pool.
        p.readme_shot("api-keys").await;

        // Revoke: the row says so, and the key no longer works.
        let id = row["id"].as_str().expect("a key id").to_string();
        let revoke = format!("[data-testid=key-row][data-key-id='{id}'] [data-testid=revoke-btn]");
        p.c.find(Locator::Css(&revoke))
            .await
            .expect("a revoke button")
            .click()
            .await
            .expect("click revoke");
        let badge = format!("[data-testid=key-row][data-key-id='{id}'] [data-testid=key-revoked]");
        p.until(
            "the row to show revoked",
            &format!("!!document.querySelector(\"{badge}\")"),
        )
        .await;
        let shown =
            p.c.find(Locator::Css(&badge))
                .await
                .expect("the badge")
                .text()
                .await
                .expect("text");
        assert_eq!(shown, "Revoked");
        assert_eq!(
            with_key(&p.base, "GET", "/stats", &key).status,
            401,
            "a revoked key is refused"
        );
        assert_eq!(
            with_key(&p.base, "GET", "/stats", &other_key).status,
            200,
            "the other key still works"
        );
        assert_eq!(p.text("keys-error").await, "");
    });
}

/// A session serves 10 requests: keep using the page until the server says
/// the session expired; the sign-in dialog opens over the page; after signing
/// in, the interrupted request goes through and nothing on the page is lost.
#[test]
#[ignore = "needs Chromium and chromedriver; .ci/run runs it"]
fn browser_session_expiry_asks_to_sign_in_and_continues() {
    run("session-expiry", |p| async move {
        register(&p.base, "dave");
        p.open("/#keys").await;
        p.sign_in("dave").await;
        p.until_displayed("keys-empty").await;
        p.fill("key-name", "before-expiry").await;
        p.click("create-key-btn").await;
        p.until_displayed("new-key").await;
        p.click("new-key-dismiss").await;

        // Something half-typed that must survive signing in again.
        p.fill("key-name", "half-typed").await;

        let mut refreshes = 0;
        let mut uses_left = String::new();
        while !p.dialog_open().await {
            assert!(
                refreshes < 10,
                "ten refreshes and the session has not expired"
            );
            uses_left = p.text("session-uses").await;
            p.click("keys-refresh").await;
            refreshes += 1;
            // Done when the button is usable again, or the dialog is up.
            p.until(
                "the refresh to finish or the sign-in dialog",
                "document.getElementById('auth-dialog').open || !document.getElementById('keys-refresh').disabled",
            )
            .await;
        }
        // 3 requests to load, 1 to create, 3 per refresh: the 3rd refresh is past 10,
        // and the header had counted the session down to nothing.
        assert_eq!(
            refreshes, 3,
            "the session expired after {refreshes} refreshes"
        );
        assert!(
            uses_left.contains(" 0 requests left"),
            "the header said {uses_left:?}"
        );
        assert_eq!(
            p.text("auth-reason").await,
            "Session expired. Please log in again."
        );
        assert_eq!(
            p.value("login-username").await,
            "dave",
            "the user name is filled in"
        );
        assert!(
            p.displayed("keys-view").await,
            "the page stays behind the dialog"
        );
        p.shot("session-expiry-dialog").await;

        p.fill("login-password", PASSWORD).await;
        p.click("login-submit").await;
        p.until_dialog_closed().await;

        // Where we were: the keys page, the refresh finished, the input kept.
        p.until(
            "the interrupted refresh to finish",
            "!document.getElementById('keys-refresh').disabled",
        )
        .await;
        assert!(p.displayed("keys-view").await);
        assert_eq!(p.js("return location.hash").await, "#keys");
        assert_eq!(
            p.text("keys-error").await,
            "",
            "the retried requests succeeded"
        );
        assert_eq!(p.text("stat-total").await, "0");
        let rows = p.rows().await;
        assert!(
            rows.iter().any(|r| r["name"] == "before-expiry"),
            "{rows:?}"
        );
        assert_eq!(p.value("key-name").await, "half-typed");
        p.until_text("session-uses", "left").await;

        // And the new session works: the half-typed key is created.
        p.click("create-key-btn").await;
        p.until_displayed("new-key").await;
        assert!(p.text("new-key-value").await.starts_with("sk_live_"));
        p.until(
            "the new row",
            "document.querySelectorAll('[data-testid=key-row]').length === 2",
        )
        .await;
        let rows = p.rows().await;
        assert!(rows.iter().any(|r| r["name"] == "half-typed"), "{rows:?}");
        assert!(!p.dialog_open().await);
    });
}
