//! Client API keys: the store keeps the SHA-256 of each secret and a short prefix for
//! display, never the secret.

use std::fmt::Write;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::raw::RawKey;

/// Every generated secret starts with this.
pub const CLIENT_KEY_SCHEME: &str = "agm-";
/// Random characters after the scheme.
const SECRET_CHARS: usize = 40;
/// Characters of the secret kept for display (the scheme plus six).
const PREFIX_CHARS: usize = 10;
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A client key as stored (no secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientKey {
    /// Short random id (8 hex characters).
    pub id: String,
    pub name: String,
    /// The first characters of the secret, e.g. `agm-x7Kp2Q`, to tell keys apart.
    pub prefix: String,
    pub created_at: OffsetDateTime,
    /// When the key last opened a request (updated at most once a minute).
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

impl ClientKey {
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// `agm-` + 40 random URL-safe characters (240 bits).
pub(crate) fn generate_secret() -> String {
    let mut bytes = [0u8; SECRET_CHARS];
    rand::rng().fill_bytes(&mut bytes);
    let mut secret = String::with_capacity(CLIENT_KEY_SCHEME.len() + SECRET_CHARS);
    secret.push_str(CLIENT_KEY_SCHEME);
    // 256 is a multiple of 64, so `b % 64` is uniform.
    secret.extend(
        bytes
            .iter()
            .map(|b| char::from(URL_SAFE[usize::from(b % 64)])),
    );
    secret
}

/// Lowercase hex SHA-256 of the secret: what the store keeps.
pub(crate) fn secret_sha256(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    let mut hex = String::with_capacity(64);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    hex
}

/// The displayed prefix of a secret; also narrows the lookup when verifying.
pub(crate) fn secret_prefix(secret: &str) -> String {
    secret.chars().take(PREFIX_CHARS).collect()
}

/// How stale `last_used_at` may get: verifying a key writes at most once per this.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

/// Of the active keys with the secret's prefix (each with its stored hash), the one whose
/// hash is `secret_sha256`. Every candidate's hash is compared in constant time, with no
/// early exit, so every candidate costs the same.
pub(crate) fn matching_key(
    candidates: Vec<(RawKey, String)>,
    secret_sha256: &str,
) -> Option<RawKey> {
    let mut found = None;
    for (key, hash) in candidates {
        if hashes_match(&hash, secret_sha256) {
            found = Some(key);
        }
    }
    found
}

/// Whether verifying `key` at `now` should record the use.
pub(crate) fn last_used_is_stale(key: &RawKey, now: i64) -> bool {
    key.last_used_at
        .is_none_or(|last| now - last >= LAST_USED_RESOLUTION_MS)
}

/// Compares two hashes in constant time.
pub(crate) fn hashes_match(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_have_the_documented_shape() {
        let secret = generate_secret();
        assert_eq!(secret.len(), 44);
        assert!(secret.starts_with("agm-"));
        assert!(
            secret[4..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        );
        assert_ne!(generate_secret(), secret);
        assert_eq!(secret_prefix(&secret), secret[..10]);
    }

    #[test]
    fn sha256_is_lowercase_hex() {
        assert_eq!(
            secret_sha256("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn hash_comparison() {
        assert!(hashes_match(&secret_sha256("a"), &secret_sha256("a")));
        assert!(!hashes_match(&secret_sha256("a"), &secret_sha256("b")));
        assert!(!hashes_match("ab", "abc"));
    }
}
