//! The SQLite backend: one connection (WAL) behind a mutex; every call runs on tokio's
//! blocking pool.

mod accounts;
mod client_keys;
mod dump;
mod logs;
pub(crate) mod migrate;
mod settings;

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension};
use time::OffsetDateTime;

use crate::account::AccountState;
use crate::audit::{AuditEvent, AuditRecord};
use crate::client_key::ClientKey;
use crate::error::StoreError;
use crate::raw::RawPolicy;
use crate::request_log::{RequestLogEntry, RequestLogRecord};
use crate::rows::{AccountRow, SealedNewAccount, SealedTokenUpdate};
use crate::search::{AuditFilter, RequestLogFilter};

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub(crate) struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    path: Option<PathBuf>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and brings its schema up to date.
    /// Blocking.
    pub(crate) fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        create_private_file(path)?;
        let mut conn = Connection::open(path)?;
        configure(&conn)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(
                db = %path.display(),
                journal_mode = %mode,
                "SQLite could not switch to WAL mode on this filesystem; the server and the CLI may block each other"
            );
        }
        migrate::migrate(&mut conn, &path.display().to_string())?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            path: Some(path.to_path_buf()),
        })
    }

    /// A private in-memory database (tests, `agm demo`). Blocking.
    pub(crate) fn open_in_memory() -> Result<SqliteStore, StoreError> {
        let mut conn = Connection::open_in_memory()?;
        configure(&conn)?;
        migrate::migrate(&mut conn, ":memory:")?;
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            path: None,
        })
    }

    pub(crate) fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// How many accounts the database file at `path` holds, read without creating or
    /// changing anything: 0 when there is no such file or no accounts table yet.
    /// Blocking.
    pub(crate) fn count_accounts_in(path: &Path) -> Result<i64, StoreError> {
        if !path.exists() {
            return Ok(0);
        }
        let conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        let tables: i64 = conn.query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'accounts'",
            [],
            |row| row.get(0),
        )?;
        if tables == 0 {
            return Ok(0);
        }
        Ok(conn.query_row("SELECT count(*) FROM accounts", [], |row| row.get(0))?)
    }

    /// Runs `f` with the connection on the blocking pool.
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock cannot leave a transaction open: rusqlite
            // rolls back when the transaction is dropped during unwinding.
            let mut conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            f(&mut conn)
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?
    }

    // accounts

    pub(crate) async fn upsert_account(
        &self,
        account: SealedNewAccount,
        now: i64,
    ) -> Result<AccountRow, StoreError> {
        self.run(move |c| accounts::upsert(c, &account, now)).await
    }

    pub(crate) async fn list_accounts(&self) -> Result<Vec<AccountRow>, StoreError> {
        self.run(|c| accounts::list(c)).await
    }

    pub(crate) async fn get_account(
        &self,
        id_or_email: String,
    ) -> Result<Option<AccountRow>, StoreError> {
        self.run(move |c| accounts::get(c, &id_or_email)).await
    }

    pub(crate) async fn account_id(
        &self,
        id_or_email: String,
    ) -> Result<Option<String>, StoreError> {
        self.run(move |c| accounts::resolve_id(c, &id_or_email))
            .await
    }

    pub(crate) async fn remove_account(&self, id: String) -> Result<bool, StoreError> {
        self.run(move |c| accounts::remove(c, &id)).await
    }

    pub(crate) async fn set_account_state(
        &self,
        id: String,
        state: AccountState,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.run(move |c| accounts::set_state(c, &id, &state, now))
            .await
    }

    /// The pool and e-mail of an account: what its secrets are sealed for.
    pub(crate) async fn account_identity(
        &self,
        id: String,
    ) -> Result<Option<(crate::account::Pool, String)>, StoreError> {
        self.run(move |c| accounts::identity(c, &id)).await
    }

    pub(crate) async fn update_tokens(
        &self,
        id: String,
        tokens: SealedTokenUpdate,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.run(move |c| accounts::update_tokens(c, &id, &tokens, now))
            .await
    }

    pub(crate) async fn set_project(
        &self,
        id: String,
        project_id: Option<String>,
        tier: Option<String>,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.run(move |c| {
            accounts::set_project(c, &id, project_id.as_deref(), tier.as_deref(), now)
        })
        .await
    }

    // settings

    pub(crate) async fn get_setting(
        &self,
        key: String,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        self.run(move |c| settings::get(c, &key)).await
    }

    pub(crate) async fn set_setting(
        &self,
        key: String,
        value: String,
        now: i64,
    ) -> Result<(), StoreError> {
        self.run(move |c| settings::set(c, &key, &value, now)).await
    }

    /// Read-modify-write in one `BEGIN IMMEDIATE` transaction.
    pub(crate) async fn update_setting<E, F>(
        &self,
        key: String,
        now: i64,
        f: F,
    ) -> Result<Option<serde_json::Value>, E>
    where
        F: FnOnce(Option<serde_json::Value>) -> Result<Option<serde_json::Value>, E>
            + Send
            + 'static,
        E: From<StoreError> + Send + 'static,
    {
        self.run(move |c| settings::update(c, &key, now, f)).await?
    }

    // client keys

    pub(crate) async fn create_client_key(
        &self,
        name: String,
        prefix: String,
        secret_sha256: String,
        policy: RawPolicy,
        now: i64,
    ) -> Result<ClientKey, StoreError> {
        self.run(move |c| client_keys::create(c, &name, &prefix, &secret_sha256, policy, now))
            .await
    }

    pub(crate) async fn set_client_key_policy(
        &self,
        id: String,
        policy: RawPolicy,
    ) -> Result<bool, StoreError> {
        self.run(move |c| client_keys::set_policy(c, &id, &policy))
            .await
    }

    pub(crate) async fn list_client_keys(&self) -> Result<Vec<ClientKey>, StoreError> {
        self.run(|c| client_keys::list(c)).await
    }

    pub(crate) async fn revoke_client_key(&self, id: String, now: i64) -> Result<bool, StoreError> {
        self.run(move |c| client_keys::revoke(c, &id, now)).await
    }

    pub(crate) async fn purge_revoked_client_keys(&self) -> Result<Vec<String>, StoreError> {
        self.run(client_keys::purge_revoked).await
    }

    pub(crate) async fn verify_client_key(
        &self,
        prefix: String,
        secret_sha256: String,
        now: i64,
    ) -> Result<Option<ClientKey>, StoreError> {
        self.run(move |c| client_keys::verify(c, &prefix, &secret_sha256, now))
            .await
    }

    // logs

    pub(crate) async fn append_audit(&self, event: AuditEvent) -> Result<(), StoreError> {
        self.run(move |c| logs::append_audit(c, &event)).await
    }

    pub(crate) async fn list_audit(
        &self,
        since: Option<OffsetDateTime>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.run(move |c| logs::list_audit(c, since, limit)).await
    }

    pub(crate) async fn append_request_log(
        &self,
        entry: RequestLogEntry,
    ) -> Result<(), StoreError> {
        self.run(move |c| logs::append_request(c, &entry)).await
    }

    /// Many entries in one transaction (one fsync for the batch).
    pub(crate) async fn append_request_logs(
        &self,
        entries: Vec<RequestLogEntry>,
    ) -> Result<(), StoreError> {
        self.run(move |c| {
            let tx = c.transaction()?;
            for entry in &entries {
                logs::append_request(&tx, entry)?;
            }
            tx.commit()?;
            Ok(())
        })
        .await
    }

    pub(crate) async fn list_request_log(
        &self,
        since: Option<OffsetDateTime>,
        limit: usize,
    ) -> Result<Vec<RequestLogRecord>, StoreError> {
        self.run(move |c| logs::list_requests(c, since, limit))
            .await
    }

    /// The query's requests, summed per bucket, group and latency.
    pub(crate) async fn usage_samples(
        &self,
        query: crate::usage::UsageQuery,
    ) -> Result<Vec<crate::usage::UsageSample>, StoreError> {
        self.run(move |c| logs::usage_samples(c, &query)).await
    }

    pub(crate) async fn search_request_log(
        &self,
        filter: RequestLogFilter,
        limit: usize,
    ) -> Result<Vec<RequestLogRecord>, StoreError> {
        self.run(move |c| logs::search_requests(c, &filter, limit))
            .await
    }

    pub(crate) async fn get_request_log(
        &self,
        id: i64,
    ) -> Result<Option<RequestLogRecord>, StoreError> {
        self.run(move |c| logs::get_request(c, id)).await
    }

    pub(crate) async fn search_audit(
        &self,
        filter: AuditFilter,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        self.run(move |c| logs::search_audit(c, &filter, limit))
            .await
    }

    pub(crate) async fn prune_request_log(
        &self,
        older_than: OffsetDateTime,
    ) -> Result<usize, StoreError> {
        self.run(move |c| logs::prune_requests(c, older_than)).await
    }
}

fn configure(conn: &Connection) -> Result<(), StoreError> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

/// Creates the database file with mode 0600 before SQLite does (SQLite gives its `-wal`
/// and `-shm` files the database file's mode). An existing file is left as it is.
fn create_private_file(path: &Path) -> Result<(), StoreError> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .map(drop)
        .map_err(|source| StoreError::Io {
            action: "create the database",
            path: path.to_path_buf(),
            source,
        })
}

/// A random 8-hex-character id not yet used in `table`.
fn unused_id(conn: &Connection, table: &'static str) -> Result<String, StoreError> {
    let sql = format!("SELECT 1 FROM {table} WHERE id = ?1");
    let mut stmt = conn.prepare_cached(&sql)?;
    for _ in 0..32 {
        let id = format!("{:08x}", rand::random::<u32>());
        if stmt.query_row([&id], |_| Ok(())).optional()?.is_none() {
            return Ok(id);
        }
    }
    Err(StoreError::Internal(format!("no free id found in {table}")))
}
