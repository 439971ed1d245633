//! Purchases (seed 000's front end): `/video/info`, `/api/user/pin`,
//! `/video/purchase`, `/video/purchase/{id}`, `/video/stream/{video_id}`.
//!
//! PIN hashing and checking run on the blocking pool like passwords. The video
//! bytes are served only through a short-lived signed token that `stream_url`
//! carries, with single-range `Range` support so the player can seek.

use bytes::Bytes;
use hyper::header::{HeaderValue, ACCEPT_RANGES, CONTENT_RANGE, RANGE};
use hyper::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::super::auth::Need;
use super::super::idem::{self, Begun};
use super::super::request::{credential, Credential};
use super::super::response::{bytes_response, json, message, ApiError, Reply};
use super::super::{Ctx, Http};
use super::accounts::hashing;
use super::param;
use crate::event::EventRef;
use crate::purchase::{
    hash_pin, parse_range, validate_pin, verify_pin, PinCheckError, Purchase, PurchaseError,
    PurchaseStatus, StartOutcome, Video, VideoSource,
};

/// How long a stream URL stays valid: long enough to watch and seek through a
/// video; the page fetches a fresh one from `/video/info` when it reloads.
const STREAM_URL_TTL_MS: u64 = 60 * 60 * 1000;
/// The most bytes one response carries; a player asks for the rest by range.
const MAX_CHUNK: u64 = 8 << 20;

/// The one mapping of purchase and PIN errors to answers (top-ups use it too).
pub(super) fn pin_error(e: PinCheckError) -> ApiError {
    match e {
        PinCheckError::NoPin => {
            ApiError::bad_request("No purchase PIN is set yet. Set a PIN first.")
        }
        PinCheckError::Invalid => ApiError::bad_request("Field `pin` must be 4 to 8 digits."),
        PinCheckError::Wrong { .. } => ApiError::forbidden("Incorrect PIN."),
        PinCheckError::Locked { retry_after_secs } => ApiError {
            message: format!(
                "Too many incorrect PINs: purchases are locked. Try again in {} minute(s).",
                retry_after_secs.div_ceil(60)
            ),
            ..ApiError::rate_limited(retry_after_secs)
        },
    }
}

fn purchase_error(e: PurchaseError) -> ApiError {
    match e {
        PurchaseError::InsufficientBalance => {
            ApiError::new(StatusCode::PAYMENT_REQUIRED, "Insufficient balance.")
        }
    }
}

/// The video a request names (`video_id`), or the featured one.
fn video<'a>(http: &'a Http, id: Option<&str>) -> Result<&'a Video, ApiError> {
    match id {
        None | Some("") => Ok(http.app.catalog.featured()),
        Some(id) => http
            .app
            .catalog
            .get(id)
            .ok_or_else(|| ApiError::not_found("No video with that video_id.")),
    }
}

fn stream_url(http: &Http, p: &Purchase) -> String {
    let expires = http.app.now() + STREAM_URL_TTL_MS;
    let token = http.app.stream_signer.sign(p.account, &p.video_id, expires);
    format!("/video/stream/{}?token={}", p.video_id, token)
}

/// `{"status", "purchase_id", "stream_url"?}` of a purchase.
fn purchase_json(http: &Http, p: &Purchase) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert("status".into(), json!(p.status.as_str()));
    m.insert("purchase_id".into(), json!(p.purchase_id));
    m.insert("video_id".into(), json!(p.video_id));
    if p.status == PurchaseStatus::Purchased {
        m.insert("stream_url".into(), json!(stream_url(http, p)));
    }
    m
}

/// `GET /video/info[?video_id=]`: a credential is optional; with one the status is the caller's.
pub fn info(http: &Http, ctx: &mut Ctx) -> Reply {
    let v = video(http, ctx.query("video_id").as_deref())?;
    let caller = match credential(&ctx.headers) {
        Credential::None => None,
        _ => Some(http.authenticate(ctx, Need::Any)?),
    };
    let latest = caller.and_then(|c| http.app.state().purchases.latest(c.account, &v.id));
    let mut body = json!({
        "video_id": v.id,
        "title": v.title,
        "price": v.price,
        "currency": v.currency,
        "status": "not_purchased",
        "purchased": false,
    });
    if let (Some(p), Some(obj)) = (latest, body.as_object_mut()) {
        obj.extend(purchase_json(http, &p));
        obj.insert(
            "purchased".into(),
            json!(p.status == PurchaseStatus::Purchased),
        );
    }
    if let (Some(c), Some(obj)) = (caller, body.as_object_mut()) {
        obj.insert(
            "balance".into(),
            json!(http.app.state().accounts.balance(c.account).unwrap_or(0)),
        );
        obj.insert(
            "has_pin".into(),
            json!(http.app.state().purchases.has_pin(c.account)),
        );
    }
    Ok(json(StatusCode::OK, &body))
}

#[derive(Deserialize)]
pub(super) struct SetPin {
    pin: String,
}

/// `PUT /api/user/pin` (session).
pub async fn set_pin(http: &Http, ctx: &mut Ctx) -> Reply {
    let caller = http.authenticate(ctx, Need::Session)?;
    let body: SetPin = ctx.json().await?;
    // A lockout would mean little if the one locked out could set a new PIN.
    http.app
        .state()
        .purchases
        .check_lock(caller.account, http.app.now())
        .map_err(pin_error)?;
    validate_pin(&body.pin).map_err(|_| pin_error(PinCheckError::Invalid))?;
    let p = body.pin;
    let hash = hashing(http, move || hash_pin(&p))
        .await?
        .map_err(|_| pin_error(PinCheckError::Invalid))?;
    let app = &http.app;
    app.write(|st, rec| {
        st.purchases.set_pin(caller.account, hash, &mut |e| {
            rec.record(EventRef::Purchase(e))
        })
    })
    .await?;
    message(StatusCode::OK, "PIN set.")
}

#[derive(Deserialize)]
pub(super) struct Buy {
    #[serde(default)]
    video_id: Option<String>,
    #[serde(default)]
    pin: Option<String>,
}

/// `POST /video/purchase`.
pub async fn purchase(http: &Http, ctx: &mut Ctx) -> Reply {
    let caller = http.authenticate(ctx, Need::Any)?;
    let body: Buy = ctx.json().await?;
    let fresh = match idem::begin(http, ctx, caller.account).await? {
        Begun::Replay(first) => return Ok(first),
        Begun::Fresh(f) => Some(f),
        Begun::Plain => None,
    };
    let v = video(http, body.video_id.as_deref())?.clone();
    let app = &http.app;
    if let Some(p) = app.state().purchases.latest(caller.account, &v.id) {
        if p.status == PurchaseStatus::Purchased {
            return Ok(json(StatusCode::OK, &purchase_json(http, &p)));
        }
    }
    let now = confirm_pin(http, caller.account, body.pin).await?;
    let answer = |o: &StartOutcome| match o {
        StartOutcome::AlreadyPurchased(p) => (StatusCode::OK, purchase_json(http, p)),
        StartOutcome::Started(p) | StartOutcome::AlreadyWaiting(p) => {
            (StatusCode::ACCEPTED, purchase_json(http, p))
        }
    };
    let started = app
        .write(|st, rec| -> Result<StartOutcome, ApiError> {
            // With an Idempotency-Key the purchase and its kept answer are
            // one record (the purchase is new: nobody else reaches it first).
            if fresh.is_some() {
                rec.begin_batch();
            }
            let mut emit = |e: &_| rec.record(EventRef::Purchase(e));
            let outcome = st
                .purchases
                .clear_pin_failures(caller.account, now, &mut emit)
                .map_err(pin_error)
                .and_then(|()| {
                    let balance = st.accounts.balance(caller.account).unwrap_or(0);
                    st.purchases
                        .start(caller.account, &v, balance, now, &mut emit)
                        .map_err(purchase_error)
                });
            if let Some(f) = &fresh {
                let kept = outcome.as_ref().ok().map(|o| {
                    let (status, body) = answer(o);
                    let bytes = serde_json::to_vec(&body).expect("a JSON value encodes");
                    f.keep(st, &app.master_key, status, &bytes, now)
                });
                rec.end_batch(kept);
            }
            outcome
        })
        .await??;
    if !matches!(started, StartOutcome::AlreadyPurchased(_)) {
        app.purchase_started();
    }
    let (status, body) = answer(&started);
    Ok(json(status, &body))
}

/// `GET /video/purchase/{purchase_id}`: no credential; the id is unguessable.
pub fn status(http: &Http, raw: &str) -> Reply {
    let p = http
        .app
        .state()
        .purchases
        .get(&param(raw))
        .ok_or_else(|| ApiError::not_found("No purchase with that id."))?;
    Ok(json(StatusCode::OK, &purchase_json(http, &p)))
}

/// `GET /video/stream/{video_id}?token=`: the bytes, for the account that bought the video.
pub async fn stream(http: &Http, ctx: &mut Ctx, raw: &str) -> Reply {
    let id = param(raw);
    let v = http
        .app
        .catalog
        .get(&id)
        .ok_or_else(|| ApiError::not_found("No video with that id."))?
        .clone();
    let denied = || {
        ApiError::forbidden("This stream link is not valid: buy the video, then use the stream_url that /video/info gives.")
    };
    let token = ctx.query("token").ok_or_else(denied)?;
    let account = http
        .app
        .stream_signer
        .verify(&token, &v.id, http.app.now())
        .map_err(|_| denied())?;
    if !http.app.state().purchases.has_purchased(account, &v.id) {
        return Err(denied());
    }
    let (len, reader): (u64, Source) = match v.source() {
        VideoSource::Static(bytes) => (bytes.len() as u64, Source::Static(bytes)),
        VideoSource::File(path) => {
            let meta = tokio::fs::metadata(&path).await.map_err(|e| {
                tracing::error!(path = %path.display(), error = %e, "cannot read a catalog video");
                ApiError::not_found("The video file is missing on the server.")
            })?;
            (meta.len(), Source::File(path))
        }
    };
    let range = match ctx.headers.get(RANGE).and_then(|h| h.to_str().ok()) {
        None => None,
        Some(h) => match parse_range(h, len) {
            Ok(r) => r,
            Err(_) => {
                let mut e = ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "The requested range is outside the video.",
                )
                .into_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                    e.headers_mut().insert(CONTENT_RANGE, v);
                }
                return Ok(e);
            }
        },
    };
    let (first, last, status) = match range {
        Some((a, b)) => (a, b.min(a + MAX_CHUNK - 1), StatusCode::PARTIAL_CONTENT),
        None if len > MAX_CHUNK => (0, MAX_CHUNK - 1, StatusCode::PARTIAL_CONTENT),
        None => (0, len.saturating_sub(1), StatusCode::OK),
    };
    let body = if len == 0 {
        Bytes::new()
    } else {
        reader.read(first, last).await?
    };
    let mut resp = bytes_response(status, v.content_type(), body);
    let h = resp.headers_mut();
    h.insert(ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    if status == StatusCode::PARTIAL_CONTENT {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {first}-{last}/{len}")) {
            h.insert(CONTENT_RANGE, v);
        }
    }
    Ok(resp)
}

enum Source {
    Static(&'static [u8]),
    File(std::path::PathBuf),
}

impl Source {
    /// Bytes `first..=last`.
    async fn read(&self, first: u64, last: u64) -> Result<Bytes, ApiError> {
        match self {
            Source::Static(b) => Ok(Bytes::from_static(&b[first as usize..=last as usize])),
            Source::File(path) => {
                use tokio::io::{AsyncReadExt, AsyncSeekExt};
                let fail = |e: std::io::Error| {
                    tracing::error!(path = %path.display(), error = %e, "cannot read a catalog video");
                    ApiError::internal()
                };
                let mut f = tokio::fs::File::open(path).await.map_err(fail)?;
                f.seek(std::io::SeekFrom::Start(first))
                    .await
                    .map_err(fail)?;
                let mut buf = vec![0; (last - first + 1) as usize];
                f.read_exact(&mut buf).await.map_err(fail)?;
                Ok(Bytes::from(buf))
            }
        }
    }
}

/// The PIN steps every PIN-confirmed change takes (purchases and credit
/// top-ups): a PIN is given and well-formed, the account is not locked out,
/// and the PIN is right; a wrong one is counted toward the one lockout.
/// Answers the time to make the change at.
pub(super) async fn confirm_pin(
    http: &Http,
    account: crate::ids::AccountId,
    pin: Option<String>,
) -> Result<crate::clock::Millis, ApiError> {
    let app = &http.app;
    let pin = pin.ok_or_else(|| ApiError::bad_request("Field `pin` is required."))?;
    validate_pin(&pin).map_err(|_| pin_error(PinCheckError::Invalid))?;
    app.state()
        .purchases
        .check_lock(account, app.now())
        .map_err(pin_error)?;
    let hash = app
        .state()
        .purchases
        .pin_hash(account)
        .ok_or_else(|| pin_error(PinCheckError::NoPin))?;
    let right = hashing(http, move || verify_pin(&pin, &hash)).await?;
    let now = app.now();
    if !right {
        let outcome = app
            .write(|st, rec| {
                st.purchases
                    .record_wrong_pin(account, now, &mut |e| rec.record(EventRef::Purchase(e)))
            })
            .await?;
        return Err(pin_error(
            outcome
                .err()
                .unwrap_or(PinCheckError::Wrong { remaining: 0 }),
        ));
    }
    Ok(now)
}
