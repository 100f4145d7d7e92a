#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Conversations across a real restart of `agm serve` (issue 14, item 4): a Claude
//! Code-style thinking conversation whose second turn reaches a new process replays the
//! first turn's signature, on the same account, with no signature error.

mod common;
#[path = "hostile/harness.rs"]
mod harness;

use agm_sim::{Sim, SimConfig, SimMethod};
use harness::Env;
use serde_json::{Value, json};

const MODEL: &str = "claude-sonnet-4-5-thinking";

fn turn(history: &[Value]) -> Value {
    json!({
        "model": MODEL,
        "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "messages": history,
    })
}

#[tokio::test]
async fn a_thinking_conversation_keeps_its_signature_and_account_across_a_restart() {
    let env = Env::new(Sim::new(SimConfig::default()), &["ann", "bea", "cat"]).await;
    for name in ["ann", "bea", "cat"] {
        env.import(name).await;
    }
    let http = harness::client();
    let first_user = json!({"role": "user", "content": "Think about agm"});

    let server = env.serve(true).await;
    let first: Value = http
        .post(format!("{}/v1/messages", server.url))
        .json(&turn(std::slice::from_ref(&first_user)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let signature = first["content"][0]["signature"]
        .as_str()
        .unwrap()
        .to_owned();
    let generate = |sim: &agm_sim::RunningSim| {
        sim.requests()
            .into_iter()
            .rev()
            .find(|r| r.method == SimMethod::GenerateContent)
            .unwrap()
    };
    let first_account = generate(&env.sim).account.unwrap();
    // As systemd stops it: SIGTERM, a clean exit, the conversations saved.
    let status = server.terminate().await;
    assert!(status.success(), "{status:?}");

    let server = env.serve(true).await;
    env.sim.clear_requests();
    let response = http
        .post(format!("{}/v1/messages", server.url))
        .json(&turn(&[
            first_user,
            json!({"role": "assistant", "content": first["content"]}),
            json!({"role": "user", "content": "And now?"}),
        ]))
        .send()
        .await
        .unwrap();
    assert!(response.headers().get("x-agm-thinking").is_none());
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let sent = generate(&env.sim);
    assert_eq!(
        sent.body["request"]["contents"][1]["parts"][0]["thoughtSignature"],
        signature.as_str(),
        "the signature went up as text: the new process did not know it"
    );
    assert_eq!(sent.account.as_deref(), Some(first_account.as_str()));
    server.stop().await;
}
