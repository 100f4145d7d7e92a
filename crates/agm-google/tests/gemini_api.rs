#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The official Gemini API client (API key, safe mode) against the simulated Google.

use std::time::Duration;

use agm_google::{ErrorClass, GoogleClient, GoogleConfig, UpstreamError};
use agm_sim::{Fault, RunningSim, Sim, SimMethod};
use agm_translate::models::{OfficialEquivalents, official_equivalent};
use agm_wire::gemini::{Content, GenerateContentRequest, GenerateContentResponse, Part};
use futures_util::StreamExt;

const KEY: &str = "demo-gemini-key";
const WRONG_KEY: &str = "AIzaSyWrongButSecret0123456789";

async fn setup() -> (RunningSim, GoogleClient) {
    let sim = Sim::demo().start().await.unwrap();
    let base = sim.base_url();
    let config = GoogleConfig {
        // No Code Assist endpoint: nothing here may use one.
        code_assist_endpoints: Vec::new(),
        oauth_auth_url: format!("{base}/o/oauth2/v2/auth"),
        oauth_token_url: format!("{base}/token"),
        userinfo_url: format!("{base}/oauth2/v2/userinfo"),
        // A trailing slash must not double the one in the path.
        gemini_api_base: format!("{base}/"),
        oauth_client_id: "client".into(),
        oauth_client_secret: "secret".into(),
        user_agent: GoogleConfig::antigravity_user_agent("1.15.8"),
        setup_user_agent: "setup-ua".into(),
        connect_timeout: Duration::from_secs(2),
        setup_timeout: Duration::from_secs(5),
    };
    (sim, GoogleClient::new(config).unwrap())
}

fn request(text: &str) -> GenerateContentRequest {
    GenerateContentRequest {
        contents: vec![Content::new("user", vec![Part::text(text)])],
        ..GenerateContentRequest::default()
    }
}

fn text_of(chunk: &GenerateContentResponse) -> String {
    chunk
        .parts()
        .iter()
        .filter_map(|p| p.text.as_deref())
        .collect()
}

/// The key appears in no rendering of the error.
fn assert_not_echoed(err: &UpstreamError, key: &str) {
    assert!(!err.to_string().contains(key), "{err}");
    assert!(!err.message().contains(key), "{err}");
    assert!(!format!("{err:?}").contains(key), "{err:?}");
}

#[tokio::test]
async fn generate_sends_the_key_as_a_header_only() {
    let (sim, google) = setup().await;
    let answer = google
        .official_generate(KEY, "gemini-2.5-flash", &request("hello there"))
        .await
        .unwrap();
    assert_eq!(
        text_of(&answer),
        "Simulated gemini-2.5-flash reply to: hello there"
    );
    assert_eq!(answer.finish_reason(), Some("STOP"));
    let sent = sim.requests();
    assert_eq!(sent.len(), 1);
    let call = &sent[0];
    assert_eq!(call.method, SimMethod::GeminiGenerateContent);
    assert_eq!(call.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(call.header("x-goog-api-key"), Some(KEY));
    assert!(call.header("authorization").is_none());
    assert!(!call.path.contains(KEY));
    // The plain request, not the Cloud Code envelope.
    assert!(call.body.get("contents").is_some());
    assert!(call.body.get("request").is_none() && call.body.get("project").is_none());
}

#[tokio::test]
async fn session_id_is_not_sent() {
    let (sim, google) = setup().await;
    let mut with_session = request("remember me");
    with_session.session_id = Some("session-123".into());
    let answer = google
        .official_generate(KEY, "models/gemini-2.5-pro", &with_session)
        .await
        .unwrap();
    assert_eq!(
        text_of(&answer),
        "Simulated gemini-2.5-pro reply to: remember me"
    );
    let mut chunks = google
        .official_stream(KEY, "gemini-2.5-pro", &with_session)
        .await
        .unwrap();
    while let Some(chunk) = chunks.next().await {
        chunk.unwrap();
    }
    let sent = sim.requests();
    assert_eq!(sent.len(), 2);
    for call in &sent {
        assert!(call.body.get("sessionId").is_none(), "{}", call.body);
        assert!(!call.body.to_string().contains("session-123"));
    }
    // The caller's request is left as it was.
    assert_eq!(with_session.session_id.as_deref(), Some("session-123"));
}

#[tokio::test]
async fn stream_yields_the_text_in_chunks() {
    let (sim, google) = setup().await;
    let model = official_equivalent("gemini-3-flash");
    assert_eq!(model, "gemini-3-flash-preview");
    let mut chunks = google
        .official_stream(KEY, model, &request("stream please"))
        .await
        .unwrap();
    let mut text = String::new();
    let mut count = 0;
    let mut last = None;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.unwrap();
        text.push_str(&text_of(&chunk));
        count += 1;
        last = Some(chunk);
    }
    assert!(count > 1, "one chunk only");
    assert_eq!(
        text,
        "Simulated gemini-3-flash-preview reply to: stream please"
    );
    let last = last.unwrap();
    assert_eq!(last.finish_reason(), Some("STOP"));
    assert!(last.usage_metadata.is_some());
    let call = &sim.requests()[0];
    assert_eq!(call.method, SimMethod::GeminiStreamGenerateContent);
    assert_eq!(
        call.path,
        "/v1beta/models/gemini-3-flash-preview:streamGenerateContent?alt=sse"
    );
    assert_eq!(call.header("x-goog-api-key"), Some(KEY));
}

#[tokio::test]
async fn broken_stream_ends_with_a_network_error() {
    let (sim, google) = setup().await;
    sim.script(Fault::break_stream_after(
        SimMethod::GeminiStreamGenerateContent,
        1,
    ));
    let items: Vec<_> = google
        .official_stream(KEY, "gemini-2.5-flash", &request("hi"))
        .await
        .unwrap()
        .collect()
        .await;
    assert!(items.first().unwrap().is_ok());
    let last = items.last().unwrap().as_ref().unwrap_err();
    assert_eq!(last.class(0), ErrorClass::Network, "{last}");
}

#[tokio::test]
async fn empty_200_is_an_empty_answer() {
    let (sim, google) = setup().await;
    sim.script(Fault::empty_body(SimMethod::GeminiGenerateContent));
    let answer = google
        .official_generate(KEY, "gemini-2.5-flash", &request("hi"))
        .await
        .unwrap();
    assert!(answer.candidates.is_empty());
}

#[tokio::test]
async fn count_tokens_and_list_models() {
    let (sim, google) = setup().await;
    let short = vec![Content::new("user", vec![Part::text("hi")])];
    let long = vec![Content::new(
        "user",
        vec![Part::text("a fairly long sentence to count. ".repeat(40))],
    )];
    let few = google
        .official_count_tokens(KEY, "gemini-2.5-flash", &short)
        .await
        .unwrap();
    let many = google
        .official_count_tokens(KEY, "gemini-2.5-flash", &long)
        .await
        .unwrap();
    assert!(few > 0 && many > few, "{few} vs {many}");
    let count_call = sim
        .requests()
        .into_iter()
        .find(|r| r.method == SimMethod::GeminiCountTokens)
        .unwrap();
    assert_eq!(
        count_call.path,
        "/v1beta/models/gemini-2.5-flash:countTokens"
    );
    assert!(count_call.body.get("contents").is_some());

    let models = google.official_list_models(KEY).await.unwrap();
    for expected in [
        "gemini-2.5-flash",
        "gemini-2.5-pro",
        "gemini-2.5-flash-lite",
        "gemini-3-pro-preview",
        "gemini-3-flash-preview",
    ] {
        assert!(models.iter().any(|m| m == expected), "{models:?}");
    }
    assert!(models.iter().all(|m| !m.starts_with("models/")));
    let list_call = sim
        .requests()
        .into_iter()
        .find(|r| r.method == SimMethod::GeminiListModels)
        .unwrap();
    assert_eq!(list_call.header("x-goog-api-key"), Some(KEY));
    assert!(!list_call.path.contains(KEY));
}

#[tokio::test]
async fn missing_key_is_a_key_problem() {
    let (sim, google) = setup().await;
    let err = google
        .official_generate("", "gemini-2.5-flash", &request("hi"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
    assert_eq!(err.class(0), ErrorClass::InvalidApiKey, "{err}");
    assert!(sim.requests()[0].header("x-goog-api-key").is_none());
    let err = google.official_list_models("  ").await.unwrap_err();
    assert_eq!(err.class(0), ErrorClass::InvalidApiKey, "{err}");
}

#[tokio::test]
async fn wrong_key_is_classified_and_never_echoed() {
    let (_sim, google) = setup().await;
    let generate = google
        .official_generate(WRONG_KEY, "gemini-2.5-flash", &request("hi"))
        .await
        .unwrap_err();
    assert_eq!(generate.status(), Some(400));
    assert!(
        generate.message().contains("API key not valid"),
        "{generate}"
    );
    let stream = match google
        .official_stream(WRONG_KEY, "gemini-2.5-flash", &request("hi"))
        .await
    {
        Ok(_) => panic!("a wrong key streamed"),
        Err(e) => e,
    };
    let count = google
        .official_count_tokens(WRONG_KEY, "gemini-2.5-flash", &[])
        .await
        .unwrap_err();
    let list = google.official_list_models(WRONG_KEY).await.unwrap_err();
    for err in [&generate, &stream, &count, &list] {
        assert_eq!(err.class(0), ErrorClass::InvalidApiKey, "{err}");
        assert_not_echoed(err, WRONG_KEY);
    }
    // A key that cannot be a header value is refused before sending, not echoed.
    let odd = "AIza\nsecret";
    let err = google
        .official_generate(odd, "gemini-2.5-flash", &request("hi"))
        .await
        .unwrap_err();
    assert_eq!(err.class(0), ErrorClass::InvalidApiKey);
    assert_not_echoed(&err, "secret");
}

#[tokio::test]
async fn rate_limits_on_the_official_path_carry_their_delay() {
    let (sim, google) = setup().await;
    sim.script(Fault::rate_limited(
        SimMethod::GeminiGenerateContent,
        "2.5s",
    ));
    let err = google
        .official_generate(KEY, "gemini-2.5-flash", &request("hi"))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(429));
    assert_eq!(
        err.class(0),
        ErrorClass::RateLimited {
            delay: Some(Duration::from_millis(2500))
        }
    );
    sim.script(Fault::quota_exhausted(
        SimMethod::GeminiStreamGenerateContent,
        "1h",
    ));
    let err = match google
        .official_stream(KEY, "gemini-2.5-flash", &request("hi"))
        .await
    {
        Ok(_) => panic!("a 429 streamed"),
        Err(e) => e,
    };
    assert_eq!(
        err.class(0),
        ErrorClass::QuotaExhausted {
            delay: Some(Duration::from_secs(3600))
        }
    );
    // A bare 429 with only Retry-After.
    sim.script(
        Fault::status(
            SimMethod::GeminiCountTokens,
            429,
            "RESOURCE_EXHAUSTED",
            "Resource has been exhausted (e.g. check quota).",
        )
        .with_header("retry-after", "7"),
    );
    let err = google
        .official_count_tokens(KEY, "gemini-2.5-flash", &[])
        .await
        .unwrap_err();
    assert_eq!(
        err.class(0),
        ErrorClass::RateLimited {
            delay: Some(Duration::from_secs(7))
        }
    );
    // After the faults, the same calls answer.
    google
        .official_generate(KEY, "gemini-2.5-flash", &request("hi"))
        .await
        .unwrap();
}

#[tokio::test]
async fn unknown_model_is_not_found() {
    let (_sim, google) = setup().await;
    let err = google
        .official_generate(KEY, "claude-sonnet-4-5", &request("hi"))
        .await
        .unwrap_err();
    assert_eq!(err.class(0), ErrorClass::NotFound, "{err}");
    // The equivalent is what the official API serves.
    let model = official_equivalent("claude-sonnet-4-5");
    let answer = google
        .official_generate(KEY, model, &request("hi"))
        .await
        .unwrap();
    assert_eq!(text_of(&answer), "Simulated gemini-2.5-pro reply to: hi");
}

#[test]
fn official_equivalents_table() {
    assert_eq!(
        official_equivalent("gemini-3-pro-high"),
        "gemini-3-pro-preview"
    );
    assert_eq!(
        official_equivalent("gemini-3-pro-low"),
        "gemini-3-pro-preview"
    );
    assert_eq!(official_equivalent("gemini-3-pro"), "gemini-3-pro-preview");
    assert_eq!(
        official_equivalent("gemini-3-flash"),
        "gemini-3-flash-preview"
    );
    assert_eq!(official_equivalent("gemini-2.5-flash"), "gemini-2.5-flash");
    assert_eq!(official_equivalent("gemini-2.5-pro"), "gemini-2.5-pro");
    assert_eq!(
        official_equivalent("claude-opus-4-5-thinking"),
        "gemini-2.5-pro"
    );
    assert_eq!(
        official_equivalent("claude-sonnet-4-5-thinking"),
        "gemini-2.5-pro"
    );
    assert_eq!(official_equivalent("claude-sonnet-4-5"), "gemini-2.5-pro");
    assert_eq!(
        official_equivalent("gpt-oss-120b-medium"),
        "gemini-2.5-flash"
    );
    let configured = OfficialEquivalents {
        claude_large: "gemini-3-pro-preview",
        claude_small: "gemini-2.5-flash-lite",
    };
    assert_eq!(
        configured.resolve("claude-opus-4-5-thinking"),
        "gemini-3-pro-preview"
    );
    assert_eq!(
        configured.resolve("gpt-oss-120b-medium"),
        "gemini-2.5-flash-lite"
    );
    assert_eq!(
        configured.resolve("gemini-3-pro-high"),
        "gemini-3-pro-preview"
    );
}
