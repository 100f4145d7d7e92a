//! Copying a store into PostgreSQL: what `agm store migrate --to postgres://…` does.
//!
//! Rows are copied as they are stored: sealed tokens stay sealed (the target is opened
//! with the source's seal key, [`Store::open_postgres_with_key_of`]), client keys stay
//! hashes, log rows keep their ids. The copy is
//!
//! - **checked**: at the end every table's row count and content checksum (the sum of
//!   a SHA-256 of every row's columns, so the order rows come in does not matter) are
//!   compared between the two stores, and every account's tokens must open in the
//!   target as they do in the source;
//! - **resumable**: the target records that it is being filled from this source
//!   (`agm_meta.copy`). Run again after an interruption, the copy makes each table the
//!   same as the source's: accounts, keys and settings are written whole in one
//!   transaction each, logs in batches by id, each batch a transaction, going on after
//!   the last id already there. Nothing is duplicated;
//! - **refused** into a database that holds data from anywhere else, or that was
//!   filled from this store, marked done, and has changed since (a cluster is using it).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::postgres::PgStore;
use crate::postgres::copy::TABLES;
use crate::raw::{Digestible, RawAudit, RawRequest};
use crate::store::{Backend, Store, dispatch};
use crate::timestamp::now_millis;

/// How [`Store::copy_into`] copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyOptions {
    /// Log rows per batch (one transaction each).
    pub batch_size: usize,
}

impl Default for CopyOptions {
    fn default() -> CopyOptions {
        CopyOptions { batch_size: 2000 }
    }
}

/// Where a copy is, for a progress line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyProgress {
    pub table: &'static str,
    /// Rows of this table written so far in this run.
    pub rows: u64,
}

/// One table after a copy: both sides' counts and checksums.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCheck {
    pub table: &'static str,
    pub source_rows: u64,
    pub target_rows: u64,
    /// 32 hex digits.
    pub source_checksum: String,
    pub target_checksum: String,
}

impl TableCheck {
    pub fn matches(&self) -> bool {
        self.source_rows == self.target_rows && self.source_checksum == self.target_checksum
    }
}

impl fmt::Display for TableCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {} rows, checksum {}",
            self.table, self.source_rows, self.source_checksum
        )?;
        if !self.matches() {
            write!(
                f,
                " in the source, but {} rows, checksum {} in the target",
                self.target_rows, self.target_checksum
            )?;
        }
        Ok(())
    }
}

/// What [`Store::copy_into`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// This run went on with a copy an earlier run began.
    pub resumed: bool,
    /// An earlier run had finished the copy, and the target still matches: nothing was
    /// written.
    pub already_done: bool,
    /// Every table, in the order copied; all match.
    pub tables: Vec<TableCheck>,
    /// Accounts whose tokens open in the target.
    pub accounts_open: usize,
    /// Ids of accounts whose tokens open in neither store (sealed with an older key
    /// before the copy): copied as they are, still to be signed in again.
    pub unreadable_accounts: Vec<String>,
}

/// `agm_meta.copy`: which store the target is being or was filled from.
#[derive(Debug, Serialize, Deserialize)]
struct CopyMarker {
    source: String,
    done: bool,
    started_at: i64,
    finished_at: Option<i64>,
}

const COPY_MARKER: &str = "copy";

impl Store {
    /// Copies everything this store holds into `target`, a PostgreSQL store opened with
    /// [`Store::open_postgres_with_key_of`] on this store; see the module docs. Stop any
    /// `agm serve` on this store first (take its [`crate::DataDirLock`]), so that it
    /// does not change under the copy. `progress` hears of every batch written.
    pub async fn copy_into(
        &self,
        target: &Store,
        options: CopyOptions,
        mut progress: impl FnMut(&CopyProgress),
    ) -> Result<CopyReport, StoreError> {
        let Backend::Postgres(to) = &target.backend else {
            return Err(StoreError::InvalidInput {
                what: "migration target",
                problem: "it is not a PostgreSQL database".to_owned(),
            });
        };
        let source = self.location();
        let marker = match to.meta(COPY_MARKER).await? {
            Some(text) => Some(serde_json::from_str::<CopyMarker>(&text).map_err(|_| {
                StoreError::InvalidValue {
                    column: "agm_meta.copy",
                    value: text,
                }
            })?),
            None => None,
        };
        let resumed = match marker {
            None => {
                let held: Vec<String> = to
                    .table_counts()
                    .await?
                    .into_iter()
                    .filter(|&(_, n)| n > 0)
                    .map(|(table, n)| format!("{n} {table}"))
                    .collect();
                if !held.is_empty() {
                    return Err(StoreError::CopyTargetNotEmpty {
                        target: target.location(),
                        holds: held.join(", "),
                    });
                }
                false
            }
            Some(m) if m.source != source => {
                return Err(StoreError::CopyTargetNotEmpty {
                    target: target.location(),
                    holds: format!("data copied from {}", m.source),
                });
            }
            Some(m) if m.done => {
                let tables = compare(self, target, options).await?;
                if tables.iter().all(TableCheck::matches) {
                    let (accounts_open, unreadable_accounts) = check_accounts(self, target).await?;
                    return Ok(CopyReport {
                        resumed: false,
                        already_done: true,
                        tables,
                        accounts_open,
                        unreadable_accounts,
                    });
                }
                return Err(StoreError::CopyTargetInUse {
                    target: target.location(),
                    finished: describe_millis(m.finished_at.unwrap_or(m.started_at)),
                });
            }
            Some(_) => true,
        };
        if !resumed {
            write_marker(to, &source, false, now_millis()).await?;
        }

        let accounts = dispatch!(self, db => db.dump_accounts().await?);
        let n = accounts.len();
        to.replace_accounts(accounts).await?;
        progress(&CopyProgress {
            table: "accounts",
            rows: n as u64,
        });
        let keys = dispatch!(self, db => db.dump_client_keys().await?);
        let n = keys.len();
        to.replace_client_keys(keys).await?;
        progress(&CopyProgress {
            table: "client_keys",
            rows: n as u64,
        });
        let settings = dispatch!(self, db => db.dump_settings().await?);
        let n = settings.len();
        to.replace_settings(settings).await?;
        progress(&CopyProgress {
            table: "settings",
            rows: n as u64,
        });

        copy_log(self, to, Log::Audit, options, true, &mut progress).await?;
        copy_log(self, to, Log::Requests, options, true, &mut progress).await?;
        to.reset_log_sequences().await?;

        let mut tables = compare(self, target, options).await?;
        // A log that differs (the source was pruned between two runs, say) is copied
        // again from its first row.
        let mut again = false;
        for check in tables.iter().filter(|c| !c.matches()) {
            match check.table {
                "audit_log" => {
                    copy_log(self, to, Log::Audit, options, false, &mut progress).await?
                }
                "request_log" => {
                    copy_log(self, to, Log::Requests, options, false, &mut progress).await?
                }
                _ => {}
            }
            again = true;
        }
        if again {
            to.reset_log_sequences().await?;
            tables = compare(self, target, options).await?;
        }
        if let Some(bad) = tables.iter().find(|c| !c.matches()) {
            return Err(StoreError::CopyMismatch {
                table: bad.table,
                detail: bad.to_string(),
            });
        }
        let (accounts_open, unreadable_accounts) = check_accounts(self, target).await?;
        let started_at = match to.meta(COPY_MARKER).await? {
            Some(text) => serde_json::from_str::<CopyMarker>(&text)
                .map(|m| m.started_at)
                .unwrap_or_else(|_| now_millis()),
            None => now_millis(),
        };
        write_marker(to, &source, true, started_at).await?;
        Ok(CopyReport {
            resumed,
            already_done: false,
            tables,
            accounts_open,
            unreadable_accounts,
        })
    }
}

async fn write_marker(
    to: &PgStore,
    source: &str,
    done: bool,
    started_at: i64,
) -> Result<(), StoreError> {
    let marker = CopyMarker {
        source: source.to_owned(),
        done,
        started_at,
        finished_at: done.then(now_millis),
    };
    let text = serde_json::to_string(&marker).map_err(|e| StoreError::Internal(e.to_string()))?;
    to.set_meta(COPY_MARKER, &text).await
}

/// The two logs, copied the same way.
#[derive(Clone, Copy)]
enum Log {
    Audit,
    Requests,
}

impl Log {
    fn table(self) -> &'static str {
        match self {
            Log::Audit => "audit_log",
            Log::Requests => "request_log",
        }
    }
}

/// Rows of one log, a batch.
enum LogRows {
    Audit(Vec<RawAudit>),
    Requests(Vec<RawRequest>),
}

impl LogRows {
    fn len(&self) -> usize {
        match self {
            LogRows::Audit(rows) => rows.len(),
            LogRows::Requests(rows) => rows.len(),
        }
    }

    fn last_id(&self) -> Option<i64> {
        match self {
            LogRows::Audit(rows) => rows.last().map(|r| r.id),
            LogRows::Requests(rows) => rows.last().map(|r| r.id),
        }
    }

    fn digest_sum(&self) -> u128 {
        match self {
            LogRows::Audit(rows) => digest_sum(rows),
            LogRows::Requests(rows) => digest_sum(rows),
        }
    }
}

async fn dump_log(
    store: &Store,
    log: Log,
    after: i64,
    limit: usize,
) -> Result<LogRows, StoreError> {
    Ok(match log {
        Log::Audit => LogRows::Audit(dispatch!(store, db => db.dump_audit(after, limit).await?)),
        Log::Requests => {
            LogRows::Requests(dispatch!(store, db => db.dump_requests(after, limit).await?))
        }
    })
}

/// Makes the target's log the same as the source's, batch by batch. With `resume`, the
/// rows up to the target's highest id are taken as copied if both sides count as many
/// there (the check at the end says whether they were).
async fn copy_log(
    from: &Store,
    to: &PgStore,
    log: Log,
    options: CopyOptions,
    resume: bool,
    progress: &mut impl FnMut(&CopyProgress),
) -> Result<(), StoreError> {
    let table = log.table();
    let mut cursor = i64::MIN;
    if resume {
        let last = to.max_log_id(table).await?;
        let theirs = dispatch!(from, db => db.count_log_up_to(table, last).await?);
        if last > 0 && theirs == to.count_log_up_to(table, last).await? {
            cursor = last;
        }
    }
    let mut written = 0u64;
    loop {
        let rows = dump_log(from, log, cursor, options.batch_size.max(1)).await?;
        let Some(last) = rows.last_id() else {
            break;
        };
        written += rows.len() as u64;
        match rows {
            LogRows::Audit(rows) => to.mirror_audit(cursor, rows).await?,
            LogRows::Requests(rows) => to.mirror_requests(cursor, rows).await?,
        }
        cursor = last;
        progress(&CopyProgress {
            table,
            rows: written,
        });
    }
    to.trim_log(table, cursor).await
}

/// Every table's count and checksum on both sides.
async fn compare(
    from: &Store,
    to: &Store,
    options: CopyOptions,
) -> Result<Vec<TableCheck>, StoreError> {
    let mut checks = Vec::with_capacity(TABLES.len());
    for table in TABLES {
        let (source_rows, source_sum) = table_digest(from, table, options).await?;
        let (target_rows, target_sum) = table_digest(to, table, options).await?;
        checks.push(TableCheck {
            table,
            source_rows,
            target_rows,
            source_checksum: format!("{source_sum:032x}"),
            target_checksum: format!("{target_sum:032x}"),
        });
    }
    Ok(checks)
}

async fn table_digest(
    store: &Store,
    table: &'static str,
    options: CopyOptions,
) -> Result<(u64, u128), StoreError> {
    let whole = |rows: usize, sum: u128| Ok((rows as u64, sum));
    match table {
        "accounts" => {
            let rows = dispatch!(store, db => db.dump_accounts().await?);
            whole(rows.len(), digest_sum(&rows))
        }
        "client_keys" => {
            let rows = dispatch!(store, db => db.dump_client_keys().await?);
            whole(rows.len(), digest_sum(&rows))
        }
        "settings" => {
            let rows = dispatch!(store, db => db.dump_settings().await?);
            whole(rows.len(), digest_sum(&rows))
        }
        _ => {
            let log = if table == "audit_log" {
                Log::Audit
            } else {
                Log::Requests
            };
            let (mut count, mut sum, mut cursor) = (0u64, 0u128, i64::MIN);
            loop {
                let rows = dump_log(store, log, cursor, options.batch_size.max(1)).await?;
                let Some(last) = rows.last_id() else {
                    return Ok((count, sum));
                };
                count += rows.len() as u64;
                sum = sum.wrapping_add(rows.digest_sum());
                cursor = last;
            }
        }
    }
}

/// A stored time as RFC 3339 (UTC), for a message.
fn describe_millis(millis: i64) -> String {
    crate::timestamp::from_millis(millis, "agm_meta.copy")
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| millis.to_string())
}

fn digest_sum<T: Digestible>(rows: &[T]) -> u128 {
    rows.iter()
        .fold(0u128, |sum, row| sum.wrapping_add(row.row_digest()))
}

/// Every account whose tokens open in the source must open in the target. Returns how
/// many open there, and the ids of those that open in neither.
async fn check_accounts(from: &Store, to: &Store) -> Result<(usize, Vec<String>), StoreError> {
    let (_, unreadable_before) = from.list_accounts_lenient().await?;
    let (readable, unreadable) = to.list_accounts_lenient().await?;
    let before: Vec<&str> = unreadable_before.iter().map(|a| a.id.as_str()).collect();
    if let Some(bad) = unreadable.iter().find(|a| !before.contains(&a.id.as_str())) {
        return Err(StoreError::CopyMismatch {
            table: "accounts",
            detail: format!(
                "the tokens of account {} ({}) do not open in the target: {}",
                bad.id, bad.email, bad.error
            ),
        });
    }
    Ok((
        readable.len(),
        unreadable.into_iter().map(|a| a.id).collect(),
    ))
}
