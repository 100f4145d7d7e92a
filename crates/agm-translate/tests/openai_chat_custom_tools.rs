#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Custom (freeform) tools through the Chat Completions converter: declared with a
//! grammar, restricted by `allowed_tools`, replayed as `type: "custom"` tool calls
//! with their `role: tool` results, and the model's calls coming back as custom tool
//! calls, streamed and whole. Run with `UPDATE_GOLDEN=1` to rewrite the expected files
//! after an intended change, and review the diff.

mod common;

use agm_translate::openai_chat::{
    RequestOptions, ResponseContext, StreamTranscoder, assemble, from_gemini, to_gemini,
};
use agm_wire::gemini::GenerateContentResponse;
use agm_wire::openai::chat::{
    ChatCompletionRequest, CustomToolCall, CustomToolCallDelta, FinishReason, StreamEvent,
};
use common::{Fixtures, translated_json};
use serde_json::{Value, json};

const FIXTURES: Fixtures = Fixtures("openai_chat");

const PATCH: &str = "*** Begin Patch\n*** Add File: NOTES.md\n+done\n*** End Patch\n";

fn request() -> ChatCompletionRequest {
    serde_json::from_str(&FIXTURES.read("custom_tools_request.json")).unwrap()
}

fn context() -> ResponseContext {
    let req = request();
    let t = to_gemini(&req, "gemini-3-pro-high", &RequestOptions::default()).unwrap();
    ResponseContext::for_request(&req, &t, "req-golden", 1_767_225_600)
}

fn parts(parts: Value) -> GenerateContentResponse {
    serde_json::from_value(
        json!({"candidates": [{"content": {"role": "model", "parts": parts}}],
                                  "responseId": "resp_custom"}),
    )
    .unwrap()
}

fn answer() -> GenerateContentResponse {
    parts(json!([
        {"text": "Patching."},
        {"functionCall": {"name": "apply_patch", "args": {"input": PATCH}, "id": "call_p2"},
         "thoughtSignature": "Q3VzdG9tU2ln"},
        {"functionCall": {"name": "shell", "args": {"command": ["ls"]}, "id": "call_s"}},
        {"functionCall": {"name": "notes", "args": {"input": "Added NOTES.md"}}}
    ]))
}

#[test]
fn custom_tools_request_to_gemini() {
    let upstream = "gemini-3-pro-high";
    let t = to_gemini(&request(), upstream, &RequestOptions::default()).unwrap();
    FIXTURES.assert_golden(
        "custom_tools_request.gemini.json",
        &translated_json(&t, upstream),
    );
    let request = serde_json::to_value(&t.request).unwrap();
    let declarations = &request["tools"][0]["functionDeclarations"];
    assert_eq!(declarations[1]["name"], "apply_patch");
    assert!(
        declarations[1]["description"]
            .as_str()
            .unwrap()
            .contains("it must follow this lark grammar:\n```\nstart: begin_patch")
    );
    assert_eq!(
        declarations[2]["parameters"]["required"],
        json!(["input"]),
        "a text custom tool takes its raw input too"
    );
    assert_eq!(
        request["toolConfig"]["functionCallingConfig"],
        json!({"mode": "ANY", "allowedFunctionNames": ["apply_patch", "notes"]})
    );
    let call = &request["contents"][1]["parts"][1]["functionCall"];
    assert_eq!(call["name"], "apply_patch");
    assert_eq!(call["id"], "call_patch_1");
    assert!(
        call["args"]["input"]
            .as_str()
            .unwrap()
            .starts_with("*** Begin Patch\n*** Add File: README.md")
    );
    let result = &request["contents"][2]["parts"][0]["functionResponse"];
    assert_eq!(
        (
            result["name"].as_str(),
            result["response"]["output"].as_str()
        ),
        (Some("apply_patch"), Some("Done: A README.md"))
    );
    assert!(t.notes.is_empty(), "{:?}", t.notes);
    assert_eq!(
        context().custom_tools.into_iter().collect::<Vec<_>>(),
        ["apply_patch", "notes"]
    );
}

#[test]
fn custom_calls_stream_as_custom_tool_call_deltas() {
    let mut transcoder = StreamTranscoder::new(context());
    let mut events = transcoder.push(&answer());
    events.extend(transcoder.finish());
    let deltas: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Chunk(chunk) => chunk.choices.first(),
            _ => None,
        })
        .flat_map(|c| &c.delta.tool_calls)
        .collect();
    assert_eq!(deltas.len(), 3);
    assert_eq!(deltas[0].kind.as_deref(), Some("custom"));
    assert_eq!(deltas[0].function, None);
    assert_eq!(
        deltas[0].custom,
        Some(CustomToolCallDelta {
            name: Some("apply_patch".into()),
            namespace: None,
            input: Some(PATCH.into())
        })
    );
    assert_eq!(
        deltas[0].extra_content,
        Some(json!({"google": {"thought_signature": "Q3VzdG9tU2ln"}}))
    );
    assert_eq!(deltas[1].kind.as_deref(), Some("function"));
    assert_eq!(deltas[1].custom, None);
    assert_eq!(
        deltas[1]
            .function
            .as_ref()
            .and_then(|f| f.arguments.as_deref()),
        Some(r#"{"command":["ls"]}"#)
    );
    assert_eq!(deltas[2].index, 2);
    assert!(deltas[2].id.as_deref().unwrap().starts_with("call_"));

    let wire = serde_json::to_value(common::chat_event_json(&events[2])).unwrap();
    assert_eq!(
        wire["choices"][0]["delta"]["tool_calls"][0],
        json!({"index": 0, "id": "call_p2", "type": "custom",
               "custom": {"name": "apply_patch", "input": PATCH},
               "extra_content": {"google": {"thought_signature": "Q3VzdG9tU2ln"}}})
    );

    let completion = assemble(&events);
    assert_eq!(
        completion.choices,
        from_gemini(&answer(), &context()).choices,
        "streamed and whole answers agree"
    );
    let choice = &completion.choices[0];
    assert_eq!(choice.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(choice.message.content.as_deref(), Some("Patching."));
    let calls = &choice.message.tool_calls;
    assert_eq!(
        (calls[0].kind.as_str(), calls[0].function.as_ref()),
        ("custom", None)
    );
    assert_eq!(
        calls[0].custom,
        Some(CustomToolCall {
            name: "apply_patch".into(),
            namespace: None,
            input: PATCH.into()
        })
    );
    assert_eq!(
        calls[2].custom,
        Some(CustomToolCall {
            name: "notes".into(),
            namespace: None,
            input: "Added NOTES.md".into()
        })
    );
    assert_eq!(calls[1].function.as_ref().unwrap().name, "shell");

    // The answer, sent back as history, translates to the same upstream calls.
    let mut next = request();
    let mut assistant: agm_wire::openai::chat::ChatMessage =
        serde_json::from_value(serde_json::to_value(&choice.message).unwrap()).unwrap();
    assistant.reasoning_content = None;
    next.messages.push(assistant);
    next.messages.push(
        serde_json::from_value(json!({"role": "tool", "tool_call_id": "call_p2", "content": "ok"}))
            .unwrap(),
    );
    let t = to_gemini(&next, "gemini-3-pro-high", &RequestOptions::default()).unwrap();
    let model_turn = &t.request.contents[3].parts;
    let call = model_turn[1].function_call.as_ref().unwrap();
    assert_eq!(
        (call.name.as_str(), &call.args),
        ("apply_patch", &json!({"input": PATCH}))
    );
    assert_eq!(
        model_turn[1].thought_signature.as_deref(),
        Some("Q3VzdG9tU2ln")
    );
}
