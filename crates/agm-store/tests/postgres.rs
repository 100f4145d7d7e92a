#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]
//! What only PostgreSQL has: replicas sharing one database, the shared seal key, the
//! schema's migrations under a lock, the URL and TLS. Each test has a schema of its own.

mod common;

use agm_store::{KeySource, NewAccount, PostgresOptions, Secret, SharedKey, Store, StoreError};
use common::{PgSchema, random_key};

const REFRESH: &str = "1//0gREFRESH-token-that-must-never-reach-postgres";

fn alice() -> NewAccount {
    NewAccount {
        access_token: Some(Secret::new("ya29.ACCESS-never-in-postgres")),
        ..NewAccount::antigravity("alice@example.com", REFRESH)
    }
}

async fn open(schema: &PgSchema, key: SharedKey) -> Result<Store, StoreError> {
    Store::open_postgres(&schema.url, key, PostgresOptions::default()).await
}

/// Opening `url` must fail as unreachable; the error.
async fn unreachable_at(url: &str, key: SharedKey) -> StoreError {
    let err = Store::open_postgres(url, key, PostgresOptions::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::PostgresUnreachable { .. }),
        "{err}"
    );
    err
}

async fn open_forced(schema: &PgSchema, key: SharedKey) -> Result<Store, StoreError> {
    let options = PostgresOptions {
        force_new_key: true,
        ..PostgresOptions::default()
    };
    Store::open_postgres(&schema.url, key, options).await
}

#[tokio::test]
async fn two_replicas_share_accounts_and_lose_no_setting_update() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let key = SharedKey::Env(random_key());
    let (a, b) = (
        open(&schema, key.clone()).await.unwrap(),
        open(&schema, key).await.unwrap(),
    );
    let added = a.upsert_account(alice()).await.unwrap();
    assert_eq!(b.get_account(&added.id).await.unwrap().unwrap(), added);

    assert_eq!(
        common::race_increments(&[a.clone(), b.clone()]).await,
        Some(serde_json::json!(20))
    );
    assert!(
        a.location()
            .starts_with("PostgreSQL at postgres@127.0.0.1:5432/")
    );
    assert_eq!(a.db_path(), None);
}

#[tokio::test]
async fn replicas_opening_at_once_migrate_once() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let key = SharedKey::Env(random_key());
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let (url, key) = (schema.url.clone(), key.clone());
            tokio::spawn(async move {
                Store::open_postgres(&url, key, PostgresOptions::default()).await
            })
        })
        .collect();
    for open in opens {
        open.await.unwrap().unwrap();
    }
    let client = schema.client().await;
    let versions: Vec<i32> = client
        .query(
            "SELECT version FROM agm_schema_migrations ORDER BY version",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [1, 2, 3]);
}

#[tokio::test]
async fn a_schema_from_a_newer_agm_is_refused() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    drop(schema.open().await);
    schema
        .client()
        .await
        .execute(
            "INSERT INTO agm_schema_migrations (version, name, applied_at) VALUES (42, 'future', 0)",
            &[],
        )
        .await
        .unwrap();
    let err = open(&schema, SharedKey::Env(random_key()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::DatabaseTooNew { found: 42, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn tokens_are_sealed_and_the_key_is_not_in_the_database() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let key = random_key();
    let store = open(&schema, SharedKey::Env(key.clone())).await.unwrap();
    store.upsert_account(alice()).await.unwrap();
    let (_, client_secret) = store.create_client_key("laptop").await.unwrap();

    let client = schema.client().await;
    let mut everything = String::new();
    for table in ["accounts", "client_keys", "settings", "agm_meta"] {
        for row in client
            .query(&format!("SELECT t::text FROM {table} t"), &[])
            .await
            .unwrap()
        {
            everything.push_str(row.get::<_, &str>(0));
        }
    }
    assert!(everything.contains("alice@example.com"), "{everything}");
    assert!(everything.contains("v1:"), "sealed values are stored");
    for secret in [
        REFRESH,
        "ya29.ACCESS-never-in-postgres",
        client_secret.as_str(),
        key.expose(),
    ] {
        assert!(!everything.contains(secret), "{secret} is in the database");
    }
}

#[tokio::test]
async fn a_replica_with_another_key_is_refused_at_open() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let store = open(&schema, SharedKey::Env(random_key())).await.unwrap();
    store.upsert_account(alice()).await.unwrap();
    drop(store);

    let err = open(&schema, SharedKey::Env(random_key()))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SealKeyMismatch {
                key: KeySource::Env("AGM_SEAL_KEY")
            }
        ),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("every agm sharing this database"),
        "{message}"
    );
    assert!(message.contains("AGM_SEAL_KEY"), "{message}");

    // Forced, the new key takes over, and the old account says it cannot be read.
    let new_key = SharedKey::Env(random_key());
    let store = open_forced(&schema, new_key.clone()).await.unwrap();
    let err = store.get_account("alice@example.com").await.unwrap_err();
    assert!(matches!(err, StoreError::Unseal { .. }), "{err}");
    assert!(err.to_string().contains("AGM_SEAL_KEY"), "{err}");
    drop(store);
    open(&schema, new_key).await.unwrap();
}

#[tokio::test]
async fn a_key_file_is_made_for_an_empty_database_and_never_replaced_after() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seal.key");
    let store = open(&schema, SharedKey::File(path.clone())).await.unwrap();
    assert!(path.is_file(), "made for an empty database");
    assert_eq!(store.key_source(), KeySource::KeyFile(path.clone()));
    store.upsert_account(alice()).await.unwrap();
    drop(store);

    // A second replica given the same file reads the account.
    let store = open(&schema, SharedKey::File(path.clone())).await.unwrap();
    assert_eq!(
        store
            .get_account("alice@example.com")
            .await
            .unwrap()
            .unwrap()
            .refresh_token
            .expose(),
        REFRESH
    );
    drop(store);

    // A replica whose file is missing is refused, and makes none.
    let elsewhere = dir.path().join("other.key");
    let err = open(&schema, SharedKey::File(elsewhere.clone()))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::SealKeyMissing { accounts: 1, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("copy it from another agm"),
        "{err}"
    );
    assert!(!elsewhere.exists());

    // The key in the file also works as AGM_SEAL_KEY.
    let text = std::fs::read_to_string(&path).unwrap();
    open(&schema, SharedKey::Env(Secret::new(text.trim())))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_database_sealed_with_a_key_refuses_a_new_key_file_even_without_accounts() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    drop(schema.open().await);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("seal.key");
    let err = open(&schema, SharedKey::File(path.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::SealKeyMissing { .. }), "{err}");
    assert!(!path.exists());
}

#[tokio::test]
async fn unreachable_and_bad_urls_say_so_without_the_password() {
    let key = || SharedKey::Env(random_key());
    let err = unreachable_at(
        "postgres://agm:hunter2@127.0.0.1:1/agm?connect_timeout=2",
        key(),
    )
    .await;
    let message = err.to_string();
    assert!(
        message.starts_with("cannot connect to PostgreSQL at agm@127.0.0.1:1/agm:"),
        "{message}"
    );
    assert!(!message.contains("hunter2"), "{message}");

    let err = Store::open_postgres("mysql://x", key(), PostgresOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::PostgresUrl { .. }), "{err}");

    let Some(_) = PgSchema::create().await else {
        return;
    };
    let missing_db = format!(
        "{}_no_such_db_{:08x}",
        common::base_url().split('?').next().unwrap(),
        rand::random::<u32>()
    );
    let err = Store::open_postgres(&missing_db, key(), PostgresOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("does not exist"), "{err}");
}

/// The local server speaks TLS with a self-signed certificate: `require` encrypts
/// without checking it (libpq's meaning), `verify-full` against the public roots
/// refuses it, and `verify-ca` with the certificate as `sslrootcert` accepts it.
#[tokio::test]
async fn tls_follows_libpqs_sslmodes() {
    let Some(schema) = PgSchema::create().await else {
        return;
    };
    let client = schema.client().await;
    let ssl: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    let cert: String = client
        .query_one("SHOW ssl_cert_file", &[])
        .await
        .unwrap()
        .get(0);
    if ssl != "on" || !std::path::Path::new(&cert).is_file() {
        eprintln!("skipped: this PostgreSQL does not speak TLS (ssl = {ssl})");
        return;
    }
    let app = format!("agm_tls_{:08x}", rand::random::<u32>());
    let url = |query: &str| {
        schema.url.replace(
            "sslmode=disable",
            &format!("{query}&application_name={app}"),
        )
    };
    let key = SharedKey::Env(random_key());
    let store = Store::open_postgres(
        &url("sslmode=require"),
        key.clone(),
        PostgresOptions::default(),
    )
    .await
    .unwrap();
    store.list_accounts().await.unwrap();
    let encrypted: Option<bool> = schema
        .client()
        .await
        .query_one(
            "SELECT bool_and(ssl) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE application_name = $1",
            &[&app],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(encrypted, Some(true), "agm's connections use TLS");
    drop(store);

    let err = unreachable_at(&url("sslmode=verify-full"), key.clone()).await;
    assert!(err.to_string().contains("TLS"), "{err}");

    let verify_ca = url(&format!("sslmode=verify-ca&sslrootcert={cert}"));
    Store::open_postgres(&verify_ca, key, PostgresOptions::default())
        .await
        .unwrap();
}
