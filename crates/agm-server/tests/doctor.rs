#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `agm doctor`'s checks against the simulated Google and a temporary data dir.

use std::path::PathBuf;

use agm_server::config::{Config, LoadedConfig};
use agm_server::ops::doctor::{Status, run_checks};
use agm_sim::Sim;
use agm_store::{AccountState, KeyStore, NewAccount, Store};

fn find<'a>(
    checks: &'a [agm_server::ops::doctor::Check],
    name: &str,
) -> Vec<&'a agm_server::ops::doctor::Check> {
    checks.iter().filter(|c| c.name == name).collect()
}

#[tokio::test]
async fn every_line_says_what_it_found() {
    let sim = Sim::demo().start().await.unwrap();
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let mut config = Config::default();
    config.google.all_at(&sim.base_url());
    config.google.code_assist_endpoints.push(dead.clone());
    config.server.port = 0;
    // Never a real keychain from a test: the key file, as on a headless machine.
    config.storage.key_store = KeyStore::File;
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let loaded = LoadedConfig {
        config,
        path: PathBuf::from("/nowhere/config.toml"),
        file_exists: false,
    };

    let checks = run_checks(&loaded, &data, &agm_server::config::Env::new()).await;
    assert!(
        find(&checks, "config")[0]
            .detail
            .contains("agm config init")
    );
    let accounts = find(&checks, "accounts")[0];
    assert_eq!(accounts.status, Status::Warn);
    assert!(accounts.detail.contains("agm accounts add"));
    let endpoints = find(&checks, "code assist");
    assert_eq!(endpoints[0].status, Status::Ok, "{:?}", endpoints[0]);
    assert_eq!(endpoints[1].status, Status::Fail);
    assert!(endpoints[1].detail.contains(&dead));
    assert!(find(&checks, "secrets")[0].detail.contains("secret.key"));
    assert_eq!(find(&checks, "port")[0].status, Status::Ok);
    // The state of what runs beside requests, each on its own line.
    assert!(find(&checks, "store")[0].detail.contains("SQLite"));
    assert!(find(&checks, "warmup")[0].detail.starts_with("off"));
    assert!(
        find(&checks, "updates")[0]
            .detail
            .contains("not checked yet")
    );
    let conversations = &find(&checks, "conversations")[0].detail;
    assert!(
        conversations.contains("0 sticky sessions") && conversations.contains("standard"),
        "{conversations}"
    );

    let store = Store::open_sqlite_with(&data, KeyStore::File)
        .await
        .unwrap();
    let bob = store
        .upsert_account(NewAccount::antigravity("bob@demo.agm", "demo-refresh-bob"))
        .await
        .unwrap();
    store
        .upsert_account(NewAccount::antigravity(
            "alice@demo.agm",
            "demo-refresh-alice",
        ))
        .await
        .unwrap();
    store
        .set_account_state(
            &bob.id,
            AccountState::Blocked {
                reason: "verify".into(),
                url: Some("https://v/bob".into()),
            },
        )
        .await
        .unwrap();
    drop(store);
    let checks = run_checks(&loaded, &data, &agm_server::config::Env::new()).await;
    let accounts = find(&checks, "accounts")[0];
    assert_eq!(accounts.status, Status::Warn);
    assert!(
        accounts.detail.starts_with("1 of 2 active"),
        "{}",
        accounts.detail
    );
    assert!(accounts.detail.contains("https://v/bob"));
    assert_eq!(find(&checks, "data dir")[0].status, Status::Ok);
}

#[tokio::test]
async fn discovery_telemetry_and_safe_mode_are_reported() {
    let sim = Sim::demo().start().await.unwrap();
    let mut config = Config::default();
    config.google.all_at(&sim.base_url());
    config.server.port = 0;
    config.storage.key_store = KeyStore::File;
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let loaded = LoadedConfig {
        config: config.clone(),
        path: PathBuf::from("/nowhere/config.toml"),
        file_exists: false,
    };
    let before = run_checks(&loaded, &data, &agm_server::config::Env::new()).await;
    assert!(
        find(&before, "project discovery")[0]
            .detail
            .starts_with("no telemetry yet")
    );
    assert!(
        find(&before, "safe mode")[0]
            .detail
            .starts_with("off; no Gemini API key")
    );

    // A server on this data dir discovers both demo accounts' projects.
    let store = Store::open_sqlite_with(&data, KeyStore::File)
        .await
        .unwrap();
    for (email, token) in [
        ("alice@demo.agm", "demo-refresh-alice"),
        ("bob@demo.agm", "demo-refresh-bob"),
    ] {
        store
            .upsert_account(NewAccount::antigravity(email, token))
            .await
            .unwrap();
    }
    let state = std::sync::Arc::new(agm_server::app::AppState::new(config, store).unwrap());
    for _ in 0..2 {
        state.accounts.acquire().await.unwrap();
    }
    agm_server::ops::jobs::write_discovery_telemetry(&state)
        .await
        .unwrap();
    drop(state);

    let after = run_checks(&loaded, &data, &agm_server::config::Env::new()).await;
    let discovery = find(&after, "project discovery")[0];
    assert_eq!(discovery.status, Status::Ok, "{}", discovery.detail);
    assert!(
        discovery
            .detail
            .starts_with("2 attempts, 100.0 % succeeded, p50 "),
        "{}",
        discovery.detail
    );
}
