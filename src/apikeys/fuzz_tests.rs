//! Property-based fuzzing (`fuzz_*`) of what a client sends about API keys:
//! the key format and checksum, scope and role names, and CIDR networks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::access::{valid_scope_name, Cidr, KeyAccess, Role, Scope};
use super::format::{check_format, generate_key, FormatError, KEY_LEN, KEY_PREFIX};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A mistyped key: one of the mistakes a person or a copy-paste makes.
#[derive(Debug, Clone)]
enum Typo {
    Replace(usize, char),
    Swap(usize),
    Drop(usize),
    Insert(usize, char),
    FlipCase(usize),
}

fn typo() -> impl Strategy<Value = Typo> {
    let ch = prop_oneof![
        proptest::char::range('0', 'z'),
        Just('é'),
        Just(' '),
        Just('\u{0}'),
        any::<char>(),
    ];
    prop_oneof![
        (0..KEY_LEN, ch.clone()).prop_map(|(i, c)| Typo::Replace(i, c)),
        (0..KEY_LEN - 1).prop_map(Typo::Swap),
        (0..KEY_LEN).prop_map(Typo::Drop),
        (0..=KEY_LEN, ch).prop_map(|(i, c)| Typo::Insert(i, c)),
        (0..KEY_LEN).prop_map(Typo::FlipCase),
    ]
}

fn apply(key: &str, t: &Typo) -> String {
    let mut c: Vec<char> = key.chars().collect();
    match *t {
        Typo::Replace(i, ch) => c[i] = ch,
        Typo::Swap(i) => c.swap(i, i + 1),
        Typo::Drop(i) => {
            c.remove(i);
        }
        Typo::Insert(i, ch) => c.insert(i, ch),
        Typo::FlipCase(i) => {
            c[i] = if c[i].is_ascii_uppercase() {
                c[i].to_ascii_lowercase()
            } else {
                c[i].to_ascii_uppercase()
            }
        }
    }
    c.into_iter().collect()
}

proptest! {
    #![proptest_config(config(1000))]

    /// Any string is checked without panicking; what passes has the shape.
    #[test]
    fn fuzz_key_format_any(s in prop_oneof![any::<String>(), "sk_live_[A-Za-z0-9é]{30,40}"]) {
        if check_format(&s).is_ok() {
            prop_assert_eq!(s.len(), KEY_LEN);
            prop_assert!(s.starts_with(KEY_PREFIX));
            prop_assert!(s[KEY_PREFIX.len()..].bytes().all(|b| b.is_ascii_alphanumeric()));
        }
    }

    /// Generated keys always pass; a mistyped one never does, and the error
    /// names the mistake's kind.
    #[test]
    fn fuzz_key_typos_refused(t in typo()) {
        let key = generate_key();
        prop_assert_eq!(check_format(&key), Ok(()));
        let bad = apply(&key, &t);
        if bad == key {
            return Ok(());
        }
        let got = check_format(&bad);
        prop_assert!(got.is_err(), "{t:?}: {bad}");
        if !bad.starts_with(KEY_PREFIX) {
            prop_assert_eq!(got, Err(FormatError::Prefix));
        } else if bad.len() != KEY_LEN {
            prop_assert_eq!(got, Err(FormatError::Length));
        }
    }

    /// Scope and role names: built-in names parse back to themselves; any
    /// string is a valid custom name exactly when it is `[a-z0-9:._-]{1,64}`.
    #[test]
    fn fuzz_scope_names(s in prop_oneof![any::<String>(), "[a-z0-9:._A-Z -]{0,70}"]) {
        let want = (1..=64).contains(&s.len())
            && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b":._-".contains(&b));
        prop_assert_eq!(valid_scope_name(&s), want);
        if let Some(sc) = Scope::parse(&s) {
            prop_assert_eq!(sc.name(), s.as_str());
        }
        let _ = Role::parse(&s);
        let list = vec![s.clone()];
        match KeyAccess::from_request(Some(&list), None, None) {
            Ok(a) => prop_assert!(a.has_named(&s), "{s:?}"),
            Err(_) => prop_assert!(!want),
        }
    }

    /// Any string as a network parses or not without panicking; what parses
    /// prints as `addr/len`, parses back to itself and contains its address.
    #[test]
    fn fuzz_cidr_any(s in prop_oneof![
        any::<String>(),
        "[0-9]{1,4}\\.[0-9]{1,4}\\.[0-9]{1,4}\\.[0-9]{1,4}(/[0-9]{0,20})?",
        "[0-9a-f:]{0,20}(/[0-9+-]{0,5})?",
    ]) {
        if let Some(c) = Cidr::parse(&s) {
            let shown = c.to_string();
            prop_assert_eq!(Cidr::parse(&shown), Some(c), "{:?} -> {}", s, shown);
            let (addr, len) = shown.split_once('/').unwrap();
            let addr: IpAddr = addr.parse().unwrap();
            let len: u8 = len.parse().unwrap();
            let max = if addr.is_ipv4() { 32 } else { 128 };
            prop_assert!(len <= max);
            prop_assert!(c.contains(addr));
            if let Some((_, n)) = s.split_once('/') {
                prop_assert_eq!(n.parse::<u8>().ok(), Some(len), "{:?} -> {}", s, shown);
            }
        }
    }

    /// Every address is in each of its own networks (and an IPv4 one also as
    /// an IPv4-mapped IPv6 address); a length past the family's is refused.
    #[test]
    fn fuzz_cidr_contains(v4 in any::<u32>(), v6 in any::<u128>(), l4 in 0u8..=32, l6 in 0u8..=128, over in 0u16..1000) {
        let a = Ipv4Addr::from(v4);
        let c = Cidr::parse(&format!("{a}/{l4}")).unwrap();
        prop_assert!(c.contains(IpAddr::V4(a)));
        prop_assert!(c.contains(IpAddr::V6(a.to_ipv6_mapped())));
        let b = Ipv6Addr::from(v6);
        let c6 = Cidr::parse(&format!("{b}/{l6}")).unwrap();
        prop_assert!(c6.contains(IpAddr::V6(b)));
        prop_assert_eq!(Cidr::parse(&format!("{a}/{}", 33 + over)), None);
        prop_assert_eq!(Cidr::parse(&format!("{b}/{}", 129 + over)), None);
        prop_assert_eq!(Cidr::parse(&a.to_string()).unwrap().to_string(), format!("{a}/32"));
    }
}

/// Bug found by fuzzing: a length of 255 (`u8::MAX`, which the parser used to
/// mean "no length given") was read as a bare address, so `10.0.0.0/255`
/// was accepted as `10.0.0.0/32` instead of refused.
#[test]
fn fuzz_regression_cidr_length_255_is_refused() {
    for s in ["10.0.0.0/255", "0.0.0.0/255", "::/255", "2001:db8::/0255"] {
        assert_eq!(Cidr::parse(s), None, "{s}");
    }
    assert_eq!(Cidr::parse("10.0.0.1").unwrap().to_string(), "10.0.0.1/32");
    assert_eq!(Cidr::parse("::1").unwrap().to_string(), "::1/128");
}
