#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Accounts as the server uses them: project discovery with onboarding, accounts that
//! need their user, and re-discovery after a project 403.

mod common;

use agm_sim::{Fault, SimMethod};
use agm_store::AccountState;
use serde_json::{Value, json};

/// Round-robin, so that consecutive requests of one conversation reach both demo
/// accounts; onboarding polled every millisecond.
async fn start() -> common::Harness {
    common::start_with(|c| {
        c.routing.scheduling = agm_pool::selection::Scheduling::RoundRobin;
        c.project_id.poll_interval = std::time::Duration::from_millis(1);
    })
    .await
}

fn hello() -> Value {
    json!({
        "model": "gemini-3-flash",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
    })
}

#[tokio::test]
async fn an_account_without_a_project_is_onboarded() {
    let h = start().await;
    h.sim.set_project("bob@demo.agm", None);
    h.sim.set_onboarding_polls(2);
    for _ in 0..2 {
        assert_eq!(h.post(&hello()).await.status(), 200);
    }
    assert_eq!(h.sim.count(SimMethod::OnboardUser), 1);
    assert_eq!(h.sim.count(SimMethod::GetOperation), 2);
    let bob = h.account("bob@demo.agm").await;
    let project = bob.project_id.expect("the onboarded project is saved");
    assert_eq!(
        h.sim.account("bob@demo.agm").unwrap().project.as_deref(),
        Some(project.as_str())
    );
    let stats = h.state.accounts.discovery_stats.summary();
    assert!(
        stats.attempts >= 2 && stats.success_rate > 0.99,
        "{stats:?}"
    );
}

#[tokio::test]
async fn an_account_needing_verification_is_blocked_with_the_link() {
    let h = start().await;
    h.sim.require_validation(
        "alice@demo.agm",
        Some("https://accounts.google.com/verify/alice"),
    );
    for _ in 0..3 {
        let body: Value = h.post(&hello()).await.json().await.unwrap();
        assert_eq!(body["type"], "message", "bob answers: {body}");
    }
    let alice = h.account("alice@demo.agm").await;
    match alice.state {
        AccountState::Blocked { url, reason } => {
            assert_eq!(
                url.as_deref(),
                Some("https://accounts.google.com/verify/alice"),
                "{reason}"
            );
        }
        other => panic!("alice should be blocked, is {other:?}"),
    }
    assert_eq!(
        h.sim
            .requests()
            .iter()
            .filter(|r| r.method == SimMethod::LoadCodeAssist
                && r.account.as_deref() == Some("alice@demo.agm"))
            .count(),
        1,
        "no retry loop on an account that needs its user"
    );
}

#[tokio::test]
async fn a_project_403_rediscovers_the_project() {
    let h = start().await;
    assert_eq!(h.post(&hello()).await.status(), 200);
    assert_eq!(h.post(&hello()).await.status(), 200);
    let discoveries = h.sim.count(SimMethod::LoadCodeAssist);
    assert_eq!(discoveries, 2);
    h.sim.script(
        Fault::status(
            SimMethod::GenerateContent,
            403,
            "PERMISSION_DENIED",
            "Permission denied on resource project x",
        )
        .times(1),
    );
    assert_eq!(
        h.post(&hello()).await.status(),
        200,
        "the other account served it"
    );
    assert_eq!(h.post(&hello()).await.status(), 200);
    assert_eq!(h.post(&hello()).await.status(), 200);
    assert_eq!(
        h.sim.count(SimMethod::LoadCodeAssist),
        discoveries + 1,
        "one re-discovery"
    );
}

#[tokio::test]
async fn a_403_blaming_the_user_project_header_drops_it_for_that_account() {
    let h = start().await;
    h.sim.script(
        Fault::status(
            SimMethod::GenerateContent,
            403,
            "PERMISSION_DENIED",
            "Caller does not have permission to use project demo-project-bob; check X-Goog-User-Project",
        )
        .for_account("bob@demo.agm")
        .times(1),
    );
    for _ in 0..4 {
        assert_eq!(h.post(&hello()).await.status(), 200);
    }
    let bob: Vec<_> = h
        .sim
        .requests()
        .into_iter()
        .filter(|r| {
            r.method == SimMethod::GenerateContent && r.account.as_deref() == Some("bob@demo.agm")
        })
        .collect();
    assert!(bob.len() >= 3, "{}", bob.len());
    assert!(
        bob[0].header("x-goog-user-project").is_some(),
        "sent at first"
    );
    assert!(
        bob[1..]
            .iter()
            .all(|r| r.header("x-goog-user-project").is_none()),
        "then never again"
    );
    let alice_sent_it = h
        .sim
        .requests()
        .iter()
        .filter(|r| {
            r.method == SimMethod::GenerateContent && r.account.as_deref() == Some("alice@demo.agm")
        })
        .all(|r| r.header("x-goog-user-project").is_some());
    assert!(alice_sent_it, "other accounts keep the header");
    assert_eq!(
        h.sim.count(SimMethod::LoadCodeAssist),
        2,
        "the project was not thrown away"
    );
}
