#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The CLI and a running server change the same stored state from two processes (two
//! SQLite connections on one file here). Every read-modify-write is one transaction of
//! `agm_server::state::Shared`, so neither overwrites the other.

use std::sync::Arc;

use agm_pool::safe_mode::SafeModeConfig;
use agm_server::routing::safe_mode::{self, Command, Origin, SafeModeControl};
use agm_server::state::{Shared, cooldowns};
use agm_store::{KeyStore, Store};

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

/// Concurrent project-discovery failures in one server (several accounts at once) all
/// count: a save racing another save of the same process must not take the other's
/// older record over. The fifth failure turns safe mode on, and it stays on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_failures_in_one_server_all_count() {
    let dir = tempfile::tempdir().unwrap();
    let ((store, shared), _) = two_processes(dir.path()).await;
    let control = Arc::new(SafeModeControl::new(config(), store, shared.clone()));
    control.sync().await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..5 {
        let control = Arc::clone(&control);
        tasks.push(tokio::spawn(async move {
            control
                .record_project_failure(&format!("acc-{i}"), "boom")
                .await;
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(
        control.is_active(),
        "a failure was lost: {:?}",
        control.status()
    );
    let stored = safe_mode::stored_status(config(), &shared).await.unwrap();
    assert!(stored.active, "{stored:?}");
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
