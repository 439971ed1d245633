//! Property-based fuzzing of the pool routes' parameter parsers (`fuzz_*`):
//! pool names from the path, durations and counts from the query string.

use hyper::{HeaderMap, Method, StatusCode};
use proptest::prelude::*;

use super::super::Ctx;
use super::pool_params::{count, duration, pool_name, MAX_COOLDOWN, MAX_COUNT, MAX_WAIT};

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 1000,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn ctx(query: Option<String>) -> Ctx {
    Ctx {
        method: Method::GET,
        headers: HeaderMap::new(),
        query,
        peer: "127.0.0.1:1".parse().unwrap(),
        path: "/pools/p/keys".into(),
        scope: None,
        body: None,
        read: None,
        max_body: 1 << 16,
        body_deadline: tokio::time::Instant::now(),
        body_failed: false,
        analytics_key: std::cell::Cell::new(None),
    }
}

fn enc(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// Values for a duration or a count: numbers in every spelling, huge ones,
/// units, signs, unicode, escapes.
fn number_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        "[-+ ]?[0-9]{0,25}(\\.[0-9]{0,4})?(e[-+]?[0-9]{1,4})?( ?(ms|s|m|h|d|min|sec|µs|ns|y))?",
        Just("NaN".to_string()),
        Just("inf".to_string()),
        Just("-0".to_string()),
        Just("18446744073709551616".to_string()),
        Just("99999999999999999999h".to_string()),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// A pool name from any path segment is accepted exactly when it decodes
    /// to 1-64 of `[A-Za-z0-9_.-]`, and refused with 400 otherwise.
    #[test]
    fn fuzz_pool_name(raw in prop_oneof![any::<String>(), "[A-Za-z0-9_.%+-]{0,70}"]) {
        let decoded = super::param(&raw);
        let ok = (1..=64).contains(&decoded.len())
            && decoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
        match pool_name(&raw) {
            Ok(name) => {
                prop_assert!(ok, "{raw:?}");
                prop_assert_eq!(name, decoded);
            }
            Err(e) => {
                prop_assert!(!ok, "{raw:?}");
                prop_assert_eq!(e.status, StatusCode::BAD_REQUEST);
            }
        }
    }

    /// A valid name survives percent-encoding.
    #[test]
    fn fuzz_pool_name_round_trip(name in "[A-Za-z0-9_.-]{1,64}") {
        prop_assert_eq!(pool_name(&enc(&name)).unwrap(), name.clone());
        prop_assert_eq!(pool_name(&name).unwrap(), name);
    }

    /// Any `wait=` value is a duration within the bounds or a 400.
    #[test]
    fn fuzz_duration_any(raw in number_like(), escaped in any::<bool>()) {
        let v = if escaped { enc(&raw) } else { raw.replace(['&', '#', '%', '+'], "") };
        let c = ctx(Some(format!("a=1&wait={v}")));
        for (min, max) in [(0, MAX_WAIT), (1, MAX_COOLDOWN)] {
            match duration(&c, "wait", min, max) {
                Ok(Some(ms)) => prop_assert!((min..=max).contains(&ms), "{raw:?} -> {ms}"),
                Ok(None) => prop_assert!(false, "wait is present: {raw:?}"),
                Err(e) => {
                    prop_assert_eq!(e.status, StatusCode::BAD_REQUEST);
                    prop_assert!(e.message.contains("`wait`"));
                }
            }
        }
        prop_assert_eq!(duration(&ctx(None), "wait", 0, MAX_WAIT).unwrap(), None);
    }

    /// Every in-range duration, in milliseconds, seconds or minutes, parses back
    /// to itself; one past the bound is refused.
    #[test]
    fn fuzz_duration_round_trip(ms in 0..=MAX_COOLDOWN) {
        let get = |s: String| duration(&ctx(Some(format!("cooldown={s}"))), "cooldown", 0, MAX_COOLDOWN);
        prop_assert_eq!(get(format!("{ms}ms")).unwrap(), Some(ms));
        prop_assert_eq!(get(format!("{}", ms / 1000)).unwrap(), Some(ms / 1000 * 1000));
        prop_assert_eq!(get(format!("{}m", ms / 60_000)).unwrap(), Some(ms / 60_000 * 60_000));
        prop_assert_eq!(get(format!("{}.{:03}", ms / 1000, ms % 1000)).unwrap(), Some(ms));
        let over = get(format!("{}ms", MAX_COOLDOWN + 1 + ms));
        prop_assert!(over.is_err());
    }

    /// `count` is 1-100 or a 400, whatever is sent.
    #[test]
    fn fuzz_count(raw in number_like(), n in 1..=MAX_COUNT) {
        let c = ctx(Some(format!("count={}", enc(&raw))));
        match count(&c) {
            Ok(Some(got)) => prop_assert!((1..=MAX_COUNT).contains(&got)),
            Ok(None) => prop_assert!(false, "count is present"),
            Err(e) => prop_assert_eq!(e.status, StatusCode::BAD_REQUEST),
        }
        prop_assert_eq!(count(&ctx(Some(format!("count={n}")))).unwrap(), Some(n));
        let over = count(&ctx(Some(format!("count={}", n + MAX_COUNT))));
        prop_assert!(over.is_err());
    }
}
