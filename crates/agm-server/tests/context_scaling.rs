//! Context scaling (`[context]`) against the sim: a long agent conversation over the
//! configured budget goes upstream smaller, the answer says so (`x-agm-context-scaled`,
//! the request log), the usage still counts the client's whole request; with scaling
//! off, or below the target, the upstream request is exactly the translated one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use agm_server::config::Scaling;
use agm_sim::SimMethod;
use serde_json::{Value, json};

/// An agent conversation: `n` reads of the same three files (8 KB each), then a
/// question.
fn long_session(n: usize, stream: bool) -> Value {
    let file =
        |i: usize| format!("// file {i}\nfn main() {{ println!(\"hello\"); }}\n").repeat(200);
    let mut messages = vec![json!({"role": "user", "content": "Fix the build."})];
    for i in 0..n {
        let id = format!("toolu_{i:03}");
        messages.push(json!({"role": "assistant", "content": [
            {"type": "text", "text": format!("Reading file {}.", i % 3)},
            {"type": "tool_use", "id": id, "name": "read_file", "input": {"path": format!("src/{}.rs", i % 3)}}
        ]}));
        messages.push(json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": id, "content": file(i % 3)}
        ]}));
    }
    messages.push(json!({"role": "assistant", "content": "The files look fine."}));
    messages.push(json!({"role": "user", "content": "What did you find?"}));
    json!({
        "model": "gemini-2.5-flash",
        "max_tokens": 256,
        "stream": stream,
        "tools": [{"name": "read_file", "description": "Reads a file",
                   "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}],
        "messages": messages,
    })
}

fn generations(h: &common::Harness) -> Vec<Value> {
    h.sim
        .requests()
        .into_iter()
        .filter(|r| {
            matches!(
                r.method,
                SimMethod::GenerateContent | SimMethod::StreamGenerateContent
            )
        })
        .map(|r| r.body)
        .collect()
}

fn last_generation(h: &common::Harness) -> Value {
    generations(h).pop().unwrap()
}

fn scaled_header(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("x-agm-context-scaled")
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn a_request_over_the_budget_goes_upstream_smaller_and_says_so() {
    let off = common::start_with(|c| c.context.scaling = Scaling::Off).await;
    let on = common::start_with(|c| {
        c.context.budget = 20_000;
        c.context.keep_turns = 4;
    })
    .await;
    let body = long_session(30, false);

    let plain = off.post(&body).await;
    assert_eq!(plain.status(), 200);
    assert_eq!(scaled_header(&plain), None);
    let plain: Value = plain.json().await.unwrap();
    let full = last_generation(&off);

    let scaled = on.post(&body).await;
    assert_eq!(scaled.status(), 200);
    let header = scaled_header(&scaled).expect("x-agm-context-scaled");
    assert!(header.starts_with("standard; cut="), "{header}");
    let cut: u64 = header["standard; cut=".len()..]
        .trim_end_matches(" tokens")
        .parse()
        .unwrap();
    assert!(cut > 10_000, "{header}");
    let answer: Value = scaled.json().await.unwrap();
    let sent = last_generation(&on);

    let (full_text, sent_text) = (full.to_string(), sent.to_string());
    assert!(
        sent_text.len() * 3 < full_text.len(),
        "{} vs {}",
        sent_text.len(),
        full_text.len()
    );
    assert!(sent_text.contains("[agm: the same tool result as in message"));
    assert!(!full_text.contains("[agm:"));
    // The system instruction, tools and the last turns went as they were.
    assert_eq!(
        sent["request"]["systemInstruction"],
        full["request"]["systemInstruction"]
    );
    assert_eq!(sent["request"]["tools"], full["request"]["tools"]);
    let (a, b) = (
        sent["request"]["contents"].as_array().unwrap(),
        full["request"]["contents"].as_array().unwrap(),
    );
    assert_eq!(a.len(), b.len());
    assert_eq!(a[a.len() - 4..], b[b.len() - 4..]);

    // Usage counts the client's request: Google's count of what was sent plus the cut.
    let (plain_in, scaled_in) = (
        plain["usage"]["input_tokens"].as_u64().unwrap(),
        answer["usage"]["input_tokens"].as_u64().unwrap(),
    );
    assert!(
        scaled_in * 10 > plain_in * 7 && scaled_in * 10 < plain_in * 13,
        "{scaled_in} vs {plain_in}"
    );

    // The request log says so.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let rows = on.state.store.list_request_log(None, 10).await.unwrap();
        if let Some(row) = rows.iter().find(|r| r.entry.route == "/v1/messages") {
            assert_eq!(row.entry.context_scaled.as_deref(), Some(header.as_str()));
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no request-log row");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn streams_are_scaled_too_and_message_start_counts_the_whole_request() {
    let on = common::start_with(|c| c.context.budget = 20_000).await;
    let response = on.post(&long_session(30, true)).await;
    assert_eq!(response.status(), 200);
    let header = scaled_header(&response).expect("x-agm-context-scaled");
    let cut: u64 = header["standard; cut=".len()..]
        .trim_end_matches(" tokens")
        .parse()
        .unwrap();
    let events = common::sse_events(&response.text().await.unwrap());
    let start = &events
        .iter()
        .find(|(name, _)| name == "message_start")
        .unwrap()
        .1;
    let input = start["message"]["usage"]["input_tokens"].as_u64().unwrap();
    assert!(input > cut, "{input} ≤ {cut}");
    assert!(last_generation(&on).to_string().contains("[agm:"));
}

#[tokio::test]
async fn off_or_below_the_target_the_upstream_request_is_unchanged() {
    let off = common::start_with(|c| c.context.scaling = Scaling::Off).await;
    let roomy = common::start().await; // standard, the model's 1M window: far from it
    let body = long_session(30, false);
    let a = off.post(&body).await;
    let b = roomy.post(&body).await;
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (200, 200));
    assert_eq!(scaled_header(&b), None);
    assert_eq!(
        serde_json::to_vec(&last_generation(&off)["request"]).unwrap(),
        serde_json::to_vec(&last_generation(&roomy)["request"]).unwrap()
    );
}

#[tokio::test]
async fn aggressive_summarizes_the_oldest_turns_once_per_conversation() {
    let h = common::start_with(|c| {
        c.context.scaling = Scaling::Aggressive;
        c.context.budget = 6_000;
        c.context.keep_turns = 4;
    })
    .await;
    let body = long_session(30, false);
    let first = h.post(&body).await;
    assert_eq!(first.status(), 200);
    let header = scaled_header(&first).unwrap();
    assert!(header.starts_with("aggressive; cut="), "{header}");
    let calls = generations(&h);
    assert_eq!(calls.len(), 2, "the summary, then the request");
    assert_eq!(calls[0]["model"], "gemini-2.5-flash");
    let summary_asked = calls[0]["request"]["contents"][0]["parts"][0]["text"]
        .as_str()
        .unwrap();
    assert!(summary_asked.starts_with("### message 1 (user)\nFix the build."));
    let sent = &calls[1]["request"]["contents"];
    let opening = sent[0]["parts"][0]["text"].as_str().unwrap();
    assert!(
        opening.starts_with("[agm: summary of the earlier conversation]"),
        "{opening}"
    );
    assert_eq!(sent[1]["role"], "model");

    // The same conversation again: the summary is remembered, not made again.
    let again = h.post(&body).await;
    assert_eq!(again.status(), 200);
    assert_eq!(scaled_header(&again).as_deref(), Some(header.as_str()));
    let calls = generations(&h);
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[2]["request"]["contents"], *sent);
}

/// The same session in the Gemini API's own format.
fn long_gemini_session(n: usize) -> Value {
    let file =
        |i: usize| format!("// file {i}\nfn main() {{ println!(\"hello\"); }}\n").repeat(200);
    let mut contents = vec![json!({"role": "user", "parts": [{"text": "Fix the build."}]})];
    for i in 0..n {
        contents.push(json!({"role": "model", "parts": [
            {"functionCall": {"name": "read_file", "args": {"path": format!("src/{}.rs", i % 3)}}}
        ]}));
        contents.push(json!({"role": "user", "parts": [
            {"functionResponse": {"name": "read_file", "response": {"output": file(i % 3)}}}
        ]}));
    }
    contents.push(json!({"role": "model", "parts": [{"text": "The files look fine."}]}));
    contents.push(json!({"role": "user", "parts": [{"text": "What did you find?"}]}));
    json!({"contents": contents})
}

#[tokio::test]
async fn the_gemini_pass_through_is_scaled_too() {
    let off = common::start_with(|c| c.context.scaling = Scaling::Off).await;
    let on = common::start_with(|c| c.context.budget = 20_000).await;
    let path = "/v1beta/models/gemini-2.5-flash:generateContent";
    let body = long_gemini_session(30);
    let plain = off.post_to(path, &body).await;
    assert_eq!(plain.status(), 200);
    assert_eq!(scaled_header(&plain), None);
    let plain: Value = plain.json().await.unwrap();
    let scaled = on.post_to(path, &body).await;
    assert_eq!(scaled.status(), 200);
    let header = scaled_header(&scaled).expect("x-agm-context-scaled");
    assert!(header.starts_with("standard; cut="), "{header}");
    let answer: Value = scaled.json().await.unwrap();
    assert!(last_generation(&on).to_string().contains("[agm:"));
    let (plain_in, scaled_in) = (
        plain["usageMetadata"]["promptTokenCount"].as_u64().unwrap(),
        answer["usageMetadata"]["promptTokenCount"]
            .as_u64()
            .unwrap(),
    );
    assert!(
        scaled_in * 10 > plain_in * 7 && scaled_in * 10 < plain_in * 13,
        "{scaled_in} vs {plain_in}"
    );
}
