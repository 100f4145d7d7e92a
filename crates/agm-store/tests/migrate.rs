#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `agm store migrate`: a SQLite store copied into PostgreSQL, checked, resumable after
//! an interruption, refused into a database holding anything else.

mod common;

use std::path::Path;

use agm_store::{
    AccountState, ApiKind, AuditEvent, AuditKind, CopyOptions, CopyReport, KeyStore, NewAccount,
    Pool, PostgresOptions, RequestLogEntry, Secret, SharedKey, Store, StoreError,
};
use common::PgSchema;
use time::macros::datetime;

/// A SQLite store in `dir` with something in every table.
async fn filled_sqlite(dir: &Path) -> (Store, String) {
    let store = Store::open_sqlite_with(dir, KeyStore::File).await.unwrap();
    for (i, pool) in [Pool::Antigravity, Pool::CodeAssist, Pool::GeminiApi]
        .into_iter()
        .enumerate()
    {
        store
            .upsert_account(NewAccount {
                email: format!("user{i}@example.com"),
                pool,
                refresh_token: Secret::new(format!("1//refresh-{i}")),
                access_token: (i != 1).then(|| Secret::new(format!("ya29.access-{i}"))),
                access_expires_at: Some(datetime!(2030-01-01 00:00 UTC)),
                project_id: Some(format!("proj-{i}")),
                tier: None,
            })
            .await
            .unwrap();
    }
    store
        .set_account_state(
            "user1@example.com",
            AccountState::Blocked {
                reason: "verify".into(),
                url: Some("https://accounts.google.com/x".into()),
            },
        )
        .await
        .unwrap();
    let (_, secret) = store.create_client_key("laptop").await.unwrap();
    let (old, _) = store.create_client_key("old").await.unwrap();
    store
        .create_client_key_with(
            "ci",
            &agm_store::KeyPolicy {
                models: vec!["gemini-*".into()],
                rpm: Some(60),
                concurrency: Some(2),
                daily_tokens: Some(10_000),
                daily_requests: None,
                expires_at: Some(datetime!(2027-01-01 00:00 UTC)),
            },
        )
        .await
        .unwrap();
    store.revoke_client_key(&old.id).await.unwrap();
    store
        .set_setting(
            "safe_mode",
            &serde_json::json!({"active": true, "revision": 3}),
        )
        .await
        .unwrap();
    store
        .set_setting(
            "cooldowns",
            &serde_json::json!([{"account": "x", "until": 1}]),
        )
        .await
        .unwrap();
    for i in 0..5 {
        store
            .append_audit(AuditEvent {
                at: datetime!(2025-01-01 00:00 UTC) + time::Duration::minutes(i),
                kind: AuditKind::Account,
                subject: format!("user{i}@example.com"),
                detail: "added".into(),
            })
            .await
            .unwrap();
    }
    store.append_request_logs(requests(0..40)).await.unwrap();
    (store, secret)
}

fn requests(range: std::ops::Range<i64>) -> Vec<RequestLogEntry> {
    range
        .map(|i| RequestLogEntry {
            at: datetime!(2025-06-01 00:00 UTC) + time::Duration::seconds(i),
            api: ApiKind::Anthropic,
            client_model: format!("m{i}"),
            upstream_model: "gemini-2.5-pro".into(),
            account_id: (i % 3 != 0).then(|| "0a1b2c3d".into()),
            status: if i % 5 == 0 { 429 } else { 200 },
            latency_ms: 100 + i as u64,
            input_tokens: 10,
            output_tokens: 20,
            error_class: (i % 5 == 0).then(|| "rate-limited".into()),
            route: "/v1/messages".into(),
            attempts: 1,
            overhead_us: (i % 2 == 0).then_some(150),
            context_scaled: (i % 7 == 0).then(|| "standard; cut=1234 tokens".into()),
            key_id: (i % 4 == 0).then(|| "1a2b3c4d".into()),
        })
        .collect()
}

async fn target_of(source: &Store, schema: &PgSchema) -> Store {
    source
        .open_postgres_with_key_of(&schema.url, PostgresOptions::default())
        .await
        .unwrap()
}

fn all_match(report: &CopyReport) {
    assert_eq!(report.tables.len(), 5);
    for check in &report.tables {
        assert!(check.matches(), "{check}");
    }
}

/// The target, opened as a replica would be: with the data dir's key file.
async fn replica(dir: &Path, schema: &PgSchema) -> Store {
    schema
        .open_with(SharedKey::File(dir.join("secret.key")))
        .await
}

async fn assert_same(source: &Store, target: &Store) {
    assert_eq!(
        source.list_accounts().await.unwrap(),
        target.list_accounts().await.unwrap()
    );
    assert_eq!(
        source.list_client_keys().await.unwrap(),
        target.list_client_keys().await.unwrap()
    );
    assert_eq!(
        source.list_audit(None, 1000).await.unwrap(),
        target.list_audit(None, 1000).await.unwrap()
    );
    assert_eq!(
        source.list_request_log(None, 1000).await.unwrap(),
        target.list_request_log(None, 1000).await.unwrap()
    );
    for key in ["safe_mode", "cooldowns"] {
        assert_eq!(
            source.get_setting(key).await.unwrap(),
            target.get_setting(key).await.unwrap()
        );
    }
}

#[tokio::test]
async fn a_sqlite_store_is_copied_whole_and_checked() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (source, secret) = filled_sqlite(dir.path()).await;
    let target = target_of(&source, &schema).await;
    let mut batches = 0;
    let report = source
        .copy_into(&target, CopyOptions { batch_size: 7 }, |_| batches += 1)
        .await
        .unwrap();
    all_match(&report);
    assert!(!report.resumed && !report.already_done);
    assert_eq!(report.accounts_open, 3);
    assert!(report.unreadable_accounts.is_empty());
    let rows: Vec<u64> = report.tables.iter().map(|c| c.target_rows).collect();
    assert_eq!(rows, [3, 3, 2, 5, 40]);
    assert_eq!(
        batches,
        3 + 1 + 6,
        "one progress report per table or log batch"
    );

    let replica = replica(dir.path(), &schema).await;
    assert_same(&source, &replica).await;
    assert!(replica.verify_client_key(&secret).await.unwrap().is_some());
    // New log rows get new ids, after the copied ones.
    replica.append_request_logs(requests(40..41)).await.unwrap();
    let newest = replica.list_request_log(None, 1).await.unwrap();
    assert_eq!(newest[0].id, 41);

    // Done, and then changed by the cluster: a second run refuses.
    drop(replica);
    let again = source
        .copy_into(&target, CopyOptions::default(), |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(again, StoreError::CopyTargetInUse { .. }),
        "{again}"
    );
    assert!(again.to_string().contains("nothing was copied"), "{again}");
}

#[tokio::test]
async fn a_finished_copy_run_again_changes_nothing() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (source, _) = filled_sqlite(dir.path()).await;
    let target = target_of(&source, &schema).await;
    source
        .copy_into(&target, CopyOptions::default(), |_| {})
        .await
        .unwrap();
    let report = source
        .copy_into(&target, CopyOptions::default(), |_| {})
        .await
        .unwrap();
    assert!(report.already_done);
    all_match(&report);
}

#[tokio::test]
async fn an_interrupted_copy_resumes_without_duplicating() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (source, _) = filled_sqlite(dir.path()).await;
    let target = target_of(&source, &schema).await;

    // Interrupted in the middle of the request log: the copy is dropped mid-flight.
    let (stop, mut stopped) = tokio::sync::mpsc::unbounded_channel();
    let copy = source.copy_into(&target, CopyOptions { batch_size: 4 }, move |p| {
        if p.table == "request_log" && p.rows >= 12 {
            let _ = stop.send(());
        }
    });
    tokio::select! {
        biased;
        _ = stopped.recv() => {}
        done = copy => panic!("the copy was not interrupted: {done:?}"),
    }
    let client = schema.client().await;
    let copied: i64 = client
        .query_one("SELECT count(*) FROM request_log", &[])
        .await
        .unwrap()
        .get(0);
    assert!((12..40).contains(&copied), "{copied} request rows copied");

    // Meanwhile the source moved on: retention pruned old requests, new ones came.
    source
        .prune_request_log(datetime!(2025-06-01 00:00:03 UTC))
        .await
        .unwrap();
    source.append_request_logs(requests(40..45)).await.unwrap();

    let report = source
        .copy_into(&target, CopyOptions { batch_size: 4 }, |_| {})
        .await
        .unwrap();
    assert!(report.resumed);
    all_match(&report);
    let rows: Vec<u64> = report.tables.iter().map(|c| c.target_rows).collect();
    assert_eq!(rows, [3, 3, 2, 5, 42]);
    let ids: i64 = client
        .query_one("SELECT count(DISTINCT id) FROM request_log", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(ids, 42, "no row twice");
    assert_same(&source, &replica(dir.path(), &schema).await).await;
}

#[tokio::test]
async fn a_target_holding_other_data_is_refused() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (source, _) = filled_sqlite(dir.path()).await;

    // Data from elsewhere, sealed with another key: refused at open.
    let other = schema.open().await;
    other
        .upsert_account(NewAccount::antigravity("x@example.com", "1//x"))
        .await
        .unwrap();
    drop(other);
    let err = source
        .open_postgres_with_key_of(&schema.url, PostgresOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::SealKeyMismatch { .. }), "{err}");

    // Data from elsewhere under the same key: refused by the copy, nothing written.
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let target = target_of(&source, &schema).await;
    target
        .set_setting("other", &serde_json::json!(1))
        .await
        .unwrap();
    let err = source
        .copy_into(&target, CopyOptions::default(), |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::CopyTargetNotEmpty { .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("already holds 1 settings"),
        "{err}"
    );
    assert!(target.list_accounts().await.unwrap().is_empty());

    // And a store is never a target unless it is PostgreSQL.
    let memory = Store::open_in_memory().await.unwrap();
    let err = source
        .copy_into(&memory, CopyOptions::default(), |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput { .. }), "{err}");
}

#[tokio::test]
async fn the_key_file_for_the_replicas_is_written_once_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let (source, _) = filled_sqlite(dir.path()).await;
    let path = dir.path().join("cluster.key");
    assert!(source.write_key_file(&path).await.unwrap());
    assert!(
        !source.write_key_file(&path).await.unwrap(),
        "already there"
    );
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read(dir.path().join("secret.key")).unwrap()
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let other = Store::open_in_memory().await.unwrap();
    let err = other.write_key_file(&path).await.unwrap_err();
    assert!(
        matches!(err, StoreError::KeyFileHoldsAnotherKey { .. }),
        "{err}"
    );
}
