//! The API key format: `sk_live_` + 32 random base62 characters + a
//! 6-character base62 checksum (CRC32 of everything before it, left-padded
//! with `0`). 46 characters in all, about 190 random bits.
//!
//! The checksum lets the server (and secret scanners) reject a mistyped key
//! without a lookup; it is not a secret and adds no strength.

use rand::rngs::OsRng;
use rand::Rng;
use sha2::{Digest, Sha256};

/// Every API key starts with this.
pub const KEY_PREFIX: &str = "sk_live_";
/// Random base62 characters after the prefix.
pub const RANDOM_LEN: usize = 32;
/// Base62 characters of the checksum.
pub const CHECKSUM_LEN: usize = 6;
/// The length of a whole key.
pub const KEY_LEN: usize = KEY_PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN;
/// The length of `key_prefix`, the part shown in lists.
pub const DISPLAY_PREFIX_LEN: usize = 12;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Why a presented string cannot be one of our keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// It does not start with `sk_live_`.
    #[error("does not start with sk_live_")]
    Prefix,
    /// It is not 46 characters long.
    #[error("has the wrong length")]
    Length,
    /// It holds a character outside 0-9, A-Z, a-z after the prefix.
    #[error("holds a character that is not a letter or digit")]
    Alphabet,
    /// Its last six characters do not match the rest.
    #[error("has a checksum that does not match")]
    Checksum,
}

fn base62_checksum(body: &str) -> [u8; CHECKSUM_LEN] {
    let mut n = crc32fast::hash(body.as_bytes()) as u64;
    let mut out = [b'0'; CHECKSUM_LEN];
    // 62^6 > 2^32, so six digits always hold a CRC32.
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    out
}

/// A new random key, with its checksum. The random part comes from the OS.
pub fn generate_key() -> String {
    let mut key = String::with_capacity(KEY_LEN);
    key.push_str(KEY_PREFIX);
    for _ in 0..RANDOM_LEN {
        key.push(BASE62[OsRng.gen_range(0..BASE62.len())] as char);
    }
    let sum = base62_checksum(&key);
    key.extend(sum.iter().map(|&b| b as char));
    key
}

/// Checks prefix, length, alphabet and checksum: everything that can be
/// checked without a lookup.
pub fn check_format(presented: &str) -> Result<(), FormatError> {
    if !presented.starts_with(KEY_PREFIX) {
        return Err(FormatError::Prefix);
    }
    if presented.len() != KEY_LEN {
        return Err(FormatError::Length);
    }
    let rest = &presented.as_bytes()[KEY_PREFIX.len()..];
    if !rest.iter().all(u8::is_ascii_alphanumeric) {
        return Err(FormatError::Alphabet);
    }
    // Both slices are ASCII from here on, so the split is on a char boundary.
    let (body, sum) = presented.split_at(KEY_LEN - CHECKSUM_LEN);
    if base62_checksum(body) != sum.as_bytes() {
        return Err(FormatError::Checksum);
    }
    Ok(())
}

/// The SHA-256 of a key: all the server keeps of it.
pub fn key_hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// The display prefix of a key (`sk_live_` and four more characters).
pub fn display_prefix(key: &str) -> String {
    key.chars().take(DISPLAY_PREFIX_LEN).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_pass_and_look_right() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..500 {
            let k = generate_key();
            assert_eq!(k.len(), KEY_LEN);
            assert!(k.starts_with("sk_live_"));
            assert_eq!(check_format(&k), Ok(()), "{k}");
            assert_eq!(display_prefix(&k).len(), 12);
            assert!(k.starts_with(&display_prefix(&k)));
            assert!(seen.insert(k));
        }
    }

    #[test]
    fn every_one_character_typo_is_caught() {
        let k = generate_key();
        for i in KEY_PREFIX.len()..KEY_LEN {
            for &c in BASE62 {
                if c == k.as_bytes()[i] {
                    continue;
                }
                let mut typo = k.clone().into_bytes();
                typo[i] = c;
                let typo = String::from_utf8(typo).unwrap();
                assert_eq!(check_format(&typo), Err(FormatError::Checksum), "{typo}");
            }
        }
    }

    #[test]
    fn wrong_shapes_are_refused() {
        let k = generate_key();
        assert_eq!(check_format(&k[..KEY_LEN - 1]), Err(FormatError::Length));
        assert_eq!(check_format(&format!("{k}0")), Err(FormatError::Length));
        assert_eq!(
            check_format(&k.replace("sk_live_", "sk_test_")),
            Err(FormatError::Prefix)
        );
        assert_eq!(check_format(""), Err(FormatError::Prefix));
        let mut bad = k.clone().into_bytes();
        bad[20] = b'-';
        assert_eq!(
            check_format(&String::from_utf8(bad).unwrap()),
            Err(FormatError::Alphabet)
        );
        // Multi-byte characters are refused, not sliced through.
        let s = format!("sk_live_{}é", "a".repeat(KEY_LEN - 10));
        assert_eq!(s.len(), KEY_LEN);
        assert_eq!(check_format(&s), Err(FormatError::Alphabet));
    }

    #[test]
    fn checksum_is_crc32_in_base62() {
        let body = format!("sk_live_{}", "A".repeat(32));
        let mut n = crc32fast::hash(body.as_bytes());
        let mut digits = Vec::new();
        while n > 0 {
            digits.push(BASE62[(n % 62) as usize]);
            n /= 62;
        }
        while digits.len() < 6 {
            digits.push(b'0');
        }
        digits.reverse();
        assert_eq!(base62_checksum(&body).to_vec(), digits);
    }
}
