//! The `agm-sim:call` directive over real HTTP: a prompt makes the sim call a declared
//! function, and the turn with the function's result is answered by quoting it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use agm_sim::{RunningSim, Sim};
use reqwest::StatusCode;
use serde_json::{Value, json};

const PROJECT: &str = "demo-project-alice";

async fn start() -> (RunningSim, reqwest::Client, String) {
    let sim = Sim::demo().start().await.expect("sim starts");
    let token = sim.issue_access_token("alice@demo.agm").unwrap();
    (sim, reqwest::Client::new(), token)
}

fn envelope(model: &str, request: Value) -> Value {
    json!({
        "project": PROJECT,
        "model": model,
        "requestId": "agent-1",
        "userAgent": "antigravity",
        "requestType": "agent",
        "request": request,
    })
}

fn read_tool() -> Value {
    json!([{"functionDeclarations": [
        {"name": "Bash", "description": "Runs a command", "parameters": {
            "type": "OBJECT", "properties": {"command": {"type": "STRING"}}, "required": ["command"]}},
        {"name": "Read", "description": "Reads a file", "parameters": {
            "type": "OBJECT", "properties": {"file_path": {"type": "STRING"}}, "required": ["file_path"]}},
    ]}])
}

fn asking(text: &str) -> Value {
    json!({
        "contents": [{"role": "user", "parts": [{"text": text}]}],
        "tools": read_tool(),
    })
}

async fn generate(
    http: &reqwest::Client,
    sim: &RunningSim,
    token: &str,
    body: &Value,
) -> (StatusCode, Value) {
    let response = http
        .post(format!("{}/v1internal:generateContent", sim.base_url()))
        .bearer_auth(token)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap())
}

fn parts(answer: &Value) -> &Vec<Value> {
    answer["response"]["candidates"][0]["content"]["parts"]
        .as_array()
        .unwrap()
}

#[tokio::test]
async fn a_directive_calls_the_tool_and_the_result_is_quoted() {
    let (sim, http, token) = start().await;
    let prompt = "Read the notes.\nagm-sim:call Read {\"file_path\": \"/tmp/notes.txt\"}";
    let (status, answer) = generate(
        &http,
        &sim,
        &token,
        &envelope("claude-sonnet-4-5", asking(prompt)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let call = json!({"functionCall": {
        "name": "Read",
        "args": {"file_path": "/tmp/notes.txt"},
        "id": "agm-sim-call-1-0",
    }});
    assert_eq!(parts(&answer), &vec![call.clone()]);
    assert_eq!(answer["response"]["candidates"][0]["finishReason"], "STOP");

    // The client runs the tool and sends its result: the sim validates the pairing
    // (Claude: by id) and quotes the result.
    let mut follow_up = asking(prompt);
    follow_up["contents"].as_array_mut().unwrap().extend([
        json!({"role": "model", "parts": [call]}),
        json!({"role": "user", "parts": [{"functionResponse": {
                "name": "Read", "id": "agm-sim-call-1-0",
                "response": {"content": "1\tthe notes say 42"}}}]}),
    ]);
    let (status, answer) = generate(
        &http,
        &sim,
        &token,
        &envelope("claude-sonnet-4-5", follow_up),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        parts(&answer),
        &vec![json!({"text":
            "Simulated claude-sonnet-4-5 reply to: [function results: Read returned {\"content\":\"1\\tthe notes say 42\"}]"
        })]
    );
}

#[tokio::test]
async fn an_undeclared_tool_is_answered_with_a_sim_error_text() {
    let (sim, http, token) = start().await;
    let (status, answer) = generate(
        &http,
        &sim,
        &token,
        &envelope("gemini-3-flash", asking("agm-sim:call mcp__fs__read {}")),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(
        parts(&answer),
        &vec![json!({"text":
            "agm-sim: cannot call mcp__fs__read: no function of that name (declared: Bash, Read)"
        })]
    );
}

#[tokio::test]
async fn a_streamed_directive_sends_each_call_as_a_chunk() {
    let (sim, http, token) = start().await;
    let mut request =
        asking("agm-sim:call Bash {\"command\": \"ls\"}\nagm-sim:call Read {\"file_path\": \"a\"}");
    request["generationConfig"] = json!({"thinkingConfig": {"includeThoughts": true}});
    let body = http
        .post(format!(
            "{}/v1internal:streamGenerateContent?alt=sse",
            sim.base_url()
        ))
        .bearer_auth(&token)
        .json(&envelope("gemini-3-flash", request))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let chunks: Vec<Value> = body
        .split("\r\n\r\n")
        .filter_map(|event| event.trim().strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect();
    assert_eq!(chunks.len(), 3, "{body}");
    assert_eq!(parts(&chunks[0])[0]["thought"], true);
    // Gemini 3 signs the first call of the turn, as Google does.
    let first_call = &parts(&chunks[1])[0];
    assert_eq!(
        first_call["functionCall"],
        json!({"name": "Bash", "args": {"command": "ls"}, "id": "agm-sim-call-1-0"})
    );
    assert!(
        first_call["thoughtSignature"]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    assert_eq!(
        parts(&chunks[2]),
        &vec![
            json!({"functionCall": {"name": "Read", "args": {"file_path": "a"}, "id": "agm-sim-call-1-1"}})
        ]
    );
    assert_eq!(
        chunks[2]["response"]["candidates"][0]["finishReason"],
        "STOP"
    );
    assert!(chunks[2]["response"]["usageMetadata"]["thoughtsTokenCount"].as_u64() > Some(0));
}

#[tokio::test]
async fn the_gemini_api_follows_directives_too() {
    let (sim, http, _) = start().await;
    let answer: Value = http
        .post(format!(
            "{}/v1beta/models/gemini-2.5-flash:generateContent",
            sim.base_url()
        ))
        .header("x-goog-api-key", "demo-gemini-key")
        .json(&asking("agm-sim:call Read {\"file_path\": \"b\"}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        answer["candidates"][0]["content"]["parts"][0]["functionCall"],
        json!({"name": "Read", "args": {"file_path": "b"}, "id": "agm-sim-call-1-0"})
    );
}

#[tokio::test]
async fn a_directive_does_not_get_past_validation() {
    // The sim stays strict: a request Google would refuse is refused before any
    // directive is looked at.
    let (sim, http, token) = start().await;
    let mut request = asking("agm-sim:call Read {}");
    request["tools"][0]["functionDeclarations"][1]["parameters"]["additionalProperties"] =
        json!(false);
    let (status, answer) =
        generate(&http, &sim, &token, &envelope("gemini-3-flash", request)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Unknown name \"additionalProperties\""),
        "{answer}"
    );
}
