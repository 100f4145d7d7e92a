//! What the test files share: stores of each backend, and a PostgreSQL schema of its own
//! for each test, dropped at the end.
//!
//! The tests use the PostgreSQL at `AGM_TEST_POSTGRES_URL`, by default
//! `postgres://postgres@127.0.0.1:5432/test` (CI starts it). Where it does not answer
//! they fail, saying so, unless `AGM_TEST_NO_POSTGRES=1`: then they pass without
//! running.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use agm_store::{PostgresOptions, Secret, SharedKey, Store};
use base64::Engine;

const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable";

pub fn base_url() -> String {
    std::env::var("AGM_TEST_POSTGRES_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
}

/// A random seal key, as `AGM_SEAL_KEY` holds one.
pub fn random_key() -> Secret {
    Secret::new(base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>()))
}

/// A schema of its own in the test database, dropped (with everything in it) on drop.
pub struct PgSchema {
    pub name: String,
    /// The database URL with `search_path` set to the schema.
    pub url: String,
}

impl PgSchema {
    /// A new empty schema; `None` (the test then passes without running) only where
    /// PostgreSQL does not answer and `AGM_TEST_NO_POSTGRES=1`.
    pub async fn create() -> Option<PgSchema> {
        let base = base_url();
        let client = match connect(&base).await {
            Ok(client) => client,
            Err(e) if std::env::var("AGM_TEST_NO_POSTGRES").as_deref() == Ok("1") => {
                eprintln!(
                    "skipped: PostgreSQL at {base} does not answer ({e}) and AGM_TEST_NO_POSTGRES=1"
                );
                return None;
            }
            Err(e) => panic!(
                "PostgreSQL at {base} does not answer ({e}): start it (the store's tests need it), \
                 point AGM_TEST_POSTGRES_URL at one, or set AGM_TEST_NO_POSTGRES=1 to skip these tests"
            ),
        };
        let name = format!("agm_t_{:016x}", rand::random::<u64>());
        client
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await
            .unwrap();
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
        Some(PgSchema { name, url })
    }

    /// A store on this schema with `key`.
    pub async fn open_with(&self, key: SharedKey) -> Store {
        Store::open_postgres(&self.url, key, PostgresOptions::default())
            .await
            .unwrap()
    }

    /// A store on this schema with a new random key.
    pub async fn open(&self) -> Store {
        self.open_with(SharedKey::Env(random_key())).await
    }

    /// A plain connection to the schema, for looking at the rows themselves.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await.unwrap()
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let (base, name) = (base_url(), self.name.clone());
        // Drop runs inside a test's runtime: a thread of its own with its own runtime.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let client = connect(&base).await?;
                client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                    .await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("could not drop the test schema {}", self.name);
        }
    }
}

pub async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// 20 read-modify-write increments of one setting at once, spread over `stores`
/// (clones of one store, or replicas sharing a database): returns the final count.
pub async fn race_increments(stores: &[Store]) -> Option<serde_json::Value> {
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = stores[i % stores.len()].clone();
            tokio::spawn(async move {
                store
                    .update_setting("hits", |old| {
                        let n = old.and_then(|v| v.as_i64()).unwrap_or(0);
                        Ok::<_, agm_store::StoreError>(Some(serde_json::json!(n + 1)))
                    })
                    .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    stores[0].get_setting("hits").await.unwrap()
}

/// Runs each named `async fn(Store)` against an in-memory SQLite store and a PostgreSQL
/// store on a schema of its own: `mod NAME { fn sqlite(), fn postgres() }`.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$name(agm_store::Store::open_in_memory().await.unwrap()).await;
            }

            #[tokio::test]
            async fn postgres() {
                let Some(schema) = $crate::common::PgSchema::create().await else {
                    return;
                };
                super::$name(schema.open().await).await;
            }
        }
    )*};
}
