#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The stream transcoders behind the one `Transcoder` trait the server drives: their
//! frames are exactly each API's events as SSE (Anthropic's with a `ping` right after
//! `message_start`), a broken or late stream ends with the API's own error, and each
//! has its keep-alive.

use agm_translate::anthropic::{self, Messages};
use agm_translate::common::{ChatApi, RequestOptions, StreamFault, Transcoder};
use agm_translate::gemini_api::Passthrough;
use agm_translate::openai_chat::{self, ChatCompletions};
use agm_translate::openai_responses::{self, Responses};
use agm_wire::anthropic::StreamEvent;
use agm_wire::gemini::GenerateContentResponse;
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

fn chunk(value: Value) -> GenerateContentResponse {
    serde_json::from_value(value).unwrap()
}

/// A thought with its signature, text, a function call, then the finish with usage.
fn upstream() -> Vec<GenerateContentResponse> {
    vec![
        chunk(
            json!({"candidates": [{"content": {"role": "model", "parts": [
            {"text": "let me think", "thought": true, "thoughtSignature": "c2lnbmF0dXJl"}
        ]}}], "usageMetadata": {"promptTokenCount": 12}}),
        ),
        chunk(
            json!({"candidates": [{"content": {"role": "model", "parts": [
                {"text": "Hello"}, {"text": ", world"}
            ]}}]}),
        ),
        chunk(
            json!({"candidates": [{"content": {"role": "model", "parts": [
                {"functionCall": {"name": "lookup", "args": {"q": "x"}}}
            ]}}]}),
        ),
        chunk(json!({"candidates": [{"finishReason": "STOP"}],
                     "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 7,
                                       "thoughtsTokenCount": 3, "totalTokenCount": 22}})),
    ]
}

/// The context of the answer to a small request of API `A`.
fn context<A: ChatApi>(body: Value, model: &str) -> A::Context {
    let request: A::Request = serde_json::from_value(body).unwrap();
    let translated = A::to_gemini(&request, model, &RequestOptions::default()).unwrap();
    A::context(&request, &translated, "seed".to_owned(), 1_700_000_000)
}

fn anthropic_context() -> anthropic::ResponseContext {
    context::<Messages>(
        json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": true,
               "thinking": {"type": "enabled", "budget_tokens": 2048},
               "messages": [{"role": "user", "content": "hi"}]}),
        "claude-sonnet-4-5-thinking",
    )
}

fn chat_context() -> openai_chat::ResponseContext {
    context::<ChatCompletions>(
        json!({"model": "gpt-4o", "stream": true, "stream_options": {"include_usage": true},
               "reasoning_effort": "low", "messages": [{"role": "user", "content": "hi"}]}),
        "gemini-2.5-pro",
    )
}

fn responses_context() -> openai_responses::ResponseContext {
    context::<Responses>(
        json!({"model": "gpt-5-codex", "stream": true,
               "reasoning": {"effort": "low", "summary": "auto"}, "input": "hi"}),
        "gemini-2.5-pro",
    )
}

/// Every frame of the whole stream through the trait.
fn frames(transcoder: &mut impl Transcoder) -> Vec<String> {
    let mut out = Vec::new();
    for chunk in upstream() {
        out.extend(transcoder.on_chunk(&chunk));
    }
    out.extend(transcoder.on_end());
    assert!(transcoder.finished());
    assert!(transcoder.on_end().is_empty(), "nothing after the end");
    out
}

/// The frames of a stream that breaks after its first chunk, and then of a second
/// fault (none).
fn broken(transcoder: &mut impl Transcoder, fault: &StreamFault) -> Vec<String> {
    let mut out = transcoder.on_chunk(&upstream()[1]);
    out.extend(transcoder.on_fault(fault));
    assert!(transcoder.finished());
    assert!(transcoder.on_fault(fault).is_empty(), "one error only");
    out
}

#[test]
fn anthropic_frames_are_its_events_with_a_ping_after_message_start() {
    let mut events = anthropic::StreamTranscoder::new(anthropic_context());
    let mut expected = Vec::new();
    for chunk in upstream() {
        for event in events.push(&chunk) {
            let start = matches!(event, StreamEvent::MessageStart { .. });
            expected.push(anthropic::to_sse(&event));
            if start {
                expected.push(anthropic::to_sse(&StreamEvent::Ping));
            }
        }
    }
    expected.extend(events.finish().iter().map(anthropic::to_sse));

    let mut transcoder = Messages::transcoder(anthropic_context());
    let got = frames(&mut transcoder);
    assert_eq!(got, expected);
    assert!(got[0].starts_with("event: message_start\n"));
    assert_eq!(got[1], "event: ping\ndata: {\"type\":\"ping\"}\n\n");
    assert_eq!(Transcoder::signatures(&transcoder), events.signatures());
    assert_eq!(Transcoder::signatures(&transcoder).len(), 1);
    assert_eq!(
        transcoder.keepalive().as_deref(),
        Some("event: ping\ndata: {\"type\":\"ping\"}\n\n")
    );

    let mut transcoder = Messages::transcoder(anthropic_context());
    let got = broken(
        &mut transcoder,
        &StreamFault::Broken("reset by peer".into()),
    );
    assert_eq!(
        got.last().unwrap(),
        "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"the upstream stream broke: reset by peer\"}}\n\n"
    );
}

#[test]
fn chat_frames_are_its_chunks() {
    let mut chunks = openai_chat::StreamTranscoder::new(chat_context());
    let mut expected = Vec::new();
    for chunk in upstream() {
        expected.extend(chunks.push(&chunk).iter().map(openai_chat::to_sse));
    }
    expected.extend(chunks.finish().iter().map(openai_chat::to_sse));

    let mut transcoder = ChatCompletions::transcoder(chat_context());
    let got = frames(&mut transcoder);
    assert_eq!(got, expected);
    assert_eq!(got.last().unwrap(), "data: [DONE]\n\n");
    assert_eq!(transcoder.keepalive().as_deref(), Some(": keep-alive\n\n"));

    let mut transcoder = ChatCompletions::transcoder(chat_context());
    let got = broken(&mut transcoder, &StreamFault::Deadline);
    let last: Value =
        serde_json::from_str(got.last().unwrap().strip_prefix("data: ").unwrap()).unwrap();
    assert_eq!(
        last["error"]["message"],
        "the request took longer than server.request_timeout"
    );
    assert_eq!(last["error"]["type"], "server_error");
}

#[test]
fn responses_frames_are_its_events() {
    let mut events = openai_responses::StreamTranscoder::new(responses_context());
    let mut expected = Vec::new();
    for chunk in upstream() {
        expected.extend(events.push(&chunk).iter().map(openai_responses::to_sse));
    }
    expected.extend(events.finish().iter().map(openai_responses::to_sse));

    let mut transcoder = Responses::transcoder(responses_context());
    let got = frames(&mut transcoder);
    assert_eq!(got, expected);
    assert!(
        got.last()
            .unwrap()
            .starts_with("event: response.completed\n")
    );
    assert_eq!(Transcoder::signatures(&transcoder), events.signatures());
    assert_eq!(transcoder.keepalive().as_deref(), Some(": keep-alive\n\n"));

    let mut transcoder = Responses::transcoder(responses_context());
    let got = broken(&mut transcoder, &StreamFault::Broken("EOF".into()));
    let failed = got.last().unwrap();
    assert!(failed.starts_with("event: response.failed\n"), "{failed}");
    assert!(failed.contains("\"message\":\"the upstream stream broke: EOF\""));
}

#[test]
fn gemini_chunks_pass_through_and_faults_are_google_shaped() {
    let mut passthrough = Passthrough::new();
    let got = frames(&mut passthrough);
    let expected: Vec<String> = upstream()
        .iter()
        .map(|c| format!("data: {}\r\n\r\n", serde_json::to_string(c).unwrap()))
        .collect();
    assert_eq!(got, expected);
    assert_eq!(passthrough.keepalive(), None);
    assert!(Transcoder::signatures(&passthrough).is_empty());

    let got = broken(&mut Passthrough::new(), &StreamFault::Broken("EOF".into()));
    assert_eq!(
        got.last().unwrap(),
        "data: {\"error\":{\"code\":502,\"message\":\"the upstream stream broke: EOF\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n"
    );
    let got = broken(&mut Passthrough::new(), &StreamFault::Deadline);
    assert_eq!(
        got.last().unwrap(),
        "data: {\"error\":{\"code\":504,\"message\":\"the request took longer than server.request_timeout\",\"status\":\"DEADLINE_EXCEEDED\"}}\r\n\r\n"
    );
}
