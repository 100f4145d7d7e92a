//! Every row as stored, for `agm store migrate` (copying and checksums).

use rusqlite::{Connection, params};

use super::SqliteStore;
use crate::error::StoreError;
use crate::raw::{RawAccount, RawAudit, RawKeyRow, RawRequest, RawSetting, limit_to_i64};

fn all<T>(
    conn: &Connection,
    sql: &str,
    map: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>, StoreError> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map([], map)?.collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

impl SqliteStore {
    pub(crate) async fn dump_accounts(&self) -> Result<Vec<RawAccount>, StoreError> {
        self.run(|c| {
            all(
                c,
                &format!(
                    "SELECT {} FROM accounts ORDER BY id",
                    super::accounts::COLUMNS
                ),
                super::accounts::raw_account,
            )
        })
        .await
    }

    pub(crate) async fn dump_client_keys(&self) -> Result<Vec<RawKeyRow>, StoreError> {
        self.run(|c| {
            all(
                c,
                &format!(
                    "SELECT {}, secret_sha256 FROM client_keys ORDER BY id",
                    super::client_keys::COLUMNS
                ),
                |row| {
                    Ok(RawKeyRow {
                        key: super::client_keys::raw_key(row)?,
                        secret_sha256: row.get(super::client_keys::HASH_INDEX)?,
                    })
                },
            )
        })
        .await
    }

    pub(crate) async fn dump_settings(&self) -> Result<Vec<RawSetting>, StoreError> {
        self.run(|c| {
            all(
                c,
                "SELECT key, value, updated_at FROM settings ORDER BY key",
                |row| {
                    Ok(RawSetting {
                        key: row.get(0)?,
                        value: row.get(1)?,
                        updated_at: row.get(2)?,
                    })
                },
            )
        })
        .await
    }

    /// Up to `limit` audit rows with ids above `after`, by id.
    pub(crate) async fn dump_audit(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<RawAudit>, StoreError> {
        self.run(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, at, kind, subject, detail FROM audit_log WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let rows = stmt
                .query_map(params![after, limit_to_i64(limit)], super::logs::raw_audit)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// Up to `limit` request-log rows with ids above `after`, by id.
    pub(crate) async fn dump_requests(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<RawRequest>, StoreError> {
        self.run(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {} FROM request_log WHERE id > ?1 ORDER BY id LIMIT ?2",
                super::logs::REQUEST_COLUMNS
            ))?;
            let rows = stmt
                .query_map(
                    params![after, limit_to_i64(limit)],
                    super::logs::raw_request,
                )?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// How many rows of a log (`audit_log` or `request_log`) have ids up to `id`.
    pub(crate) async fn count_log_up_to(
        &self,
        table: &'static str,
        id: i64,
    ) -> Result<i64, StoreError> {
        self.run(move |c| {
            Ok(c.query_row(
                &format!("SELECT count(*) FROM {table} WHERE id <= ?1"),
                [id],
                |row| row.get(0),
            )?)
        })
        .await
    }
}
