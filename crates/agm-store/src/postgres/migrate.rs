//! Versioned schema migrations for PostgreSQL: `migrations/postgres/NNNN_name.sql`,
//! applied in order, each in its own transaction, the versions recorded in
//! `agm_schema_migrations`. The caller holds the store's advisory lock, so replicas
//! opening at once migrate one after the other.

use tokio_postgres::Client;

use crate::error::StoreError;
use crate::sqlite::migrate::Migration;
use crate::timestamp::now_millis;

/// Every migration, oldest first. Never edit one that has shipped: add a new one.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_initial",
        sql: include_str!("../../migrations/postgres/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "0002_request_log_context_scaled",
        sql: include_str!("../../migrations/postgres/0002_request_log_context_scaled.sql"),
    },
    Migration {
        version: 3,
        name: "0003_client_key_policy",
        sql: include_str!("../../migrations/postgres/0003_client_key_policy.sql"),
    },
];

pub(crate) fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Brings the schema up to date; `db` names the database in messages.
pub(crate) async fn migrate(client: &mut Client, db: &str) -> Result<(), StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS agm_schema_migrations (\
             version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        )
        .await?;
    let known = latest_version();
    let current = current_version(client).await?;
    if current > known {
        return Err(StoreError::DatabaseTooNew {
            path: db.to_owned(),
            found: current,
            known,
        });
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > current) {
        let tx = client.transaction().await?;
        tx.batch_execute(migration.sql)
            .await
            .map_err(|source| StoreError::PostgresMigration {
                migration: migration.name,
                source,
            })?;
        tx.execute(
            "INSERT INTO agm_schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            &[
                &i32::try_from(migration.version).unwrap_or(i32::MAX),
                &migration.name,
                &now_millis(),
            ],
        )
        .await?;
        tx.commit().await?;
        tracing::info!(
            db,
            migration = migration.name,
            "applied a database migration"
        );
    }
    Ok(())
}

pub(crate) async fn current_version(client: &Client) -> Result<u32, StoreError> {
    let row = client
        .query_one(
            "SELECT COALESCE(max(version), 0) FROM agm_schema_migrations",
            &[],
        )
        .await?;
    let version: i32 = row.try_get(0)?;
    Ok(u32::try_from(version).unwrap_or(0))
}
