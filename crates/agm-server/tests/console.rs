#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The web console against the sim: the admin API, its sign-in, and its CSRF rules.

mod common;

use std::time::Duration;

use common::console::{Console, client, sign_in, sign_in_with};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn audit_details(console: &Console) -> Vec<String> {
    console.get("/api/audit?limit=100").await["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{} {}", e["subject"], e["detail"]))
        .collect()
}

#[tokio::test]
async fn the_admin_api_lists_and_changes_accounts() {
    let h = common::start().await;
    let console = sign_in(&h).await;
    let accounts = console.get("/api/accounts").await;
    let list = accounts["accounts"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    let text = accounts.to_string();
    for account in h.sim.accounts() {
        assert!(
            !text.contains(&account.refresh_token),
            "no token in the list"
        );
    }
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let email = list[0]["email"].as_str().unwrap().to_owned();
    assert_eq!(list[0]["state"], "active");

    let (status, body) = console
        .send(
            Method::POST,
            &format!("/api/accounts/{id}/disable"),
            Some(json!({"reason": "testing"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(h.account(&email).await.state.name(), "disabled");
    let (status, _) = console
        .send(Method::POST, &format!("/api/accounts/{id}/enable"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(h.account(&email).await.state.is_active());
    let (status, body) = console
        .send(Method::POST, "/api/accounts/nope/enable", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no account \"nope\""),
        "{body}"
    );
    let (status, _) = console
        .send(Method::DELETE, &format!("/api/accounts/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        console.get("/api/accounts").await["accounts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let audit = audit_details(&console).await;
    for wanted in [
        "disabled with the console: testing",
        "enabled with the console",
        "removed with the console",
    ] {
        assert!(
            audit
                .iter()
                .any(|a| a.contains(&email) && a.contains(wanted)),
            "{wanted} in {audit:?}"
        );
    }
}

#[tokio::test]
async fn the_admin_api_shows_requests_models_health_and_runs_keys_and_safe_mode() {
    let h = common::start().await;
    let console = sign_in(&h).await;
    // A request through the gateway shows in the log.
    let response = h
        .post(&json!({"model": "claude-sonnet-4-5", "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let mut logged = Value::Null;
    for _ in 0..40 {
        logged = console.get("/api/logs?limit=10").await;
        if !logged["requests"].as_array().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let row = &logged["requests"][0];
    assert_eq!(row["route"], "/v1/messages", "{logged}");
    assert_eq!(row["status"], 200);
    let (status, body) = console.send(Method::GET, "/api/logs?limit=0", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    assert!(
        !console.get("/api/models").await["models"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    let health = console.get("/api/health").await;
    assert_eq!(health["status"], "ready", "{health}");
    assert_eq!(health["accounts"]["active"], 2);
    assert_eq!(health["upstream"], "antigravity");
    let settings = console.get("/api/settings").await;
    assert_eq!(settings["config"]["server"]["port"], 0);

    // Keys: the secret once, then revoked with the last-key warning.
    let (status, created) = console
        .send(Method::POST, "/api/keys", Some(json!({"name": "laptop"})))
        .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with(created["prefix"].as_str().unwrap()));
    let listed = console.get("/api/keys").await.to_string();
    assert!(listed.contains("laptop") && !listed.contains(secret));
    let id = created["id"].as_str().unwrap();
    let (status, revoked) = console
        .send(Method::DELETE, &format!("/api/keys/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        revoked["warning"]
            .as_str()
            .unwrap()
            .contains("last active client key")
    );
    let (status, again) = console
        .send(Method::DELETE, &format!("/api/keys/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(
        again["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no active client key")
    );
    let (status, _) = console
        .send(Method::POST, "/api/keys", Some(json!({"name": "a\nb"})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // Safe mode: on at once in the running server, then off.
    let (status, on) = console
        .send(
            Method::POST,
            "/api/safe-mode",
            Some(json!({"action": "enable", "note": "console test"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{on}");
    assert_eq!(on["status"]["active"], true);
    assert!(h.state.safe_mode.is_active());
    let (_, off) = console
        .send(
            Method::POST,
            "/api/safe-mode",
            Some(json!({"action": "disable"})),
        )
        .await;
    assert_eq!(off["status"]["active"], false);
    assert!(!h.state.safe_mode.is_active());
    let (status, _) = console
        .send(
            Method::POST,
            "/api/safe-mode",
            Some(json!({"action": "explode"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let audit = audit_details(&console).await;
    assert!(
        audit
            .iter()
            .any(|a| a.contains("created: name") && a.contains("laptop")),
        "{audit:?}"
    );
    assert!(
        audit
            .iter()
            .any(|a| a.contains("revoked: name") && a.contains("laptop")),
        "{audit:?}"
    );
    assert!(audit.iter().any(|a| a.contains("turned on")), "{audit:?}");
}

#[tokio::test]
async fn forged_cross_site_changes_are_refused() {
    let h = common::start().await;
    let console = sign_in(&h).await;
    let path = format!("{}/api/safe-mode", h.url);
    let body = json!({"action": "enable"});
    // Another site's page, with the session cookie (a browser would not even send a
    // SameSite=Strict cookie; this is the check behind it).
    let forged = console
        .http
        .post(&path)
        .header("cookie", &console.cookie)
        .header("origin", "http://evil.example")
        .header("x-agm-csrf", &console.csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    // A form post from another site: no CSRF header, a form body.
    let form = console
        .http
        .post(&path)
        .header("cookie", &console.cookie)
        .header("origin", "http://evil.example")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("action=enable")
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::FORBIDDEN);
    // The right origin without the CSRF token.
    let no_token = console
        .http
        .post(&path)
        .header("cookie", &console.cookie)
        .header("origin", &h.url)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
    let message = no_token.json::<Value>().await.unwrap()["error"]["message"].clone();
    assert!(message.as_str().unwrap().contains("CSRF"), "{message}");
    // No origin and no fetch metadata (not a page of the console).
    let bare = console
        .http
        .post(&path)
        .header("cookie", &console.cookie)
        .header("x-agm-csrf", &console.csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), StatusCode::FORBIDDEN);
    // DNS rebinding: a name that resolves to us, as the Host.
    let rebound = console
        .http
        .get(format!("{}/api/accounts", h.url))
        .header("cookie", &console.cookie)
        .header("host", "rebind.attacker.example:8045")
        .send()
        .await
        .unwrap();
    assert_eq!(rebound.status(), StatusCode::FORBIDDEN);
    assert!(!h.state.safe_mode.is_active(), "nothing forged got through");
    // The console's own page gets through.
    let (status, _) = console
        .send(Method::POST, "/api/safe-mode", Some(body))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(h.state.safe_mode.is_active());
}

#[tokio::test]
async fn a_client_key_never_opens_the_console() {
    let h = common::start().await;
    let (_, secret) = h.state.store.create_client_key("client").await.unwrap();
    let http = client();
    for (name, value) in [
        ("x-api-key", secret.clone()),
        ("authorization", format!("Bearer {secret}")),
    ] {
        let response = http
            .get(format!("{}/api/accounts", h.url))
            .header(name, &value)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{name}");
        let page = http
            .get(format!("{}/ui/accounts", h.url))
            .header(name, &value)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), StatusCode::SEE_OTHER);
        assert_eq!(page.headers()["location"], "/ui/login");
    }
    // A made-up session is no session.
    let forged = http
        .get(format!("{}/api/accounts", h.url))
        .header("cookie", "agm_session=0000")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn sign_in_tokens_work_once_and_failures_are_limited() {
    let h = common::start().await;
    let addr: std::net::SocketAddr = h.url.trim_start_matches("http://").parse().unwrap();
    let link = h.state.console.startup_link(addr).unwrap();
    assert!(
        link.starts_with(&format!("{}/ui/login?token=", h.url)),
        "{link}"
    );
    assert!(h.state.console.startup_link(addr).is_none(), "printed once");
    let token = link.split("token=").nth(1).unwrap();
    assert_eq!(
        sign_in_with(&h, token).await.status(),
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        sign_in_with(&h, token).await.status(),
        StatusCode::UNAUTHORIZED
    );
    // `agm console` writes a token into the store the running server reads.
    let fresh = agm_server::console::auth::mint_login_token(&h.state.shared)
        .await
        .unwrap();
    assert_eq!(
        sign_in_with(&h, &fresh).await.status(),
        StatusCode::SEE_OTHER
    );
    // Wrong tokens (the used one above was the first), then even a right one is held
    // back.
    for _ in 1..agm_server::console::auth::MAX_FAILURES {
        assert_eq!(
            sign_in_with(&h, "wrong").await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let fresh = agm_server::console::auth::mint_login_token(&h.state.shared)
        .await
        .unwrap();
    let held = sign_in_with(&h, &fresh).await;
    assert_eq!(held.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(held.headers().contains_key("retry-after"));
    // Held back per address: the admin at another address still signs in (a guesser
    // cannot lock everyone out).
    let elsewhere = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .build()
        .unwrap()
        .get(format!("{}/ui/login?token={fresh}", h.url))
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), StatusCode::SEE_OTHER);
    // The sign-in form refuses another site's post (login CSRF).
    let form = client()
        .post(format!("{}/ui/login", h.url))
        .header("origin", "http://evil.example")
        .form(&[("token", fresh.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn pages_render_in_four_languages_and_browsers_at_the_root_go_to_the_console() {
    let h = common::start().await;
    let console = sign_in(&h).await;
    let root = client()
        .get(format!("{}/", h.url))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(root.status(), StatusCode::SEE_OTHER);
    assert_eq!(root.headers()["location"], "/ui/");
    let api_client = client().get(format!("{}/", h.url)).send().await.unwrap();
    assert_eq!(api_client.status(), StatusCode::NOT_FOUND);
    assert!(
        api_client
            .text()
            .await
            .unwrap()
            .contains("no route for GET /")
    );

    for path in [
        "/ui/",
        "/ui/accounts",
        "/ui/keys",
        "/ui/logs",
        "/ui/audit",
        "/ui/models",
        "/ui/settings",
    ] {
        let page = console.request(Method::GET, path).send().await.unwrap();
        assert_eq!(page.status(), StatusCode::OK, "{path}");
        let html = page.text().await.unwrap();
        assert!(
            html.contains(&console.csrf),
            "{path} carries the CSRF token"
        );
    }
    for (lang, word) in [
        ("en", "Accounts"),
        ("zh-CN", "账号"),
        ("zh-TW", "帳號"),
        ("vi", "Tài khoản"),
    ] {
        let page = console
            .request(Method::GET, &format!("/ui/accounts?lang={lang}"))
            .send()
            .await
            .unwrap();
        assert!(
            page.headers()
                .get_all("set-cookie")
                .iter()
                .any(|v| v.to_str().unwrap().starts_with(&format!("agm_lang={lang}")))
        );
        let html = page.text().await.unwrap();
        assert!(html.contains(&format!("<html lang=\"{lang}\">")), "{lang}");
        assert!(html.contains(word), "{lang}: {word}");
    }
    let by_header = console
        .request(Method::GET, "/ui/")
        .header("accept-language", "vi-VN,vi;q=0.9,en;q=0.5")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(by_header.contains("Tổng quan"));
    let settings = console
        .request(Method::GET, "/ui/settings")
        .send()
        .await
        .unwrap();
    assert!(
        !settings
            .text()
            .await
            .unwrap()
            .contains("oauth_client_secret\": \"GOCSPX")
    );
    let login = client()
        .get(format!("{}/ui/login?lang=zh-TW", h.url))
        .send()
        .await
        .unwrap();
    assert!(login.text().await.unwrap().contains("登入 agm"));
}

/// "Retry Now" probes Antigravity at once: project discovery runs again on the
/// accounts, and a success turns an automatic safe mode off; while discovery still
/// fails it stays on and says why. A safe mode turned on by hand is not probed away.
#[tokio::test]
async fn retry_now_probes_antigravity_at_once() {
    let h = common::start_with(|c| c.safe_mode.auto_activate_threshold = 2).await;
    let console = sign_in(&h).await;
    let retry = || {
        console.send(
            Method::POST,
            "/api/safe-mode",
            Some(json!({"action": "retry"})),
        )
    };
    // Automatic: two project-id failures in a row.
    for account in ["alice@demo.agm", "bob@demo.agm"] {
        h.state
            .safe_mode
            .record_project_failure(account, "loadCodeAssist failed")
            .await;
    }
    assert!(h.state.safe_mode.is_active());

    // Discovery still fails: on, with the reason.
    for _ in 0..2 {
        h.sim.script(agm_sim::Fault::status(
            agm_sim::SimMethod::LoadCodeAssist,
            403,
            "PERMISSION_DENIED",
            "The caller does not have permission",
        ));
    }
    let (status, still) = retry().await;
    assert_eq!(status, StatusCode::OK, "{still}");
    assert_eq!(still["status"]["active"], true);
    assert_eq!(still["probe"]["ok"], false);
    assert!(
        still["warning"]
            .as_str()
            .unwrap()
            .contains("Antigravity still fails")
    );
    h.sim.clear_faults();

    // Google answers again: off at once, no client request needed.
    h.sim.clear_requests();
    let (_, off) = retry().await;
    assert_eq!(off["status"]["active"], false, "{off}");
    assert_eq!(off["probe"]["ok"], true);
    assert!(!h.state.safe_mode.is_active());
    assert!(
        h.sim
            .requests()
            .iter()
            .any(|r| r.method == agm_sim::SimMethod::LoadCodeAssist)
    );

    // By hand: the operator turns it off; a probe does not.
    console
        .send(
            Method::POST,
            "/api/safe-mode",
            Some(json!({"action": "enable"})),
        )
        .await;
    let (status, manual) = retry().await;
    assert_eq!(status, StatusCode::CONFLICT, "{manual}");
    assert!(h.state.safe_mode.is_active());
}
