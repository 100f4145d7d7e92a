#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Rate limits remembered across requests: cooled-down accounts are skipped, a short
//! limit is waited out once, and when every account is limited the client hears so at
//! once, with the soonest reset.

mod common;

use agm_sim::{Fault, SimMethod};
use common::start;
use serde_json::{Value, json};

fn hello() -> Value {
    json!({"model": "gemini-3-flash", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]})
}

fn calls_by(h: &common::Harness, email: &str) -> usize {
    h.sim
        .requests()
        .iter()
        .filter(|r| r.method == SimMethod::GenerateContent && r.account.as_deref() == Some(email))
        .count()
}

#[tokio::test]
async fn a_cooled_down_account_is_skipped_by_later_requests() {
    // Round-robin: alice is asked first (cache-first would stick to whichever came first).
    let h =
        common::start_with(|c| c.routing.scheduling = agm_pool::selection::Scheduling::RoundRobin)
            .await;
    h.sim.script(
        Fault::rate_limited(SimMethod::GenerateContent, "30s")
            .for_account("alice@demo.agm")
            .times(1),
    );
    for _ in 0..4 {
        assert_eq!(h.post(&hello()).await.status(), 200);
    }
    assert_eq!(
        calls_by(&h, "alice@demo.agm"),
        1,
        "alice is asked once, then cools down"
    );
    assert_eq!(calls_by(&h, "bob@demo.agm"), 4);
    let cooling = h.state.accounts.cooldowns.list(std::time::Instant::now());
    assert_eq!(cooling.len(), 1);
    assert_eq!(cooling[0].model, "gemini-3-flash");
}

#[tokio::test]
async fn every_account_limited_answers_at_once_with_the_soonest_reset() {
    let h = start().await;
    h.sim
        .script(Fault::rate_limited(SimMethod::GenerateContent, "42s").always());
    assert_eq!(h.post(&hello()).await.status(), 429);
    assert_eq!(h.sim.count(SimMethod::GenerateContent), 2);
    let again = h.post(&hello()).await;
    assert_eq!(again.status(), 429);
    let retry_after: u64 = again.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((40..=42).contains(&retry_after), "{retry_after}");
    assert_eq!(
        h.sim.count(SimMethod::GenerateContent),
        2,
        "no upstream call while all cool down"
    );
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error");
    // Another model is not affected.
    let mut other = hello();
    other["model"] = json!("gemini-2.5-flash");
    h.sim.clear_faults();
    assert_eq!(h.post(&other).await.status(), 200);
}

#[tokio::test]
async fn a_short_limit_is_waited_out_on_the_same_account() {
    let h = start().await;
    h.sim
        .script(Fault::rate_limited(SimMethod::GenerateContent, "200ms").times(1));
    let started = std::time::Instant::now();
    assert_eq!(h.post(&hello()).await.status(), 200);
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(200),
        "it waited"
    );
    assert_eq!(h.sim.count(SimMethod::GenerateContent), 2);
    assert!(
        h.state
            .accounts
            .cooldowns
            .list(std::time::Instant::now())
            .is_empty(),
        "no cooldown left behind"
    );
}

#[tokio::test]
async fn capacity_errors_back_off_without_blaming_the_account() {
    let h = start().await;
    h.sim
        .script(Fault::capacity_exhausted(SimMethod::GenerateContent).times(1));
    assert_eq!(h.post(&hello()).await.status(), 200);
    assert_eq!(h.sim.count(SimMethod::GenerateContent), 2);
    assert!(
        h.state
            .accounts
            .cooldowns
            .list(std::time::Instant::now())
            .is_empty()
    );
}
