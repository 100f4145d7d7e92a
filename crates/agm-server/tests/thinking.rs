#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Thinking and signatures through the server: signatures restored and trusted only
//! for the family that made them, and the one retry after a refused signature.

mod common;

use agm_sim::{Fault, SimMethod};
use common::start;
use serde_json::{Value, json};

const MODEL: &str = "claude-sonnet-4-5-thinking";

fn first_turn() -> Value {
    json!({
        "model": MODEL,
        "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "messages": [{"role": "user", "content": "Think about agm"}],
    })
}

fn second_turn(assistant_content: Value) -> Value {
    json!({
        "model": MODEL,
        "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "messages": [
            {"role": "user", "content": "Think about agm"},
            {"role": "assistant", "content": assistant_content},
            {"role": "user", "content": "And now?"},
        ],
    })
}

fn last_generate(h: &common::Harness) -> Value {
    h.sim
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.method == SimMethod::GenerateContent)
        .unwrap()
        .body
}

#[tokio::test]
async fn signatures_round_trip_for_the_same_family() {
    let h = start().await;
    let first: Value = h.post(&first_turn()).await.json().await.unwrap();
    let blocks = first["content"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "thinking", "{first}");
    let signature = blocks[0]["signature"].as_str().unwrap().to_owned();
    assert!(!signature.is_empty());
    assert_eq!(blocks[1]["type"], "text");

    let response = h.post(&second_turn(first["content"].clone())).await;
    assert!(response.headers().get("x-agm-thinking").is_none());
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let sent = last_generate(&h);
    let model_turn = &sent["request"]["contents"][1];
    assert_eq!(model_turn["role"], "model");
    assert_eq!(model_turn["parts"][0]["thought"], true);
    assert_eq!(model_turn["parts"][0]["thoughtSignature"], signature);
    let stats = h.state.signatures.stats();
    assert!(stats.hits >= 1, "{stats:?}");
}

#[tokio::test]
async fn unknown_signatures_go_up_as_text() {
    let h = start().await;
    let forged = json!([
        {"type": "thinking", "thinking": "I made this up", "signature": "Zm9yZ2VkLXNpZ25hdHVyZQ=="},
        {"type": "text", "text": "an answer"},
    ]);
    let response = h.post(&second_turn(forged)).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let sent = last_generate(&h);
    let parts = sent["request"]["contents"][1]["parts"].as_array().unwrap();
    assert!(
        parts.iter().all(|p| p.get("thoughtSignature").is_none()),
        "{parts:?}"
    );
    assert!(parts.iter().any(|p| {
        p["text"]
            .as_str()
            .is_some_and(|t| t.contains("I made this up"))
    }));
}

#[tokio::test]
async fn a_refused_signature_is_retried_once_as_text() {
    let h = start().await;
    let first: Value = h.post(&first_turn()).await.json().await.unwrap();
    h.sim.script(
        Fault::status(
            SimMethod::GenerateContent,
            400,
            "INVALID_ARGUMENT",
            "messages.1.content.0: Invalid `signature` in `thinking` block",
        )
        .times(1),
    );
    let before = h.sim.count(SimMethod::GenerateContent);
    let response = h.post(&second_turn(first["content"].clone())).await;
    assert_eq!(response.headers()["x-agm-thinking"], "off");
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(
        h.sim.count(SimMethod::GenerateContent),
        before + 2,
        "exactly one retry"
    );
    let sent = last_generate(&h);
    let parts = sent["request"]["contents"][1]["parts"].as_array().unwrap();
    assert!(
        parts.iter().all(|p| p.get("thoughtSignature").is_none()),
        "{parts:?}"
    );
}

#[tokio::test]
async fn a_tool_loop_without_a_known_signature_says_thinking_is_off() {
    let h = start().await;
    let tools = json!([{"name": "lookup", "description": "d",
                        "input_schema": {"type": "object", "properties": {}}}]);
    let first: Value = h
        .post(&json!({
            "model": MODEL, "max_tokens": 4096, "tools": tools,
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "messages": [{"role": "user", "content": "Look it up\nagm-sim:call lookup {}"}],
        }))
        .await
        .json()
        .await
        .unwrap();
    let content = first["content"].as_array().unwrap().clone();
    let call = content.iter().find(|b| b["type"] == "tool_use").unwrap();
    let next = |assistant: Vec<Value>| {
        json!({
            "model": MODEL, "max_tokens": 4096, "tools": tools,
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "messages": [
                {"role": "user", "content": "Look it up\nagm-sim:call lookup {}"},
                {"role": "assistant", "content": assistant},
                {"role": "user", "content": [{"type": "tool_result",
                    "tool_use_id": call["id"], "content": "found"}]},
            ],
        })
    };
    // Replayed as received: thinking stays on.
    let kept = h.post(&next(content.clone())).await;
    assert_eq!(kept.status(), 200);
    assert!(kept.headers().get("x-agm-thinking").is_none());
    // The signature altered: Claude would refuse thinking here, so it goes without,
    // and the client is told.
    let mut forged = content.clone();
    for block in &mut forged {
        if block["type"] == "thinking" {
            block["signature"] = json!("Zm9yZ2VkLXNpZ25hdHVyZQ==");
        }
    }
    let dropped = h.post(&next(forged)).await;
    assert_eq!(dropped.status(), 200);
    assert_eq!(dropped.headers()["x-agm-thinking"], "off");
    let body: Value = dropped.json().await.unwrap();
    assert!(
        body["content"]
            .as_array()
            .unwrap()
            .iter()
            .all(|b| b["type"] != "thinking")
    );
}

#[tokio::test]
async fn streamed_signatures_are_remembered_too() {
    let h = start().await;
    let mut body = first_turn();
    body["stream"] = json!(true);
    let text = h.post(&body).await.text().await.unwrap();
    let events = common::sse_events(&text);
    let signature = events
        .iter()
        .find(|(_, d)| d["delta"]["type"] == "signature_delta")
        .map(|(_, d)| d["delta"]["signature"].as_str().unwrap().to_owned())
        .expect("a signature_delta event");
    let thinking: String = events
        .iter()
        .filter(|(_, d)| d["delta"]["type"] == "thinking_delta")
        .map(|(_, d)| d["delta"]["thinking"].as_str().unwrap())
        .collect();
    let content = json!([
        {"type": "thinking", "thinking": thinking, "signature": signature},
        {"type": "text", "text": "whatever"},
    ]);
    assert_eq!(h.post(&second_turn(content)).await.status(), 200);
    let sent = last_generate(&h);
    assert_eq!(
        sent["request"]["contents"][1]["parts"][0]["thoughtSignature"],
        signature
    );
}

#[tokio::test]
async fn a_repeated_session_hits_the_signature_cache_more_than_half_the_time() {
    let h = start().await;
    let mut history = vec![json!({"role": "user", "content": "Think about agm"})];
    for turn in 0..5 {
        let body = json!({
            "model": MODEL,
            "max_tokens": 4096,
            "thinking": {"type": "enabled", "budget_tokens": 2048},
            "messages": history,
        });
        let answer: Value = h.post(&body).await.json().await.unwrap();
        assert_eq!(answer["type"], "message", "turn {turn}: {answer}");
        history.push(json!({"role": "assistant", "content": answer["content"]}));
        history.push(json!({"role": "user", "content": format!("and then {turn}?")}));
    }
    let stats = h.state.signatures.stats();
    assert!(stats.hit_rate() > 0.5, "{stats:?}");
    let sent = last_generate(&h);
    let replayed = sent["request"]["contents"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["parts"].as_array().unwrap())
        .filter(|p| p.get("thoughtSignature").is_some())
        .count();
    assert_eq!(
        replayed, 4,
        "every earlier turn's thinking went back signed"
    );
}

/// A Claude Code-style thinking conversation across a restart (issue 14, item 4): the
/// second turn, sent to a new server on the same store, replays the first turn's
/// signature (no signature error, no thinking dropped) on the same account.
#[tokio::test]
async fn a_conversation_keeps_its_signatures_and_account_across_a_restart() {
    let h = common::start_with(|c| {
        c.routing.scheduling = agm_pool::selection::Scheduling::CacheFirst;
    })
    .await;
    let first: Value = h.post(&first_turn()).await.json().await.unwrap();
    let signature = first["content"][0]["signature"]
        .as_str()
        .unwrap()
        .to_owned();
    let first_account = h
        .sim
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.method == SimMethod::GenerateContent)
        .and_then(|r| r.account)
        .unwrap();
    // What `agm serve` does at shutdown (and every minute).
    let saved = agm_server::state::sessions::save(&h.state).await.unwrap();
    assert!(saved.sessions >= 1 && saved.signatures >= 1, "{saved:?}");

    // A new process on the same store: `serve` restores what was saved.
    let mut config = h.state.config.clone();
    config.server.port = 0;
    let restarted =
        std::sync::Arc::new(agm_server::app::AppState::new(config, h.state.store.clone()).unwrap());
    let url = common::serve_state(restarted).await;
    h.sim.clear_requests();
    let response = h
        .http
        .post(format!("{url}/v1/messages"))
        .json(&second_turn(first["content"].clone()))
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("x-agm-thinking").is_none());
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let sent = h
        .sim
        .requests()
        .into_iter()
        .find(|r| r.method == SimMethod::GenerateContent)
        .unwrap();
    assert_eq!(
        sent.body["request"]["contents"][1]["parts"][0]["thoughtSignature"],
        signature.as_str()
    );
    assert_eq!(sent.account.as_deref(), Some(first_account.as_str()));
}
