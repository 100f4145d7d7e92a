//! Client key queries. Only hashes are stored.

use rusqlite::{Connection, Row, TransactionBehavior, params};

use super::unused_id;
use crate::client_key::{ClientKey, last_used_is_stale, matching_key};
use crate::error::StoreError;
use crate::raw::{RawKey, RawPolicy};

pub(super) const COLUMNS: &str = "id, name, prefix, created_at, last_used_at, revoked_at, \
     models, rpm, concurrency, daily_tokens, daily_requests, expires_at";
/// Where `secret_sha256` is when selected after [`COLUMNS`].
pub(super) const HASH_INDEX: usize = 12;

pub(super) fn raw_key(row: &Row<'_>) -> rusqlite::Result<RawKey> {
    Ok(RawKey {
        id: row.get(0)?,
        name: row.get(1)?,
        prefix: row.get(2)?,
        created_at: row.get(3)?,
        last_used_at: row.get(4)?,
        revoked_at: row.get(5)?,
        policy: RawPolicy {
            models: row.get(6)?,
            rpm: row.get(7)?,
            concurrency: row.get(8)?,
            daily_tokens: row.get(9)?,
            daily_requests: row.get(10)?,
            expires_at: row.get(11)?,
        },
    })
}

pub(super) fn create(
    conn: &mut Connection,
    name: &str,
    prefix: &str,
    secret_sha256: &str,
    policy: RawPolicy,
    now: i64,
) -> Result<ClientKey, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let id = unused_id(&tx, "client_keys")?;
    tx.execute(
        "INSERT INTO client_keys (id, name, prefix, secret_sha256, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id, name, prefix, secret_sha256, now],
    )?;
    set_policy(&tx, &id, &policy)?;
    tx.commit()?;
    RawKey {
        id,
        name: name.to_owned(),
        prefix: prefix.to_owned(),
        created_at: now,
        last_used_at: None,
        revoked_at: None,
        policy,
    }
    .check()
}

/// Replaces the key's policy; `false` if there is no such key.
pub(super) fn set_policy(
    conn: &Connection,
    id: &str,
    policy: &RawPolicy,
) -> Result<bool, StoreError> {
    let changed = conn.execute(
        "UPDATE client_keys SET models = ?2, rpm = ?3, concurrency = ?4, daily_tokens = ?5, \
         daily_requests = ?6, expires_at = ?7 WHERE id = ?1",
        params![
            id,
            policy.models,
            policy.rpm,
            policy.concurrency,
            policy.daily_tokens,
            policy.daily_requests,
            policy.expires_at
        ],
    )?;
    Ok(changed > 0)
}

pub(super) fn list(conn: &Connection) -> Result<Vec<ClientKey>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM client_keys ORDER BY created_at, id"
    ))?;
    let raw = stmt
        .query_map([], raw_key)?
        .collect::<Result<Vec<_>, _>>()?;
    raw.into_iter().map(RawKey::check).collect()
}

pub(super) fn revoke(conn: &Connection, id: &str, now: i64) -> Result<bool, StoreError> {
    let changed = conn.execute(
        "UPDATE client_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, now],
    )?;
    Ok(changed > 0)
}

/// Deletes every revoked key's row; returns the ids deleted, oldest first.
pub(super) fn purge_revoked(conn: &mut Connection) -> Result<Vec<String>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let ids = {
        let mut stmt = tx.prepare(
            "SELECT id FROM client_keys WHERE revoked_at IS NOT NULL ORDER BY created_at, id",
        )?;
        stmt.query_map([], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?
    };
    tx.execute("DELETE FROM client_keys WHERE revoked_at IS NOT NULL", [])?;
    tx.commit()?;
    Ok(ids)
}

/// The active key whose hash is `secret_sha256`. Candidates are narrowed by prefix, then
/// every candidate's hash is compared in constant time.
pub(super) fn verify(
    conn: &Connection,
    prefix: &str,
    secret_sha256: &str,
    now: i64,
) -> Result<Option<ClientKey>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS}, secret_sha256 FROM client_keys WHERE prefix = ?1 AND revoked_at IS NULL"
    ))?;
    let candidates = stmt
        .query_map([prefix], |row| {
            Ok((raw_key(row)?, row.get::<_, String>(HASH_INDEX)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let Some(mut key) = matching_key(candidates, secret_sha256) else {
        return Ok(None);
    };
    if last_used_is_stale(&key, now) {
        conn.execute(
            "UPDATE client_keys SET last_used_at = ?2 WHERE id = ?1",
            params![key.id, now],
        )?;
        key.last_used_at = Some(now);
    }
    key.check().map(Some)
}
