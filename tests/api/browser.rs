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

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};

use crate::support::{raw, Resp, Server};

/// How long any one thing may take to show up on the page.
const WAIT: Duration = Duration::from_secs(15);

/// The longest a whole test body may run.
const TEST_LIMIT: Duration = Duration::from_secs(180);

/// The password of every account these tests create.
const PASSWORD: &str = "correct horse battery";

/// The server's flags for every browser test (the brief's: no per-IP limit in
/// the way, and a payment that stays `waiting` long enough to be seen).
const SERVER_ARGS: &[&str] = &["--ip-rate-limit", "100000/1m", "--payment-delay", "1s"];

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

// ---------------------------------------------------------------------------
// HTTP helpers (the test's own requests, beside the browser's)
// ---------------------------------------------------------------------------

/// Registers `user` with [`PASSWORD`].
fn register(base: &str, user: &str) {
    let r = raw(
        "POST",
        &format!("{base}/register"),
        &[],
        Some(json!({"username": user, "password": PASSWORD}).to_string()),
    );
    assert_eq!(r.status, 201, "{}", r.text);
}

/// Logs `user` in over HTTP (a session of the test's own, not the page's).
fn login(base: &str, user: &str) -> String {
    let r = raw(
        "POST",
        &format!("{base}/login"),
        &[],
        Some(json!({"username": user, "password": PASSWORD}).to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r.str("token")
}

/// A GET with the given headers.
fn get(base: &str, path: &str, headers: &[(String, String)]) -> Resp {
    raw("GET", &format!("{base}{path}"), headers, None)
}

/// A request carrying `key` as `X-API-Key`.
fn with_key(base: &str, method: &str, path: &str, key: &str) -> Resp {
    let headers = [("X-API-Key".to_string(), key.to_string())];
    let body = (method == "POST").then(|| "{}".to_string());
    raw(method, &format!("{base}{path}"), &headers, body)
}

// ---------------------------------------------------------------------------
// The page, as a user sees it
// ---------------------------------------------------------------------------

/// The browser on the server's page.
#[derive(Clone)]
struct Page {
    /// The WebDriver session.
    c: Client,
    /// `http://127.0.0.1:PORT` of the server.
    base: String,
}

impl Page {
    /// Navigates to `path` on the server.
    async fn open(&self, path: &str) {
        bounded("goto", self.c.goto(&format!("{}{path}", self.base)))
            .await
            .expect("navigate");
    }

    /// The element `#id`, waiting for it to exist.
    async fn el(&self, id: &str) -> Element {
        let deadline = Instant::now() + WAIT;
        loop {
            match bounded("find", self.c.find(Locator::Id(id))).await {
                Ok(e) => return e,
                Err(e) if Instant::now() >= deadline => panic!("no #{id} within {WAIT:?}: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Whether `#id` is on screen (WebDriver's notion: not hidden, has a box).
    async fn displayed(&self, id: &str) -> bool {
        bounded("is_displayed", self.el(id).await.is_displayed())
            .await
            .expect("is_displayed")
    }

    /// The visible text of `#id` (empty when it is hidden).
    async fn text(&self, id: &str) -> String {
        bounded("text", self.el(id).await.text())
            .await
            .expect("text")
    }

    /// The current value of the input `#id`.
    async fn value(&self, id: &str) -> String {
        bounded("prop", self.el(id).await.prop("value"))
            .await
            .expect("value")
            .unwrap_or_default()
    }

    /// An attribute of `#id` ("" when absent).
    async fn attr(&self, id: &str, name: &str) -> String {
        bounded("attr", self.el(id).await.attr(name))
            .await
            .expect("attr")
            .unwrap_or_default()
    }

    /// Clicks `#id` once it is on screen, as a user would (a covered element
    /// fails the click).
    async fn click(&self, id: &str) {
        let e = self.until_displayed(id).await;
        bounded("click", e.click())
            .await
            .unwrap_or_else(|e| panic!("click #{id}: {e}"));
    }

    /// Replaces the text of the input `#id` by typing `text`.
    async fn fill(&self, id: &str, text: &str) {
        let e = self.until_displayed(id).await;
        bounded("clear", e.clear())
            .await
            .unwrap_or_else(|e| panic!("clear #{id}: {e}"));
        bounded("send_keys", e.send_keys(text))
            .await
            .unwrap_or_else(|e| panic!("type into #{id}: {e}"));
    }

    /// Runs `script` (a function body: `return` what you want) in the page.
    async fn js(&self, script: &str) -> Value {
        bounded("execute", self.c.execute(script, vec![]))
            .await
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// Polls the JavaScript expression `expr` until it is truthy; returns its value.
    async fn until(&self, what: &str, expr: &str) -> Value {
        let script = format!("return ({expr});");
        let deadline = Instant::now() + WAIT;
        let mut last;
        loop {
            match bounded("execute", self.c.execute(&script, vec![])).await {
                Ok(v) if truthy(&v) => return v,
                Ok(v) => last = v.to_string(),
                Err(e) => last = e.to_string(),
            }
            assert!(
                Instant::now() < deadline,
                "waited {WAIT:?} for {what}; `{expr}` gave {last}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `#id` is on screen.
    async fn until_displayed(&self, id: &str) -> Element {
        let deadline = Instant::now() + WAIT;
        loop {
            let e = self.el(id).await;
            if bounded("is_displayed", e.is_displayed())
                .await
                .unwrap_or(false)
            {
                return e;
            }
            assert!(
                Instant::now() < deadline,
                "#{id} not on screen within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until the visible text of `#id` contains `needle`; returns it.
    async fn until_text(&self, id: &str, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let t = self.text(id).await;
            if t.contains(needle) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "#{id} shows {t:?}, not {needle:?}, after {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Whether the sign-in dialog is open.
    async fn dialog_open(&self) -> bool {
        self.js("return document.getElementById('auth-dialog').open")
            .await
            == Value::Bool(true)
    }

    async fn until_dialog_open(&self) {
        self.until(
            "the sign-in dialog",
            "document.getElementById('auth-dialog').open",
        )
        .await;
        self.until_displayed("auth-dialog").await;
    }

    async fn until_dialog_closed(&self) {
        self.until(
            "the sign-in dialog to close",
            "!document.getElementById('auth-dialog').open",
        )
        .await;
    }

    /// Signs `user` in through the dialog the page opens.
    async fn sign_in(&self, user: &str) {
        self.until_dialog_open().await;
        self.until_displayed("login-form").await;
        self.fill("login-username", user).await;
        self.fill("login-password", PASSWORD).await;
        self.click("login-submit").await;
        self.until_dialog_closed().await;
        self.until_text("user-name", user).await;
    }

    /// The rows of the keys table as the user reads them.
    async fn rows(&self) -> Vec<Value> {
        let v = self
            .js(
                "const today = new Date().toISOString().slice(0, 10);
                 return [...document.querySelectorAll('[data-testid=key-row]')].map((r) => {
                   const cell = (t) => { const e = r.querySelector(`[data-testid=${t}]`); return e ? e.innerText.trim() : null; };
                   const chart = r.querySelector('[data-testid=usage-chart]');
                   const bar = chart && chart.querySelector(`[data-day='${today}']`);
                   return {
                     id: r.dataset.keyId, name: cell('key-name'), prefix: cell('key-prefix'),
                     uses: cell('key-usage-count'), last_used: cell('key-last-used'),
                     chart_total: chart ? chart.dataset.total : null,
                     today: bar ? bar.getAttribute('data-count') : null,
                     revoked: !!r.querySelector('[data-testid=key-revoked]'),
                   };
                 });",
            )
            .await;
        v.as_array().cloned().unwrap_or_default()
    }

    /// Saves the screen as `target/browser-screenshots/<name>.png`.
    async fn shot(&self, name: &str) {
        save_screenshot(&self.c, &shots_dir().join(format!("{name}.png"))).await;
    }

    /// With `KEYPOOL_README_SCREENSHOTS` set, saves the screen as
    /// `docs/screenshots/<name>.png` for the README.
    async fn readme_shot(&self, name: &str) {
        if std::env::var_os("KEYPOOL_README_SCREENSHOTS").is_some() {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
            save_screenshot(&self.c, &dir.join(format!("{name}.png"))).await;
        }
    }
}

/// JavaScript's truthiness of a returned value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

/// `fut`, or an error once [`WAIT`] has passed: a hung browser fails the test.
async fn bounded<T, E: std::fmt::Display>(
    what: &str,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!("WebDriver {what} took longer than {WAIT:?}")),
    }
}

fn shots_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-screenshots")
}

async fn save_screenshot(c: &Client, path: &Path) {
    let png = bounded("screenshot", c.screenshot())
        .await
        .expect("a screenshot");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create the screenshot directory");
    }
    std::fs::write(path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

// ---------------------------------------------------------------------------
// The harness: server, chromedriver, Chromium, one WebDriver session
// ---------------------------------------------------------------------------

/// Runs `body` against a fresh server and browser; saves the last screen as
/// `<name>.png` whatever happens, then closes the browser and chromedriver.
fn run<F, Fut>(name: &str, body: F)
where
    F: FnOnce(Page) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let server = Server::start(SERVER_ARGS);
    let driver = Driver::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let started = Instant::now();
    let outcome = rt.block_on(async {
        let client = driver.connect().await;
        let page = Page {
            c: client.clone(),
            base: server.base.clone(),
        };
        let task = tokio::spawn(body(page));
        let outcome = tokio::time::timeout(TEST_LIMIT, task).await;
        // The last screen, also (above all) when the test failed.
        if let Ok(Ok(png)) = tokio::time::timeout(WAIT, client.screenshot()).await {
            let path = shots_dir().join(format!("{name}.png"));
            let _ = std::fs::create_dir_all(shots_dir());
            let _ = std::fs::write(&path, png);
            eprintln!("screenshot: {}", path.display());
        }
        // Ends the session: chromedriver quits Chromium.
        let _ = tokio::time::timeout(WAIT, client.close()).await;
        outcome
    });
    eprintln!("{name}: {:.1} s", started.elapsed().as_secs_f64());
    match outcome {
        Ok(Ok(())) => {}
        failed => {
            eprintln!("--- server stderr (tail)\n{}", tail(&server.stderr(), 40));
            eprintln!("--- chromedriver log (tail)\n{}", tail(&driver.log(), 40));
            match failed {
                Ok(Err(e)) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Ok(Err(e)) => panic!("{name}: {e}"),
                _ => panic!("{name}: the test took longer than {TEST_LIMIT:?}"),
            }
        }
    }
}

fn tail(s: &str, lines: usize) -> String {
    let all: Vec<&str> = s.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A chromedriver of our own, on a free port, in its own process group so
/// that it and the Chromium it starts go together at the end.
struct Driver {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    url: String,
    /// Holds the Chromium profile and the chromedriver log.
    dir: tempfile::TempDir,
}

impl Driver {
    /// Starts chromedriver and waits (bounded) until `/status` says it is ready.
    fn start() -> Driver {
        use std::os::unix::process::CommandExt;

        let dir = tempfile::Builder::new()
            .prefix("keypool-browser-")
            .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
            .expect("a temporary directory");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let child = Command::new(&bin)
            .arg(format!("--port={port}"))
            .arg(format!(
                "--log-path={}",
                dir.path().join("chromedriver.log").display()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("start {bin} ({e}): install Debian's chromium and chromium-driver")
            });
        let mut d = Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs(2))
            .build();
        let deadline = Instant::now() + WAIT;
        loop {
            let ready = agent
                .get(&format!("{}/status", d.url))
                .call()
                .ok()
                .and_then(|r| r.into_json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                return d;
            }
            if let Ok(Some(status)) = d.child.try_wait() {
                panic!("chromedriver exited ({status}):\n{}", d.log());
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver not ready within {WAIT:?}:\n{}",
                d.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// A WebDriver session with a headless Chromium on a fresh profile.
    async fn connect(&self) -> Client {
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!(
            "--user-data-dir={}",
            self.dir.path().join("profile").display()
        ));
        let mut chrome = json!({ "args": args });
        if let Ok(bin) = std::env::var("CHROMIUM") {
            chrome["binary"] = json!(bin);
        }
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": chrome,
            "timeouts": {"pageLoad": WAIT.as_millis() as u64, "script": WAIT.as_millis() as u64},
        });
        let Value::Object(caps) = caps else {
            unreachable!("a JSON object literal")
        };
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(caps);
        let connecting = builder.connect(&self.url);
        match tokio::time::timeout(Duration::from_secs(60), connecting).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => panic!("no WebDriver session: {e}\n{}", tail(&self.log(), 40)),
            Err(_) => panic!(
                "Chromium did not start within 60 s\n{}",
                tail(&self.log(), 40)
            ),
        }
    }

    /// chromedriver's log so far.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("chromedriver.log")).unwrap_or_default()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The whole group: chromedriver and any Chromium the session left behind.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
