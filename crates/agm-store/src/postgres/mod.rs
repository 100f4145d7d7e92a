//! The PostgreSQL backend (cluster mode): a pool of tokio-postgres connections
//! (deadpool), each call a statement or a transaction. Several agm processes share one
//! database: every write is one statement or one transaction, and read-modify-writes
//! lock what they read.
//!
//! Opening takes a session-level advisory lock for the schema (one key per database
//! schema) on a connection of its own, migrates, lets the store check its seal key
//! ([`Setup`]), then lets go: replicas starting at once take turns.

mod accounts;
mod client_keys;
pub(crate) mod copy;
mod logs;
pub(crate) mod migrate;
mod settings;
mod tls;
pub(crate) mod url;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime,
};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::error::{StoreError, describe_pg};

/// The first half of the store's advisory lock keys; the second is a hash of the schema
/// name (or of the schema and a setting name).
const LOCK_SCHEMA: i32 = 0x6167_6d01; // "agm" 1
pub(crate) const LOCK_SETTING: i32 = 0x6167_6d02; // "agm" 2

#[derive(Clone)]
pub(crate) struct PgStore {
    pool: Pool,
    /// `user@host:port/database`: never the password.
    target: Arc<str>,
}

/// The connection [`PgStore::open`] migrated on, still holding the schema lock: the store
/// checks its seal key on it before anyone else opens. Dropping it lets go of the lock
/// (the connection closes).
pub(crate) struct Setup {
    client: Client,
}

impl PgStore {
    /// Connects to `url`, migrates under the schema lock, and returns the store with the
    /// locked connection.
    pub(crate) async fn open(
        url: &str,
        max_connections: usize,
    ) -> Result<(PgStore, Setup), StoreError> {
        let target = url::parse(url)?;
        let tls = tls::connector(target.check, target.root_cert.as_deref())?;
        let display: Arc<str> = Arc::from(target.display.as_str());
        let (mut client, connection) = target
            .config
            .connect(tls.clone())
            .await
            .map_err(|e| unreachable(&display, &e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %describe_pg(&e), "the PostgreSQL setup connection ended");
            }
        });
        client
            .execute(
                "SELECT pg_advisory_lock($1, hashtext(COALESCE(current_schema(), '')))",
                &[&LOCK_SCHEMA],
            )
            .await?;
        migrate::migrate(&mut client, &display).await?;

        let manager = Manager::from_config(
            target.config.clone(),
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(30)))
            .create_timeout(Some(Duration::from_secs(15)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| StoreError::Internal(format!("cannot build the connection pool: {e}")))?;
        Ok((
            PgStore {
                pool,
                target: display,
            },
            Setup { client },
        ))
    }

    /// `user@host:port/database`.
    pub(crate) fn target(&self) -> &str {
        &self.target
    }

    /// A connection from the pool.
    async fn conn(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|e| match e {
            PoolError::Backend(e) => unreachable(&self.target, &e),
            other => StoreError::PostgresUnreachable {
                target: self.target.to_string(),
                reason: other.to_string(),
            },
        })
    }
}

impl PgStore {
    /// One statement (prepared once per connection); the rows it changed.
    async fn execute(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn.prepare_cached(sql).await?;
        Ok(conn.execute(&stmt, params).await?)
    }
}

impl Setup {
    /// A value in `agm_meta`.
    pub(crate) async fn meta(&self, name: &str) -> Result<Option<String>, StoreError> {
        let row = self
            .client
            .query_opt("SELECT value FROM agm_meta WHERE name = $1", &[&name])
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    pub(crate) async fn set_meta(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.client.execute(SET_META, &[&name, &value]).await?;
        Ok(())
    }

    /// Every account's pool, e-mail and sealed refresh token.
    pub(crate) async fn sealed_refresh_tokens(
        &self,
    ) -> Result<Vec<(String, String, String)>, StoreError> {
        let rows = self
            .client
            .query(
                "SELECT pool, email, refresh_token FROM accounts ORDER BY created_at, id",
                &[],
            )
            .await?;
        rows.iter()
            .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
            .collect()
    }
}

/// Sets a value in `agm_meta`: parameters name, value.
pub(crate) const SET_META: &str = "INSERT INTO agm_meta (name, value) VALUES ($1, $2) \
     ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value";

fn unreachable(target: &str, e: &tokio_postgres::Error) -> StoreError {
    StoreError::PostgresUnreachable {
        target: target.to_owned(),
        reason: describe_pg(e),
    }
}

/// Whether `e` is a unique violation of `constraint`.
fn violates(e: &tokio_postgres::Error, constraint: &str) -> bool {
    e.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::UNIQUE_VIOLATION && db.constraint() == Some(constraint)
    })
}

/// A random 8-hex-character id; a clash with an existing one is a unique violation the
/// caller retries on.
fn random_id() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// How often a random id is drawn again after a clash.
const ID_TRIES: usize = 32;
