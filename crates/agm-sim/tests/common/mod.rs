//! Request bodies and answer readers shared by the HTTP test suites.
#![allow(clippy::unwrap_used, dead_code)]

use serde_json::{Value, json};

/// A Code Assist generation envelope around `request`.
pub fn envelope(project: &str, model: &str, request: Value) -> Value {
    json!({
        "project": project,
        "model": model,
        "requestId": "agent-1",
        "userAgent": "antigravity",
        "requestType": "agent",
        "request": request,
    })
}

/// A request of one user turn saying `text`.
pub fn ask(text: &str) -> Value {
    json!({ "contents": [{ "role": "user", "parts": [{ "text": text }] }] })
}

/// The JSON of each `data:` line of an SSE body.
pub fn sse_events(body: &str) -> Vec<Value> {
    body.split("\r\n\r\n")
        .filter_map(|event| event.trim().strip_prefix("data: "))
        .map(|data| serde_json::from_str(data).unwrap())
        .collect()
}
