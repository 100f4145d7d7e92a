#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The Gemini API routes, `count_tokens` and the model list, in-process against the
//! simulated Google.

mod common;

use agm_sim::{Fault, SimMethod};
use common::start;
use serde_json::{Value, json};

fn gemini_body(text: &str) -> Value {
    json!({
        "contents": [{"role": "user", "parts": [{"text": text}]}],
        "systemInstruction": {"parts": [{"text": "be brief"}]},
        "generationConfig": {"maxOutputTokens": 200, "temperature": 0.3},
    })
}

#[tokio::test]
async fn gemini_generate_content_passes_through() {
    let h = start().await;
    for prefix in ["/v1beta", "/v1"] {
        let response = h
            .post_to(
                &format!("{prefix}/models/gemini-2.5-flash:generateContent"),
                &gemini_body("hi gemini"),
            )
            .await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["candidates"][0]["content"]["parts"][0]["text"],
            "Simulated gemini-2.5-flash reply to: hi gemini"
        );
        assert!(
            body.get("response").is_none(),
            "the Cloud Code envelope is unwrapped"
        );
        assert!(body["usageMetadata"]["totalTokenCount"].as_u64().unwrap() > 0);
    }
    let sent = h.sim.requests();
    let generate = sent
        .iter()
        .find(|r| r.method == SimMethod::GenerateContent)
        .unwrap();
    assert_eq!(generate.body["model"], "gemini-2.5-flash");
    assert_eq!(
        generate.body["request"]["generationConfig"]["temperature"],
        0.3
    );
    assert_eq!(
        generate.body["request"]["systemInstruction"]["parts"][0]["text"],
        "be brief"
    );
    assert!(
        generate.body["request"]["sessionId"]
            .as_str()
            .unwrap()
            .starts_with("sess-")
    );
}

#[tokio::test]
async fn gemini_model_names_are_mapped() {
    let h = start().await;
    let body: Value = h
        .post_to(
            "/v1beta/models/gemini-3-pro-preview:generateContent",
            &gemini_body("x"),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["candidates"][0]["content"]["parts"][0]["text"],
        "Simulated gemini-3-pro-high reply to: x"
    );
}

#[tokio::test]
async fn gemini_stream_sse_and_json_array() {
    let h = start().await;
    let response = h
        .post_to(
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            &gemini_body("stream it"),
        )
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    let chunks: Vec<Value> = text
        .split("\r\n\r\n")
        .filter_map(|f| f.strip_prefix("data: "))
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(chunks.len(), 3);
    let joined: String = chunks
        .iter()
        .map(|c| {
            c["candidates"][0]["content"]["parts"][0]["text"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(joined, "Simulated gemini-2.5-flash reply to: stream it");

    let array: Vec<Value> = h
        .post_to(
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
            &gemini_body("stream it"),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(array.len(), 3);
    assert_eq!(array[2]["candidates"][0]["finishReason"], "STOP");
}

#[tokio::test]
async fn gemini_broken_sse_stream_ends_with_a_google_error() {
    let h = start().await;
    h.sim.script(Fault::break_stream_after(
        SimMethod::StreamGenerateContent,
        1,
    ));
    let response = h
        .post_to(
            "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
            &gemini_body("stream it"),
        )
        .await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let frames: Vec<&str> = text.split_terminator("\r\n\r\n").collect();
    assert_eq!(frames.len(), 2, "{text}");
    let first: Value = serde_json::from_str(frames[0].strip_prefix("data: ").unwrap()).unwrap();
    assert!(first["candidates"][0]["content"]["parts"][0]["text"].is_string());
    let error: Value = serde_json::from_str(frames[1].strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(error["error"]["code"], 502);
    assert_eq!(error["error"]["status"], "UNAVAILABLE");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("the upstream stream broke: "),
        "{error}"
    );
}

#[tokio::test]
async fn gemini_errors_are_google_shaped() {
    let h = start().await;
    let response = h
        .post_to(
            "/v1beta/models/gemini-2.5-flash:generateContent",
            &json!({"contents": []}),
        )
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["status"], "INVALID_ARGUMENT");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("contents")
    );

    let response = h
        .post_to(
            "/v1beta/models/no-such-model-at-all:generateContent",
            &gemini_body("x"),
        )
        .await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["status"], "NOT_FOUND");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("no-such-model-at-all") && message.contains("gemini-3-flash"),
        "{message}"
    );

    h.sim
        .script(Fault::rate_limited(SimMethod::GenerateContent, "7s").always());
    let response = h
        .post_to(
            "/v1beta/models/gemini-2.5-flash:generateContent",
            &gemini_body("x"),
        )
        .await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["status"], "RESOURCE_EXHAUSTED");
}

#[tokio::test]
async fn gemini_count_tokens() {
    let h = start().await;
    let body: Value = h
        .post_to(
            "/v1beta/models/gemini-2.5-flash:countTokens",
            &json!({"contents": [{"role": "user", "parts": [{"text": "a".repeat(400)}]}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let n = body["totalTokens"].as_u64().unwrap();
    assert!((90..=110).contains(&n), "{n}");
    let wrapped: Value = h
        .post_to(
            "/v1/models/gemini-2.5-flash:countTokens",
            &json!({"generateContentRequest": {"contents": [{"role": "user", "parts": [{"text": "abcd"}]}]}}),
        )
        .await
        .json()
        .await
        .unwrap();
    let small = wrapped["totalTokens"].as_u64().unwrap();
    assert!(
        (1..n).contains(&small),
        "a short text counts less: {small} vs {n}"
    );
}

#[tokio::test]
async fn anthropic_count_tokens_is_honest_and_counts_tools() {
    let h = start().await;
    let base = json!({
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "a".repeat(400)}],
    });
    let response = h.post_to("/v1/messages/count_tokens", &base).await;
    assert_eq!(response.status(), 200);
    let plain: Value = response.json().await.unwrap();
    let plain = plain["input_tokens"].as_u64().unwrap();
    assert!(plain >= 90, "{plain}");

    let mut with_tools = base.clone();
    with_tools["system"] = json!("a system prompt of some length, counted too");
    with_tools["tools"] = json!([{
        "name": "read_file",
        "description": "Reads a file from the workspace and returns its content",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    }]);
    let more: Value = h
        .post_to("/v1/messages/count_tokens", &with_tools)
        .await
        .json()
        .await
        .unwrap();
    assert!(
        more["input_tokens"].as_u64().unwrap() > plain + 20,
        "{more} vs {plain}"
    );
    let sent = h.sim.requests();
    let count = sent
        .iter()
        .rev()
        .find(|r| r.method == SimMethod::CountTokens)
        .unwrap();
    assert!(count.body.get("project").is_none());
    assert_eq!(count.body["request"]["model"], "models/claude-sonnet-4-5");
}

#[tokio::test]
async fn one_model_list_for_every_sdk() {
    let h = start().await;
    let body: Value = h
        .http
        .get(format!("{}/v1/models", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["object"], "list");
    let data = body["data"].as_array().unwrap();
    let ids: Vec<&str> = data.iter().map(|m| m["id"].as_str().unwrap()).collect();
    for expected in ["claude-sonnet-4-5", "gemini-3-flash", "gemini-3-pro-high"] {
        assert!(ids.contains(&expected), "{expected} in {ids:?}");
    }
    assert_eq!(body["has_more"], false);
    assert_eq!(body["models"].as_array().unwrap().len(), data.len());
    assert_eq!(body["models"][0]["name"], format!("models/{}", ids[0]));
    assert_eq!(data[0]["type"], "model");
    assert_eq!(data[0]["object"], "model");

    let one: Value = h
        .http
        .get(format!("{}/v1/models/gemini-3-flash", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["id"], "gemini-3-flash");
    let missing = h
        .http
        .get(format!("{}/v1/models/nope", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let err: Value = missing.json().await.unwrap();
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("available: ")
    );

    let gemini: Value = h
        .http
        .get(format!("{}/v1beta/models", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        gemini["models"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["name"] == "models/gemini-3-flash")
    );
}

#[tokio::test]
async fn deprecated_upstream_ids_are_forwarded() {
    use std::sync::Arc;

    use agm_server::app::AppState;

    let h = start().await;
    let snapshot: agm_google::QuotaSnapshot = serde_json::from_value(json!({
        "fetched_at": "2026-11-22T00:00:00Z",
        "models": [],
        "summary_answered": false,
        "buckets": [],
        "deprecated": {"claude-sonnet-4-5": "claude-sonnet-4-5-thinking"},
    }))
    .unwrap();
    let account = h.state.store.list_accounts().await.unwrap().remove(0);
    agm_server::state::quota::save(&h.state.shared, &account.id, &snapshot)
        .await
        .unwrap();
    let deprecated = agm_server::state::quota::deprecations(&h.state.store, &h.state.shared)
        .await
        .unwrap();
    let state = Arc::new(
        AppState::new(h.state.config.clone(), h.state.store.clone())
            .unwrap()
            .with_model_deprecations(deprecated),
    );
    let url = common::serve_state(state).await;
    let body: Value = h
        .http
        .post(format!("{url}/v1/messages"))
        .json(&json!({"model": "claude-sonnet-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        body["model"], "claude-sonnet-5",
        "the client sees its own name"
    );
    let sent = h
        .sim
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.method == SimMethod::GenerateContent)
        .unwrap();
    assert_eq!(sent.body["model"], "claude-sonnet-4-5-thinking");
}
