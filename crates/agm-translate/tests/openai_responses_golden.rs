#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Golden fixtures for the OpenAI Responses ⇄ Gemini conversion, with a Codex-shaped
//! request. Run with `UPDATE_GOLDEN=1` to rewrite the expected files after an
//! intended change, and review the diff.

mod common;

use agm_translate::openai_responses::{
    RequestOptions, ResponseContext, StreamTranscoder, assemble, from_gemini, to_gemini, to_sse,
};
use agm_translate::upstream::{UpstreamChunk, parse_chunk};
use agm_wire::openai::responses::{ResponsesRequest, StreamEvent};
use common::{Fixtures, translated_json};

const FIXTURES: Fixtures = Fixtures("openai_responses");

fn codex_request() -> ResponsesRequest {
    serde_json::from_str(&FIXTURES.read("codex_request.json")).unwrap()
}

#[test]
fn codex_request_to_gemini_3() {
    let upstream = "gemini-3-pro-high";
    let t = to_gemini(&codex_request(), upstream, &RequestOptions::default()).unwrap();
    FIXTURES.assert_golden("codex_request.gemini.json", &translated_json(&t, upstream));
}

#[test]
fn codex_request_to_claude() {
    let upstream = "claude-opus-4-5-thinking";
    let t = to_gemini(&codex_request(), upstream, &RequestOptions::default()).unwrap();
    FIXTURES.assert_golden("codex_request.claude.json", &translated_json(&t, upstream));
}

fn context() -> ResponseContext {
    let req = codex_request();
    let t = to_gemini(&req, "gemini-3-pro-high", &RequestOptions::default()).unwrap();
    ResponseContext::for_request(&req, &t, "req-golden", 1_767_225_600)
}

#[test]
fn gemini_response_to_response() {
    let Ok(UpstreamChunk::Response(resp)) = parse_chunk(&FIXTURES.read("gemini_response.json"))
    else {
        panic!("fixture is not a response");
    };
    let response = from_gemini(&resp, &context());
    FIXTURES.assert_golden(
        "gemini_response.response.json",
        &serde_json::to_value(&response).unwrap(),
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
fn gemini_stream_to_response_events() {
    let bytes = FIXTURES.bytes("gemini_stream.sse");
    let events = transcode(&[&bytes], context());
    FIXTURES.assert_golden(
        "gemini_stream.events.json",
        &serde_json::to_value(&events).unwrap(),
    );
    let sse: String = events.iter().map(to_sse).collect();
    assert!(sse.starts_with("event: response.created\ndata: {\"type\":\"response.created\""));
    assert!(sse.ends_with("\n\n"));
    let last = sse.trim_end().rsplit("\n\n").next().unwrap();
    assert!(
        last.starts_with("event: response.completed\ndata: "),
        "{last}"
    );
    FIXTURES.assert_golden(
        "gemini_stream.assembled.json",
        &serde_json::to_value(assemble(&events)).unwrap(),
    );
}
