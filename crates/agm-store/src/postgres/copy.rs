//! Every row as stored, and writing rows as they are: the PostgreSQL side of
//! `agm store migrate` (copying and checksums).

use tokio_postgres::types::ToSql;

use super::accounts::{COLUMNS as ACCOUNT_COLUMNS, raw_account};
use super::client_keys::{COLUMNS as KEY_COLUMNS, HASH_INDEX, policy_params, raw_key};
use super::logs::{
    AUDIT_COLUMNS, REQUEST_COLUMNS, RequestColumns, raw_audit, raw_request, request_arrays,
};
use super::{PgStore, SET_META};
use crate::error::StoreError;
use crate::raw::{RawAccount, RawAudit, RawKeyRow, RawRequest, RawSetting, limit_to_i64};

/// The tables a store holds, in the order they are copied.
pub(crate) const TABLES: [&str; 5] = [
    "accounts",
    "client_keys",
    "settings",
    "audit_log",
    "request_log",
];

impl PgStore {
    pub(crate) async fn dump_accounts(&self) -> Result<Vec<RawAccount>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY id"),
                &[],
            )
            .await?;
        Ok(rows.iter().map(raw_account).collect::<Result<_, _>>()?)
    }

    pub(crate) async fn dump_client_keys(&self) -> Result<Vec<RawKeyRow>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                &format!("SELECT {KEY_COLUMNS}, secret_sha256 FROM client_keys ORDER BY id"),
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(RawKeyRow {
                    key: raw_key(row)?,
                    secret_sha256: row.try_get(HASH_INDEX)?,
                })
            })
            .collect()
    }

    pub(crate) async fn dump_settings(&self) -> Result<Vec<RawSetting>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "SELECT key, value, updated_at FROM settings ORDER BY key",
                &[],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(RawSetting {
                    key: row.try_get(0)?,
                    value: row.try_get(1)?,
                    updated_at: row.try_get(2)?,
                })
            })
            .collect()
    }

    pub(crate) async fn dump_audit(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<RawAudit>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                &format!(
                    "SELECT {AUDIT_COLUMNS} FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2"
                ),
                &[&after, &limit_to_i64(limit)],
            )
            .await?;
        Ok(rows.iter().map(raw_audit).collect::<Result<_, _>>()?)
    }

    pub(crate) async fn dump_requests(
        &self,
        after: i64,
        limit: usize,
    ) -> Result<Vec<RawRequest>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                &format!(
                    "SELECT {REQUEST_COLUMNS} FROM request_log WHERE id > $1 ORDER BY id LIMIT $2"
                ),
                &[&after, &limit_to_i64(limit)],
            )
            .await?;
        Ok(rows.iter().map(raw_request).collect::<Result<_, _>>()?)
    }

    pub(crate) async fn count_log_up_to(
        &self,
        table: &'static str,
        id: i64,
    ) -> Result<i64, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_one(
                &format!("SELECT count(*) FROM {table} WHERE id <= $1"),
                &[&id],
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    /// The highest id in a log, 0 if it is empty.
    pub(crate) async fn max_log_id(&self, table: &'static str) -> Result<i64, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_one(&format!("SELECT COALESCE(max(id), 0) FROM {table}"), &[])
            .await?;
        Ok(row.try_get(0)?)
    }

    /// How many rows each of [`TABLES`] holds.
    pub(crate) async fn table_counts(&self) -> Result<Vec<(&'static str, i64)>, StoreError> {
        let conn = self.conn().await?;
        let mut counts = Vec::with_capacity(TABLES.len());
        for table in TABLES {
            let row = conn
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await?;
            counts.push((table, row.try_get(0)?));
        }
        Ok(counts)
    }

    pub(crate) async fn meta(&self, name: &str) -> Result<Option<String>, StoreError> {
        let conn = self.conn().await?;
        let row = conn
            .query_opt("SELECT value FROM agm_meta WHERE name = $1", &[&name])
            .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    pub(crate) async fn set_meta(&self, name: &str, value: &str) -> Result<(), StoreError> {
        self.execute(SET_META, &[&name, &value]).await.map(drop)
    }

    /// Makes `accounts` hold exactly `rows`, in one transaction.
    pub(crate) async fn replace_accounts(&self, rows: Vec<RawAccount>) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let ids: Vec<&str> = rows.iter().map(|r| r.id.as_str()).collect();
        tx.execute("DELETE FROM accounts WHERE id <> ALL($1)", &[&ids])
            .await?;
        let stmt = tx
            .prepare(&format!(
                "INSERT INTO accounts ({ACCOUNT_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                 ON CONFLICT (id) DO UPDATE SET email = EXCLUDED.email, pool = EXCLUDED.pool, \
                 refresh_token = EXCLUDED.refresh_token, access_token = EXCLUDED.access_token, \
                 access_expires_at = EXCLUDED.access_expires_at, project_id = EXCLUDED.project_id, \
                 tier = EXCLUDED.tier, state = EXCLUDED.state, state_reason = EXCLUDED.state_reason, \
                 state_url = EXCLUDED.state_url, created_at = EXCLUDED.created_at, \
                 updated_at = EXCLUDED.updated_at"
            ))
            .await?;
        for r in &rows {
            let params: [&(dyn ToSql + Sync); 13] = [
                &r.id,
                &r.email,
                &r.pool,
                &r.refresh_token,
                &r.access_token,
                &r.access_expires_at,
                &r.project_id,
                &r.tier,
                &r.state,
                &r.state_reason,
                &r.state_url,
                &r.created_at,
                &r.updated_at,
            ];
            tx.execute(&stmt, &params).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Makes `client_keys` hold exactly `rows`, in one transaction.
    pub(crate) async fn replace_client_keys(&self, rows: Vec<RawKeyRow>) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let ids: Vec<&str> = rows.iter().map(|r| r.key.id.as_str()).collect();
        tx.execute("DELETE FROM client_keys WHERE id <> ALL($1)", &[&ids])
            .await?;
        let stmt = tx
            .prepare(&format!(
                "INSERT INTO client_keys ({KEY_COLUMNS}, secret_sha256) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                 ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, prefix = EXCLUDED.prefix, \
                 created_at = EXCLUDED.created_at, last_used_at = EXCLUDED.last_used_at, \
                 revoked_at = EXCLUDED.revoked_at, models = EXCLUDED.models, rpm = EXCLUDED.rpm, \
                 concurrency = EXCLUDED.concurrency, daily_tokens = EXCLUDED.daily_tokens, \
                 daily_requests = EXCLUDED.daily_requests, expires_at = EXCLUDED.expires_at, \
                 secret_sha256 = EXCLUDED.secret_sha256"
            ))
            .await?;
        for r in &rows {
            let k = &r.key;
            let mut params: Vec<&(dyn ToSql + Sync)> = vec![
                &k.id,
                &k.name,
                &k.prefix,
                &k.created_at,
                &k.last_used_at,
                &k.revoked_at,
            ];
            params.extend(policy_params(&k.policy));
            params.push(&r.secret_sha256);
            tx.execute(&stmt, &params).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Makes `settings` hold exactly `rows`, in one transaction.
    pub(crate) async fn replace_settings(&self, rows: Vec<RawSetting>) -> Result<(), StoreError> {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let keys: Vec<&str> = rows.iter().map(|r| r.key.as_str()).collect();
        tx.execute("DELETE FROM settings WHERE key <> ALL($1)", &[&keys])
            .await?;
        let stmt = tx
            .prepare(
                "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at",
            )
            .await?;
        for r in &rows {
            tx.execute(&stmt, &[&r.key, &r.value, &r.updated_at])
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Makes the audit log's ids in (`after`, the last row's id] hold exactly `rows`
    /// (sorted by id), in one transaction. Log rows never change, so one already there
    /// is kept.
    pub(crate) async fn mirror_audit(
        &self,
        after: i64,
        rows: Vec<RawAudit>,
    ) -> Result<(), StoreError> {
        let Some(last) = rows.last().map(|r| r.id) else {
            return Ok(());
        };
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        tx.execute(
            "DELETE FROM audit_log WHERE id > $1 AND id <= $2 AND id <> ALL($3)",
            &[&after, &last, &ids],
        )
        .await?;
        let at: Vec<i64> = rows.iter().map(|r| r.at).collect();
        let kind: Vec<&str> = rows.iter().map(|r| r.kind.as_str()).collect();
        let subject: Vec<&str> = rows.iter().map(|r| r.subject.as_str()).collect();
        let detail: Vec<&str> = rows.iter().map(|r| r.detail.as_str()).collect();
        tx.execute(
            &format!(
                "INSERT INTO audit_log ({AUDIT_COLUMNS}) SELECT * FROM \
                 UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::TEXT[]) \
                 ON CONFLICT (id) DO NOTHING"
            ),
            &[&ids, &at, &kind, &subject, &detail],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// [`PgStore::mirror_audit`] for the request log.
    pub(crate) async fn mirror_requests(
        &self,
        after: i64,
        rows: Vec<RawRequest>,
    ) -> Result<(), StoreError> {
        let Some(last) = rows.last().map(|r| r.id) else {
            return Ok(());
        };
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await?;
        let columns = RequestColumns::new(rows);
        let params = columns.with_id();
        tx.execute(
            "DELETE FROM request_log WHERE id > $1 AND id <= $2 AND id <> ALL($3)",
            &[&after, &last, params[0]],
        )
        .await?;
        tx.execute(
            &format!(
                "INSERT INTO request_log ({REQUEST_COLUMNS}) SELECT * FROM \
                 UNNEST($1::BIGINT[], {}) ON CONFLICT (id) DO NOTHING",
                request_arrays(2)
            ),
            &params,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a log's rows with ids above `after`.
    pub(crate) async fn trim_log(&self, table: &'static str, after: i64) -> Result<(), StoreError> {
        self.execute(&format!("DELETE FROM {table} WHERE id > $1"), &[&after])
            .await
            .map(drop)
    }

    /// Moves each log's id sequence past the ids copied in, so new rows get new ids.
    pub(crate) async fn reset_log_sequences(&self) -> Result<(), StoreError> {
        let conn = self.conn().await?;
        for table in ["audit_log", "request_log"] {
            conn.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence('{table}', 'id'), \
                     COALESCE(max(id), 0) + 1, false) FROM {table}"
                ),
                &[],
            )
            .await?;
        }
        Ok(())
    }
}
