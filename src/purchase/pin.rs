//! The purchase PIN: 4 to 8 ASCII digits, stored only as an argon2id PHC string.
//!
//! Hashing and verifying are deliberately slow (argon2's default cost), so the
//! callers do them outside every lock; [`super::Purchases::check_pin`] does so.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// Shortest PIN accepted.
pub const MIN_PIN_LEN: usize = 4;
/// Longest PIN accepted.
pub const MAX_PIN_LEN: usize = 8;

/// Why a PIN could not be set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PinFormatError {
    /// Not 4 to 8 ASCII digits. The message names the field as the contract asks.
    #[error("pin must be 4 to 8 digits.")]
    Invalid,
    /// The hasher failed (it does not for valid input; kept rather than panic).
    #[error("the pin could not be hashed")]
    Hash,
}

/// Checks that `pin` is 4 to 8 ASCII digits.
pub fn validate_pin(pin: &str) -> Result<(), PinFormatError> {
    if (MIN_PIN_LEN..=MAX_PIN_LEN).contains(&pin.len()) && pin.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(PinFormatError::Invalid)
    }
}

/// Validates `pin` and hashes it with argon2id (default parameters, random salt)
/// into a PHC string.
pub fn hash_pin(pin: &str) -> Result<String, PinFormatError> {
    hash_pin_with(&Argon2::default(), pin)
}

/// [`hash_pin`] with chosen argon2 parameters (tests use cheap ones).
pub fn hash_pin_with(argon: &Argon2<'_>, pin: &str) -> Result<String, PinFormatError> {
    validate_pin(pin)?;
    let mut raw = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut raw);
    let salt = SaltString::encode_b64(&raw).map_err(|_| PinFormatError::Hash)?;
    argon
        .hash_password(pin.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| PinFormatError::Hash)
}

/// Whether `pin` matches the stored PHC string. A malformed stored hash or a
/// malformed PIN never matches. The comparison inside argon2 is constant-time.
pub fn verify_pin(pin: &str, phc: &str) -> bool {
    if validate_pin(pin).is_err() {
        return false;
    }
    match PasswordHash::new(phc) {
        // The parameters come from the PHC string, so a hash made with other
        // parameters still verifies.
        Ok(parsed) => Argon2::default()
            .verify_password(pin.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Cheap argon2id parameters for tests in this module tree (debug builds make
/// the default cost take seconds).
#[cfg(test)]
pub(crate) fn cheap_argon() -> Argon2<'static> {
    let params = argon2::Params::new(256, 1, 1, None).expect("constant parameters are valid");
    Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_length_and_digits() {
        for ok in ["0000", "1234", "12345678", "0123456"] {
            assert_eq!(validate_pin(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "123",
            "123456789",
            "12a4",
            "１２３４",
            " 1234",
            "12.4",
            "+123",
        ] {
            assert_eq!(validate_pin(bad), Err(PinFormatError::Invalid), "{bad:?}");
        }
        assert!(PinFormatError::Invalid.to_string().starts_with("pin "));
    }

    #[test]
    fn default_hash_is_argon2id_and_verifies() {
        let phc = hash_pin("2468").expect("valid pin");
        assert!(phc.starts_with("$argon2id$"), "{phc}");
        assert!(!phc.contains("2468"));
        assert!(verify_pin("2468", &phc));
        assert!(!verify_pin("2469", &phc));
        assert_eq!(hash_pin("24x8"), Err(PinFormatError::Invalid));
    }

    #[test]
    fn salts_differ_and_garbage_never_matches() {
        let argon = cheap_argon();
        let a = hash_pin_with(&argon, "1111").expect("valid");
        let b = hash_pin_with(&argon, "1111").expect("valid");
        assert_ne!(a, b, "a random salt each time");
        assert!(verify_pin("1111", &a) && verify_pin("1111", &b));
        assert!(!verify_pin("1111", "not a phc string"));
        assert!(!verify_pin("", &a));
    }
}
