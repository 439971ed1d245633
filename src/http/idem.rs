//! `Idempotency-Key` over HTTP: checks the header, fingerprints the request,
//! replays a kept answer, and builds the record that keeps a new one (see
//! `crate::idempotency` for the rules).
//!
//! A handler calls [`begin`] after authenticating and before changing
//! anything; on [`Begun::Fresh`] it makes its change and logs
//! [`Fresh::keep`]'s event in the same record as the change. The guard
//! clears the in-flight mark when it is dropped, whatever happened.

use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};

use super::response::{bytes_response, ApiError, Body};
use super::{Ctx, Http};
use crate::app::State;
use crate::clock::Millis;
use crate::event::Event;
use crate::idempotency::{IdemEvent, Kept, Lookup, TTL};
use crate::ids::AccountId;
use crate::seal::MasterKey;

/// What a request with (or without) an `Idempotency-Key` goes on with.
pub enum Begun<'a> {
    /// No header: an ordinary request.
    Plain,
    /// The first answer, to be sent again as it is.
    Replay(Response<Body>),
    /// A new request under this key.
    Fresh(Fresh<'a>),
}

/// A request served under a new `Idempotency-Key`.
pub struct Fresh<'a> {
    http: &'a Http,
    account: AccountId,
    key: String,
    fingerprint: [u8; 32],
}

/// The AAD a kept answer is sealed under: whose it is and under which key.
fn aad(account: AccountId, key: &str) -> Vec<u8> {
    let mut v = account.0.to_be_bytes().to_vec();
    v.extend_from_slice(key.as_bytes());
    v
}

/// The `Idempotency-Key` header's value, if it is 1–255 visible ASCII characters.
pub fn idempotency_key(raw: &hyper::header::HeaderValue) -> Option<&str> {
    raw.to_str()
        .ok()
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
}

/// Checks the request's `Idempotency-Key` (1–255 visible ASCII characters)
/// and decides whether it is new, a retry, or a misuse (409).
pub async fn begin<'a>(
    http: &'a Http,
    ctx: &mut Ctx,
    account: AccountId,
) -> Result<Begun<'a>, ApiError> {
    let Some(raw) = ctx.headers.get("idempotency-key") else {
        return Ok(Begun::Plain);
    };
    let key = idempotency_key(raw)
        .ok_or_else(|| {
            ApiError::bad_request(
                "Invalid header `Idempotency-Key`: use 1-255 visible ASCII characters.",
            )
        })?
        .to_owned();
    let body = ctx.bytes().await?;
    let app = &http.app;
    let fingerprint = app.master_key.fingerprint(&[
        ctx.method.as_str().as_bytes(),
        ctx.path.as_bytes(),
        ctx.query.as_deref().unwrap_or("").as_bytes(),
        &body,
    ]);
    match app
        .state()
        .idempotency
        .begin(account, &key, &fingerprint, app.now())
    {
        Lookup::Fresh => Ok(Begun::Fresh(Fresh {
            http,
            account,
            key,
            fingerprint,
        })),
        Lookup::Replay { status, body } => {
            let plain = app
                .master_key
                .open(&aad(account, &key), &body)
                .map_err(|e| {
                    tracing::error!(error = %e, "a kept answer does not decrypt");
                    ApiError::internal()
                })?;
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut resp = bytes_response(status, "application/json", plain.into());
            resp.headers_mut()
                .insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(Begun::Replay(resp))
        }
        Lookup::Mismatch => Err(ApiError::conflict(
            "Idempotency-Key was already used for a different request.",
        )),
        Lookup::InFlight => Err(ApiError::conflict(
            "A request with this Idempotency-Key is still being served; retry it shortly.",
        )),
    }
}

impl Fresh<'_> {
    /// The event that keeps `body` as the answer (`status`) to this request,
    /// sealed, for 24 hours from `now`.
    /// It is applied to `state` here; the caller logs it with the change.
    pub fn keep(
        &self,
        state: &State,
        key: &MasterKey,
        status: StatusCode,
        body: &[u8],
        now: Millis,
    ) -> Event {
        let ev = IdemEvent::Stored(Kept {
            account: self.account,
            key: self.key.clone(),
            fingerprint: self.fingerprint,
            status: status.as_u16(),
            body: key.seal(&aad(self.account, &self.key), body),
            expires_at: now.saturating_add(TTL),
        });
        state.idempotency.apply(&ev);
        Event::Idempotency(ev)
    }
}

impl Drop for Fresh<'_> {
    fn drop(&mut self) {
        self.http
            .app
            .state()
            .idempotency
            .finish(self.account, &self.key);
    }
}
