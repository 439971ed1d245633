//! Route handlers, one file per part of the contract. Each handler parses,
//! calls [`crate::app::App`], and maps the domain's errors to statuses: the
//! mapping for a domain lives in its file and nowhere else.

mod accounts;
mod events;
#[cfg(test)]
mod fuzz_tests;
mod key_notes;
mod keys;
mod ops;
mod platform;
mod pool;
mod pool_params;
mod purchase;
mod topup;
mod web;

use super::response::{ApiError, Reply};
use super::router::Route;
use super::{Ctx, Http};
use crate::app::WriteError;

impl From<WriteError> for ApiError {
    fn from(e: WriteError) -> Self {
        tracing::error!(error = %e, "a change could not be made durable");
        match e {
            WriteError::Unavailable(_) => ApiError::unavailable(),
            WriteError::Undone => ApiError::undone(),
        }
    }
}

/// Calls the handler of `route` (whose method was already checked).
pub async fn dispatch(http: &Http, route: &Route<'_>, ctx: &mut Ctx) -> Reply {
    use hyper::Method as M;
    let m = ctx.method.clone();
    match (route, m) {
        (Route::Index, _) => web::asset("/"),
        (Route::Asset(name), _) => web::asset(name),
        (Route::OpenApi, _) => ops::openapi(),
        (Route::Healthz, _) => ops::healthz(http),
        (Route::Metrics, _) => ops::metrics(http),
        (Route::Stats, _) => pool::stats(http, ctx, None),
        (Route::PoolStats(p), _) => pool::stats(http, ctx, Some(p)),
        (Route::Pools, _) => pool::list(http, ctx),
        (Route::Pool(p), _) => pool::drop_pool(http, ctx, p).await,

        (Route::Keys, M::POST) => pool::create(http, ctx, None).await,
        (Route::Keys, _) => pool::checkout(http, ctx, None).await,
        (Route::Key(id), M::GET) => pool::get(http, ctx, None, id),
        (Route::Key(id), M::PUT) => pool::release(http, ctx, None, id).await,
        (Route::Key(id), _) => pool::delete(http, ctx, None, id).await,
        (Route::Keepalive(id), _) => pool::keepalive(http, ctx, None, id).await,
        (Route::Lease(id), _) => pool::extend(http, ctx, None, id).await,
        (Route::PoolKeys(p), M::POST) => pool::create(http, ctx, Some(p)).await,
        (Route::PoolKeys(p), _) => pool::checkout(http, ctx, Some(p)).await,
        (Route::PoolKey(p, id), M::GET) => pool::get(http, ctx, Some(p), id),
        (Route::PoolKey(p, id), M::PUT) => pool::release(http, ctx, Some(p), id).await,
        (Route::PoolKey(p, id), _) => pool::delete(http, ctx, Some(p), id).await,
        (Route::PoolKeepalive(p, id), _) => pool::keepalive(http, ctx, Some(p), id).await,
        (Route::PoolLease(p, id), _) => pool::extend(http, ctx, Some(p), id).await,

        (Route::Register, _) => accounts::register(http, ctx).await,
        (Route::Login, _) => accounts::login(http, ctx).await,
        (Route::Logout, _) => accounts::logout(http, ctx).await,

        (Route::ApiKeyCreate, _) => keys::seed000_create(http, ctx).await,
        (Route::ApiKeyDelete, _) => keys::seed000_delete(http, ctx).await,
        (Route::GenerateKey, _) => keys::generate(http, ctx).await,
        (Route::ListKeys, _) => keys::list(http, ctx),
        (Route::RevokeKey, _) => keys::revoke(http, ctx).await,
        (Route::UserKey, _) => keys::seed003_create(http, ctx).await,
        (Route::UserKeyOf(who), M::GET) => keys::seed003_status(http, ctx, who, "keyPreference"),
        (Route::UserKeyOf(who), _) => keys::seed003_revoke(http, ctx, who).await,
        (Route::UserUsageOf(who), _) => keys::seed003_status(http, ctx, who, "usage"),

        (Route::KeyDisable(id), _) => platform::set_disabled(http, ctx, id, true).await,
        (Route::KeyEnable(id), _) => platform::set_disabled(http, ctx, id, false).await,
        (Route::KeyCredits(id), _) => platform::set_credits(http, ctx, id).await,
        (Route::KeyRotate(id), _) => platform::rotate(http, ctx, id).await,
        (Route::KeysVerify, _) => platform::verify(http, ctx).await,
        (Route::KeyAnalytics(id), _) => platform::analytics(http, ctx, id),

        (Route::UserPin, _) => purchase::set_pin(http, ctx).await,
        (Route::VideoInfo, _) => purchase::info(http, ctx),
        (Route::VideoPurchase, _) => purchase::purchase(http, ctx).await,
        (Route::PurchaseStatus(id), _) => purchase::status(http, id),
        (Route::VideoStream(id), _) => purchase::stream(http, ctx, id).await,
        (Route::UserCredits, M::POST) => topup::create(http, ctx).await,
        (Route::UserCredits, _) => topup::list(http, ctx),
        (Route::UserEvents, _) => events::list(http, ctx),
    }
}

/// A path parameter, percent-decoded.
pub fn param(raw: &str) -> String {
    super::request::percent_decode(raw)
}

/// Parses `body` as the JSON body of the main routes (registration, login,
/// pool and key creation, verification, purchase); for the fuzz targets.
pub(super) fn fuzz_bodies(headers: &hyper::HeaderMap, body: &[u8]) {
    use super::request::parse_json;
    let _ = parse_json::<accounts::Register>(headers, body);
    let _ = parse_json::<accounts::Login>(headers, body);
    let _ = parse_json::<pool_params::CreateBody>(headers, body);
    let _ = parse_json::<keys::Generate>(headers, body);
    let _ = parse_json::<platform::Verify>(headers, body);
    let _ = parse_json::<purchase::SetPin>(headers, body);
    let _ = parse_json::<purchase::Buy>(headers, body);
    let _ = parse_json::<crate::apikeys::CreditSpec>(headers, body);
}
