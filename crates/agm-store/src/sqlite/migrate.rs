//! Versioned schema migrations: `migrations/NNNN_name.sql`, applied in order, each in
//! its own transaction, the version recorded in `PRAGMA user_version`.

use rusqlite::{Connection, TransactionBehavior};

use crate::error::StoreError;

pub(crate) struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, oldest first. Never edit one that has shipped: add a new one.
pub(crate) const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "0001_initial",
        sql: include_str!("../../migrations/0001_initial.sql"),
    },
    Migration {
        version: 2,
        name: "0002_request_log_details",
        sql: include_str!("../../migrations/0002_request_log_details.sql"),
    },
    Migration {
        version: 3,
        name: "0003_request_log_context_scaled",
        sql: include_str!("../../migrations/0003_request_log_context_scaled.sql"),
    },
    Migration {
        version: 4,
        name: "0004_client_key_policy",
        sql: include_str!("../../migrations/0004_client_key_policy.sql"),
    },
];

/// The schema version this build writes.
pub(crate) fn latest_version() -> u32 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Brings the schema up to date. Safe to run from two processes at once: each step
/// takes the write lock first and re-reads the version under it.
pub(crate) fn migrate(conn: &mut Connection, db: &str) -> Result<(), StoreError> {
    let known = latest_version();
    check_not_too_new(conn, db, known)?;
    for migration in MIGRATIONS {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current = user_version(&tx)?;
        if current > known {
            return Err(too_new(db, current, known));
        }
        if current >= migration.version {
            continue;
        }
        tx.execute_batch(migration.sql)
            .map_err(|source| StoreError::Migration {
                migration: migration.name,
                source,
            })?;
        tx.pragma_update(None, "user_version", migration.version)?;
        tx.commit()?;
        // A fresh in-memory store (`agm demo`, tests) is migrated every time: not news.
        if db == ":memory:" {
            tracing::debug!(
                db,
                migration = migration.name,
                "applied a database migration"
            );
        } else {
            tracing::info!(
                db,
                migration = migration.name,
                "applied a database migration"
            );
        }
    }
    Ok(())
}

fn check_not_too_new(conn: &Connection, db: &str, known: u32) -> Result<(), StoreError> {
    let current = user_version(conn)?;
    if current > known {
        return Err(too_new(db, current, known));
    }
    Ok(())
}

fn too_new(db: &str, found: u32, known: u32) -> StoreError {
    StoreError::DatabaseTooNew {
        path: db.to_owned(),
        found,
        known,
    }
}

pub(crate) fn user_version(conn: &Connection) -> Result<u32, StoreError> {
    Ok(conn.query_row("PRAGMA user_version", [], |row| row.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_follow_the_file_names() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            let expected = u32::try_from(i + 1).unwrap();
            assert_eq!(m.version, expected, "{}", m.name);
            assert!(m.name.starts_with(&format!("{expected:04}_")), "{}", m.name);
        }
    }

    #[test]
    fn migrating_twice_changes_nothing() {
        let mut conn = Connection::open_in_memory().unwrap();
        migrate(&mut conn, ":memory:").unwrap();
        assert_eq!(user_version(&conn).unwrap(), latest_version());
        migrate(&mut conn, ":memory:").unwrap();
        assert_eq!(user_version(&conn).unwrap(), latest_version());
        let tables: Vec<String> = conn
            .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            tables,
            [
                "accounts",
                "audit_log",
                "client_keys",
                "request_log",
                "settings"
            ]
        );
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.pragma_update(None, "user_version", 999).unwrap();
        let err = migrate(&mut conn, "/data/agm.db").unwrap_err();
        assert!(
            matches!(err, StoreError::DatabaseTooNew { found: 999, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("upgrade agm"));
    }

    #[test]
    fn a_failing_migration_leaves_no_trace() {
        let mut conn = Connection::open_in_memory().unwrap();
        // A table in the way makes the first migration fail half-way through.
        conn.execute_batch("CREATE TABLE client_keys (x INTEGER)")
            .unwrap();
        let err = migrate(&mut conn, ":memory:").unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::Migration {
                    migration: "0001_initial",
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(user_version(&conn).unwrap(), 0);
        let accounts: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE name = 'accounts'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(accounts, 0);
    }
}
