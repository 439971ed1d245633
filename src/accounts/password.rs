//! Password hashing with argon2id (the `argon2` crate's default parameters:
//! m = 19 MiB, t = 2, p = 1) and a random salt from the OS, stored as a PHC
//! string.
//!
//! These functions are CPU-heavy and blocking (tens of milliseconds each in a
//! release build): the HTTP layer calls them in `spawn_blocking` behind a
//! semaphore, never on the async runtime.

use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::rngs::OsRng;
use rand::RngCore;

/// Why a password could not be hashed (an argon2 internal failure; with the
/// default parameters and a fresh salt this does not happen in practice).
#[derive(Debug, thiserror::Error)]
#[error("cannot hash the password: {0}")]
pub struct PasswordError(String);

/// Hashes `pw` with argon2id and a fresh random salt; returns the PHC string.
pub fn hash_password(pw: &str) -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(pw.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError(e.to_string()))
}

/// Whether `pw` matches the PHC string `phc`. A malformed `phc` is a
/// mismatch, not a panic. The parameters are read from `phc`, so hashes made
/// with other parameters keep working.
pub fn verify_password(pw: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default()
            .verify_password(pw.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// A real argon2id hash of a random password nobody knows, computed once.
/// Login verifies against it when the username is unknown, so that an unknown
/// user costs the same time as a wrong password and the two cannot be told
/// apart.
pub fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut secret = [0u8; 32];
        OsRng.fill_bytes(&mut secret);
        // If argon2 could fail here it would fail for every login too; fall
        // back to a parseable hash with the same parameters so that a verify
        // against it still runs (and fails).
        hash_password(&hex::encode(secret)).unwrap_or_else(|_| {
            "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
             rA9Ww9Dg9bGSnHJeYbS4bK7gn9JzK5sV9Vq3Q1Xk7rU"
                .to_string()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Argon2 with the real parameters is slow in a debug build: few calls.
    #[test]
    fn hash_verifies_the_right_password_only() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("correct hors", &phc));
    }

    #[test]
    fn malformed_hash_is_a_mismatch() {
        assert!(!verify_password("x", ""));
        assert!(!verify_password("x", "not a phc string"));
    }

    #[test]
    fn dummy_hash_is_a_real_argon2id_hash_computed_once() {
        let d = dummy_hash();
        assert!(d.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{d}");
        assert!(PasswordHash::new(d).is_ok());
        assert!(std::ptr::eq(d, dummy_hash()));
        assert!(!verify_password("", d));
    }
}
