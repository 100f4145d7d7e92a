#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The router executing `agm_pool::attempts::Plan` (issue 12): what the fault-mix soak
//! found, each reproduced once against the sim. A single transient fault, a token
//! Google refuses during discovery or after a timeout, and one faulted official-API
//! call must not end a request that has budget, time and accounts left.

mod common;

use agm_sim::{Fault, SimMethod};
use common::start_with;
use serde_json::{Value, json};

fn ask(model: &str) -> Value {
    json!({"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]})
}

fn unauthorized(method: SimMethod) -> Fault {
    Fault::status(
        method,
        401,
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials.",
    )
}

#[tokio::test]
async fn a_token_refused_during_discovery_is_refreshed_not_counted_against_the_project() {
    let h = start_with(|c| {
        c.safe_mode.auto_activate_threshold = 1;
        c.routing.scheduling = agm_pool::selection::Scheduling::RoundRobin;
    })
    .await;
    // Every account's first discovery sees its token refused (it expired early).
    h.sim
        .script(unauthorized(SimMethod::LoadCodeAssist).times(2));
    let response = h.post(&ask("gemini-3-flash")).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert!(
        !h.state.safe_mode.is_active(),
        "a 401 is not a project-ID failure: safe mode must stay off"
    );
    assert_eq!(h.state.safe_mode.consecutive_failures(), 0);
    assert!(
        h.sim.count(SimMethod::Token) >= 2,
        "the token was refreshed after the refusal"
    );
}

#[tokio::test]
async fn a_401_after_a_stale_token_is_retried_with_a_fresh_one_on_the_same_account() {
    let h =
        start_with(|c| c.routing.scheduling = agm_pool::selection::Scheduling::RoundRobin).await;
    // Both accounts hold a token (and their model lists are learned) first.
    for _ in 0..2 {
        assert_eq!(h.post(&ask("gemini-3-flash")).await.status(), 200);
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    h.sim.clear_requests();
    h.sim
        .script(unauthorized(SimMethod::GenerateContent).times(1));
    let response = h.post(&ask("gemini-3-flash")).await;
    assert_eq!(response.status(), 200);
    let accounts = h.state.store.list_accounts().await.unwrap();
    assert!(
        accounts
            .iter()
            .all(|a| matches!(a.state, agm_store::AccountState::Active)),
        "nobody is signed out for one 401"
    );
    assert_eq!(h.sim.count(SimMethod::Token), 1, "one fresh token");
}

#[tokio::test]
async fn one_server_error_moves_to_another_account_at_once() {
    let h =
        start_with(|c| c.routing.scheduling = agm_pool::selection::Scheduling::RoundRobin).await;
    h.sim.script(
        Fault::status(SimMethod::GenerateContent, 503, "UNAVAILABLE", "try again").times(1),
    );
    let response = h.post(&ask("gemini-3-flash")).await;
    assert_eq!(response.status(), 200);
    let projects: Vec<String> = h
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method == SimMethod::GenerateContent)
        .map(|r| r.body["project"].to_string())
        .collect();
    assert_eq!(projects.len(), 2);
    assert_ne!(
        projects[0], projects[1],
        "the retry went to the other account"
    );
}

#[tokio::test]
async fn in_safe_mode_one_faulted_official_call_is_retried() {
    let h = start_with(|c| {
        c.routing.enable_antigravity = false;
        c.safe_mode.gemini_api_keys = vec!["demo-gemini-key".into()];
    })
    .await;
    h.sim.script(
        Fault::status(
            SimMethod::GeminiGenerateContent,
            500,
            "INTERNAL",
            "Internal error encountered.",
        )
        .times(1),
    );
    let response = h.post(&ask("gemini-3-flash")).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(response.headers()["x-agm-upstream"], "gemini-api");
    assert_eq!(h.sim.count(SimMethod::GeminiGenerateContent), 2);
}
