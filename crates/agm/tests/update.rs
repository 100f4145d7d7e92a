#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `agm update check` (issue 14, item 3): the same code as `agm serve`'s background
//! check, writing the same cache in the store.

use std::process::Output;

use axum::routing::get;
use serde_json::{Value, json};

async fn releases(tag: &str) -> String {
    let body =
        json!({"tag_name": tag, "html_url": "https://github.com/agm-gateway/agm/releases/latest"})
            .to_string();
    let app = axum::Router::new().route("/latest", get(move || async move { body }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/latest", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

async fn check(home: &std::path::Path, url: &str) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_agm"))
        .args(["update", "check"])
        .env_clear()
        .env("HOME", home)
        .env("AGM_STORAGE__KEY_STORE", "file")
        .env("AGM_DATA_DIR", home.join("data"))
        .env("AGM_UPDATES__URL", url)
        .output()
        .await
        .unwrap()
}

#[tokio::test]
async fn update_check_says_how_to_update_and_caches_the_result() {
    let home = tempfile::tempdir().unwrap();
    let out = check(home.path(), &releases("v99.0.0").await).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("agm 99.0.0 is out (this is "), "{text}");
    assert!(text.contains("--tag v99.0.0"), "{text}");
    let db = rusqlite::Connection::open(home.path().join("data/agm.db")).unwrap();
    let stored: String = db
        .query_row(
            "SELECT value FROM settings WHERE key = 'updates:latest'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    let stored: Value = serde_json::from_str(&stored).unwrap();
    assert_eq!(stored["version"], "99.0.0");
    assert_eq!(stored["tag"], "v99.0.0");

    let out = check(home.path(), &releases("v0.0.1").await).await;
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("is up to date"));

    let out = check(home.path(), "http://127.0.0.1:9/latest").await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach"), "{err}");
}
