//! Settings: small JSON values by key.

use rusqlite::{Connection, OptionalExtension, params};

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
