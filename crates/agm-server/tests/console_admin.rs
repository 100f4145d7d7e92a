#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The console's admin API beyond the basics (tests/console.rs), against the sim: log
//! and audit filters with the detail of one request, account actions, settings.

mod common;

use std::time::Duration;

use common::console::{Console, sign_in};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The rows `GET path` answers under `field`, once there are at least `n`.
async fn rows_at_least(console: &Console, path: &str, field: &str, n: usize) -> Vec<Value> {
    for _ in 0..50 {
        let rows = console.get(path).await[field].as_array().unwrap().clone();
        if rows.len() >= n {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("fewer than {n} rows at {path}");
}

async fn rows(console: &Console, path: &str, field: &str) -> Vec<Value> {
    console.get(path).await[field].as_array().unwrap().clone()
}

/// `GET path` must be a 400 whose message contains `words`.
async fn refused(console: &Console, path: &str, words: &str) {
    let (status, body) = console.send(Method::GET, path, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains(words), "{path}: {message}");
}

#[tokio::test]
async fn logs_filter_and_one_request_shows_its_calls_waits_and_errors() {
    let h = common::start_with(|c| {
        c.routing.scheduling = agm_pool::selection::Scheduling::RoundRobin;
    })
    .await;
    let console = sign_in(&h).await;
    // The first call fails with a 500 (whichever account it goes to); agm moves on.
    h.sim.script(agm_sim::Fault::status(
        agm_sim::SimMethod::GenerateContent,
        500,
        "INTERNAL",
        "boom",
    ));
    let answer = h
        .post(&json!({"model": "claude-sonnet-4-5", "max_tokens": 50,
            "messages": [{"role": "user", "content": "a secret prompt"}]}))
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    let refused_answer = h
        .post_to(
            "/v1/chat/completions",
            &json!({"model": "claude-sonnet-4-5", "messages": "not a list"}),
        )
        .await;
    assert_eq!(refused_answer.status(), StatusCode::BAD_REQUEST);
    let all = rows_at_least(&console, "/api/logs", "requests", 2).await;
    assert_eq!(all.len(), 2);
    assert!(!json!(all).to_string().contains("a secret prompt"));

    // Each filter keeps what it names.
    let ok = &rows(&console, "/api/logs?status=ok", "requests").await;
    assert_eq!(ok.len(), 1);
    assert_eq!(ok[0]["route"], "/v1/messages");
    assert_eq!(ok[0]["attempts"], 2, "{ok:?}");
    let served_by = ok[0]["account_email"].as_str().unwrap().to_owned();
    for (query, wanted) in [
        ("api=anthropic", 1),
        ("api=openai-chat", 1),
        ("api=gemini", 0),
        ("status=4xx", 1),
        ("status=400", 1),
        ("status=error", 1),
        ("model=claude-sonnet-4-5", 1),
        ("model=nope", 0),
        ("q=messages", 1),
        ("q=CHAT", 1),
        ("since=1h", 2),
        ("until=1h", 0),
        ("since=2020-01-01T00:00:00Z&limit=1", 1),
        ("status=", 2),
    ] {
        let got = rows(&console, &format!("/api/logs?{query}"), "requests").await;
        assert_eq!(got.len(), wanted, "{query}: {got:?}");
    }
    let by_account = rows(
        &console,
        &format!("/api/logs?account={}", served_by.replace('@', "%40")),
        "requests",
    )
    .await;
    assert_eq!(by_account.len(), 1);

    // One request in detail: both calls, the first failed, the accounts named.
    let id = ok[0]["id"].as_i64().unwrap();
    let detail = console.get(&format!("/api/logs/{id}")).await;
    assert_eq!(detail["request"]["id"], id);
    let calls = detail["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2, "{detail}");
    assert_eq!(calls[0]["error_class"], "ServerError", "{detail}");
    assert_eq!(calls[1]["error_class"], Value::Null);
    assert_eq!(calls[1]["account_email"], served_by.as_str());
    assert_eq!(calls[1]["pool"], "antigravity");
    assert!(detail["waited_ms"].is_u64());
    assert_eq!(detail["calls_note"], Value::Null);
    assert!(!detail.to_string().contains("a secret prompt"));

    // Bad parameters: a 400 naming the parameter and what it takes.
    refused(&console, "/api/logs?status=7xx", "status must be").await;
    refused(&console, "/api/logs?since=yesterday", "since must be").await;
    refused(&console, "/api/logs?api=grpc", "api must be one of").await;
    refused(
        &console,
        "/api/logs?colour=red",
        "unknown query parameter \"colour\"",
    )
    .await;
    refused(&console, "/api/logs?limit=5000", "limit must be").await;
    refused(&console, "/api/logs?q=a&q=b", "more than once").await;
    refused(&console, "/api/logs?account=nobody%40x.y", "no account").await;
    refused(&console, "/api/logs/abc", "not a request id").await;
    let (status, body) = console.send(Method::GET, "/api/logs/99999", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test]
async fn the_audit_log_filters_by_time_kind_account_and_text() {
    let h = common::start().await;
    let console = sign_in(&h).await;
    let accounts = console.get("/api/accounts").await;
    let id = accounts["accounts"][0]["id"].as_str().unwrap().to_owned();
    let email = accounts["accounts"][0]["email"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _) = console
        .send(
            Method::POST,
            &format!("/api/accounts/{id}/disable"),
            Some(json!({"reason": "testing filters"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    console
        .send(Method::POST, "/api/keys", Some(json!({"name": "ci"})))
        .await;
    let all = rows_at_least(&console, "/api/audit", "events", 2).await;
    assert!(all.len() >= 2);
    for (query, wanted) in [
        (format!("kind=account&account={id}"), 1),
        (format!("account={}", email.replace('@', "%40")), 1),
        ("kind=key".to_owned(), 1),
        ("q=TESTING%20FILTERS".to_owned(), 1),
        ("since=1h&kind=account".to_owned(), 1),
        ("until=2020-01-01T00:00:00Z".to_owned(), 0),
    ] {
        let got = rows(&console, &format!("/api/audit?{query}"), "events").await;
        assert_eq!(got.len(), wanted, "{query}: {got:?}");
    }
    refused(&console, "/api/audit?kind=nope", "kind must be one of").await;
    refused(&console, "/api/audit?since=soon", "since must be").await;
    refused(&console, "/api/audit?status=200", "unknown query parameter").await;
}

/// The audit log's details, newest first.
async fn audit_details(console: &Console) -> String {
    rows(console, "/api/audit?limit=200", "events")
        .await
        .iter()
        .map(|e| format!("{} {}", e["subject"], e["detail"]))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn cooldowns_are_cleared_per_account_and_all_as_the_cli_does() {
    let h = common::start().await;
    let console = sign_in(&h).await;
    let accounts = console.get("/api/accounts").await["accounts"].clone();
    let (a, b) = (
        accounts[0]["id"].as_str().unwrap().to_owned(),
        accounts[1]["id"].as_str().unwrap().to_owned(),
    );
    let later = std::time::Instant::now() + Duration::from_secs(600);
    for id in [&a, &b] {
        h.state.accounts.cooldowns.set(
            id,
            "gemini-3-pro",
            later,
            agm_pool::cooldown::CooldownReason::RateLimited,
        );
    }
    let one = console.get(&format!("/api/accounts/{a}")).await;
    assert_eq!(one["cooldowns"].as_array().unwrap().len(), 1, "{one}");
    let generation = agm_server::state::cooldowns::load_clear(&h.state.shared)
        .await
        .unwrap()
        .generation;

    let (status, body) = console
        .send(
            Method::POST,
            &format!("/api/accounts/{a}/clear-cooldowns"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["cleared"], 1);
    let one = console.get(&format!("/api/accounts/{a}")).await;
    assert!(one["cooldowns"].as_array().unwrap().is_empty(), "{one}");
    let other = console.get(&format!("/api/accounts/{b}")).await;
    assert_eq!(other["cooldowns"].as_array().unwrap().len(), 1);
    // The same request the CLI writes, so every server sharing the state follows it.
    let request = agm_server::state::cooldowns::load_clear(&h.state.shared)
        .await
        .unwrap();
    assert_eq!(request.generation, generation + 1);
    assert_eq!(request.account.as_deref(), Some(a.as_str()));

    let (status, body) = console
        .send(Method::POST, "/api/accounts/clear-cooldowns", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["cleared"], 1);
    assert!(
        h.state
            .accounts
            .cooldowns
            .list(std::time::Instant::now())
            .is_empty()
    );
    let audit = audit_details(&console).await;
    assert!(
        audit.contains("cooldowns cleared with the console (1 running)"),
        "{audit}"
    );
    assert!(
        audit.contains("every cooldown cleared with the console"),
        "{audit}"
    );
    let (status, _) = console
        .send(Method::POST, "/api/accounts/nope/clear-cooldowns", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn quota_is_rechecked_now_and_a_failure_says_why() {
    let h = common::start().await;
    let console = sign_in(&h).await;
    let id = console.get("/api/accounts").await["accounts"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    h.sim.clear_requests();
    let (status, body) = console
        .send(Method::POST, &format!("/api/accounts/{id}/quota"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        !body["quota"]["models"].as_array().unwrap().is_empty(),
        "{body}"
    );
    assert!(
        h.sim
            .requests()
            .iter()
            .any(|r| r.method == agm_sim::SimMethod::FetchAvailableModels)
    );
    h.sim.script(
        agm_sim::Fault::status(
            agm_sim::SimMethod::FetchAvailableModels,
            503,
            "UNAVAILABLE",
            "down",
        )
        .always(),
    );
    let (status, body) = console
        .send(Method::POST, &format!("/api/accounts/{id}/quota"), None)
        .await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("quota"));
    console
        .send(Method::POST, &format!("/api/accounts/{id}/disable"), None)
        .await;
    let (status, body) = console
        .send(Method::POST, &format!("/api/accounts/{id}/quota"), None)
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let audit = audit_details(&console).await;
    assert!(
        audit.contains("quota re-checked with the console"),
        "{audit}"
    );
    assert!(
        audit.contains("quota re-check with the console failed"),
        "{audit}"
    );
}

#[tokio::test]
async fn accounts_export_after_a_confirmation_and_import_back_from_the_file() {
    let h = common::start().await;
    let console = sign_in(&h).await;
    // Without the confirmation: nothing.
    let (status, body) = console
        .send(Method::POST, "/api/accounts/export", Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(!body.to_string().contains("demo-refresh"));
    // Not from another site, even with the cookie.
    let forged = console
        .http
        .post(format!("{}/api/accounts/export", h.url))
        .header("cookie", &console.cookie)
        .header("origin", "http://evil.example")
        .json(&json!({"confirm": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    let response = console
        .request(Method::POST, "/api/accounts/export")
        .json(&json!({"confirm": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert!(
        response.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("attachment; filename=\"agm-accounts-")
    );
    let file: Value = response.json().await.unwrap();
    assert_eq!(file["version"], 1);
    let exported = file["accounts"].as_array().unwrap();
    assert_eq!(exported.len(), 2);
    for account in h.sim.accounts() {
        let row = exported
            .iter()
            .find(|a| a["email"] == account.email.as_str())
            .unwrap();
        assert_eq!(row["refresh_token"], account.refresh_token.as_str());
    }
    let audit = audit_details(&console).await;
    assert!(
        audit.contains("exported with the console, refresh tokens included"),
        "{audit}"
    );
    assert!(!audit.contains("demo-refresh"), "no token in the audit log");

    // One account only, by e-mail.
    let (status, one) = console
        .send(
            Method::POST,
            "/api/accounts/export",
            Some(json!({"confirm": true, "accounts": ["bob@demo.agm"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["accounts"].as_array().unwrap().len(), 1);
    assert_eq!(one["accounts"][0]["email"], "bob@demo.agm");

    // Removed, then imported back from the file, with an entry that cannot be read.
    for row in exported {
        let id = row["id"].as_str().unwrap();
        console
            .send(Method::DELETE, &format!("/api/accounts/{id}"), None)
            .await;
    }
    assert!(
        console.get("/api/accounts").await["accounts"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let mut text = file.clone();
    text["accounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"email": "carol@demo.agm", "state": "active"}));
    let (status, answer) = console
        .send(
            Method::POST,
            "/api/accounts/import",
            Some(json!({"file": text.to_string()})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["format"], "an agm export");
    assert_eq!(answer["imported"].as_array().unwrap().len(), 2, "{answer}");
    assert_eq!(answer["refused"][0]["label"], "carol@demo.agm");
    assert!(
        answer["refused"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("no refresh_token")
    );
    assert_eq!(
        console.get("/api/accounts").await["accounts"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert!(
        audit_details(&console)
            .await
            .contains("imported with the console")
    );
    // A file of 3 MiB (over axum's default 2 MB body) is read, and refused for what it
    // holds, not for its size.
    let entry = json!({"email": "x@y", "note": "p".repeat(200)}).to_string();
    let big = format!("[{}]", vec![entry; 20_000].join(","));
    assert!(big.len() > 3 << 20);
    let (status, answer) = console
        .send(
            Method::POST,
            "/api/accounts/import",
            Some(json!({"file": big})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["refused"].as_array().unwrap().len(), 20_000);
    for (body, words) in [
        (json!({"file": "not json"}), "not valid JSON"),
        (json!({}), "give {\"refresh_token\""),
        (json!({"file": "[]", "refresh_token": "x"}), "not both"),
    ] {
        let (status, answer) = console
            .send(Method::POST, "/api/accounts/import", Some(body))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(words),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn a_google_sign_in_started_in_the_console_comes_back_to_its_callback_once() {
    let h = common::start().await;
    let console = sign_in(&h).await;
    let alice = h.account("alice@demo.agm").await;
    console
        .send(Method::DELETE, &format!("/api/accounts/{}", alice.id), None)
        .await;
    let (status, started) = console
        .send(
            Method::POST,
            "/api/accounts/sign-in",
            Some(json!({"email": "alice@demo.agm"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{started}");
    let host = h.url.trim_start_matches("http://");
    assert_eq!(
        started["redirect_uri"],
        format!("http://{host}/ui/oauth/callback")
    );
    let url = started["url"].as_str().unwrap();
    assert!(url.contains("login_hint=alice%40demo.agm"), "{url}");
    // Google's consent page (the sim's, approved at once) redirects to the callback.
    let consent = common::console::client().get(url).send().await.unwrap();
    assert!(consent.status().is_redirection(), "{}", consent.status());
    let callback = consent.headers()["location"].to_str().unwrap().to_owned();
    assert!(callback.starts_with(&format!("http://{host}/ui/oauth/callback?")));
    // The callback needs no session cookie (a cross-site redirect carries none).
    let page = common::console::client()
        .get(&callback)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(html.contains("added alice@demo.agm"), "{html}");
    assert!(h.account("alice@demo.agm").await.state.is_active());
    // Used once: a replay, a forged state and an error answer save nothing.
    let replay = common::console::client()
        .get(&callback)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert!(
        replay
            .text()
            .await
            .unwrap()
            .contains("belongs to no sign-in")
    );
    let forged = common::console::client()
        .get(format!("{}/ui/oauth/callback?state=forged&code=x", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::BAD_REQUEST);
    assert!(
        audit_details(&console)
            .await
            .contains("added with the console")
    );
    // Starting one needs the console's session and CSRF token.
    let anonymous = common::console::client()
        .post(format!("{}/api/accounts/sign-in", h.url))
        .header("origin", &h.url)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

/// A harness whose settings are written to a config file (the commented default), in
/// a directory kept as long as the guard.
async fn with_config_file() -> (common::Harness, tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, agm_server::config::DEFAULT_CONFIG_TOML).unwrap();
    let file = path.clone();
    let h = common::start_shaped(
        agm_sim::SimConfig::default(),
        |_| {},
        move |state| state.with_config_file(file),
    )
    .await;
    (h, dir, path)
}

#[tokio::test]
async fn settings_beyond_the_basics_are_written_applied_or_said_to_wait_and_audited() {
    let (h, _dir, path) = with_config_file().await;
    let console = sign_in(&h).await;
    let settings = console.get("/api/settings").await;
    assert_eq!(settings["writable"], true);
    let editable = settings["editable"].as_array().unwrap();
    assert!(editable.contains(&json!({"key": "models.map", "applies": "now"})));
    assert!(editable.contains(&json!({"key": "context.scaling", "applies": "now"})));
    assert!(editable.contains(&json!({"key": "warmup.enabled", "applies": "now"})));
    assert!(
        editable.contains(&json!({"key": "safe_mode.claude_large_model", "applies": "restart"}))
    );

    // The model map: applied to the next request at once.
    let (status, body) = console
        .send(
            Method::POST,
            "/api/settings",
            Some(json!({"changes": {"models.map": {"team-fast": "gemini-2.5-flash"}}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["applied"], true);
    let answer = h
        .post(&json!({"model": "team-fast", "max_tokens": 20,
            "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    let logged = rows_at_least(&console, "/api/logs?model=team-fast", "requests", 1).await;
    assert_eq!(logged[0]["upstream_model"], "gemini-2.5-flash");

    // A Gemini API key (the sim's): written in full to the file, shown masked, and in
    // force at once: with safe mode on, requests go to the official API with it.
    let key = "demo-gemini-key";
    let (status, body) = console
        .send(
            Method::POST,
            "/api/settings",
            Some(json!({"changes": {
                "safe_mode.gemini_api_keys": {"add": [key]},
                "safe_mode.daily_request_cap": 7,
            }})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["restart_required"], json!([]));
    assert_eq!(
        body["config"]["safe_mode"]["gemini_api_keys"],
        json!(["demo…-key"])
    );
    assert_eq!(h.state.daily_cap.cap(), 7);
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(
        written.contains(&format!("gemini_api_keys = [\"{key}\"]")),
        "{written}"
    );
    assert!(
        written.contains("# the official-API pool"),
        "its comment stays"
    );
    let shown = console.get("/api/settings").await;
    assert!(!shown.to_string().contains(key), "never in full: {shown}");
    let audit = audit_details(&console).await;
    assert!(audit.contains("models.map"), "{audit}");
    assert!(
        audit.contains("demo…-key") && !audit.contains(key),
        "{audit}"
    );
    let hi = json!({"model": "claude-sonnet-4-5", "max_tokens": 20,
        "messages": [{"role": "user", "content": "hi"}]});
    console
        .send(
            Method::POST,
            "/api/safe-mode",
            Some(json!({"action": "enable"})),
        )
        .await;
    assert_eq!(
        h.post(&hi).await.status(),
        StatusCode::OK,
        "served by the new key"
    );

    // Removed by its masked form (at once: no key, a 503 saying how to add one);
    // the Claude substitute waits for a restart, context scaling does not.
    let (status, body) = console
        .send(
            Method::POST,
            "/api/settings",
            Some(json!({"changes": {
                "safe_mode.gemini_api_keys": {"remove": ["demo…-key"]},
                "safe_mode.claude_large_model": "gemini-3-pro",
                "context.scaling": "aggressive",
            }})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.contains("gemini_api_keys = []"), "{written}");
    assert_eq!(h.post(&hi).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    console
        .send(
            Method::POST,
            "/api/safe-mode",
            Some(json!({"action": "disable"})),
        )
        .await;
    assert!(
        written.contains("claude_large_model = \"gemini-3-pro\""),
        "{written}"
    );
    assert_eq!(
        body["config"]["context"]["scaling"], "aggressive",
        "in force at once"
    );
    assert_eq!(
        body["config"]["safe_mode"]["claude_large_model"], "gemini-2.5-pro",
        "in force after a restart"
    );
    assert_eq!(
        body["restart_required"],
        json!(["safe_mode.claude_large_model"])
    );

    // Safe mode's threshold applies at once: two project failures now turn it on.
    let (status, body) = console
        .send(
            Method::POST,
            "/api/settings",
            Some(json!({"changes": {"safe_mode.auto_activate_threshold": 2}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for account in ["alice@demo.agm", "bob@demo.agm"] {
        h.state
            .safe_mode
            .record_project_failure(account, "loadCodeAssist failed")
            .await;
    }
    assert!(h.state.safe_mode.is_active(), "on after 2, not 5");

    // Refused: a bad value, an unknown key; the file is left as it was.
    for (changes, words) in [
        (json!({"context.scaling": "max"}), "scaling"),
        (json!({"warmup.interval": "often"}), "interval"),
        (
            json!({"safe_mode.auto_activate_threshold": -1}),
            "auto_activate_threshold",
        ),
        (json!({"models.map": {"x": 3}}), "models.map.x"),
        (json!({"server.bind": "0.0.0.0"}), "cannot be changed"),
    ] {
        let before = std::fs::read_to_string(&path).unwrap();
        let (status, body) = console
            .send(
                Method::POST,
                "/api/settings",
                Some(json!({"changes": changes})),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{changes}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(words), "{changes}: {message}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), before);
    }
}

#[tokio::test]
async fn console_hosts_let_a_reverse_proxy_in_and_nothing_else() {
    let h = common::start_with(|c| c.server.console_hosts = vec!["agm.example.com".into()]).await;
    let console = sign_in(&h).await;
    let page = |host: &'static str| {
        common::console::client()
            .get(format!("{}/ui/login", h.url))
            .header("host", host)
            .send()
    };
    assert_eq!(
        page("agm.example.com").await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        page("AGM.example.com:443").await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(
        page("rebind.example.net").await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    // A proxy that passes the backend's address as Host: the browser's Origin names
    // the public host.
    let change = |origin: &'static str| {
        console
            .http
            .post(format!("{}/api/keys", h.url))
            .header("cookie", &console.cookie)
            .header("x-agm-csrf", &console.csrf)
            .header("origin", origin)
            .json(&json!({"name": "via proxy"}))
            .send()
    };
    assert_eq!(
        change("https://agm.example.com").await.unwrap().status(),
        StatusCode::OK
    );
    let refused = change("https://evil.example.com").await.unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    // Without the setting the same name is refused.
    let plain = common::start().await;
    let refused = common::console::client()
        .get(format!("{}/ui/login", plain.url))
        .header("host", "agm.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn warmup_turned_on_in_the_console_runs_without_a_restart() {
    let (h, _dir, _path) = with_config_file().await;
    let console = sign_in(&h).await;
    // Alice's Claude quota is full: her window can be started early.
    let alice = h.account("alice@demo.agm").await.id;
    let full = agm_google::QuotaSnapshot {
        fetched_at: time::OffsetDateTime::now_utc(),
        tier_id: None,
        models: vec![agm_google::ModelQuota {
            model: "claude-sonnet-4-5".into(),
            display_name: None,
            max_tokens: None,
            remaining_fraction: Some(1.0),
            reset_time: None,
        }],
        summary_answered: false,
        buckets: Vec::new(),
        deprecated: Default::default(),
    };
    agm_server::state::quota::save(&h.state.shared, &alice, &full)
        .await
        .unwrap();
    let (status, body) = console
        .send(
            Method::POST,
            "/api/settings",
            Some(json!({"changes": {"warmup.enabled": true, "warmup.interval": "1s"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["restart_required"], json!([]));
    // The job looks at the settings every 5 s.
    let mut warmed = Vec::new();
    for _ in 0..150 {
        warmed = rows(&console, "/api/audit?kind=warmup", "events").await;
        if !warmed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        warmed[0]["detail"]
            .as_str()
            .unwrap()
            .contains("a window started"),
        "{warmed:?}"
    );
}

#[tokio::test]
async fn an_account_google_blocked_is_named_with_its_verification_link() {
    let h = common::start().await;
    let console = sign_in(&h).await;
    assert!(
        console.get("/api/health").await["needs_verification"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let bob = h.account("bob@demo.agm").await;
    let url = "https://accounts.google.com/signin/continue?sarp=1&scc=1";
    h.state
        .store
        .set_account_state(
            &bob.id,
            agm_store::AccountState::Blocked {
                reason: "Google asks to verify this account".into(),
                url: Some(url.into()),
            },
        )
        .await
        .unwrap();
    let health = console.get("/api/health").await;
    assert_eq!(
        health["needs_verification"],
        json!([{"id": bob.id, "email": "bob@demo.agm",
                "reason": "Google asks to verify this account", "url": url}])
    );
    let page = console.get(&format!("/api/accounts/{}", bob.id)).await;
    assert_eq!(page["state"], "blocked");
    assert_eq!(page["verify_url"], url);
    let by_email = console.get("/api/accounts/bob@demo.agm").await;
    assert_eq!(by_email["id"], bob.id.as_str());
}
