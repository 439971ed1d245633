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
        (Route::UserEvents, &g, Some(KeysRead)),
        (Route::Healthz, &g, None),
        (Route::Login, &p, None),
        (Route::VideoInfo, &g, None),
    ];
    for (route, method, want) in cases {
        assert_eq!(route.scope(method), *want, "{method} {}", route.label());
    }
}
