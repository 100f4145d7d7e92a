#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The axum app in-process against the simulated Google: `POST /v1/messages`, streamed
//! and not, with the faults Google really produces.

mod common;

use std::sync::Arc;

use agm_server::app::{AppState, bind, serve};
use agm_server::config::Config;
use agm_sim::{Fault, Sim, SimConfig, SimMethod};
use agm_store::{AccountState, Store};
use common::{sse_events, start, start_sim_with, start_with};
use serde_json::{Value, json};

fn hello(stream: bool) -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "stream": stream,
        "system": "You are terse.",
        "temperature": 0.5,
        "top_p": 0.9,
        "top_k": 20,
        "stop_sequences": ["NEVER-SEEN"],
        "messages": [{"role": "user", "content": "Hello agm"}],
    })
}

const REPLY: &str = "Simulated claude-sonnet-4-5 reply to: Hello agm";

#[tokio::test]
async fn non_streaming_round_trip() {
    let h = start().await;
    let response = h.post(&hello(false)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "message");
    assert_eq!(body["role"], "assistant");
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert_eq!(body["content"][0]["type"], "text");
    assert_eq!(body["content"][0]["text"], REPLY);
    assert_eq!(body["stop_reason"], "end_turn");
    assert!(body["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert!(body["usage"]["output_tokens"].as_u64().unwrap() > 0);

    // What Google saw: the envelope, the project, the headers.
    let sent = h.sim.requests();
    let generate = sent
        .iter()
        .find(|r| r.method == SimMethod::GenerateContent)
        .unwrap();
    let project = generate.body["project"].as_str().unwrap();
    assert!(project.starts_with("demo-project-"), "{project}");
    assert_eq!(generate.header("x-goog-user-project"), Some(project));
    assert!(
        generate
            .header("user-agent")
            .unwrap()
            .starts_with("antigravity/")
    );
    assert_eq!(generate.body["model"], "claude-sonnet-4-5");
    assert_eq!(generate.body["requestType"], "agent");
    assert!(
        generate.body["requestId"]
            .as_str()
            .unwrap()
            .starts_with("agent-")
    );
    assert_eq!(
        generate.body["request"]["systemInstruction"]["parts"][0]["text"],
        "You are terse."
    );
    assert_eq!(
        generate.body["request"]["generationConfig"]["maxOutputTokens"],
        256
    );
}

#[tokio::test]
async fn streaming_event_sequence() {
    let h = start().await;
    let response = h.post(&hello(true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = sse_events(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        &names[..4],
        [
            "message_start",
            "ping",
            "content_block_start",
            "content_block_delta"
        ]
    );
    assert_eq!(
        &names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    for (name, data) in &events {
        assert_eq!(
            data["type"],
            name.as_str(),
            "the event name matches its data"
        );
    }
    let text: String = events
        .iter()
        .filter(|(e, _)| e == "content_block_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, REPLY);
    assert!(
        names
            .iter()
            .filter(|n| **n == "content_block_delta")
            .count()
            >= 2
    );
    let (_, delta) = &events[events.len() - 2];
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert!(delta["usage"]["output_tokens"].as_u64().unwrap() > 0);
    assert_eq!(events[0].1["message"]["model"], "claude-sonnet-4-5");
}

#[tokio::test]
async fn max_tokens_stop_reason() {
    let h = start().await;
    let mut body = hello(false);
    body["max_tokens"] = json!(2);
    let answer: Value = h.post(&body).await.json().await.unwrap();
    assert_eq!(answer["stop_reason"], "max_tokens");
}

#[tokio::test]
async fn rate_limited_account_rotates_to_the_next() {
    let h = start().await;
    h.sim
        .script(Fault::rate_limited(SimMethod::GenerateContent, "30s").times(1));
    let response = h.post(&hello(false)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["content"][0]["text"], REPLY);
    let accounts: Vec<_> = h
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method == SimMethod::GenerateContent)
        .map(|r| r.account.unwrap())
        .collect();
    assert_eq!(accounts.len(), 2);
    assert_ne!(
        accounts[0], accounts[1],
        "the second try used the other account"
    );
}

#[tokio::test]
async fn every_account_limited_is_a_429_with_retry_after() {
    let h = start().await;
    h.sim
        .script(Fault::rate_limited(SimMethod::GenerateContent, "42s").always());
    let response = h.post(&hello(false)).await;
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "42");
    assert_eq!(
        h.sim.count(SimMethod::GenerateContent),
        2,
        "each of the two accounts asked once, none hammered"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("claude-sonnet-4-5")
    );
}

#[tokio::test]
async fn failure_before_the_first_chunk_is_a_proper_status() {
    let h = start().await;
    h.sim.script(
        Fault::status(
            SimMethod::StreamGenerateContent,
            500,
            "INTERNAL",
            "backend exploded",
        )
        .always(),
    );
    let response = h.post(&hello(true)).await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "api_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("backend exploded")
    );
}

#[tokio::test]
async fn broken_stream_ends_with_an_error_event() {
    let h = start().await;
    h.sim.script(Fault::break_stream_after(
        SimMethod::StreamGenerateContent,
        1,
    ));
    let response = h.post(&hello(true)).await;
    assert_eq!(response.status(), 200);
    let events = sse_events(&response.text().await.unwrap());
    let (last_name, last) = events.last().unwrap();
    assert_eq!(last_name, "error");
    assert_eq!(last["error"]["type"], "api_error");
    assert!(
        events.iter().all(|(e, _)| e != "message_stop"),
        "no fake success"
    );
}

#[tokio::test]
async fn empty_upstream_answer_is_retried() {
    let h = start().await;
    h.sim
        .script(Fault::empty_body(SimMethod::StreamGenerateContent).times(1));
    let response = h.post(&hello(true)).await;
    let events = sse_events(&response.text().await.unwrap());
    let text: String = events
        .iter()
        .filter(|(e, _)| e == "content_block_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, REPLY);
    assert_eq!(h.sim.count(SimMethod::StreamGenerateContent), 2);

    h.sim
        .script(Fault::empty_body(SimMethod::GenerateContent).times(1));
    let body: Value = h.post(&hello(false)).await.json().await.unwrap();
    assert_eq!(body["content"][0]["text"], REPLY);
}

#[tokio::test]
async fn token_refresh_is_single_flight_and_project_cached() {
    let h = round_robin().await;
    let body = hello(false);
    let posts = (0..50).map(|_| h.post(&body));
    for response in futures_util::future::join_all(posts).await {
        assert_eq!(response.status(), 200);
    }
    // Two accounts: one refresh and one discovery each, however many requests.
    assert_eq!(h.sim.count(SimMethod::Token), 2);
    assert_eq!(h.sim.count(SimMethod::LoadCodeAssist), 2);
    let stored = h.state.store.list_accounts().await.unwrap();
    assert!(stored.iter().all(|a| {
        a.project_id
            .as_deref()
            .is_some_and(|p| p.starts_with("demo-project-"))
    }));
}

#[tokio::test]
async fn upstream_401_refreshes_and_retries() {
    let h = round_robin().await;
    for _ in 0..2 {
        assert_eq!(h.post(&hello(false)).await.status(), 200);
    }
    assert_eq!(h.sim.count(SimMethod::Token), 2);
    h.sim.expire_access_tokens();
    for _ in 0..2 {
        let response = h.post(&hello(false)).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
    assert_eq!(
        h.sim.count(SimMethod::Token),
        4,
        "each account refreshed after its 401"
    );
}

#[tokio::test]
async fn dead_refresh_token_disables_that_account_only() {
    let h = round_robin().await;
    h.sim.revoke_refresh_token("alice@demo.agm");
    for _ in 0..2 {
        let body: Value = h.post(&hello(false)).await.json().await.unwrap();
        assert_eq!(body["content"][0]["text"], REPLY);
    }
    let alice = h.account("alice@demo.agm").await;
    match alice.state {
        AccountState::Disabled { reason } => assert!(reason.contains("sign in again"), "{reason}"),
        other => panic!("alice should be disabled, is {other:?}"),
    }
}

#[tokio::test]
async fn no_accounts_is_a_503_that_says_what_to_do() {
    let h = start().await;
    for a in h.state.store.list_accounts().await.unwrap() {
        h.state.store.remove_account(&a.id).await.unwrap();
    }
    // The pool rereads the store every 2 s; a fresh server sees it at once.
    let state = Arc::new(AppState::new(h.state.config.clone(), h.state.store.clone()).unwrap());
    let url = common::serve_state(state).await;
    let response = h
        .http
        .post(format!("{url}/v1/messages"))
        .json(&hello(false))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "overloaded_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("agm accounts add")
    );
    let ready = h.http.get(format!("{url}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
}

#[tokio::test]
async fn bad_requests_name_the_field() {
    let h = start().await;
    let cases = [
        (
            json!({"max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}),
            "model",
        ),
        (
            json!({"model": "claude-sonnet-4-5", "max_tokens": 10}),
            "messages",
        ),
        (
            json!({"model": "claude-sonnet-4-5", "max_tokens": "ten", "messages": []}),
            "max_tokens",
        ),
        (
            json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": []}),
            "messages",
        ),
        (
            json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": 5}]}),
            "messages[0]",
        ),
    ];
    for (body, field) in cases {
        let response = h.post(&body).await;
        assert_eq!(response.status(), 400, "{body}");
        let err: Value = response.json().await.unwrap();
        assert_eq!(err["type"], "error");
        assert_eq!(err["error"]["type"], "invalid_request_error");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(field), "{message} should name {field}");
    }
    let response = h
        .http
        .post(format!("{}/v1/messages", h.url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let err: Value = response.json().await.unwrap();
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );
    assert_eq!(
        h.sim.count(SimMethod::GenerateContent),
        0,
        "nothing bad reached Google"
    );
}

#[tokio::test]
async fn oversized_body_is_a_413() {
    let h = start_with(|c| c.server.max_body = bytesize::ByteSize::kib(4)).await;
    let mut body = hello(false);
    body["messages"][0]["content"] = json!("x".repeat(10_000));
    let response = h.post(&body).await;
    assert_eq!(response.status(), 413);
    let err: Value = response.json().await.unwrap();
    assert_eq!(err["error"]["type"], "request_too_large");
}

#[tokio::test]
async fn unknown_route_is_a_json_404() {
    let h = start().await;
    let response = h.http.get(format!("{}/nope", h.url)).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let err: Value = response.json().await.unwrap();
    assert_eq!(err["error"]["status"], "NOT_FOUND");
    assert!(err["error"]["message"].as_str().unwrap().contains("/nope"));
}

#[tokio::test]
async fn health_and_readiness() {
    let h = start().await;
    let health: Value = h
        .http
        .get(format!("{}/healthz", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    let ready: Value = h
        .http
        .get(format!("{}/readyz", h.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["active_accounts"], 2);
}

#[tokio::test]
async fn client_keys_are_enforced_when_set() {
    let h = start_with(|c| c.server.api_keys = vec!["agm-test-key-123456".into()]).await;
    let response = h.post(&hello(false)).await;
    assert_eq!(response.status(), 401);
    let err: Value = response.json().await.unwrap();
    assert_eq!(err["error"]["type"], "authentication_error");
    let wrong = h
        .http
        .post(format!("{}/v1/messages", h.url))
        .header("x-api-key", "agm-wrong")
        .json(&hello(false))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = h
        .http
        .post(format!("{}/v1/messages", h.url))
        .bearer_auth("agm-test-key-123456")
        .json(&hello(false))
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    // Health checks stay open.
    assert_eq!(
        h.http
            .get(format!("{}/healthz", h.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn keys_created_in_the_store_are_enforced() {
    let h = start().await;
    let (_, secret) = h.state.store.create_client_key("laptop").await.unwrap();
    assert_eq!(h.post(&hello(false)).await.status(), 401);
    let ok = h
        .http
        .post(format!("{}/v1/messages", h.url))
        .header("x-api-key", &secret)
        .json(&hello(false))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

/// A server whose store keys, once verified, are trusted for `ttl` without asking the
/// store again.
async fn start_with_key_ttl(ttl: std::time::Duration) -> common::Harness {
    common::start_shaped(
        SimConfig::default(),
        |_| {},
        |state| state.with_client_key_ttl(ttl),
    )
    .await
}

async fn post_with_key(h: &common::Harness, key: &str) -> u16 {
    h.http
        .post(format!("{}/v1/messages", h.url))
        .header("x-api-key", key)
        .json(&hello(false))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn verified_store_keys_are_answered_from_memory_within_the_ttl() {
    let h = start_with_key_ttl(std::time::Duration::from_secs(3600)).await;
    let (key, secret) = h.state.store.create_client_key("laptop").await.unwrap();
    for _ in 0..5 {
        assert_eq!(post_with_key(&h, &secret).await, 200);
    }
    assert_eq!(
        h.state.client_key_store_reads(),
        1,
        "only the first request asks the store"
    );
    // Within the TTL the cached answer stands, even for a key revoked meanwhile:
    // proof that the store was not asked.
    assert!(h.state.store.revoke_client_key(&key.id).await.unwrap());
    assert_eq!(post_with_key(&h, &secret).await, 200);
    assert_eq!(h.state.client_key_store_reads(), 1);
    // Wrong keys are never cached.
    assert_eq!(post_with_key(&h, "agm-wrong-key").await, 401);
    assert_eq!(post_with_key(&h, "agm-wrong-key").await, 401);
    assert_eq!(h.state.client_key_store_reads(), 3);

    // Once the TTL has passed (here: at once) the store is asked again and the revoked
    // key is refused.
    let h = start_with_key_ttl(std::time::Duration::ZERO).await;
    // Another live key keeps keys required once this one is revoked.
    h.state.store.create_client_key("other").await.unwrap();
    let (key, secret) = h.state.store.create_client_key("laptop").await.unwrap();
    assert_eq!(post_with_key(&h, &secret).await, 200);
    assert!(h.state.store.revoke_client_key(&key.id).await.unwrap());
    assert_eq!(post_with_key(&h, &secret).await, 401);
    assert_eq!(h.state.client_key_store_reads(), 2);
}

#[tokio::test]
async fn a_revoked_store_key_is_refused_after_the_default_ttl() {
    let h = start().await;
    // Another live key keeps keys required once this one is revoked.
    h.state.store.create_client_key("other").await.unwrap();
    let (key, secret) = h.state.store.create_client_key("laptop").await.unwrap();
    assert_eq!(post_with_key(&h, &secret).await, 200);
    assert_eq!(post_with_key(&h, &secret).await, 200);
    assert!(h.state.store.revoke_client_key(&key.id).await.unwrap());
    // The cache trusts a verified key for 2 s (the unit tests of `app.rs` pin the
    // boundary); here it only has to flip, well within the guard.
    let guard = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while post_with_key(&h, &secret).await == 200 {
        assert!(
            std::time::Instant::now() < guard,
            "a revoked key still works after 20 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(post_with_key(&h, &secret).await, 401, "and stays refused");
}

#[tokio::test]
async fn open_bind_without_keys_is_refused() {
    let sim = Sim::demo().start().await.unwrap();
    let mut config = Config::default();
    config.google.all_at(&sim.base_url());
    config.server.bind = "0.0.0.0".parse().unwrap();
    config.server.port = 0;
    let store = Store::open_in_memory().await.unwrap();
    let state = AppState::new(config, store).unwrap();
    let err = bind(&state).await.unwrap_err().to_string();
    assert!(err.contains("refusing to listen on 0.0.0.0"), "{err}");
    assert!(err.contains("api_keys"), "{err}");
}

#[tokio::test]
async fn graceful_shutdown_lets_a_stream_finish() {
    let slow = SimConfig {
        stream_chunk_delay: std::time::Duration::from_millis(100),
        ..SimConfig::default()
    };
    // A second server on the same state, whose shutdown the test controls.
    let h = start_sim_with(slow, |_| {}).await;
    let listener = bind(&h.state).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, h.state.clone(), async {
        let _ = stop_rx.await;
    }));
    let response = h
        .http
        .post(format!("{url}/v1/messages"))
        .json(&hello(true))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    stop_tx.send(()).unwrap();
    let events = sse_events(&response.text().await.unwrap());
    assert_eq!(
        events.last().unwrap().0,
        "message_stop",
        "the open stream finished"
    );
    server.await.unwrap().unwrap();
    assert!(
        reqwest::get(format!("{url}/healthz")).await.is_err(),
        "no longer listening"
    );
}

#[tokio::test]
async fn metrics_count_requests_in_prometheus_format() {
    let h = start().await;
    assert_eq!(h.post(&hello(false)).await.status(), 200);
    let bad = json!({"model": "claude-sonnet-4-5", "max_tokens": 1, "messages": []});
    assert_eq!(h.post(&bad).await.status(), 400);
    let response = h
        .http
        .get(format!("{}/metrics", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = response.text().await.unwrap();
    for needle in [
        "agm_requests_total{api=\"anthropic\",route=\"/v1/messages\",status=\"200\"}",
        "agm_requests_total{api=\"anthropic\",route=\"/v1/messages\",status=\"400\"}",
        "agm_request_first_byte_seconds_bucket{api=\"anthropic\",route=\"/v1/messages\",le=\"0.005\"}",
        "agm_active_accounts 2",
        "agm_project_discovery_success_ratio 1",
        "agm_signature_cache_hit_ratio",
    ] {
        assert!(text.contains(needle), "{needle} in:\n{text}");
    }
}

#[tokio::test]
async fn a_huge_tool_result_is_cut_not_refused() {
    let h = start().await;
    let huge = "log line\n".repeat(300_000);
    let body = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "tools": [{"name": "read_log", "input_schema": {"type": "object", "properties": {}}}],
        "messages": [
            {"role": "user", "content": "read the log"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "read_log", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": huge}]},
        ],
    });
    let response = h.post(&body).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let sent = h
        .sim
        .requests()
        .into_iter()
        .find(|r| r.method == SimMethod::GenerateContent)
        .unwrap();
    let output =
        sent.body["request"]["contents"][2]["parts"][0]["functionResponse"]["response"]["output"]
            .as_str()
            .unwrap()
            .to_owned();
    assert!(output.len() < 600 * 1024, "{}", output.len());
    assert!(output.contains("bytes of this tool output were cut here"));
    assert!(output.starts_with("log line") && output.ends_with("log line\n"));
}

/// Round-robin scheduling: consecutive requests of one conversation reach both demo
/// accounts (cache-first would keep them on one).
async fn round_robin() -> common::Harness {
    start_with(|c| c.routing.scheduling = agm_pool::selection::Scheduling::RoundRobin).await
}

/// A stop sequence is enforced by agm: Google never sees it, the text is cut before it,
/// and the answer names it.
#[tokio::test]
async fn stop_sequences_are_enforced_and_named() {
    let h = start().await;
    let mut body = hello(false);
    body["stop_sequences"] = json!(["NEVER-SEEN", "reply to"]);
    let answer: Value = h.post(&body).await.json().await.unwrap();
    assert_eq!(answer["stop_reason"], "stop_sequence");
    assert_eq!(answer["stop_sequence"], "reply to");
    assert_eq!(
        answer["content"],
        json!([{"type": "text", "text": "Simulated claude-sonnet-4-5 "}])
    );
    let sent = h.sim.requests();
    let generate = sent
        .iter()
        .find(|r| r.method == SimMethod::GenerateContent)
        .unwrap();
    assert!(
        generate.body["request"]["generationConfig"]
            .get("stopSequences")
            .is_none(),
        "{}",
        generate.body["request"]["generationConfig"]
    );

    // Streamed: the sim sends the reply in several chunks; the message ends at the
    // match, properly closed, with nothing after message_stop.
    body["stream"] = json!(true);
    let response = h.post(&body).await;
    assert_eq!(response.status(), 200);
    let events = sse_events(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(e, _)| e.as_str()).collect();
    assert_eq!(
        &names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    let text: String = events
        .iter()
        .filter(|(e, _)| e == "content_block_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap())
        .collect();
    assert_eq!(text, "Simulated claude-sonnet-4-5 ");
    let (_, delta) = &events[events.len() - 2];
    assert_eq!(delta["delta"]["stop_reason"], "stop_sequence");
    assert_eq!(delta["delta"]["stop_sequence"], "reply to");
}

fn count_body() -> Value {
    json!({
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "a".repeat(400)}],
    })
}

/// When Google cannot count (a 500 from countTokens), the client gets agm's estimate,
/// marked as such; Google's own count is marked `upstream`.
#[tokio::test]
async fn count_tokens_falls_back_to_an_estimate_when_google_fails() {
    let h = start().await;
    let response = h.post_to("/v1/messages/count_tokens", &count_body()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-agm-token-count"], "upstream");

    h.sim.script(
        Fault::status(
            SimMethod::CountTokens,
            500,
            "INTERNAL",
            "countTokens backend error",
        )
        .always(),
    );
    let response = h.post_to("/v1/messages/count_tokens", &count_body()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-agm-token-count"], "estimate");
    let counted: Value = response.json().await.unwrap();
    // 400 ASCII characters at 4 a token, and 4 for the turn (agm_translate::tokens).
    assert_eq!(counted, json!({"input_tokens": 104}));
    assert!(
        h.sim.count(SimMethod::CountTokens) >= 2,
        "Google was asked first"
    );

    let mut with_tools = count_body();
    with_tools["system"] = json!("a system prompt of some length, counted too");
    with_tools["tools"] = json!([{
        "name": "read_file",
        "description": "Reads a file from the workspace and returns its content",
        "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
    }]);
    let response = h.post_to("/v1/messages/count_tokens", &with_tools).await;
    assert_eq!(response.headers()["x-agm-token-count"], "estimate");
    let more: Value = response.json().await.unwrap();
    assert!(
        more["input_tokens"].as_u64().unwrap() > 104 + 30,
        "the system prompt and the tools count: {more}"
    );
}

/// A request Google refuses is not hidden behind an estimate.
#[tokio::test]
async fn count_tokens_keeps_client_errors() {
    let h = start().await;
    h.sim.script(
        Fault::status(
            SimMethod::CountTokens,
            400,
            "INVALID_ARGUMENT",
            "Invalid JSON payload received.",
        )
        .always(),
    );
    let response = h.post_to("/v1/messages/count_tokens", &count_body()).await;
    assert_eq!(response.status(), 400);
    assert!(response.headers().get("x-agm-token-count").is_none());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn a_client_that_goes_away_cancels_the_upstream_stream() {
    use futures_util::StreamExt;
    let slow = SimConfig {
        stream_chunks: 20,
        stream_chunk_delay: std::time::Duration::from_millis(50),
        ..SimConfig::default()
    };
    let h = start_sim_with(slow, |_| {}).await;
    // Read to the end: nothing is abandoned.
    let whole = h.post(&hello(true)).await.text().await.unwrap();
    assert!(whole.contains("message_stop"));
    assert_eq!(h.sim.abandoned_streams(), 0);

    // Read the first text, then hang up.
    let response = h.post(&hello(true)).await;
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("content_block_delta") {
        let chunk = body.next().await.unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(body);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    while h.sim.abandoned_streams() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the upstream stream was not cancelled"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(h.sim.abandoned_streams(), 1);
}

/// The `usage` of a stream's `message_start` and of its `message_delta`.
fn start_and_delta_usage(events: &[(String, Value)]) -> (Value, Value) {
    let usage = |name: &str| {
        events
            .iter()
            .find(|(e, _)| e == name)
            .map(|(_, d)| d.clone())
            .unwrap_or_else(|| panic!("no {name}"))
    };
    (
        usage("message_start")["message"]["usage"].clone(),
        usage("message_delta")["usage"].clone(),
    )
}

#[tokio::test]
async fn message_start_carries_the_input_tokens_google_reports() {
    let h = start().await;
    // One part: one chunk, which carries Google's counts, as Google's first chunks do.
    h.sim.script(Fault::reply(
        SimMethod::StreamGenerateContent,
        agm_sim::ScriptedReply::text("Short answer.").with_usage(json!({
            "promptTokenCount": 1500, "cachedContentTokenCount": 1024,
            "candidatesTokenCount": 4, "totalTokenCount": 1504
        })),
    ));
    let response = h.post(&hello(true)).await;
    assert_eq!(response.status(), 200);
    let events = sse_events(&response.text().await.unwrap());
    let (start, delta) = start_and_delta_usage(&events);
    assert_eq!(start["input_tokens"], 476, "{start}");
    assert_eq!(start["cache_read_input_tokens"], 1024, "{start}");
    assert_eq!(start["output_tokens"], 0, "{start}");
    assert_eq!(delta["input_tokens"], 476, "{delta}");
    assert_eq!(delta["output_tokens"], 4, "{delta}");
}

#[tokio::test]
async fn message_start_estimates_the_input_until_google_counts_it() {
    let h = start().await;
    // The default reply streams in several chunks; the sim counts with the last one.
    let response = h.post(&hello(true)).await;
    assert_eq!(response.status(), 200);
    let events = sse_events(&response.text().await.unwrap());
    let (start, delta) = start_and_delta_usage(&events);
    let estimated = start["input_tokens"].as_u64().unwrap();
    assert!(estimated > 0, "{start}");
    // The final count is Google's (here the sim's), in message_delta.
    assert!(delta["input_tokens"].as_u64().unwrap() > 0, "{delta}");
}
