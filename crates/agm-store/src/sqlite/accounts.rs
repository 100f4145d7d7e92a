//! Account queries.

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::unused_id;
use crate::account::{AccountState, Pool};
use crate::error::StoreError;
use crate::raw::{RawAccount, parse_pool, state_columns};
use crate::rows::{AccountRow, SealedNewAccount, SealedTokenUpdate};
use crate::timestamp::to_millis;

pub(super) const COLUMNS: &str = "id, email, pool, refresh_token, access_token, access_expires_at, \
     project_id, tier, state, state_reason, state_url, created_at, updated_at";

/// A row as SQLite returns it, before the names and times are checked.
pub(super) fn raw_account(row: &Row<'_>) -> rusqlite::Result<RawAccount> {
    Ok(RawAccount {
        id: row.get(0)?,
        email: row.get(1)?,
        pool: row.get(2)?,
        refresh_token: row.get(3)?,
        access_token: row.get(4)?,
        access_expires_at: row.get(5)?,
        project_id: row.get(6)?,
        tier: row.get(7)?,
        state: row.get(8)?,
        state_reason: row.get(9)?,
        state_url: row.get(10)?,
        created_at: row.get(11)?,
        updated_at: row.get(12)?,
    })
}

fn query(
    conn: &Connection,
    filter: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<AccountRow>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM accounts {filter} ORDER BY created_at, id");
    let mut stmt = conn.prepare_cached(&sql)?;
    let raw = stmt
        .query_map(params, raw_account)?
        .collect::<Result<Vec<_>, _>>()?;
    raw.into_iter().map(RawAccount::check).collect()
}

fn by_id(conn: &Connection, id: &str) -> Result<Option<AccountRow>, StoreError> {
    Ok(query(conn, "WHERE id = ?1", [id])?.into_iter().next())
}

pub(super) fn upsert(
    conn: &mut Connection,
    account: &SealedNewAccount,
    now: i64,
) -> Result<AccountRow, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let existing: Option<String> = tx
        .query_row(
            "SELECT id FROM accounts WHERE pool = ?1 AND email = ?2",
            params![account.pool.as_str(), account.email],
            |row| row.get(0),
        )
        .optional()?;
    let expires = account.access_expires_at.map(to_millis);
    let id = match existing {
        Some(id) => {
            tx.execute(
                "UPDATE accounts SET refresh_token = ?2, access_token = ?3, access_expires_at = ?4, \
                 project_id = COALESCE(?5, project_id), tier = COALESCE(?6, tier), updated_at = ?7 \
                 WHERE id = ?1",
                params![
                    id,
                    account.refresh_token,
                    account.access_token,
                    expires,
                    account.project_id,
                    account.tier,
                    now
                ],
            )?;
            id
        }
        None => {
            let id = unused_id(&tx, "accounts")?;
            tx.execute(
                "INSERT INTO accounts (id, email, pool, refresh_token, access_token, access_expires_at, \
                 project_id, tier, state, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'active', ?9, ?9)",
                params![
                    id,
                    account.email,
                    account.pool.as_str(),
                    account.refresh_token,
                    account.access_token,
                    expires,
                    account.project_id,
                    account.tier,
                    now
                ],
            )?;
            id
        }
    };
    let row = by_id(&tx, &id)?.ok_or_else(|| StoreError::account_not_found(&id))?;
    tx.commit()?;
    Ok(row)
}

pub(super) fn list(conn: &Connection) -> Result<Vec<AccountRow>, StoreError> {
    query(conn, "", [])
}

/// By id, else by e-mail (which must then name one account only).
pub(super) fn get(conn: &Connection, id_or_email: &str) -> Result<Option<AccountRow>, StoreError> {
    if let Some(row) = by_id(conn, id_or_email)? {
        return Ok(Some(row));
    }
    let mut rows = query(conn, "WHERE email = ?1", [id_or_email])?;
    match rows.len() {
        0 | 1 => Ok(rows.pop()),
        _ => Err(StoreError::ambiguous_account(
            id_or_email,
            rows.iter().map(|r| r.id.as_str()),
        )),
    }
}

/// The id of the account named by id or e-mail.
pub(super) fn resolve_id(
    conn: &Connection,
    id_or_email: &str,
) -> Result<Option<String>, StoreError> {
    let by_id = conn
        .query_row(
            "SELECT id FROM accounts WHERE id = ?1",
            [id_or_email],
            |row| row.get::<_, String>(0),
        )
        .optional()?;
    if by_id.is_some() {
        return Ok(by_id);
    }
    let mut stmt =
        conn.prepare_cached("SELECT id FROM accounts WHERE email = ?1 ORDER BY created_at, id")?;
    let mut ids = stmt
        .query_map([id_or_email], |row| row.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    match ids.len() {
        0 | 1 => Ok(ids.pop()),
        _ => Err(StoreError::ambiguous_account(
            id_or_email,
            ids.iter().map(String::as_str),
        )),
    }
}

pub(super) fn identity(conn: &Connection, id: &str) -> Result<Option<(Pool, String)>, StoreError> {
    let found: Option<(String, String)> = conn
        .query_row(
            "SELECT pool, email FROM accounts WHERE id = ?1",
            [id],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    found
        .map(|(pool, email)| Ok((parse_pool(pool)?, email)))
        .transpose()
}

pub(super) fn remove(conn: &Connection, id: &str) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM accounts WHERE id = ?1", [id])? > 0)
}

pub(super) fn set_state(
    conn: &Connection,
    id: &str,
    state: &AccountState,
    now: i64,
) -> Result<bool, StoreError> {
    let (name, reason, url) = state_columns(state);
    let changed = conn.execute(
        "UPDATE accounts SET state = ?2, state_reason = ?3, state_url = ?4, updated_at = ?5 WHERE id = ?1",
        params![id, name, reason, url, now],
    )?;
    Ok(changed > 0)
}

pub(super) fn update_tokens(
    conn: &Connection,
    id: &str,
    tokens: &SealedTokenUpdate,
    now: i64,
) -> Result<bool, StoreError> {
    let changed = conn.execute(
        "UPDATE accounts SET access_token = ?2, access_expires_at = ?3, \
         refresh_token = COALESCE(?4, refresh_token), updated_at = ?5 WHERE id = ?1",
        params![
            id,
            tokens.access_token,
            to_millis(tokens.access_expires_at),
            tokens.refresh_token,
            now
        ],
    )?;
    Ok(changed > 0)
}

pub(super) fn set_project(
    conn: &Connection,
    id: &str,
    project_id: Option<&str>,
    tier: Option<&str>,
    now: i64,
) -> Result<bool, StoreError> {
    let changed = conn.execute(
        "UPDATE accounts SET project_id = ?2, tier = ?3, updated_at = ?4 WHERE id = ?1",
        params![id, project_id, tier, now],
    )?;
    Ok(changed > 0)
}
