#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Codex's namespace tools through the Responses converter: `multi_agent_v1` (its
//! sub-agent tools) and MCP servers' namespaces (dotted names, a custom tool) declared
//! as `{"type": "namespace", "name", "description", "tools"}`, flattened into Gemini
//! function declarations; the model's calls coming back as `function_call` and
//! `custom_tool_call` items with the tool's own `name` and its `namespace`, streamed
//! and not; and those items, sent back as history, reaching Gemini under the same
//! names. Run with `UPDATE_GOLDEN=1` to rewrite the expected files after an intended
//! change, and review the diff.

mod common;

use agm_translate::openai_responses::{
    RequestOptions, ResponseContext, StreamTranscoder, assemble, from_gemini, to_gemini,
};
use agm_translate::{TranslateError, tools::is_valid_tool_name};
use agm_wire::gemini::GenerateContentResponse;
use agm_wire::openai::responses::{EventKind, OutputItem, ResponsesRequest};
use common::{Fixtures, translated_json};
use serde_json::{Value, json};

const FIXTURES: Fixtures = Fixtures("openai_responses");
const UPSTREAM: &str = "gemini-3-pro-high";

fn codex_request() -> ResponsesRequest {
    serde_json::from_str(&FIXTURES.read("codex_namespace_request.json")).unwrap()
}

fn context() -> ResponseContext {
    let req = codex_request();
    let t = to_gemini(&req, UPSTREAM, &RequestOptions::default()).unwrap();
    ResponseContext::for_request(&req, &t, "req-golden", 1_767_225_600)
}

/// The request's declarations as `(name, description)`.
fn declarations(request: &Value) -> Vec<(String, String)> {
    request["tools"][0]["functionDeclarations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["name"].as_str().unwrap().to_owned(),
                d["description"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// The upstream names the fixture's namespaced tools get: `(multi_agent_v1
/// spawn_agent, mcp__my.docs search.docs, mcp__my.docs render, collab spawn_agent)`.
fn upstream_names() -> (String, String, String, String) {
    let t = to_gemini(&codex_request(), UPSTREAM, &RequestOptions::default()).unwrap();
    let names = &t.tool_names;
    let get = |ns: &str, name: &str| names.namespaced_upstream_name(ns, name).unwrap().to_owned();
    (
        get("multi_agent_v1", "spawn_agent"),
        get("mcp__my.docs", "search.docs"),
        get("mcp__my.docs", "render"),
        get("collab", "spawn_agent"),
    )
}

#[test]
fn codex_namespace_request_to_gemini() {
    let t = to_gemini(&codex_request(), UPSTREAM, &RequestOptions::default()).unwrap();
    FIXTURES.assert_golden(
        "codex_namespace_request.gemini.json",
        &translated_json(&t, UPSTREAM),
    );
    // What matters, spelled out.
    let request = serde_json::to_value(&t.request).unwrap();
    let declared = declarations(&request);
    let (spawn, search, render, collab) = upstream_names();
    let names: Vec<&str> = declared.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "shell_command",
            "multi_agent_v1__spawn_agent",
            "multi_agent_v1__send_input",
            "multi_agent_v1__close_agent",
            search.as_str(),
            render.as_str(),
            "collab__spawn_agent",
        ]
    );
    assert_eq!((spawn.as_str(), collab.as_str()), (names[1], names[6]));
    // Dotted MCP names get stand-ins Gemini takes, readable and unique.
    for name in &names {
        assert!(is_valid_tool_name(name), "{name}");
    }
    assert!(search.starts_with("mcp__my_docs__search_docs_"), "{search}");
    assert!(render.starts_with("mcp__my_docs__render_"), "{render}");
    // The namespace's description is carried into each of its tools'.
    assert_eq!(
        declared[1].1,
        "Spawn a sub-agent for a well-scoped task.\n\nPart of the `multi_agent_v1` tools: \
         Tools for spawning and managing sub-agents."
    );
    assert_eq!(
        declared[6].1,
        "Spawn a collaborator.\n\nPart of the `collab` tools."
    );
    // A custom tool in a namespace takes its raw input, under its grammar.
    let render_decl = &request["tools"][0]["functionDeclarations"][5];
    assert_eq!(render_decl["parameters"]["required"], json!(["input"]));
    let about = render_decl["description"].as_str().unwrap();
    assert!(about.starts_with("Renders Markdown to HTML.\n\nPart of the `mcp__my.docs` tools"));
    assert!(
        about.contains("this lark grammar:\n```\nstart: /.+/s\n```"),
        "{about}"
    );
    // The schema is cleaned like any function's.
    assert_eq!(
        request["tools"][0]["functionDeclarations"][1]["parameters"],
        json!({"type": "object", "properties": {
            "message": {"type": "string"}, "agent_type": {"type": "string"}}})
    );

    // History: the earlier namespaced calls and their results go up under the same
    // names as the declarations.
    let contents = &request["contents"];
    let call = |turn: usize| &contents[turn]["parts"][0]["functionCall"];
    let result = |turn: usize| &contents[turn]["parts"][0]["functionResponse"];
    assert_eq!(call(1)["name"], spawn.as_str());
    assert_eq!(
        call(1)["args"],
        json!({"message": "Review src/lib.rs", "agent_type": "reviewer"})
    );
    assert_eq!(result(2)["name"], spawn.as_str());
    assert_eq!(call(3)["name"], search.as_str());
    assert_eq!(result(4)["name"], search.as_str());
    assert_eq!(call(5)["name"], render.as_str());
    assert_eq!(call(5)["args"], json!({"input": "# Retry"}));
    assert_eq!(result(6)["name"], render.as_str());

    // Codex's ambient hosted tools are left out, as without namespaces.
    assert_eq!(t.notes.len(), 2, "{:?}", t.notes);
    // Calls of the namespaced custom tool go back as custom tool calls.
    assert_eq!(
        context().custom_tools.into_iter().collect::<Vec<_>>(),
        [render]
    );
}

/// An answer calling tools of every kind of the fixture: namespaced functions (one
/// with a dotted MCP name), a namespaced custom tool, a plain function, and the same
/// name in two namespaces.
fn answer() -> GenerateContentResponse {
    let (spawn, search, render, collab) = upstream_names();
    serde_json::from_value(json!({
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": "Delegating."},
            {"functionCall": {"name": spawn, "args": {"message": "Review it"}, "id": "call_a"}},
            {"functionCall": {"name": "multi_agent_v1__close_agent", "args": {"id": "agent-7"}}},
            {"functionCall": {"name": collab, "args": {"task_name": "probe"}, "id": "call_c"}},
            {"functionCall": {"name": search, "args": {"query": "backoff"}, "id": "call_d"}},
            {"functionCall": {"name": render, "args": {"input": "# Backoff"}, "id": "call_e"}},
            {"functionCall": {"name": "shell_command", "args": {"command": "ls"}, "id": "call_f"}}
        ]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 900, "candidatesTokenCount": 40},
        "responseId": "resp_ns"
    }))
    .unwrap()
}

/// `(type, name, namespace, arguments or input)` of each tool call item.
fn calls(output: &[OutputItem]) -> Vec<(&'static str, &str, Option<&str>, &str)> {
    output
        .iter()
        .filter_map(|item| match item {
            OutputItem::FunctionCall {
                name,
                namespace,
                arguments,
                ..
            } => Some((
                "function_call",
                name.as_str(),
                namespace.as_deref(),
                arguments.as_str(),
            )),
            OutputItem::CustomToolCall {
                name,
                namespace,
                input,
                ..
            } => Some((
                "custom_tool_call",
                name.as_str(),
                namespace.as_deref(),
                input.as_str(),
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn namespaced_calls_come_back_with_their_name_and_namespace() {
    let response = from_gemini(&answer(), &context());
    FIXTURES.assert_golden(
        "gemini_namespace_response.response.json",
        &serde_json::to_value(&response).unwrap(),
    );
    assert_eq!(
        calls(&response.output),
        [
            (
                "function_call",
                "spawn_agent",
                Some("multi_agent_v1"),
                r#"{"message":"Review it"}"#
            ),
            (
                "function_call",
                "close_agent",
                Some("multi_agent_v1"),
                r#"{"id":"agent-7"}"#
            ),
            (
                "function_call",
                "spawn_agent",
                Some("collab"),
                r#"{"task_name":"probe"}"#
            ),
            (
                "function_call",
                "search.docs",
                Some("mcp__my.docs"),
                r#"{"query":"backoff"}"#
            ),
            (
                "custom_tool_call",
                "render",
                Some("mcp__my.docs"),
                "# Backoff"
            ),
            (
                "function_call",
                "shell_command",
                None,
                r#"{"command":"ls"}"#
            ),
        ]
    );
    // On the wire: `namespace` next to `name`, and no `namespace` on a plain call.
    let output = serde_json::to_value(&response.output).unwrap();
    assert_eq!(output[1]["name"], "spawn_agent");
    assert_eq!(output[1]["namespace"], "multi_agent_v1");
    assert_eq!(output[1]["call_id"], "call_a");
    assert!(output[2]["call_id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(output[5]["type"], "custom_tool_call");
    assert_eq!(output[5]["namespace"], "mcp__my.docs");
    assert!(output[6].get("namespace").is_none(), "{}", output[6]);
}

#[test]
fn namespaced_calls_stream_with_their_namespace() {
    let mut transcoder = StreamTranscoder::new(context());
    let mut events = transcoder.push(&answer());
    events.extend(transcoder.finish());
    FIXTURES.assert_golden(
        "gemini_namespace_stream.events.json",
        &serde_json::to_value(&events).unwrap(),
    );
    // Every event of a namespaced call's item carries the namespace on its item.
    let mut added = Vec::new();
    let mut done = Vec::new();
    let mut arguments_done = Vec::new();
    for event in &events {
        match &event.kind {
            EventKind::OutputItemAdded { item, .. } => added.push(item.clone()),
            EventKind::OutputItemDone { item, .. } => done.push(item.clone()),
            EventKind::FunctionCallArgumentsDone {
                name, arguments, ..
            } => arguments_done.push((name.clone().unwrap(), arguments.clone())),
            _ => {}
        }
    }
    let streamed = calls(&done);
    assert_eq!(streamed, calls(&from_gemini(&answer(), &context()).output));
    let started: Vec<_> = calls(&added)
        .into_iter()
        .map(|(kind, name, namespace, _)| (kind, name, namespace))
        .collect();
    let finished: Vec<_> = streamed
        .iter()
        .map(|&(kind, name, namespace, _)| (kind, name, namespace))
        .collect();
    assert_eq!(started, finished);
    // `response.function_call_arguments.done` names the tool as the item does.
    assert_eq!(arguments_done[0].0, "spawn_agent");
    assert_eq!(arguments_done[3].0, "search.docs");
    let completed = assemble(&events).unwrap();
    assert_eq!(calls(&completed.output), streamed);
}

#[test]
fn the_answer_sent_back_reaches_gemini_under_the_same_names() {
    let response = from_gemini(&answer(), &context());
    let mut next = serde_json::to_value(codex_request()).unwrap();
    let input = next["input"].as_array_mut().unwrap();
    for item in serde_json::to_value(&response.output)
        .unwrap()
        .as_array()
        .unwrap()
    {
        // As Codex replays its history: the items without their ids and statuses.
        let mut item = item.clone();
        let map = item.as_object_mut().unwrap();
        map.remove("id");
        map.remove("status");
        let (kind, call_id) = (
            map["type"].as_str().unwrap().to_owned(),
            map.get("call_id").cloned(),
        );
        input.push(item);
        if let Some(call_id) = call_id {
            let output = if kind == "custom_tool_call" {
                "custom_tool_call_output"
            } else {
                "function_call_output"
            };
            input.push(json!({"type": output, "call_id": call_id, "output": "done"}));
        }
    }
    let next: ResponsesRequest = serde_json::from_value(next).unwrap();
    let t = to_gemini(&next, UPSTREAM, &RequestOptions::default()).unwrap();
    let request = serde_json::to_value(&t.request).unwrap();
    let contents = request["contents"].as_array().unwrap();
    let sent: Vec<&str> = contents
        .iter()
        .flat_map(|c| c["parts"].as_array().unwrap())
        .filter_map(|p| p["functionCall"]["name"].as_str())
        .collect();
    let answered: Vec<&str> = contents
        .iter()
        .flat_map(|c| c["parts"].as_array().unwrap())
        .filter_map(|p| p["functionResponse"]["name"].as_str())
        .collect();
    let (spawn, search, render, collab) = upstream_names();
    let expected = [
        spawn.as_str(),
        search.as_str(),
        render.as_str(),
        spawn.as_str(),
        "multi_agent_v1__close_agent",
        collab.as_str(),
        search.as_str(),
        render.as_str(),
        "shell_command",
    ];
    assert_eq!(sent, expected);
    assert_eq!(answered, expected);
    // Every name sent is declared.
    let declared: Vec<String> = declarations(&request).into_iter().map(|(n, _)| n).collect();
    assert!(sent.iter().all(|name| declared.iter().any(|d| d == name)));
}

#[test]
fn names_that_collide_when_flattened_stay_apart() {
    let req: ResponsesRequest = serde_json::from_value(json!({
        "model": "gpt-5.1-codex",
        "input": "go",
        "tools": [
            {"type": "namespace", "name": "a", "description": "A.",
             "tools": [{"type": "function", "name": "b__c"}]},
            {"type": "namespace", "name": "a__b",
             "tools": [{"type": "function", "name": "c"}]},
            {"type": "function", "name": "a__b__c"}
        ]
    }))
    .unwrap();
    let t = to_gemini(&req, UPSTREAM, &RequestOptions::default()).unwrap();
    let request = serde_json::to_value(&t.request).unwrap();
    let names: Vec<String> = declarations(&request).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names[0], "a__b__c");
    assert!(names[1] != names[0] && names[2] != names[0] && names[1] != names[2]);
    assert!(names.iter().all(|n| is_valid_tool_name(n)), "{names:?}");
    let ctx = ResponseContext::for_request(&req, &t, "seed", 0);
    let answer: GenerateContentResponse = serde_json::from_value(json!({
        "candidates": [{"content": {"role": "model", "parts": [
            {"functionCall": {"name": names[0], "args": {}}},
            {"functionCall": {"name": names[1], "args": {}}},
            {"functionCall": {"name": names[2], "args": {}}}
        ]}, "finishReason": "STOP"}]
    }))
    .unwrap();
    let response = from_gemini(&answer, &ctx);
    let back: Vec<(&str, Option<&str>)> = calls(&response.output)
        .into_iter()
        .map(|(_, name, namespace, _)| (name, namespace))
        .collect();
    assert_eq!(
        back,
        [("b__c", Some("a")), ("c", Some("a__b")), ("a__b__c", None)]
    );
}

fn error(tools: Value) -> TranslateError {
    let req: ResponsesRequest =
        serde_json::from_value(json!({"model": "m", "input": "hi", "tools": tools})).unwrap();
    to_gemini(&req, UPSTREAM, &RequestOptions::default()).unwrap_err()
}

#[test]
fn malformed_namespaces_and_unknown_tools_are_refused() {
    assert_eq!(
        error(json!([{"type": "namespace", "tools": []}])).to_string(),
        "tools.0: malformed namespace tool (missing or mistyped fields)"
    );
    let err = error(json!([{"type": "function", "name": "f"},
        {"type": "namespace", "name": "ns", "tools": [
            {"type": "function", "name": "ok"}, {"type": "file_search"}]}]));
    assert!(matches!(err, TranslateError::Unsupported { .. }));
    assert!(
        err.to_string().starts_with(
            "tools.1.tools.1.type: \"file_search\" tools cannot run on Google's models"
        ),
        "{err}"
    );
    assert_eq!(
        error(json!([{"type": "namespace", "name": "ns", "tools": [{"type": "function"}]}]))
            .to_string(),
        "tools.0.tools.0.name: required (a tool of a namespace needs a name)"
    );
    assert_eq!(
        error(json!([{"type": "namespace", "name": "ns", "tools": [
            {"type": "function", "name": "x"}, {"type": "custom", "name": "x"}]}]))
        .to_string(),
        "tools.0.tools.1.name: namespace \"ns\" already has a tool named \"x\""
    );
    // Any other tool type keeps its clear 400.
    let err = error(json!([{"type": "code_interpreter", "container": {"type": "auto"}}]));
    assert!(
        err.to_string().starts_with(
            "tools.0.type: \"code_interpreter\" tools cannot run on Google's models: agm takes \
             function, custom and namespace tools"
        ),
        "{err}"
    );
    // A namespace with no tools is left out with a note.
    let req: ResponsesRequest = serde_json::from_value(json!({"model": "m", "input": "hi",
        "tools": [{"type": "namespace", "name": "empty", "tools": []}]}))
    .unwrap();
    let t = to_gemini(&req, UPSTREAM, &RequestOptions::default()).unwrap();
    assert!(t.request.tools.is_empty());
    assert_eq!(
        t.notes,
        ["tools.0: namespace \"empty\" declares no tools and was left out"]
    );
}
