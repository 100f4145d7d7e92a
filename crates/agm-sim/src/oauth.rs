//! OAuth: the token endpoint (refresh and PKCE code exchange), the auto-approving
//! consent screen, and userinfo.

use axum::http::StatusCode;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::answer::Answer;
use crate::error::OAuthError;
use crate::http::{Ctx, Outcome};
use crate::sim::{AuthCode, RefreshOutcome};

/// The scopes an Antigravity sign-in grants.
const DEFAULT_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform \
https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/userinfo.profile \
openid https://www.googleapis.com/auth/cclog https://www.googleapis.com/auth/experimentsandconfigs";

/// `POST /token`.
pub(crate) fn token(ctx: &Ctx) -> Outcome {
    let field = |name: &str| ctx.body.get(name).and_then(Value::as_str);
    match field("grant_type") {
        None => Err(OAuthError::invalid_request("Missing required parameter: grant_type").into()),
        Some("refresh_token") => {
            let Some(refresh_token) = field("refresh_token") else {
                return Err(OAuthError::invalid_request(
                    "Missing required parameter: refresh_token",
                )
                .into());
            };
            match ctx.sim.account_for_refresh_token(refresh_token) {
                RefreshOutcome::Granted { email } => Ok(Answer::ok(json!({
                    "access_token": ctx.sim.mint_access_token(&email),
                    "expires_in": ctx.sim.config().access_token_ttl.as_secs(),
                    "token_type": "Bearer",
                    "scope": DEFAULT_SCOPE,
                }))),
                RefreshOutcome::Revoked { .. } | RefreshOutcome::Unknown => {
                    Err(OAuthError::invalid_grant("Token has been expired or revoked.").into())
                }
            }
        }
        Some("authorization_code") => exchange_code(ctx),
        Some(other) => Err(OAuthError::new(
            "unsupported_grant_type",
            format!("Invalid grant_type: {other}"),
        )
        .into()),
    }
}

fn exchange_code(ctx: &Ctx) -> Outcome {
    let field = |name: &str| ctx.body.get(name).and_then(Value::as_str);
    let Some(code) = field("code") else {
        return Err(OAuthError::invalid_request("Missing required parameter: code").into());
    };
    let Some(redirect_uri) = field("redirect_uri") else {
        return Err(OAuthError::invalid_request("Missing required parameter: redirect_uri").into());
    };
    let Some(issued) = ctx.sim.take_auth_code(code) else {
        return Err(OAuthError::invalid_grant("Malformed auth code.").into());
    };
    if issued.redirect_uri != redirect_uri {
        return Err(OAuthError::new("redirect_uri_mismatch", "Bad Request").into());
    }
    let Some(verifier) = field("code_verifier") else {
        return Err(OAuthError::invalid_grant("Missing code verifier.").into());
    };
    if pkce_challenge(verifier) != issued.code_challenge {
        return Err(OAuthError::invalid_grant("Invalid code verifier.").into());
    }
    let Some(account) = ctx.sim.account(&issued.email) else {
        return Err(OAuthError::invalid_grant("Account has been deleted.").into());
    };
    let mut answer = json!({
        "access_token": ctx.sim.mint_access_token(&account.email),
        "expires_in": ctx.sim.config().access_token_ttl.as_secs(),
        "token_type": "Bearer",
        "scope": issued.scope,
        "id_token": id_token(&account.email, &issued.client_id),
    });
    if issued.offline {
        answer["refresh_token"] = json!(account.refresh_token);
    }
    Ok(Answer::ok(answer))
}

/// BASE64URL-NOPAD(SHA-256(verifier)): the S256 PKCE challenge.
pub(crate) fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// An unsigned JWT-shaped id token carrying the e-mail (clients may decode it).
fn id_token(email: &str, client_id: &str) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"sim","typ":"JWT"}"#);
    let claims = json!({
        "iss": "https://accounts.google.com",
        "aud": client_id,
        "sub": user_id(email),
        "email": email,
        "email_verified": true,
    });
    let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signature = URL_SAFE_NO_PAD.encode("agm-sim-unsigned");
    format!("{header}.{claims}.{signature}")
}

/// `GET /o/oauth2/v2/auth`: checks the parameters, then approves as the account named
/// by `login_hint` (else the first) and redirects with a code.
pub(crate) fn authorize(ctx: &Ctx) -> Outcome {
    let bad = |what: String| Answer::text(StatusCode::BAD_REQUEST, what);
    let mut params = Vec::new();
    for name in [
        "client_id",
        "redirect_uri",
        "response_type",
        "scope",
        "state",
        "code_challenge",
        "code_challenge_method",
    ] {
        match ctx.query(name) {
            Some(value) if !value.is_empty() => params.push(value),
            _ => {
                return Err(bad(format!(
                    "Error 400: invalid_request\nMissing required parameter: {name}"
                )));
            }
        }
    }
    let [
        client_id,
        redirect_uri,
        response_type,
        scope,
        state,
        challenge,
        challenge_method,
    ] = params[..]
    else {
        return Err(bad("Error 400: invalid_request".to_owned()));
    };
    if response_type != "code" {
        return Err(bad(format!(
            "Error 400: unsupported_response_type\nInvalid response_type: {response_type}"
        )));
    }
    if challenge_method != "S256" {
        return Err(bad(format!(
            "Error 400: invalid_request\nInvalid code_challenge_method: {challenge_method} (this client must use S256)"
        )));
    }
    if !(redirect_uri.starts_with("http://") || redirect_uri.starts_with("https://")) {
        return Err(bad(format!(
            "Error 400: invalid_request\nInvalid parameter value for redirect_uri: {redirect_uri}"
        )));
    }
    let login_hint = ctx.query("login_hint");
    let Some(account) = ctx.sim.account_for_login(login_hint) else {
        return Err(bad(format!(
            "Error 400: invalid_request\nNo account can sign in (login_hint: {})",
            login_hint.unwrap_or("none")
        )));
    };
    let code = ctx.sim.store_auth_code(AuthCode {
        email: account.email,
        redirect_uri: redirect_uri.to_owned(),
        code_challenge: challenge.to_owned(),
        client_id: client_id.to_owned(),
        scope: scope.to_owned(),
        offline: ctx.query("access_type") == Some("offline"),
    });
    let query = form_urlencoded::Serializer::new(String::new())
        .append_pair("state", state)
        .append_pair("code", &code)
        .append_pair("scope", scope)
        .append_pair("authuser", "0")
        .append_pair("prompt", "consent")
        .finish();
    let separator = if redirect_uri.contains('?') { '&' } else { '?' };
    Ok(Answer::Redirect(format!(
        "{redirect_uri}{separator}{query}"
    )))
}

/// `GET /oauth2/v2/userinfo`.
pub(crate) fn userinfo(ctx: &Ctx) -> Outcome {
    let email = ctx.require_account()?;
    let local = email.split('@').next().unwrap_or(email);
    let mut name: String = local.chars().take(1).flat_map(char::to_uppercase).collect();
    name.extend(local.chars().skip(1));
    Ok(Answer::ok(json!({
        "id": user_id(email),
        "email": email,
        "verified_email": true,
        "name": name,
        "given_name": name,
        "picture": "https://lh3.googleusercontent.com/a/sim",
    })))
}

/// A stable, Google-looking numeric user id for an e-mail.
fn user_id(email: &str) -> String {
    let digest = Sha256::digest(email.as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    format!("1{:020}", u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_is_base64url_sha256() {
        // Computed independently with Python's hashlib + urlsafe_b64encode.
        assert_eq!(
            pkce_challenge("dBjftJeZ4CVP-mB92K1uhbmi5sRhFeDx7pHX3oFXgAk"),
            "a0wgoCcTh_vendkUZ19Cid-yxhldhhml9FF6ry72B4E"
        );
    }
}
