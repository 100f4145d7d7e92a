//! Helpers the golden and stream tests share: fixture files, golden comparison,
//! feeding upstream SSE bytes to a transcoder, and cutting bytes into chunks.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use agm_translate::common::Translated;
use agm_translate::sse::SseParser;
use agm_translate::upstream::{UpstreamChunk, parse_chunk};
use agm_wire::gemini::GenerateContentResponse;
use proptest::sample::Index;
use serde_json::{Value, json};

/// The fixtures of one converter, in `tests/fixtures/<dir>`.
pub struct Fixtures(pub &'static str);

impl Fixtures {
    pub fn path(&self, name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(self.0)
            .join(name)
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }

    pub fn bytes(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap()
    }

    /// The upstream response stored in the fixture `name`.
    pub fn response(&self, name: &str) -> GenerateContentResponse {
        let Ok(UpstreamChunk::Response(resp)) = parse_chunk(&self.read(name)) else {
            panic!("fixture is not a response");
        };
        resp
    }

    /// Compares `actual` with the golden file `name`, or rewrites the file when
    /// `UPDATE_GOLDEN` is set.
    pub fn assert_golden(&self, name: &str, actual: &Value) {
        let path = self.path(name);
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
}

/// A Chat Completions stream event as the golden files hold it: the chunk or error
/// body, or `"[DONE]"`.
pub fn chat_event_json(event: &agm_wire::openai::chat::StreamEvent) -> Value {
    use agm_wire::openai::chat::StreamEvent;
    match event {
        StreamEvent::Chunk(chunk) => serde_json::to_value(chunk).unwrap(),
        StreamEvent::Error(error) => serde_json::to_value(error).unwrap(),
        StreamEvent::Done => json!("[DONE]"),
    }
}

/// A translated request as the golden files hold it (`stop_sequences`, which agm
/// enforces itself, only when there are some).
pub fn translated_json(t: &Translated, upstream: &str) -> Value {
    let renamed: BTreeMap<&str, &str> = t.tool_names.iter().filter(|(a, b)| a != b).collect();
    let mut value = json!({
        "upstream_model": upstream,
        "session_id": t.session_id,
        "thinking": t.thinking,
        "renamed_tools": renamed,
        "notes": t.notes,
        "request": t.request,
    });
    if !t.stop_sequences.is_empty() {
        value["stop_sequences"] = json!(t.stop_sequences);
    }
    value
}

/// Runs upstream SSE bytes, cut into the given chunks, through the parser and hands
/// each upstream response to `push`; returns all it answered, in order. Panics on an
/// upstream error chunk.
pub fn feed<E>(
    chunks: &[&[u8]],
    mut push: impl FnMut(&GenerateContentResponse) -> Vec<E>,
) -> Vec<E> {
    let mut parser = SseParser::new();
    let mut out = Vec::new();
    let mut feed_events = |sse: Vec<agm_translate::sse::SseEvent>, out: &mut Vec<E>| {
        for e in sse {
            match parse_chunk(&e.data).unwrap() {
                UpstreamChunk::Response(r) => out.extend(push(&r)),
                UpstreamChunk::Empty => {}
                UpstreamChunk::Error(e) => panic!("unexpected error chunk {e:?}"),
            }
        }
    };
    for chunk in chunks {
        let sse = parser.push(chunk);
        feed_events(sse, &mut out);
    }
    let sse = parser.finish();
    feed_events(sse, &mut out);
    out
}

/// `bytes` cut at the given places (in any order, repeats allowed).
pub fn cut<'a>(bytes: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks: Vec<&[u8]> = Vec::new();
    let mut last = 0;
    for c in cuts {
        chunks.push(&bytes[last..c]);
        last = c;
    }
    chunks.push(&bytes[last..]);
    chunks
}
