//! `X-Request-Id`: every response carries one, and the request's log line names it.
//!
//! A well-formed incoming ID (1–128 characters of `A-Z a-z 0-9 . _ : -`, the
//! characters that survive every log format and header parser unquoted) is
//! echoed, so that a caller or a proxy in front can follow its own ID through
//! our logs; anything else is ignored and replaced by one of ours. Ours are a
//! random per-process prefix and a counter (`9f1c2e4b6a7d8e0f-0000002a`): unique
//! across restarts with overwhelming probability, and one atomic add per
//! request, no lock and no syscall.

use std::sync::atomic::{AtomicU64, Ordering};

use hyper::header::{HeaderMap, HeaderName, HeaderValue};

/// The header's name.
pub const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest incoming ID that is echoed.
pub const MAX_LEN: usize = 128;

/// Makes request IDs for one server.
pub struct RequestIds {
    /// 16 lowercase hex digits, random at start-up.
    prefix: [u8; 16],
    /// The next ID's number.
    next: AtomicU64,
}

impl RequestIds {
    /// A generator with a fresh random prefix.
    pub fn new() -> RequestIds {
        let mut prefix = [0; 16];
        hex::encode_to_slice(rand::random::<u64>().to_be_bytes(), &mut prefix)
            .expect("8 bytes are 16 hex digits");
        RequestIds {
            prefix,
            next: AtomicU64::new(1),
        }
    }

    /// The request's ID: the incoming one when it is well-formed, else a new one.
    pub fn for_request(&self, headers: &HeaderMap) -> HeaderValue {
        match headers.get(X_REQUEST_ID) {
            Some(v) if is_valid(v.as_bytes()) => v.clone(),
            _ => self.generate(),
        }
    }

    /// A new ID: `<prefix>-<counter as at least 8 hex digits>`.
    pub fn generate(&self) -> HeaderValue {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u8; 16 + 1 + 16];
        buf[..16].copy_from_slice(&self.prefix);
        buf[16] = b'-';
        let digits = n.to_be_bytes();
        let mut hex_n = [0u8; 16];
        hex::encode_to_slice(digits, &mut hex_n).expect("8 bytes are 16 hex digits");
        // Keep the last 8 digits at least, more once the counter needs them.
        let skip = (hex_n.iter().take_while(|&&d| d == b'0').count()).min(8);
        let len = 17 + 16 - skip;
        buf[17..len].copy_from_slice(&hex_n[skip..]);
        HeaderValue::from_bytes(&buf[..len]).expect("hex digits and '-' are a valid header")
    }
}

impl Default for RequestIds {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether an incoming ID is echoed: 1–[`MAX_LEN`] bytes of `[A-Za-z0-9._:-]`.
pub fn is_valid(id: &[u8]) -> bool {
    (1..=MAX_LEN).contains(&id.len())
        && id
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_ids() {
        let long = "a".repeat(MAX_LEN);
        let too_long = "a".repeat(MAX_LEN + 1);
        let cases: &[(&str, bool)] = &[
            ("abc", true),
            ("A-1_b.c:d", true),
            ("0", true),
            (&long, true),
            ("", false),
            (&too_long, false),
            ("has space", false),
            ("quote\"", false),
            ("semi;colon", false),
            ("slash/", false),
            ("ünïcode", false),
        ];
        for (id, want) in cases {
            assert_eq!(is_valid(id.as_bytes()), *want, "{id:?}");
        }
    }

    #[test]
    fn generated_ids_are_valid_distinct_and_counted() {
        let ids = RequestIds::new();
        let a = ids.generate();
        let b = ids.generate();
        assert_ne!(a, b);
        for v in [&a, &b] {
            assert!(is_valid(v.as_bytes()), "{v:?}");
            assert_eq!(v.len(), 16 + 1 + 8, "{v:?}");
        }
        assert!(a.to_str().unwrap().ends_with("-00000001"), "{a:?}");
        assert_eq!(
            a.as_bytes()[..17],
            b.as_bytes()[..17],
            "one prefix per process"
        );
        ids.next.store(0x1_2345_6789, Ordering::Relaxed);
        assert!(ids.generate().to_str().unwrap().ends_with("-123456789"));
        assert_ne!(
            RequestIds::new().generate().as_bytes()[..16],
            a.as_bytes()[..16],
            "each process has its own prefix"
        );
    }

    #[test]
    fn a_valid_incoming_id_is_echoed_else_replaced() {
        let ids = RequestIds::new();
        let mut h = HeaderMap::new();
        h.insert(X_REQUEST_ID, HeaderValue::from_static("client-42"));
        assert_eq!(ids.for_request(&h), "client-42");
        h.insert(X_REQUEST_ID, HeaderValue::from_static("bad id"));
        let made = ids.for_request(&h);
        assert_ne!(made, "bad id");
        assert!(is_valid(made.as_bytes()));
        assert!(is_valid(ids.for_request(&HeaderMap::new()).as_bytes()));
    }
}
