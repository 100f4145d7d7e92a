//! The sim over real HTTP, as the gateway and `agm demo` use it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use agm_sim::{
    Fault, RunningSim, ScriptedReply, Sim, SimAccount, SimConfig, SimMethod, pkce_challenge,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

mod common;
use common::{ask, envelope, sse_events};

struct Fixture {
    sim: RunningSim,
    http: reqwest::Client,
}

impl Fixture {
    async fn start() -> Fixture {
        Fixture::with(Sim::demo()).await
    }

    async fn with(sim: Sim) -> Fixture {
        let sim = sim.start().await.expect("sim starts");
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        Fixture { sim, http }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    fn alice(&self) -> String {
        self.sim.issue_access_token("alice@demo.agm").unwrap()
    }

    async fn post(&self, path: &str, token: &str, body: &Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn token_form(&self, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url("/token"))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }

    async fn raw_post(&self, path: &str, token: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

fn alice_asks(text: &str) -> Value {
    envelope("demo-project-alice", "gemini-3-flash", ask(text))
}

fn error_message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap_or_default()
}

fn chunk_text(chunk: &Value) -> String {
    chunk["response"]["candidates"][0]["content"]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["thought"] != json!(true))
        .filter_map(|p| p["text"].as_str())
        .collect()
}

// ------------------------------------------------------------------ OAuth

#[tokio::test]
async fn refresh_token_gives_an_access_token_that_userinfo_accepts() {
    let f = Fixture::start().await;
    let (status, token) = f
        .token_form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "demo-refresh-bob"),
            ("client_id", "client"),
            ("client_secret", "secret"),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{token}");
    let access = token["access_token"].as_str().unwrap();
    assert!(access.starts_with("ya29.sim-"));
    assert_eq!(token["expires_in"], 3599);
    assert_eq!(token["token_type"], "Bearer");

    let (status, info) = f.get("/oauth2/v2/userinfo", access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["email"], "bob@demo.agm");
    assert_eq!(info["verified_email"], true);
    assert_eq!(info["name"], "Bob");
    assert!(info["id"].as_str().is_some());

    let captured = f.sim.requests();
    assert_eq!(captured[0].method, SimMethod::Token);
    assert_eq!(captured[0].body["refresh_token"], "demo-refresh-bob");
    assert_eq!(captured[0].account.as_deref(), Some("bob@demo.agm"));
    assert_eq!(captured[1].account.as_deref(), Some("bob@demo.agm"));
}

#[tokio::test]
async fn unknown_or_revoked_refresh_tokens_are_invalid_grant() {
    let f = Fixture::start().await;
    let (status, body) = f
        .token_form(&[("grant_type", "refresh_token"), ("refresh_token", "nope")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": "invalid_grant", "error_description": "Token has been expired or revoked."})
    );

    let access = f.alice();
    f.sim.revoke_refresh_token("alice@demo.agm");
    let (status, body) = f
        .token_form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "demo-refresh-alice"),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    let (status, _) = f.get("/oauth2/v2/userinfo", &access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_and_expired_tokens_get_google_401() {
    let f = Fixture::start().await;
    let (status, body) = f
        .post("/v1internal:loadCodeAssist", "ya29.bogus", &json!({}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], 401);
    assert_eq!(body["error"]["status"], "UNAUTHENTICATED");
    assert!(error_message(&body).starts_with("Request had invalid authentication credentials"));

    let token = f.alice();
    let (status, _) = f
        .post("/v1internal:generateContent", &token, &alice_asks("hi"))
        .await;
    assert_eq!(status, StatusCode::OK);
    f.sim.expire_access_tokens();
    let (status, body) = f
        .post("/v1internal:generateContent", &token, &alice_asks("hi"))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    // The rejected request is captured all the same, without an account.
    let last = f.sim.requests().pop().unwrap();
    assert_eq!(last.method, SimMethod::GenerateContent);
    assert_eq!(last.account, None);
}

#[tokio::test]
async fn short_token_ttl_expires() {
    let config = SimConfig {
        access_token_ttl: Duration::from_millis(1),
        ..SimConfig::default()
    };
    let f = Fixture::with(Sim::demo_with(config)).await;
    let token = f.alice();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let (status, _) = f.get("/oauth2/v2/userinfo", &token).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

fn authorize_path(challenge: &str, extra: &str) -> String {
    format!(
        "/o/oauth2/v2/auth?client_id=client&redirect_uri=http%3A%2F%2Flocalhost%3A5555%2Foauth-callback\
         &response_type=code&scope=openid%20email&state=xyz&code_challenge={challenge}\
         &code_challenge_method=S256&access_type=offline&prompt=consent{extra}"
    )
}

async fn authorize(f: &Fixture, challenge: &str, extra: &str) -> String {
    let response = f
        .http
        .get(f.url(&authorize_path(challenge, extra)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FOUND);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with("http://localhost:5555/oauth-callback?"),
        "{location}"
    );
    let query = location.split_once('?').unwrap().1;
    let pairs: Vec<(String, String)> = query
        .split('&')
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect();
    assert!(pairs.contains(&("state".to_owned(), "xyz".to_owned())));
    let code = &pairs.iter().find(|(k, _)| k == "code").unwrap().1;
    code.replace("%2F", "/")
}

#[tokio::test]
async fn pkce_authorize_then_exchange() {
    let f = Fixture::start().await;
    let verifier = "a-verifier-that-is-long-enough-for-pkce-0123456789";
    let challenge = pkce_challenge(verifier);

    let code = authorize(&f, &challenge, "&login_hint=bob%40demo.agm").await;
    let (status, body) = f
        .token_form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://localhost:5555/oauth-callback"),
            ("code_verifier", verifier),
            ("client_id", "client"),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["refresh_token"], "demo-refresh-bob");
    assert!(body["id_token"].as_str().unwrap().contains('.'));
    let access = body["access_token"].as_str().unwrap();
    let (_, info) = f.get("/oauth2/v2/userinfo", access).await;
    assert_eq!(info["email"], "bob@demo.agm");

    // A code is single-use.
    let (status, body) = f
        .token_form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://localhost:5555/oauth-callback"),
            ("code_verifier", verifier),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");

    // Without login_hint the first account approves; a wrong verifier is refused.
    let code = authorize(&f, &challenge, "").await;
    let (status, body) = f
        .token_form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://localhost:5555/oauth-callback"),
            ("code_verifier", "not-the-verifier"),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "Invalid code verifier.");
}

#[tokio::test]
async fn authorize_checks_its_parameters() {
    let f = Fixture::start().await;
    let response = f
        .http
        .get(f.url("/o/oauth2/v2/auth?client_id=c&response_type=code"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Missing required parameter: redirect_uri")
    );

    let plain = authorize_path("abc", "").replace("S256", "plain");
    let response = f.http.get(f.url(&plain)).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

// ------------------------------------------------------------------ Code Assist setup

#[tokio::test]
async fn load_code_assist_reports_project_and_tier() {
    let f = Fixture::start().await;
    let body = json!({"metadata": {"ideType": "ANTIGRAVITY", "platform": "PLATFORM_UNSPECIFIED", "pluginType": "GEMINI"}});
    let (status, answer) = f
        .post("/v1internal:loadCodeAssist", &f.alice(), &body)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["cloudaicompanionProject"], "demo-project-alice");
    assert_eq!(answer["currentTier"]["id"], "g1-pro-tier");
    assert_eq!(answer["allowedTiers"][0]["isDefault"], true);
    assert_eq!(answer["paidTier"]["id"], "g1-pro-tier");
}

#[tokio::test]
async fn onboarding_gives_a_project() {
    let sim = Sim::demo();
    sim.add_account(SimAccount::new(
        "carol@demo.agm",
        "demo-refresh-carol",
        None,
        "free-tier",
    ));
    let f = Fixture::with(sim).await;
    let token = f.sim.issue_access_token("carol@demo.agm").unwrap();

    let (_, answer) = f
        .post(
            "/v1internal:loadCodeAssist",
            &token,
            &json!({"metadata": {}}),
        )
        .await;
    assert!(answer.get("cloudaicompanionProject").is_none(), "{answer}");
    assert_eq!(answer["allowedTiers"][0]["id"], "free-tier");

    let (status, operation) = f
        .post(
            "/v1internal:onboardUser",
            &token,
            &json!({"tierId": "free-tier", "metadata": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{operation}");
    assert_eq!(operation["done"], false);
    let name = operation["name"].as_str().unwrap();
    assert!(name.starts_with("operations/"));

    let (status, done) = f.get(&format!("/v1internal/{name}"), &token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(done["done"], true);
    let project = done["response"]["cloudaicompanionProject"]["id"]
        .as_str()
        .unwrap();
    assert_eq!(
        f.sim.account("carol@demo.agm").unwrap().project.as_deref(),
        Some(project)
    );

    let (_, answer) = f
        .post("/v1internal:loadCodeAssist", &token, &json!({}))
        .await;
    assert_eq!(answer["cloudaicompanionProject"], project);
    let (status, _) = f
        .post(
            "/v1internal:generateContent",
            &token,
            &envelope(project, "gemini-3-flash", ask("hi")),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn onboarding_takes_the_configured_number_of_polls() {
    let f = Fixture::start().await;
    f.sim.set_project("bob@demo.agm", None);
    f.sim.set_onboarding_polls(3);
    let token = f.sim.issue_access_token("bob@demo.agm").unwrap();
    let (status, operation) = f
        .post(
            "/v1internal:onboardUser",
            &token,
            &json!({"tierId": "free-tier", "metadata": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{operation}");
    let name = operation["name"].as_str().unwrap().to_owned();
    let mut answers = Vec::new();
    for _ in 0..3 {
        let (status, poll) = f.get(&format!("/v1internal/{name}"), &token).await;
        assert_eq!(status, StatusCode::OK);
        answers.push(poll["done"].as_bool().unwrap());
    }
    assert_eq!(answers, [false, false, true]);
    assert!(f.sim.account("bob@demo.agm").unwrap().project.is_some());

    // With no polls configured, onboardUser answers done, project included.
    f.sim.set_project("bob@demo.agm", None);
    f.sim.set_onboarding_polls(0);
    let (_, operation) = f
        .post(
            "/v1internal:onboardUser",
            &token,
            &json!({"tierId": "free-tier", "metadata": {}}),
        )
        .await;
    assert_eq!(operation["done"], true, "{operation}");
    let project = operation["response"]["cloudaicompanionProject"]["id"]
        .as_str()
        .unwrap();
    assert_eq!(
        f.sim.account("bob@demo.agm").unwrap().project.as_deref(),
        Some(project)
    );
}

#[tokio::test]
async fn validation_required_is_an_ineligible_tier_and_a_403() {
    let f = Fixture::start().await;
    let url = "https://accounts.google.com/signin/continue?verify=alice";
    f.sim.require_validation("alice@demo.agm", Some(url));
    let token = f.alice();
    let (status, answer) = f
        .post("/v1internal:loadCodeAssist", &token, &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer.get("cloudaicompanionProject").is_none(), "{answer}");
    assert!(answer.get("currentTier").is_none(), "{answer}");
    let ineligible = &answer["ineligibleTiers"][0];
    assert_eq!(ineligible["reasonCode"], "VALIDATION_REQUIRED");
    assert_eq!(ineligible["validationUrl"], url);
    assert_eq!(ineligible["tierId"], "g1-pro-tier");

    let (status, body) = f
        .post(
            "/v1internal:onboardUser",
            &token,
            &json!({"tierId": "g1-pro-tier", "metadata": {}}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["details"][0]["reason"], "VALIDATION_REQUIRED");
    assert_eq!(
        body["error"]["details"][0]["metadata"]["validationUrl"],
        url
    );

    f.sim.require_validation("alice@demo.agm", None);
    let (_, answer) = f
        .post("/v1internal:loadCodeAssist", &token, &json!({}))
        .await;
    assert_eq!(answer["cloudaicompanionProject"], "demo-project-alice");
}

#[tokio::test]
async fn quota_calls_report_models_and_settable_fractions() {
    let f = Fixture::start().await;
    f.sim.set_quota("alice@demo.agm", "gemini-3-pro-high", 0.25);
    f.sim.set_quota("alice@demo.agm", "claude-sonnet-4-5", 0.0);
    let token = f.alice();
    let (status, answer) = f
        .post(
            "/v1internal:fetchAvailableModels",
            &token,
            &json!({"project": "demo-project-alice"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let models = answer["models"].as_object().unwrap();
    for id in [
        "gemini-3-pro-high",
        "gemini-3-pro-low",
        "gemini-3-flash",
        "gemini-2.5-flash",
        "gemini-2.5-pro",
        "claude-sonnet-4-5",
        "claude-sonnet-4-5-thinking",
        "claude-opus-4-5-thinking",
        "gpt-oss-120b-medium",
    ] {
        assert!(models.contains_key(id), "missing {id}");
    }
    assert_eq!(
        models["gemini-3-pro-high"]["quotaInfo"]["remainingFraction"],
        0.25
    );
    assert_eq!(
        models["gemini-3-flash"]["quotaInfo"]["remainingFraction"],
        0.8
    );
    assert!(
        models["claude-sonnet-4-5"]["quotaInfo"]
            .get("remainingFraction")
            .is_none()
    );
    assert!(
        models["gemini-3-flash"]["quotaInfo"]["resetTime"]
            .as_str()
            .unwrap()
            .ends_with('Z')
    );
    assert!(answer["deprecatedModelIds"].is_object());

    let (status, summary) = f
        .post("/v1internal:retrieveUserQuotaSummary", &token, &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let buckets = summary["groups"][0]["buckets"].as_array().unwrap();
    assert_eq!(buckets[0]["window"], "5h");
    assert_eq!(buckets[1]["window"], "weekly");

    let (status, body) = f
        .post(
            "/v1internal:fetchAvailableModels",
            &token,
            &json!({"project": "someone-else"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["error"]["status"], "PERMISSION_DENIED");
}

// ------------------------------------------------------------------ generation

#[tokio::test]
async fn generate_content_answers_deterministically() {
    let f = Fixture::start().await;
    let (status, answer) = f
        .post(
            "/v1internal:generateContent",
            &f.alice(),
            &alice_asks("What is 2+2?"),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let response = &answer["response"];
    let candidate = &response["candidates"][0];
    assert_eq!(candidate["content"]["role"], "model");
    assert_eq!(
        candidate["content"]["parts"][0]["text"],
        "Simulated gemini-3-flash reply to: What is 2+2?"
    );
    assert_eq!(candidate["finishReason"], "STOP");
    assert_eq!(response["modelVersion"], "gemini-3-flash");
    assert!(response["responseId"].as_str().is_some());
    assert!(answer["traceId"].as_str().is_some());
    let usage = &response["usageMetadata"];
    assert!(usage["promptTokenCount"].as_u64().unwrap() > 0);
    assert_eq!(usage["candidatesTokenCount"], 12); // 47 chars / 4, rounded up
    assert_eq!(
        usage["totalTokenCount"].as_u64().unwrap(),
        usage["promptTokenCount"].as_u64().unwrap() + 12
    );
}

#[tokio::test]
async fn thinking_and_limits_shape_the_reply() {
    let f = Fixture::start().await;
    let mut request = ask("think");
    request["generationConfig"] = json!({
        "maxOutputTokens": 3,
        "thinkingConfig": {"includeThoughts": true, "thinkingBudget": 1024}
    });
    let body = envelope("demo-project-alice", "gemini-3-pro-high", request);
    let (status, answer) = f
        .post("/v1internal:generateContent", &f.alice(), &body)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let candidate = &answer["response"]["candidates"][0];
    let parts = candidate["content"]["parts"].as_array().unwrap();
    assert_eq!(parts[0]["thought"], true);
    assert!(parts[0]["thoughtSignature"].as_str().is_some());
    assert_eq!(parts[1]["text"], "Simulated ge"); // 3 tokens = 12 chars
    assert_eq!(candidate["finishReason"], "MAX_TOKENS");

    // A signature minted for a Gemini model, replayed to Claude, is refused.
    let signature = parts[0]["thoughtSignature"].as_str().unwrap();
    let replay = envelope(
        "demo-project-alice",
        "claude-sonnet-4-5-thinking",
        json!({"contents": [
            {"role": "user", "parts": [{"text": "think"}]},
            {"role": "model", "parts": [{"text": "hm", "thought": true, "thoughtSignature": signature}, {"text": "ok"}]},
            {"role": "user", "parts": [{"text": "again"}]},
        ]}),
    );
    let (status, body) = f
        .post("/v1internal:generateContent", &f.alice(), &replay)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error_message(&body).contains("Invalid `signature` in `thinking` block"),
        "{body}"
    );
}

#[tokio::test]
async fn envelope_rules_match_google() {
    let f = Fixture::start().await;
    let token = f.alice();

    let mut body = alice_asks("hi");
    body["foo"] = json!(1);
    let (status, answer) = f.post("/v1internal:generateContent", &token, &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(
        error_message(&answer),
        r#"Invalid JSON payload received. Unknown name "foo": Cannot find field."#
    );
    assert_eq!(
        answer["error"]["details"][0]["@type"],
        "type.googleapis.com/google.rpc.BadRequest"
    );

    let mut body = alice_asks("hi");
    body["request"]["thinking"] = json!({});
    let (status, answer) = f.post("/v1internal:generateContent", &token, &body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_message(&answer),
        r#"Invalid JSON payload received. Unknown name "thinking" at 'request': Cannot find field."#
    );

    let body = envelope("demo-project-bob", "gemini-3-flash", ask("hi"));
    let (status, answer) = f.post("/v1internal:generateContent", &token, &body).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        error_message(&answer),
        "Permission denied on resource project demo-project-bob."
    );

    let body = envelope("demo-project-alice", "gemini-9-ultra", ask("hi"));
    let (status, answer) = f.post("/v1internal:generateContent", &token, &body).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(answer["error"]["status"], "NOT_FOUND");
    assert_eq!(error_message(&answer), "Requested entity was not found.");
}

#[tokio::test]
async fn request_rules_match_google() {
    let f = Fixture::start().await;
    let token = f.alice();
    let refused = |request: Value| {
        let body = envelope("demo-project-alice", "gemini-3-flash", request);
        let f = &f;
        let token = token.clone();
        async move {
            let (status, answer) = f.post("/v1internal:generateContent", &token, &body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
            error_message(&answer).to_owned()
        }
    };

    let mut request = ask("hi");
    request["systemInstruction"] = json!("You are terse.");
    let message = refused(request).await;
    assert!(
        message.starts_with("Invalid value at 'request.system_instruction'"),
        "{message}"
    );

    let mut request = ask("hi");
    request["tools"] = json!([{"functionDeclarations": [{
        "name": "read_file",
        "description": "Reads a file",
        "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "additionalProperties": false},
    }]}]);
    assert_eq!(
        refused(request).await,
        r#"Invalid JSON payload received. Unknown name "additionalProperties" at 'request.tools[0].function_declarations[0].parameters': Cannot find field."#
    );

    let mut request = ask("hi");
    request["tools"] = json!([{"functionDeclarations": [{"name": "mcp server tool", "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}]}]);
    assert!(refused(request).await.contains("Invalid function name"));

    let mut request = ask("hi");
    request["generationConfig"] = json!({"maxOutputTokens": 100, "responseFormat": "json"});
    assert!(
        refused(request)
            .await
            .contains(r#"Unknown name "responseFormat" at 'request.generation_config'"#)
    );

    let request = json!({"contents": [{"role": "assistant", "parts": [{"text": "hi"}]}]});
    assert_eq!(
        refused(request).await,
        "Please use a valid role: user, model."
    );

    let request = json!({"contents": [{"role": "user", "parts": [{"text": "hi", "functionCall": {"name": "f", "args": {}}}]}]});
    assert!(
        refused(request)
            .await
            .contains("Oneof field 'data' is already set")
    );

    let request = json!({"contents": []});
    assert!(refused(request).await.contains("contents is not specified"));
}

#[tokio::test]
async fn count_tokens_takes_only_model_and_contents() {
    let f = Fixture::start().await;
    let token = f.alice();
    let good = json!({"request": {"model": "models/gemini-3-flash", "contents": ask("count me")["contents"]}});
    let (status, answer) = f.post("/v1internal:countTokens", &token, &good).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer["totalTokens"].as_u64().unwrap() >= 1);

    let mut with_project = good.clone();
    with_project["project"] = json!("demo-project-alice");
    let (status, answer) = f
        .post("/v1internal:countTokens", &token, &with_project)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_message(&answer),
        r#"Invalid JSON payload received. Unknown name "project": Cannot find field."#
    );
}

// ------------------------------------------------------------------ streams

#[tokio::test]
async fn stream_sends_configured_chunks_over_sse() {
    let f = Fixture::start().await;
    let response = f
        .raw_post(
            "/v1internal:streamGenerateContent?alt=sse",
            &f.alice(),
            &alice_asks("stream please"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let body = response.text().await.unwrap();
    assert!(body.starts_with("data: "));
    let events = sse_events(&body);
    assert_eq!(events.len(), 3);
    let text: String = events.iter().map(chunk_text).collect();
    assert_eq!(text, "Simulated gemini-3-flash reply to: stream please");
    assert!(
        events[..2]
            .iter()
            .all(|e| e["response"].get("usageMetadata").is_none()
                && e["response"]["candidates"][0].get("finishReason").is_none())
    );
    assert_eq!(
        events[2]["response"]["candidates"][0]["finishReason"],
        "STOP"
    );
    assert!(
        events[2]["response"]["usageMetadata"]["totalTokenCount"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert_eq!(f.sim.count(SimMethod::StreamGenerateContent), 1);
}

#[tokio::test]
async fn stream_chunk_count_follows_config() {
    let config = SimConfig {
        stream_chunks: 5,
        stream_chunk_delay: Duration::from_millis(1),
        ..SimConfig::default()
    };
    let f = Fixture::with(Sim::demo_with(config)).await;
    let response = f
        .raw_post(
            "/v1internal:streamGenerateContent?alt=sse",
            &f.alice(),
            &alice_asks("five"),
        )
        .await;
    let events = sse_events(&response.text().await.unwrap());
    assert_eq!(events.len(), 5);
    let text: String = events.iter().map(chunk_text).collect();
    assert_eq!(text, "Simulated gemini-3-flash reply to: five");
}

#[tokio::test]
async fn stream_without_alt_sse_is_a_json_array() {
    let f = Fixture::start().await;
    let response = f
        .raw_post(
            "/v1internal:streamGenerateContent",
            &f.alice(),
            &alice_asks("array"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let chunks: Vec<Value> = response.json().await.unwrap();
    assert_eq!(chunks.len(), 3);
    let text: String = chunks.iter().map(chunk_text).collect();
    assert_eq!(text, "Simulated gemini-3-flash reply to: array");
}

// ------------------------------------------------------------------ faults

#[tokio::test]
async fn scripted_429_is_served_times_times_then_answers_resume() {
    let f = Fixture::start().await;
    f.sim.script(
        Fault::rate_limited(SimMethod::GenerateContent, "1.5s")
            .for_account("alice@demo.agm")
            .times(2),
    );
    let token = f.alice();
    for _ in 0..2 {
        let (status, body) = f
            .post("/v1internal:generateContent", &token, &alice_asks("hi"))
            .await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
        let details = body["error"]["details"].as_array().unwrap();
        assert_eq!(details[0]["reason"], "RATE_LIMIT_EXCEEDED");
        assert_eq!(details[0]["metadata"]["quotaResetDelay"], "1.5s");
        assert_eq!(details[1]["retryDelay"], "1.5s");
    }
    // Bob is not affected.
    let bob = f.sim.issue_access_token("bob@demo.agm").unwrap();
    let body = envelope("demo-project-bob", "gemini-3-flash", ask("hi"));
    let (status, _) = f.post("/v1internal:generateContent", &bob, &body).await;
    assert_eq!(status, StatusCode::OK);

    let (status, _) = f
        .post("/v1internal:generateContent", &token, &alice_asks("hi"))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(f.sim.pending_faults().is_empty());
    assert_eq!(f.sim.count(SimMethod::GenerateContent), 4);
}

#[tokio::test]
async fn status_fault_by_model_with_headers() {
    let f = Fixture::start().await;
    f.sim.script(
        Fault::status(
            None,
            503,
            "UNAVAILABLE",
            "The service is currently unavailable.",
        )
        .for_model("gemini-3-pro-high")
        .with_header("retry-after", "2")
        .always(),
    );
    let token = f.alice();
    let (status, _) = f
        .post("/v1internal:generateContent", &token, &alice_asks("hi"))
        .await;
    assert_eq!(status, StatusCode::OK);
    let body = envelope("demo-project-alice", "gemini-3-pro-high", ask("hi"));
    let response = f
        .raw_post("/v1internal:generateContent", &token, &body)
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "2");
    assert_eq!(f.sim.pending_faults().len(), 1);
    f.sim.clear_faults();
    let (status, _) = f.post("/v1internal:generateContent", &token, &body).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn break_stream_after_aborts_the_body() {
    let f = Fixture::start().await;
    f.sim.script(Fault::break_stream_after(
        SimMethod::StreamGenerateContent,
        1,
    ));
    let response = f
        .raw_post(
            "/v1internal:streamGenerateContent?alt=sse",
            &f.alice(),
            &alice_asks("break"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.bytes_stream();
    let mut received = Vec::new();
    let mut failed = false;
    use futures_util::StreamExt;
    while let Some(chunk) = body.next().await {
        match chunk {
            Ok(bytes) => received.extend_from_slice(&bytes),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the body should end with an error");
    let events = sse_events(&String::from_utf8(received).unwrap());
    assert_eq!(events.len(), 1);

    // The next stream is whole again.
    let response = f
        .raw_post(
            "/v1internal:streamGenerateContent?alt=sse",
            &f.alice(),
            &alice_asks("whole"),
        )
        .await;
    assert_eq!(sse_events(&response.text().await.unwrap()).len(), 3);
}

#[tokio::test]
async fn empty_body_fault_sends_an_empty_200() {
    let f = Fixture::start().await;
    f.sim
        .script(Fault::empty_body(SimMethod::StreamGenerateContent));
    let response = f
        .raw_post(
            "/v1internal:streamGenerateContent?alt=sse",
            &f.alice(),
            &alice_asks("x"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "");
}

#[tokio::test]
async fn answer_faults_wait_for_a_valid_request() {
    let f = Fixture::start().await;
    f.sim.script(Fault::empty_body(SimMethod::GenerateContent));
    let mut invalid = alice_asks("x");
    invalid["bogus"] = json!(true);
    let (status, _) = f
        .post("/v1internal:generateContent", &f.alice(), &invalid)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(f.sim.pending_faults().len(), 1);
    let response = f
        .raw_post("/v1internal:generateContent", &f.alice(), &alice_asks("x"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.text().await.unwrap(), "");
}

#[tokio::test]
async fn scripted_reply_streams_each_part() {
    let f = Fixture::start().await;
    f.sim.script(Fault::reply(
        SimMethod::StreamGenerateContent,
        ScriptedReply::text("Let me look.")
            .with_part(json!({"functionCall": {"name": "read_file", "args": {"path": "a.rs"}, "id": "call-1"}})),
    ));
    let response = f
        .raw_post(
            "/v1internal:streamGenerateContent?alt=sse",
            &f.alice(),
            &alice_asks("read a.rs"),
        )
        .await;
    let events = sse_events(&response.text().await.unwrap());
    assert_eq!(events.len(), 2);
    assert_eq!(
        events[0]["response"]["candidates"][0]["content"]["parts"][0]["text"],
        "Let me look."
    );
    let call = &events[1]["response"]["candidates"][0]["content"]["parts"][0]["functionCall"];
    assert_eq!(call["name"], "read_file");
    assert_eq!(call["id"], "call-1");
    assert_eq!(
        events[1]["response"]["candidates"][0]["finishReason"],
        "STOP"
    );
}

#[tokio::test]
async fn delay_fault_then_normal_answer() {
    let f = Fixture::start().await;
    f.sim.script(Fault::delay(
        SimMethod::LoadCodeAssist,
        Duration::from_millis(20),
    ));
    let started = std::time::Instant::now();
    let (status, answer) = f
        .post("/v1internal:loadCodeAssist", &f.alice(), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["cloudaicompanionProject"], "demo-project-alice");
    assert!(started.elapsed() >= Duration::from_millis(20));
    assert!(f.sim.pending_faults().is_empty());
}

// ------------------------------------------------------------------ official Gemini API

#[tokio::test]
async fn gemini_api_checks_the_key() {
    let f = Fixture::start().await;
    let path = "/v1beta/models/gemini-2.5-flash:generateContent";
    let body = ask("hello");

    let response = f.http.post(f.url(path)).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);

    let response = f
        .http
        .post(f.url(path))
        .header("x-goog-api-key", "wrong")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["error"]["message"],
        "API key not valid. Please pass a valid API key."
    );
    assert_eq!(answer["error"]["status"], "INVALID_ARGUMENT");

    let response = f
        .http
        .post(f.url(path))
        .header("x-goog-api-key", "demo-gemini-key")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = response.json().await.unwrap();
    assert!(answer.get("response").is_none());
    assert_eq!(
        answer["candidates"][0]["content"]["parts"][0]["text"],
        "Simulated gemini-2.5-flash reply to: hello"
    );

    // `?key=` works too, and under /v1/.
    let response = f
        .http
        .post(f.url("/v1/models/gemini-2.5-pro:generateContent?key=demo-gemini-key"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn gemini_api_stream_count_and_list() {
    let f = Fixture::start().await;
    let key = [("x-goog-api-key", "demo-gemini-key")];
    let request = |path: &str| {
        let mut builder = f.http.request(
            if path.ends_with("models") {
                reqwest::Method::GET
            } else {
                reqwest::Method::POST
            },
            f.url(path),
        );
        for (k, v) in key {
            builder = builder.header(k, v);
        }
        builder
    };

    let body = request("/v1beta/models/gemini-3-flash-preview:streamGenerateContent?alt=sse")
        .json(&ask("stream"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events = sse_events(&body);
    assert_eq!(events.len(), 3);
    let text: String = events
        .iter()
        .map(|e| {
            e["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(text, "Simulated gemini-3-flash-preview reply to: stream");

    let counted: Value = request("/v1beta/models/gemini-2.5-flash:countTokens")
        .json(&json!({"contents": ask("count")["contents"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(counted["totalTokens"].as_u64().unwrap() >= 1);
    let wrapped: Value = request("/v1beta/models/gemini-2.5-flash:countTokens")
        .json(&json!({"generateContentRequest": {"model": "models/gemini-2.5-flash", "contents": ask("count")["contents"]}}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(wrapped["totalTokens"], counted["totalTokens"]);

    for path in ["/v1beta/models", "/v1/models"] {
        let listed: Value = request(path).send().await.unwrap().json().await.unwrap();
        let names: Vec<&str> = listed["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        assert!(names.contains(&"models/gemini-2.5-flash"), "{listed}");
        assert!(listed["models"][0]["supportedGenerationMethods"].is_array());
    }

    let response = request("/v1beta/models/gemini-1.0-ancient:generateContent")
        .json(&ask("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);

    let response = request("/v1beta/models/gemini-2.5-flash:generateContent")
        .json(&json!({"contents": ask("x")["contents"], "sessionId": "s"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(
        answer["error"]["message"],
        r#"Invalid JSON payload received. Unknown name "sessionId": Cannot find field."#
    );
}

// ------------------------------------------------------------------ capture and misc

#[tokio::test]
async fn capture_records_headers_body_and_account() {
    let f = Fixture::start().await;
    let body = alice_asks("captured");
    let response = f
        .http
        .post(f.url("/v1internal:streamGenerateContent?alt=sse"))
        .bearer_auth(f.alice())
        .header("User-Agent", "antigravity/1.2.3 linux/amd64")
        .header("X-Goog-User-Project", "demo-project-alice")
        .json(&body)
        .send()
        .await
        .unwrap();
    response.text().await.unwrap();
    let captured = f.sim.requests();
    assert_eq!(captured.len(), 1);
    let request = &captured[0];
    assert_eq!(request.method, SimMethod::StreamGenerateContent);
    assert_eq!(request.path, "/v1internal:streamGenerateContent?alt=sse");
    assert_eq!(
        request.header("user-agent"),
        Some("antigravity/1.2.3 linux/amd64")
    );
    assert!(
        request
            .headers
            .iter()
            .any(|(n, v)| n == "x-goog-user-project" && v == "demo-project-alice")
    );
    assert!(
        request
            .headers
            .iter()
            .all(|(n, _)| n.chars().all(|c| !c.is_ascii_uppercase()))
    );
    assert_eq!(request.body, body);
    assert_eq!(request.account.as_deref(), Some("alice@demo.agm"));
    assert_eq!(request.model().as_deref(), Some("gemini-3-flash"));
    f.sim.clear_requests();
    assert!(f.sim.requests().is_empty());
}

#[tokio::test]
async fn unknown_routes_are_google_404s() {
    let f = Fixture::start().await;
    let (status, body) = f.post("/v1internal:doSomething", "x", &json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["status"], "NOT_FOUND");
    assert_eq!(f.sim.count(SimMethod::Unknown), 1);
}

#[tokio::test]
async fn latency_is_added_before_answers() {
    let config = SimConfig {
        latency: Duration::from_millis(15),
        ..SimConfig::default()
    };
    let f = Fixture::with(Sim::demo_with(config)).await;
    let started = std::time::Instant::now();
    let (status, _) = f.get("/oauth2/v2/userinfo", &f.alice()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(15));
}

#[tokio::test]
async fn in_process_router_serves_the_same_routes() {
    let sim = Sim::demo();
    let router = sim.router();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum_serve(listener, router).await });
    let token = sim.issue_access_token("bob@demo.agm").unwrap();
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/oauth2/v2/userinfo"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let info: Value = response.json().await.unwrap();
    assert_eq!(info["email"], "bob@demo.agm");
    assert_eq!(sim.count(SimMethod::UserInfo), 1);
}

async fn axum_serve(listener: tokio::net::TcpListener, router: axum::Router) {
    axum::serve(listener, router).await.unwrap();
}

#[tokio::test]
async fn capture_limit_keeps_counts() {
    let f = Fixture::start().await;
    f.sim.set_capture_limit(Some(2));
    let token = f.alice();
    for _ in 0..4 {
        f.get("/oauth2/v2/userinfo", &token).await;
    }
    assert_eq!(f.sim.requests().len(), 2);
    assert_eq!(f.sim.count(SimMethod::UserInfo), 4);
    f.sim.clear_requests();
    assert_eq!(f.sim.count(SimMethod::UserInfo), 0);
}
