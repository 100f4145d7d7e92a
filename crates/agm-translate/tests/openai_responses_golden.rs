#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Golden fixtures for the OpenAI Responses ⇄ Gemini conversion, with a Codex-shaped
//! request. Run with `UPDATE_GOLDEN=1` to rewrite the expected files after an
//! intended change, and review the diff.

use std::collections::BTreeMap;
use std::path::PathBuf;

use agm_translate::openai_responses::{
    RequestOptions, ResponseContext, StreamTranscoder, Translated, assemble, from_gemini,
    to_gemini, to_sse,
};
use agm_translate::sse::SseParser;
use agm_translate::upstream::{UpstreamChunk, parse_chunk};
use agm_wire::openai::responses::{ResponsesRequest, StreamEvent};
use serde_json::{Value, json};

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/openai_responses")
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

fn codex_request() -> ResponsesRequest {
    serde_json::from_str(&read("codex_request.json")).unwrap()
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

#[test]
fn codex_request_to_gemini_3() {
    let upstream = "gemini-3-pro-high";
    let t = to_gemini(&codex_request(), upstream, &RequestOptions::default()).unwrap();
    assert_golden("codex_request.gemini.json", &translated_json(&t, upstream));
}

#[test]
fn codex_request_to_claude() {
    let upstream = "claude-opus-4-5-thinking";
    let t = to_gemini(&codex_request(), upstream, &RequestOptions::default()).unwrap();
    assert_golden("codex_request.claude.json", &translated_json(&t, upstream));
}

fn context() -> ResponseContext {
    let req = codex_request();
    let t = to_gemini(&req, "gemini-3-pro-high", &RequestOptions::default()).unwrap();
    ResponseContext::for_request(&req, &t, "req-golden", 1_767_225_600)
}

#[test]
fn gemini_response_to_response() {
    let Ok(UpstreamChunk::Response(resp)) = parse_chunk(&read("gemini_response.json")) else {
        panic!("fixture is not a response");
    };
    let response = from_gemini(&resp, &context());
    assert_golden(
        "gemini_response.response.json",
        &serde_json::to_value(&response).unwrap(),
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
fn gemini_stream_to_response_events() {
    let bytes = std::fs::read(fixture_path("gemini_stream.sse")).unwrap();
    let events = transcode(&[&bytes], context());
    assert_golden(
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
    assert_golden(
        "gemini_stream.assembled.json",
        &serde_json::to_value(assemble(&events)).unwrap(),
    );
}
