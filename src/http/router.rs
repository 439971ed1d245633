//! Which route a path names, and which methods it allows.
//!
//! Resolution is by path alone, so that a known path with the wrong method is a
//! 405 with `Allow`, and an unknown path is a 404, whatever the method.

use hyper::Method;

use crate::apikeys::Scope;

/// Every route of the contract. Path parameters are carried raw (not decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route<'a> {
    Index,
    Asset(&'static str),
    OpenApi,
    Healthz,
    Metrics,
    Stats,
    Keys,
    Key(&'a str),
    Keepalive(&'a str),
    /// `/keys/{key_id}/lease`.
    Lease(&'a str),
    /// `/pools`.
    Pools,
    /// `/pools/{pool}`.
    Pool(&'a str),
    /// `/pools/{pool}/keys`.
    PoolKeys(&'a str),
    /// `/pools/{pool}/keys/{key_id}`.
    PoolKey(&'a str, &'a str),
    /// `/pools/{pool}/keys/{key_id}/lease`.
    PoolLease(&'a str, &'a str),
    /// `/pools/{pool}/keepalive/{key_id}`.
    PoolKeepalive(&'a str, &'a str),
    /// `/pools/{pool}/stats`.
    PoolStats(&'a str),
    Register,
    Login,
    Logout,
    ApiKeyCreate,
    ApiKeyDelete,
    GenerateKey,
    ListKeys,
    RevokeKey,
    UserKey,
    UserKeyOf(&'a str),
    UserUsageOf(&'a str),
    UserPin,
    VideoInfo,
    VideoPurchase,
    PurchaseStatus(&'a str),
    VideoStream(&'a str),
    /// `/api/keys/{key_id}/disable`.
    KeyDisable(&'a str),
    /// `/api/keys/{key_id}/enable`.
    KeyEnable(&'a str),
    /// `/api/keys/{key_id}/credits`.
    KeyCredits(&'a str),
    /// `/api/keys/{key_id}/rotate`.
    KeyRotate(&'a str),
    /// `/api/keys/verify`.
    KeysVerify,
    /// `/api/keys/{key_id}/analytics`.
    KeyAnalytics(&'a str),
    /// `/api/user/credits`: credit top-ups.
    UserCredits,
    /// `/api/user/events`: the account's security log.
    UserEvents,
}

impl Route<'_> {
    /// A label for metrics and logs: the route's pattern, never its parameters.
    pub fn label(&self) -> &'static str {
        match self {
            Route::Index => "/",
            Route::Asset(name) => name,
            Route::OpenApi => "/openapi.json",
            Route::Healthz => "/healthz",
            Route::Metrics => "/metrics",
            Route::Stats => "/stats",
            Route::Keys => "/keys",
            Route::Key(_) => "/keys/{key_id}",
            Route::Keepalive(_) => "/keepalive/{key_id}",
            Route::Lease(_) => "/keys/{key_id}/lease",
            Route::Pools => "/pools",
            Route::Pool(_) => "/pools/{pool}",
            Route::PoolKeys(_) => "/pools/{pool}/keys",
            Route::PoolKey(..) => "/pools/{pool}/keys/{key_id}",
            Route::PoolLease(..) => "/pools/{pool}/keys/{key_id}/lease",
            Route::PoolKeepalive(..) => "/pools/{pool}/keepalive/{key_id}",
            Route::PoolStats(_) => "/pools/{pool}/stats",
            Route::Register => "/register",
            Route::Login => "/login",
            Route::Logout => "/logout",
            Route::ApiKeyCreate => "/api/key/create",
            Route::ApiKeyDelete => "/api/key/delete",
            Route::GenerateKey => "/generate-key",
            Route::ListKeys => "/list-keys",
            Route::RevokeKey => "/revoke-key",
            Route::UserKey => "/api/user/key",
            Route::UserKeyOf(_) => "/api/user/key/{email}",
            Route::UserUsageOf(_) => "/api/user/usage/{email}",
            Route::UserPin => "/api/user/pin",
            Route::VideoInfo => "/video/info",
            Route::VideoPurchase => "/video/purchase",
            Route::PurchaseStatus(_) => "/video/purchase/{purchase_id}",
            Route::VideoStream(_) => "/video/stream/{video_id}",
            Route::KeyDisable(_) => "/api/keys/{key_id}/disable",
            Route::KeyEnable(_) => "/api/keys/{key_id}/enable",
            Route::KeyCredits(_) => "/api/keys/{key_id}/credits",
            Route::KeyRotate(_) => "/api/keys/{key_id}/rotate",
            Route::KeysVerify => "/api/keys/verify",
            Route::KeyAnalytics(_) => "/api/keys/{key_id}/analytics",
            Route::UserCredits => "/api/user/credits",
            Route::UserEvents => "/api/user/events",
        }
    }

    /// The methods this route answers (besides OPTIONS, which every route answers
    /// for CORS preflights), as the `Allow` header lists them.
    pub fn allow(&self) -> &'static str {
        match self {
            Route::Keys | Route::PoolKeys(_) => "GET, POST, OPTIONS",
            Route::Key(_) | Route::PoolKey(..) => "GET, PUT, DELETE, OPTIONS",
            Route::Keepalive(_)
            | Route::UserPin
            | Route::Lease(_)
            | Route::PoolLease(..)
            | Route::PoolKeepalive(..)
            | Route::KeyCredits(_) => "PUT, OPTIONS",
            Route::Pool(_) => "DELETE, OPTIONS",
            Route::Register
            | Route::Login
            | Route::Logout
            | Route::ApiKeyCreate
            | Route::GenerateKey
            | Route::RevokeKey
            | Route::UserKey
            | Route::VideoPurchase
            | Route::KeyDisable(_)
            | Route::KeyEnable(_)
            | Route::KeyRotate(_)
            | Route::KeysVerify => "POST, OPTIONS",
            Route::ApiKeyDelete => "DELETE, OPTIONS",
            Route::UserKeyOf(_) => "GET, DELETE, OPTIONS",
            Route::UserCredits => "GET, POST, OPTIONS",
            Route::UserEvents => "GET, HEAD, OPTIONS",
            _ => "GET, HEAD, OPTIONS",
        }
    }

    /// Whether this route answers `method`.
    pub fn allows(&self, method: &Method) -> bool {
        if method == Method::OPTIONS {
            return true;
        }
        let m = method.as_str();
        self.allow().split(", ").any(|a| a == m)
    }

    /// The scope an API key needs for `method` on this route: the one table
    /// of route → scope (sessions have every scope). `None`: no scope is
    /// needed (public routes, or ones that take no API key).
    pub fn scope(&self, method: &Method) -> Option<Scope> {
        let read = method == Method::GET || method == Method::HEAD;
        match self {
            Route::Key(_) | Route::PoolKey(..) if read => Some(Scope::PoolRead),
            Route::Stats | Route::PoolStats(_) | Route::Pools => Some(Scope::PoolRead),
            // `GET /keys` is a checkout: it changes the pool.
            Route::Keys
            | Route::PoolKeys(_)
            | Route::Key(_)
            | Route::PoolKey(..)
            | Route::Keepalive(_)
            | Route::PoolKeepalive(..)
            | Route::Lease(_)
            | Route::PoolLease(..)
            | Route::Pool(_) => Some(Scope::PoolWrite),
            Route::ListKeys | Route::UserUsageOf(_) => Some(Scope::KeysRead),
            Route::UserKeyOf(_) if read => Some(Scope::KeysRead),
            Route::UserKeyOf(_)
            | Route::ApiKeyCreate
            | Route::ApiKeyDelete
            | Route::GenerateKey
            | Route::RevokeKey
            | Route::UserKey
            | Route::KeyDisable(_)
            | Route::KeyEnable(_)
            | Route::KeyCredits(_)
            | Route::KeyRotate(_) => Some(Scope::KeysWrite),
            Route::UserPin | Route::VideoPurchase => Some(Scope::Purchase),
            Route::KeysVerify => Some(Scope::KeysVerify),
            Route::KeyAnalytics(_) => Some(Scope::KeysRead),
            Route::UserCredits => Some(Scope::Purchase),
            Route::UserEvents => Some(Scope::KeysRead),
            // Public, or a credential that is not an API key (a session, a
            // stream token), or optional (`/video/info` only shows whether
            // the caller bought the video).
            Route::Index
            | Route::Asset(_)
            | Route::OpenApi
            | Route::Healthz
            | Route::Metrics
            | Route::Register
            | Route::Login
            | Route::Logout
            | Route::VideoInfo
            | Route::PurchaseStatus(_)
            | Route::VideoStream(_) => None,
        }
    }

    /// Seed 003's routes answer errors with `"success": false`.
    pub fn is_seed003(&self) -> bool {
        matches!(
            self,
            Route::UserKey | Route::UserKeyOf(_) | Route::UserUsageOf(_)
        )
    }
}

/// One of every route, with its path parameters named as in its template.
const EVERY_ROUTE: &[Route<'static>] = &[
    Route::Index,
    Route::Asset("/app.js"),
    Route::Asset("/style.css"),
    Route::OpenApi,
    Route::Healthz,
    Route::Metrics,
    Route::Stats,
    Route::Keys,
    Route::Key("{key_id}"),
    Route::Keepalive("{key_id}"),
    Route::Lease("{key_id}"),
    Route::Pools,
    Route::Pool("{pool}"),
    Route::PoolKeys("{pool}"),
    Route::PoolKey("{pool}", "{key_id}"),
    Route::PoolLease("{pool}", "{key_id}"),
    Route::PoolKeepalive("{pool}", "{key_id}"),
    Route::PoolStats("{pool}"),
    Route::Register,
    Route::Login,
    Route::Logout,
    Route::ApiKeyCreate,
    Route::ApiKeyDelete,
    Route::GenerateKey,
    Route::ListKeys,
    Route::RevokeKey,
    Route::UserKey,
    Route::UserKeyOf("{email}"),
    Route::UserUsageOf("{email}"),
    Route::UserPin,
    Route::VideoInfo,
    Route::VideoPurchase,
    Route::PurchaseStatus("{purchase_id}"),
    Route::VideoStream("{video_id}"),
    Route::KeyDisable("{key_id}"),
    Route::KeyEnable("{key_id}"),
    Route::KeyCredits("{key_id}"),
    Route::KeyRotate("{key_id}"),
    Route::KeysVerify,
    Route::KeyAnalytics("{key_id}"),
    Route::UserCredits,
    Route::UserEvents,
];

/// A new variant of [`Route`] stops compiling here until it is added to
/// [`EVERY_ROUTE`] (and so to [`routes`], which the OpenAPI test compares with
/// `docs/openapi.json`).
#[allow(dead_code)]
fn every_variant_is_in_every_route(r: &Route<'_>) {
    match r {
        Route::Index
        | Route::Asset(_)
        | Route::OpenApi
        | Route::Healthz
        | Route::Metrics
        | Route::Stats
        | Route::Keys
        | Route::Key(_)
        | Route::Keepalive(_)
        | Route::Lease(_)
        | Route::Pools
        | Route::Pool(_)
        | Route::PoolKeys(_)
        | Route::PoolKey(..)
        | Route::PoolLease(..)
        | Route::PoolKeepalive(..)
        | Route::PoolStats(_)
        | Route::Register
        | Route::Login
        | Route::Logout
        | Route::ApiKeyCreate
        | Route::ApiKeyDelete
        | Route::GenerateKey
        | Route::ListKeys
        | Route::RevokeKey
        | Route::UserKey
        | Route::UserKeyOf(_)
        | Route::UserUsageOf(_)
        | Route::UserPin
        | Route::VideoInfo
        | Route::VideoPurchase
        | Route::PurchaseStatus(_)
        | Route::VideoStream(_)
        | Route::KeyDisable(_)
        | Route::KeyEnable(_)
        | Route::KeyCredits(_)
        | Route::KeyRotate(_)
        | Route::KeysVerify
        | Route::KeyAnalytics(_) => {}
        Route::UserCredits => {}
        Route::UserEvents => {}
    }
}

/// The route table: every `(method, path template)` the router answers, as
/// OpenAPI names them (`/keys/{key_id}`). HEAD (answered as GET) and OPTIONS
/// (every route's CORS preflight) are left out, as the document leaves them out.
pub fn routes() -> Vec<(&'static str, &'static str)> {
    EVERY_ROUTE
        .iter()
        .flat_map(|r| {
            r.allow()
                .split(", ")
                .filter(|m| !matches!(*m, "HEAD" | "OPTIONS"))
                .map(|m| (m, r.label()))
        })
        .collect()
}

/// The route a path names, or `None` for an unknown path.
pub fn resolve(path: &str) -> Option<Route<'_>> {
    let trimmed = path.strip_prefix('/')?;
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let mut parts = trimmed.split('/');
    let segs: [Option<&str>; 5] = std::array::from_fn(|_| parts.next());
    if parts.next().is_some() {
        return None;
    }
    let nonempty = |s: &str| !s.is_empty();
    let route = match segs {
        [Some(""), None, ..] => Route::Index,
        [Some("index.html"), None, ..] => Route::Index,
        [Some("app.js"), None, ..] => Route::Asset("/app.js"),
        [Some("style.css"), None, ..] => Route::Asset("/style.css"),
        [Some("openapi.json"), None, ..] => Route::OpenApi,
        [Some("healthz"), None, ..] => Route::Healthz,
        [Some("metrics"), None, ..] => Route::Metrics,
        [Some("stats"), None, ..] => Route::Stats,
        [Some("keys"), None, ..] => Route::Keys,
        [Some("keys"), Some(id), None, ..] if nonempty(id) => Route::Key(id),
        [Some("keepalive"), Some(id), None, ..] if nonempty(id) => Route::Keepalive(id),
        [Some("keys"), Some(id), Some("lease"), None, ..] if nonempty(id) => Route::Lease(id),
        [Some("pools"), None, ..] => Route::Pools,
        [Some("pools"), Some(p), None, ..] if nonempty(p) => Route::Pool(p),
        [Some("pools"), Some(p), Some("keys"), None, ..] if nonempty(p) => Route::PoolKeys(p),
        [Some("pools"), Some(p), Some("stats"), None, ..] if nonempty(p) => Route::PoolStats(p),
        [Some("pools"), Some(p), Some("keys"), Some(id), None] if nonempty(p) && nonempty(id) => {
            Route::PoolKey(p, id)
        }
        [Some("pools"), Some(p), Some("keys"), Some(id), Some("lease")]
            if nonempty(p) && nonempty(id) =>
        {
            Route::PoolLease(p, id)
        }
        [Some("pools"), Some(p), Some("keepalive"), Some(id), None]
            if nonempty(p) && nonempty(id) =>
        {
            Route::PoolKeepalive(p, id)
        }
        [Some("register"), None, ..] => Route::Register,
        [Some("login"), None, ..] => Route::Login,
        [Some("logout"), None, ..] => Route::Logout,
        [Some("api"), Some("key"), Some("create"), None, ..] => Route::ApiKeyCreate,
        [Some("api"), Some("key"), Some("delete"), None, ..] => Route::ApiKeyDelete,
        [Some("generate-key"), None, ..] => Route::GenerateKey,
        [Some("list-keys"), None, ..] => Route::ListKeys,
        [Some("revoke-key"), None, ..] => Route::RevokeKey,
        [Some("api"), Some("user"), Some("key"), None, ..] => Route::UserKey,
        [Some("api"), Some("user"), Some("key"), Some(e), None] if nonempty(e) => {
            Route::UserKeyOf(e)
        }
        [Some("api"), Some("user"), Some("usage"), Some(e), None] if nonempty(e) => {
            Route::UserUsageOf(e)
        }
        [Some("api"), Some("user"), Some("pin"), None, ..] => Route::UserPin,
        [Some("api"), Some("user"), Some("credits"), None, ..] => Route::UserCredits,
        [Some("api"), Some("user"), Some("events"), None, ..] => Route::UserEvents,
        [Some("api"), Some("keys"), Some("verify"), None, ..] => Route::KeysVerify,
        [Some("api"), Some("keys"), Some(id), Some("disable"), None] if nonempty(id) => {
            Route::KeyDisable(id)
        }
        [Some("api"), Some("keys"), Some(id), Some("enable"), None] if nonempty(id) => {
            Route::KeyEnable(id)
        }
        [Some("api"), Some("keys"), Some(id), Some("credits"), None] if nonempty(id) => {
            Route::KeyCredits(id)
        }
        [Some("api"), Some("keys"), Some(id), Some("rotate"), None] if nonempty(id) => {
            Route::KeyRotate(id)
        }
        [Some("api"), Some("keys"), Some(id), Some("analytics"), None] if nonempty(id) => {
            Route::KeyAnalytics(id)
        }
        [Some("video"), Some("info"), None, ..] => Route::VideoInfo,
        [Some("video"), Some("purchase"), None, ..] => Route::VideoPurchase,
        [Some("video"), Some("purchase"), Some(id), None, ..] if nonempty(id) => {
            Route::PurchaseStatus(id)
        }
        [Some("video"), Some("stream"), Some(id), None, ..] if nonempty(id) => {
            Route::VideoStream(id)
        }
        _ => return None,
    };
    Some(route)
}

#[cfg(test)]
#[path = "router_tests.rs"]
mod tests;
