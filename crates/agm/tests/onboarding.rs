#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Onboarding at import (issue 14, item 7): `agm accounts import` finishes the Cloud
//! Code set-up while the user is there (loadCodeAssist, then onboardUser and its
//! polling), reports a verification request then, and only warns when Google cannot be
//! reached: the gateway's lazy discovery stays the fallback.

mod common;

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use agm_sim::{Fault, RunningSim, Sim, SimAccount, SimMethod};
use serde_json::{Value, json};
use tokio::process::Command;

struct User {
    home: tempfile::TempDir,
    data_dir: PathBuf,
    sim: RunningSim,
}

impl User {
    /// The demo sim plus carol, a free-tier account with no Cloud Code project yet.
    async fn new() -> User {
        let sim = Sim::demo().start().await.unwrap();
        sim.add_account(SimAccount::new(
            "carol@demo.agm",
            "demo-refresh-carol",
            None,
            "free-tier",
        ));
        sim.set_project("carol@demo.agm", None);
        let home = tempfile::tempdir().unwrap();
        let data_dir = home.path().join("data");
        User {
            home,
            data_dir,
            sim,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let bin = std::path::Path::new(env!("CARGO_BIN_EXE_agm"));
        let mut cmd = common::isolated(bin, self.home.path(), &self.data_dir);
        common::at_sim(&mut cmd, &self.sim.base_url());
        cmd.args(args)
            .env("AGM_UPDATES__CHECK", "false")
            .env("AGM_PROJECT_ID__POLL_INTERVAL", "50ms");
        cmd
    }

    async fn agm(&self, args: &[&str]) -> Output {
        self.command(args).output().await.unwrap()
    }

    async fn import(&self, token: &str) -> Output {
        self.agm(&["accounts", "import", "--refresh-token", token])
            .await
    }

    async fn account(&self, email: &str) -> Value {
        let out = self.agm(&["accounts", "list", "--json"]).await;
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str::<Value>(&stdout(&out))
            .unwrap()
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["email"] == email)
            .cloned()
            .unwrap_or_else(|| panic!("{email} is not listed"))
    }
}

use common::{stderr, stdout};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn an_account_without_a_project_is_onboarded_at_import() {
    let user = User::new().await;
    user.sim.set_onboarding_polls(2);
    let out = user.import("demo-refresh-carol").await;
    assert!(out.status.success(), "{}", stderr(&out));
    let line = stdout(&out);
    assert!(
        line.starts_with("imported carol@demo.agm: onboarded, project "),
        "{line}"
    );
    assert!(line.trim_end().ends_with(" on tier free-tier"), "{line}");
    assert!(!line.contains("no Cloud Code project yet"), "{line}");
    assert_eq!(user.sim.count(SimMethod::OnboardUser), 1);
    assert_eq!(user.sim.count(SimMethod::GetOperation), 2);
    let carol = user.account("carol@demo.agm").await;
    let project = carol["project_id"].as_str().expect("a project").to_owned();
    assert!(line.contains(&project), "{line}");
    assert_eq!(carol["tier"], "free-tier");
    assert_eq!(carol["state"], "active");

    // The gateway's first request needs no discovery: the project is stored.
    let discovery_before = (
        user.sim.count(SimMethod::LoadCodeAssist),
        user.sim.count(SimMethod::OnboardUser),
    );
    let port = free_port();
    let mut server = user
        .command(&["serve", "--port", &port.to_string()])
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..200 {
        if http
            .get(format!("{url}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "agm serve answered /healthz");
    let answer = http
        .post(format!("{url}/v1/messages"))
        .header("x-api-key", "any")
        .header("anthropic-version", "2023-06-01")
        .json(&json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 32,
            "messages": [{"role": "user", "content": "hi"}],
        }))
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let body = answer.text().await.unwrap();
    assert!(status.is_success(), "{status}: {body}");
    assert_eq!(
        (
            user.sim.count(SimMethod::LoadCodeAssist),
            user.sim.count(SimMethod::OnboardUser),
        ),
        discovery_before,
        "no discovery on the first request"
    );
    let generated: Vec<_> = user
        .sim
        .requests()
        .into_iter()
        .filter(|r| {
            matches!(
                r.method,
                SimMethod::GenerateContent | SimMethod::StreamGenerateContent
            )
        })
        .collect();
    assert_eq!(generated.len(), 1);
    assert!(
        generated[0].body.to_string().contains(&project),
        "the stored project is used"
    );
    server.start_kill().unwrap();
    let _ = server.wait().await;
}

#[tokio::test]
async fn a_verification_request_is_reported_and_the_account_saved_blocked() {
    let user = User::new().await;
    let link = "https://accounts.google.com/signin/continue?verify=carol";
    user.sim.require_validation("carol@demo.agm", Some(link));
    let out = user.import("demo-refresh-carol").await;
    assert!(out.status.success(), "{}", stderr(&out));
    let line = stdout(&out);
    assert!(
        line.starts_with("imported carol@demo.agm; blocked: "),
        "{line}"
    );
    assert!(line.contains("verify"), "{line}");
    assert_eq!(line.matches(link).count(), 1, "the link once: {line}");
    assert_eq!(user.sim.count(SimMethod::OnboardUser), 0);
    let carol = user.account("carol@demo.agm").await;
    assert_eq!(carol["state"], "blocked");
    assert_eq!(carol["url"], link, "{carol}");

    // Verified, imported again: the set-up finishes and the account is active.
    user.sim.require_validation("carol@demo.agm", None);
    user.sim.set_onboarding_polls(0);
    let again = user.import("demo-refresh-carol").await;
    assert!(again.status.success(), "{}", stderr(&again));
    let line = stdout(&again);
    assert!(
        line.starts_with("updated carol@demo.agm: onboarded, project "),
        "{line}"
    );
    assert_eq!(user.account("carol@demo.agm").await["state"], "active");
}

#[tokio::test]
async fn discovery_failing_still_imports_with_a_warning() {
    let user = User::new().await;
    user.sim.script(
        Fault::status(
            SimMethod::LoadCodeAssist,
            503,
            "UNAVAILABLE",
            "The service is unavailable.",
        )
        .always(),
    );
    let out = user.import("demo-refresh-carol").await;
    assert!(out.status.success(), "{}", stderr(&out));
    let line = stdout(&out);
    assert!(line.starts_with("imported carol@demo.agm"), "{line}");
    assert!(line.contains("no Cloud Code project yet"), "{line}");
    let warning = stderr(&out);
    assert!(warning.contains("agm: warning: "), "{warning}");
    assert!(
        warning.contains("could not set up the Cloud Code project of carol@demo.agm"),
        "{warning}"
    );
    assert!(warning.contains("first used"), "{warning}");
    let carol = user.account("carol@demo.agm").await;
    assert_eq!(carol["state"], "active");
    assert_eq!(carol["project_id"], Value::Null);
    assert_eq!(user.sim.count(SimMethod::OnboardUser), 0);
}
