//! Client API keys: the store keeps the SHA-256 of each secret and a short prefix for
//! display, never the secret.

use std::fmt::Write;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use crate::error::StoreError;
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
    /// What the key may do: models, rates, budgets, expiry.
    pub policy: KeyPolicy,
}

impl ClientKey {
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// A client key's limits, kept with the key. `None` (or no model pattern) is no limit.
/// The gateway enforces them before any upstream call; daily budgets are per UTC day.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPolicy {
    /// Model patterns the key may ask for, `*` matching any run of characters
    /// (`gemini-2.5-*`); empty: every model.
    pub models: Vec<String>,
    /// Requests per minute.
    pub rpm: Option<u32>,
    /// Requests in flight at once (a stream counts until it ends).
    pub concurrency: Option<u32>,
    /// Tokens (in + out) per UTC day.
    pub daily_tokens: Option<u64>,
    /// Requests per UTC day.
    pub daily_requests: Option<u64>,
    /// When the key stops working.
    pub expires_at: Option<OffsetDateTime>,
}

/// The longest model pattern accepted.
const MAX_PATTERN_CHARS: usize = 128;
/// The most model patterns one key holds.
const MAX_PATTERNS: usize = 64;

impl KeyPolicy {
    /// Whether any model pattern matches `model` (every model when there is none).
    pub fn allows_model(&self, model: &str) -> bool {
        self.models.is_empty() || self.models.iter().any(|p| glob_match(p, model))
    }

    /// Whether the key has expired at `now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// Whether any rate, concurrency or budget limit is set (expiry and models aside).
    pub fn has_counted_limits(&self) -> bool {
        self.rpm.is_some()
            || self.concurrency.is_some()
            || self.daily_tokens.is_some()
            || self.daily_requests.is_some()
    }

    /// Checks the model patterns: each non-empty, at most 128 characters of letters,
    /// digits and `-._:/@*`, at most 64 of them.
    pub fn check(&self) -> Result<(), StoreError> {
        if self.models.len() > MAX_PATTERNS {
            return Err(StoreError::InvalidInput {
                what: "model patterns",
                problem: format!("at most {MAX_PATTERNS} are allowed"),
            });
        }
        for pattern in &self.models {
            let fine = !pattern.is_empty()
                && pattern.chars().count() <= MAX_PATTERN_CHARS
                && pattern
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-._:/@*".contains(c));
            if !fine {
                return Err(StoreError::InvalidInput {
                    what: "model pattern",
                    problem: format!(
                        "{pattern:?} is not a model name or pattern (letters, digits, -._:/@ and * only, at most {MAX_PATTERN_CHARS} characters)"
                    ),
                });
            }
        }
        Ok(())
    }
}

/// `pattern` against `text`, `*` matching any run of characters (none included).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it now stands for.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// The model patterns as one stored column (`a,b*`), `None` for none.
pub(crate) fn models_column(models: &[String]) -> Option<String> {
    (!models.is_empty()).then(|| models.join(","))
}

/// The stored column back into patterns.
pub(crate) fn models_from_column(column: Option<&str>) -> Vec<String> {
    column
        .map(|c| {
            c.split(',')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
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
    fn model_patterns() {
        assert!(glob_match("gemini-2.5-*", "gemini-2.5-flash"));
        assert!(glob_match("*", ""));
        assert!(glob_match("claude-*-4-5", "claude-sonnet-4-5"));
        assert!(glob_match("a*b*c", "axxbyyc"));
        assert!(!glob_match("a*b*c", "axxbyy"));
        assert!(!glob_match("gemini-2.5-*", "gemini-3-pro"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
        let policy = KeyPolicy {
            models: vec!["gemini-*".into(), "claude-sonnet-4-5".into()],
            ..KeyPolicy::default()
        };
        assert!(policy.allows_model("claude-sonnet-4-5"));
        assert!(!policy.allows_model("claude-opus-4-5"));
        assert!(KeyPolicy::default().allows_model("anything"));
        assert!(policy.check().is_ok());
        let bad = KeyPolicy {
            models: vec!["a,b".into()],
            ..KeyPolicy::default()
        };
        assert!(bad.check().is_err());
        assert_eq!(
            models_from_column(models_column(&policy.models).as_deref()),
            policy.models
        );
    }

    #[test]
    fn hash_comparison() {
        assert!(hashes_match(&secret_sha256("a"), &secret_sha256("a")));
        assert!(!hashes_match(&secret_sha256("a"), &secret_sha256("b")));
        assert!(!hashes_match("ab", "abc"));
    }
}
