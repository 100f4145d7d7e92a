#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Update notices (issue 14, item 3) against a releases server on loopback: the
//! semantic comparison, every way the answer can go wrong, and `agm serve`'s background
//! job (its first check, the cache in the store, the console's view and dismiss, and
//! `check = false` asking nothing).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::console::sign_in;

use agm_server::ops::updates::{self, CheckError};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::json;

/// A releases server: answers `GET /latest` with `status` and `body`, counting requests.
struct Releases {
    url: String,
    hits: Arc<AtomicUsize>,
}

async fn releases(status: u16, body: &str) -> Releases {
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let body = body.to_owned();
    let app = axum::Router::new().route(
        "/latest",
        get(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            async move { (StatusCode::from_u16(status).unwrap(), body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/latest", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Releases { url, hits }
}

fn release_json(tag: &str) -> String {
    json!({"tag_name": tag, "html_url": format!("https://github.com/agm-gateway/agm/releases/tag/{tag}")})
        .to_string()
}

#[tokio::test]
async fn newer_same_and_older_releases_compare_semantically() {
    let current = updates::current();
    let newer = format!("v{}.{}.{}", current.major, current.minor + 1, 0);
    let server = releases(200, &release_json(&newer)).await;
    let release = updates::check(&server.url).await.unwrap();
    assert!(release.is_newer_than(&current));
    assert_eq!(release.tag, newer);
    let verdict = release.verdict(&current);
    assert!(verdict.contains(" is out (this is "), "{verdict}");
    assert!(verdict.contains(&format!("--tag {newer}")), "{verdict}");
    assert!(verdict.contains("releases/tag/"), "{verdict}");

    let same = releases(200, &release_json(&format!("v{current}"))).await;
    let release = updates::check(&same.url).await.unwrap();
    assert!(!release.is_newer_than(&current));
    assert!(release.verdict(&current).contains("up to date"));

    let older = releases(200, &release_json("v0.0.1-alpha.1")).await;
    let release = updates::check(&older.url).await.unwrap();
    assert!(!release.is_newer_than(&current));

    // No page in the answer: the releases URL stands in.
    let bare = releases(200, &json!({"tag_name": "1.0.0"}).to_string()).await;
    assert_eq!(updates::check(&bare.url).await.unwrap().url, bare.url);
}

#[tokio::test]
async fn unreachable_and_malformed_answers_are_errors_that_say_why() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/latest", listener.local_addr().unwrap())
    };
    let err = updates::check(&closed).await.unwrap_err();
    assert!(matches!(err, CheckError::Unreachable { .. }), "{err}");
    assert!(err.to_string().contains("[updates] url"), "{err}");

    let down = releases(503, "busy").await;
    let err = updates::check(&down.url).await.unwrap_err();
    assert!(
        matches!(err, CheckError::Status { status: 503, .. }),
        "{err}"
    );

    let garbage = releases(200, "<html>not json</html>").await;
    let err = updates::check(&garbage.url).await.unwrap_err();
    assert!(matches!(err, CheckError::Malformed { .. }), "{err}");

    let no_tag = releases(200, &json!({"name": "x"}).to_string()).await;
    let err = updates::check(&no_tag.url).await.unwrap_err();
    assert!(matches!(err, CheckError::Malformed { .. }), "{err}");

    let not_a_version = releases(200, &release_json("nightly")).await;
    let err = updates::check(&not_a_version.url).await.unwrap_err();
    assert!(matches!(err, CheckError::NotAVersion { .. }), "{err}");
    assert!(err.to_string().contains("nightly"), "{err}");
}

#[tokio::test]
async fn a_failed_check_keeps_the_stored_one() {
    let store = agm_server::state::Shared::new(agm_store::Store::open_in_memory().await.unwrap());
    let good = releases(200, &release_json("v99.0.0")).await;
    updates::check_and_store(&store, &good.url).await.unwrap();
    let bad = releases(500, "oops").await;
    assert!(updates::check_and_store(&store, &bad.url).await.is_err());
    let latest = updates::load(&store).await.unwrap().unwrap();
    assert_eq!(latest.version, "99.0.0");
    assert!(latest.is_newer());
}

/// Polls the store until the job has stored a check.
async fn stored_check(h: &common::Harness) -> updates::Latest {
    for _ in 0..100 {
        if let Some(latest) = updates::load(&h.state.shared).await.unwrap() {
            return latest;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the job stored no check");
}

#[tokio::test]
async fn the_job_checks_caches_announces_once_and_the_console_can_dismiss() {
    let server = releases(200, &release_json("v99.1.0")).await;
    let url = server.url.clone();
    let h = common::start_with(|c| {
        c.updates.check = true;
        c.updates.url = url;
        c.updates.interval = Duration::from_secs(1);
    })
    .await;
    let latest = stored_check(&h).await;
    assert_eq!(latest.version, "99.1.0");
    assert_eq!(latest.tag, "v99.1.0");
    assert!(latest.url.ends_with("/releases/tag/v99.1.0"), "{latest:?}");
    assert!(!latest.checked_at.is_empty());
    // Announced in the log once: the version is remembered.
    // Stored in the same form as before the typed state layer (`{"version": ...}`).
    let announced = h
        .state
        .store
        .get_setting("updates:announced")
        .await
        .unwrap();
    assert_eq!(announced, Some(json!({"version": "99.1.0"})));
    assert_eq!(
        updates::announced(&h.state.shared).await.as_deref(),
        Some("99.1.0")
    );
    // Every interval after.
    let first = server.hits.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert!(server.hits.load(Ordering::SeqCst) > first);

    // The console's view, and a per-version dismiss.
    let status = updates::status(&h.state.shared, &h.state.config.updates)
        .await
        .unwrap();
    assert_eq!(status["newer"], true);
    assert_eq!(status["show"], true);
    assert_eq!(status["latest"]["version"], "99.1.0");
    assert!(
        status["command"]
            .as_str()
            .unwrap()
            .contains("--tag v99.1.0")
    );
    let console = sign_in(&h).await;
    let view = console.get("/api/updates").await;
    assert_eq!(view["show"], true, "{view}");
    let (code, after) = console
        .send(
            reqwest::Method::POST,
            "/api/updates/dismiss",
            Some(json!({})),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{after}");
    assert_eq!(after["show"], false, "{after}");
    assert_eq!(after["dismissed"], "99.1.0");
    // A newer release shows again.
    updates::check_and_store(
        &h.state.shared,
        &releases(200, &release_json("v99.2.0")).await.url,
    )
    .await
    .unwrap();
    assert_eq!(console.get("/api/updates").await["show"], true);
}

#[tokio::test]
async fn check_false_asks_nothing() {
    let server = releases(200, &release_json("v99.0.0")).await;
    let url = server.url.clone();
    let h = common::start_with(|c| {
        c.updates.check = false;
        c.updates.url = url;
        c.updates.interval = Duration::from_secs(1);
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(server.hits.load(Ordering::SeqCst), 0);
    assert!(updates::load(&h.state.shared).await.unwrap().is_none());
}

#[test]
fn the_interval_is_validated() {
    let err = agm_server::config::Config::from_toml_and_env(
        "[updates]\ninterval = \"10ms\"\n",
        std::path::Path::new("c.toml"),
        &Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("updates.interval"), "{err}");
    let err = agm_server::config::Config::from_toml_and_env(
        "[updates]\nurl = \"ftp://x\"\n",
        std::path::Path::new("c.toml"),
        &Default::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("updates.url"), "{err}");
}
