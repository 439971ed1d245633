//! What a key may do and from where: [`Scope`]s (built-in ones as bits of a
//! [`ScopeSet`], so the check on every request is one AND), roles, custom
//! scope names for the owner's own services, IP allowlists ([`Cidr`]) and the
//! disabled flag. Plain Rust, no HTTP.
//!
//! These live beside [`super::KeyRecord`], not in it: the record is in the
//! first round's log and snapshot layouts, which must keep decoding.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::ApiKeyError;

/// A built-in scope. The route → scope table is `http::router::Route::scope`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `GET /keys/{id}`, stats, `GET /pools`.
    PoolRead,
    /// Create, checkout, release, lease, keepalive, delete.
    PoolWrite,
    /// Key lists and usage.
    KeysRead,
    /// Create, revoke, disable, enable and delete keys.
    KeysWrite,
    /// PIN and purchases.
    Purchase,
    /// `POST /api/keys/verify`.
    KeysVerify,
}

impl Scope {
    /// Every built-in scope, in bit order.
    pub const ALL: [Scope; 6] = [
        Scope::PoolRead,
        Scope::PoolWrite,
        Scope::KeysRead,
        Scope::KeysWrite,
        Scope::Purchase,
        Scope::KeysVerify,
    ];

    /// The scope's name in requests and answers.
    pub fn name(self) -> &'static str {
        match self {
            Scope::PoolRead => "pool:read",
            Scope::PoolWrite => "pool:write",
            Scope::KeysRead => "keys:read",
            Scope::KeysWrite => "keys:write",
            Scope::Purchase => "purchase",
            Scope::KeysVerify => "keys:verify",
        }
    }

    /// The built-in scope of this name.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.name() == name)
    }

    const fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of built-in scopes as a bitmask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeSet(u8);

impl ScopeSet {
    /// No scope.
    pub const NONE: ScopeSet = ScopeSet(0);
    /// Every built-in scope (the `admin` role; sessions).
    pub const ALL: ScopeSet = ScopeSet(0b11_1111);
    /// What a key gets when its creation names no scope or role: every
    /// built-in scope except `keys:verify`.
    pub const DEFAULT: ScopeSet = ScopeSet(0b01_1111);

    /// Whether `s` is in the set: the hot path's one test.
    #[inline]
    pub fn has(self, s: Scope) -> bool {
        self.0 & s.bit() != 0
    }

    /// The set with `s` added.
    pub fn with(self, s: Scope) -> ScopeSet {
        ScopeSet(self.0 | s.bit())
    }

    /// The union of two sets.
    pub fn union(self, o: ScopeSet) -> ScopeSet {
        ScopeSet(self.0 | o.0)
    }

    /// The first scope of `self` that `other` lacks.
    pub fn first_missing_from(self, other: ScopeSet) -> Option<Scope> {
        Scope::ALL
            .into_iter()
            .find(|s| self.has(*s) && !other.has(*s))
    }

    /// The names of the scopes in the set, in bit order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Scope::ALL
            .into_iter()
            .filter(move |s| self.has(*s))
            .map(Scope::name)
    }
}

/// A role: a shorthand for a set of built-in scopes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// `pool:read pool:write`.
    Worker,
    /// `pool:read keys:read`.
    Reader,
    /// Every built-in scope.
    Admin,
}

impl Role {
    /// The role of this name.
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "worker" => Some(Role::Worker),
            "reader" => Some(Role::Reader),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }

    /// Its scopes.
    pub fn scopes(self) -> ScopeSet {
        match self {
            Role::Worker => ScopeSet::NONE.with(Scope::PoolRead).with(Scope::PoolWrite),
            Role::Reader => ScopeSet::NONE.with(Scope::PoolRead).with(Scope::KeysRead),
            Role::Admin => ScopeSet::ALL,
        }
    }
}

/// An IPv4 or IPv6 network, `addr/len`, with the host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cidr {
    addr: IpAddr,
    len: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `x::y/n`, or a bare address (a /32 or /128).
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, len) = match s.split_once('/') {
            Some((a, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
                (a, Some(n.parse::<u8>().ok()?))
            }
            Some(_) => return None,
            None => (s, None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = len.unwrap_or(max);
        if len > max {
            return None;
        }
        let addr = match addr {
            IpAddr::V4(v) => IpAddr::V4((u32::from(v) & mask32(len)).into()),
            IpAddr::V6(v) => IpAddr::V6((u128::from(v) & mask128(len)).into()),
        };
        Some(Cidr { addr, len })
    }

    /// Whether `ip` is in the network. An IPv4-mapped IPv6 address (how a
    /// dual-stack socket shows an IPv4 peer) matches IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => u32::from(ip) & mask32(self.len) == u32::from(net),
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                u128::from(ip) & mask128(self.len) == u128::from(net)
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

fn mask32(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask128(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

/// A key's access rules beyond the first round's record. The default is what
/// every first-round key has: default scopes, any address, enabled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyAccess {
    /// Built-in scopes.
    pub scopes: ScopeSet,
    /// The owner's own scope names (checked only by verify), sorted, unique.
    pub custom: Vec<String>,
    /// Networks the key may be used from; empty = anywhere.
    pub allowed_ips: Vec<Cidr>,
    /// A disabled key is refused (401) until enabled.
    pub disabled: bool,
    /// The owner's own data about the key (`meta`): the JSON text of an
    /// object of at most [`MAX_META_BYTES`], shown in lists and by verify.
    /// The HTTP layer checks that it is an object; this module only keeps it.
    pub meta: Option<String>,
}

impl Default for KeyAccess {
    fn default() -> Self {
        KeyAccess {
            scopes: ScopeSet::DEFAULT,
            custom: Vec::new(),
            allowed_ips: Vec::new(),
            disabled: false,
            meta: None,
        }
    }
}

/// The most scope names and networks one key may carry.
pub const MAX_SCOPES: usize = 64;
/// See [`MAX_SCOPES`].
pub const MAX_ALLOWED_IPS: usize = 64;
/// The longest `meta` (encoded JSON), in bytes.
pub const MAX_META_BYTES: usize = 1024;

fn invalid(field: &'static str, message: String) -> ApiKeyError {
    ApiKeyError::Invalid { field, message }
}

/// Whether `s` is a valid scope name: `[a-z0-9:._-]{1,64}`.
pub fn valid_scope_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b':' | b'.' | b'_' | b'-'))
}

impl KeyAccess {
    /// The access a creation asks for: `scopes` and `role` together give the
    /// union of both; neither gives [`ScopeSet::DEFAULT`].
    pub fn from_request(
        scopes: Option<&[String]>,
        role: Option<&str>,
        allowed_ips: Option<&[String]>,
    ) -> Result<KeyAccess, ApiKeyError> {
        let mut access = KeyAccess::default();
        if scopes.is_some() || role.is_some() {
            access.scopes = ScopeSet::NONE;
        }
        if let Some(list) = scopes {
            if list.len() > MAX_SCOPES {
                return Err(invalid(
                    "scopes",
                    format!("Invalid scopes: give at most {MAX_SCOPES}."),
                ));
            }
            for s in list {
                if let Some(b) = Scope::parse(s) {
                    access.scopes = access.scopes.with(b);
                } else if valid_scope_name(s) {
                    access.custom.push(s.clone());
                } else {
                    return Err(invalid(
                        "scopes",
                        format!(
                            "Invalid scopes: {s:?} is not a scope name (1 to 64 of a-z 0-9 : . _ -)."
                        ),
                    ));
                }
            }
            access.custom.sort();
            access.custom.dedup();
        }
        if let Some(r) = role {
            let r = Role::parse(r).ok_or_else(|| {
                invalid(
                    "role",
                    "Invalid role: use \"worker\", \"reader\" or \"admin\".".into(),
                )
            })?;
            access.scopes = access.scopes.union(r.scopes());
        }
        if let Some(ips) = allowed_ips {
            if ips.len() > MAX_ALLOWED_IPS {
                return Err(invalid(
                    "allowed_ips",
                    format!("Invalid allowed_ips: give at most {MAX_ALLOWED_IPS} networks."),
                ));
            }
            for s in ips {
                let c = Cidr::parse(s.trim()).ok_or_else(|| {
                    invalid(
                        "allowed_ips",
                        format!(
                            "Invalid allowed_ips: {s:?} is not an IPv4 or IPv6 address or CIDR \
                             (like \"10.0.0.0/8\" or \"2001:db8::/32\")."
                        ),
                    )
                })?;
                if !access.allowed_ips.contains(&c) {
                    access.allowed_ips.push(c);
                }
            }
        }
        Ok(access)
    }

    /// Whether the key may be used from `ip`.
    #[inline]
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        self.allowed_ips.is_empty() || self.allowed_ips.iter().any(|c| c.contains(ip))
    }

    /// Whether the key has the scope named `name` (built-in or custom).
    pub fn has_named(&self, name: &str) -> bool {
        match Scope::parse(name) {
            Some(s) => self.scopes.has(s),
            None => self
                .custom
                .binary_search_by(|c| c.as_str().cmp(name))
                .is_ok(),
        }
    }

    /// Every scope name of the key: built-in ones in bit order, then custom.
    pub fn scope_names(&self) -> Vec<String> {
        self.scopes
            .names()
            .map(str::to_owned)
            .chain(self.custom.iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_matching_v4_v6_and_mapped() {
        let cases: &[(&str, &str, bool)] = &[
            ("10.0.0.0/8", "10.1.2.3", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("10.0.0.0/8", "127.0.0.1", false),
            ("10.9.9.9/8", "10.0.0.1", true), // host bits cleared
            ("0.0.0.0/0", "8.8.8.8", true),
            ("0.0.0.0/0", "::1", false),
            ("127.0.0.1", "127.0.0.1", true),
            ("127.0.0.1", "127.0.0.2", false),
            ("192.168.1.128/25", "192.168.1.200", true),
            ("192.168.1.128/25", "192.168.1.100", false),
            ("10.0.0.0/8", "::ffff:10.2.3.4", true), // v4-mapped v6
            ("::ffff:10.0.0.0/104", "10.2.3.4", false),
            ("2001:db8::/32", "2001:db8:1::5", true),
            ("2001:db8::/32", "2001:db9::5", false),
            ("::/0", "fe80::1", true),
            ("::1/128", "::1", true),
            ("::1", "::2", false),
        ];
        for (net, addr, want) in cases {
            let c = Cidr::parse(net).unwrap_or_else(|| panic!("{net} parses"));
            assert_eq!(c.contains(ip(addr)), *want, "{net} ∋ {addr}");
        }
    }

    #[test]
    fn cidr_parse_rejects_nonsense() {
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/-1",
            "abc",
            "10.0.0.0/8/8",
            "10.0.0.0/+8",
        ] {
            assert_eq!(Cidr::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Cidr::parse("10.9.0.0/8").unwrap().to_string(), "10.0.0.0/8");
    }

    #[test]
    fn scopes_roles_and_defaults() {
        let d = KeyAccess::from_request(None, None, None).unwrap();
        assert_eq!(d, KeyAccess::default());
        assert_eq!(
            d.scope_names(),
            [
                "pool:read",
                "pool:write",
                "keys:read",
                "keys:write",
                "purchase"
            ]
        );
        assert!(!d.scopes.has(Scope::KeysVerify));
        let w = KeyAccess::from_request(None, Some("worker"), None).unwrap();
        assert_eq!(w.scope_names(), ["pool:read", "pool:write"]);
        let r = KeyAccess::from_request(None, Some("reader"), None).unwrap();
        assert_eq!(r.scope_names(), ["pool:read", "keys:read"]);
        assert_eq!(
            KeyAccess::from_request(None, Some("admin"), None)
                .unwrap()
                .scopes,
            ScopeSet::ALL
        );
        let both = KeyAccess::from_request(
            Some(&[
                "keys:verify".into(),
                "billing.read".into(),
                "billing.read".into(),
            ]),
            Some("worker"),
            None,
        )
        .unwrap();
        assert_eq!(
            both.scope_names(),
            ["pool:read", "pool:write", "keys:verify", "billing.read"]
        );
        assert!(both.has_named("billing.read") && !both.has_named("billing.write"));
        let none = KeyAccess::from_request(Some(&[]), None, None).unwrap();
        assert_eq!(none.scopes, ScopeSet::NONE);
        for (scopes, role, field) in [
            (vec!["Pool:Read".to_string()], None, "scopes"),
            (vec!["x".repeat(65)], None, "scopes"),
            (vec![], Some("root"), "role"),
        ] {
            match KeyAccess::from_request(Some(&scopes), role, None) {
                Err(ApiKeyError::Invalid { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{scopes:?} {role:?}: {other:?}"),
            }
        }
        assert!(matches!(
            KeyAccess::from_request(None, None, Some(&["10.0.0.0/40".into()])),
            Err(ApiKeyError::Invalid {
                field: "allowed_ips",
                ..
            })
        ));
        assert_eq!(
            ScopeSet::ALL.first_missing_from(ScopeSet::DEFAULT),
            Some(Scope::KeysVerify)
        );
        assert_eq!(ScopeSet::DEFAULT.first_missing_from(ScopeSet::ALL), None);
    }
}
