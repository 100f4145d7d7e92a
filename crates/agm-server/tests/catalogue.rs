#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The living model catalogue (issue 11): names resolve by what the pool is offered
//! now, a request goes only to an account entitled to its model, unknown names get a
//! 404 naming the closest models, and Google refusing agm's client version is its own
//! error that blames no account.

mod common;

use std::time::{Duration, Instant};

use agm_google::{ModelQuota, QuotaSnapshot};
use agm_sim::{Fault, SimMethod};
use common::{Harness, start, start_with};
use serde_json::{Value, json};

fn anthropic(model: &str) -> Value {
    json!({"model": model, "max_tokens": 64, "messages": [{"role": "user", "content": "hello"}]})
}

fn gemini() -> Value {
    json!({"contents": [{"role": "user", "parts": [{"text": "hello"}]}]})
}

/// A snapshot offering `models`, retiring `deprecated` (old → new).
fn snapshot(models: &[&str], deprecated: &[(&str, &str)]) -> QuotaSnapshot {
    QuotaSnapshot {
        fetched_at: time::OffsetDateTime::now_utc(),
        tier_id: None,
        models: models
            .iter()
            .map(|m| ModelQuota {
                model: (*m).to_owned(),
                display_name: None,
                remaining_fraction: Some(1.0),
                reset_time: None,
                max_tokens: None,
            })
            .collect(),
        summary_answered: false,
        buckets: Vec::new(),
        deprecated: deprecated
            .iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect(),
    }
}

/// Waits until the catalogue knows every active account (learned after each one's
/// first success).
async fn until_learned(h: &Harness) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let accounts = h.state.accounts.active_accounts().await.unwrap();
        let catalogue = h.state.accounts.catalogue.get();
        if accounts.iter().all(|(id, _)| catalogue.knows(id)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the catalogue never learned the accounts"
        );
        // Each account's first success teaches the catalogue its models.
        h.post(&anthropic("gemini-2.5-flash")).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn names_resolve_by_what_the_pool_is_offered() {
    let h =
        start_with(|c| c.routing.scheduling = agm_pool::selection::Scheduling::RoundRobin).await;
    until_learned(&h).await;
    // Gemini CLI's default and an invented version (issue 11).
    for (asked, served) in [
        ("gemini-3.1-pro-preview", "gemini-3-pro-high"),
        ("gemini-3.8-flash", "gemini-3-flash"),
        ("gemini-3.5-flash-lite", "gemini-3-flash"),
    ] {
        let response = h
            .post_to(
                &format!("/v1beta/models/{asked}:generateContent"),
                &gemini(),
            )
            .await;
        assert_eq!(response.status(), 200, "{asked}");
        assert_eq!(response.headers()["x-agm-model"], served, "{asked}");
    }
    let response = h.post(&anthropic("claude-sonnet-4-6-20260301")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-agm-model"], "claude-sonnet-4-5");

    // Nothing like it in the pool: a 404 in the client's shape naming the closest.
    let response = h.post(&anthropic("text-bison-001")).await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "not_found_error");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("closest it offers"), "{message}");
    assert!(message.contains("gemini-"), "{message}");

    // The listing: offered models with their accounts, aliases with their target.
    let listed = h.get_json("/v1/models").await;
    let data = listed["data"].as_array().unwrap();
    let flash = data.iter().find(|m| m["id"] == "gemini-3-flash").unwrap();
    assert_eq!(flash["agm"]["accounts"].as_array().unwrap().len(), 2);
    let alias = data
        .iter()
        .find(|m| m["id"] == "gemini-3.1-pro-preview")
        .unwrap();
    assert_eq!(alias["agm"]["alias_of"], "gemini-3-pro-high");
    let one = h.get_json("/v1/models/gemini-3.8-flash").await;
    assert_eq!(one["agm"]["alias_of"], "gemini-3-flash");
}

#[tokio::test]
async fn a_request_goes_only_to_an_account_entitled_to_its_model() {
    let h =
        start_with(|c| c.routing.scheduling = agm_pool::selection::Scheduling::RoundRobin).await;
    let accounts = h.state.accounts.active_accounts().await.unwrap();
    assert_eq!(accounts.len(), 2);
    let (with, _) = &accounts[0];
    let (without, _) = &accounts[1];
    let catalogue = &h.state.accounts.catalogue;
    catalogue.learn(with, &snapshot(&["gemini-3-flash", "gemini-2.5-pro"], &[]));
    catalogue.learn(without, &snapshot(&["gemini-3-flash"], &[]));
    let entitled_project = h.account(&accounts[0].1).await.project_id;
    h.sim.clear_requests();
    for _ in 0..6 {
        let response = h
            .post_to("/v1beta/models/gemini-2.5-pro:generateContent", &gemini())
            .await;
        assert_eq!(response.status(), 200);
    }
    let projects: Vec<String> = h
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.method == SimMethod::GenerateContent)
        .map(|r| r.body["project"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(projects.len(), 6);
    let entitled = h
        .account(&accounts[0].1)
        .await
        .project_id
        .or(entitled_project);
    assert!(
        projects
            .iter()
            .all(|p| Some(p.as_str()) == entitled.as_deref()),
        "every call on the entitled account: {projects:?}"
    );
}

#[tokio::test]
async fn a_retired_model_goes_to_its_replacement_and_says_so() {
    let h = start().await;
    for (id, _) in h.state.accounts.active_accounts().await.unwrap() {
        h.state.accounts.catalogue.learn(
            &id,
            &snapshot(
                &["gemini-3-pro-high", "gemini-3-flash"],
                &[("gemini-2.5-pro", "gemini-3-pro-high")],
            ),
        );
    }
    let response = h
        .post_to("/v1beta/models/gemini-2.5-pro:generateContent", &gemini())
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-agm-model"], "gemini-3-pro-high");
    assert_eq!(response.headers()["x-agm-model-retired"], "gemini-2.5-pro");
}

#[tokio::test]
async fn google_refusing_the_client_version_blames_no_account() {
    let h = start_with(|c| {
        c.google.antigravity_version = "1.2.3".into();
        c.routing.scheduling = agm_pool::selection::Scheduling::RoundRobin;
    })
    .await;
    h.sim.script(
        Fault::status(
            SimMethod::GenerateContent,
            400,
            "FAILED_PRECONDITION",
            "This version of Antigravity is no longer supported. Please update to receive the latest features!",
        )
        .times(1),
    );
    let response = h.post(&anthropic("gemini-3-flash")).await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("antigravity_version") && message.contains("1.2.3"),
        "the error names the fix: {message}"
    );
    assert_eq!(
        h.sim.count(SimMethod::GenerateContent),
        1,
        "no other account is tried: each would get the same"
    );
    let ready = h.get_json("/readyz").await;
    assert_eq!(ready["client_version_refused"]["sent"], "antigravity/1.2.3");
    assert!(
        h.get_text("/metrics")
            .await
            .contains("agm_upstream_client_outdated 1")
    );
    // No account was put in a cooldown or a breaker for it: the next request works,
    // and the refusal is cleared.
    let response = h.post(&anthropic("gemini-3-flash")).await;
    assert_eq!(response.status(), 200);
    assert!(h.get_json("/readyz").await["client_version_refused"].is_null());
}

/// Google's real form of the refusal: a 200 whose only reply is the refusal text
/// (agm-sim's `GateForm::Answer`). It must not reach the client as the model's answer.
#[tokio::test]
async fn a_version_refusal_sent_as_an_answer_is_caught() {
    let h = start_with(|c| c.google.antigravity_version = "1.2.3".into()).await;
    h.sim.require_client_version("antigravity", "99.0.0");
    let response = h.post(&anthropic("gemini-3-flash")).await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("antigravity_version"), "{message}");
    assert_eq!(
        h.sim.count(SimMethod::GenerateContent),
        1,
        "no other account tried"
    );
    let streamed = h
        .post(
            &json!({"model": "gemini-3-flash", "max_tokens": 64, "stream": true,
                      "messages": [{"role": "user", "content": "hello"}]}),
        )
        .await;
    assert_eq!(streamed.status(), 502, "a stream is refused the same way");
    h.sim.clear_client_versions();
    assert_eq!(h.post(&anthropic("gemini-3-flash")).await.status(), 200);
    assert!(h.get_json("/readyz").await["client_version_refused"].is_null());
}

/// A model Google retires while agm runs: the next request for it gets Google's 404,
/// agm fetches that account's models again, and the request is answered by the
/// replacement, with no restart and no config edit.
#[tokio::test]
async fn a_model_retired_while_agm_runs_goes_to_its_replacement() {
    let h =
        start_with(|c| c.routing.scheduling = agm_pool::selection::Scheduling::RoundRobin).await;
    until_learned(&h).await;
    h.sim
        .retire_model("gemini-2.5-flash", Some("gemini-3-flash"));
    for _ in 0..3 {
        let response = h.post(&anthropic("gemini-2.5-flash")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-agm-model"], "gemini-3-flash");
        assert_eq!(
            response.headers()["x-agm-model-retired"],
            "gemini-2.5-flash"
        );
    }
}

/// A model Google adds while agm runs is served, and invented names of its family
/// resolve to it, once the background refresh has seen it.
#[tokio::test]
async fn a_model_added_while_agm_runs_is_served() {
    let h = start_with(|c| {
        c.routing.quota_refresh = Duration::from_millis(300);
        c.routing.scheduling = agm_pool::selection::Scheduling::RoundRobin;
    })
    .await;
    until_learned(&h).await;
    h.sim.add_model(agm_sim::SimModel::new(
        "gemini-3.5-flash",
        "Gemini 3.5 Flash",
        1_048_576,
        65_536,
    ));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !h.state.accounts.catalogue.get().offers("gemini-3.5-flash") {
        assert!(
            Instant::now() < deadline,
            "the refresh never saw the new model"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response = h
        .post_to("/v1beta/models/gemini-3.8-flash:generateContent", &gemini())
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-agm-model"], "gemini-3.5-flash");
}
