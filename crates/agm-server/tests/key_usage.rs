#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Usage attribution: every API, whole and streamed, writes a request-log row with the
//! tokens Google reported and the client key that sent it (a stream's row when the
//! stream ends).

mod common;

use std::time::{Duration, Instant};

use agm_sim::{Fault, ScriptedReply, SimMethod};
use agm_store::RequestLogEntry;
use common::{Harness, start};
use serde_json::{Value, json};

/// What the sim reports: output is candidates + thoughts.
const PROMPT: u64 = 321;
const CANDIDATES: u64 = 54;
const THOUGHTS: u64 = 6;

fn usage() -> Value {
    json!({
        "promptTokenCount": PROMPT,
        "candidatesTokenCount": CANDIDATES,
        "thoughtsTokenCount": THOUGHTS,
        "totalTokenCount": PROMPT + CANDIDATES + THOUGHTS,
    })
}

/// Two parts (two chunks when streamed), usage on the last only, as Google sends it.
fn script(h: &Harness, method: SimMethod) {
    h.sim.script(Fault::reply(
        method,
        ScriptedReply::text("Counted ")
            .with_part(json!({"text": "answer."}))
            .with_usage(usage()),
    ));
}

async fn send(h: &Harness, secret: &str, path: &str, body: Value) -> String {
    let response = h
        .http
        .post(format!("{}{path}", h.url))
        .header("x-api-key", secret)
        .header("authorization", format!("Bearer {secret}"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

/// The newest request-log row, once the writer wrote `n` rows.
async fn row(h: &Harness, n: usize) -> RequestLogEntry {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let rows = h.state.store.list_request_log(None, 10).await.unwrap();
        if rows.len() >= n {
            return rows[0].entry.clone();
        }
        assert!(Instant::now() < deadline, "no request-log row");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn attributed(path: &str, body: Value, method: SimMethod) {
    let h = start().await;
    let (key, secret) = h.state.store.create_client_key("ci").await.unwrap();
    script(&h, method);
    let text = send(&h, &secret, path, body).await;
    assert!(text.contains("answer."), "{text}");
    let entry = row(&h, 1).await;
    assert_eq!(entry.key_id.as_deref(), Some(key.id.as_str()), "{entry:?}");
    assert_eq!(entry.input_tokens, PROMPT, "{entry:?}");
    assert_eq!(entry.output_tokens, CANDIDATES + THOUGHTS, "{entry:?}");
    assert_eq!(entry.status, 200);
}

fn anthropic(stream: bool) -> Value {
    json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": stream,
           "messages": [{"role": "user", "content": "count me"}]})
}

fn chat(stream: bool) -> Value {
    json!({"model": "gemini-2.5-flash", "stream": stream,
           "messages": [{"role": "user", "content": "count me"}]})
}

fn responses(stream: bool) -> Value {
    json!({"model": "gemini-2.5-flash", "stream": stream, "input": "count me"})
}

fn gemini() -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": "count me"}]}]})
}

#[tokio::test]
async fn anthropic_whole() {
    attributed("/v1/messages", anthropic(false), SimMethod::GenerateContent).await;
}

#[tokio::test]
async fn anthropic_streamed() {
    attributed(
        "/v1/messages",
        anthropic(true),
        SimMethod::StreamGenerateContent,
    )
    .await;
}

#[tokio::test]
async fn openai_chat_whole() {
    attributed(
        "/v1/chat/completions",
        chat(false),
        SimMethod::GenerateContent,
    )
    .await;
}

#[tokio::test]
async fn openai_chat_streamed() {
    attributed(
        "/v1/chat/completions",
        chat(true),
        SimMethod::StreamGenerateContent,
    )
    .await;
}

#[tokio::test]
async fn openai_responses_whole() {
    attributed(
        "/v1/responses",
        responses(false),
        SimMethod::GenerateContent,
    )
    .await;
}

#[tokio::test]
async fn openai_responses_streamed() {
    attributed(
        "/v1/responses",
        responses(true),
        SimMethod::StreamGenerateContent,
    )
    .await;
}

#[tokio::test]
async fn gemini_whole() {
    attributed(
        "/v1beta/models/gemini-2.5-flash:generateContent",
        gemini(),
        SimMethod::GenerateContent,
    )
    .await;
}

#[tokio::test]
async fn gemini_streamed_sse() {
    attributed(
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse",
        gemini(),
        SimMethod::StreamGenerateContent,
    )
    .await;
}

#[tokio::test]
async fn gemini_streamed_json_array() {
    attributed(
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        gemini(),
        SimMethod::StreamGenerateContent,
    )
    .await;
}

/// Without keys (loopback), rows have no key id, and still their tokens.
#[tokio::test]
async fn keyless_rows_have_tokens_and_no_key() {
    let h = start().await;
    script(&h, SimMethod::StreamGenerateContent);
    let response = h.post(&anthropic(true)).await;
    assert_eq!(response.status(), 200);
    response.text().await.unwrap();
    let entry = row(&h, 1).await;
    assert_eq!(entry.key_id, None);
    assert_eq!(entry.input_tokens, PROMPT);
    assert_eq!(entry.output_tokens, CANDIDATES + THOUGHTS);
}
