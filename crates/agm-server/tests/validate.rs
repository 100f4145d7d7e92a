#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The validation gate against the simulated Google, on short durations.

use std::time::Duration;

use agm_google::GoogleClient;
use agm_server::app::google_config;
use agm_server::config::Config;
use agm_server::ops::discovery_gate::{GateAccount, GateSettings, Verdict, run_gate};
use agm_sim::{Fault, RunningSim, Sim, SimMethod};

async fn setup() -> (RunningSim, GoogleClient, Vec<GateAccount>) {
    let sim = Sim::demo().start().await.unwrap();
    let mut config = Config::default();
    config.google.all_at(&sim.base_url());
    let google = GoogleClient::new(google_config(&config)).unwrap();
    let accounts = sim
        .accounts()
        .into_iter()
        .map(|a| GateAccount {
            email: a.email,
            refresh_token: a.refresh_token,
        })
        .collect();
    (sim, google, accounts)
}

fn settings(duration_ms: u64) -> GateSettings {
    GateSettings {
        accounts: 2,
        duration: Duration::from_millis(duration_ms),
        interval: Duration::from_millis(20),
    }
}

#[tokio::test]
async fn scripted_failures_give_the_right_rate_and_verdict() {
    let (sim, google, accounts) = setup().await;
    // 404 is a safe-mode signal: never retried, so each one is exactly one failure.
    sim.script(
        Fault::status(SimMethod::LoadCodeAssist, 404, "NOT_FOUND", "no such thing").times(2),
    );
    let mut progress = Vec::new();
    let report = run_gate(
        &google,
        accounts,
        settings(300),
        std::future::pending(),
        |p| progress.push(*p),
    )
    .await;
    let s = &report.summary;
    assert!(s.attempts >= 10, "{s:?}");
    assert_eq!(s.attempts as usize, report.attempts.len());
    assert_eq!(s.attempts, 2 * report.rounds, "two accounts each round");
    assert_eq!(s.errors_by_class.get("not_found"), Some(&2), "{s:?}");
    assert_eq!(s.successes, s.attempts - 2);
    let expected = (s.attempts - 2) as f64 / s.attempts as f64;
    assert!((s.success_rate - expected).abs() < 1e-9);
    assert_eq!(report.verdict, Verdict::of(expected, s.attempts));
    assert_eq!(sim.count(SimMethod::LoadCodeAssist) as u64, s.attempts);
    assert_eq!(
        sim.count(SimMethod::Token),
        2,
        "one token per account, reused"
    );
    assert!(!report.interrupted);
    assert_eq!(progress.len() as u64, report.rounds);
    assert!(s.p50.is_some() && s.p99 >= s.p50);
}

#[tokio::test]
async fn a_failing_account_is_no_go() {
    let (sim, google, accounts) = setup().await;
    sim.script(
        Fault::status(
            SimMethod::LoadCodeAssist,
            403,
            "PERMISSION_DENIED",
            "denied",
        )
        .for_account("alice@demo.agm")
        .always(),
    );
    let report = run_gate(
        &google,
        accounts,
        settings(100),
        std::future::pending(),
        |_| {},
    )
    .await;
    assert_eq!(report.verdict, Verdict::NoGo);
    assert!(
        (report.summary.success_rate - 0.5).abs() < 1e-9,
        "{:?}",
        report.summary
    );
    let markdown = report.to_markdown();
    assert!(
        markdown.starts_with("# Project-ID validation gate: NO-GO"),
        "{markdown}"
    );
    assert!(markdown.contains("| alice@demo.agm |"));
    assert!(markdown.contains("project_problem"), "{markdown}");
    let html = report.to_html();
    assert!(html.contains("<svg") && html.contains("NO-GO"));
}

#[tokio::test]
async fn stopping_early_gives_a_partial_report() {
    let (_sim, google, accounts) = setup().await;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let stop = async {
        let _ = rx.await;
    };
    let mut tx = Some(tx);
    let report = run_gate(&google, accounts, settings(60_000), stop, |p| {
        if p.round == 2
            && let Some(tx) = tx.take()
        {
            let _ = tx.send(());
        }
    })
    .await;
    assert!(report.interrupted);
    assert!(
        report.rounds >= 2 && report.rounds <= 3,
        "{}",
        report.rounds
    );
    assert_eq!(report.verdict, Verdict::Go);
    assert!(report.summary_lines()[0].contains("stopped early"));
}
