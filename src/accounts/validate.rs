//! The registration rules: what a username, a password and an email may be.
//! Each violation is an [`AccountError::Invalid`] that names the field, which
//! the HTTP layer answers with 400.

use super::{AccountError, AccountsConfig};

/// The longest password accepted. Argon2 would take longer ones, but a
/// megabyte "password" is an attack on the hasher, not a password.
pub const MAX_PASSWORD_LEN: usize = 1024;
/// The longest email address (RFC 5321's path limit).
const MAX_EMAIL_LEN: usize = 254;
const MIN_USERNAME_LEN: usize = 3;
const MAX_USERNAME_LEN: usize = 64;

fn invalid(field: &'static str, message: impl Into<String>) -> AccountError {
    AccountError::Invalid {
        field,
        message: message.into(),
    }
}

/// Treats an empty or all-blank email as no email: a web form that leaves the
/// optional field empty sends `""`.
pub fn normalize_email(email: Option<&str>) -> Option<&str> {
    email.filter(|e| !e.trim().is_empty())
}

/// Checks a registration request against the rules of the contract.
///
/// - `username`: 3–64 characters, each an ASCII letter or digit or one of
///   `_ . @ -` (ASCII only, so that case-insensitive comparison is exact and
///   look-alike Unicode names cannot impersonate each other);
/// - `password`: at least `cfg.min_password_len` and at most
///   [`MAX_PASSWORD_LEN`] characters;
/// - `email` (optional; blank counts as absent): at most 254 characters, one
///   `@` with text on both sides, no whitespace or control characters.
pub fn validate_registration(
    cfg: &AccountsConfig,
    username: &str,
    password: &str,
    email: Option<&str>,
) -> Result<(), AccountError> {
    let n = username.chars().count();
    if !(MIN_USERNAME_LEN..=MAX_USERNAME_LEN).contains(&n)
        || !username
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-'))
    {
        return Err(invalid(
            "username",
            format!(
                "Invalid username: use {MIN_USERNAME_LEN} to {MAX_USERNAME_LEN} characters of \
                 letters, digits, '_', '.', '@' or '-'."
            ),
        ));
    }
    let p = password.chars().count();
    if p < cfg.min_password_len {
        return Err(invalid(
            "password",
            format!(
                "Invalid password: use at least {} characters.",
                cfg.min_password_len
            ),
        ));
    }
    if p > MAX_PASSWORD_LEN {
        return Err(invalid(
            "password",
            format!("Invalid password: use at most {MAX_PASSWORD_LEN} characters."),
        ));
    }
    if let Some(e) = normalize_email(email) {
        if !plausible_email(e) {
            return Err(invalid(
                "email",
                "Invalid email: expected an address such as name@example.com.",
            ));
        }
    }
    Ok(())
}

fn plausible_email(e: &str) -> bool {
    if e.len() > MAX_EMAIL_LEN || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    match e.split_once('@') {
        Some((local, domain)) => !local.is_empty() && !domain.is_empty() && !domain.contains('@'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AccountsConfig {
        AccountsConfig::for_tests()
    }

    fn field_of(r: Result<(), AccountError>) -> Option<&'static str> {
        match r {
            Ok(()) => None,
            Err(AccountError::Invalid { field, .. }) => Some(field),
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }

    #[test]
    fn registration_rules_table() {
        let long_name = "a".repeat(64);
        let too_long_name = "a".repeat(65);
        let long_pw = "p".repeat(MAX_PASSWORD_LEN);
        let too_long_pw = "p".repeat(MAX_PASSWORD_LEN + 1);
        let long_email = format!("{}@example.com", "a".repeat(254 - 12));
        let too_long_email = format!("{}@example.com", "a".repeat(255 - 12));
        #[rustfmt::skip]
        let cases: &[(&str, &str, Option<&str>, Option<&str>)] = &[
            // username, password, email, expected failing field
            ("testuser", "pass1234", None, None),
            ("a.b_c-d@e", "pass1234", Some("a@b.c"), None),
            ("abc", "pass1234", None, None),
            (&long_name, "pass1234", None, None),
            ("ab", "pass1234", None, Some("username")),
            (&too_long_name, "pass1234", None, Some("username")),
            ("", "pass1234", None, Some("username")),
            ("with space", "pass1234", None, Some("username")),
            ("semi;colon", "pass1234", None, Some("username")),
            ("ünïcode", "pass1234", None, Some("username")),
            ("testuser", "pass123", None, Some("password")),
            ("testuser", "", None, Some("password")),
            ("testuser", &long_pw, None, None),
            ("testuser", &too_long_pw, None, Some("password")),
            ("testuser", "pass1234", Some(""), None),
            ("testuser", "pass1234", Some("   "), None),
            ("testuser", "pass1234", Some(&long_email), None),
            ("testuser", "pass1234", Some(&too_long_email), Some("email")),
            ("testuser", "pass1234", Some("no-at-sign"), Some("email")),
            ("testuser", "pass1234", Some("@example.com"), Some("email")),
            ("testuser", "pass1234", Some("me@"), Some("email")),
            ("testuser", "pass1234", Some("a@b@c"), Some("email")),
            ("testuser", "pass1234", Some("a b@c.d"), Some("email")),
            // The first failing field is reported.
            ("x", "short", Some("bad"), Some("username")),
        ];
        for (u, p, e, want) in cases {
            assert_eq!(
                field_of(validate_registration(&cfg(), u, p, *e)),
                *want,
                "username {u:?} password len {} email {e:?}",
                p.len()
            );
        }
    }

    #[test]
    fn password_length_counts_characters_not_bytes() {
        // Eight characters, sixteen bytes.
        assert!(validate_registration(&cfg(), "user", "éééééééé", None).is_ok());
        assert!(validate_registration(&cfg(), "user", "ééééééé", None).is_err());
    }

    #[test]
    fn messages_name_the_field() {
        for (u, p, e, field) in [
            ("x", "pass1234", None, "username"),
            ("user", "x", None, "password"),
            ("user", "pass1234", Some("x"), "email"),
        ] {
            let msg = validate_registration(&cfg(), u, p, e)
                .unwrap_err()
                .to_string();
            assert!(msg.to_lowercase().contains(field), "{msg}");
        }
    }
}
