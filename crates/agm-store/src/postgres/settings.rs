//! Settings: small JSON values by key, kept as text.

use super::{LOCK_SETTING, PgStore};
use crate::error::StoreError;
use crate::raw::parse_setting;

impl PgStore {
    pub(crate) async fn get_setting(
        &self,
        key: String,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached("SELECT value FROM settings WHERE key = $1")
            .await?;
        let Some(row) = conn.query_opt(&stmt, &[&key]).await? else {
            return Ok(None);
        };
        let text: String = row.try_get(0)?;
        parse_setting(&key, &text).map(Some)
    }

    pub(crate) async fn set_setting(
        &self,
        key: String,
        value: String,
        now: i64,
    ) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at",
            &[&key, &value, &now],
        )
        .await
        .map(drop)
    }

    /// Read-modify-write in one transaction: the row is locked (`FOR UPDATE`) while `f`
    /// runs; a missing row is guarded by an advisory lock on the key, so two writers
    /// that both find no row still take turns.
    pub(crate) async fn update_setting<E>(
        &self,
        key: String,
        now: i64,
        f: impl FnOnce(Option<serde_json::Value>) -> Result<Option<serde_json::Value>, E>,
    ) -> Result<Option<serde_json::Value>, E>
    where
        E: From<StoreError>,
    {
        let mut conn = self.conn().await?;
        let tx = conn.transaction().await.map_err(StoreError::from)?;
        let select = tx
            .prepare_cached("SELECT value FROM settings WHERE key = $1 FOR UPDATE")
            .await
            .map_err(StoreError::from)?;
        let mut row = tx
            .query_opt(&select, &[&key])
            .await
            .map_err(StoreError::from)?;
        if row.is_none() {
            tx.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext(COALESCE(current_schema(), '') || '/' || $2))",
                &[&LOCK_SETTING, &key],
            )
            .await
            .map_err(StoreError::from)?;
            // Whoever held the lock may have inserted it meanwhile.
            row = tx
                .query_opt(&select, &[&key])
                .await
                .map_err(StoreError::from)?;
        }
        let current = match row {
            Some(row) => {
                let text: String = row.try_get(0).map_err(StoreError::from)?;
                Some(parse_setting(&key, &text)?)
            }
            None => None,
        };
        let next = f(current)?;
        match &next {
            Some(value) => {
                tx.execute(
                    "INSERT INTO settings (key, value, updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at",
                    &[&key, &value.to_string(), &now],
                )
                .await
                .map_err(StoreError::from)?;
            }
            None => {
                tx.execute("DELETE FROM settings WHERE key = $1", &[&key])
                    .await
                    .map_err(StoreError::from)?;
            }
        }
        tx.commit().await.map_err(StoreError::from)?;
        Ok(next)
    }
}
