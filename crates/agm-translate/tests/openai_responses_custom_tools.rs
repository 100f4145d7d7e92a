#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Codex's custom (freeform) tools through the Responses converter: `apply_patch`
//! declared with a Lark grammar, a history replaying `custom_tool_call` items and
//! their outputs, and the model's calls coming back as `custom_tool_call` items with
//! `response.custom_tool_call_input.*` events. Run with `UPDATE_GOLDEN=1` to rewrite
//! the expected files after an intended change, and review the diff.

mod common;

use agm_translate::openai_responses::{
    RequestOptions, ResponseContext, StreamTranscoder, assemble, from_gemini, to_gemini,
};
use agm_translate::tools::ToolNameMap;
use agm_wire::gemini::GenerateContentResponse;
use agm_wire::openai::responses::{
    EventKind, ItemStatus, OutputItem, ResponsesRequest, StreamEvent,
};
use common::{Fixtures, translated_json};
use proptest::prelude::*;
use serde_json::{Value, json};

const PATCH: &str = "*** Begin Patch\n*** Add File: README.md\n+# project\n*** End Patch\n";

const FIXTURES: Fixtures = Fixtures("openai_responses");

fn codex_request() -> ResponsesRequest {
    serde_json::from_str(&FIXTURES.read("codex_custom_tools_request.json")).unwrap()
}

fn context() -> ResponseContext {
    let req = codex_request();
    let t = to_gemini(&req, "gemini-3-pro-high", &RequestOptions::default()).unwrap();
    ResponseContext::for_request(&req, &t, "req-golden", 1_767_225_600)
}

/// A context whose only custom tool is `apply_patch`.
fn ctx() -> ResponseContext {
    let mut ctx = ResponseContext::new("gpt-5.1-codex", ToolNameMap::new());
    ctx.custom_tools.insert("apply_patch".into());
    ctx.id_seed = "seed".into();
    ctx.created_at = 42;
    ctx
}

fn parts(parts: Value) -> GenerateContentResponse {
    serde_json::from_value(json!({"candidates": [{"content": {"role": "model", "parts": parts}}]}))
        .unwrap()
}

fn stop() -> GenerateContentResponse {
    serde_json::from_value(json!({"candidates": [{"finishReason": "STOP"}]})).unwrap()
}

fn types(events: &[StreamEvent]) -> Vec<&'static str> {
    events.iter().map(StreamEvent::event_type).collect()
}

#[test]
fn codex_custom_tools_request_to_gemini() {
    let upstream = "gemini-3-pro-high";
    let t = to_gemini(&codex_request(), upstream, &RequestOptions::default()).unwrap();
    FIXTURES.assert_golden(
        "codex_custom_tools_request.gemini.json",
        &translated_json(&t, upstream),
    );
    // What matters, spelled out.
    let request = serde_json::to_value(&t.request).unwrap();
    let declarations = &request["tools"][0]["functionDeclarations"];
    let patch = &declarations[1];
    assert_eq!(patch["name"], "apply_patch");
    assert_eq!(
        patch["parameters"],
        json!({"type": "object", "required": ["input"],
               "properties": {"input": {"type": "string", "description": "the raw input for the tool"}}})
    );
    let description = patch["description"].as_str().unwrap();
    assert!(description.starts_with("Use the `apply_patch` tool to edit files."));
    assert!(description.contains("it must follow this lark grammar:\n```\nstart: begin_patch"));
    assert_eq!(
        declarations[2]["description"],
        "Free-form notes for the user."
    );
    let contents = &request["contents"];
    let call = &contents[1]["parts"][0];
    assert_eq!(call["functionCall"]["name"], "apply_patch");
    assert_eq!(call["functionCall"]["id"], "call_patch_1");
    assert!(
        call["functionCall"]["args"]["input"]
            .as_str()
            .unwrap()
            .starts_with("*** Begin Patch\n*** Update File: src/lib.rs")
    );
    assert_eq!(call["thoughtSignature"], "Q2lRQmNzamFmUGF0Y2hTaWc=");
    let result = &contents[2]["parts"][0]["functionResponse"];
    assert_eq!(result["name"], "apply_patch");
    assert_eq!(result["id"], "call_patch_1");
    assert!(t.notes.is_empty(), "{:?}", t.notes);
    let ctx = context();
    assert_eq!(
        ctx.custom_tools.iter().collect::<Vec<_>>(),
        ["apply_patch", "notes"]
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

fn stream_bytes() -> Vec<u8> {
    FIXTURES.bytes("gemini_custom_stream.sse")
}

#[test]
fn custom_stream_to_response_events() {
    let events = transcode(&[&stream_bytes()], context());
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.reasoning_summary_part.added",
            "response.reasoning_summary_text.delta",
            "response.reasoning_summary_text.done",
            "response.reasoning_summary_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.output_item.done",
            "response.output_item.added",
            "response.custom_tool_call_input.delta",
            "response.custom_tool_call_input.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.custom_tool_call_input.delta",
            "response.custom_tool_call_input.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    FIXTURES.assert_golden(
        "gemini_custom_stream.events.json",
        &serde_json::to_value(&events).unwrap(),
    );
    let response = assemble(&events).unwrap();
    FIXTURES.assert_golden(
        "gemini_custom_stream.assembled.json",
        &serde_json::to_value(&response).unwrap(),
    );
    // The model sent an object as `notes`' input: it reaches the client as JSON text.
    let OutputItem::CustomToolCall { call_id, input, .. } = &response.output[4] else {
        panic!("custom_tool_call expected, not {:?}", response.output[4]);
    };
    assert_eq!(
        (call_id.as_str(), input.as_str()),
        ("call_notes_1", r#"{"done":true}"#)
    );
}

#[test]
fn an_apply_patch_call_streams_as_a_custom_tool_call() {
    let mut t = StreamTranscoder::new(ctx());
    let mut events = t.push(&parts(json!([
        {"functionCall": {"name": "apply_patch", "args": {"input": PATCH}, "id": "call_p"}}
    ])));
    events.extend(t.push(&stop()));
    events.extend(t.finish());
    let values: Vec<Value> = events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap())
        .collect();
    let id = values[2]["item"]["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("ctc_"), "{id}");
    let item = |input: &str, status: &str| {
        json!({"type": "custom_tool_call", "id": id, "call_id": "call_p", "name": "apply_patch",
               "input": input, "status": status})
    };
    assert_eq!(
        values[2..6],
        [
            json!({"type": "response.output_item.added", "sequence_number": 2, "output_index": 0,
                   "item": item("", "in_progress")}),
            json!({"type": "response.custom_tool_call_input.delta", "sequence_number": 3,
                   "item_id": id, "output_index": 0, "delta": PATCH}),
            json!({"type": "response.custom_tool_call_input.done", "sequence_number": 4,
                   "item_id": id, "output_index": 0, "input": PATCH}),
            json!({"type": "response.output_item.done", "sequence_number": 5, "output_index": 0,
                   "item": item(PATCH, "completed")}),
        ]
    );
    assert_eq!(
        types(&events),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.custom_tool_call_input.delta",
            "response.custom_tool_call_input.done",
            "response.output_item.done",
            "response.completed"
        ]
    );
    let response = assemble(&events).unwrap();
    assert_eq!(response.output.len(), 1);
    assert_eq!(
        serde_json::to_value(&response.output[0]).unwrap(),
        item(PATCH, "completed")
    );
    // The same answer in one piece gives the same item.
    let whole = from_gemini(
        &parts(json!([
            {"functionCall": {"name": "apply_patch", "args": {"input": PATCH}, "id": "call_p"}}
        ])),
        &ctx(),
    );
    assert_eq!(whole.output, response.output);
}

#[test]
fn odd_inputs_become_text_and_other_calls_stay_function_calls() {
    let response = from_gemini(
        &parts(json!([
            {"functionCall": {"name": "apply_patch", "args": {"input": 3}}},
            {"functionCall": {"name": "apply_patch", "args": {"patch": "p"}}},
            {"functionCall": {"name": "apply_patch", "args": null}},
            {"functionCall": {"name": "shell", "args": {"input": "ls"}}}
        ])),
        &ctx(),
    );
    let summary: Vec<(String, String)> = response
        .output
        .iter()
        .map(|item| match item {
            OutputItem::CustomToolCall {
                input,
                status: ItemStatus::Completed,
                ..
            } => ("custom".to_owned(), input.clone()),
            OutputItem::FunctionCall { arguments, .. } => {
                ("function".to_owned(), arguments.clone())
            }
            other => panic!("calls only, not {other:?}"),
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("custom".to_owned(), "3".to_owned()),
            ("custom".to_owned(), r#"{"patch":"p"}"#.to_owned()),
            ("custom".to_owned(), String::new()),
            ("function".to_owned(), r#"{"input":"ls"}"#.to_owned()),
        ]
    );
}

#[test]
fn a_custom_call_finds_its_way_back_upstream() {
    // Gemini 3 signs the call; Codex sends the items back, without their ids, with
    // the tool's output.
    let response = from_gemini(
        &parts(json!([
            {"functionCall": {"name": "apply_patch", "args": {"input": PATCH}},
             "thoughtSignature": "R0VNSU5J"}
        ])),
        &ctx(),
    );
    let mut input = vec![json!({"role": "user", "content": "add a README"})];
    let mut call_id = String::new();
    for item in &response.output {
        let mut value = serde_json::to_value(item).unwrap();
        value.as_object_mut().unwrap().remove("id");
        if let OutputItem::CustomToolCall { call_id: id, .. } = item {
            call_id.clone_from(id);
        }
        input.push(value);
    }
    input.push(json!({"type": "custom_tool_call_output", "call_id": call_id, "output": "Done!"}));
    let req: ResponsesRequest = serde_json::from_value(json!({
        "model": "gpt-5.1-codex",
        "reasoning": {"effort": "high", "summary": "auto"},
        "tools": [{"type": "custom", "name": "apply_patch", "format": {"type": "text"}}],
        "input": input
    }))
    .unwrap();
    let out = to_gemini(&req, "gemini-3-pro-high", &RequestOptions::default()).unwrap();
    let contents = serde_json::to_value(&out.request.contents).unwrap();
    assert_eq!(
        contents[1],
        json!({"role": "model", "parts": [{
            "functionCall": {"id": call_id, "name": "apply_patch", "args": {"input": PATCH}},
            "thoughtSignature": "R0VNSU5J"}]})
    );
    assert_eq!(
        contents[2],
        json!({"role": "user", "parts": [{
            "functionResponse": {"id": call_id, "name": "apply_patch", "response": {"output": "Done!"}}}]})
    );
}

#[test]
fn a_renamed_custom_tool_gets_its_clients_name_back() {
    let req: ResponsesRequest = serde_json::from_value(json!({
        "model": "gpt-5.1-codex",
        "tools": [{"type": "custom", "name": "patch tool"}],
        "input": "go"
    }))
    .unwrap();
    let t = to_gemini(&req, "gemini-3-flash", &RequestOptions::default()).unwrap();
    let upstream = t.tool_names.upstream_name("patch tool").unwrap().to_owned();
    assert_ne!(upstream, "patch tool");
    let ctx = ResponseContext::for_request(&req, &t, "seed", 0);
    assert!(ctx.custom_tools.contains(&upstream));
    let response = from_gemini(
        &parts(json!([{"functionCall": {"name": upstream, "args": {"input": "x"}}}])),
        &ctx,
    );
    let OutputItem::CustomToolCall { name, input, .. } = &response.output[0] else {
        panic!("custom_tool_call expected");
    };
    assert_eq!((name.as_str(), input.as_str()), ("patch tool", "x"));
}

fn kinds(events: &[StreamEvent]) -> Vec<EventKind> {
    events.iter().map(|e| e.kind.clone()).collect()
}

proptest! {
    #[test]
    fn any_chunking_of_the_custom_stream_gives_the_same_events(
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..40)
    ) {
        let bytes = stream_bytes();
        let whole = transcode(&[&bytes], context());
        let chunks = common::cut(&bytes, &cuts);
        let cut = transcode(&chunks, context());
        prop_assert_eq!(kinds(&cut), kinds(&whole));
        prop_assert_eq!(cut, whole);
    }
}
