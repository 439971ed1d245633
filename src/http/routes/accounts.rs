//! Accounts and sessions (seeds 000, 001): `/register`, `/login`, `/logout`.
//!
//! Password hashing (argon2id) runs on the blocking pool behind
//! `App::hashing`, so a flood of logins queues there and pool traffic keeps its
//! core. An unknown user is checked against a dummy hash, so it costs the same
//! time and gets the same answer as a wrong password.

use hyper::StatusCode;
use serde::Deserialize;
use serde_json::json;

use super::super::auth::Need;
use super::super::response::{json, message, ApiError, Reply};
use super::super::{Ctx, Http};
use crate::accounts::{
    dummy_hash, hash_password, validate_registration, verify_password, AccountError,
};
use crate::clock::rfc3339;
use crate::event::EventRef;

/// The one mapping of account errors to answers.
pub fn account_error(e: AccountError) -> ApiError {
    match e {
        AccountError::Invalid { .. } => ApiError::bad_request(e.to_string()),
        AccountError::UsernameTaken => ApiError::conflict("Username already exists."),
        AccountError::EmailTaken => ApiError::conflict("Email already registered."),
        AccountError::UnknownAccount => ApiError::not_found("Account not found."),
        AccountError::InsufficientBalance { .. } => {
            ApiError::new(StatusCode::PAYMENT_REQUIRED, "Insufficient balance.")
        }
    }
}

/// Runs CPU-heavy password work on the blocking pool, a bounded number at once.
pub async fn hashing<T: Send + 'static>(
    http: &Http,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    let _permit = http
        .app
        .hashing
        .acquire()
        .await
        .map_err(|_| ApiError::internal())?;
    tokio::task::spawn_blocking(work).await.map_err(|e| {
        tracing::error!(error = %e, "password hashing task failed");
        ApiError::internal()
    })
}

#[derive(Deserialize)]
pub(super) struct Register {
    username: String,
    password: String,
    #[serde(default)]
    email: Option<String>,
}

/// `POST /register`.
pub async fn register(http: &Http, ctx: &mut Ctx) -> Reply {
    http.check_ip(ctx)?;
    let body: Register = ctx.json().await?;
    let app = &http.app;
    validate_registration(
        app.state().accounts.config(),
        &body.username,
        &body.password,
        body.email.as_deref(),
    )
    .map_err(account_error)?;
    // Refuse a taken name before spending a hash on it; `register` checks again.
    if app.state().accounts.find(&body.username).is_some() {
        return Err(ApiError::conflict("Username already exists."));
    }
    let pw = body.password;
    let hash = hashing(http, move || hash_password(&pw))
        .await?
        .map_err(|e| {
            tracing::error!(error = %e, "cannot hash a password");
            ApiError::internal()
        })?;
    let now = app.now();
    app.write(|st, rec| {
        st.accounts
            .register(&body.username, body.email.as_deref(), hash, now, &mut |e| {
                rec.record(EventRef::Account(e))
            })
    })
    .await?
    .map_err(account_error)?;
    message(StatusCode::CREATED, "User registered successfully.")
}

#[derive(Deserialize)]
pub(super) struct Login {
    username: String,
    password: String,
}

/// `POST /login`.
pub async fn login(http: &Http, ctx: &mut Ctx) -> Reply {
    http.check_ip(ctx)?;
    let body: Login = ctx.json().await?;
    let app = &http.app;
    let found = app.state().accounts.login_lookup(&body.username);
    let phc = found
        .as_ref()
        .map_or_else(|| dummy_hash().to_owned(), |(_, h)| h.clone());
    let pw = body.password;
    let ok = hashing(http, move || verify_password(&pw, &phc)).await?;
    let account = match (ok, found) {
        (true, Some((id, _))) => id,
        _ => return Err(ApiError::unauthorized("Invalid username or password.")),
    };
    let now = app.now();
    let s = app
        .write(|st, rec| {
            st.accounts
                .create_session(account, now, &mut |e| rec.record(EventRef::Account(e)))
        })
        .await?;
    Ok(json(
        StatusCode::OK,
        &json!({"token": s.token, "expires_at": rfc3339(s.expires_at), "remaining_uses": s.remaining_uses}),
    ))
}

/// `POST /logout`: ends the session whose token is presented.
pub async fn logout(http: &Http, ctx: &mut Ctx) -> Reply {
    http.authenticate(ctx, Need::Session)?;
    let token = match super::super::request::credential(&ctx.headers) {
        super::super::request::Credential::Session(t) => t.to_owned(),
        _ => return Err(ApiError::unauthorized("Missing session token.")),
    };
    let app = &http.app;
    app.write(|st, rec| {
        st.accounts
            .end_session(&token, &mut |e| rec.record(EventRef::Account(e)))
    })
    .await?;
    message(StatusCode::OK, "Logged out.")
}
