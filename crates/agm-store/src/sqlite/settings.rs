//! Settings: small JSON values by key.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::error::StoreError;
use crate::raw::parse_setting;

pub(super) fn get(conn: &Connection, key: &str) -> Result<Option<serde_json::Value>, StoreError> {
    let text: Option<String> = conn
        .query_row("SELECT value FROM settings WHERE key = ?1", [key], |row| {
            row.get(0)
        })
        .optional()?;
    text.map(|text| parse_setting(key, &text)).transpose()
}

pub(super) fn set(conn: &Connection, key: &str, value: &str, now: i64) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        params![key, value, now],
    )?;
    Ok(())
}

/// Reads, lets `f` decide, writes (or deletes, on `None`) in one `BEGIN IMMEDIATE`
/// transaction. The outer result is the store's, the inner `f`'s (which rolls back).
pub(super) fn update<E>(
    conn: &mut Connection,
    key: &str,
    now: i64,
    f: impl FnOnce(Option<serde_json::Value>) -> Result<Option<serde_json::Value>, E>,
) -> Result<Result<Option<serde_json::Value>, E>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current = get(&tx, key)?;
    let next = match f(current) {
        Ok(next) => next,
        // Dropping the transaction rolls it back.
        Err(e) => return Ok(Err(e)),
    };
    match &next {
        Some(value) => set(&tx, key, &value.to_string(), now)?,
        None => {
            tx.execute("DELETE FROM settings WHERE key = ?1", [key])?;
        }
    }
    tx.commit()?;
    Ok(Ok(next))
}
