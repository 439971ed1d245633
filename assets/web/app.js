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
    loaded.video = loaded.keys = loaded.security = false;
    closeTopup();
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
  $("topup-open").hidden = !signedIn;
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
  td.className = "time";
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
  const W = 120, H = 36, gap = 1, bw = W / days.length - gap;

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

function rowButton(text, testid, label, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "btn ghost small";
  b.textContent = text;
  b.setAttribute("data-testid", testid);
  b.setAttribute("aria-label", label);
  b.addEventListener("click", onClick);
  return b;
}

function tag(text, cls = "tag") {
  const t = document.createElement("span");
  t.className = cls;
  t.textContent = text;
  return t;
}

/** Scopes, and the allowed IPs ("any IP" when there are none). */
function accessCell(k) {
  const td = document.createElement("td");
  const scopes = document.createElement("div");
  scopes.className = "tags";
  scopes.setAttribute("data-testid", "key-scopes");
  for (const sc of k.scopes || []) scopes.appendChild(tag(sc));
  td.appendChild(scopes);
  const ips = document.createElement("div");
  ips.className = "tags";
  ips.setAttribute("data-testid", "key-ips");
  const list = k.allowed_ips || [];
  if (list.length === 0) ips.appendChild(tag("any IP", "tag ip"));
  for (const ip of list) ips.appendChild(tag(ip, "tag ip"));
  td.appendChild(ips);
  return td;
}

function refillText(r) {
  if (!r) return "";
  return `refills to ${r.amount} ${r.interval === "monthly" ? "monthly" : "daily"}`;
}

function creditsCell(k) {
  const td = document.createElement("td");
  const n = document.createElement("span");
  n.setAttribute("data-testid", "key-credits");
  n.textContent = k.credits_remaining == null ? "Unmetered" : String(k.credits_remaining);
  td.appendChild(n);
  if (k.refill) {
    const r = document.createElement("span");
    r.className = "sub";
    r.setAttribute("data-testid", "key-refill");
    r.textContent = refillText(k.refill);
    td.appendChild(r);
  }
  return td;
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
    if (k.disabled) tr.classList.add("disabled");

    const name = document.createElement("td");
    name.className = "key-name";
    name.textContent = k.name || "(unnamed)";
    name.setAttribute("data-testid", "key-name");
    tr.appendChild(name);
    if (k.grace_until && !k.revoked) {
      const g = document.createElement("span");
      g.className = "sub";
      g.setAttribute("data-testid", "key-grace");
      g.textContent = `Rotated; works until ${fmtTime(k.grace_until)}`;
      g.title = k.grace_until;
      name.appendChild(g);
    }

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

    tr.appendChild(accessCell(k));
    tr.appendChild(creditsCell(k));

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
      const label = k.name || k.key_prefix;
      if (k.disabled) {
        const badge = document.createElement("span");
        badge.className = "badge warn";
        badge.textContent = "Disabled";
        badge.setAttribute("data-testid", "key-disabled");
        act.appendChild(badge);
      }
      act.appendChild(rowButton("Analytics", "analytics-btn", `Analytics of ${label}`, () => showAnalytics(k)));
      act.appendChild(rowButton("Credits", "credits-btn", `Set the credits of ${label}`, () => openCredits(k)));
      if (!k.rotated_to) {
        act.appendChild(rowButton("Rotate", "rotate-btn", `Rotate ${label}`, () => openRotate(k)));
      }
      const toggle = rowButton(k.disabled ? "Enable" : "Disable", "toggle-btn",
        `${k.disabled ? "Enable" : "Disable"} ${label}`, () => setDisabled(k, !k.disabled, toggle));
      act.appendChild(toggle);
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
  const role = $("key-role").value;
  if (role === "custom") {
    const scopes = [...document.querySelectorAll("#key-scopes input[name=scope]:checked")].map((c) => c.value);
    for (const own of $("key-custom-scopes").value.split(/[\s,]+/)) if (own) scopes.push(own);
    if (scopes.length === 0) {
      $("create-key-error").textContent = "Choose at least one scope, or another kind of access.";
      return;
    }
    body.scopes = scopes;
  } else if (role) {
    body.role = role;
  }
  const ips = $("key-ips").value.split(/[\s,]+/).filter(Boolean);
  if (ips.length) body.allowed_ips = ips;
  const credits = readCredits("key-credits", "key-refill-amount", "key-refill-interval", false);
  if (credits.error) { $("create-key-error").textContent = credits.error; return; }
  if (credits.value) body.credits = credits.value;
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
    $("key-ips").value = "";
    $("key-credits").value = "";
    $("key-refill-amount").value = "";
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
      scopes: body.scopes || ROLE_SCOPES[body.role || ""],
      allowed_ips: body.allowed_ips || [],
      credits_remaining: body.credits ? body.credits.remaining : null,
      refill: body.credits && body.credits.refill ? body.credits.refill : null,
      disabled: false,
      rotated_to: null,
      grace_until: null,
    });
    renderKeys();
  } catch (err) {
    $("create-key-error").textContent = err.message;
  } finally {
    setBusy(btn, false);
  }
}

function copyKey() { return copyText("new-key-value", "copy-status"); }

async function copyText(sourceId, statusId) {
  const text = $(sourceId).textContent;
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
    range.selectNodeContents($(sourceId));
    const sel = window.getSelection();
    sel.removeAllRanges();
    sel.addRange(range);
  }
  $(statusId).textContent = ok ? "Copied to the clipboard." : "Press Ctrl+C (⌘C) to copy the selected key.";
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

/** What a role (or none) grants, as the contract says; shown until the next refresh. */
const ROLE_SCOPES = {
  "": ["pool:read", "pool:write", "keys:read", "keys:write", "purchase"],
  worker: ["pool:read", "pool:write"],
  reader: ["pool:read", "keys:read"],
  admin: ["pool:read", "pool:write", "keys:read", "keys:write", "purchase", "keys:verify"],
};

/**
 * Reads a credits form: {value} ({remaining, refill?} or null when the
 * remaining field is empty and `required` is false) or {error}.
 */
function readCredits(remainingId, amountId, intervalId, required) {
  const rem = $(remainingId).value.trim();
  const amt = $(amountId).value.trim();
  if (!rem && !required) {
    if (amt) return { error: "Set the credits remaining too, or leave the refill empty." };
    return { value: null };
  }
  const n = Number(rem);
  if (!rem || !Number.isInteger(n) || n < 0) return { error: "Credits are a whole number, 0 or more." };
  const value = { remaining: n };
  if (amt) {
    const a = Number(amt);
    if (!Number.isInteger(a) || a < 1) return { error: "The refill is a whole number of credits, 1 or more." };
    value.refill = { amount: a, interval: $(intervalId).value };
  }
  return { value };
}

async function setDisabled(k, disabled, btn) {
  setBusy(btn, true);
  $("keys-error").textContent = "";
  try {
    await api("POST", `/api/keys/${encodeURIComponent(k.key_id)}/${disabled ? "disable" : "enable"}`, { body: {} });
    k.disabled = disabled;
    renderKeys();
  } catch (err) {
    $("keys-error").textContent = err.message;
    setBusy(btn, false);
  }
}

let rotating = null; // the key the rotate dialog is about

function openRotate(k) {
  rotating = k;
  $("rotate-key-name").textContent = k.name || k.key_prefix;
  $("rotate-form").hidden = false;
  $("rotate-result").hidden = true;
  $("rotate-error").textContent = "";
  $("rotate-grace").value = "24";
  $("rotate-dialog").showModal();
  $("rotate-grace").focus();
}

async function rotateKey(e) {
  e.preventDefault();
  $("rotate-error").textContent = "";
  const hours = Number($("rotate-grace").value);
  if (!Number.isFinite(hours) || hours < 0 || hours > 720 || $("rotate-grace").value.trim() === "") {
    $("rotate-error").textContent = "The grace period is 0 to 720 hours (30 days).";
    return;
  }
  const k = rotating;
  const btn = $("rotate-submit");
  setBusy(btn, true);
  try {
    const { data } = await api("POST", `/api/keys/${encodeURIComponent(k.key_id)}/rotate`, {
      body: { grace_secs: Math.round(hours * 3600) },
    });
    $("rotate-new-key").textContent = data.key;
    const end = $("rotate-old-end");
    end.textContent = fmtTime(data.old_key_expires_at);
    end.dateTime = data.old_key_expires_at || "";
    $("rotate-copy-status").textContent = "";
    $("rotate-form").hidden = true;
    $("rotate-result").hidden = false;
    $("rotate-copy").focus();
    k.rotated_to = data.key_id;
    k.grace_until = data.old_key_expires_at;
    keys.unshift({
      ...k,
      key_id: data.key_id,
      key_prefix: data.key_prefix || String(data.key).slice(0, 12),
      created_at: new Date().toISOString(),
      last_used: null,
      usage_count: 0,
      usage_by_day: [],
      rotated_to: null,
      grace_until: null,
    });
    renderKeys();
  } catch (err) {
    $("rotate-error").textContent = err.message;
  } finally {
    setBusy(btn, false);
  }
}

let crediting = null; // the key the credits dialog is about

function openCredits(k) {
  crediting = k;
  $("credits-title").textContent = `Credits of ${k.name || k.key_prefix}`;
  $("credits-remaining").value = k.credits_remaining == null ? "" : String(k.credits_remaining);
  $("credits-refill-amount").value = k.refill ? String(k.refill.amount) : "";
  $("credits-refill-interval").value = k.refill && k.refill.interval === "monthly" ? "monthly" : "daily";
  $("credits-error").textContent = "";
  $("credits-dialog").showModal();
  $("credits-remaining").focus();
}

async function saveCredits(e) {
  e.preventDefault();
  $("credits-error").textContent = "";
  const c = readCredits("credits-remaining", "credits-refill-amount", "credits-refill-interval", true);
  if (c.error) { $("credits-error").textContent = c.error; return; }
  const k = crediting;
  const btn = $("credits-submit");
  setBusy(btn, true);
  try {
    const { data } = await api("PUT", `/api/keys/${encodeURIComponent(k.key_id)}/credits`, { body: c.value });
    k.credits_remaining = data.credits_remaining ?? c.value.remaining;
    k.refill = data.refill === undefined ? (c.value.refill || null) : data.refill;
    $("credits-dialog").close();
    renderKeys();
  } catch (err) {
    $("credits-error").textContent = err.message;
  } finally {
    setBusy(btn, false);
  }
}

// ---------------------------------------------------------------------------
// Analytics of one key (GET /api/keys/{id}/analytics?days=30)
// ---------------------------------------------------------------------------

/** A bar chart of `series` ([{label, value, part?}]), inline SVG scaled to its box. */
function barChart(series, { id, label, unit = "", cls = "bar" }) {
  const W = 600, H = 140, top = 14, bottom = 16;
  // The tallest bar fills the chart, also below 1 (latencies under a millisecond).
  const max = Math.max(0, ...series.map((d) => d.value)) || 1;
  const bw = W / Math.max(1, series.length);
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("class", "big-chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  svg.id = id;
  const scale = (v) => (v / max) * (H - top - bottom);
  series.forEach((d, i) => {
    const h = d.value > 0 ? Math.max(1.5, scale(d.value)) : 0;
    const r = document.createElementNS(SVG, "rect");
    r.setAttribute("x", (i * bw + 1).toFixed(1));
    r.setAttribute("y", (H - bottom - h).toFixed(1));
    r.setAttribute("width", Math.max(1, bw - 2).toFixed(1));
    r.setAttribute("height", h.toFixed(1));
    r.setAttribute("class", cls);
    r.setAttribute("data-day", d.label);
    r.setAttribute("data-value", String(d.value));
    const t = document.createElementNS(SVG, "title");
    t.textContent = `${d.label}: ${d.value}${unit}`;
    r.appendChild(t);
    svg.appendChild(r);
    if (d.part) {
      const ph = Math.max(1.5, scale(d.part));
      const e = document.createElementNS(SVG, "rect");
      e.setAttribute("x", (i * bw + 1).toFixed(1));
      e.setAttribute("y", (H - bottom - ph).toFixed(1));
      e.setAttribute("width", Math.max(1, bw - 2).toFixed(1));
      e.setAttribute("height", ph.toFixed(1));
      e.setAttribute("class", `${cls} err`);
      svg.appendChild(e);
    }
  });
  const axis = document.createElementNS(SVG, "line");
  axis.setAttribute("x1", "0"); axis.setAttribute("x2", String(W));
  axis.setAttribute("y1", String(H - bottom + 0.5)); axis.setAttribute("y2", String(H - bottom + 0.5));
  axis.setAttribute("class", "axis");
  svg.appendChild(axis);
  const text = (x, y, s, anchor) => {
    const t = document.createElementNS(SVG, "text");
    t.setAttribute("x", String(x)); t.setAttribute("y", String(y));
    t.setAttribute("text-anchor", anchor);
    t.textContent = s;
    svg.appendChild(t);
  };
  text(2, 10, `max ${max}${unit}`, "start");
  if (series.length) {
    text(2, H - 3, series[0].label, "start");
    text(W - 2, H - 3, series[series.length - 1].label, "end");
  }
  return svg;
}

function pct(n, d) {
  if (!d) return "0%";
  const p = (100 * n) / d;
  return `${p < 10 ? p.toFixed(1) : Math.round(p)}%`;
}

async function showAnalytics(k) {
  const panel = $("analytics-panel");
  panel.hidden = false;
  panel.dataset.keyId = k.key_id;
  panel.dataset.state = "loading";
  $("analytics-heading").textContent = `Analytics: ${k.name || k.key_prefix} (last 30 days)`;
  $("analytics-error").textContent = "";
  for (const id of ["an-requests-chart", "an-p99-chart", "an-routes"]) $(id).replaceChildren();
  for (const id of ["an-requests", "an-error-rate", "an-p99", "an-limited"]) $(id).textContent = "–";
  panel.scrollIntoView({ block: "start" });
  let data;
  try {
    ({ data } = await api("GET", `/api/keys/${encodeURIComponent(k.key_id)}/analytics?days=30`));
  } catch (err) {
    $("analytics-error").textContent = err.message;
    panel.dataset.state = "error";
    return;
  }
  const days = Array.isArray(data.days) ? data.days : [];
  let requests = 0, errors = 0, limited = 0, p99 = 0;
  const routes = new Map();
  for (const d of days) {
    requests += Number(d.requests) || 0;
    errors += (Number(d.errors_4xx) || 0) + (Number(d.errors_5xx) || 0);
    limited += Number(d.rate_limited) || 0;
    p99 = Math.max(p99, Number(d.p99_ms) || 0);
    for (const [r, n] of Object.entries(d.by_route || {})) routes.set(r, (routes.get(r) || 0) + (Number(n) || 0));
  }
  $("an-requests").textContent = String(requests);
  $("an-error-rate").textContent = pct(errors, requests);
  $("an-error-rate").dataset.errors = String(errors);
  $("an-p99").textContent = `${p99} ms`;
  $("an-limited").textContent = String(limited);
  $("an-requests-chart").appendChild(barChart(
    days.map((d) => ({ label: d.day, value: Number(d.requests) || 0, part: (Number(d.errors_4xx) || 0) + (Number(d.errors_5xx) || 0) })),
    { id: "an-requests-svg", label: `Requests per day: ${requests} in all, ${errors} errors` },
  ));
  $("an-p99-chart").appendChild(barChart(
    days.map((d) => ({ label: d.day, value: Number(d.p99_ms) || 0 })),
    { id: "an-p99-svg", label: `p99 latency per day, worst ${p99} ms`, unit: " ms", cls: "bar p99" },
  ));
  const sorted = [...routes.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const top = sorted.length ? sorted[0][1] : 1;
  for (const [r, n] of sorted) {
    const tr = document.createElement("tr");
    tr.setAttribute("data-testid", "route-row");
    const name = document.createElement("td");
    const code = document.createElement("code");
    code.textContent = r;
    name.appendChild(code);
    const num = document.createElement("td");
    num.className = "num";
    num.textContent = String(n);
    const share = document.createElement("td");
    const bar = document.createElement("span");
    bar.className = "share";
    bar.style.width = `${Math.max(2, Math.round((n / top) * 120))}px`;
    share.appendChild(bar);
    share.appendChild(document.createTextNode(` ${pct(n, requests)}`));
    tr.append(name, num, share);
    $("an-routes").appendChild(tr);
  }
  $("an-routes-empty").hidden = sorted.length > 0;
  $("an-routes-table").hidden = sorted.length === 0;
  panel.dataset.state = "ready";
}

function wireKeys() {
  $("create-key-form").addEventListener("submit", createKey);
  $("copy-key-btn").addEventListener("click", copyKey);
  $("new-key-dismiss").addEventListener("click", () => {
    $("new-key").hidden = true;
    $("new-key-value").textContent = ""; // shown once: forget it
  });
  $("key-role").addEventListener("change", () => { $("key-scopes").hidden = $("key-role").value !== "custom"; });
  $("rotate-form").addEventListener("submit", rotateKey);
  $("rotate-cancel").addEventListener("click", () => $("rotate-dialog").close());
  $("rotate-done").addEventListener("click", () => {
    $("rotate-new-key").textContent = ""; // shown once: forget it
    $("rotate-dialog").close();
  });
  $("rotate-copy").addEventListener("click", () => copyText("rotate-new-key", "rotate-copy-status"));
  $("credits-form").addEventListener("submit", saveCredits);
  $("credits-cancel").addEventListener("click", () => $("credits-dialog").close());
  $("analytics-close").addEventListener("click", () => { $("analytics-panel").hidden = true; });
  $("keys-refresh").addEventListener("click", async () => {
    const btn = $("keys-refresh");
    setBusy(btn, true);
    await Promise.all([loadKeys(), refreshBalance()]);
    setBusy(btn, false);
  });
}

// ---------------------------------------------------------------------------
// Security page: GET /api/user/events, newest first, "Older" pages with `before`
// ---------------------------------------------------------------------------

const EVENT_NAMES = {
  login: "Signed in", login_failed: "Sign-in failed", logout: "Signed out",
  key_created: "Key created", key_revoked: "Key revoked", key_deleted: "Key deleted",
  key_rotated: "Key rotated", key_disabled: "Key disabled", key_enabled: "Key enabled",
  key_used_from_new_ip: "Key used from a new IP", rate_limited: "Rate limited",
  credits_exhausted: "Credits exhausted", pin_set: "PIN set", pin_failed: "Wrong PIN",
  purchase_locked: "Purchases locked", purchase: "Purchase", topup: "Credits added",
};

let eventsBefore = null; // next_before of the last page

function detailText(d) {
  if (d == null || d === "") return "";
  if (typeof d === "string") return d;
  if (typeof d === "object") return Object.entries(d).map(([k, v]) => `${k}: ${typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
  return String(d);
}

function renderEvents(events, append) {
  const tbody = $("events-list");
  if (!append) tbody.replaceChildren();
  for (const ev of events) {
    const tr = document.createElement("tr");
    tr.setAttribute("data-testid", "event-row");
    tr.dataset.id = String(ev.id);
    tr.dataset.type = String(ev.type);
    tr.appendChild(timeCell(ev.at));
    const type = document.createElement("td");
    type.textContent = EVENT_NAMES[ev.type] || String(ev.type);
    type.title = String(ev.type);
    type.setAttribute("data-testid", "event-type");
    if (/failed|locked|exhausted|limited|new_ip/.test(ev.type)) type.className = "warn-text";
    const ip = document.createElement("td");
    const ipc = document.createElement("code");
    ipc.textContent = ev.ip || "—";
    ip.appendChild(ipc);
    const key = document.createElement("td");
    if (ev.key_prefix) { const c = document.createElement("code"); c.textContent = `${ev.key_prefix}…`; key.appendChild(c); }
    else key.textContent = "—";
    const detail = document.createElement("td");
    detail.textContent = detailText(ev.detail);
    tr.append(type, ip, key, detail);
    tbody.appendChild(tr);
  }
  const any = tbody.children.length > 0;
  $("events-empty").hidden = any;
  $("events-table").hidden = !any;
}

async function loadEvents(older) {
  $("events-error").textContent = "";
  const btn = older ? $("events-older") : $("events-refresh");
  setBusy(btn, true);
  try {
    let path = "/api/user/events?limit=50";
    if (older && eventsBefore != null) path += `&before=${encodeURIComponent(eventsBefore)}`;
    const { data } = await api("GET", path);
    $("events-unavailable").hidden = true;
    const events = Array.isArray(data.events) ? data.events : [];
    renderEvents(events, older);
    eventsBefore = data.next_before ?? null;
    $("events-older").hidden = eventsBefore == null;
  } catch (err) {
    if (err.status === 404) {
      // A server without the event log (GET /api/user/events is newer than
      // the rest of the platform): say so instead of an empty table.
      $("events-unavailable").hidden = false;
      $("events-table").hidden = true;
      $("events-empty").hidden = true;
      $("events-older").hidden = true;
      eventsBefore = null;
    } else {
      $("events-error").textContent = err.message;
    }
  } finally {
    setBusy(btn, false);
  }
}

function wireSecurity() {
  $("events-refresh").addEventListener("click", () => loadEvents(false));
  $("events-older").addEventListener("click", () => loadEvents(true));
}

// ---------------------------------------------------------------------------
// Add credits: POST /api/user/credits {amount, pin}, then wait for the payment
// ---------------------------------------------------------------------------

let topupTimer = null;

function showTopupPart(part) {
  $("topup-form").hidden = part !== "form";
  $("topup-waiting").hidden = part !== "waiting";
  $("topup-done").hidden = part !== "done";
  $("topup-dialog").dataset.state = part;
}

function openTopup() {
  clearTimeout(topupTimer);
  $("topup-error").textContent = "";
  $("topup-pin").value = "";
  showTopupPart("form");
  $("topup-dialog").showModal();
  $("topup-amount").focus();
}

function closeTopup() {
  clearTimeout(topupTimer);
  topupTimer = null;
  $("topup-dialog").close();
}

async function submitTopup(e) {
  e.preventDefault();
  $("topup-error").textContent = "";
  const raw = $("topup-amount").value.trim();
  const amount = Math.round(Number(raw) * 100);
  if (!raw || !Number.isFinite(amount) || amount < 100 || amount > 100000) {
    $("topup-error").textContent = `Enter an amount from ${money(100)} to ${money(100000)}.`;
    return;
  }
  const pin = $("topup-pin").value.trim();
  if (!PIN_RE.test(pin)) { $("topup-error").textContent = "Enter your PIN: 4 to 8 digits."; return; }
  const btn = $("topup-submit");
  setBusy(btn, true);
  try {
    const { data } = await api("POST", "/api/user/credits", { body: { amount, pin } });
    $("topup-pin").value = "";
    showTopupPart("waiting");
    $("topup-dialog").dataset.topupId = data.topup_id || "";
    waitForTopup(data.topup_id);
  } catch (err) {
    $("topup-error").textContent = err.message;
    if (err.status === 403) $("topup-pin").select();
  } finally {
    setBusy(btn, false);
  }
}

/** Polls GET /api/user/credits until the top-up is no longer waiting. */
function waitForTopup(id) {
  let failures = 0;
  const poll = async () => {
    topupTimer = null;
    if (!$("topup-dialog").open) return;
    let data;
    try {
      ({ data } = await api("GET", "/api/user/credits"));
    } catch (err) {
      failures += 1;
      if (failures > 5) { showTopupPart("form"); $("topup-error").textContent = err.message; return; }
      topupTimer = setTimeout(poll, Math.min(5000, 500 * 2 ** failures));
      return;
    }
    const t = (data.topups || []).find((x) => x.topup_id === id);
    if (typeof data.balance === "number") { balanceCents = data.balance; renderAccount(); }
    if (t && t.status !== "waiting") {
      if (t.status === "failed") {
        showTopupPart("form");
        $("topup-error").textContent = "The payment did not go through.";
      } else {
        $("topup-balance").textContent = money(data.balance);
        showTopupPart("done");
        $("topup-close").focus();
      }
      return;
    }
    topupTimer = setTimeout(poll, 1000);
  };
  topupTimer = setTimeout(poll, 1000);
}

function wireTopup() {
  $("topup-open").addEventListener("click", openTopup);
  $("topup-form").addEventListener("submit", submitTopup);
  $("topup-cancel").addEventListener("click", closeTopup);
  $("topup-close").addEventListener("click", closeTopup);
}

// ---------------------------------------------------------------------------
// Views and start-up
// ---------------------------------------------------------------------------

const loaded = { video: false, keys: false, security: false };

function currentView() {
  if (location.hash === "#keys") return "keys";
  if (location.hash === "#security") return "security";
  return "video";
}

async function route() {
  const view = currentView();
  $("video-view").hidden = view !== "video";
  $("keys-view").hidden = view !== "keys";
  $("security-view").hidden = view !== "security";
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
  } else if (view === "security" && !loaded.security) {
    loaded.security = true;
    await loadEvents(false);
  }
}

function start() {
  wireAuth();
  wireVideo();
  wireKeys();
  wireSecurity();
  wireTopup();
  renderAccount();
  window.addEventListener("hashchange", route);
  route();
}

start();
