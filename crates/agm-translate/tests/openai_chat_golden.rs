#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Golden fixtures for the OpenAI Chat Completions ⇄ Gemini conversion. Run with
//! `UPDATE_GOLDEN=1` to rewrite the expected files after an intended change, and
//! review the diff.

use std::collections::BTreeMap;
use std::path::PathBuf;

use agm_translate::openai_chat::{
    RequestOptions, ResponseContext, StreamTranscoder, Translated, assemble, from_gemini,
    to_gemini, to_sse,
};
use agm_translate::sse::SseParser;
use agm_translate::upstream::{UpstreamChunk, parse_chunk};
use agm_wire::openai::chat::{ChatCompletionRequest, StreamEvent};
use serde_json::{Value, json};

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openai_chat")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(fixture_path(name)).unwrap()
}

fn assert_golden(name: &str, actual: &Value) {
    let path = fixture_path(name);
    let pretty = serde_json::to_string_pretty(actual).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, pretty).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{name} is missing: run with UPDATE_GOLDEN=1"));
    let expected: Value = serde_json::from_str(&expected).unwrap();
    pretty_assertions::assert_eq!(&expected, actual, "golden file {name}");
}

fn sdk_request() -> ChatCompletionRequest {
    serde_json::from_str(&read("sdk_request.json")).unwrap()
}

fn translated_json(t: &Translated, upstream: &str) -> Value {
    let renamed: BTreeMap<&str, &str> = t.tool_names.iter().filter(|(a, b)| a != b).collect();
    json!({
        "upstream_model": upstream,
        "session_id": t.session_id,
        "thinking": t.thinking,
        "renamed_tools": renamed,
        "notes": t.notes,
        "request": t.request,
    })
}

/// A chunk as the client reads it: the JSON of its `data:` line (`"[DONE]"` for the
/// sentinel).
fn event_json(event: &StreamEvent) -> Value {
    match event {
        StreamEvent::Chunk(chunk) => serde_json::to_value(chunk).unwrap(),
        StreamEvent::Error(error) => serde_json::to_value(error).unwrap(),
        StreamEvent::Done => json!("[DONE]"),
    }
}

#[test]
fn sdk_request_to_gemini_3() {
    let upstream = "gemini-3-pro-high";
    let t = to_gemini(&sdk_request(), upstream, &RequestOptions::default()).unwrap();
    assert_golden("sdk_request.gemini.json", &translated_json(&t, upstream));
}

#[test]
fn sdk_request_to_claude() {
    let upstream = "claude-sonnet-4-5-thinking";
    let t = to_gemini(&sdk_request(), upstream, &RequestOptions::default()).unwrap();
    assert_golden("sdk_request.claude.json", &translated_json(&t, upstream));
}

fn context() -> ResponseContext {
    let req = sdk_request();
    let t = to_gemini(&req, "gemini-3-pro-high", &RequestOptions::default()).unwrap();
    ResponseContext::for_request(&req, &t, "req-golden", 1_767_225_600)
}

#[test]
fn gemini_response_to_chat_completion() {
    let Ok(UpstreamChunk::Response(resp)) = parse_chunk(&read("gemini_response.json")) else {
        panic!("fixture is not a response");
    };
    let completion = from_gemini(&resp, &context());
    assert_golden(
        "gemini_response.chat.json",
        &serde_json::to_value(&completion).unwrap(),
    );
}

/// Runs upstream SSE bytes, cut into the given chunks, through the parser and the
/// transcoder.
fn transcode(chunks: &[&[u8]], ctx: ResponseContext) -> Vec<StreamEvent> {
    let mut parser = SseParser::new();
    let mut transcoder = StreamTranscoder::new(ctx);
    let mut events = Vec::new();
    let feed = |sse: Vec<agm_translate::sse::SseEvent>, t: &mut StreamTranscoder| {
        let mut out = Vec::new();
        for e in sse {
            match parse_chunk(&e.data).unwrap() {
                UpstreamChunk::Response(r) => out.extend(t.push(&r)),
                UpstreamChunk::Empty => {}
                UpstreamChunk::Error(e) => panic!("unexpected error chunk {e:?}"),
            }
        }
        out
    };
    for chunk in chunks {
        let sse = parser.push(chunk);
        events.extend(feed(sse, &mut transcoder));
    }
    let sse = parser.finish();
    events.extend(feed(sse, &mut transcoder));
    assert!(!transcoder.is_empty_answer());
    events.extend(transcoder.finish());
    events
}

#[test]
fn gemini_stream_to_chat_chunks() {
    let bytes = std::fs::read(fixture_path("gemini_stream.sse")).unwrap();
    let events = transcode(&[&bytes], context());
    let chunks: Vec<Value> = events.iter().map(event_json).collect();
    assert_golden("gemini_stream.chat.json", &Value::Array(chunks));
    let sse: String = events.iter().map(to_sse).collect();
    assert!(
        sse.starts_with("data: {\"id\":\"chatcmpl-resp_stream_01\""),
        "{sse}"
    );
    assert!(sse.ends_with("\n\ndata: [DONE]\n\n"), "{sse}");
    assert!(!sse.contains("event:"));
    assert_golden(
        "gemini_stream.assembled.json",
        &serde_json::to_value(assemble(&events)).unwrap(),
    );
}
