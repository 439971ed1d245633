// keypool's web page: sign in, buy and watch the featured video, manage API keys.
//
// Plain modern JavaScript, no library, no build step. Talks only to the routes
// of the HTTP contract (docs/API.md), on the same origin.
//
// A session token serves only a few requests (10 by default), so:
// - requests that need no credential (polling a purchase, the stream itself)
//   are sent without one and do not use the session up;
// - any request answered 401 opens the sign-in dialog over the current view,
//   and once the user has signed in the same request is sent again, so nobody
//   loses their place.
"use strict";

const $ = (id) => document.getElementById(id);

// ---------------------------------------------------------------------------
// Session (sessionStorage: gone when the tab closes)
// ---------------------------------------------------------------------------

const session = {
  get token() { return sessionStorage.getItem("kp.token"); },
  get user() { return sessionStorage.getItem("kp.user") || ""; },
  get uses() { const n = Number(sessionStorage.getItem("kp.uses")); return Number.isFinite(n) ? n : null; },
  set(token, user, uses) {
    sessionStorage.setItem("kp.token", token);
    sessionStorage.setItem("kp.user", user);
    if (uses != null) sessionStorage.setItem("kp.uses", String(uses));
    renderAccount();
  },
  used() {
    const n = this.uses;
    if (n != null) sessionStorage.setItem("kp.uses", String(Math.max(0, n - 1)));
    renderAccount();
  },
  clear() {
    sessionStorage.removeItem("kp.token");
    sessionStorage.removeItem("kp.uses");
    renderAccount();
  },
};

// ---------------------------------------------------------------------------
// HTTP
// ---------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message, headers) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}

/** The sentence to show for a failed response. */
function errorText(status, data) {
  if (data && typeof data.error === "string" && data.error) return data.error;
  if (status === 0) return "Cannot reach the server. Check your connection and try again.";
  return `The server answered ${status}. Please try again.`;
}

/**
 * Sends one request and returns {status, data, headers}. With `auth`, the
 * session token goes along and a 401 opens the sign-in dialog, then retries.
 * Throws ApiError for any other non-2xx status unless it is listed in `accept`.
 */
async function api(method, path, { body, auth = true, accept = [] } = {}) {
  for (;;) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (auth && session.token) headers.Authorization = `Bearer ${session.token}`;
    let res;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
      });
    } catch (e) {
      throw new ApiError(0, errorText(0), new Headers());
    }
    if (auth && headers.Authorization) session.used();
    let data = null;
    const text = await res.text();
    if (text) {
      try { data = JSON.parse(text); } catch { data = { error: text.trim() }; }
    }
    if (res.status === 401 && auth) {
      session.clear();
      await signIn(errorText(401, data));
      continue; // the same request, with the new token
    }
    if (res.ok || accept.includes(res.status)) return { status: res.status, data: data || {}, headers: res.headers };
    throw new ApiError(res.status, errorText(res.status, data), res.headers);
  }
}

// ---------------------------------------------------------------------------
// Sign in / register: one dialog, opened over whatever is on screen
// ---------------------------------------------------------------------------

let pendingSignIn = null; // one promise shared by every request waiting for a session

/** Opens the sign-in dialog (once, however many requests wait) and resolves when signed in. */
function signIn(reason = "") {
  if (!pendingSignIn) {
    pendingSignIn = new Promise((resolve) => {
      const dlg = $("auth-dialog");
      dlg._resolve = resolve;
      $("auth-reason").textContent = reason;
      $("auth-error").textContent = "";
      showAuthForm("login");
      if (session.user) $("login-username").value = session.user;
      if (!dlg.open) dlg.showModal();
      ($("login-username").value ? $("login-password") : $("login-username")).focus();
    }).finally(() => { pendingSignIn = null; });
  }
  return pendingSignIn;
}

function showAuthForm(which) {
  const login = which === "login";
  $("login-form").hidden = !login;
  $("register-form").hidden = login;
  $("auth-title").textContent = login ? "Sign in" : "Create an account";
  $("auth-error").textContent = "";
}

async function login(username, password) {
  const { data } = await api("POST", "/login", { body: { username, password }, auth: false });
  session.set(data.token, username, data.remaining_uses ?? null);
  const dlg = $("auth-dialog");
  $("login-password").value = "";
  $("register-password").value = "";
  dlg.close();
  if (dlg._resolve) { const r = dlg._resolve; dlg._resolve = null; r(); }
}

function setBusy(button, busy) {
  button.disabled = busy;
  button.classList.toggle("busy", busy);
}

function wireAuth() {
  const dlg = $("auth-dialog");
  // Nothing works without a session: Escape does not dismiss the dialog.
  dlg.addEventListener("cancel", (e) => e.preventDefault());
  $("show-register").addEventListener("click", () => {
    showAuthForm("register");
    $("register-username").value = $("login-username").value;
    $("register-username").focus();
  });
  $("show-login").addEventListener("click", () => { showAuthForm("login"); $("login-username").focus(); });

  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const username = $("login-username").value.trim();
    const password = $("login-password").value;
    if (!username || !password) { $("auth-error").textContent = "Enter your username and password."; return; }
    setBusy($("login-submit"), true);
    try {
      await login(username, password);
    } catch (err) {
      $("auth-error").textContent = err.message;
    } finally {
      setBusy($("login-submit"), false);
    }
  });

  $("register-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const username = $("register-username").value.trim();
    const password = $("register-password").value;
    const email = $("register-email").value.trim();
    if (!username || !password) { $("auth-error").textContent = "Choose a username and a password."; return; }
    setBusy($("register-submit"), true);
    try {
      const body = { username, password };
      if (email) body.email = email;
      await api("POST", "/register", { body, auth: false });
      await login(username, password);
    } catch (err) {
      $("auth-error").textContent = err.message;
    } finally {
      setBusy($("register-submit"), false);
    }
  });

  $("logout-btn").addEventListener("click", async () => {
    const token = session.token;
    session.clear();
    if (token) {
      // Best effort: the token is forgotten here either way.
      fetch("/logout", { method: "POST", headers: { Authorization: `Bearer ${token}` } }).catch(() => {});
    }
    stopPolling();
    resetVideo();
    loaded.video = loaded.keys = false;
    keys = [];
    renderKeys();
    balanceCents = null;
    await signIn("You have signed out.");
    route();
  });
}

// ---------------------------------------------------------------------------
// Header: who, balance, session uses
// ---------------------------------------------------------------------------

let currency = "USD"; // the catalog's currency, learnt from /video/info

function money(cents, cur = currency) {
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency: cur }).format(cents / 100);
  } catch {
    return `${(cents / 100).toFixed(2)} ${cur}`;
  }
}

let balanceCents = null;

function renderAccount() {
  const signedIn = !!session.token;
  $("account-box").hidden = !signedIn && !session.user;
  $("user-name").textContent = session.user;
  const uses = session.uses;
  $("session-uses").textContent = signedIn && uses != null ? ` · ${uses} request${uses === 1 ? "" : "s"} left` : "";
  const bal = $("balance");
  bal.hidden = balanceCents == null;
  bal.textContent = balanceCents == null ? "" : money(balanceCents);
  bal.dataset.cents = balanceCents == null ? "" : String(balanceCents);
  $("logout-btn").hidden = !signedIn;
}

/** GET /api/user/key/{username} → keyPreference.balance. Never throws. */
async function refreshBalance() {
  if (!session.user) return;
  try {
    const { data } = await api("GET", `/api/user/key/${encodeURIComponent(session.user)}`);
    const b = data && data.keyPreference && data.keyPreference.balance;
    if (typeof b === "number") balanceCents = b;
  } catch {
    // The balance is a nicety; the purchase answers say what matters.
  }
  renderAccount();
}

// ---------------------------------------------------------------------------
// Video page
// ---------------------------------------------------------------------------

let video = null;        // the last /video/info answer
let pollTimer = null;    // the purchase poll
let lockTimer = null;    // the lockout countdown
let lockedUntil = 0;     // Date.now() until which Confirm stays disabled
let lastPlayerReload = 0; // guards against reloading a broken stream in a loop

function setVideoState(state) {
  $("video-view").dataset.state = state;
  const line = {
    loading: "",
    not_purchased: "Not purchased yet.",
    waiting: "Payment in progress…",
    purchased: "Purchased. Enjoy!",
    failed: "Your last payment did not go through.",
  }[state] || "";
  $("video-status").textContent = line;
}

function resetVideo() {
  const p = $("player");
  p.pause();
  p.removeAttribute("src");
  p.load();
  p.hidden = true;
  $("video-poster").hidden = false;
  $("purchase-modal").hidden = true;
  video = null;
  setVideoState("loading");
}

async function loadVideo() {
  $("video-error").textContent = "";
  setVideoState("loading");
  let info;
  try {
    ({ data: info } = await api("GET", "/video/info"));
  } catch (err) {
    $("video-error").textContent = err.message;
    return;
  }
  video = info;
  currency = info.currency || currency;
  renderAccount();
  $("video-title").textContent = info.title || "Untitled video";
  $("modal-title").textContent = info.title || "Untitled video";
  const price = $("modal-price");
  price.textContent = money(info.price, info.currency);
  price.dataset.price = String(info.price);
  price.dataset.currency = info.currency || "";

  const status = info.status || (info.purchased ? "purchased" : "not_purchased");
  if (status === "purchased" && info.stream_url) {
    showPlayer(info.stream_url, false);
  } else if (status === "waiting" && info.purchase_id) {
    openModal();
    startWaiting(info.purchase_id);
  } else {
    openModal();
    if (status === "failed") {
      setVideoState("failed");
      $("modal-error").textContent = "Your last payment did not go through: the balance did not cover the price. You can try again.";
    }
  }
}

function openModal() {
  setVideoState(video && video.status === "failed" ? "failed" : "not_purchased");
  $("purchase-modal").hidden = false;
  $("modal-error").textContent = "";
  $("modal-message").textContent = "";
  showModalPart("purchase");
}

/** Which part of the modal shows: "purchase" (PIN + confirm), "set-pin" or "waiting". */
function showModalPart(part) {
  $("purchase-form").hidden = part !== "purchase";
  $("set-pin-form").hidden = part !== "set-pin";
  $("modal-waiting").hidden = part !== "waiting";
  $("change-pin-link").hidden = part !== "purchase";
  if (part === "purchase") $("pin-input").focus();
  if (part === "set-pin") $("new-pin-input").focus();
}

function showPlayer(streamUrl, play) {
  stopPolling();
  setVideoState("purchased");
  $("purchase-modal").hidden = true;
  $("video-poster").hidden = true;
  const p = $("player");
  p.hidden = false;
  if (p.getAttribute("src") !== streamUrl) p.src = streamUrl;
  if (play) {
    p.play().catch(() => {
      // Autoplay with sound may be refused; muted playback is always allowed.
      p.muted = true;
      p.play().catch(() => {});
    });
  }
}

const PIN_RE = /^[0-9]{4,8}$/;

function fmtWait(secs) {
  secs = Math.max(1, Math.ceil(secs));
  const m = Math.floor(secs / 60), s = secs % 60;
  if (m === 0) return `${s} s`;
  return s ? `${m} min ${s} s` : `${m} min`;
}

/** Disables Confirm and counts down while purchases are locked. */
function startLockCountdown(secs) {
  clearInterval(lockTimer);
  lockedUntil = Date.now() + secs * 1000;
  const btn = $("confirm-btn");
  const tick = () => {
    const left = (lockedUntil - Date.now()) / 1000;
    if (left <= 0) {
      clearInterval(lockTimer);
      lockTimer = null;
      btn.disabled = false;
      $("modal-message").textContent = "You can try your PIN again.";
      return;
    }
    btn.disabled = true;
    $("modal-message").textContent = `Purchases are locked. Try again in ${fmtWait(left)}.`;
  };
  tick();
  lockTimer = setInterval(tick, 1000);
}

async function confirmPurchase(e) {
  e.preventDefault();
  const pin = $("pin-input").value.trim();
  $("modal-error").textContent = "";
  $("modal-message").textContent = "";
  if (!PIN_RE.test(pin)) {
    $("modal-error").textContent = "Enter your PIN: 4 to 8 digits.";
    $("pin-input").focus();
    return;
  }
  const btn = $("confirm-btn");
  setBusy(btn, true);
  try {
    const body = { pin };
    if (video && video.video_id) body.video_id = video.video_id;
    const { status, data } = await api("POST", "/video/purchase", { body });
    $("pin-input").value = "";
    if (status === 202 && data.purchase_id) {
      startWaiting(data.purchase_id);
    } else if (data.status === "purchased") {
      await loadVideo(); // already bought: /video/info carries the stream URL
    } else {
      $("modal-error").textContent = "Unexpected answer from the server. Please reload the page.";
    }
  } catch (err) {
    const msg = err.message;
    if (err.status === 400 && /no pin|not set|pin first|set a (purchase )?pin/i.test(msg)) {
      $("modal-message").textContent = "";
      showModalPart("set-pin");
      $("set-pin-hint").textContent = `${msg} Choose 4 to 8 digits; you will enter them to confirm purchases.`;
    } else if (err.status === 429) {
      $("modal-error").textContent = msg;
      const retry = Number(err.headers && err.headers.get("Retry-After"));
      if (retry > 0) startLockCountdown(retry);
    } else if (err.status === 402) {
      $("modal-error").textContent = msg;
      refreshBalance();
    } else {
      $("modal-error").textContent = msg;
      if (err.status === 403) { $("pin-input").select(); }
    }
  } finally {
    setBusy(btn, false);
    if (lockedUntil > Date.now()) btn.disabled = true;
  }
}

async function setPin(e) {
  e.preventDefault();
  const pin = $("new-pin-input").value.trim();
  const again = $("new-pin-confirm").value.trim();
  $("modal-error").textContent = "";
  if (!PIN_RE.test(pin)) { $("modal-error").textContent = "A PIN is 4 to 8 digits."; return; }
  if (pin !== again) { $("modal-error").textContent = "The two PINs differ. Type the same PIN twice."; return; }
  const btn = $("set-pin-btn");
  setBusy(btn, true);
  try {
    await api("PUT", "/api/user/pin", { body: { pin } });
    $("new-pin-input").value = "";
    $("new-pin-confirm").value = "";
    showModalPart("purchase");
    $("modal-message").textContent = "PIN set. Enter it to confirm the purchase.";
  } catch (err) {
    $("modal-error").textContent = err.message;
  } finally {
    setBusy(btn, false);
  }
}

/** Polls GET /video/purchase/{id} (no credential: it costs no session use). */
function startWaiting(purchaseId) {
  stopPolling();
  setVideoState("waiting");
  $("purchase-modal").hidden = false;
  $("modal-error").textContent = "";
  $("modal-message").textContent = "";
  showModalPart("waiting");
  $("modal-waiting").dataset.purchaseId = purchaseId;
  let failures = 0;
  const poll = async () => {
    pollTimer = null;
    let res;
    try {
      res = await api("GET", `/video/purchase/${encodeURIComponent(purchaseId)}`, { auth: false });
    } catch (err) {
      if (err.status === 404) {
        showModalPart("purchase");
        $("modal-error").textContent = "That purchase is unknown to the server. Please try again.";
        return;
      }
      failures += 1; // a blip: back off and keep polling
      pollTimer = setTimeout(poll, Math.min(5000, 500 * 2 ** failures));
      return;
    }
    failures = 0;
    const { data } = res;
    if (data.status === "purchased") {
      refreshBalance();
      if (data.stream_url) showPlayer(data.stream_url, true);
      else { await loadVideo(); if (video && video.stream_url) showPlayer(video.stream_url, true); }
    } else if (data.status === "failed") {
      setVideoState("failed");
      showModalPart("purchase");
      $("modal-error").textContent = "The payment failed: your balance did not cover the price.";
      refreshBalance();
    } else {
      pollTimer = setTimeout(poll, 500);
    }
  };
  pollTimer = setTimeout(poll, 500);
}

function stopPolling() {
  if (pollTimer) clearTimeout(pollTimer);
  pollTimer = null;
}

function wireVideo() {
  $("purchase-form").addEventListener("submit", confirmPurchase);
  $("set-pin-form").addEventListener("submit", setPin);
  $("set-pin-cancel").addEventListener("click", () => { $("modal-error").textContent = ""; showModalPart("purchase"); });
  $("change-pin-link").addEventListener("click", () => {
    $("set-pin-hint").textContent = "Choose a purchase PIN of 4 to 8 digits.";
    $("modal-error").textContent = "";
    $("modal-message").textContent = "";
    showModalPart("set-pin");
  });
  $("player").addEventListener("error", () => {
    const p = $("player");
    if (p.hidden || !p.getAttribute("src")) return;
    if (Date.now() - lastPlayerReload < 60000) {
      $("video-error").textContent = "The video could not be played. Please reload the page.";
      return;
    }
    // Most likely the short-lived stream token expired: ask for a fresh link, once.
    lastPlayerReload = Date.now();
    $("video-error").textContent = "The video could not be loaded. Fetching a fresh link…";
    loadVideo().then(() => { if (video && video.stream_url) $("video-error").textContent = ""; });
  });
}

// ---------------------------------------------------------------------------
// API keys page
// ---------------------------------------------------------------------------

let keys = []; // the last /list-keys items, with local changes

function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

function timeCell(iso) {
  const td = document.createElement("td");
  td.textContent = fmtTime(iso);
  if (iso) td.title = iso;
  return td;
}

/** The last 30 UTC days, oldest first, as YYYY-MM-DD. */
function last30Days() {
  const out = [];
  const today = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate());
  for (let i = 29; i >= 0; i--) out.push(new Date(today - i * 86400000).toISOString().slice(0, 10));
  return out;
}

const SVG = "http://www.w3.org/2000/svg";

/** A small bar chart of `usage_by_day`, drawn as inline SVG. */
function usageChart(usage, name) {
  const counts = new Map((usage || []).map((u) => [u.day, Number(u.count) || 0]));
  const days = last30Days();
  // Days the server reports beyond our idea of "today" (clock skew) still show.
  for (const d of counts.keys()) if (!days.includes(d) && d > days[days.length - 1]) { days.push(d); days.shift(); }
  const values = days.map((d) => counts.get(d) || 0);
  const total = values.reduce((a, b) => a + b, 0);
  const max = Math.max(1, ...values);
  const W = 150, H = 36, gap = 1, bw = W / days.length - gap;

  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("width", String(W));
  svg.setAttribute("height", String(H));
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("data-testid", "usage-chart");
  svg.dataset.total = String(total);
  svg.setAttribute("aria-label", `Usage of ${name} over the last 30 days: ${total} request${total === 1 ? "" : "s"}`);
  const base = document.createElementNS(SVG, "line");
  base.setAttribute("x1", "0"); base.setAttribute("x2", String(W));
  base.setAttribute("y1", String(H - 0.5)); base.setAttribute("y2", String(H - 0.5));
  base.setAttribute("class", "axis");
  svg.appendChild(base);
  days.forEach((day, i) => {
    const v = values[i];
    const h = v === 0 ? 0 : Math.max(2, Math.round((v / max) * (H - 4)));
    const r = document.createElementNS(SVG, "rect");
    r.setAttribute("x", (i * (bw + gap)).toFixed(2));
    r.setAttribute("y", String(H - 1 - h));
    r.setAttribute("width", bw.toFixed(2));
    r.setAttribute("height", String(h));
    r.setAttribute("class", "bar");
    r.setAttribute("data-day", day);
    r.setAttribute("data-count", String(v));
    const t = document.createElementNS(SVG, "title");
    t.textContent = `${day}: ${v}`;
    r.appendChild(t);
    svg.appendChild(r);
  });
  return svg;
}

function renderKeys() {
  const tbody = $("keys-list");
  tbody.replaceChildren();
  $("keys-empty").hidden = keys.length > 0;
  $("keys-table").hidden = keys.length === 0;
  for (const k of keys) {
    const tr = document.createElement("tr");
    tr.setAttribute("data-testid", "key-row");
    tr.dataset.keyId = k.key_id;
    if (k.revoked) tr.classList.add("revoked");

    const name = document.createElement("td");
    name.textContent = k.name || "(unnamed)";
    name.setAttribute("data-testid", "key-name");
    tr.appendChild(name);

    const prefix = document.createElement("td");
    const code = document.createElement("code");
    code.textContent = `${k.key_prefix}…`;
    prefix.appendChild(code);
    prefix.setAttribute("data-testid", "key-prefix");
    tr.appendChild(prefix);

    tr.appendChild(timeCell(k.created_at));
    const last = timeCell(k.last_used);
    last.setAttribute("data-testid", "key-last-used");
    tr.appendChild(last);

    const uses = document.createElement("td");
    uses.className = "num";
    uses.textContent = String(k.usage_count ?? 0);
    uses.setAttribute("data-testid", "key-usage-count");
    tr.appendChild(uses);

    const exp = timeCell(k.expires_at);
    if (!k.expires_at) exp.textContent = "Never";
    tr.appendChild(exp);

    const chart = document.createElement("td");
    chart.appendChild(usageChart(k.usage_by_day, k.name || k.key_prefix));
    tr.appendChild(chart);

    const act = document.createElement("td");
    act.className = "actions";
    if (k.revoked) {
      const badge = document.createElement("span");
      badge.className = "badge";
      badge.textContent = "Revoked";
      badge.setAttribute("data-testid", "key-revoked");
      act.appendChild(badge);
    } else {
      const btn = document.createElement("button");
      btn.type = "button";
      btn.className = "btn danger small";
      btn.textContent = "Revoke";
      btn.setAttribute("data-testid", "revoke-btn");
      btn.setAttribute("aria-label", `Revoke ${k.name || k.key_prefix}`);
      btn.addEventListener("click", () => revokeKey(k, btn));
      act.appendChild(btn);
    }
    tr.appendChild(act);
    tbody.appendChild(tr);
  }
}

async function loadKeys() {
  $("keys-error").textContent = "";
  const [list, stats] = await Promise.allSettled([
    api("GET", "/list-keys"),
    api("GET", "/stats"),
  ]);
  if (list.status === "fulfilled") {
    keys = Array.isArray(list.value.data.items) ? list.value.data.items : [];
    renderKeys();
  } else {
    $("keys-error").textContent = list.reason.message;
  }
  if (stats.status === "fulfilled") {
    const s = stats.value.data;
    $("stat-total").textContent = String(s.total ?? "–");
    $("stat-available").textContent = String(s.available ?? "–");
    $("stat-blocked").textContent = String(s.blocked ?? "–");
  } else {
    $("keys-error").textContent = stats.reason.message;
  }
}

async function createKey(e) {
  e.preventDefault();
  $("create-key-error").textContent = "";
  const body = {};
  const name = $("key-name").value.trim();
  if (name) body.name = name;
  const exp = $("key-expires").value;
  if (exp) body.expires_in = Number(exp);
  const rl = $("key-rate-limit").value.trim();
  if (rl) {
    const n = Number(rl);
    if (!Number.isInteger(n) || n < 1) {
      $("create-key-error").textContent = "The rate limit is a whole number of requests per minute, 1 or more.";
      return;
    }
    body.rate_limit = { limit: n, window_secs: 60 };
  }
  const btn = $("create-key-btn");
  setBusy(btn, true);
  try {
    const { data } = await api("POST", "/generate-key", { body });
    $("new-key-value").textContent = data.key;
    $("copy-status").textContent = "";
    $("new-key").hidden = false;
    $("copy-key-btn").focus();
    $("key-name").value = "";
    $("key-rate-limit").value = "";
    // Shown locally rather than re-listed: each request counts against the session.
    const now = new Date();
    keys.unshift({
      key_id: data.key_id,
      name: name || "",
      key_prefix: data.key_prefix || String(data.key).slice(0, 12),
      created_at: now.toISOString(),
      last_used: null,
      usage_count: 0,
      usage_by_day: [],
      expires_at: exp ? new Date(now.getTime() + Number(exp) * 1000).toISOString() : null,
      revoked: false,
    });
    renderKeys();
  } catch (err) {
    $("create-key-error").textContent = err.message;
  } finally {
    setBusy(btn, false);
  }
}

async function copyKey() {
  const text = $("new-key-value").textContent;
  let ok = false;
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      ok = true;
    }
  } catch { /* fall back below */ }
  if (!ok) {
    // Fallback for plain-http origins: a hidden textarea and execCommand.
    const ta = document.createElement("textarea");
    ta.value = text;
    ta.setAttribute("readonly", "");
    ta.style.position = "fixed";
    ta.style.opacity = "0";
    document.body.appendChild(ta);
    ta.select();
    try { ok = document.execCommand("copy"); } catch { ok = false; }
    ta.remove();
  }
  if (!ok) {
    // Last resort: select the key so the user can press Ctrl+C.
    const range = document.createRange();
    range.selectNodeContents($("new-key-value"));
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }
  $("copy-status").textContent = ok ? "Copied to the clipboard." : "Press Ctrl+C (⌘C) to copy the selected key.";
}

async function revokeKey(k, btn) {
  setBusy(btn, true);
  $("keys-error").textContent = "";
  try {
    await api("POST", "/revoke-key", { body: { key: k.key_id } });
    k.revoked = true;
    renderKeys();
  } catch (err) {
    $("keys-error").textContent = err.message;
    setBusy(btn, false);
  }
}

function wireKeys() {
  $("create-key-form").addEventListener("submit", createKey);
  $("copy-key-btn").addEventListener("click", copyKey);
  $("new-key-dismiss").addEventListener("click", () => {
    $("new-key").hidden = true;
    $("new-key-value").textContent = ""; // shown once: forget it
  });
  $("keys-refresh").addEventListener("click", async () => {
    const btn = $("keys-refresh");
    setBusy(btn, true);
    await Promise.all([loadKeys(), refreshBalance()]);
    setBusy(btn, false);
  });
}

// ---------------------------------------------------------------------------
// Views and start-up
// ---------------------------------------------------------------------------

const loaded = { video: false, keys: false };

function currentView() {
  return location.hash === "#keys" ? "keys" : "video";
}

async function route() {
  const view = currentView();
  $("video-view").hidden = view !== "video";
  $("keys-view").hidden = view !== "keys";
  for (const a of document.querySelectorAll(".tab")) {
    if (a.dataset.view === view) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (!session.token) await signIn();
  // Each view loads once per session; Refresh (keys) or a purchase reloads.
  if (view === "video" && (!loaded.video || !video)) {
    loaded.video = true;
    await loadVideo();
  } else if (view === "keys" && !loaded.keys) {
    loaded.keys = true;
    await Promise.all([loadKeys(), refreshBalance()]);
  }
}

function start() {
  wireAuth();
  wireVideo();
  wireKeys();
  renderAccount();
  window.addEventListener("hashchange", route);
  route();
}

start();
