#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Namespace tools through the Chat Completions converter. No client is known to send
//! them to Chat Completions (Codex speaks only the Responses API), so agm takes the
//! Responses API's shape there too, its tools in either API's shape, and answers
//! with the tool's own name and its `namespace` next to it in `function` (or
//! `custom`), streamed and whole; such calls sent back reach Gemini under the same
//! names.

use agm_translate::openai_chat::{
    RequestOptions, ResponseContext, StreamTranscoder, assemble, from_gemini, to_gemini,
};
use agm_wire::gemini::GenerateContentResponse;
use agm_wire::openai::chat::{ChatCompletionRequest, StreamEvent};
use serde_json::{Value, json};

const UPSTREAM: &str = "gemini-3-flash";

fn request() -> ChatCompletionRequest {
    serde_json::from_value(json!({
        "model": "gpt-5.1",
        "messages": [
            {"role": "user", "content": "Review src/lib.rs with a sub-agent."},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {
                    "name": "spawn_agent", "namespace": "multi_agent_v1",
                    "arguments": "{\"message\":\"Review src/lib.rs\"}"}},
                {"id": "call_2", "type": "custom", "custom": {
                    "name": "note", "namespace": "mcp__notes", "input": "started"}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"agent_id\":\"agent-7\"}"},
            {"role": "tool", "tool_call_id": "call_2", "content": "ok"}
        ],
        "tools": [
            {"type": "function", "function": {"name": "shell", "parameters": {"type": "object"}}},
            {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents.",
             "tools": [
                {"type": "function", "function": {"name": "spawn_agent", "description": "Spawn one.",
                  "parameters": {"type": "object", "properties": {"message": {"type": "string"}}}}},
                {"type": "function", "name": "close_agent",
                 "parameters": {"type": "object", "properties": {"id": {"type": "string"}}}}
             ]},
            {"type": "namespace", "name": "mcp__notes",
             "tools": [{"type": "custom", "custom": {"name": "note", "description": "Takes a note."}}]}
        ]
    }))
    .unwrap()
}

fn context() -> ResponseContext {
    let req = request();
    let t = to_gemini(&req, UPSTREAM, &RequestOptions::default()).unwrap();
    ResponseContext::for_request(&req, &t, "seed", 1_767_225_600)
}

#[test]
fn namespaces_are_flattened_and_history_follows() {
    let t = to_gemini(&request(), UPSTREAM, &RequestOptions::default()).unwrap();
    let request = serde_json::to_value(&t.request).unwrap();
    let declared = request["tools"][0]["functionDeclarations"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = declared
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "shell",
            "multi_agent_v1__spawn_agent",
            "multi_agent_v1__close_agent",
            "mcp__notes__note"
        ]
    );
    assert_eq!(
        declared[1]["description"],
        "Spawn one.\n\nPart of the `multi_agent_v1` tools: Sub-agents."
    );
    assert_eq!(
        declared[2]["description"],
        "Part of the `multi_agent_v1` tools: Sub-agents."
    );
    assert_eq!(declared[3]["parameters"]["required"], json!(["input"]));
    let parts = &request["contents"][1]["parts"];
    assert_eq!(
        parts[0]["functionCall"]["name"],
        "multi_agent_v1__spawn_agent"
    );
    assert_eq!(parts[1]["functionCall"]["name"], "mcp__notes__note");
    assert_eq!(
        parts[1]["functionCall"]["args"],
        json!({"input": "started"})
    );
    let results = &request["contents"][2]["parts"];
    assert_eq!(
        results[0]["functionResponse"]["name"],
        "multi_agent_v1__spawn_agent"
    );
    assert_eq!(results[1]["functionResponse"]["name"], "mcp__notes__note");
}

fn answer() -> GenerateContentResponse {
    serde_json::from_value(json!({
        "candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "multi_agent_v1__close_agent", "args": {"id": "agent-7"},
                              "id": "call_9"}},
            {"functionCall": {"name": "mcp__notes__note", "args": {"input": "done"}}},
            {"functionCall": {"name": "shell", "args": {}}}
        ]}, "finishReason": "STOP"}]
    }))
    .unwrap()
}

/// The `tool_calls` of a completion as JSON.
fn tool_calls(completion: &agm_wire::openai::chat::ChatCompletion) -> Value {
    serde_json::to_value(&completion.choices[0].message.tool_calls).unwrap()
}

#[test]
fn calls_come_back_with_name_and_namespace_streamed_and_whole() {
    let whole = from_gemini(&answer(), &context());
    let calls = tool_calls(&whole);
    assert_eq!(
        calls[0]["function"],
        json!({"name": "close_agent", "namespace": "multi_agent_v1", "arguments": "{\"id\":\"agent-7\"}"})
    );
    assert_eq!(calls[1]["type"], "custom");
    assert_eq!(
        calls[1]["custom"],
        json!({"name": "note", "namespace": "mcp__notes", "input": "done"})
    );
    assert_eq!(
        calls[2]["function"],
        json!({"name": "shell", "arguments": "{}"})
    );

    let mut transcoder = StreamTranscoder::new(context());
    let mut events = transcoder.push(&answer());
    events.extend(transcoder.finish());
    let first = events
        .iter()
        .find_map(|e| match e {
            StreamEvent::Chunk(chunk) => chunk
                .choices
                .first()
                .and_then(|c| c.delta.tool_calls.first())
                .cloned(),
            _ => None,
        })
        .unwrap();
    let function = first.function.unwrap();
    assert_eq!(
        (function.name.as_deref(), function.namespace.as_deref()),
        (Some("close_agent"), Some("multi_agent_v1"))
    );
    assert_eq!(tool_calls(&assemble(&events)), calls);

    // The answer sent back as history reaches Gemini under the same names.
    let mut next = serde_json::to_value(request()).unwrap();
    let messages = next["messages"].as_array_mut().unwrap();
    messages.push(json!({"role": "assistant", "tool_calls": calls}));
    for call in calls.as_array().unwrap() {
        messages.push(json!({"role": "tool", "tool_call_id": call["id"], "content": "ok"}));
    }
    let next: ChatCompletionRequest = serde_json::from_value(next).unwrap();
    let t = to_gemini(&next, UPSTREAM, &RequestOptions::default()).unwrap();
    let request = serde_json::to_value(&t.request).unwrap();
    let contents = request["contents"].as_array().unwrap();
    // The names of a turn's calls (`functionCall`) or results (`functionResponse`).
    let names = |turn: &Value, key: &str| -> Vec<String> {
        turn["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[key]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let sent = names(&contents[3], "functionCall");
    assert_eq!(
        sent,
        ["multi_agent_v1__close_agent", "mcp__notes__note", "shell"]
    );
    assert_eq!(names(&contents[4], "functionResponse"), sent);
}
