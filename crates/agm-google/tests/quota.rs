#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Quota against the simulated Google: per-model fractions and reset times, the
//! 0-fraction Google leaves out, deprecated ids, and the summary present and absent.

use std::collections::BTreeMap;
use std::time::Duration;

use agm_google::{GoogleClient, GoogleConfig, QuotaSnapshot};
use agm_sim::{Fault, RunningSim, Sim, SimMethod};
use agm_wire::cloudcode::{AvailableModels, ModelInfo, QuotaInfo};
use time::OffsetDateTime;

const ALICE: &str = "alice@demo.agm";
const PROJECT: &str = "demo-project-alice";

fn config(base: &str) -> GoogleConfig {
    GoogleConfig {
        code_assist_endpoints: vec![base.to_owned()],
        oauth_auth_url: format!("{base}/o/oauth2/v2/auth"),
        oauth_token_url: format!("{base}/token"),
        userinfo_url: format!("{base}/oauth2/v2/userinfo"),
        gemini_api_base: base.to_owned(),
        oauth_client_id: "client".into(),
        oauth_client_secret: "secret".into(),
        user_agent: GoogleConfig::antigravity_user_agent("1.15.8"),
        setup_user_agent: "setup-ua".into(),
        connect_timeout: Duration::from_secs(2),
        setup_timeout: Duration::from_secs(5),
    }
}

async fn setup() -> (RunningSim, GoogleClient, String) {
    let sim = Sim::demo().start().await.unwrap();
    let google = GoogleClient::new(config(&sim.base_url())).unwrap();
    let token = sim.issue_access_token(ALICE).unwrap();
    (sim, google, token)
}

fn now() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap()
}

#[tokio::test]
async fn snapshot_of_the_sims_quota() {
    let (sim, google, token) = setup().await;
    sim.set_quota(ALICE, "gemini-3-pro-high", 0.25);
    sim.set_quota(ALICE, "claude-sonnet-4-5", 0.0);
    let fetched_at = now();

    let models = google
        .fetch_available_models(&token, PROJECT)
        .await
        .unwrap();
    let summary = google
        .retrieve_user_quota_summary(&token, PROJECT)
        .await
        .unwrap();
    assert!(summary.is_some(), "the sim answers the summary");
    let snapshot = QuotaSnapshot::from_answers(&models, summary.as_ref(), fetched_at)
        .with_tier(Some("g1-pro-tier".into()));

    let ids: Vec<&str> = snapshot.models.iter().map(|m| m.model.as_str()).collect();
    assert_eq!(
        ids,
        [
            "claude-opus-4-5-thinking",
            "claude-sonnet-4-5",
            "claude-sonnet-4-5-thinking",
            "gemini-2.5-flash",
            "gemini-2.5-pro",
            "gemini-3-flash",
            "gemini-3-pro-high",
            "gemini-3-pro-low",
            "gpt-oss-120b-medium",
        ]
    );
    let pro = snapshot.model("gemini-3-pro-high").unwrap();
    assert_eq!(pro.remaining_fraction, Some(0.25));
    assert_eq!(pro.display_name.as_deref(), Some("Gemini 3 Pro (High)"));
    assert_eq!(
        snapshot.model("gemini-3-flash").unwrap().remaining_fraction,
        Some(0.8)
    );
    // Google (and the sim) leave a 0 fraction out: still 0, not unknown.
    let sonnet = snapshot.model("claude-sonnet-4-5").unwrap();
    assert_eq!(sonnet.remaining_fraction, Some(0.0));
    let exhausted: Vec<&str> = snapshot.exhausted().map(|m| m.model.as_str()).collect();
    assert_eq!(exhausted, ["claude-sonnet-4-5"]);

    // The sim resets model quota 5 hours from now.
    let reset = pro.reset_time.unwrap();
    let ahead = reset - fetched_at;
    assert!(
        ahead > time::Duration::hours(4)
            && ahead <= time::Duration::hours(5) + time::Duration::minutes(1),
        "reset {reset} is not ~5 h after {fetched_at}"
    );

    assert_eq!(
        snapshot.deprecated,
        BTreeMap::from([
            (
                "claude-sonnet-4-5-20250929".to_owned(),
                "claude-sonnet-4-5".to_owned()
            ),
            (
                "gemini-3-flash-preview".to_owned(),
                "gemini-3-flash".to_owned()
            ),
            (
                "gemini-3-pro-preview".to_owned(),
                "gemini-3-pro-high".to_owned()
            ),
        ])
    );

    assert!(snapshot.summary_answered);
    let windows: Vec<(&str, Option<&str>)> = snapshot
        .buckets
        .iter()
        .map(|b| (b.bucket_id.as_str(), b.window.as_deref()))
        .collect();
    assert_eq!(
        windows,
        [("five-hour", Some("5h")), ("weekly", Some("weekly"))]
    );
    // The summary reports the lowest fraction, sonnet's 0, which it leaves out.
    assert!(snapshot.buckets.iter().all(|b| b.remaining_fraction == 0.0));
    assert!(
        snapshot
            .buckets
            .iter()
            .all(|b| b.group_id.as_deref() == Some("default"))
    );
    let weekly = snapshot.buckets[1].reset_time.unwrap();
    assert!(weekly - fetched_at > time::Duration::days(6));
    assert_eq!(snapshot.tier_id.as_deref(), Some("g1-pro-tier"));

    // What was sent: the project, with the setup User-Agent.
    let sent = sim
        .requests()
        .into_iter()
        .find(|r| r.method == SimMethod::FetchAvailableModels)
        .unwrap();
    assert_eq!(sent.body, serde_json::json!({"project": PROJECT}));
    assert_eq!(sent.header("user-agent"), Some("setup-ua"));
}

#[tokio::test]
async fn snapshot_round_trips_as_json() {
    let (_sim, google, token) = setup().await;
    let snapshot = google.quota_snapshot(&token, PROJECT, now()).await.unwrap();
    let json = serde_json::to_value(&snapshot).unwrap();
    assert!(
        json["fetched_at"].as_str().unwrap().ends_with('Z'),
        "{json}"
    );
    assert_eq!(json["models"][0]["model"], "claude-opus-4-5-thinking");
    assert!(json["models"][0]["reset_time"].is_string(), "{json}");
    assert_eq!(json["summary_answered"], true);
    let back: QuotaSnapshot = serde_json::from_value(json).unwrap();
    assert_eq!(back, snapshot);
}

#[tokio::test]
async fn a_summary_not_answered_is_none() {
    let (sim, google, token) = setup().await;
    for (code, status) in [
        (404, "NOT_FOUND"),
        (403, "PERMISSION_DENIED"),
        (501, "UNIMPLEMENTED"),
    ] {
        sim.script(Fault::status(
            SimMethod::RetrieveUserQuotaSummary,
            code,
            status,
            "not here",
        ));
        let summary = google
            .retrieve_user_quota_summary(&token, PROJECT)
            .await
            .unwrap();
        assert_eq!(summary, None, "{code} means not answered");
    }

    sim.script(Fault::status(
        SimMethod::RetrieveUserQuotaSummary,
        404,
        "NOT_FOUND",
        "not here",
    ));
    let snapshot = google.quota_snapshot(&token, PROJECT, now()).await.unwrap();
    assert!(!snapshot.summary_answered);
    assert!(snapshot.buckets.is_empty());
    assert_eq!(
        snapshot.model("gemini-3-flash").unwrap().remaining_fraction,
        Some(0.8),
        "the per-model quota is kept"
    );
}

#[tokio::test]
async fn a_failing_summary_is_an_error_but_keeps_the_models_in_a_snapshot() {
    let (sim, google, token) = setup().await;
    sim.script(
        Fault::status(SimMethod::RetrieveUserQuotaSummary, 500, "INTERNAL", "oops").times(2),
    );
    let err = google
        .retrieve_user_quota_summary(&token, PROJECT)
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(500));
    let snapshot = google.quota_snapshot(&token, PROJECT, now()).await.unwrap();
    assert!(!snapshot.summary_answered);
    assert_eq!(snapshot.models.len(), 9);
}

#[tokio::test]
async fn models_of_another_project_are_refused() {
    let (_sim, google, token) = setup().await;
    let err = google
        .fetch_available_models(&token, "someone-else")
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(403));
}

#[test]
fn a_model_without_quota_info_has_no_fraction() {
    let mut models = AvailableModels::default();
    models.models.insert(
        "no-quota".into(),
        ModelInfo {
            display_name: Some("No quota".into()),
            ..ModelInfo::default()
        },
    );
    models.models.insert(
        "bad-reset".into(),
        ModelInfo {
            quota_info: Some(QuotaInfo {
                remaining_fraction: Some(0.5),
                reset_time: Some("tomorrow".into()),
            }),
            ..ModelInfo::default()
        },
    );
    let snapshot = QuotaSnapshot::from_answers(&models, None, now());
    let none = snapshot.model("no-quota").unwrap();
    assert_eq!(none.remaining_fraction, None);
    assert_eq!(none.reset_time, None);
    let bad = snapshot.model("bad-reset").unwrap();
    assert_eq!(bad.remaining_fraction, Some(0.5));
    assert_eq!(bad.reset_time, None, "an unreadable reset time is unknown");
    assert_eq!(snapshot.exhausted().count(), 0);
    assert!(snapshot.deprecated.is_empty());
}
