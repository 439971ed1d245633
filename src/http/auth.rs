//! Who is calling: turns the request's credential into a [`Caller`], counts the
//! session use or the key use, applies the key's IP allowlist, its scope for
//! the route (`Ctx::scope`, from `Route::scope`: one bit test) and the per-key
//! rate limit, and charges the per-IP limit for missing or wrong credentials.

use hyper::StatusCode;
use uuid::Uuid;

use super::request::{credential, Credential};
use super::response::ApiError;
use super::{Ctx, Http};
use crate::accounts::{is_session_token, SessionError};
use crate::apikeys::{KeyAuthError, Scope, ScopeSet};
use crate::ids::AccountId;

/// How the caller proved who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// No credential, on the open pool.
    Anonymous,
    /// A session token from `/login`.
    Session,
    /// An API key.
    ApiKey(Uuid),
}

/// The authenticated caller of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// Whose data the request reaches.
    pub account: AccountId,
    /// The credential used.
    pub via: Via,
    /// What the credential may do: an API key's scopes; every scope for a
    /// session or the open pool.
    pub scopes: ScopeSet,
}

/// Which credentials a route takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// A session token or an API key.
    Any,
    /// A session token (seed 000's key management, the purchase PIN).
    Session,
    /// Like `Any`, but with `--open-pool` a request without one is the anonymous pool's.
    Pool,
}

impl Http {
    /// Authenticates the request, or answers 401/429; an API key without the
    /// route's scope or used from an address it does not allow gets 403.
    pub fn authenticate(&self, ctx: &Ctx, need: Need) -> Result<Caller, ApiError> {
        let now = self.app.now();
        let refused = |e: ApiError| self.charge_ip(ctx, e);
        match credential(&ctx.headers) {
            Credential::None if need == Need::Pool && self.app.config.open_pool => Ok(Caller {
                account: AccountId::ANONYMOUS,
                via: Via::Anonymous,
                scopes: ScopeSet::ALL,
            }),
            Credential::None => Err(refused(ApiError::unauthorized(match need {
                Need::Session => "Missing session token: log in and send it as Authorization: Bearer <token>.",
                _ => "Missing credential: send an API key as X-API-Key, or an API key or session token as Authorization: Bearer.",
            }))),
            Credential::Malformed => Err(refused(ApiError::unauthorized(
                "The Authorization header must be \"Bearer <token>\".",
            ))),
            Credential::ApiKey(_) if need == Need::Session => Err(refused(ApiError::unauthorized(
                "This route needs a session token from /login, not an API key.",
            ))),
            Credential::ApiKey(key) => match self.app.state().apikeys.verify(key, ctx.peer.ip(), now)
            {
                Ok(auth) => {
                    ctx.analytics_key.set(Some(auth.key_id));
                    if let Some(s) = ctx.scope {
                        if !auth.scopes.has(s) {
                            return Err(lacks_scope(s));
                        }
                    }
                    if let Some(limit) = auth.rate_limit {
                        self.limits
                            .check_key(auth.key_id, limit)
                            .map_err(ApiError::rate_limited)?;
                    }
                    Ok(Caller {
                        account: auth.owner,
                        via: Via::ApiKey(auth.key_id),
                        scopes: auth.scopes,
                    })
                }
                Err(KeyAuthError::AddressRefused) => {
                    self.note_refused_key(ctx, key);
                    Err(ApiError::forbidden(
                        "This API key may not be used from this address.",
                    ))
                }
                Err(KeyAuthError::NoCredits { retry_after_secs }) => {
                    self.note_refused_key(ctx, key);
                    Err(ApiError {
                    retry_after: retry_after_secs,
                    ..ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        "This API key has no credits left.",
                    )
                })
                }
                Err(e) => Err(refused(ApiError::unauthorized(match e {
                    KeyAuthError::Malformed(_) => {
                        "The API key is malformed or mistyped (its checksum does not match); check it and try again."
                    }
                    KeyAuthError::Unknown => "Invalid API key.",
                    KeyAuthError::Revoked => "This API key has been revoked.",
                    KeyAuthError::Expired => "This API key has expired.",
                    KeyAuthError::Disabled => "This API key is disabled.",
                    // Answered 403 above; the sentence is the same.
                    KeyAuthError::AddressRefused => "This API key may not be used from this address.",
                    KeyAuthError::NoCredits { .. } => "This API key has no credits left.",
                    KeyAuthError::Rotated => "This API key was rotated and its grace period is over; use its replacement.",
                }))),
            },
            Credential::Session(token) => match self.app.state().accounts.use_session(token, now) {
                Ok(s) => Ok(Caller {
                    account: s.account,
                    via: Via::Session,
                    scopes: ScopeSet::ALL,
                }),
                Err(SessionError::Expired) => Err(refused(ApiError::unauthorized(
                    "Session expired. Please log in again.",
                ))),
                // Used-up and expired sessions are purged from memory after a
                // while; a well-formed token we don't know is most likely one
                // of those, so it gets the same sentence.
                Err(SessionError::Unknown) if is_session_token(token) => Err(refused(
                    ApiError::unauthorized("Session expired. Please log in again."),
                )),
                Err(SessionError::Unknown) => Err(refused(ApiError::unauthorized(
                    "Invalid credential: not an API key or a session token from /login.",
                ))),
            },
        }
    }

    /// Counts a refused credential against the client's IP: past the limit the
    /// answer becomes 429 instead of `err`.
    pub fn charge_ip(&self, ctx: &Ctx, err: ApiError) -> ApiError {
        match self.limits.check_ip(ctx.peer.ip()) {
            Ok(()) => err,
            Err(wait) => ApiError::rate_limited(wait),
        }
    }

    /// Counts an anonymous request (`/register`, `/login`) against the client's IP.
    pub fn check_ip(&self, ctx: &Ctx) -> Result<(), ApiError> {
        self.limits
            .check_ip(ctx.peer.ip())
            .map_err(ApiError::rate_limited)
    }
}

impl Http {
    /// Marks a request whose key `verify` refused after recognising it (its
    /// address, its credits) for the key's analytics: one more hash, on a
    /// refused request only.
    fn note_refused_key(&self, ctx: &Ctx, key: &str) {
        ctx.analytics_key
            .set(self.app.state().apikeys.key_id_of(key));
    }
}

/// 403 for an API key without the scope a route needs.
pub fn lacks_scope(s: Scope) -> ApiError {
    ApiError::forbidden(format!("This API key lacks the scope `{}`.", s.name()))
}

/// 403 for a caller reaching for another account's data on seed 003's routes.
pub fn not_yours() -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "That account is not yours.")
}
