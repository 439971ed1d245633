//! Gated video bytes: short-lived signed stream tokens, and `Range` parsing.
//!
//! A `<video src>` cannot send an `Authorization` header, so `/video/info` hands
//! a buyer a `stream_url` carrying a token that proves "account A may stream
//! video V until T". The token is `A.T.MAC` where MAC is HMAC-SHA256 over
//! (A, V, T) under a server secret, hex-encoded: URL-safe, needs no storage,
//! and cannot be moved to another video or extended. Verification compares
//! MACs in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::clock::Millis;
use crate::ids::AccountId;

type HmacSha256 = Hmac<Sha256>;

/// Why a stream token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// Not of the form the signer makes.
    #[error("the stream token is malformed")]
    Malformed,
    /// The MAC does not match: forged, altered, or for another video.
    #[error("the stream token is not valid for this video")]
    BadSignature,
    /// Valid once, but past its expiry.
    #[error("the stream token has expired")]
    Expired,
}

/// Signs and verifies stream tokens with one 32-byte secret.
#[derive(Clone)]
pub struct StreamSigner {
    /// The HMAC key. Tokens made under another secret (e.g. before a restart
    /// with a fresh random secret) do not verify; they are short-lived anyway.
    secret: [u8; 32],
}

impl std::fmt::Debug for StreamSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.write_str("StreamSigner { .. }")
    }
}

impl StreamSigner {
    /// A signer with this secret.
    pub fn new(secret: [u8; 32]) -> Self {
        Self { secret }
    }

    /// A signer with a fresh random secret.
    pub fn random() -> Self {
        let mut secret = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut secret);
        Self::new(secret)
    }

    fn mac(&self, account: AccountId, video_id: &str, expires_at: Millis) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(&self.secret).expect("HMAC accepts a key of any length");
        // Length-prefix the video id so that no two (account, video, expiry)
        // triples feed the MAC the same bytes.
        mac.update(b"keypool-stream-v1\0");
        mac.update(&account.0.to_be_bytes());
        mac.update(&(video_id.len() as u64).to_be_bytes());
        mac.update(video_id.as_bytes());
        mac.update(&expires_at.to_be_bytes());
        mac
    }

    /// A token letting `account` stream `video_id` until `expires_at`.
    pub fn sign(&self, account: AccountId, video_id: &str, expires_at: Millis) -> String {
        let tag = self
            .mac(account, video_id, expires_at)
            .finalize()
            .into_bytes();
        format!("{}.{}.{}", account.0, expires_at, hex::encode(tag))
    }

    /// The account a token was issued to, if it is genuine, for `video_id`, and
    /// not expired at `now`.
    pub fn verify(
        &self,
        token: &str,
        video_id: &str,
        now: Millis,
    ) -> Result<AccountId, StreamError> {
        let mut parts = token.split('.');
        let (Some(a), Some(t), Some(m), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(StreamError::Malformed);
        };
        let account = AccountId(parse_decimal(a).ok_or(StreamError::Malformed)?);
        let expires_at = parse_decimal(t).ok_or(StreamError::Malformed)?;
        // Lowercase only, as `sign` writes it: one token, one spelling.
        if !m.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(StreamError::Malformed);
        }
        let tag = hex::decode(m).map_err(|_| StreamError::Malformed)?;
        self.mac(account, video_id, expires_at)
            .verify_slice(&tag)
            .map_err(|_| StreamError::BadSignature)?;
        if now >= expires_at {
            return Err(StreamError::Expired);
        }
        Ok(account)
    }
}

/// Digits only (`u64::from_str` would also take a leading `+`, which would give
/// one token two spellings).
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The `Range` header asks for nothing this resource has: answer 416 with
/// `Content-Range: bytes */len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("range not satisfiable")]
pub struct RangeError;

/// Parses a `Range` header against a resource of `len` bytes (RFC 9110 §14).
///
/// - `Ok(Some((first, last)))`: serve 206 with these inclusive byte positions
///   (`last` is clamped to `len - 1`).
/// - `Ok(None)`: ignore the header and serve the whole resource with 200. This
///   is what the RFC asks for a unit other than `bytes` or a syntactically
///   invalid range, and what we do for a multi-range request (allowed: a server
///   may ignore `Range`; players never send one).
/// - `Err(RangeError)`: a valid single range that does not overlap the
///   resource (`bytes=len-`, `bytes=-0`, any range of an empty resource): 416.
pub fn parse_range(header: &str, len: u64) -> Result<Option<(u64, u64)>, RangeError> {
    let header = header.trim();
    let Some((unit, spec)) = header.split_once('=') else {
        return Ok(None);
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return Ok(None);
    }
    let spec = spec.trim();
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (first, last) = (first.trim(), last.trim());
    match (first.is_empty(), last.is_empty()) {
        // `bytes=-n`: the last n bytes.
        (true, false) => {
            let Some(n) = parse_decimal(last) else {
                return Ok(None);
            };
            if n == 0 || len == 0 {
                return Err(RangeError);
            }
            Ok(Some((len.saturating_sub(n), len - 1)))
        }
        // `bytes=a-` and `bytes=a-b`.
        (false, open) => {
            let Some(a) = parse_decimal(first) else {
                return Ok(None);
            };
            let b = if open {
                u64::MAX
            } else {
                match parse_decimal(last) {
                    Some(b) if b >= a => b,
                    // `b < a` or not a number: invalid, so ignored.
                    _ => return Ok(None),
                }
            };
            if a >= len {
                return Err(RangeError);
            }
            Ok(Some((a, b.min(len - 1))))
        }
        (true, true) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_795_357_800_000;

    #[test]
    fn a_signed_token_verifies_for_its_video_until_it_expires() {
        let s = StreamSigner::new([7; 32]);
        let t = s.sign(AccountId(42), "featured", NOW + 60_000);
        assert!(
            t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.'),
            "URL-safe: {t}"
        );
        assert_eq!(s.verify(&t, "featured", NOW), Ok(AccountId(42)));
        assert_eq!(s.verify(&t, "featured", NOW + 59_999), Ok(AccountId(42)));
        assert_eq!(
            s.verify(&t, "featured", NOW + 60_000),
            Err(StreamError::Expired)
        );
        assert_eq!(s.verify(&t, "other", NOW), Err(StreamError::BadSignature));
    }

    #[test]
    fn forged_and_altered_tokens_are_refused() {
        let s = StreamSigner::new([7; 32]);
        let t = s.sign(AccountId(42), "featured", NOW + 60_000);
        let (_, rest) = t.split_once('.').expect("three parts");
        // Another account, or a later expiry, under the same MAC.
        assert_eq!(
            s.verify(&format!("43.{rest}"), "featured", NOW),
            Err(StreamError::BadSignature)
        );
        let mac = t.rsplit('.').next().expect("mac");
        let later = format!("42.{}.{mac}", NOW + 3_600_000);
        assert_eq!(
            s.verify(&later, "featured", NOW),
            Err(StreamError::BadSignature)
        );
        // Another server's secret.
        let other = StreamSigner::new([8; 32]);
        assert_eq!(
            other.verify(&t, "featured", NOW),
            Err(StreamError::BadSignature)
        );
        // A flipped MAC bit, a truncated MAC.
        let mut flipped = t.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).expect("ascii");
        assert_eq!(
            s.verify(&flipped, "featured", NOW),
            Err(StreamError::BadSignature)
        );
        assert_eq!(
            s.verify(&t[..t.len() - 2], "featured", NOW),
            Err(StreamError::BadSignature)
        );
        for bad in [
            "",
            "x",
            "42.1.zz",
            "42..ab",
            "+42.1.ab",
            "42.1.ab.cd",
            "a.b.c",
        ] {
            assert_eq!(
                s.verify(bad, "featured", NOW),
                Err(StreamError::Malformed),
                "{bad:?}"
            );
        }
        assert!(!format!("{s:?}").contains('7'), "Debug hides the secret");
    }

    #[test]
    fn random_signers_differ() {
        let a = StreamSigner::random();
        let t = a.sign(AccountId(1), "v", NOW + 1);
        assert_eq!(a.verify(&t, "v", NOW), Ok(AccountId(1)));
        assert_eq!(
            StreamSigner::random().verify(&t, "v", NOW),
            Err(StreamError::BadSignature)
        );
    }

    #[test]
    fn parses_ranges_like_rfc_9110() {
        let e = Err(RangeError);
        type Want = Result<Option<(u64, u64)>, RangeError>;
        let cases: &[(&str, u64, Want)] = &[
            ("bytes=0-99", 1000, Ok(Some((0, 99)))),
            ("bytes=0-0", 1000, Ok(Some((0, 0)))),
            ("bytes=500-", 1000, Ok(Some((500, 999)))),
            ("bytes=0-", 1000, Ok(Some((0, 999)))),
            ("bytes=900-5000", 1000, Ok(Some((900, 999)))),
            ("bytes=-100", 1000, Ok(Some((900, 999)))),
            ("bytes=-5000", 1000, Ok(Some((0, 999)))),
            ("bytes=999-999", 1000, Ok(Some((999, 999)))),
            (" Bytes = 1 - 2 ", 1000, Ok(Some((1, 2)))),
            ("bytes=1000-", 1000, e),
            ("bytes=1000-2000", 1000, e),
            ("bytes=-0", 1000, e),
            ("bytes=0-", 0, e),
            ("bytes=-1", 0, e),
            ("bytes=5-4", 1000, Ok(None)),
            ("bytes=0-1,5-6", 1000, Ok(None)),
            ("items=0-1", 1000, Ok(None)),
            ("bytes=", 1000, Ok(None)),
            ("bytes=-", 1000, Ok(None)),
            ("bytes=a-b", 1000, Ok(None)),
            ("bytes=+1-2", 1000, Ok(None)),
            ("bytes=1", 1000, Ok(None)),
            ("0-1", 1000, Ok(None)),
            ("bytes=99999999999999999999-", 1000, Ok(None)),
        ];
        for (header, len, want) in cases {
            assert_eq!(parse_range(header, *len), *want, "{header:?} of {len}");
        }
    }
}

#[cfg(test)]
mod fuzz_tests {
    //! Property-based fuzzing (`fuzz_*`) of the `Range` header and of stream
    //! tokens, both of which come from the client.

    use proptest::prelude::*;

    use super::*;

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 1000,
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    fn range_header() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "(bytes|BYTES|items| bytes )?=? ?[0-9]{0,22} ?-? ?[0-9]{0,22}(,[0-9]{0,3}-[0-9]{0,3})?",
            (any::<u64>(), any::<u64>()).prop_map(|(a, b)| format!("bytes={a}-{b}")),
            any::<u64>().prop_map(|n| format!("bytes=-{n}")),
            any::<u64>().prop_map(|n| format!("bytes={n}-")),
        ]
    }

    proptest! {
        #![proptest_config(config())]

        /// Any `Range` against any length: a range inside the resource, a
        /// 416, or "ignore"; never a panic or a range past the end.
        #[test]
        fn fuzz_parse_range(h in range_header(), len in prop_oneof![0u64..4, 0u64..10_000, any::<u64>()]) {
            match parse_range(&h, len) {
                Ok(Some((first, last))) => {
                    prop_assert!(first <= last && last < len, "{h:?} len {len}: {first}-{last}");
                }
                Ok(None) => {}
                Err(RangeError) => {}
            }
        }

        /// `bytes=a-b` inside the resource is served exactly.
        #[test]
        fn fuzz_parse_range_exact(len in 1u64.., a in any::<u64>(), b in any::<u64>()) {
            let (a, b) = (a.min(b) % len, a.max(b) % len);
            let (a, b) = (a.min(b), a.max(b));
            prop_assert_eq!(parse_range(&format!("bytes={a}-{b}"), len), Ok(Some((a, b))));
            prop_assert_eq!(parse_range(&format!("bytes={a}-"), len), Ok(Some((a, len - 1))));
            prop_assert_eq!(parse_range(&format!("bytes={len}-"), len), Err(RangeError));
        }

        /// A stream token verifies only as signed: any string, and a signed
        /// token with one character changed, cut or extended, is refused.
        #[test]
        fn fuzz_stream_token(junk in any::<String>(), at in any::<prop::sample::Index>(), c in any::<char>(), how in 0..3u8) {
            let s = StreamSigner::new([9; 32]);
            let now = 1_795_357_800_000;
            prop_assert!(s.verify(&junk, "featured", now).is_err());
            let t = s.sign(AccountId(7), "featured", now + 60_000);
            prop_assert_eq!(s.verify(&t, "featured", now), Ok(AccountId(7)));
            let mut chars: Vec<char> = t.chars().collect();
            let i = at.index(chars.len());
            match how {
                0 => chars[i] = c,
                1 => chars.truncate(i),
                _ => chars.insert(i, c),
            }
            let bad: String = chars.into_iter().collect();
            if bad != t {
                prop_assert!(s.verify(&bad, "featured", now).is_err(), "{}", bad);
            }
        }
    }

    /// Bug found by fuzzing: the tag's hex was read in either case, so one
    /// token had many spellings (the decimals refuse `+` for that reason).
    #[test]
    fn fuzz_regression_uppercase_tag_is_refused() {
        let s = StreamSigner::new([9; 32]);
        let now = 1_795_357_800_000;
        let t = s.sign(AccountId(7), "featured", now + 60_000);
        let (head, tag) = t.rsplit_once('.').unwrap();
        assert!(tag.bytes().any(|b| b.is_ascii_lowercase()), "{t}");
        let upper = format!("{head}.{}", tag.to_ascii_uppercase());
        assert_eq!(
            s.verify(&upper, "featured", now),
            Err(StreamError::Malformed)
        );
        assert_eq!(s.verify(&t, "featured", now), Ok(AccountId(7)));
    }
}
