#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The Chat Completions stream transcoder: chunk order, usage, tool-call indices,
//! errors, and chunking independence.

mod common;

use agm_translate::openai_chat::{
    RequestOptions, ResponseContext, StreamTranscoder, assemble, from_gemini, to_gemini, to_sse,
};
use agm_translate::tools::ToolNameMap;
use agm_wire::gemini::GenerateContentResponse;
use agm_wire::openai::chat::{ChatCompletionRequest, FinishReason, StreamEvent};
use proptest::prelude::*;
use serde_json::json;

fn ctx(include_usage: bool) -> ResponseContext {
    let mut tool_names = ToolNameMap::new();
    tool_names.to_upstream("mcp__a.b__c");
    ResponseContext {
        model: "gpt-4o".into(),
        tool_names,
        thinking: true,
        id_seed: "seed".into(),
        created: 42,
        include_usage,
        ..ResponseContext::default()
    }
}

fn chunk(value: serde_json::Value) -> GenerateContentResponse {
    serde_json::from_value(value).unwrap()
}

fn parts(parts: serde_json::Value) -> GenerateContentResponse {
    chunk(json!({"candidates": [{"content": {"role": "model", "parts": parts}}]}))
}

fn finish(reason: &str) -> GenerateContentResponse {
    chunk(json!({"candidates": [{"finishReason": reason}],
                 "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5, "thoughtsTokenCount": 2}}))
}

fn chunks(events: &[StreamEvent]) -> Vec<&agm_wire::openai::chat::ChatCompletionChunk> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Chunk(c) => Some(c),
            _ => None,
        })
        .collect()
}

fn finish_reason(events: &[StreamEvent]) -> Option<FinishReason> {
    chunks(events)
        .iter()
        .flat_map(|c| &c.choices)
        .find_map(|c| c.finish_reason)
}

#[test]
fn nothing_is_sent_before_content_and_an_empty_stream_says_so() {
    let mut t = StreamTranscoder::new(ctx(true));
    assert!(
        t.push(&chunk(json!({"usageMetadata": {"promptTokenCount": 3}})))
            .is_empty()
    );
    assert!(t.push(&parts(json!([{"text": ""}]))).is_empty());
    assert!(t.push(&finish("STOP")).is_empty());
    assert!(t.is_empty_answer());
    // The caller may still choose to answer; the answer is then well-formed.
    let events = t.finish();
    assert_eq!(
        events.len(),
        4,
        "role chunk, finish chunk, usage chunk, [DONE]"
    );
    assert_eq!(events.last(), Some(&StreamEvent::Done));
    assert!(t.finish().is_empty());
}

#[test]
fn the_usage_chunk_comes_only_when_asked_for() {
    let run = |include_usage: bool| {
        let mut t = StreamTranscoder::new(ctx(include_usage));
        let mut events = t.push(&parts(json!([{"text": "hi"}])));
        events.extend(t.push(&finish("STOP")));
        events.extend(t.finish());
        events
    };
    let with = run(true);
    let frames: Vec<String> = with.iter().map(to_sse).collect();
    assert_eq!(frames.last().map(String::as_str), Some("data: [DONE]\n\n"));
    let all = chunks(&with);
    let (last, rest) = all.split_last().unwrap();
    assert!(last.choices.is_empty());
    let usage = last.usage.unwrap().unwrap();
    assert_eq!(
        (
            usage.prompt_tokens,
            usage.completion_tokens,
            usage.total_tokens
        ),
        (10, 7, 17)
    );
    assert_eq!(usage.completion_tokens_details.unwrap().reasoning_tokens, 2);
    for c in rest {
        assert_eq!(c.usage, Some(None), "usage is null in the other chunks");
        assert_eq!(c.choices.len(), 1);
    }
    for frame in &frames[..frames.len() - 1] {
        assert!(frame.contains("\"usage\":"), "{frame}");
    }

    let without = run(false);
    assert_eq!(without.last(), Some(&StreamEvent::Done));
    for c in chunks(&without) {
        assert_eq!(c.usage, None);
        assert_eq!(c.choices.len(), 1, "no usage chunk");
    }
    assert!(
        without
            .iter()
            .map(to_sse)
            .all(|frame| !frame.contains("usage"))
    );
}

#[test]
fn parallel_calls_keep_their_order_and_indices() {
    let context = ctx(false);
    let upstream = context
        .tool_names
        .upstream_name("mcp__a.b__c")
        .unwrap()
        .to_owned();
    let mut t = StreamTranscoder::new(context);
    let mut events = t.push(&parts(json!([
        {"functionCall": {"name": "first", "args": {"n": 1}}, "thoughtSignature": "U0lH"}
    ])));
    events.extend(t.push(&parts(json!([
        {"functionCall": {"name": upstream, "args": null, "id": "call_kept"}},
        {"functionCall": {"name": "third", "args": {"n": 3}, "id": "not a usable id"}}
    ]))));
    events.extend(t.push(&finish("STOP")));
    events.extend(t.finish());
    let deltas: Vec<(u32, String, String, String)> = chunks(&events)
        .iter()
        .flat_map(|c| &c.choices)
        .flat_map(|c| &c.delta.tool_calls)
        .map(|d| {
            let f = d.function.clone().unwrap();
            (
                d.index,
                d.id.clone().unwrap(),
                f.name.unwrap(),
                f.arguments.unwrap(),
            )
        })
        .collect();
    assert_eq!(deltas.len(), 3);
    assert_eq!(deltas.iter().map(|d| d.0).collect::<Vec<_>>(), [0, 1, 2]);
    assert!(deltas[0].1.starts_with("call_"));
    assert_eq!(deltas[1].1, "call_kept");
    assert!(deltas[2].1.starts_with("call_") && deltas[2].1 != deltas[0].1);
    assert_eq!(deltas[1].2, "mcp__a.b__c", "the client's name comes back");
    assert_eq!(deltas[1].3, "{}");
    assert_eq!(finish_reason(&events), Some(FinishReason::ToolCalls));
    let completion = assemble(&events);
    let calls = &completion.choices[0].message.tool_calls;
    assert_eq!(calls.len(), 3);
    assert_eq!(completion.choices[0].message.content, None);
    assert_eq!(
        calls[0].extra_content,
        Some(json!({"google": {"thought_signature": "U0lH"}}))
    );
    assert_eq!(
        t.signatures()[0].tool_use_id.as_deref(),
        Some(calls[0].id.as_str())
    );
}

#[test]
fn finish_reasons_and_notes() {
    let run = |reason: &str| {
        let mut t = StreamTranscoder::new(ctx(false));
        let mut events = t.push(&parts(json!([{"text": "partial"}])));
        events.extend(t.push(&finish(reason)));
        events.extend(t.finish());
        events
    };
    assert_eq!(finish_reason(&run("STOP")), Some(FinishReason::Stop));
    assert_eq!(
        finish_reason(&run("MAX_TOKENS")),
        Some(FinishReason::Length)
    );
    for filtered in ["SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT"] {
        let events = run(filtered);
        assert_eq!(finish_reason(&events), Some(FinishReason::ContentFilter));
        let content = assemble(&events).choices[0]
            .message
            .content
            .clone()
            .unwrap();
        assert!(
            content.starts_with("partial\n\n[agm: Google stopped the answer:"),
            "{content}"
        );
    }
    let events = run("MALFORMED_FUNCTION_CALL");
    assert_eq!(finish_reason(&events), Some(FinishReason::Stop));

    let mut t = StreamTranscoder::new(ctx(false));
    t.push(&chunk(
        json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}),
    ));
    assert!(!t.is_empty_answer());
    let events = t.finish();
    assert_eq!(finish_reason(&events), Some(FinishReason::ContentFilter));
}

#[test]
fn thoughts_are_hidden_when_thinking_is_off() {
    let mut context = ctx(false);
    context.thinking = false;
    let completion = from_gemini(
        &parts(json!([{"text": "secret", "thought": true}, {"text": "hi"}])),
        &context,
    );
    let message = &completion.choices[0].message;
    assert_eq!(message.content.as_deref(), Some("hi"));
    assert_eq!(message.reasoning_content, None);
    assert!(completion.usage.is_some(), "complete answers carry usage");
}

#[test]
fn fail_sends_an_error_and_no_done() {
    let mut t = StreamTranscoder::new(ctx(true));
    let started = t.push(&parts(json!([{"text": "hel"}])));
    assert_eq!(started.len(), 2);
    let events = t.fail("upstream went away");
    assert_eq!(events.len(), 1);
    assert_eq!(
        to_sse(&events[0]),
        "data: {\"error\":{\"message\":\"upstream went away\",\"type\":\"server_error\",\"param\":null,\"code\":null}}\n\n"
    );
    assert!(t.finish().is_empty());
    assert!(t.push(&parts(json!([{"text": "lo"}]))).is_empty());
    let mut t = StreamTranscoder::new(ctx(true));
    let StreamEvent::Error(body) = &t.fail_with("rate_limit_error", "slow down")[0] else {
        panic!("error expected");
    };
    assert_eq!(body.error.kind, "rate_limit_error");
}

#[test]
fn a_signed_tool_call_comes_back_with_its_signature() {
    // The answer's assistant message, sent back as history, restores the signature
    // Gemini 3 wants on the call.
    let completion = from_gemini(
        &parts(json!([
            {"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "U0lHTkFUVVJF"}
        ])),
        &ctx(false),
    );
    let message = serde_json::to_value(&completion.choices[0].message).unwrap();
    let call_id = message["tool_calls"][0]["id"].as_str().unwrap().to_owned();
    let req: ChatCompletionRequest = serde_json::from_value(json!({
        "model": "gpt-4o",
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "messages": [
            {"role": "user", "content": "go"},
            message,
            {"role": "tool", "tool_call_id": call_id, "content": "done"}
        ]
    }))
    .unwrap();
    let out = to_gemini(&req, "gemini-3-flash", &RequestOptions::default()).unwrap();
    let call = &out.request.contents[1].parts[0];
    assert_eq!(call.thought_signature.as_deref(), Some("U0lHTkFUVVJF"));
    assert_eq!(
        out.request.contents[2].parts[0]
            .function_response
            .as_ref()
            .unwrap()
            .id
            .as_deref(),
        Some(call_id.as_str())
    );
}

fn events_for(chunks: &[&[u8]]) -> Vec<StreamEvent> {
    let mut t = StreamTranscoder::new(ctx(true));
    let mut out = common::feed(chunks, |r| t.push(r));
    out.extend(t.finish());
    out
}

proptest! {
    #[test]
    fn any_chunking_of_the_upstream_bytes_gives_the_same_chunks(
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..40)
    ) {
        let bytes = common::Fixtures("openai_chat").bytes("gemini_stream.sse");
        let whole = events_for(&[&bytes]);
        let chunks = common::cut(&bytes, &cuts);
        let events = events_for(&chunks);
        prop_assert_eq!(events.last(), Some(&StreamEvent::Done));
        prop_assert_eq!(events, whole);
    }
}
