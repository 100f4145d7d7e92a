#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Golden fixtures for the OpenAI Chat Completions ⇄ Gemini conversion. Run with
//! `UPDATE_GOLDEN=1` to rewrite the expected files after an intended change, and
//! review the diff.

mod common;

use agm_translate::openai_chat::{
    RequestOptions, ResponseContext, StreamTranscoder, assemble, from_gemini, to_gemini, to_sse,
};
use agm_translate::upstream::{UpstreamChunk, parse_chunk};
use agm_wire::openai::chat::{ChatCompletionRequest, StreamEvent};
use common::{Fixtures, translated_json};
use serde_json::Value;

const FIXTURES: Fixtures = Fixtures("openai_chat");

fn sdk_request() -> ChatCompletionRequest {
    serde_json::from_str(&FIXTURES.read("sdk_request.json")).unwrap()
}

/// A chunk as the client reads it: the JSON of its `data:` line (`"[DONE]"` for the
/// sentinel).
#[test]
fn sdk_request_to_gemini_3() {
    let upstream = "gemini-3-pro-high";
    let t = to_gemini(&sdk_request(), upstream, &RequestOptions::default()).unwrap();
    FIXTURES.assert_golden("sdk_request.gemini.json", &translated_json(&t, upstream));
}

#[test]
fn sdk_request_to_claude() {
    let upstream = "claude-sonnet-4-5-thinking";
    let t = to_gemini(&sdk_request(), upstream, &RequestOptions::default()).unwrap();
    FIXTURES.assert_golden("sdk_request.claude.json", &translated_json(&t, upstream));
}

fn context() -> ResponseContext {
    let req = sdk_request();
    let t = to_gemini(&req, "gemini-3-pro-high", &RequestOptions::default()).unwrap();
    ResponseContext::for_request(&req, &t, "req-golden", 1_767_225_600)
}

#[test]
fn gemini_response_to_chat_completion() {
    let Ok(UpstreamChunk::Response(resp)) = parse_chunk(&FIXTURES.read("gemini_response.json"))
    else {
        panic!("fixture is not a response");
    };
    let completion = from_gemini(&resp, &context());
    FIXTURES.assert_golden(
        "gemini_response.chat.json",
        &serde_json::to_value(&completion).unwrap(),
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
fn gemini_stream_to_chat_chunks() {
    let bytes = FIXTURES.bytes("gemini_stream.sse");
    let events = transcode(&[&bytes], context());
    let chunks: Vec<Value> = events.iter().map(common::chat_event_json).collect();
    FIXTURES.assert_golden("gemini_stream.chat.json", &Value::Array(chunks));
    let sse: String = events.iter().map(to_sse).collect();
    assert!(
        sse.starts_with("data: {\"id\":\"chatcmpl-resp_stream_01\""),
        "{sse}"
    );
    assert!(sse.ends_with("\n\ndata: [DONE]\n\n"), "{sse}");
    assert!(!sse.contains("event:"));
    FIXTURES.assert_golden(
        "gemini_stream.assembled.json",
        &serde_json::to_value(assemble(&events)).unwrap(),
    );
}
