//! [`Page`]: the web page as the tests use it, a person's actions and what
//! they see, each bounded by [`WAIT`].

use std::path::Path;
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, Locator};
use serde_json::Value;

use super::*;

/// The browser on the server's page.
#[derive(Clone)]
pub(super) struct Page {
    /// The WebDriver session.
    pub(super) c: Client,
    /// `http://127.0.0.1:PORT` of the server.
    pub(super) base: String,
}

impl Page {
    /// Navigates to `path` on the server.
    pub(super) async fn open(&self, path: &str) {
        bounded("goto", self.c.goto(&format!("{}{path}", self.base)))
            .await
            .expect("navigate");
    }

    /// The element `#id`, waiting for it to exist.
    pub(super) async fn el(&self, id: &str) -> Element {
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
    pub(super) async fn displayed(&self, id: &str) -> bool {
        bounded("is_displayed", self.el(id).await.is_displayed())
            .await
            .expect("is_displayed")
    }

    /// The visible text of `#id` (empty when it is hidden).
    pub(super) async fn text(&self, id: &str) -> String {
        bounded("text", self.el(id).await.text())
            .await
            .expect("text")
    }

    /// The current value of the input `#id`.
    pub(super) async fn value(&self, id: &str) -> String {
        bounded("prop", self.el(id).await.prop("value"))
            .await
            .expect("value")
            .unwrap_or_default()
    }

    /// An attribute of `#id` ("" when absent).
    pub(super) async fn attr(&self, id: &str, name: &str) -> String {
        bounded("attr", self.el(id).await.attr(name))
            .await
            .expect("attr")
            .unwrap_or_default()
    }

    /// Clicks `#id` once it is on screen, as a user would (a covered element
    /// fails the click).
    pub(super) async fn click(&self, id: &str) {
        let e = self.until_displayed(id).await;
        bounded("click", e.click())
            .await
            .unwrap_or_else(|e| panic!("click #{id}: {e}"));
    }

    /// Replaces the text of the input `#id` by typing `text`.
    pub(super) async fn fill(&self, id: &str, text: &str) {
        let e = self.until_displayed(id).await;
        bounded("clear", e.clear())
            .await
            .unwrap_or_else(|e| panic!("clear #{id}: {e}"));
        bounded("send_keys", e.send_keys(text))
            .await
            .unwrap_or_else(|e| panic!("type into #{id}: {e}"));
    }

    /// Runs `script` (a function body: `return` what you want) in the page.
    pub(super) async fn js(&self, script: &str) -> Value {
        bounded("execute", self.c.execute(script, vec![]))
            .await
            .unwrap_or_else(|e| panic!("{script}: {e}"))
    }

    /// Polls the JavaScript expression `expr` until it is truthy; returns its value.
    pub(super) async fn until(&self, what: &str, expr: &str) -> Value {
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
    pub(super) async fn until_displayed(&self, id: &str) -> Element {
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
    pub(super) async fn until_text(&self, id: &str, needle: &str) -> String {
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
    pub(super) async fn dialog_open(&self) -> bool {
        self.js("return document.getElementById('auth-dialog').open")
            .await
            == Value::Bool(true)
    }

    pub(super) async fn until_dialog_open(&self) {
        self.until(
            "the sign-in dialog",
            "document.getElementById('auth-dialog').open",
        )
        .await;
        self.until_displayed("auth-dialog").await;
    }

    pub(super) async fn until_dialog_closed(&self) {
        self.until(
            "the sign-in dialog to close",
            "!document.getElementById('auth-dialog').open",
        )
        .await;
    }

    /// Signs `user` in through the dialog the page opens.
    pub(super) async fn sign_in(&self, user: &str) {
        self.until_dialog_open().await;
        self.until_displayed("login-form").await;
        self.fill("login-username", user).await;
        self.fill("login-password", PASSWORD).await;
        self.click("login-submit").await;
        self.until_dialog_closed().await;
        self.until_text("user-name", user).await;
    }

    /// The rows of the keys table as the user reads them.
    pub(super) async fn rows(&self) -> Vec<Value> {
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

    /// Chooses `value` in the `<select id=id>` and tells the page.
    pub(super) async fn select(&self, id: &str, value: &str) {
        let ok = self
            .js(&format!(
                "const s = document.getElementById({id:?}); s.value = {value:?};
                 s.dispatchEvent(new Event('change', {{bubbles: true}})); return s.value === {value:?};"
            ))
            .await;
        assert_eq!(ok, Value::Bool(true), "#{id} has no option {value:?}");
    }

    /// Clicks the element `css` matches.
    pub(super) async fn click_css(&self, css: &str) {
        let el = bounded("find", self.c.find(Locator::Css(css)))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        bounded("click", el.click())
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Waits for the `<dialog id=id>` to be open.
    pub(super) async fn until_dialog(&self, id: &str) {
        self.until(
            &format!("#{id} to open"),
            &format!("document.getElementById({id:?}).open"),
        )
        .await;
    }

    /// The keys table with the platform's columns.
    pub(super) async fn platform_rows(&self) -> Vec<Value> {
        let v = self
            .js(
                "return [...document.querySelectorAll('[data-testid=key-row]')].map((r) => {
                   const cell = (t) => { const e = r.querySelector(`[data-testid=${t}]`); return e ? e.innerText.trim() : null; };
                   const tags = (t) => [...r.querySelectorAll(`[data-testid=${t}] .tag`)].map((e) => e.textContent).join(' ');
                   return {
                     id: r.dataset.keyId, name: r.querySelector('[data-testid=key-name]').firstChild.textContent,
                     prefix: cell('key-prefix'), scopes: tags('key-scopes'), ips: tags('key-ips'),
                     credits: cell('key-credits'), refill: cell('key-refill'), grace: cell('key-grace'),
                     disabled: !!r.querySelector('[data-testid=key-disabled]'),
                     can_rotate: !!r.querySelector('[data-testid=rotate-btn]'),
                   };
                 });",
            )
            .await;
        v.as_array().cloned().unwrap_or_default()
    }

    /// The Security page's rows.
    pub(super) async fn events(&self) -> Vec<Value> {
        let v = self
            .js(
                "return [...document.querySelectorAll('[data-testid=event-row]')].map((r) => ({
                   id: r.dataset.id, type: r.dataset.type, label: r.cells[1].innerText.trim(),
                   ip: r.cells[2].innerText.trim(), key: r.cells[3].innerText.trim(),
                 }));",
            )
            .await;
        v.as_array().cloned().unwrap_or_default()
    }

    /// Saves the screen as `target/browser-screenshots/<name>.png`.
    pub(super) async fn shot(&self, name: &str) {
        save_screenshot(&self.c, &shots_dir().join(format!("{name}.png"))).await;
    }

    /// With `KEYPOOL_README_SCREENSHOTS` set, saves the screen as
    /// `docs/screenshots/<name>.png` for the README.
    pub(super) async fn readme_shot(&self, name: &str) {
        if std::env::var_os("KEYPOOL_README_SCREENSHOTS").is_some() {
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
            save_screenshot(&self.c, &dir.join(format!("{name}.png"))).await;
        }
    }

    /// With `KEYPOOL_README_SCREENSHOTS` set, saves the element `#id` alone
    /// as `docs/screenshots/<name>.png` for the README.
    pub(super) async fn readme_shot_of(&self, id: &str, name: &str) {
        if std::env::var_os("KEYPOOL_README_SCREENSHOTS").is_some() {
            let png = bounded("element screenshot", self.el(id).await.screenshot())
                .await
                .expect("a screenshot of the element");
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("docs/screenshots")
                .join(format!("{name}.png"));
            std::fs::write(&path, png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        }
    }
}
