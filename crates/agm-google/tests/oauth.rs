#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Sign-in (PKCE authorize + code exchange) against the simulated Google.

use std::collections::HashMap;
use std::time::Duration;

use agm_google::oauth::{Pkce, SCOPES, authorize_url, random_state, state_matches};
use agm_google::{GoogleClient, GoogleConfig, UpstreamError};
use agm_sim::{RunningSim, Sim, SimMethod};

const REDIRECT: &str = "http://localhost:4567/oauth-callback";

fn config(base: &str) -> GoogleConfig {
    GoogleConfig {
        code_assist_endpoints: vec![base.to_owned()],
        oauth_auth_url: format!("{base}/o/oauth2/v2/auth"),
        oauth_token_url: format!("{base}/token"),
        userinfo_url: format!("{base}/oauth2/v2/userinfo"),
        gemini_api_base: base.to_owned(),
        oauth_client_id: "client-id".into(),
        oauth_client_secret: "client-secret".into(),
        user_agent: GoogleConfig::antigravity_user_agent("1.15.8"),
        setup_user_agent: "setup-ua".into(),
        connect_timeout: Duration::from_secs(2),
        setup_timeout: Duration::from_secs(5),
    }
}

async fn setup() -> (RunningSim, GoogleClient) {
    let sim = Sim::demo().start().await.unwrap();
    let client = GoogleClient::new(config(&sim.base_url())).unwrap();
    (sim, client)
}

fn query_of(url: &str) -> HashMap<String, String> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Opens the consent URL the way a browser would and returns where Google sends it.
async fn approve(url: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 302, "{}", response.text().await.unwrap());
    response.headers()["location"].to_str().unwrap().to_owned()
}

#[test]
fn the_consent_url_carries_every_parameter() {
    let url = authorize_url(
        &config("http://127.0.0.1:9"),
        REDIRECT,
        "state-1",
        "challenge-1",
        Some("bob@demo.agm"),
    );
    assert!(
        url.starts_with("http://127.0.0.1:9/o/oauth2/v2/auth?"),
        "{url}"
    );
    let q = query_of(&url);
    assert_eq!(q["client_id"], "client-id");
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["redirect_uri"], REDIRECT);
    assert_eq!(q["state"], "state-1");
    assert_eq!(q["access_type"], "offline");
    assert_eq!(q["prompt"], "consent");
    assert_eq!(q["code_challenge"], "challenge-1");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["login_hint"], "bob@demo.agm");
    let scopes: Vec<&str> = q["scope"].split(' ').collect();
    assert_eq!(scopes, SCOPES);
    assert!(scopes.contains(&"openid"));
    assert!(scopes.contains(&"https://www.googleapis.com/auth/experimentsandconfigs"));

    let no_hint = authorize_url(&config("http://x"), REDIRECT, "s", "c", None);
    assert!(!no_hint.contains("login_hint"));
}

#[tokio::test]
async fn sign_in_with_pkce_returns_a_refresh_token() {
    let (sim, google) = setup().await;
    let pkce = Pkce::generate();
    let state = random_state();
    let url = authorize_url(
        google.config(),
        REDIRECT,
        &state,
        &pkce.challenge,
        Some("bob@demo.agm"),
    );
    let location = approve(&url).await;
    assert!(location.starts_with(REDIRECT), "{location}");
    let back = query_of(&location);
    assert!(state_matches(&state, &back["state"]));

    let grant = google
        .exchange_code(&back["code"], REDIRECT, &pkce.verifier)
        .await
        .unwrap();
    assert_eq!(grant.refresh_token.as_deref(), Some("demo-refresh-bob"));
    assert!(grant.expires_in > Duration::from_secs(60));
    let me = google.user_info(&grant.access_token).await.unwrap();
    assert_eq!(me.email, "bob@demo.agm");

    let exchange = sim
        .requests()
        .into_iter()
        .find(|r| r.method == SimMethod::Token)
        .unwrap();
    assert_eq!(exchange.body["grant_type"], "authorization_code");
    assert_eq!(exchange.body["client_id"], "client-id");
    assert_eq!(exchange.body["client_secret"], "client-secret");
    assert_eq!(exchange.body["redirect_uri"], REDIRECT);
}

#[tokio::test]
async fn a_wrong_verifier_or_a_reused_code_is_refused() {
    let (_sim, google) = setup().await;
    let pkce = Pkce::generate();
    let url = authorize_url(google.config(), REDIRECT, "s", &pkce.challenge, None);
    let back = query_of(&approve(&url).await);

    let other = Pkce::generate();
    let err = google
        .exchange_code(&back["code"], REDIRECT, &other.verifier)
        .await
        .unwrap_err();
    assert!(
        matches!(err, UpstreamError::Status { status: 400, .. }),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("Invalid code verifier"), "{text}");
    assert!(text.contains("sign in again"), "{text}");
    assert!(
        !text.contains(&other.verifier),
        "no secret in errors: {text}"
    );

    // The sim, like Google, burns a code on its first use.
    let again = google
        .exchange_code(&back["code"], REDIRECT, &pkce.verifier)
        .await
        .unwrap_err();
    assert!(again.to_string().contains("sign-in code"), "{again}");
}

#[tokio::test]
async fn a_different_redirect_uri_is_refused() {
    let (_sim, google) = setup().await;
    let pkce = Pkce::generate();
    let url = authorize_url(google.config(), REDIRECT, "s", &pkce.challenge, None);
    let back = query_of(&approve(&url).await);
    let err = google
        .exchange_code(
            &back["code"],
            "http://localhost:1/oauth-callback",
            &pkce.verifier,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("redirect_uri_mismatch"), "{err}");
}
