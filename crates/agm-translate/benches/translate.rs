//! The cost of the translation alone, per KB of input: criterion micro-benchmarks of
//! the Anthropic request → Gemini conversion and of a 10-chunk Gemini stream → Anthropic
//! SSE, each from bytes to bytes as the server does it (parse, convert, serialize).
//! `cargo bench -p agm-translate`; `bench/run` runs it and reports it (docs/BENCHMARKS.md).

#![allow(clippy::expect_used)] // a benchmark: a broken fixture should stop it loudly

use std::hint::black_box;

use agm_translate::anthropic::{
    RequestOptions, ResponseContext, StreamTranscoder, to_gemini, to_sse,
};
use agm_wire::anthropic::{MessagesRequest, StreamEvent};
use agm_wire::gemini::GenerateContentResponse;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use serde_json::{Value, json};

/// An Anthropic request of a coding agent: a system prompt, `turns` user/assistant
/// turns with tool calls and results, and a few tool schemas.
fn anthropic_request(turns: usize) -> Vec<u8> {
    let filler = "The function reads the configuration, checks every field and returns the first error it finds. ";
    let mut messages = Vec::new();
    for i in 0..turns {
        messages.push(json!({"role": "user", "content": [
            {"type": "text", "text": format!("Step {i}: {}", filler.repeat(3))}
        ]}));
        messages.push(json!({"role": "assistant", "content": [
            {"type": "text", "text": format!("Reading file {i}.")},
            {"type": "tool_use", "id": format!("toolu_{i:04}"), "name": "read_file",
             "input": {"path": format!("src/module_{i}.rs"), "limit": 200}}
        ]}));
        messages.push(json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": format!("toolu_{i:04}"),
             "content": filler.repeat(4)}
        ]}));
    }
    messages.push(json!({"role": "user", "content": "Now summarise what you found."}));
    let tool = |name: &str| {
        json!({
            "name": name,
            "description": format!("{name}: a tool of the agent"),
            "input_schema": {
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "a path relative to the workspace"},
                    "limit": {"type": "integer", "minimum": 1},
                    "mode": {"anyOf": [{"const": "fast"}, {"const": "full"}]}
                },
                "required": ["path"],
                "additionalProperties": false
            }
        })
    };
    let body = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 4096,
        "system": [{"type": "text", "text": filler.repeat(5)}],
        "tools": [tool("read_file"), tool("write_file"), tool("list_dir"), tool("grep")],
        "messages": messages,
    });
    serde_json::to_vec(&body).expect("json")
}

fn bench_request(c: &mut Criterion) {
    bench_translation(c, "anthropic_request_to_gemini", None);
}

/// The same, with what the server adds on every request when `[context] scaling` is
/// on and the request is far from the window: one token estimate and a comparison.
fn bench_request_with_size_check(c: &mut Criterion) {
    let policy = agm_translate::context::Policy {
        mode: agm_translate::context::Mode::Standard,
        limit: 200_000,
        keep_turns: 6,
    };
    bench_translation(c, "anthropic_request_to_gemini_checked", Some(policy));
}

/// Bytes to bytes at three sizes, with the size check of `policy` when there is one.
fn bench_translation(
    c: &mut Criterion,
    name: &str,
    policy: Option<agm_translate::context::Policy>,
) {
    let mut group = c.benchmark_group(name);
    for turns in [1usize, 10, 60] {
        let bytes = anthropic_request(turns);
        group.throughput(Throughput::Bytes(bytes.len() as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("{}B", bytes.len())),
            &bytes,
            |b, bytes| {
                b.iter(|| {
                    let req: MessagesRequest =
                        serde_json::from_slice(black_box(bytes)).expect("parse");
                    let translated =
                        to_gemini(&req, "claude-sonnet-4-5", &RequestOptions::default())
                            .expect("translate");
                    if let Some(policy) = &policy {
                        let bound =
                            agm_translate::context::upper_bound(&translated.request, bytes.len());
                        if policy.triggers(bound) {
                            let estimate = agm_translate::tokens::estimate(&translated.request);
                            assert!(!policy.triggers(estimate));
                        }
                    }
                    let out = serde_json::to_vec(&translated.request).expect("serialize");
                    black_box(out)
                })
            },
        );
    }
    group.finish();
}

/// Ten upstream chunks, as the data lines of Cloud Code's SSE stream carry them.
fn gemini_chunks(text_per_chunk: usize) -> Vec<Vec<u8>> {
    let word = "token ";
    let text = word.repeat(text_per_chunk / word.len());
    (0..10)
        .map(|i| {
            let mut chunk: Value = json!({
                "candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "index": 0}],
                "modelVersion": "claude-sonnet-4-5",
                "responseId": "bench-response",
            });
            if i == 9 {
                chunk["candidates"][0]["finishReason"] = json!("STOP");
                chunk["usageMetadata"] = json!({"promptTokenCount": 1200, "candidatesTokenCount": 300, "totalTokenCount": 1500});
            }
            serde_json::to_vec(&chunk).expect("json")
        })
        .collect()
}

fn bench_stream(c: &mut Criterion) {
    let mut group = c.benchmark_group("gemini_stream_to_anthropic_sse");
    for per_chunk in [40usize, 400, 4000] {
        let chunks = gemini_chunks(per_chunk);
        let total: usize = chunks.iter().map(Vec::len).sum();
        group.throughput(Throughput::Bytes(total as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(format!("10x{}B", total / 10)),
            &chunks,
            |b, chunks| {
                b.iter(|| {
                    let context = ResponseContext::new("claude-sonnet-4-5", Default::default());
                    let mut transcoder = StreamTranscoder::new(context);
                    let mut out = 0usize;
                    for chunk in chunks {
                        let parsed: GenerateContentResponse =
                            serde_json::from_slice(black_box(chunk)).expect("parse");
                        for event in transcoder.push(&parsed) {
                            let start = matches!(event, StreamEvent::MessageStart { .. });
                            out += to_sse(&event).len();
                            if start {
                                out += to_sse(&StreamEvent::Ping).len();
                            }
                        }
                    }
                    for event in transcoder.finish() {
                        out += to_sse(&event).len();
                    }
                    black_box(out)
                })
            },
        );
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_request,
    bench_request_with_size_check,
    bench_stream
);
/// For instruction counts (`valgrind --tool=callgrind`, docs/BENCHMARKS.md): with
/// `AGM_BENCH_COUNT=plain`, `checked`, `estimated` or `none`, runs 100 translations of
/// the 60-turn request without the size check, with it as the server makes it, with a
/// full estimate every time (a request near the window), or nothing; no criterion.
fn counted(which: &str) {
    let bytes = anthropic_request(60);
    let policy = agm_translate::context::Policy {
        mode: agm_translate::context::Mode::Standard,
        limit: 200_000,
        keep_turns: 6,
    };
    let rounds = if which == "none" { 0 } else { 100 };
    for _ in 0..rounds {
        let req: MessagesRequest = serde_json::from_slice(black_box(&bytes)).expect("parse");
        let translated =
            to_gemini(&req, "claude-sonnet-4-5", &RequestOptions::default()).expect("translate");
        if which == "checked" {
            // What the server does: the bound, then the estimate only if it is needed.
            let bound = agm_translate::context::upper_bound(&translated.request, bytes.len());
            if policy.triggers(bound) {
                let estimate = agm_translate::tokens::estimate(&translated.request);
                black_box(policy.triggers(estimate));
            }
        }
        if which == "estimated" {
            let estimate = agm_translate::tokens::estimate(&translated.request);
            black_box(policy.triggers(estimate));
        }
        black_box(serde_json::to_vec(&translated.request).expect("serialize"));
    }
}

fn main() {
    if let Ok(which) = std::env::var("AGM_BENCH_COUNT") {
        counted(&which);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
