#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Codex 0.171 with its default model sends no `tools`: its tools come in an input
//! item `{"type": "additional_tools", "role": "developer", "tools": [...]}` holding
//! namespaces (`functions` with the custom tool `exec`, `clock`, `collaboration`). The
//! fixture is a trimmed capture of such a request. Those tools count as if they were
//! in `tools`, the item is not sent as a message, and the model's calls go back with
//! `name` and `namespace`. `tool_search` (with `gpt-5.5`) is left out with a note. Run
//! with `UPDATE_GOLDEN=1` to rewrite the expected files after an intended change, and
//! review the diff.

mod common;

use agm_translate::openai_responses::{RequestOptions, ResponseContext, from_gemini, to_gemini};
use agm_wire::gemini::GenerateContentResponse;
use agm_wire::openai::responses::{Input, InputItem, OutputItem, ResponsesRequest};
use common::{Fixtures, translated_json};
use serde_json::{Value, json};

const FIXTURES: Fixtures = Fixtures("openai_responses");
const UPSTREAM: &str = "gemini-3-pro-high";

fn codex_request() -> ResponsesRequest {
    serde_json::from_str(&FIXTURES.read("codex_additional_tools_request.json")).unwrap()
}

fn declared(request: &Value) -> Vec<String> {
    request["tools"][0]["functionDeclarations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn the_item_parses_and_tolerates_unknown_fields() {
    let req = codex_request();
    let Input::Items(items) = &req.input else {
        panic!("items expected")
    };
    assert_eq!(items[0].type_name(), "additional_tools");
    let InputItem::AdditionalTools { tools, role, id } = &items[0] else {
        panic!("{:?}", items[0])
    };
    assert_eq!(tools.len(), 3);
    assert_eq!(role.as_deref(), Some("developer"));
    assert!(id.as_deref().unwrap().starts_with("at_"));
    let item: InputItem = serde_json::from_value(json!({"type": "additional_tools",
        "tools": [], "phase": "future", "extra": {"a": 1}}))
    .unwrap();
    assert!(
        matches!(item, InputItem::AdditionalTools { .. }),
        "{item:?}"
    );
}

#[test]
fn codex_additional_tools_request_to_gemini() {
    let req = codex_request();
    let t = to_gemini(&req, UPSTREAM, &RequestOptions::default()).unwrap();
    FIXTURES.assert_golden(
        "codex_additional_tools_request.gemini.json",
        &translated_json(&t, UPSTREAM),
    );
    let request = serde_json::to_value(&t.request).unwrap();
    assert_eq!(
        declared(&request),
        [
            "functions__exec",
            "functions__wait",
            "clock__sleep",
            "collaboration__list_agents",
            "collaboration__spawn_agent",
        ]
    );
    // `exec` is a custom tool: one raw string, its grammar in the description.
    let exec = &request["tools"][0]["functionDeclarations"][0];
    assert_eq!(exec["parameters"]["required"], json!(["input"]));
    assert!(
        exec["description"]
            .as_str()
            .unwrap()
            .contains("this lark grammar")
    );
    // The item is no message: only the developer message reaches the system
    // instruction, and only the user messages the contents.
    let text = request.to_string();
    assert!(!text.contains("additional_tools"), "{text}");
    let system = &request["systemInstruction"]["parts"];
    assert_eq!(system.as_array().unwrap().len(), 1, "{system}");
    assert!(
        system[0]["text"]
            .as_str()
            .unwrap()
            .starts_with("<permissions instructions>")
    );
    assert!(
        request["contents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["role"] == "user")
    );
    assert!(t.notes.is_empty(), "{:?}", t.notes);
}

#[test]
fn calls_go_back_with_name_and_namespace_and_replay_under_the_same_names() {
    let req = codex_request();
    let t = to_gemini(&req, UPSTREAM, &RequestOptions::default()).unwrap();
    let ctx = ResponseContext::for_request(&req, &t, "req-at", 1_767_225_600);
    assert_eq!(
        ctx.custom_tools.iter().collect::<Vec<_>>(),
        ["functions__exec"]
    );
    let answer: GenerateContentResponse = serde_json::from_value(json!({
        "candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": "functions__exec",
                              "args": {"input": "text(await tools.exec_command({cmd: 'ls'}))"},
                              "id": "call_x"}},
            {"functionCall": {"name": "collaboration__spawn_agent",
                              "args": {"message": "probe"}, "id": "call_s"}}
        ]}, "finishReason": "STOP"}]
    }))
    .unwrap();
    let response = from_gemini(&answer, &ctx);
    let calls: Vec<(&str, &str, Option<&str>)> = response
        .output
        .iter()
        .filter_map(|item| match item {
            OutputItem::FunctionCall {
                name, namespace, ..
            } => Some(("function_call", name.as_str(), namespace.as_deref())),
            OutputItem::CustomToolCall {
                name, namespace, ..
            } => Some(("custom_tool_call", name.as_str(), namespace.as_deref())),
            _ => None,
        })
        .collect();
    assert_eq!(
        calls,
        [
            ("custom_tool_call", "exec", Some("functions")),
            ("function_call", "spawn_agent", Some("collaboration")),
        ]
    );

    // Codex sends them back, with their outputs, and the additional_tools item again.
    let mut next = serde_json::to_value(&req).unwrap();
    let input = next["input"].as_array_mut().unwrap();
    for item in serde_json::to_value(&response.output)
        .unwrap()
        .as_array()
        .unwrap()
    {
        let mut item = item.clone();
        let map = item.as_object_mut().unwrap();
        map.remove("id");
        map.remove("status");
        let output = match map["type"].as_str().unwrap() {
            "custom_tool_call" => "custom_tool_call_output",
            "function_call" => "function_call_output",
            _ => continue,
        };
        let call_id = map["call_id"].clone();
        input.push(item);
        input.push(json!({"type": output, "call_id": call_id, "output": "done"}));
    }
    let next: ResponsesRequest = serde_json::from_value(next).unwrap();
    let t = to_gemini(&next, UPSTREAM, &RequestOptions::default()).unwrap();
    let request = serde_json::to_value(&t.request).unwrap();
    let parts: Vec<&Value> = request["contents"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["parts"].as_array().unwrap())
        .collect();
    let sent: Vec<&str> = parts
        .iter()
        .filter_map(|p| p["functionCall"]["name"].as_str())
        .collect();
    let answered: Vec<&str> = parts
        .iter()
        .filter_map(|p| p["functionResponse"]["name"].as_str())
        .collect();
    assert_eq!(sent, ["functions__exec", "collaboration__spawn_agent"]);
    assert_eq!(answered, sent);
}

#[test]
fn additional_tools_merge_with_tools_and_errors_name_the_item() {
    let mut req = serde_json::to_value(codex_request()).unwrap();
    req["tools"] = json!([{"type": "function", "name": "shell_command"}]);
    let req: ResponsesRequest = serde_json::from_value(req).unwrap();
    let t = to_gemini(&req, UPSTREAM, &RequestOptions::default()).unwrap();
    let names = declared(&serde_json::to_value(&t.request).unwrap());
    assert_eq!(names[0], "shell_command");
    assert_eq!(names.len(), 6);

    let req: ResponsesRequest = serde_json::from_value(json!({"model": "m", "input": [
        {"type": "message", "role": "user", "content": "hi"},
        {"type": "additional_tools", "role": "developer", "tools": [
            {"type": "namespace", "name": "ns", "tools": [{"type": "function"}]}]}
    ]}))
    .unwrap();
    let err = to_gemini(&req, UPSTREAM, &RequestOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "input.1.tools.0.tools.0.name: required (a tool of a namespace needs a name)"
    );
}

#[test]
fn tool_search_is_left_out_with_a_note() {
    let mut req = serde_json::to_value(codex_request()).unwrap();
    req["model"] = json!("gpt-5.5");
    req["tools"] = json!([{"type": "tool_search", "execution": "client",
        "description": "Search deferred tools.", "parameters": {"type": "object"}}]);
    let req: ResponsesRequest = serde_json::from_value(req).unwrap();
    let t = to_gemini(&req, UPSTREAM, &RequestOptions::default()).unwrap();
    assert_eq!(
        declared(&serde_json::to_value(&t.request).unwrap()).len(),
        5
    );
    assert_eq!(
        t.notes,
        ["tools.0.type: \"tool_search\" tools cannot run on Google's models and were left out"]
    );
}
