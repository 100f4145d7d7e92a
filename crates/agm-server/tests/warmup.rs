#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Smart warmup (issue 14, item 2) against the sim, with the clock passed in: one
//! minimal request per account and group once its quota is full, none again inside the
//! window, none on an account cooling down, none in the quiet hours, and a round stops
//! at the first failure.

mod common;

use std::time::{Duration, Instant};

use agm_google::{ModelQuota, QuotaSnapshot};
use agm_sim::{Fault, SimMethod};
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-12-06 09:00 UTC);

fn snapshot(claude_left: f64, reset: Option<OffsetDateTime>) -> QuotaSnapshot {
    QuotaSnapshot {
        fetched_at: NOW,
        tier_id: None,
        models: vec![
            ModelQuota {
                model: "claude-sonnet-4-5".into(),
                display_name: None,
                max_tokens: None,
                remaining_fraction: Some(claude_left),
                reset_time: reset,
            },
            ModelQuota {
                model: "gemini-3-flash".into(),
                display_name: None,
                max_tokens: None,
                remaining_fraction: Some(0.5),
                reset_time: None,
            },
        ],
        summary_answered: false,
        buckets: Vec::new(),
        deprecated: Default::default(),
    }
}

async fn harness() -> common::Harness {
    let h = common::start_with(|c| {
        c.warmup.enabled = true;
        c.warmup.groups = vec!["claude".into(), "gemini-3-flash".into()];
        // The job's own rounds stay out of the way: the test runs them.
        c.warmup.interval = Duration::from_secs(3600);
    })
    .await;
    for email in ["alice@demo.agm", "bob@demo.agm"] {
        let id = h.account(email).await.id;
        let left = if email == "alice@demo.agm" { 1.0 } else { 0.6 };
        agm_server::state::quota::save(&h.state.shared, &id, &snapshot(left, None))
            .await
            .unwrap();
    }
    h.sim.clear_requests();
    h
}

fn warmups(h: &common::Harness) -> Vec<(String, String, u64)> {
    h.sim
        .requests()
        .into_iter()
        .filter(|r| r.method == SimMethod::GenerateContent)
        .map(|r| {
            (
                r.account.clone().unwrap_or_default(),
                r.body["model"].as_str().unwrap_or_default().to_owned(),
                r.body["request"]["generationConfig"]["maxOutputTokens"]
                    .as_u64()
                    .unwrap_or(0),
            )
        })
        .collect()
}

#[tokio::test]
async fn one_minimal_request_per_window_for_full_quotas_only() {
    let h = harness().await;
    let outcomes = agm_server::ops::warmup::round(&h.state, NOW).await;
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert!(outcomes[0].error.is_none(), "{outcomes:?}");
    // Alice's claude quota is full; bob's is in use, and gemini-3-flash is half used.
    assert_eq!(
        warmups(&h),
        vec![("alice@demo.agm".into(), "claude-sonnet-4-5".into(), 1)]
    );
    // Inside the window (5 h by default, no reset time from Google): nothing more, even
    // though the stored snapshot still says full.
    for minutes in [10, 60, 299] {
        let later = NOW + time::Duration::minutes(minutes);
        assert!(
            agm_server::ops::warmup::round(&h.state, later)
                .await
                .is_empty()
        );
    }
    assert_eq!(warmups(&h).len(), 1);
    // Once it has ended, the idle account is warmed again.
    let after = NOW + time::Duration::hours(5);
    assert_eq!(
        agm_server::ops::warmup::round(&h.state, after).await.len(),
        1
    );
    assert_eq!(warmups(&h).len(), 2);
    // Audited, and visible in the status the CLI prints.
    let audit = h.state.store.list_audit(None, 10).await.unwrap();
    let warmed: Vec<&str> = audit
        .iter()
        .filter(|e| e.event.kind == agm_store::AuditKind::Warmup)
        .map(|e| e.event.subject.as_str())
        .collect();
    // Named as the audit log names every account: by e-mail.
    assert_eq!(warmed, vec!["alice@demo.agm", "alice@demo.agm"]);
    let alice = h.account("alice@demo.agm").await.id;
    let rows = agm_server::ops::warmup::status(
        &h.state.store,
        &h.state.shared,
        &h.state.config.warmup,
        after + time::Duration::minutes(1),
    )
    .await
    .unwrap();
    let row = rows
        .iter()
        .find(|r| r.account == alice && r.group == "claude")
        .unwrap();
    assert_eq!(row.warmed_at, Some(after));
    assert_eq!(row.window_ends, Some(after + time::Duration::hours(5)));
    assert!(!row.due);
}

#[tokio::test]
async fn no_warmup_while_cooling_down_or_in_quiet_hours() {
    let h = harness().await;
    let alice = h.account("alice@demo.agm").await.id;
    h.state.accounts.cooldowns.set(
        &alice,
        "claude-sonnet-4-5",
        Instant::now() + Duration::from_secs(600),
        agm_pool::cooldown::CooldownReason::RateLimited,
    );
    assert!(
        agm_server::ops::warmup::round(&h.state, NOW)
            .await
            .is_empty()
    );
    h.state.accounts.cooldowns.clear_all();

    let quiet = common::start_with(|c| {
        c.warmup.enabled = true;
        c.warmup.interval = Duration::from_secs(3600);
        c.warmup.quiet_hours = "08:00-10:00".to_owned().try_into().unwrap();
    })
    .await;
    let id = quiet.account("alice@demo.agm").await.id;
    agm_server::state::quota::save(&quiet.state.shared, &id, &snapshot(1.0, None))
        .await
        .unwrap();
    assert!(
        agm_server::ops::warmup::round(&quiet.state, NOW)
            .await
            .is_empty()
    );
    assert_eq!(
        agm_server::ops::warmup::round(&quiet.state, datetime!(2026-12-06 10:00 UTC))
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn a_round_stops_at_the_first_failure_and_tries_again_next_round() {
    let h = harness().await;
    // Bob's claude quota is full too now: two warmups due.
    let bob = h.account("bob@demo.agm").await.id;
    agm_server::state::quota::save(&h.state.shared, &bob, &snapshot(1.0, None))
        .await
        .unwrap();
    h.sim.script(Fault::status(
        SimMethod::GenerateContent,
        500,
        "INTERNAL",
        "boom",
    ));
    let outcomes = agm_server::ops::warmup::round(&h.state, NOW).await;
    assert_eq!(
        outcomes.len(),
        1,
        "stopped at the first failure: {outcomes:?}"
    );
    assert!(outcomes[0].error.is_some());
    // Nothing was recorded for the failed one: the next round tries both.
    let next = agm_server::ops::warmup::round(&h.state, NOW + time::Duration::minutes(10)).await;
    assert_eq!(next.len(), 2, "{next:?}");
    assert!(next.iter().all(|o| o.error.is_none()), "{next:?}");
}

#[tokio::test]
async fn the_window_ends_when_google_says_the_quota_resets() {
    let h = harness().await;
    let alice = h.account("alice@demo.agm").await.id;
    let reset = datetime!(2026-12-06 11:30 UTC);
    agm_server::state::quota::save(&h.state.shared, &alice, &snapshot(1.0, Some(reset)))
        .await
        .unwrap();
    assert_eq!(agm_server::ops::warmup::round(&h.state, NOW).await.len(), 1);
    let before = reset - time::Duration::SECOND;
    assert!(
        agm_server::ops::warmup::round(&h.state, before)
            .await
            .is_empty()
    );
    assert_eq!(
        agm_server::ops::warmup::round(&h.state, reset).await.len(),
        1
    );
}
