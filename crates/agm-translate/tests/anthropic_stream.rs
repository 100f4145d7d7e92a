#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The stream transcoder: event order, edge cases, and chunking independence.

mod common;

use agm_translate::anthropic::{ResponseContext, StreamTranscoder, assemble, from_gemini};
use agm_translate::thinking::SeenSignature;
use agm_translate::tools::ToolNameMap;
use agm_wire::anthropic::{
    ContentBlock, Delta, ErrorKind, MessageDeltaUsage, StopReason, StreamEvent, Usage,
};
use agm_wire::gemini::GenerateContentResponse;
use proptest::prelude::*;
use serde_json::json;

fn ctx(thinking: bool) -> ResponseContext {
    let mut tool_names = ToolNameMap::new();
    tool_names.to_upstream("mcp__a.b__c");
    ResponseContext {
        model: "claude-sonnet-4-5".into(),
        tool_names,
        thinking,
        id_seed: "seed".into(),
        stop_sequences: Vec::new(),
        estimated_input_tokens: 0,
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
                 "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5}}))
}

fn types(events: &[StreamEvent]) -> Vec<&'static str> {
    events.iter().map(StreamEvent::event_type).collect()
}

fn stop_reason(events: &[StreamEvent]) -> Option<StopReason> {
    events.iter().find_map(|e| match e {
        StreamEvent::MessageDelta { delta, .. } => delta.stop_reason,
        _ => None,
    })
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
        types(&events),
        ["message_start", "message_delta", "message_stop"]
    );
    assert!(t.finish().is_empty());
}

#[test]
fn kinds_alternate_into_separate_blocks() {
    let mut t = StreamTranscoder::new(ctx(true));
    let mut events = t.push(&parts(json!([
        {"text": "a", "thought": true},
        {"text": "b"},
        {"text": "c", "thought": true},
        {"functionCall": {"name": "mcp__a_b__c_2a7c1ce0", "args": {"x": 1}}}
    ])));
    events.extend(t.push(&finish("STOP")));
    events.extend(t.finish());
    assert_eq!(
        types(&events),
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let message = assemble(&events);
    assert_eq!(message.content.len(), 4);
    assert_eq!(message.stop_reason, Some(StopReason::ToolUse));
    let ContentBlock::ToolUse { name, input, .. } = &message.content[3] else {
        panic!("tool_use expected");
    };
    // Unknown upstream names come back unchanged; mapped ones are restored.
    assert_eq!(name, "mcp__a_b__c_2a7c1ce0");
    assert_eq!(input, &json!({"x": 1}));
}

#[test]
fn mapped_tool_names_are_restored() {
    let context = ctx(false);
    let upstream = context
        .tool_names
        .upstream_name("mcp__a.b__c")
        .unwrap()
        .to_owned();
    let message = from_gemini(
        &parts(json!([{"functionCall": {"name": upstream, "args": null}}])),
        &context,
    );
    let ContentBlock::ToolUse { name, input, id } = &message.content[0] else {
        panic!("tool_use expected");
    };
    assert_eq!(name, "mcp__a.b__c");
    assert_eq!(input, &json!({}));
    assert!(id.starts_with("toolu_"));
}

#[test]
fn a_signature_on_the_function_call_closes_the_thinking_block() {
    let mut t = StreamTranscoder::new(ctx(true));
    let events = t.push(&parts(json!([
        {"text": "think", "thought": true},
        {"functionCall": {"name": "Bash", "args": {}, "id": "toolu_x"}, "thoughtSignature": "U0lH"}
    ])));
    assert_eq!(
        events[3],
        StreamEvent::ContentBlockDelta {
            index: 0,
            delta: Delta::SignatureDelta {
                signature: "U0lH".into()
            }
        }
    );
    assert_eq!(events[4], StreamEvent::ContentBlockStop { index: 0 });
    assert_eq!(
        t.signatures(),
        [SeenSignature {
            signature: "U0lH".into(),
            tool_use_id: Some("toolu_x".into())
        }]
    );
}

#[test]
fn thoughts_are_hidden_when_thinking_is_off() {
    let message = from_gemini(
        &parts(
            json!([{"text": "secret", "thought": true, "thoughtSignature": "U0lH"}, {"text": "hi"}]),
        ),
        &ctx(false),
    );
    assert_eq!(message.content, vec![ContentBlock::text("hi")]);
}

#[test]
fn stop_reasons_and_notes() {
    let mut t = StreamTranscoder::new(ctx(true));
    t.push(&parts(json!([{"text": "partial"}])));
    t.push(&finish("MAX_TOKENS"));
    assert_eq!(stop_reason(&t.finish()), Some(StopReason::MaxTokens));

    let mut t = StreamTranscoder::new(ctx(true));
    let mut events = t.push(&parts(json!([{"text": "I will"}])));
    events.extend(t.push(&finish("SAFETY")));
    events.extend(t.finish());
    assert_eq!(stop_reason(&events), Some(StopReason::EndTurn));
    let message = assemble(&events);
    assert_eq!(
        message.content,
        vec![ContentBlock::text(
            "I will\n\n[agm: Google stopped the answer: its safety filter (SAFETY).]"
        )]
    );
    assert_eq!(message.usage.input_tokens, 10);
    assert_eq!(message.usage.output_tokens, 5);

    let mut t = StreamTranscoder::new(ctx(true));
    t.push(&chunk(
        json!({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}}),
    ));
    assert!(!t.is_empty_answer());
    let message = assemble(&t.finish());
    assert_eq!(message.content.len(), 1);
}

/// The `usage` of a stream's `message_start`, and of its `message_delta`.
fn start_and_delta_usage(events: &[StreamEvent]) -> (Usage, Option<MessageDeltaUsage>) {
    let start = events
        .iter()
        .find_map(|e| match e {
            StreamEvent::MessageStart { message } => Some(message.usage),
            _ => None,
        })
        .expect("a message_start");
    let delta = events.iter().find_map(|e| match e {
        StreamEvent::MessageDelta { usage, .. } => Some(*usage),
        _ => None,
    });
    (start, delta)
}

#[test]
fn message_start_carries_googles_prompt_count_from_the_first_chunk() {
    let mut t = StreamTranscoder::new(ResponseContext {
        estimated_input_tokens: 99,
        ..ctx(true)
    });
    // As Google streams: usage on every chunk, the prompt counted from the first.
    let mut events = t.push(&chunk(json!({
        "candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}}],
        "usageMetadata": {"promptTokenCount": 820, "cachedContentTokenCount": 512}
    })));
    assert_eq!(
        types(&events),
        [
            "message_start",
            "content_block_start",
            "content_block_delta"
        ]
    );
    events.extend(t.push(&chunk(json!({
        "candidates": [{"content": {"role": "model", "parts": [{"text": "lo"}]},
                        "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 820, "cachedContentTokenCount": 512,
                          "candidatesTokenCount": 7, "thoughtsTokenCount": 3}
    }))));
    events.extend(t.finish());
    let (start, delta) = start_and_delta_usage(&events);
    assert_eq!(
        start,
        Usage {
            input_tokens: 308,
            output_tokens: 0,
            cache_creation_input_tokens: Some(0),
            cache_read_input_tokens: Some(512),
        }
    );
    let delta = delta.unwrap();
    assert_eq!(
        (
            delta.input_tokens,
            delta.output_tokens,
            delta.cache_read_input_tokens
        ),
        (Some(308), 10, Some(512))
    );
}

#[test]
fn without_googles_count_message_start_carries_the_estimate() {
    let estimated = ResponseContext {
        estimated_input_tokens: 1234,
        ..ctx(true)
    };
    // The count comes only with the last chunk: message_start has the estimate,
    // message_delta Google's final numbers.
    let mut t = StreamTranscoder::new(estimated.clone());
    let mut events = t.push(&parts(json!([{"text": "hi"}])));
    events.extend(t.push(&finish("STOP")));
    events.extend(t.finish());
    let (start, delta) = start_and_delta_usage(&events);
    assert_eq!(
        (
            start.input_tokens,
            start.output_tokens,
            start.cache_read_input_tokens
        ),
        (1234, 0, Some(0))
    );
    let delta = delta.unwrap();
    assert_eq!((delta.input_tokens, delta.output_tokens), (Some(10), 5));

    // Usage without a prompt count is no count either; Google never counting keeps
    // the estimate to the end.
    let mut t = StreamTranscoder::new(estimated);
    let mut events = t.push(&chunk(json!({
        "candidates": [{"content": {"role": "model", "parts": [{"text": "hi"}]}}],
        "usageMetadata": {"candidatesTokenCount": 1}
    })));
    events.extend(t.push(&parts(json!([{"text": " there"}]))));
    events.extend(t.finish());
    let (start, delta) = start_and_delta_usage(&events);
    assert_eq!(start.input_tokens, 1234);
    let delta = delta.unwrap();
    assert_eq!((delta.input_tokens, delta.output_tokens), (Some(1234), 1));
}

#[test]
fn the_estimate_is_the_translated_requests() {
    let req: agm_wire::anthropic::MessagesRequest = serde_json::from_value(json!({
        "model": "claude-sonnet-4-5", "max_tokens": 100,
        "system": "You are terse.",
        "messages": [{"role": "user", "content": "Count the words in this sentence, please."}]
    }))
    .unwrap();
    let translated = agm_translate::anthropic::to_gemini(
        &req,
        "claude-sonnet-4-5",
        &agm_translate::common::RequestOptions::default(),
    )
    .unwrap();
    let ctx = ResponseContext::for_request(&req.model, &translated, "seed");
    assert!(ctx.estimated_input_tokens > 0);
    assert_eq!(
        ctx.estimated_input_tokens,
        agm_translate::tokens::estimate(&translated.request)
    );
}

#[test]
fn fail_sends_only_an_error_event() {
    let mut t = StreamTranscoder::new(ctx(true));
    let started = t.push(&parts(json!([{"text": "hel"}])));
    assert_eq!(
        types(&started),
        [
            "message_start",
            "content_block_start",
            "content_block_delta"
        ]
    );
    let events = t.fail_with(ErrorKind::OverloadedError, "upstream went away");
    assert_eq!(
        serde_json::to_value(&events).unwrap(),
        json!([{"type": "error", "error": {"type": "overloaded_error", "message": "upstream went away"}}])
    );
    assert!(t.finish().is_empty());
    assert!(t.push(&parts(json!([{"text": "lo"}]))).is_empty());
    let mut t = StreamTranscoder::new(ctx(true));
    assert_eq!(
        serde_json::to_value(t.fail("boom")).unwrap(),
        json!([{"type": "error", "error": {"type": "api_error", "message": "boom"}}])
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
    fn any_chunking_of_the_upstream_bytes_gives_the_same_events(
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..40)
    ) {
        let bytes = common::Fixtures("anthropic").bytes("gemini_stream.sse");
        let whole = events_for(&[&bytes]);
        let chunks = common::cut(&bytes, &cuts);
        prop_assert_eq!(events_for(&chunks), whole);
    }
}
