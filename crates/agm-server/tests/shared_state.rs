#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The CLI and a running server change the same stored state from two processes (two
//! SQLite connections on one file here). Every read-modify-write is one transaction of
//! `agm_server::state::Shared`, so neither overwrites the other.

use std::sync::Arc;
use std::time::Duration;

use agm_pool::safe_mode::SafeModeConfig;
use agm_server::routing::safe_mode::{self, Command, Origin, SafeModeControl};
use agm_server::state::{BoxFuture, Change, Shared, SharedBackend, StateError, cooldowns};
use agm_store::{KeyStore, Store};
use serde_json::Value;

async fn two_processes(dir: &std::path::Path) -> ((Store, Shared), (Store, Shared)) {
    let server = Store::open_sqlite_with(dir, KeyStore::File).await.unwrap();
    let cli = Store::open_sqlite_with(dir, KeyStore::File).await.unwrap();
    (
        (server.clone(), Shared::new(server)),
        (cli.clone(), Shared::new(cli)),
    )
}

fn config() -> SafeModeConfig {
    SafeModeConfig {
        enable_antigravity: true,
        auto_activate_threshold: 5,
        ..SafeModeConfig::default()
    }
}

/// `agm safe-mode enable` lands between the server's last read and its next write (a
/// project-discovery failure it records): the operator's change must survive. Before
/// the typed state layer, the server wrote its own state over it.
#[tokio::test]
async fn a_cli_enable_is_not_overwritten_by_the_servers_next_write() {
    let dir = tempfile::tempdir().unwrap();
    let ((server_store, server_shared), (cli_store, cli_shared)) = two_processes(dir.path()).await;
    let control = SafeModeControl::new(config(), server_store, server_shared.clone());
    control.sync().await.unwrap();
    assert!(!control.is_active());

    let status = safe_mode::apply(
        config(),
        &cli_store,
        &cli_shared,
        Command::Enable {
            note: Some("maintenance".into()),
        },
        Origin::Cli,
    )
    .await
    .unwrap();
    assert!(status.active);

    // The server has not synced yet (it does once a second) and writes now.
    control.record_project_failure("acc-1", "boom").await;

    let stored = safe_mode::stored_status(config(), &cli_shared)
        .await
        .unwrap();
    assert!(
        stored.active,
        "the CLI's enable was overwritten: {stored:?}"
    );
    assert!(
        control.is_active(),
        "the server did not take the CLI's change over"
    );
}

/// Many CLI commands and server writes at once, from two connections: the last CLI
/// command decides, and every audit entry of the CLI is there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cli_commands_racing_server_writes_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let ((server_store, server_shared), (cli_store, cli_shared)) = two_processes(dir.path()).await;
    let control = Arc::new(SafeModeControl::new(
        config(),
        server_store,
        server_shared.clone(),
    ));
    control.sync().await.unwrap();
    let server = {
        let control = Arc::clone(&control);
        tokio::spawn(async move {
            for i in 0..40 {
                if i % 2 == 0 {
                    control.record_project_failure("acc-1", "boom").await;
                } else {
                    control.record_project_success("acc-1").await;
                }
            }
        })
    };
    for i in 0..10 {
        let command = if i % 2 == 0 {
            Command::Enable { note: None }
        } else {
            Command::Disable
        };
        safe_mode::apply(config(), &cli_store, &cli_shared, command, Origin::Cli)
            .await
            .unwrap();
    }
    // The last word: enable.
    safe_mode::apply(
        config(),
        &cli_store,
        &cli_shared,
        Command::Enable { note: None },
        Origin::Cli,
    )
    .await
    .unwrap();
    server.await.unwrap();
    let stored = safe_mode::stored_status(config(), &cli_shared)
        .await
        .unwrap();
    assert!(stored.active, "{stored:?}");
}

/// A store whose updates take a while, so that two saves of one server overlap.
struct SlowUpdates(Store);

impl SharedBackend for SlowUpdates {
    fn read<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Value>, StateError>> {
        self.0.read(name)
    }

    fn write<'a>(&'a self, name: &'a str, value: Value) -> BoxFuture<'a, Result<(), StateError>> {
        self.0.write(name, value)
    }

    fn update<'a>(
        &'a self,
        name: &'a str,
        change: Change,
    ) -> BoxFuture<'a, Result<Option<Value>, StateError>> {
        Box::pin(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.0.update(name, change).await
        })
    }
}

/// Two saves of one server overlap (failures on two accounts at once): the second
/// must not mistake the first's write for another process's and skip its own. Here the
/// second save carries the activation (the fifth failure): before saves were one at a
/// time per process, the stored state stayed "off" while the server was on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overlapping_saves_in_one_server_store_the_newest_state() {
    let store = Store::open_in_memory().await.unwrap();
    let control = Arc::new(SafeModeControl::new(
        config(),
        store.clone(),
        Shared::new(SlowUpdates(store.clone())),
    ));
    control.sync().await.unwrap();
    for i in 0..3 {
        control
            .record_project_failure(&format!("acc-{i}"), "boom")
            .await;
    }
    let fourth = {
        let control = Arc::clone(&control);
        tokio::spawn(async move { control.record_project_failure("acc-3", "boom").await })
    };
    // The fifth failure comes while the fourth's save is still being written.
    tokio::time::sleep(Duration::from_millis(30)).await;
    control.record_project_failure("acc-4", "boom").await;
    fourth.await.unwrap();
    assert!(control.is_active(), "{:?}", control.status());
    let stored = safe_mode::stored_status(config(), &Shared::new(store))
        .await
        .unwrap();
    assert!(stored.active, "the activation was never stored: {stored:?}");
}

/// Two `agm accounts clear-cooldowns` at once make two requests a server tells apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_clear_requests_each_get_a_generation() {
    let dir = tempfile::tempdir().unwrap();
    let ((_, a), (_, b)) = two_processes(dir.path()).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let shared = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.push(tokio::spawn(async move {
            cooldowns::request_clear(&shared, None).await.unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(cooldowns::load_clear(&a).await.unwrap().generation, 20);
}
