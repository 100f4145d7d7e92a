//! Settings: small JSON values by key.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::error::StoreError;

pub(super) fn get(conn: &Connection, key: &str) -> Result<Option<serde_json::Value>, StoreError> {
    let text: Option<String> = conn
        .query_row("SELECT value FROM settings WHERE key = ?1", [key], |row| {
            row.get(0)
        })
        .optional()?;
    text.map(|text| {
        serde_json::from_str(&text).map_err(|_| StoreError::InvalidValue {
            column: "settings.value",
            value: format!("(the value of {key}, not JSON)"),
        })
    })
    .transpose()
}

pub(super) fn set(conn: &Connection, key: &str, value: &str, now: i64) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO settings (key, value, updated_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        params![key, value, now],
    )?;
    Ok(())
}

/// Reads, changes and writes one setting in one `IMMEDIATE` transaction: the write lock
/// is taken before the read, so a writer in another process (the CLI beside a running
/// server) waits instead of being overwritten. `f` returns the new value, or `None` to
/// leave the setting as it is. Returns the value stored afterwards.
pub(super) fn update<F>(
    conn: &mut Connection,
    key: &str,
    now: i64,
    f: F,
) -> Result<Option<serde_json::Value>, StoreError>
where
    F: FnOnce(Option<serde_json::Value>) -> Option<serde_json::Value>,
{
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current = get(&tx, key)?;
    let after = match f(current.clone()) {
        Some(value) => {
            set(&tx, key, &value.to_string(), now)?;
            Some(value)
        }
        None => current,
    };
    tx.commit()?;
    Ok(after)
}
