//! Client key queries. Only hashes are stored.

use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::{ID_TRIES, PgStore, random_id, violates};
use crate::client_key::{ClientKey, last_used_is_stale, matching_key};
use crate::error::StoreError;
use crate::raw::{RawKey, RawPolicy};

pub(super) const COLUMNS: &str = "id, name, prefix, created_at, last_used_at, revoked_at, \
     models, rpm, concurrency, daily_tokens, daily_requests, expires_at";
/// Where `secret_sha256` is when selected after [`COLUMNS`].
pub(super) const HASH_INDEX: usize = 12;

pub(super) fn raw_key(row: &Row) -> Result<RawKey, tokio_postgres::Error> {
    Ok(RawKey {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
        prefix: row.try_get(2)?,
        created_at: row.try_get(3)?,
        last_used_at: row.try_get(4)?,
        revoked_at: row.try_get(5)?,
        policy: RawPolicy {
            models: row.try_get(6)?,
            rpm: row.try_get(7)?,
            concurrency: row.try_get(8)?,
            daily_tokens: row.try_get(9)?,
            daily_requests: row.try_get(10)?,
            expires_at: row.try_get(11)?,
        },
    })
}

/// The policy columns as parameters, in `COLUMNS` order.
pub(super) fn policy_params(policy: &RawPolicy) -> [&(dyn ToSql + Sync); 6] {
    [
        &policy.models,
        &policy.rpm,
        &policy.concurrency,
        &policy.daily_tokens,
        &policy.daily_requests,
        &policy.expires_at,
    ]
}

impl PgStore {
    pub(crate) async fn create_client_key(
        &self,
        name: String,
        prefix: String,
        secret_sha256: String,
        policy: RawPolicy,
        now: i64,
    ) -> Result<ClientKey, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(
                "INSERT INTO client_keys (id, name, prefix, secret_sha256, created_at, models, \
                 rpm, concurrency, daily_tokens, daily_requests, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .await?;
        for _ in 0..ID_TRIES {
            let id = random_id();
            let mut params: Vec<&(dyn ToSql + Sync)> =
                vec![&id, &name, &prefix, &secret_sha256, &now];
            params.extend(policy_params(&policy));
            match conn.execute(&stmt, &params).await {
                Ok(_) => {
                    return RawKey {
                        id,
                        name,
                        prefix,
                        created_at: now,
                        last_used_at: None,
                        revoked_at: None,
                        policy,
                    }
                    .check();
                }
                Err(e) if violates(&e, "client_keys_pkey") => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Internal(
            "no free id found in client_keys".to_owned(),
        ))
    }

    pub(crate) async fn list_client_keys(&self) -> Result<Vec<ClientKey>, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM client_keys ORDER BY created_at, id"
            ))
            .await?;
        conn.query(&stmt, &[])
            .await?
            .iter()
            .map(|row| raw_key(row)?.check())
            .collect()
    }

    /// Replaces the key's policy; `false` if there is no such key.
    pub(crate) async fn set_client_key_policy(
        &self,
        id: String,
        policy: RawPolicy,
    ) -> Result<bool, StoreError> {
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&id];
        params.extend(policy_params(&policy));
        self.execute(
            "UPDATE client_keys SET models = $2, rpm = $3, concurrency = $4, daily_tokens = $5, \
             daily_requests = $6, expires_at = $7 WHERE id = $1",
            &params,
        )
        .await
        .map(|n| n > 0)
    }

    pub(crate) async fn revoke_client_key(&self, id: String, now: i64) -> Result<bool, StoreError> {
        self.execute(
            "UPDATE client_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
            &[&id, &now],
        )
        .await
        .map(|n| n > 0)
    }

    /// Deletes every revoked key's row; returns the ids deleted, oldest first.
    pub(crate) async fn purge_revoked_client_keys(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.conn().await?;
        let rows = conn
            .query(
                "WITH gone AS (DELETE FROM client_keys WHERE revoked_at IS NOT NULL \
                 RETURNING id, created_at) SELECT id FROM gone ORDER BY created_at, id",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| r.try_get(0))
            .collect::<Result<Vec<String>, _>>()?)
    }

    /// The active key whose hash is `secret_sha256`. Candidates are narrowed by prefix,
    /// then every candidate's hash is compared in constant time.
    pub(crate) async fn verify_client_key(
        &self,
        prefix: String,
        secret_sha256: String,
        now: i64,
    ) -> Result<Option<ClientKey>, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS}, secret_sha256 FROM client_keys WHERE prefix = $1 AND revoked_at IS NULL"
            ))
            .await?;
        let candidates = conn
            .query(&stmt, &[&prefix])
            .await?
            .iter()
            .map(|row| Ok((raw_key(row)?, row.try_get::<_, String>(HASH_INDEX)?)))
            .collect::<Result<Vec<_>, tokio_postgres::Error>>()?;
        let Some(mut key) = matching_key(candidates, &secret_sha256) else {
            return Ok(None);
        };
        if last_used_is_stale(&key, now) {
            let stmt = conn
                .prepare_cached("UPDATE client_keys SET last_used_at = $2 WHERE id = $1")
                .await?;
            conn.execute(&stmt, &[&key.id, &now]).await?;
            key.last_used_at = Some(now);
        }
        key.check().map(Some)
    }
}
