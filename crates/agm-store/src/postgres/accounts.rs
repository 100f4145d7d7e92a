//! Account queries.

use tokio_postgres::Row;

use super::{ID_TRIES, PgStore, random_id, violates};
use crate::account::{AccountState, Pool};
use crate::error::StoreError;
use crate::raw::{RawAccount, parse_pool, state_columns};
use crate::rows::{AccountRow, SealedNewAccount, SealedTokenUpdate};
use crate::timestamp::to_millis;

pub(super) const COLUMNS: &str = "id, email, pool, refresh_token, access_token, access_expires_at, \
     project_id, tier, state, state_reason, state_url, created_at, updated_at";

pub(super) fn raw_account(row: &Row) -> Result<RawAccount, tokio_postgres::Error> {
    Ok(RawAccount {
        id: row.try_get(0)?,
        email: row.try_get(1)?,
        pool: row.try_get(2)?,
        refresh_token: row.try_get(3)?,
        access_token: row.try_get(4)?,
        access_expires_at: row.try_get(5)?,
        project_id: row.try_get(6)?,
        tier: row.try_get(7)?,
        state: row.try_get(8)?,
        state_reason: row.try_get(9)?,
        state_url: row.try_get(10)?,
        created_at: row.try_get(11)?,
        updated_at: row.try_get(12)?,
    })
}

fn check_all(rows: &[Row]) -> Result<Vec<AccountRow>, StoreError> {
    rows.iter().map(|row| raw_account(row)?.check()).collect()
}

impl PgStore {
    /// One statement: inserts, or on the same (pool, e-mail) updates the tokens, keeping
    /// the id, state and `created_at`, as SQLite's transaction does.
    pub(crate) async fn upsert_account(
        &self,
        account: SealedNewAccount,
        now: i64,
    ) -> Result<AccountRow, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&format!(
                "INSERT INTO accounts (id, email, pool, refresh_token, access_token, access_expires_at, \
                 project_id, tier, state, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9, $9) \
                 ON CONFLICT (pool, email) DO UPDATE SET refresh_token = EXCLUDED.refresh_token, \
                 access_token = EXCLUDED.access_token, access_expires_at = EXCLUDED.access_expires_at, \
                 project_id = COALESCE(EXCLUDED.project_id, accounts.project_id), \
                 tier = COALESCE(EXCLUDED.tier, accounts.tier), updated_at = EXCLUDED.updated_at \
                 RETURNING {COLUMNS}"
            ))
            .await?;
        let expires = account.access_expires_at.map(to_millis);
        for _ in 0..ID_TRIES {
            let id = random_id();
            let inserted = conn
                .query_one(
                    &stmt,
                    &[
                        &id,
                        &account.email,
                        &account.pool.as_str(),
                        &account.refresh_token,
                        &account.access_token,
                        &expires,
                        &account.project_id,
                        &account.tier,
                        &now,
                    ],
                )
                .await;
            match inserted {
                Ok(row) => return raw_account(&row)?.check(),
                Err(e) if violates(&e, "accounts_pkey") => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(StoreError::Internal(
            "no free id found in accounts".to_owned(),
        ))
    }

    pub(crate) async fn list_accounts(&self) -> Result<Vec<AccountRow>, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM accounts ORDER BY created_at, id"
            ))
            .await?;
        check_all(&conn.query(&stmt, &[]).await?)
    }

    /// By id, else by e-mail (which must then name one account only).
    pub(crate) async fn get_account(
        &self,
        id_or_email: String,
    ) -> Result<Option<AccountRow>, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM accounts WHERE id = $1 \
                 UNION ALL (SELECT {COLUMNS} FROM accounts WHERE email = $1 \
                 AND NOT EXISTS (SELECT 1 FROM accounts WHERE id = $1) ORDER BY created_at, id)"
            ))
            .await?;
        let mut rows = check_all(&conn.query(&stmt, &[&id_or_email]).await?)?;
        match rows.len() {
            0 | 1 => Ok(rows.pop()),
            _ => Err(StoreError::ambiguous_account(
                &id_or_email,
                rows.iter().map(|r| r.id.as_str()),
            )),
        }
    }

    /// The id of the account named by id or e-mail.
    pub(crate) async fn account_id(
        &self,
        id_or_email: String,
    ) -> Result<Option<String>, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached(
                "SELECT id FROM accounts WHERE id = $1 \
                 UNION ALL (SELECT id FROM accounts WHERE email = $1 \
                 AND NOT EXISTS (SELECT 1 FROM accounts WHERE id = $1) ORDER BY created_at, id)",
            )
            .await?;
        let mut ids = conn
            .query(&stmt, &[&id_or_email])
            .await?
            .iter()
            .map(|r| r.try_get::<_, String>(0))
            .collect::<Result<Vec<_>, _>>()?;
        match ids.len() {
            0 | 1 => Ok(ids.pop()),
            _ => Err(StoreError::ambiguous_account(
                &id_or_email,
                ids.iter().map(String::as_str),
            )),
        }
    }

    /// The pool and e-mail of an account: what its secrets are sealed for.
    pub(crate) async fn account_identity(
        &self,
        id: String,
    ) -> Result<Option<(Pool, String)>, StoreError> {
        let conn = self.conn().await?;
        let stmt = conn
            .prepare_cached("SELECT pool, email FROM accounts WHERE id = $1")
            .await?;
        let Some(row) = conn.query_opt(&stmt, &[&id]).await? else {
            return Ok(None);
        };
        Ok(Some((parse_pool(row.try_get(0)?)?, row.try_get(1)?)))
    }

    pub(crate) async fn remove_account(&self, id: String) -> Result<bool, StoreError> {
        self.execute("DELETE FROM accounts WHERE id = $1", &[&id])
            .await
            .map(|n| n > 0)
    }

    pub(crate) async fn set_account_state(
        &self,
        id: String,
        state: AccountState,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (name, reason, url) = state_columns(&state);
        self.execute(
            "UPDATE accounts SET state = $2, state_reason = $3, state_url = $4, updated_at = $5 WHERE id = $1",
            &[&id, &name, &reason, &url, &now],
        )
        .await
        .map(|n| n > 0)
    }

    pub(crate) async fn update_tokens(
        &self,
        id: String,
        tokens: SealedTokenUpdate,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.execute(
            "UPDATE accounts SET access_token = $2, access_expires_at = $3, \
             refresh_token = COALESCE($4, refresh_token), updated_at = $5 WHERE id = $1",
            &[
                &id,
                &tokens.access_token,
                &to_millis(tokens.access_expires_at),
                &tokens.refresh_token,
                &now,
            ],
        )
        .await
        .map(|n| n > 0)
    }

    pub(crate) async fn set_project(
        &self,
        id: String,
        project_id: Option<String>,
        tier: Option<String>,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.execute(
            "UPDATE accounts SET project_id = $2, tier = $3, updated_at = $4 WHERE id = $1",
            &[&id, &project_id, &tier, &now],
        )
        .await
        .map(|n| n > 0)
    }
}
