#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The reliability stack wired into the server: safe mode and the official Gemini API,
//! the feature flag, circuit breakers per endpoint, sticky sessions, quota protection,
//! retries on server errors, and what the metrics and the audit log show of it.

mod common;

use std::time::{Duration, Instant};

use agm_server::routing::safe_mode::{Command, Origin, apply, config_of};
use agm_sim::{Fault, SimMethod};
use agm_store::AuditKind;
use common::{sse_events, start_with};
use serde_json::{Value, json};

const KEY: &str = "demo-gemini-key";

fn ask(model: &str, text: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "max_tokens": 64,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
    })
}

fn refuse_discovery() -> Fault {
    Fault::status(
        SimMethod::LoadCodeAssist,
        403,
        "PERMISSION_DENIED",
        "The caller does not have permission",
    )
    .always()
}

async fn metrics(h: &common::Harness) -> String {
    h.get_text("/metrics").await
}

/// The value of the first sample of `name` (with any labels) in a Prometheus text.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn project_id_failures_turn_safe_mode_on_and_the_official_api_answers() {
    let h = start_with(|c| {
        c.safe_mode.auto_activate_threshold = 2;
        c.safe_mode.gemini_api_keys = vec![KEY.into()];
    })
    .await;
    h.sim.script(refuse_discovery());

    // Both accounts fail discovery: two failures in a row, safe mode on, and this very
    // request is answered by the official API.
    let response = h.post(&ask("claude-sonnet-4-5", "hello", false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-agm-upstream"], "gemini-api");
    assert_eq!(
        response.headers()["x-agm-substitute-model"],
        "gemini-2.5-pro"
    );
    assert_eq!(response.headers()["x-agm-safe-mode"], "on");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["content"][0]["text"],
        "Simulated gemini-2.5-pro reply to: hello"
    );
    assert_eq!(h.sim.count(SimMethod::GeminiGenerateContent), 1);
    assert_eq!(h.sim.count(SimMethod::GenerateContent), 0);

    // Streams too; a Gemini model keeps its family (no substitute header).
    let response = h.post(&ask("gemini-3-flash", "stream me", true)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-agm-model"], "gemini-3-flash-preview");
    assert!(response.headers().get("x-agm-substitute-model").is_none());
    let events = sse_events(&response.text().await.unwrap());
    let text: String = events
        .iter()
        .filter(|(e, _)| e == "content_block_delta")
        .map(|(_, d)| d["delta"]["text"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(text, "Simulated gemini-3-flash-preview reply to: stream me");

    let ready = h.get_json("/readyz").await;
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["upstream"], "gemini-api");
    assert_eq!(ready["safe_mode"]["active"], true);
    assert!(
        ready["safe_mode"]["reason"]
            .as_str()
            .unwrap()
            .contains("project-id failures in a row"),
        "{ready}"
    );

    // The metrics recorder is one per process, shared by the tests running beside this
    // one: counters are at least this test's share.
    let text = metrics(&h).await;
    assert!(sample(&text, "safe_mode_activations_total").unwrap() >= 1.0);
    assert!(sample(&text, "project_id_fetch_total").unwrap() >= 2.0);
    assert!(sample(&text, "project_id_fetch_success_total").is_some());

    let audit = h.state.store.list_audit(None, 50).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.event.kind == AuditKind::SafeMode && r.event.detail.contains("turned on")),
        "{audit:?}"
    );
}

#[tokio::test]
async fn safe_mode_without_a_key_is_a_503_that_says_how_to_add_one() {
    let h = start_with(|c| c.safe_mode.auto_activate_threshold = 2).await;
    h.sim.script(refuse_discovery());
    let response = h.post(&ask("gemini-3-flash", "hello", false)).await;
    assert_eq!(response.status(), 503);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("GEMINI_API_KEY"), "{message}");
    assert_eq!(h.sim.count(SimMethod::GeminiGenerateContent), 0);
}

#[tokio::test]
async fn the_feature_flag_sends_everything_to_the_official_api() {
    let h = start_with(|c| {
        c.routing.enable_antigravity = false;
        c.safe_mode.gemini_api_keys = vec!["wrong-key".into(), KEY.into()];
    })
    .await;
    for _ in 0..2 {
        let response = h.post(&ask("gemini-3-flash", "hi", false)).await;
        assert_eq!(response.status(), 200, "the refused key is skipped");
        assert_eq!(response.headers()["x-agm-upstream"], "gemini-api");
    }
    assert_eq!(h.sim.count(SimMethod::GenerateContent), 0);
    assert_eq!(h.sim.count(SimMethod::LoadCodeAssist), 0);
    // The official API never gets Cloud-Code-only fields, and the key only in a header.
    for r in h
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == SimMethod::GeminiGenerateContent)
    {
        assert!(r.body.get("sessionId").is_none(), "{}", r.body);
        assert!(!r.path.contains("key="), "{}", r.path);
    }
}

/// The rollback flag stops every call with the accounts, the background quota
/// refresh's too (docs/operations/rollback.md).
#[tokio::test]
async fn the_feature_flag_stops_the_background_quota_refresh() {
    let h = start_with(|c| {
        c.routing.enable_antigravity = false;
        c.routing.quota_refresh = Duration::from_millis(100);
        c.safe_mode.gemini_api_keys = vec![KEY.into()];
    })
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(h.sim.count(SimMethod::FetchAvailableModels), 0);
    assert_eq!(h.sim.count(SimMethod::LoadCodeAssist), 0);
}

#[tokio::test]
async fn a_running_server_follows_the_cli_within_two_seconds() {
    let h = start_with(|c| c.safe_mode.gemini_api_keys = vec![KEY.into()]).await;
    let response = h.post(&ask("gemini-3-flash", "before", false)).await;
    assert_eq!(response.headers()["x-agm-upstream"], "antigravity");

    // What `agm safe-mode enable` does: change the stored state, no server involved.
    let status = apply(
        config_of(&h.state.config),
        &h.state.store,
        &h.state.shared,
        Command::Enable {
            note: Some("maintenance".into()),
        },
        Origin::Cli,
    )
    .await
    .unwrap();
    assert!(status.active);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let response = h.post(&ask("gemini-3-flash", "during", false)).await;
        if response.headers()["x-agm-upstream"] == "gemini-api" {
            break;
        }
        assert!(Instant::now() < deadline, "the server did not follow");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    apply(
        config_of(&h.state.config),
        &h.state.store,
        &h.state.shared,
        Command::Disable,
        Origin::Cli,
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let response = h.post(&ask("gemini-3-flash", "after", false)).await;
        if response.headers()["x-agm-upstream"] == "antigravity" {
            assert_eq!(response.headers()["x-agm-safe-mode"], "off");
            break;
        }
        assert!(Instant::now() < deadline, "the server did not follow");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_endpoint_that_keeps_failing_is_skipped_by_its_breaker() {
    // Two endpoints: the first answers 500 to everything, the second is the sim.
    let (h, broken) = common::start_with_a_broken_first_endpoint().await;
    let broken_url = broken.base_url();
    for i in 0..10 {
        let response = h
            .post(&ask("gemini-3-flash", &format!("n{i}"), false))
            .await;
        assert_eq!(response.status(), 200, "the next endpoint serves it");
    }
    // Three failures per account open its circuit: 2 accounts × 3, then no more.
    assert_eq!(broken.count(SimMethod::GenerateContent), 6);
    assert_eq!(h.sim.count(SimMethod::GenerateContent), 10);
    let text = metrics(&h).await;
    let open = text
        .lines()
        .filter(|l| l.starts_with("circuit_breaker_state{") && l.contains(&broken_url))
        .filter(|l| l.ends_with(" 2"))
        .count();
    assert_eq!(open, 2, "{text}");
    let audit = h.state.store.list_audit(None, 50).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.event.kind == AuditKind::Breaker && r.event.detail.contains("opened")),
        "{audit:?}"
    );
}

#[tokio::test]
async fn a_conversation_sticks_to_its_account_and_new_ones_spread() {
    let h =
        start_with(|c| c.routing.scheduling = agm_pool::selection::Scheduling::CacheFirst).await;
    let account_of_last = |h: &common::Harness| {
        h.sim
            .requests()
            .iter()
            .rev()
            .find(|r| r.method == SimMethod::GenerateContent)
            .and_then(|r| r.account.clone())
            .unwrap()
    };
    h.post(&ask("gemini-3-flash", "conversation one", false))
        .await;
    let first = account_of_last(&h);
    h.post(&ask("gemini-3-flash", "conversation two", false))
        .await;
    let second = account_of_last(&h);
    assert_ne!(
        first, second,
        "a new conversation goes to the other account"
    );
    for _ in 0..3 {
        h.post(&ask("gemini-3-flash", "conversation one", false))
            .await;
        assert_eq!(account_of_last(&h), first, "the conversation sticks");
    }
}

#[tokio::test]
async fn an_account_under_its_quota_threshold_is_left_alone() {
    let h =
        start_with(|c| c.routing.scheduling = agm_pool::selection::Scheduling::RoundRobin).await;
    // A stored quota snapshot saying alice has 5 % of gemini-3-flash left.
    let alice = h.account("alice@demo.agm").await;
    let snapshot: agm_google::QuotaSnapshot = serde_json::from_value(json!({
        "fetched_at": "2026-11-30T00:00:00Z",
        "models": [{"model": "gemini-3-flash", "remaining_fraction": 0.05,
                    "reset_time": "2026-11-30T05:00:00Z"}],
        "summary_answered": false,
    }))
    .unwrap();
    agm_server::state::quota::save(&h.state.shared, &alice.id, &snapshot)
        .await
        .unwrap();
    for i in 0..4 {
        let response = h
            .post(&ask("gemini-3-flash", &format!("q{i}"), false))
            .await;
        assert_eq!(response.status(), 200);
    }
    let by_alice = h
        .sim
        .requests()
        .iter()
        .filter(|r| {
            r.method == SimMethod::GenerateContent && r.account.as_deref() == Some("alice@demo.agm")
        })
        .count();
    assert_eq!(by_alice, 0, "alice's last 5 % are kept in reserve");
}

#[tokio::test]
async fn a_server_error_is_retried_after_a_short_backoff() {
    let h =
        start_with(|c| c.routing.scheduling = agm_pool::selection::Scheduling::RoundRobin).await;
    h.sim.script(
        Fault::status(SimMethod::GenerateContent, 503, "UNAVAILABLE", "try again").times(1),
    );
    let response = h.post(&ask("gemini-3-flash", "retry me", false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(h.sim.count(SimMethod::GenerateContent), 2);
    let text = metrics(&h).await;
    assert!(sample(&text, "api_call_total").unwrap() >= 2.0, "{text}");
    assert!(sample(&text, "api_call_success_total").unwrap() >= 1.0);
}

#[tokio::test]
async fn with_no_google_account_an_api_key_serves() {
    let h = start_with(|c| c.safe_mode.gemini_api_keys = vec![KEY.into()]).await;
    for account in h.state.store.list_accounts().await.unwrap() {
        h.state.store.remove_account(&account.id).await.unwrap();
    }
    // No request has loaded the pool yet: the first one finds it empty.
    let response = h.post(&ask("gemini-3-flash", "keys only", false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-agm-upstream"], "gemini-api");
    assert_eq!(response.headers()["x-agm-safe-mode"], "off");
}

#[tokio::test]
async fn the_gateway_overhead_is_measured_without_googles_time() {
    // A sim that takes 50 ms per answer: the overhead must not include it.
    let slow = agm_sim::SimConfig {
        latency: Duration::from_millis(50),
        ..agm_sim::SimConfig::default()
    };
    let h = common::start_sim_with(slow, |_| {}).await;
    let started = Instant::now();
    let response = h.post(&ask("gemini-3-flash", "timed", false)).await;
    let total = started.elapsed();
    assert_eq!(response.status(), 200);
    let overhead: f64 = response.headers()["x-agm-overhead-ms"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(overhead >= 0.0);
    assert!(
        total.as_secs_f64() * 1000.0 - overhead >= 50.0,
        "Google's 50 ms (and more: token, discovery) are not counted: {overhead} ms of {total:?}"
    );
    let text = metrics(&h).await;
    assert!(
        text.contains("agm_gateway_overhead_seconds_bucket"),
        "the histogram is exported"
    );

    let quiet = start_with(|c| c.server.overhead_header = false).await;
    let response = quiet.post(&ask("gemini-3-flash", "untimed", false)).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("x-agm-overhead-ms").is_none());
}

#[tokio::test]
async fn cooldowns_survive_a_restart_and_the_cli_can_clear_them() {
    use agm_server::state::cooldowns;
    let h =
        start_with(|c| c.routing.scheduling = agm_pool::selection::Scheduling::RoundRobin).await;
    h.sim.script(
        Fault::quota_exhausted(SimMethod::GenerateContent, "1h")
            .for_account("alice@demo.agm")
            .times(1),
    );
    for i in 0..2 {
        assert_eq!(
            h.post(&ask("gemini-3-flash", &format!("r{i}"), false))
                .await
                .status(),
            200
        );
    }
    let alice = h.account("alice@demo.agm").await;
    // Written within the sync interval.
    let deadline = Instant::now() + Duration::from_secs(5);
    let stored = loop {
        let stored = cooldowns::load(&h.state.shared).await.unwrap();
        if !stored.is_empty() {
            break stored;
        }
        assert!(Instant::now() < deadline, "the cooldown was not stored");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(stored[0].account, alice.id);
    assert_eq!(stored[0].model, "gemini-3-flash");
    assert!(stored[0].until > time::OffsetDateTime::now_utc() + time::Duration::minutes(55));

    // A new server on the same store (a restart) keeps alice out.
    let mut config = h.state.config.clone();
    config.server.port = 0;
    let restarted =
        std::sync::Arc::new(agm_server::app::AppState::new(config, h.state.store.clone()).unwrap());
    let url = common::serve_state(restarted.clone()).await;
    h.sim.clear_requests();
    for i in 0..3 {
        let response = h
            .http
            .post(format!("{url}/v1/messages"))
            .json(&ask("gemini-3-flash", &format!("s{i}"), false))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let used: Vec<String> = h
        .sim
        .requests()
        .iter()
        .filter(|r| r.method == SimMethod::GenerateContent)
        .filter_map(|r| r.account.clone())
        .collect();
    assert!(used.iter().all(|a| a == "bob@demo.agm"), "{used:?}");

    // `agm accounts clear-cooldowns alice`: the running server follows.
    cooldowns::request_clear(&restarted.shared, Some(&alice.id))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !restarted.accounts.cooldowns.list(Instant::now()).is_empty() {
        assert!(Instant::now() < deadline, "the cooldown was not cleared");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn gemini_requests_fail_over_to_the_code_assist_pool_in_its_own_style() {
    let h = start_with(|c| {
        c.routing.gemini_pool_order =
            vec![agm_store::Pool::Antigravity, agm_store::Pool::CodeAssist];
    })
    .await;
    // An organisation-licence account in the code-assist pool, before the first request.
    h.sim.add_account(agm_sim::SimAccount::new(
        "carol@corp.agm",
        "corp-refresh-carol",
        Some("corp-project-carol"),
        "standard-tier",
    ));
    h.state
        .store
        .upsert_account(agm_store::NewAccount {
            pool: agm_store::Pool::CodeAssist,
            ..agm_store::NewAccount::antigravity("carol@corp.agm", "corp-refresh-carol")
        })
        .await
        .unwrap();
    for email in ["alice@demo.agm", "bob@demo.agm"] {
        for method in [SimMethod::GenerateContent, SimMethod::StreamGenerateContent] {
            h.sim.script(
                Fault::quota_exhausted(method, "1h")
                    .for_account(email)
                    .always(),
            );
        }
    }
    for i in 0..2 {
        let response = h
            .post(&ask("gemini-3-flash", &format!("pool {i}"), i == 1))
            .await;
        assert_eq!(response.status(), 200, "the code-assist pool serves it");
        assert_eq!(response.headers()["x-agm-upstream"], "antigravity");
    }
    let carol: Vec<_> = h
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.account.as_deref() == Some("carol@corp.agm"))
        .filter(|r| {
            matches!(
                r.method,
                SimMethod::GenerateContent | SimMethod::StreamGenerateContent
            )
        })
        .collect();
    assert_eq!(carol.len(), 2);
    for r in &carol {
        let agent = r.header("user-agent").unwrap();
        assert!(
            agent.starts_with("GeminiCLI/0.21.0/gemini-3-flash ("),
            "{agent}"
        );
        for field in ["requestType", "userAgent", "requestId"] {
            assert!(r.body.get(field).is_none(), "{field} in {}", r.body);
        }
    }
    // Claude is Antigravity's alone: no failover, the client hears the limit.
    let response = h.post(&ask("claude-sonnet-4-5", "claude", false)).await;
    assert_eq!(response.status(), 429);
}

#[tokio::test]
async fn the_paid_pool_is_used_only_when_the_order_names_it() {
    let h = start_with(|c| {
        c.routing.gemini_pool_order =
            vec![agm_store::Pool::Antigravity, agm_store::Pool::GeminiApi];
        c.safe_mode.gemini_api_keys = vec![KEY.into()];
        c.safe_mode.daily_request_cap = 1;
    })
    .await;
    h.sim
        .script(Fault::quota_exhausted(SimMethod::GenerateContent, "1h").always());
    let response = h.post(&ask("gemini-3-flash", "paid", false)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-agm-upstream"], "gemini-api");
    assert_eq!(response.headers()["x-agm-safe-mode"], "off");
    // The daily cap of 1 is reached: the next one is refused with when it resets.
    let capped = h.post(&ask("gemini-3-flash", "paid again", false)).await;
    assert_eq!(capped.status(), 429);
    assert!(capped.headers().contains_key("retry-after"));
    let body: Value = capped.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("daily_request_cap"),
        "{body}"
    );
}

#[tokio::test]
async fn an_absurd_quota_hint_is_checked_with_the_quota_call() {
    let h =
        start_with(|c| c.routing.scheduling = agm_pool::selection::Scheduling::RoundRobin).await;
    let alice = h.account("alice@demo.agm").await;
    // 100 hours is beyond any real reset: the cooldown is capped and flagged, and the
    // quota call says alice has quota left, so the cooldown goes.
    h.sim.script(
        Fault::quota_exhausted(SimMethod::GenerateContent, "100h")
            .for_account("alice@demo.agm")
            .times(1),
    );
    // Round-robin: within two requests alice is asked (whatever the store's order).
    for i in 0..2 {
        let response = h
            .post(&ask("gemini-3-flash", &format!("absurd {i}"), false))
            .await;
        assert_eq!(response.status(), 200);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.sim.count(SimMethod::FetchAvailableModels) == 0 {
        assert!(Instant::now() < deadline, "no quota re-check");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    while h
        .state
        .accounts
        .cooldowns
        .until(&alice.id, "gemini-3-flash", Instant::now())
        .is_some()
    {
        assert!(
            Instant::now() < deadline,
            "the quota re-check did not clear it"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(h.sim.count(SimMethod::FetchAvailableModels) >= 1);

    // With the quota really gone, the cooldown is set to Google's reset time instead.
    h.sim.set_quota("alice@demo.agm", "gemini-3-flash", 0.0);
    h.sim.script(
        Fault::quota_exhausted(SimMethod::GenerateContent, "100h")
            .for_account("alice@demo.agm")
            .times(1),
    );
    for i in 0..2 {
        assert_eq!(
            h.post(&ask("gemini-3-flash", &format!("gone {i}"), false))
                .await
                .status(),
            200
        );
    }
    let confirmed = |h: &common::Harness| {
        h.state
            .accounts
            .cooldowns
            .list(Instant::now())
            .iter()
            .any(|c| {
                c.account == alice.id
                    && c.reason
                        == agm_pool::cooldown::CooldownReason::QuotaExhausted {
                            needs_quota_recheck: false,
                        }
            })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !confirmed(&h) {
        assert!(Instant::now() < deadline, "the reset time was not taken");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let until = h
        .state
        .accounts
        .cooldowns
        .until(&alice.id, "gemini-3-flash", Instant::now())
        .expect("still cooling down");
    assert!(until > Instant::now(), "until the reset Google names");
}

#[tokio::test]
async fn a_due_probe_that_succeeds_turns_automatic_safe_mode_off() {
    use agm_pool::safe_mode::{SafeModeReason, SafeModeRecord};
    let h = start_with(|c| c.safe_mode.gemini_api_keys = vec![KEY.into()]).await;
    // Projects discovered and cached.
    assert_eq!(
        h.post(&ask("gemini-3-flash", "warm", false)).await.status(),
        200
    );
    // Automatic safe mode whose retry is due (as another process, or a restart, left it).
    let now_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    let record = SafeModeRecord {
        revision: 1_000,
        reason: Some(SafeModeReason::Auto {
            failures: 5,
            last_error: "loadCodeAssist was refused".into(),
        }),
        since_ms: Some(now_ms - 60_000),
        next_retry_ms: Some(now_ms - 1_000),
        ..SafeModeRecord::default()
    };
    agm_server::routing::safe_mode::save_record(&h.state.shared, &record)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    while !h.state.safe_mode.is_active() {
        assert!(
            Instant::now() < deadline,
            "the server did not take the stored state"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The probe goes the Antigravity way, succeeds, and safe mode is off again.
    let probe = h.post(&ask("gemini-3-flash", "probe", false)).await;
    assert_eq!(probe.headers()["x-agm-upstream"], "antigravity");
    assert!(!h.state.safe_mode.is_active());
    let after = h.post(&ask("gemini-3-flash", "after", false)).await;
    assert_eq!(after.headers()["x-agm-safe-mode"], "off");
    assert_eq!(after.headers()["x-agm-upstream"], "antigravity");
}

#[tokio::test]
async fn a_banned_account_and_one_refusing_a_fresh_token_are_disabled_with_the_reason() {
    let h =
        start_with(|c| c.routing.scheduling = agm_pool::selection::Scheduling::RoundRobin).await;
    h.sim.script(
        Fault::status(
            SimMethod::GenerateContent,
            403,
            "PERMISSION_DENIED",
            "This service has been disabled for violation of Terms of Service.",
        )
        .for_account("alice@demo.agm")
        .times(1),
    );
    h.sim.script(
        Fault::status(
            SimMethod::GenerateContent,
            401,
            "UNAUTHENTICATED",
            "bad token",
        )
        .for_account("bob@demo.agm")
        .times(2),
    );
    // Both accounts go out during the first request: the client hears why, in its own
    // shape; the second finds no usable account.
    for i in 0..2 {
        let response = h
            .post(&ask("gemini-3-flash", &format!("ban {i}"), false))
            .await;
        assert!(response.status().is_client_error() || response.status().is_server_error());
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "error", "{body}");
    }
    let state_of = |email: &'static str| {
        let store = h.state.store.clone();
        async move { store.get_account(email).await.unwrap().unwrap().state }
    };
    match state_of("alice@demo.agm").await {
        agm_store::AccountState::Disabled { reason } => {
            assert!(reason.contains("Terms of Service"), "{reason}");
        }
        other => panic!("alice should be disabled: {other:?}"),
    }
    match state_of("bob@demo.agm").await {
        agm_store::AccountState::Disabled { reason } => {
            assert!(
                reason.contains("freshly refreshed access token"),
                "{reason}"
            );
        }
        other => panic!("bob should be disabled: {other:?}"),
    }
    let audit = h.state.store.list_audit(None, 50).await.unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|r| r.event.kind == AuditKind::Account)
            .count(),
        2,
        "{audit:?}"
    );
}
