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
mod tests {
    use super::*;

    #[test]
    fn resolves_every_route_and_nothing_else() {
        let cases: &[(&str, Option<Route>)] = &[
            ("/", Some(Route::Index)),
            ("/keys", Some(Route::Keys)),
            ("/keys/", Some(Route::Keys)),
            ("/keys/abc", Some(Route::Key("abc"))),
            ("/keys/abc/def", None),
            ("/keepalive/abc", Some(Route::Keepalive("abc"))),
            ("/keepalive", None),
            ("/keys/abc/lease", Some(Route::Lease("abc"))),
            ("/pools", Some(Route::Pools)),
            ("/pools/p", Some(Route::Pool("p"))),
            ("/pools/p/keys", Some(Route::PoolKeys("p"))),
            ("/pools/p/stats", Some(Route::PoolStats("p"))),
            ("/pools/p/keys/k", Some(Route::PoolKey("p", "k"))),
            ("/pools/p/keys/k/lease", Some(Route::PoolLease("p", "k"))),
            ("/pools/p/keepalive/k", Some(Route::PoolKeepalive("p", "k"))),
            ("/pools/p/keys/k/other", None),
            ("/pools//keys", None),
            ("/api/key/create", Some(Route::ApiKeyCreate)),
            ("/api/user/key", Some(Route::UserKey)),
            ("/api/user/key/a@b.c", Some(Route::UserKeyOf("a@b.c"))),
            ("/api/user/usage/bob", Some(Route::UserUsageOf("bob"))),
            ("/video/purchase/p1", Some(Route::PurchaseStatus("p1"))),
            (
                "/video/stream/featured",
                Some(Route::VideoStream("featured")),
            ),
            ("/api/keys/verify", Some(Route::KeysVerify)),
            ("/api/keys/k1/disable", Some(Route::KeyDisable("k1"))),
            ("/api/keys/k1/enable", Some(Route::KeyEnable("k1"))),
            ("/api/keys/k1/credits", Some(Route::KeyCredits("k1"))),
            ("/api/keys/k1/rotate", Some(Route::KeyRotate("k1"))),
            ("/api/keys/k1", None),
            ("/nope", None),
            ("/a/b/c/d/e/f", None),
            ("", None),
        ];
        for (path, want) in cases {
            assert_eq!(&resolve(path), want, "{path}");
        }
    }

    #[test]
    fn the_route_table_is_what_the_router_resolves() {
        for r in EVERY_ROUTE {
            // A template with its parameters filled in resolves to its route.
            let path = r.label().replace(['{', '}'], "");
            let got = resolve(&path).unwrap_or_else(|| panic!("{path} resolves to nothing"));
            assert_eq!(got.label(), r.label(), "{path}");
        }
        let table = routes();
        let unique: std::collections::BTreeSet<_> = table.iter().collect();
        assert_eq!(unique.len(), table.len(), "no route twice");
        assert!(table.contains(&("GET", "/openapi.json")));
        assert!(table.contains(&("PUT", "/keys/{key_id}")));
        assert!(!table.iter().any(|(m, _)| *m == "HEAD" || *m == "OPTIONS"));
    }

    /// The document's operations as `(METHOD, template)`.
    fn document_operations(doc: &serde_json::Value) -> Vec<(String, String)> {
        let mut ops = vec![];
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, _) in item.as_object().expect("a path item") {
                if method != "parameters" {
                    ops.push((method.to_ascii_uppercase(), path.clone()));
                }
            }
        }
        ops
    }

    #[test]
    fn the_openapi_document_has_exactly_the_routers_operations() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../docs/openapi.json")).expect("valid JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        let documented: std::collections::BTreeSet<(String, String)> =
            document_operations(&doc).into_iter().collect();
        let routed: std::collections::BTreeSet<(String, String)> = routes()
            .into_iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        let missing: Vec<_> = routed.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&routed).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "routes missing from docs/openapi.json: {missing:?}; operations the router lacks: {extra:?}"
        );
    }

    #[test]
    fn every_operation_has_an_id_a_success_example_and_refs_that_resolve() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../docs/openapi.json")).expect("valid JSON");
        let mut ids = std::collections::BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if method == "parameters" {
                    continue;
                }
                let id = op["operationId"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
                assert!(ids.insert(id.to_string()), "operationId {id} twice");
                let responses = op["responses"].as_object().unwrap();
                let (_, success) = responses
                    .iter()
                    .find(|(status, _)| status.starts_with('2'))
                    .unwrap_or_else(|| panic!("{method} {path}: no 2xx response"));
                let has_example = success["content"]
                    .as_object()
                    .is_some_and(|c| c.values().any(|m| m.get("example").is_some()));
                // The video bytes are the one answer without an example.
                assert!(has_example || id == "stream", "{method} {path}: no example");
            }
        }
        // Every $ref names a component that exists.
        fn refs<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
            match v {
                serde_json::Value::Object(m) => {
                    if let Some(r) = m.get("$ref").and_then(|r| r.as_str()) {
                        out.push(r);
                    }
                    m.values().for_each(|v| refs(v, out));
                }
                serde_json::Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
                _ => {}
            }
        }
        let mut found = vec![];
        refs(&doc, &mut found);
        assert!(!found.is_empty());
        for r in found {
            let pointer = r
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("external $ref {r}"));
            assert!(
                doc.pointer(pointer).is_some(),
                "$ref {r} resolves to nothing"
            );
        }
    }

    #[test]
    fn methods() {
        assert!(Route::Keys.allows(&Method::POST));
        assert!(!Route::Keys.allows(&Method::DELETE));
        assert!(Route::Key("x").allows(&Method::DELETE));
        assert!(Route::Healthz.allows(&Method::OPTIONS));
        assert_eq!(Route::Keepalive("x").allow(), "PUT, OPTIONS");
    }

    #[test]
    fn scopes_of_routes() {
        use Scope::*;
        let (g, p, u, d) = (Method::GET, Method::POST, Method::PUT, Method::DELETE);
        let cases: &[(Route, &Method, Option<Scope>)] = &[
            (Route::Key("k"), &g, Some(PoolRead)),
            (Route::PoolKey("p", "k"), &Method::HEAD, Some(PoolRead)),
            (Route::Stats, &g, Some(PoolRead)),
            (Route::PoolStats("p"), &g, Some(PoolRead)),
            (Route::Pools, &g, Some(PoolRead)),
            (Route::Keys, &g, Some(PoolWrite)),
            (Route::Keys, &p, Some(PoolWrite)),
            (Route::PoolKeys("p"), &g, Some(PoolWrite)),
            (Route::Key("k"), &u, Some(PoolWrite)),
            (Route::Key("k"), &d, Some(PoolWrite)),
            (Route::PoolKey("p", "k"), &d, Some(PoolWrite)),
            (Route::Lease("k"), &u, Some(PoolWrite)),
            (Route::PoolLease("p", "k"), &u, Some(PoolWrite)),
            (Route::Keepalive("k"), &u, Some(PoolWrite)),
            (Route::PoolKeepalive("p", "k"), &u, Some(PoolWrite)),
            (Route::Pool("p"), &d, Some(PoolWrite)),
            (Route::ListKeys, &g, Some(KeysRead)),
            (Route::UserKeyOf("e"), &g, Some(KeysRead)),
            (Route::UserUsageOf("e"), &g, Some(KeysRead)),
            (Route::UserKeyOf("e"), &d, Some(KeysWrite)),
            (Route::GenerateKey, &p, Some(KeysWrite)),
            (Route::RevokeKey, &p, Some(KeysWrite)),
            (Route::UserKey, &p, Some(KeysWrite)),
            (Route::KeyDisable("k"), &p, Some(KeysWrite)),
            (Route::KeyEnable("k"), &p, Some(KeysWrite)),
            (Route::KeyCredits("k"), &u, Some(KeysWrite)),
            (Route::KeyRotate("k"), &p, Some(KeysWrite)),
            (Route::UserPin, &u, Some(Purchase)),
            (Route::VideoPurchase, &p, Some(Purchase)),
            (Route::UserCredits, &p, Some(Purchase)),
            (Route::UserCredits, &g, Some(Purchase)),
            (Route::KeysVerify, &p, Some(KeysVerify)),
            (Route::KeyAnalytics("k"), &g, Some(KeysRead)),
            (Route::Healthz, &g, None),
            (Route::Login, &p, None),
            (Route::VideoInfo, &g, None),
        ];
        for (route, method, want) in cases {
            assert_eq!(route.scope(method), *want, "{method} {}", route.label());
        }
    }
}
