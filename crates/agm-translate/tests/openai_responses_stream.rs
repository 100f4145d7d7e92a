#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The Responses stream transcoder: event order and numbering, item lifecycles,
//! signatures in reasoning items and their way back, errors, and chunking
//! independence.

mod common;

use agm_translate::openai_responses::{
    RequestOptions, ResponseContext, StreamTranscoder, assemble, from_gemini, to_gemini, to_sse,
};
use agm_translate::tools::ToolNameMap;
use agm_wire::gemini::GenerateContentResponse;
use agm_wire::openai::responses::{
    EventKind, ItemStatus, OutputItem, ResponsesRequest, Status, StreamEvent,
};
use proptest::prelude::*;
use serde_json::{Value, json};

fn ctx(thinking: bool) -> ResponseContext {
    let mut tool_names = ToolNameMap::new();
    tool_names.to_upstream("mcp__a.b__c");
    let mut ctx = ResponseContext::new("gpt-5-codex", tool_names);
    ctx.thinking = thinking;
    ctx.id_seed = "seed".into();
    ctx.created_at = 42;
    ctx
}

fn chunk(value: Value) -> GenerateContentResponse {
    serde_json::from_value(value).unwrap()
}

fn parts(parts: Value) -> GenerateContentResponse {
    chunk(json!({"candidates": [{"content": {"role": "model", "parts": parts}}]}))
}

fn finish(reason: &str) -> GenerateContentResponse {
    chunk(json!({"candidates": [{"finishReason": reason}],
                 "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 5,
                                   "thoughtsTokenCount": 3, "cachedContentTokenCount": 4}}))
}

fn types(events: &[StreamEvent]) -> Vec<&'static str> {
    events.iter().map(StreamEvent::event_type).collect()
}

fn run(chunks: &[GenerateContentResponse], ctx: ResponseContext) -> Vec<StreamEvent> {
    let mut t = StreamTranscoder::new(ctx);
    let mut events: Vec<StreamEvent> = chunks.iter().flat_map(|c| t.push(c)).collect();
    events.extend(t.finish());
    events
}

/// Checks what every stream must satisfy: sequence numbers count from 0, and each
/// item is added, then done, at the output index it ends up at in the response.
fn check_invariants(events: &[StreamEvent]) {
    for (n, event) in events.iter().enumerate() {
        assert_eq!(event.sequence_number, n as u64, "{:?}", event.kind);
    }
    let final_output = match &events.last().unwrap().kind {
        EventKind::Completed { response }
        | EventKind::Incomplete { response }
        | EventKind::Failed { response } => response.output.clone(),
        other => panic!("the last event must end the response, not {other:?}"),
    };
    let mut added = Vec::new();
    for event in events {
        match &event.kind {
            EventKind::OutputItemAdded { output_index, item } => {
                assert_eq!(*output_index, added.len());
                added.push(item.id().to_owned());
            }
            EventKind::OutputItemDone { output_index, item } => {
                assert_eq!(
                    added.get(*output_index).map(String::as_str),
                    Some(item.id())
                );
                assert_eq!(final_output.get(*output_index), Some(item));
            }
            _ => {}
        }
    }
    assert_eq!(added.len(), final_output.len());
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
    let events = t.finish();
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.completed"
        ]
    );
    check_invariants(&events);
    assert!(t.finish().is_empty());
}

#[test]
fn a_text_answer_has_openais_event_order_and_usage() {
    let events = run(
        &[
            parts(json!([{"text": "Hel"}])),
            parts(json!([{"text": "lo"}])),
            finish("STOP"),
        ],
        ctx(true),
    );
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    check_invariants(&events);
    let response = assemble(&events).unwrap();
    assert_eq!(response.status, Status::Completed);
    assert_eq!(response.created_at, 42);
    let usage = response.usage.unwrap();
    assert_eq!(
        (usage.input_tokens, usage.input_tokens_details.cached_tokens),
        (10, 4)
    );
    assert_eq!(
        (
            usage.output_tokens,
            usage.output_tokens_details.reasoning_tokens,
            usage.total_tokens
        ),
        (8, 3, 18)
    );
    let EventKind::Created { response } = &events[0].kind else {
        panic!("created first");
    };
    assert_eq!(response.usage, None);
    assert_eq!(response.status, Status::InProgress);
    let frame = to_sse(&events[4]);
    assert!(
        frame.starts_with(
            "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\","
        ),
        "{frame}"
    );
}

#[test]
fn calls_get_minted_ids_and_the_clients_names() {
    let context = ctx(true);
    let upstream = context
        .tool_names
        .upstream_name("mcp__a.b__c")
        .unwrap()
        .to_owned();
    let events = run(
        &[
            parts(json!([
                {"functionCall": {"name": upstream, "args": null}},
                {"functionCall": {"name": "shell", "args": {"command": ["ls"]}, "id": "call_kept"}}
            ])),
            finish("STOP"),
        ],
        context,
    );
    check_invariants(&events);
    let response = assemble(&events).unwrap();
    let calls: Vec<(&str, &str, &str)> = response
        .output
        .iter()
        .map(|item| match item {
            OutputItem::FunctionCall {
                call_id,
                name,
                arguments,
                ..
            } => (call_id.as_str(), name.as_str(), arguments.as_str()),
            other => panic!("function calls only, not {other:?}"),
        })
        .collect();
    assert!(calls[0].0.starts_with("call_"));
    assert_eq!(calls[0].1, "mcp__a.b__c");
    assert_eq!(calls[0].2, "{}");
    assert_eq!(calls[1], ("call_kept", "shell", r#"{"command":["ls"]}"#));
}

#[test]
fn the_token_limit_and_filters_make_the_response_incomplete() {
    let events = run(
        &[parts(json!([{"text": "partial"}])), finish("MAX_TOKENS")],
        ctx(true),
    );
    check_invariants(&events);
    assert_eq!(events.last().unwrap().event_type(), "response.incomplete");
    let response = assemble(&events).unwrap();
    assert_eq!(response.status, Status::Incomplete);
    assert_eq!(
        response.incomplete_details.unwrap().reason,
        "max_output_tokens"
    );
    let OutputItem::Message { status, .. } = &response.output[0] else {
        panic!("message expected");
    };
    assert_eq!(*status, ItemStatus::Incomplete);

    let events = run(
        &[parts(json!([{"text": "I will"}])), finish("SAFETY")],
        ctx(true),
    );
    let response = assemble(&events).unwrap();
    assert_eq!(
        response.incomplete_details.unwrap().reason,
        "content_filter"
    );
    let OutputItem::Message { content, .. } = &response.output[0] else {
        panic!("message expected");
    };
    assert_eq!(
        serde_json::to_value(&content[0]).unwrap()["text"],
        "I will\n\n[agm: Google stopped the answer: its safety filter (SAFETY).]"
    );
}

#[test]
fn fail_ends_with_response_failed() {
    let mut t = StreamTranscoder::new(ctx(true));
    let started = t.push(&parts(json!([{"text": "hel"}])));
    assert_eq!(started.len(), 5);
    let events = t.fail_with("rate_limit_exceeded", "Google is out of capacity");
    assert_eq!(types(&events), ["response.failed"]);
    assert_eq!(events[0].sequence_number, 5);
    let EventKind::Failed { response } = &events[0].kind else {
        panic!("failed expected");
    };
    assert_eq!(response.status, Status::Failed);
    assert_eq!(
        serde_json::to_value(&response.error).unwrap(),
        json!({"code": "rate_limit_exceeded", "message": "Google is out of capacity"})
    );
    assert!(t.finish().is_empty());
    assert!(t.push(&parts(json!([{"text": "lo"}]))).is_empty());

    // Failing before anything was sent still opens the response first.
    let mut t = StreamTranscoder::new(ctx(true));
    let events = t.fail("boom");
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.failed"
        ]
    );
    check_invariants(&events);
}

#[test]
fn hidden_thoughts_still_carry_their_signature() {
    let events = run(
        &[
            parts(json!([
                {"text": "secret plan", "thought": true, "thoughtSignature": "Q0xBVURF"},
                {"text": "Done."}
            ])),
            finish("STOP"),
        ],
        ctx(false),
    );
    check_invariants(&events);
    assert!(!types(&events).contains(&"response.reasoning_summary_text.delta"));
    let response = assemble(&events).unwrap();
    assert_eq!(
        serde_json::to_value(&response.output[0]).unwrap(),
        json!({"type": "reasoning", "id": response.output[0].id(), "summary": [],
               "encrypted_content": "Q0xBVURF"})
    );
}

/// The items of an answer, sent back as the next request's input (what Codex does),
/// followed by the results of its calls.
fn next_request(response_output: &[OutputItem]) -> ResponsesRequest {
    let mut input = vec![json!({"role": "user", "content": "fix it"})];
    let mut results = Vec::new();
    for item in response_output {
        let mut value = serde_json::to_value(item).unwrap();
        // Codex drops the ids of the items it sends back.
        value.as_object_mut().unwrap().remove("id");
        input.push(value);
        if let OutputItem::FunctionCall { call_id, .. } = item {
            results
                .push(json!({"type": "function_call_output", "call_id": call_id, "output": "ok"}));
        }
    }
    input.extend(results);
    serde_json::from_value(json!({
        "model": "gpt-5-codex",
        "reasoning": {"effort": "high", "summary": "auto"},
        "tools": [{"type": "function", "name": "shell", "parameters": {"type": "object"}}],
        "input": input
    }))
    .unwrap()
}

#[test]
fn gemini_signatures_find_their_call_again() {
    // Gemini 3: thoughts, text, then the signature on the call.
    let response = from_gemini(
        &parts(json!([
            {"text": "thinking", "thought": true},
            {"text": "Running it."},
            {"functionCall": {"name": "shell", "args": {"command": ["ls"]}}, "thoughtSignature": "R0VNSU5J"},
            {"functionCall": {"name": "shell", "args": {"command": ["pwd"]}}}
        ])),
        &ctx(true),
    );
    let kinds: Vec<Value> = response
        .output
        .iter()
        .map(|i| serde_json::to_value(i).unwrap()["type"].clone())
        .collect();
    assert_eq!(
        kinds,
        [
            "reasoning",
            "message",
            "reasoning",
            "function_call",
            "function_call"
        ]
    );
    let out = to_gemini(
        &next_request(&response.output),
        "gemini-3-pro-high",
        &RequestOptions::default(),
    )
    .unwrap();
    let model = &out.request.contents[1].parts;
    assert_eq!(model[0].text.as_deref(), Some("Running it."));
    assert!(model[1].function_call.is_some());
    assert_eq!(model[1].thought_signature.as_deref(), Some("R0VNSU5J"));
    assert_eq!(
        model[2].thought_signature, None,
        "only the first call is signed"
    );
    assert_eq!(out.request.contents[2].parts.len(), 2, "both results");
}

#[test]
fn claude_thinking_comes_back_whole() {
    // Claude (through Cloud Code): the signature on the last thought part.
    let response = from_gemini(
        &parts(json!([
            {"text": "Let me ", "thought": true},
            {"text": "run ls.", "thought": true},
            {"text": "", "thought": true, "thoughtSignature": "Q0xBVURFU0lH"},
            {"functionCall": {"name": "shell", "args": {"command": ["ls"]}, "id": "toolu_1"}}
        ])),
        &ctx(true),
    );
    assert_eq!(response.output.len(), 2);
    let out = to_gemini(
        &next_request(&response.output),
        "claude-opus-4-5-thinking",
        &RequestOptions::default(),
    )
    .unwrap();
    assert!(
        out.thinking,
        "the open tool turn starts with signed thinking"
    );
    let model = &out.request.contents[1].parts;
    assert!(model[0].is_thought());
    assert_eq!(model[0].text.as_deref(), Some("Let me run ls."));
    assert_eq!(model[0].thought_signature.as_deref(), Some("Q0xBVURFU0lH"));
    assert_eq!(
        model[1].function_call.as_ref().unwrap().id.as_deref(),
        Some("toolu_1")
    );
}

fn events_for(chunks: &[&[u8]]) -> Vec<StreamEvent> {
    let mut t = StreamTranscoder::new(ctx(true));
    let mut out = common::feed(chunks, |r| t.push(r));
    out.extend(t.finish());
    out
}

#[test]
fn the_fixture_stream_keeps_the_invariants() {
    let bytes = common::Fixtures("openai_responses").bytes("gemini_stream.sse");
    check_invariants(&events_for(&[&bytes]));
}

proptest! {
    #[test]
    fn any_chunking_of_the_upstream_bytes_gives_the_same_events(
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..40)
    ) {
        let bytes = common::Fixtures("openai_responses").bytes("gemini_stream.sse");
        let whole = events_for(&[&bytes]);
        let chunks = common::cut(&bytes, &cuts);
        prop_assert_eq!(events_for(&chunks), whole);
    }
}
