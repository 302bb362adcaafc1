//! Password hashing: argon2id with the original system's parameters (reference §2.1:
//! m = 64 MiB, t = 3, p = 2, 16-byte salt, 32-byte hash), stored as a PHC string.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

fn hasher() -> Argon2<'static> {
    // The parameters are constants known to be valid; `Params::new` only rejects out-of-range values.
    let params = Params::new(64 * 1024, 3, 2, Some(32)).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes `password` into an argon2id PHC string with a fresh random salt.
pub fn hash(password: &str) -> anyhow::Result<String> {
    hasher()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("argon2 hashing failed: {e}"))
}

/// Verifies `password` against a stored PHC string in constant time. An unparsable or
/// non-argon2id hash never verifies.
pub fn verify(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else { return false };
    if parsed.algorithm.as_str() != "argon2id" || parsed.version != Some(19) {
        return false;
    }
    hasher().verify_password(password.as_bytes(), &parsed).is_ok()
}

/// The strength rules of reference §2.1: at least 8 characters with an upper-case letter,
/// a lower-case letter, a digit and a character outside `[A-Za-z0-9]`.
pub fn is_strong(password: &str) -> bool {
    password.chars().count() >= 8
        && password.chars().any(|c| c.is_ascii_uppercase())
        && password.chars().any(|c| c.is_ascii_lowercase())
        && password.chars().any(|c| c.is_ascii_digit())
        && password.chars().any(|c| !c.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify_round_trips_with_the_reference_parameters() {
        let h = hash("Correct-Horse-9").expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=65536,t=3,p=2$"), "{h}");
        assert!(verify("Correct-Horse-9", &h));
        assert!(!verify("correct-horse-9", &h));
        assert!(!verify("Correct-Horse-9", "not a hash"));
    }

    #[test]
    fn strength_rules() {
        assert!(is_strong("Abcdef1!"));
        assert!(!is_strong("Abcde1!"), "too short");
        assert!(!is_strong("abcdef1!"), "no upper");
        assert!(!is_strong("ABCDEF1!"), "no lower");
        assert!(!is_strong("Abcdefg!"), "no digit");
        assert!(!is_strong("Abcdefg1"), "no symbol");
    }
}
