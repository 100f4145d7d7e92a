#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! OpenAI Chat Completions and Responses, in-process against the simulated Google.

mod common;

use agm_sim::{Fault, ScriptedReply, SimMethod};
use common::start;
use serde_json::{Value, json};

fn chat(stream: bool) -> Value {
    json!({
        "model": "gpt-4o",
        "stream": stream,
        "stream_options": {"include_usage": true},
        "max_tokens": 200,
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "Hello OpenAI"},
        ],
    })
}

/// The `data:` payloads of an OpenAI-style SSE body.
fn data_lines(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

/// The body of the last request the sim got for `method`.
fn last_sent(h: &common::Harness, method: SimMethod) -> Value {
    h.sim
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.method == method)
        .unwrap()
        .body
}

/// The first output item of type `kind` in a Responses stream's `response.completed`.
fn completed_item(events: &[(String, Value)], kind: &str) -> Value {
    let (_, done) = events
        .iter()
        .find(|(e, _)| e == "response.completed")
        .unwrap();
    done["response"]["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"] == kind)
        .unwrap()
        .clone()
}

#[tokio::test]
async fn chat_completion_round_trip() {
    let h = start().await;
    let response = h.post_to("/v1/chat/completions", &chat(false)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "gpt-4o");
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Simulated gemini-3-pro-high reply to: Hello OpenAI"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(body["usage"]["total_tokens"].as_u64().unwrap() > 0);
    let sent = h
        .sim
        .requests()
        .into_iter()
        .find(|r| r.method == SimMethod::GenerateContent)
        .unwrap();
    assert_eq!(
        sent.body["request"]["systemInstruction"]["parts"][0]["text"],
        "be brief"
    );
    assert_eq!(
        sent.body["request"]["generationConfig"]["maxOutputTokens"],
        200
    );
}

#[tokio::test]
async fn chat_stream_with_usage_and_done() {
    let h = start().await;
    let response = h.post_to("/v1/chat/completions", &chat(true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let lines = data_lines(&response.text().await.unwrap());
    assert_eq!(lines.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = lines[..lines.len() - 1]
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "Simulated gemini-3-pro-high reply to: Hello OpenAI");
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    let usage = chunks.last().unwrap();
    assert_eq!(
        usage["choices"],
        json!([]),
        "the usage chunk has no choices"
    );
    assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop")
    );
}

#[tokio::test]
async fn chat_tool_calls_round_trip() {
    let h = start().await;
    h.sim.script(Fault::reply(
        SimMethod::GenerateContent,
        ScriptedReply::function_call("get_weather", json!({"city": "Paris"}), "")
            .with_part(json!({"functionCall": {"name": "get_time", "args": {"tz": "CET"}}})),
    ));
    let mut body = chat(false);
    body["tools"] = json!([
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": false}}},
        {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}}}},
    ]);
    let answer: Value = h
        .post_to("/v1/chat/completions", &body)
        .await
        .json()
        .await
        .unwrap();
    let message = &answer["choices"][0]["message"];
    assert_eq!(
        answer["choices"][0]["finish_reason"], "tool_calls",
        "{answer}"
    );
    let calls = message["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "Paris"})
    );
    assert_eq!(calls[1]["function"]["name"], "get_time");
    let first_id = calls[0]["id"].as_str().unwrap().to_owned();
    assert!(!first_id.is_empty());

    // The client answers the calls; the results reach Google as functionResponses.
    body["messages"] = json!([
        {"role": "user", "content": "weather and time?"},
        {"role": "assistant", "content": null, "tool_calls": calls},
        {"role": "tool", "tool_call_id": first_id, "content": "sunny"},
        {"role": "tool", "tool_call_id": calls[1]["id"], "content": "12:00"},
    ]);
    let response = h.post_to("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let sent = last_sent(&h, SimMethod::GenerateContent);
    let contents = sent["request"]["contents"].as_array().unwrap();
    let responses: Vec<&Value> = contents
        .iter()
        .flat_map(|c| c["parts"].as_array().unwrap())
        .filter_map(|p| p.get("functionResponse"))
        .collect();
    assert_eq!(responses.len(), 2);
    assert_eq!(responses[0]["name"], "get_weather");
    let tools = &sent["request"]["tools"][0]["functionDeclarations"];
    assert!(
        tools[0]["parameters"].get("additionalProperties").is_none(),
        "schemas are cleaned"
    );
}

#[tokio::test]
async fn chat_errors_are_openai_shaped() {
    let h = start().await;
    let response = h
        .post_to(
            "/v1/chat/completions",
            &json!({"model": "gpt-4o", "messages": []}),
        )
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("messages")
    );

    let mut n2 = chat(false);
    n2["n"] = json!(2);
    let response = h.post_to("/v1/chat/completions", &n2).await;
    assert_eq!(response.status(), 400);

    h.sim
        .script(Fault::rate_limited(SimMethod::GenerateContent, "9s").always());
    let response = h.post_to("/v1/chat/completions", &chat(false)).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "9");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_exceeded");
}

fn codex_request(stream: bool) -> Value {
    json!({
        "model": "gpt-5-codex",
        "instructions": "You are Codex.",
        "stream": stream,
        "input": [
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hello Responses"}]},
        ],
        "tools": [{"type": "function", "name": "shell", "description": "run a command", "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}}, "required": ["command"]}}],
    })
}

#[tokio::test]
async fn responses_round_trip() {
    let h = start().await;
    let response = h.post_to("/v1/responses", &codex_request(false)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "response");
    assert_eq!(body["status"], "completed");
    let message = body["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["type"] == "message")
        .unwrap();
    assert_eq!(
        message["content"][0]["text"],
        "Simulated gemini-3-pro-high reply to: Hello Responses"
    );
    assert!(body["usage"]["output_tokens"].as_u64().unwrap() > 0);
    let sent = h
        .sim
        .requests()
        .into_iter()
        .find(|r| r.method == SimMethod::GenerateContent)
        .unwrap();
    assert_eq!(
        sent.body["request"]["systemInstruction"]["parts"][0]["text"],
        "You are Codex."
    );
}

#[tokio::test]
async fn responses_stream_events() {
    let h = start().await;
    let text = h
        .post_to("/v1/responses", &codex_request(true))
        .await
        .text()
        .await
        .unwrap();
    let events = common::sse_events(&text);
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(names[0], "response.created");
    assert_eq!(*names.last().unwrap(), "response.completed");
    assert!(names.contains(&"response.output_text.delta"));
    let delta: String = events
        .iter()
        .filter(|(e, _)| e == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(
        delta,
        "Simulated gemini-3-pro-high reply to: Hello Responses"
    );
    let sequence: Vec<u64> = events
        .iter()
        .map(|(_, d)| d["sequence_number"].as_u64().unwrap())
        .collect();
    assert!(
        sequence.windows(2).all(|w| w[1] == w[0] + 1),
        "{sequence:?}"
    );
}

#[tokio::test]
async fn responses_function_calls_stream_arguments() {
    let h = start().await;
    h.sim.script(Fault::reply(
        SimMethod::StreamGenerateContent,
        ScriptedReply::function_call("shell", json!({"command": ["ls", "-la"]}), "call-1"),
    ));
    let text = h
        .post_to("/v1/responses", &codex_request(true))
        .await
        .text()
        .await
        .unwrap();
    let events = common::sse_events(&text);
    let args: String = events
        .iter()
        .filter(|(e, _)| e == "response.function_call_arguments.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"command": ["ls", "-la"]})
    );
    let call = completed_item(&events, "function_call");
    assert_eq!(call["name"], "shell");
    assert!(!call["call_id"].as_str().unwrap().is_empty());
}

/// A Responses request as Codex 0.171 sends it with its default features: its
/// sub-agent tools in the `multi_agent_v1` namespace, next to plain tools and the
/// hosted tools it always declares.
fn codex_namespace_request() -> Value {
    let mut body = codex_request(true);
    body["tools"] = json!([
        {"type": "function", "name": "shell", "description": "run a command",
         "parameters": {"type": "object", "properties": {"command": {"type": "string"}}}},
        {"type": "namespace", "name": "multi_agent_v1",
         "description": "Tools for spawning and managing sub-agents.",
         "tools": [
            {"type": "function", "name": "spawn_agent", "description": "Spawn a sub-agent.",
             "strict": false,
             "parameters": {"type": "object", "properties": {"message": {"type": "string"}},
                            "additionalProperties": false}},
            {"type": "function", "name": "close_agent", "description": "Close an agent.",
             "strict": false,
             "parameters": {"type": "object", "properties": {"id": {"type": "string"}},
                            "required": ["id"], "additionalProperties": false}}
         ]},
        {"type": "web_search", "external_web_access": false},
        {"type": "image_generation", "output_format": "png"}
    ]);
    body
}

#[tokio::test]
async fn codex_namespace_tools_are_served_and_calls_map_back() {
    let h = start().await;
    h.sim.script(Fault::reply(
        SimMethod::StreamGenerateContent,
        ScriptedReply::function_call(
            "multi_agent_v1__spawn_agent",
            json!({"message": "review src/lib.rs"}),
            "call-ns-1",
        ),
    ));
    let mut body = codex_namespace_request();
    let response = h.post_to("/v1/responses", &body).await;
    assert_eq!(response.status(), 200);
    let events = common::sse_events(&response.text().await.unwrap());
    // The call comes back as Codex registers the tool: its name and its namespace,
    // on the item of every event that carries it.
    for name in ["response.output_item.added", "response.output_item.done"] {
        let (_, event) = events
            .iter()
            .find(|(e, d)| e == name && d["item"]["type"] == "function_call")
            .unwrap();
        assert_eq!(event["item"]["name"], "spawn_agent", "{event}");
        assert_eq!(event["item"]["namespace"], "multi_agent_v1", "{event}");
    }
    let call = completed_item(&events, "function_call");
    assert_eq!(
        (&call["name"], &call["namespace"], &call["call_id"]),
        (
            &json!("spawn_agent"),
            &json!("multi_agent_v1"),
            &json!("call-ns-1")
        )
    );
    // Google saw every tool of the namespace as a function, the namespace's
    // description carried into each.
    let sent = last_sent(&h, SimMethod::StreamGenerateContent);
    let declared = sent["request"]["tools"][0]["functionDeclarations"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(declared.len(), 3, "{declared:?}");
    assert_eq!(declared[0]["name"], "shell");
    assert_eq!(declared[1]["name"], "multi_agent_v1__spawn_agent");
    assert_eq!(declared[2]["name"], "multi_agent_v1__close_agent");
    assert!(
        declared[1]["description"].as_str().unwrap().ends_with(
            "Part of the `multi_agent_v1` tools: Tools for spawning and managing sub-agents."
        ),
        "{}",
        declared[1]
    );

    // Codex sends the call back with its output: Google gets both under the name the
    // declaration had.
    let mut replayed = call.clone();
    replayed.as_object_mut().unwrap().remove("id");
    body["input"].as_array_mut().unwrap().extend([
        replayed,
        json!({"type": "function_call_output", "call_id": "call-ns-1",
                                  "output": "{\"agent_id\":\"agent-7\"}"}),
    ]);
    let response = h.post_to("/v1/responses", &body).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let sent = last_sent(&h, SimMethod::StreamGenerateContent);
    let parts: Vec<Value> = sent["request"]["contents"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["parts"].as_array().unwrap().clone())
        .collect();
    let call_part = parts.iter().find_map(|p| p.get("functionCall")).unwrap();
    let result_part = parts
        .iter()
        .find_map(|p| p.get("functionResponse"))
        .unwrap();
    assert_eq!(call_part["name"], "multi_agent_v1__spawn_agent");
    assert_eq!(result_part["name"], "multi_agent_v1__spawn_agent");
}

#[tokio::test]
async fn unknown_tool_types_are_still_refused_by_name() {
    let h = start().await;
    let mut body = codex_request(false);
    body["tools"] = json!([{"type": "code_interpreter", "container": {"type": "auto"}}]);
    let response = h.post_to("/v1/responses", &body).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message
            .starts_with("tools.0.type: \"code_interpreter\" tools cannot run on Google's models"),
        "{message}"
    );
}

/// Codex 0.171 with its default model: no `tools`, its tools in an `additional_tools`
/// input item (namespaces, a custom tool among them); with `gpt-5.5` also a
/// `tool_search` tool in `tools`, which is left out.
#[tokio::test]
async fn codex_additional_tools_item_is_served_and_tool_search_left_out() {
    let h = start().await;
    h.sim.script(Fault::reply(
        SimMethod::StreamGenerateContent,
        ScriptedReply::function_call(
            "collaboration__spawn_agent",
            json!({"message": "probe"}),
            "call-at-1",
        ),
    ));
    let mut body = codex_request(true);
    body["tools"] = json!([{"type": "tool_search", "execution": "client"}]);
    body["input"].as_array_mut().unwrap().insert(
        0,
        json!({"type": "additional_tools", "id": "at_1", "role": "developer", "tools": [
            {"type": "namespace", "name": "functions", "description": "", "tools": [
                {"type": "custom", "name": "exec", "description": "Run JavaScript.",
                 "format": {"type": "grammar", "syntax": "lark", "definition": "start: /.+/"}}]},
            {"type": "namespace", "name": "collaboration",
             "description": "Tools for spawning and managing sub-agents.", "tools": [
                {"type": "function", "name": "spawn_agent", "description": "Spawn.",
                 "strict": false, "parameters": {"type": "object",
                    "properties": {"message": {"type": "string"}}}}]}
        ]}),
    );
    let response = h.post_to("/v1/responses", &body).await;
    assert_eq!(response.status(), 200);
    let events = common::sse_events(&response.text().await.unwrap());
    let call = completed_item(&events, "function_call");
    assert_eq!(
        (&call["name"], &call["namespace"], &call["call_id"]),
        (
            &json!("spawn_agent"),
            &json!("collaboration"),
            &json!("call-at-1")
        )
    );
    let sent = last_sent(&h, SimMethod::StreamGenerateContent);
    let declared: Vec<&str> = sent["request"]["tools"][0]["functionDeclarations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["name"].as_str().unwrap())
        .collect();
    assert_eq!(declared, ["functions__exec", "collaboration__spawn_agent"]);
    assert!(!sent["request"].to_string().contains("additional_tools"));
}
