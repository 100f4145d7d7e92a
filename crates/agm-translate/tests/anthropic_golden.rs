#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Golden fixtures for the Anthropic ⇄ Gemini conversion. Run with `UPDATE_GOLDEN=1`
//! to rewrite the expected files after an intended change, and review the diff.

mod common;

use agm_translate::anthropic::{
    RequestOptions, ResponseContext, StreamTranscoder, Translated, assemble, from_gemini,
    to_gemini, to_sse,
};
use agm_translate::upstream::{UpstreamChunk, parse_chunk};
use agm_wire::anthropic::{MessagesRequest, StreamEvent};
use common::Fixtures;
use serde_json::Value;

const FIXTURES: Fixtures = Fixtures("anthropic");

fn claude_code_request() -> MessagesRequest {
    serde_json::from_str(&FIXTURES.read("claude_code_request.json")).unwrap()
}

/// Anthropic's golden files predate the request notes and leave them out.
fn translated_json(t: &Translated, upstream: &str) -> Value {
    let mut value = common::translated_json(t, upstream);
    value.as_object_mut().unwrap().remove("notes");
    value
}

#[test]
fn claude_code_request_to_claude_upstream() {
    let upstream = "claude-sonnet-4-5-thinking";
    let t = to_gemini(&claude_code_request(), upstream, &RequestOptions::default()).unwrap();
    FIXTURES.assert_golden(
        "claude_code_request.claude.json",
        &translated_json(&t, upstream),
    );
}

#[test]
fn claude_code_request_to_gemini_upstream() {
    let upstream = "gemini-3-pro-high";
    let t = to_gemini(&claude_code_request(), upstream, &RequestOptions::default()).unwrap();
    FIXTURES.assert_golden(
        "claude_code_request.gemini.json",
        &translated_json(&t, upstream),
    );
}

fn context() -> ResponseContext {
    let req = claude_code_request();
    let t = to_gemini(&req, "gemini-3-pro-high", &RequestOptions::default()).unwrap();
    ResponseContext::for_request(req.model, &t, "req-golden")
}

#[test]
fn gemini_response_to_anthropic() {
    let body = FIXTURES.read("gemini_response.json");
    let Ok(UpstreamChunk::Response(resp)) = parse_chunk(&body) else {
        panic!("fixture is not a response");
    };
    let message = from_gemini(&resp, &context());
    FIXTURES.assert_golden(
        "gemini_response.anthropic.json",
        &serde_json::to_value(&message).unwrap(),
    );
}

/// Runs upstream SSE bytes, cut into the given chunks, through the parser and the
/// transcoder.
fn transcode(chunks: &[&[u8]], ctx: ResponseContext) -> Vec<StreamEvent> {
    let mut transcoder = StreamTranscoder::new(ctx);
    let mut events = common::feed(chunks, |r| transcoder.push(r));
    assert!(!transcoder.is_empty_answer());
    events.extend(transcoder.finish());
    events
}

#[test]
fn gemini_stream_to_anthropic_events() {
    let bytes = FIXTURES.bytes("gemini_stream.sse");
    let mut ctx = context();
    ctx.thinking = true;
    let events = transcode(&[&bytes], ctx);
    FIXTURES.assert_golden(
        "gemini_stream.anthropic.json",
        &serde_json::to_value(&events).unwrap(),
    );
    let sse: String = events.iter().map(to_sse).collect();
    assert!(sse.starts_with("event: message_start\ndata: {\"type\":\"message_start\""));
    assert!(sse.ends_with("event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"));
    let message = assemble(&events);
    FIXTURES.assert_golden(
        "gemini_stream.assembled.json",
        &serde_json::to_value(&message).unwrap(),
    );
}
