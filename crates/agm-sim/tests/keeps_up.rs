//! The sim keeps up with Google (issue 11): JSON mode, a model catalog that changes
//! while it runs, and refused client versions.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use agm_sim::{
    ANTIGRAVITY_UNSUPPORTED, ClientGate, GEMINI_CLI_UNSUPPORTED, GateForm, ModelSpec, RunningSim,
    Sim, SimConfig, SimModel,
};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};

mod common;
use common::{ask, sse_events};

struct Fixture {
    sim: RunningSim,
    http: reqwest::Client,
}

const ALICE: &str = "alice@demo.agm";
const BOB: &str = "bob@demo.agm";

impl Fixture {
    async fn start() -> Fixture {
        Fixture::with(Sim::demo()).await
    }

    async fn with(sim: Sim) -> Fixture {
        Fixture {
            sim: sim.start().await.expect("sim starts"),
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.sim.base_url())
    }

    /// POSTs as `email` with an optional User-Agent; the status and the body (JSON,
    /// or the raw text as a string).
    async fn post_as(
        &self,
        email: &str,
        user_agent: Option<&str>,
        path: &str,
        body: &Value,
    ) -> (StatusCode, Value) {
        let token = self.sim.issue_access_token(email).unwrap();
        let mut request = self.http.post(self.url(path)).bearer_auth(token).json(body);
        if let Some(user_agent) = user_agent {
            request = request.header("user-agent", user_agent);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    async fn generate(
        &self,
        email: &str,
        user_agent: Option<&str>,
        model: &str,
    ) -> (StatusCode, Value) {
        let body = envelope(email, model, ask("hello"));
        self.post_as(email, user_agent, "/v1internal:generateContent", &body)
            .await
    }

    /// The models and deprecations `fetchAvailableModels` reports to `email`.
    async fn catalog(&self, email: &str) -> (Map<String, Value>, Map<String, Value>) {
        let (status, body) = self
            .post_as(email, None, "/v1internal:fetchAvailableModels", &json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (
            body["models"].as_object().cloned().unwrap_or_default(),
            body["deprecatedModelIds"]
                .as_object()
                .cloned()
                .unwrap_or_default(),
        )
    }

    async fn gemini_api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, self.url(path))
            .header("x-goog-api-key", "demo-gemini-key");
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap())
    }
}

fn project_of(email: &str) -> String {
    format!("demo-project-{}", email.split('@').next().unwrap())
}

fn envelope(email: &str, model: &str, request: Value) -> Value {
    common::envelope(&project_of(email), model, request)
}

/// The text of a Code Assist answer (`response.candidates[0].content.parts`).
fn answer_text(body: &Value) -> String {
    body["response"]["candidates"][0]["content"]["parts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["text"].as_str())
        .collect()
}

// ------------------------------------------------------------------ JSON mode

/// A small JSON Schema / OpenAPI-subset validator: the problems of `value` against
/// `schema` (empty: it fits).
fn problems(value: &Value, schema: &Value, root: &Value, path: &str) -> Vec<String> {
    let Some(schema) = schema.as_object() else {
        return Vec::new();
    };
    if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
        let target = root.pointer(target.trim_start_matches('#')).unwrap();
        return problems(value, target, root, path);
    }
    let mut out = Vec::new();
    let nullable = schema.get("nullable") == Some(&json!(true));
    if value.is_null() && nullable {
        return out;
    }
    if let Some(kind) = schema.get("type") {
        let kinds: Vec<String> = match kind {
            Value::Array(kinds) => kinds
                .iter()
                .map(|k| k.as_str().unwrap().to_ascii_lowercase())
                .collect(),
            other => vec![other.as_str().unwrap().to_ascii_lowercase()],
        };
        let fits = kinds.iter().any(|k| match k.as_str() {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            _ => false,
        });
        if !fits {
            out.push(format!("{path}: {value} is not {kinds:?}"));
            return out;
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        out.push(format!("{path}: {value} not in enum"));
    }
    if let Some(expected) = schema.get("const")
        && expected != value
    {
        out.push(format!("{path}: {value} is not {expected}"));
    }
    for key in ["anyOf", "oneOf"] {
        if let Some(branches) = schema.get(key).and_then(Value::as_array) {
            let fitting = branches
                .iter()
                .filter(|b| problems(value, b, root, path).is_empty())
                .count();
            if fitting == 0 || (key == "oneOf" && fitting > 1) {
                out.push(format!("{path}: {fitting} {key} branches fit {value}"));
            }
        }
    }
    for part in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.extend(problems(value, part, root, path));
    }
    if let Some(object) = value.as_object() {
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !object.contains_key(name.as_str().unwrap()) {
                out.push(format!("{path}: missing {name}"));
            }
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (name, property) in properties {
                if let Some(inner) = object.get(name) {
                    out.extend(problems(inner, property, root, &format!("{path}.{name}")));
                }
            }
        }
    }
    if let Some(items) = value.as_array() {
        let count = |key: &str| {
            schema
                .get(key)
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        };
        if count("minItems").is_some_and(|min| (items.len() as u64) < min) {
            out.push(format!("{path}: too few items"));
        }
        if count("maxItems").is_some_and(|max| items.len() as u64 > max) {
            out.push(format!("{path}: too many items"));
        }
        if let Some(item_schema) = schema.get("items") {
            for (index, item) in items.iter().enumerate() {
                out.extend(problems(
                    item,
                    item_schema,
                    root,
                    &format!("{path}[{index}]"),
                ));
            }
        }
    }
    if let Some(number) = value.as_f64() {
        if schema
            .get("minimum")
            .and_then(Value::as_f64)
            .is_some_and(|m| number < m)
        {
            out.push(format!("{path}: {number} below minimum"));
        }
        if schema
            .get("maximum")
            .and_then(Value::as_f64)
            .is_some_and(|m| number > m)
        {
            out.push(format!("{path}: {number} above maximum"));
        }
    }
    if let Some(text) = value.as_str() {
        let length = text.chars().count() as u64;
        if schema
            .get("minLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| length < m)
        {
            out.push(format!("{path}: too short"));
        }
        if schema
            .get("maxLength")
            .and_then(Value::as_u64)
            .is_some_and(|m| length > m)
        {
            out.push(format!("{path}: too long"));
        }
    }
    out
}

fn assert_fits(text: &str, schema: &Value) -> Value {
    let value: Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
    let found = problems(&value, schema, schema, "$");
    assert!(found.is_empty(), "{text} does not fit: {found:?}");
    value
}

/// Gemini CLI's routing classifier: `{reasoning, model_choice}` as JSON Schema.
fn classifier_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "reasoning": {"type": "string", "description": "A brief explanation."},
            "model_choice": {"type": "string", "enum": ["flash", "pro"]},
        },
        "required": ["reasoning", "model_choice"],
    })
}

fn json_request(schema_key: &str, schema: &Value) -> Value {
    let mut request = ask("Route this request");
    let mut config = json!({ "responseMimeType": "application/json" });
    if !schema_key.is_empty() {
        config[schema_key] = schema.clone();
    }
    request["generationConfig"] = config;
    request
}

#[tokio::test]
async fn json_mode_answers_fit_the_schema() {
    let f = Fixture::start().await;
    let recursive = json!({
        "type": "object",
        "$defs": {
            "step": {
                "type": "object",
                "properties": {
                    "title": {"type": "string", "minLength": 3, "maxLength": 20},
                    "priority": {"type": "integer", "minimum": 1, "maximum": 5},
                    "kind": {"oneOf": [{"const": "edit"}, {"type": "null"}]},
                    "then": {"anyOf": [{"$ref": "#/$defs/step"}, {"type": "null"}]},
                },
                "required": ["title", "priority", "kind", "then"],
            }
        },
        "properties": {
            "plan": {"type": "array", "items": {"$ref": "#/$defs/step"}, "minItems": 1},
            "done": {"type": ["boolean", "null"]},
            "score": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        },
        "required": ["plan", "done", "score", "note"],
    });
    let openapi = json!({
        "type": "OBJECT",
        "properties": {
            "files": {"type": "ARRAY", "items": {"type": "OBJECT", "properties": {
                "path": {"type": "STRING"},
                "lines": {"type": "INTEGER", "nullable": true},
            }, "required": ["path"]}},
            "verdict": {"type": "STRING", "enum": ["APPROVE", "REJECT"]},
            "reason": {"anyOf": [{"type": "STRING"}, {"type": "NUMBER"}]},
        },
        "required": ["files", "verdict"],
    });
    for (key, schema) in [
        ("responseJsonSchema", classifier_schema()),
        ("responseJsonSchema", recursive),
        ("responseSchema", openapi),
    ] {
        let request = json_request(key, &schema);
        // Code Assist, whole.
        let (status, body) = f
            .post_as(
                ALICE,
                None,
                "/v1internal:generateContent",
                &envelope(ALICE, "gemini-3-flash", request.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let whole = answer_text(&body);
        assert_fits(&whole, &schema);
        // Code Assist, streamed: the JSON text arrives across several chunks, like prose.
        let token = f.sim.issue_access_token(ALICE).unwrap();
        let response = f
            .http
            .post(f.url("/v1internal:streamGenerateContent?alt=sse"))
            .bearer_auth(token)
            .json(&envelope(ALICE, "gemini-3-flash", request.clone()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let events = sse_events(&response.text().await.unwrap());
        assert_eq!(events.len(), 3, "three chunks by default");
        let streamed: String = events.iter().map(answer_text).collect();
        assert_eq!(streamed, whole);
        // The official Gemini API.
        let (status, body) = f
            .gemini_api(
                reqwest::Method::POST,
                "/v1beta/models/gemini-2.5-flash:generateContent",
                Some(&request),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let text = body["candidates"][0]["content"]["parts"][0]["text"]
            .as_str()
            .unwrap();
        assert_fits(text, &schema);
    }

    // The classifier's answer is exactly what Gemini CLI reads.
    let (_, body) = f
        .post_as(
            ALICE,
            None,
            "/v1internal:generateContent",
            &envelope(
                ALICE,
                "gemini-3-flash",
                json_request("responseJsonSchema", &classifier_schema()),
            ),
        )
        .await;
    let answer: Value = serde_json::from_str(&answer_text(&body)).unwrap();
    assert_eq!(answer["model_choice"], "flash");
    assert!(answer["reasoning"].as_str().is_some_and(|r| !r.is_empty()));

    // JSON mime type without a schema: a small object.
    let (_, body) = f
        .post_as(
            ALICE,
            None,
            "/v1internal:generateContent",
            &envelope(ALICE, "gemini-3-flash", json_request("", &Value::Null)),
        )
        .await;
    let answer: Value = serde_json::from_str(&answer_text(&body)).unwrap();
    assert_eq!(
        answer,
        json!({"reply": "Simulated gemini-3-flash reply to: Route this request"})
    );

    // Prose stays prose.
    let (_, body) = f
        .post_as(
            ALICE,
            None,
            "/v1internal:generateContent",
            &envelope(ALICE, "gemini-3-flash", ask("hi")),
        )
        .await;
    assert_eq!(answer_text(&body), "Simulated gemini-3-flash reply to: hi");
}

// ------------------------------------------------------- a changing catalog

#[tokio::test]
async fn a_retired_model_moves_to_deprecated_and_answers_404() {
    let f = Fixture::start().await;
    let (models, _) = f.catalog(ALICE).await;
    assert!(models.contains_key("gemini-2.5-pro"));
    assert_eq!(
        f.generate(ALICE, None, "gemini-2.5-pro").await.0,
        StatusCode::OK
    );

    f.sim
        .retire_model("gemini-2.5-pro", Some("gemini-3-pro-high"));

    let (models, deprecated) = f.catalog(ALICE).await;
    assert!(!models.contains_key("gemini-2.5-pro"));
    assert_eq!(
        deprecated["gemini-2.5-pro"],
        json!({"newModelId": "gemini-3-pro-high"})
    );
    // The starting deprecations are still there.
    assert_eq!(
        deprecated["gemini-3-pro-preview"]["newModelId"],
        "gemini-3-pro-high"
    );
    let (status, body) = f.generate(ALICE, None, "gemini-2.5-pro").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        body,
        json!({"error": {
            "code": 404,
            "message": "Requested entity was not found.",
            "errors": [{"message": "Requested entity was not found.", "domain": "global", "reason": "notFound"}],
            "status": "NOT_FOUND",
        }})
    );
    let count =
        json!({"request": {"model": "models/gemini-2.5-pro", "contents": ask("x")["contents"]}});
    let (status, _) = f
        .post_as(ALICE, None, "/v1internal:countTokens", &count)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The official API lost it too.
    let (_, list) = f
        .gemini_api(reqwest::Method::GET, "/v1beta/models", None)
        .await;
    let names: Vec<&str> = list["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(!names.contains(&"models/gemini-2.5-pro"), "{names:?}");
    let (status, body) = f
        .gemini_api(
            reqwest::Method::POST,
            "/v1beta/models/gemini-2.5-pro:generateContent",
            Some(&ask("x")),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is not found for API version v1beta")
    );

    // Added back, it is served again and no longer deprecated.
    f.sim.add_model(SimModel::new(
        "gemini-2.5-pro",
        "Gemini 2.5 Pro",
        1_048_576,
        65_535,
    ));
    let (models, deprecated) = f.catalog(ALICE).await;
    assert!(models.contains_key("gemini-2.5-pro"));
    assert!(!deprecated.contains_key("gemini-2.5-pro"));
    assert_eq!(
        f.generate(ALICE, None, "gemini-2.5-pro").await.0,
        StatusCode::OK
    );
    assert_eq!(
        f.sim
            .retired_models()
            .iter()
            .filter(|(id, _)| id == "gemini-2.5-pro")
            .count(),
        0
    );
}

#[tokio::test]
async fn a_model_retired_with_a_notice_answers_googles_text() {
    let f = Fixture::start().await;
    f.sim
        .retire_model_with_notice("gemini-3-pro-low", "gemini-3-pro-high");
    let (status, body) = f.generate(ALICE, None, "gemini-3-pro-low").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer_text(&body),
        "Gemini 3 Pro (Low) is no longer available. Please switch to Gemini 3 Pro (High) in the latest version of Antigravity."
    );
    let (_, deprecated) = f.catalog(ALICE).await;
    assert_eq!(
        deprecated["gemini-3-pro-low"]["newModelId"],
        "gemini-3-pro-high"
    );
}

#[tokio::test]
async fn new_and_removed_models_while_running() {
    let f = Fixture::start().await;
    let next: ModelSpec =
        SimModel::new("gemini-3.5-pro", "Gemini 3.5 Pro", 2_097_152, 65_536).without_images();
    f.sim.add_model(next);
    let (models, _) = f.catalog(BOB).await;
    assert_eq!(models["gemini-3.5-pro"]["displayName"], "Gemini 3.5 Pro");
    assert_eq!(models["gemini-3.5-pro"]["maxTokens"], 2_097_152);
    assert_eq!(models["gemini-3.5-pro"]["supportsImages"], false);
    let (status, body) = f.generate(BOB, None, "gemini-3.5-pro").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer_text(&body),
        "Simulated gemini-3.5-pro reply to: hello"
    );

    f.sim.add_gemini_api_model(SimModel::new(
        "gemini-3.5-flash",
        "Gemini 3.5 Flash",
        1_048_576,
        65_536,
    ));
    let (status, _) = f
        .gemini_api(
            reqwest::Method::POST,
            "/v1beta/models/gemini-3.5-flash:generateContent",
            Some(&ask("x")),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    f.sim.remove_model("gemini-3-flash");
    let (models, deprecated) = f.catalog(ALICE).await;
    assert!(!models.contains_key("gemini-3-flash"));
    assert!(!deprecated.contains_key("gemini-3-flash"));
    assert_eq!(
        f.generate(ALICE, None, "gemini-3-flash").await.0,
        StatusCode::NOT_FOUND
    );
    assert!(f.sim.models().iter().all(|m| m.id != "gemini-3-flash"));
}

#[tokio::test]
async fn a_model_for_some_tiers_is_hidden_from_and_refused_to_others() {
    let f = Fixture::start().await;
    // alice is g1-pro-tier, bob free-tier.
    f.sim.add_model(
        SimModel::new(
            "claude-opus-4-6-thinking",
            "Claude Opus 4.6 (Thinking)",
            200_000,
            64_000,
        )
        .only_for(&["g1-pro-tier", "g1-ultra-tier"]),
    );
    f.sim.add_model(
        SimModel::new("gemini-3-pro-image", "Gemini 3 Pro Image", 65_536, 32_768).only_for(&[BOB]),
    );
    let (alice, _) = f.catalog(ALICE).await;
    let (bob, _) = f.catalog(BOB).await;
    assert!(alice.contains_key("claude-opus-4-6-thinking"));
    assert!(!bob.contains_key("claude-opus-4-6-thinking"));
    assert!(bob.contains_key("gemini-3-pro-image"));
    assert!(!alice.contains_key("gemini-3-pro-image"));
    assert_eq!(
        f.generate(ALICE, None, "claude-opus-4-6-thinking").await.0,
        StatusCode::OK
    );
    let (status, body) = f.generate(BOB, None, "claude-opus-4-6-thinking").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"]["status"], "NOT_FOUND");
    assert_eq!(
        f.generate(ALICE, None, "gemini-3-pro-image").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        f.generate(BOB, None, "gemini-3-pro-image").await.0,
        StatusCode::OK
    );
}

// ------------------------------------------------------- old client versions

const OLD_ANTIGRAVITY: &str = "antigravity/1.15.8 linux/amd64";
const NEW_ANTIGRAVITY: &str = "antigravity/1.16.0 linux/amd64";

#[tokio::test]
async fn an_old_antigravity_is_answered_with_googles_text() {
    let f = Fixture::start().await;
    assert_eq!(
        f.generate(ALICE, Some(OLD_ANTIGRAVITY), "gemini-3-flash")
            .await
            .0,
        StatusCode::OK
    );
    f.sim.require_client_version("antigravity", "1.16.0");

    let (status, body) = f
        .generate(ALICE, Some(OLD_ANTIGRAVITY), "gemini-3-flash")
        .await;
    assert_eq!(status, StatusCode::OK, "Google answers 200");
    assert_eq!(
        body,
        json!({"response": {"candidates": [{"content": {"parts": [{"text": ANTIGRAVITY_UNSUPPORTED}]}}]}})
    );
    // Streamed: one chunk carrying the text.
    let token = f.sim.issue_access_token(ALICE).unwrap();
    let response = f
        .http
        .post(f.url("/v1internal:streamGenerateContent?alt=sse"))
        .bearer_auth(token)
        .header("user-agent", OLD_ANTIGRAVITY)
        .json(&envelope(ALICE, "gemini-3-flash", ask("hi")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let events = sse_events(&response.text().await.unwrap());
    assert_eq!(events.len(), 1);
    assert_eq!(answer_text(&events[0]), ANTIGRAVITY_UNSUPPORTED);

    // A current client, a client that reports no version, and other calls pass.
    assert_eq!(
        answer_text(
            &f.generate(ALICE, Some(NEW_ANTIGRAVITY), "gemini-3-flash")
                .await
                .1
        ),
        "Simulated gemini-3-flash reply to: hello"
    );
    assert_eq!(
        answer_text(&f.generate(ALICE, None, "gemini-3-flash").await.1),
        "Simulated gemini-3-flash reply to: hello"
    );
    let (status, _) = f
        .post_as(
            ALICE,
            Some(OLD_ANTIGRAVITY),
            "/v1internal:fetchAvailableModels",
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    f.sim.clear_client_versions();
    assert_eq!(
        answer_text(
            &f.generate(ALICE, Some(OLD_ANTIGRAVITY), "gemini-3-flash")
                .await
                .1
        ),
        "Simulated gemini-3-flash reply to: hello"
    );
}

#[tokio::test]
async fn an_old_gemini_cli_and_gates_that_answer_with_errors() {
    let config = SimConfig {
        client_gates: vec![ClientGate::new("gemini-cli", "0.60.0")],
        ..SimConfig::default()
    };
    let f = Fixture::with(Sim::demo_with(config)).await;
    let old_cli = "GeminiCLI/0.59.1/gemini-3-flash (linux; x64)";
    let (status, body) = f.generate(ALICE, Some(old_cli), "gemini-3-flash").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer_text(&body), GEMINI_CLI_UNSUPPORTED);
    let (_, body) = f
        .generate(
            ALICE,
            Some("GeminiCLI/0.61.0/gemini-3-flash (linux; x64)"),
            "gemini-3-flash",
        )
        .await;
    assert_eq!(
        answer_text(&body),
        "Simulated gemini-3-flash reply to: hello"
    );

    // A gate answering with an error in Google's shape instead.
    f.sim.gate_client_version(
        ClientGate::new("antigravity", "1.16.0")
            .with_form(GateForm::Error(400))
            .with_message("Your current version of Antigravity is out of date. Please visit https://antigravity.google/download to download and install the latest version."),
    );
    let (status, body) = f
        .generate(ALICE, Some(OLD_ANTIGRAVITY), "gemini-3-flash")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["status"], "FAILED_PRECONDITION");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("out of date")
    );
    assert_eq!(f.sim.client_gates().len(), 2);
    // Replacing the gate for the same client.
    f.sim.require_client_version("antigravity", "1.0.0");
    assert_eq!(f.sim.client_gates().len(), 2);
    assert_eq!(
        f.generate(ALICE, Some(OLD_ANTIGRAVITY), "gemini-3-flash")
            .await
            .0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_new_model_can_need_a_newer_antigravity() {
    let f = Fixture::start().await;
    f.sim.add_model(
        SimModel::new(
            "gemini-3.1-pro-high",
            "Gemini 3.1 Pro (High)",
            1_048_576,
            65_535,
        )
        .requires_client_version("1.18.0"),
    );
    let (status, body) = f
        .generate(ALICE, Some(NEW_ANTIGRAVITY), "gemini-3.1-pro-high")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        answer_text(&body),
        "Gemini 3.1 Pro (High) is not available on this version. Please upgrade to the latest version."
    );
    let (_, body) = f
        .generate(
            ALICE,
            Some("antigravity/1.18.3 darwin/arm64"),
            "gemini-3.1-pro-high",
        )
        .await;
    assert_eq!(
        answer_text(&body),
        "Simulated gemini-3.1-pro-high reply to: hello"
    );
    // Other models are not gated.
    let (_, body) = f
        .generate(ALICE, Some(NEW_ANTIGRAVITY), "gemini-3-flash")
        .await;
    assert_eq!(
        answer_text(&body),
        "Simulated gemini-3-flash reply to: hello"
    );
}
