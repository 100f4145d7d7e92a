//! Google sign-in, the installed-app flow (docs/PROTOCOL.md §1): PKCE, `state`, the consent
//! URL, and the exchange of the returned code for tokens.
//!
//! The caller owns the redirect: it listens on `http://localhost:<port>/oauth-callback`
//! (or takes the pasted redirect URL), checks `state` with [`state_matches`], and hands
//! the code to [`GoogleClient::exchange_code`] with the same redirect URI and verifier.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::classify::UpstreamError;
use crate::client::{GoogleClient, GoogleConfig, TokenGrant};

/// The scopes an Antigravity sign-in asks for.
pub const SCOPES: &[&str] = &[
    "openid",
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/userinfo.email",
    "https://www.googleapis.com/auth/userinfo.profile",
    "https://www.googleapis.com/auth/cclog",
    "https://www.googleapis.com/auth/experimentsandconfigs",
];

/// A PKCE pair: the verifier stays with agm, the challenge goes in the consent URL.
#[derive(Clone, PartialEq, Eq)]
pub struct Pkce {
    /// 43 URL-safe characters (32 random bytes), sent only with the code exchange.
    pub verifier: String,
    /// BASE64URL-NOPAD(SHA-256(verifier)).
    pub challenge: String,
}

impl Pkce {
    /// A fresh random pair.
    pub fn generate() -> Pkce {
        let verifier = random_token(32);
        let challenge = s256_challenge(&verifier);
        Pkce {
            verifier,
            challenge,
        }
    }
}

impl std::fmt::Debug for Pkce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkce")
            .field("verifier", &"[redacted]")
            .field("challenge", &self.challenge)
            .finish()
    }
}

/// The S256 challenge of a verifier.
pub fn s256_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// A random `state` (32 URL-safe characters), checked when Google redirects back.
pub fn random_state() -> String {
    random_token(24)
}

/// Whether the `state` that came back is the one sent, compared in constant time.
pub fn state_matches(sent: &str, received: &str) -> bool {
    sent.len() == received.len()
        && sent
            .bytes()
            .zip(received.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// The consent URL: `oauth_auth_url` with the client id, the redirect URI, the scopes,
/// `state`, offline access (so that Google returns a refresh token), a forced consent
/// screen and the PKCE challenge. `login_hint` pre-selects an account.
pub fn authorize_url(
    config: &GoogleConfig,
    redirect_uri: &str,
    state: &str,
    challenge: &str,
    login_hint: Option<&str>,
) -> String {
    let scope = SCOPES.join(" ");
    let mut query = form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("client_id", &config.oauth_client_id)
        .append_pair("response_type", "code")
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("scope", &scope)
        .append_pair("state", state)
        .append_pair("access_type", "offline")
        .append_pair("prompt", "consent")
        .append_pair("code_challenge", challenge)
        .append_pair("code_challenge_method", "S256");
    if let Some(hint) = login_hint.filter(|h| !h.is_empty()) {
        query.append_pair("login_hint", hint);
    }
    let base = &config.oauth_auth_url;
    let separator = if base.contains('?') { '&' } else { '?' };
    format!("{base}{separator}{}", query.finish())
}

/// Why a consent redirect carries no usable code. Nothing was saved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedirectError {
    #[error("Google did not sign you in: {error}{detail}; nothing was saved")]
    Refused { error: String, detail: String },
    #[error(
        "the answer does not belong to this sign-in (its state differs: an old or foreign sign-in page?); nothing was saved: {again}"
    )]
    ForeignState { again: String },
    #[error("Google's answer has no code: {again}")]
    NoCode { again: String },
}

/// The code in a consent redirect's query, once its `error` and `state` are checked;
/// else why not, ending with `again` (what to do: "run `agm accounts add` again").
/// The CLI's redirect listener and the console's `/ui/oauth/callback` both read it.
pub fn code_from_redirect<S: std::hash::BuildHasher>(
    params: &std::collections::HashMap<String, String, S>,
    expected_state: &str,
    again: &str,
) -> Result<String, RedirectError> {
    if let Some(error) = params.get("error") {
        let detail = params
            .get("error_description")
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        return Err(RedirectError::Refused {
            error: error.clone(),
            detail,
        });
    }
    match params.get("state") {
        Some(state) if state_matches(expected_state, state) => {}
        _ => {
            return Err(RedirectError::ForeignState {
                again: again.to_owned(),
            });
        }
    }
    match params
        .get("code")
        .map(|c| c.trim())
        .filter(|c| !c.is_empty())
    {
        Some(code) => Ok(code.to_owned()),
        None => Err(RedirectError::NoCode {
            again: again.to_owned(),
        }),
    }
}

impl GoogleClient {
    /// Trades the code from the consent redirect for tokens (`grant_type=
    /// authorization_code` with the PKCE verifier). `redirect_uri` must be the one in
    /// the consent URL. A refused code is a `Status` error that says to sign in again.
    pub async fn exchange_code(
        &self,
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<TokenGrant, UpstreamError> {
        let config = self.config();
        let form = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", verifier),
            ("client_id", config.oauth_client_id.as_str()),
            ("client_secret", config.oauth_client_secret.as_str()),
        ];
        self.token_call(&form).await.map_err(|err| match err {
            // `invalid_grant` here is about the code, not a stored refresh token.
            UpstreamError::InvalidGrant { description } => UpstreamError::Status {
                endpoint: config.oauth_token_url.clone(),
                status: 400,
                error: agm_wire::cloudcode::GoogleError {
                    code: 400,
                    message: format!(
                        "invalid_grant: Google refused the sign-in code ({description}); sign in again"
                    ),
                    status: "INVALID_ARGUMENT".to_owned(),
                    details: Vec::new(),
                },
                retry_after: None,
            },
            other => other,
        })
    }
}

/// `bytes` random bytes in base64url without padding.
fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    URL_SAFE_NO_PAD.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s256_is_base64url_of_sha256() {
        // Computed independently with Python's hashlib + urlsafe_b64encode.
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mB92K1uhbmi5sRhFeDx7pHX3oFXgAk"),
            "a0wgoCcTh_vendkUZ19Cid-yxhldhhml9FF6ry72B4E"
        );
    }

    #[test]
    fn pairs_and_states_are_random_and_url_safe() {
        let (a, b) = (Pkce::generate(), Pkce::generate());
        assert_ne!(a.verifier, b.verifier);
        assert_eq!(a.verifier.len(), 43);
        assert_eq!(a.challenge, s256_challenge(&a.verifier));
        assert!(!format!("{a:?}").contains(&a.verifier));
        let state = random_state();
        assert_eq!(state.len(), 32);
        assert!(
            state
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        assert_ne!(state, random_state());
    }

    #[test]
    fn state_comparison() {
        assert!(state_matches("abc", "abc"));
        assert!(!state_matches("abc", "abd"));
        assert!(!state_matches("abc", "abcd"));
        assert!(!state_matches("abc", ""));
    }
}
