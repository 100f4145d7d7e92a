//! [`Store`]: the one type the rest of agm persists through.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use time::OffsetDateTime;

use crate::account::{
    Account, AccountInfo, AccountState, NewAccount, Pool, TokenUpdate, normalize_email,
};
use crate::audit::{AuditEvent, AuditRecord};
use crate::client_key::{ClientKey, generate_secret, secret_prefix, secret_sha256};
use crate::error::StoreError;
use crate::keychain::{KeyChoice, KeyStore, KeyVault, NewKeyPolicy, OsKeychain, select_key};
use crate::request_log::{RequestLogEntry, RequestLogRecord};
use crate::rows::{AccountRow, SealedNewAccount, SealedTokenUpdate};
use crate::seal::{KeySource, Sealer};
use crate::secret::Secret;
use crate::sqlite::SqliteStore;
use crate::timestamp::now_millis;

/// The database file in the data dir.
pub const DB_FILE: &str = "agm.db";
/// The sealing key file in the data dir, where the key is not in the OS keychain.
pub const KEY_FILE: &str = "secret.key";

/// How [`Store::open_sqlite_with`] opens a data dir. A bare [`KeyStore`] converts into
/// the defaults with that key store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreOptions {
    /// Where to keep the sealing key: `[storage] key_store`.
    pub key_store: KeyStore,
    /// Make a new sealing key even though the database holds accounts sealed with one
    /// that is gone (`agm --force-new-key`). Their tokens stay unreadable: the gateway
    /// disables each such account when it is used, and it must be signed in again.
    pub force_new_key: bool,
}

impl From<KeyStore> for StoreOptions {
    fn from(key_store: KeyStore) -> StoreOptions {
        StoreOptions {
            key_store,
            force_new_key: false,
        }
    }
}

/// Persistence for accounts, settings, client keys and logs. Cheap to clone: clones share
/// one connection and one sealing key.
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    sealer: Arc<Sealer>,
    key_choice: KeyChoice,
}

/// An account whose sealed tokens cannot be opened ([`Store::list_accounts_lenient`]).
#[derive(Debug)]
pub struct UnreadableAccount {
    pub id: String,
    pub email: String,
    pub state: AccountState,
    pub error: StoreError,
}

/// Where the data lives. A closed set: PostgreSQL joins for cluster mode.
#[derive(Clone)]
enum Backend {
    Sqlite(SqliteStore),
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("db_path", &self.db_path())
            .field("key_source", self.sealer.source())
            .finish()
    }
}

impl Store {
    /// Opens `data_dir/agm.db` with `key_store = "auto"`: see [`Store::open_sqlite_with`].
    pub async fn open_sqlite(data_dir: &Path) -> Result<Store, StoreError> {
        Store::open_sqlite_with(data_dir, KeyStore::Auto).await
    }

    /// Opens `data_dir/agm.db`, creating the directory (mode 0700), the database and the
    /// sealing key as needed, and brings the schema up to date. The key is kept where
    /// `key_store` says ([`crate::keychain`] has the rules): in the OS keychain where one
    /// answers, else in `data_dir/secret.key` (mode 0600). An existing `secret.key` is
    /// always used. A key that is gone while the database holds accounts sealed with it
    /// is [`StoreError::SealKeyMissing`], never silently replaced, unless
    /// [`StoreOptions::force_new_key`] says so.
    pub async fn open_sqlite_with(
        data_dir: &Path,
        options: impl Into<StoreOptions>,
    ) -> Result<Store, StoreError> {
        Store::open_sqlite_with_vault(data_dir, options, Arc::new(OsKeychain)).await
    }

    /// [`Store::open_sqlite_with`], with `vault` standing in for the OS keychain (tests).
    pub async fn open_sqlite_with_vault(
        data_dir: &Path,
        options: impl Into<StoreOptions>,
        vault: Arc<dyn KeyVault>,
    ) -> Result<Store, StoreError> {
        let data_dir = data_dir.to_path_buf();
        let options = options.into();
        // Keychain calls block (D-Bus, Keychain Services), like SQLite: all of it runs here.
        blocking(move || {
            create_data_dir(&data_dir)?;
            let db_path = data_dir.join(DB_FILE);
            let policy = NewKeyPolicy {
                db_path: &db_path,
                force: options.force_new_key,
            };
            let key = select_key(&data_dir, options.key_store, vault.as_ref(), &policy)?;
            let db = SqliteStore::open(&db_path)?;
            if key.created {
                warn_if_sealed_with_another_key(&db_path, key.sealer.source());
            }
            Ok(Store {
                backend: Backend::Sqlite(db),
                sealer: Arc::new(key.sealer),
                key_choice: key.choice,
            })
        })
        .await
    }

    /// An empty in-memory store with a random key that is never written anywhere
    /// (tests, `agm demo`).
    pub async fn open_in_memory() -> Result<Store, StoreError> {
        blocking(|| {
            Ok(Store {
                backend: Backend::Sqlite(SqliteStore::open_in_memory()?),
                sealer: Arc::new(Sealer::in_memory()),
                key_choice: KeyChoice::Memory,
            })
        })
        .await
    }

    /// The database file, `None` for an in-memory store.
    pub fn db_path(&self) -> Option<PathBuf> {
        match &self.backend {
            Backend::Sqlite(db) => db.path().map(Path::to_path_buf),
        }
    }

    /// Where the sealing key came from.
    pub fn key_source(&self) -> KeySource {
        self.sealer.source().clone()
    }

    /// Why the sealing key is kept where it is (`agm doctor`).
    pub fn key_choice(&self) -> &KeyChoice {
        &self.key_choice
    }

    // accounts

    /// Adds the account, or, if the pool already has one with this e-mail, replaces its
    /// tokens (and project and tier when given), keeping its id, state and `created_at`.
    pub async fn upsert_account(&self, account: NewAccount) -> Result<Account, StoreError> {
        let email = normalize_email(&account.email)?;
        let pool = account.pool;
        let seal = |secret: &Secret, column| self.seal_account_secret(pool, &email, column, secret);
        let sealed = SealedNewAccount {
            refresh_token: seal(&account.refresh_token, REFRESH_TOKEN)?,
            access_token: account
                .access_token
                .as_ref()
                .map(|t| seal(t, ACCESS_TOKEN))
                .transpose()?,
            access_expires_at: account.access_expires_at,
            project_id: account.project_id,
            tier: account.tier,
            pool,
            email,
        };
        let row = match &self.backend {
            Backend::Sqlite(db) => db.upsert_account(sealed, now_millis()).await?,
        };
        self.open_account(row)
    }

    /// Every account, oldest first.
    pub async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        let rows = match &self.backend {
            Backend::Sqlite(db) => db.list_accounts().await?,
        };
        rows.into_iter().map(|row| self.open_account(row)).collect()
    }

    /// Every account without its tokens, oldest first: needs no key, so an account whose
    /// sealed tokens cannot be opened is listed too.
    pub async fn list_account_infos(&self) -> Result<Vec<AccountInfo>, StoreError> {
        let rows = match &self.backend {
            Backend::Sqlite(db) => db.list_accounts().await?,
        };
        Ok(rows
            .into_iter()
            .map(|row| AccountInfo {
                id: row.id,
                email: row.email,
                pool: row.pool,
                project_id: row.project_id,
                tier: row.tier,
                state: row.state,
                created_at: row.created_at,
                updated_at: row.updated_at,
            })
            .collect())
    }

    /// Every account that can be read, oldest first, and apart from them the accounts
    /// whose sealed tokens cannot be opened (a damaged row, or sealed with another
    /// key): one bad account must not take the others down. Each unreadable account
    /// comes with its id, e-mail and the error.
    pub async fn list_accounts_lenient(
        &self,
    ) -> Result<(Vec<Account>, Vec<UnreadableAccount>), StoreError> {
        let rows = match &self.backend {
            Backend::Sqlite(db) => db.list_accounts().await?,
        };
        let mut readable = Vec::with_capacity(rows.len());
        let mut unreadable = Vec::new();
        for row in rows {
            let (id, email, state) = (row.id.clone(), row.email.clone(), row.state.clone());
            match self.open_account(row) {
                Ok(account) => readable.push(account),
                Err(error) => unreadable.push(UnreadableAccount {
                    id,
                    email,
                    state,
                    error,
                }),
            }
        }
        Ok((readable, unreadable))
    }

    /// The account with this id or, failing that, this e-mail (case-insensitive). An
    /// e-mail in several pools is an error that lists their ids.
    pub async fn get_account(&self, id_or_email: &str) -> Result<Option<Account>, StoreError> {
        let key = id_or_email.trim().to_lowercase();
        let row = match &self.backend {
            Backend::Sqlite(db) => db.get_account(key).await?,
        };
        row.map(|row| self.open_account(row)).transpose()
    }

    /// Removes the account named by id (or e-mail, as in [`Store::get_account`]).
    /// Returns `false` if there is none. Needs no key, so it also works for an account
    /// whose tokens can no longer be decrypted.
    pub async fn remove_account(&self, id: &str) -> Result<bool, StoreError> {
        let Some(id) = self.resolve_account_id(id).await? else {
            return Ok(false);
        };
        match &self.backend {
            Backend::Sqlite(db) => db.remove_account(id).await,
        }
    }

    /// Sets the state of the account named by id (or e-mail, as in
    /// [`Store::get_account`]).
    pub async fn set_account_state(&self, id: &str, state: AccountState) -> Result<(), StoreError> {
        let resolved = self
            .resolve_account_id(id)
            .await?
            .ok_or_else(|| StoreError::account_not_found(id))?;
        let changed = match &self.backend {
            Backend::Sqlite(db) => db.set_account_state(resolved, state, now_millis()).await?,
        };
        found(changed, id)
    }

    /// Stores a refreshed access token, and the refresh token if it was rotated.
    pub async fn update_tokens(&self, id: &str, tokens: TokenUpdate) -> Result<(), StoreError> {
        let identity = match &self.backend {
            Backend::Sqlite(db) => db.account_identity(id.to_owned()).await?,
        };
        let (pool, email) = identity.ok_or_else(|| StoreError::account_not_found(id))?;
        let seal = |secret: &Secret, column| self.seal_account_secret(pool, &email, column, secret);
        let sealed = SealedTokenUpdate {
            access_token: seal(&tokens.access_token, ACCESS_TOKEN)?,
            access_expires_at: tokens.access_expires_at,
            refresh_token: tokens
                .refresh_token
                .as_ref()
                .map(|t| seal(t, REFRESH_TOKEN))
                .transpose()?,
        };
        let changed = match &self.backend {
            Backend::Sqlite(db) => {
                db.update_tokens(id.to_owned(), sealed, now_millis())
                    .await?
            }
        };
        found(changed, id)
    }

    /// Sets (or, with `None`, clears) the account's Cloud Code project and tier.
    pub async fn set_project(
        &self,
        id: &str,
        project_id: Option<&str>,
        tier: Option<&str>,
    ) -> Result<(), StoreError> {
        let (project_id, tier) = (project_id.map(str::to_owned), tier.map(str::to_owned));
        let changed = match &self.backend {
            Backend::Sqlite(db) => {
                db.set_project(id.to_owned(), project_id, tier, now_millis())
                    .await?
            }
        };
        found(changed, id)
    }

    // settings

    pub async fn get_setting(&self, key: &str) -> Result<Option<serde_json::Value>, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.get_setting(key.to_owned()).await,
        }
    }

    pub async fn set_setting(
        &self,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(), StoreError> {
        if key.is_empty() {
            return Err(StoreError::InvalidInput {
                what: "setting name",
                problem: "it is empty".to_owned(),
            });
        }
        let value = value.to_string();
        match &self.backend {
            Backend::Sqlite(db) => db.set_setting(key.to_owned(), value, now_millis()).await,
        }
    }

    /// Changes one setting atomically: `f` sees the stored value and returns the new one
    /// (or `None` to leave it), with every other writer — in this process or another —
    /// held off until the change is written, so no update is lost. Returns the value
    /// stored afterwards. `f` runs on a blocking thread with the database locked: keep
    /// it short and free of I/O.
    pub async fn update_setting<F>(
        &self,
        key: &str,
        f: F,
    ) -> Result<Option<serde_json::Value>, StoreError>
    where
        F: FnOnce(Option<serde_json::Value>) -> Option<serde_json::Value> + Send + 'static,
    {
        if key.is_empty() {
            return Err(StoreError::InvalidInput {
                what: "setting name",
                problem: "it is empty".to_owned(),
            });
        }
        match &self.backend {
            Backend::Sqlite(db) => db.update_setting(key.to_owned(), now_millis(), f).await,
        }
    }

    // client keys

    /// Creates a client key. Returns it with its secret (`agm-` + 40 URL-safe
    /// characters), which the store does not keep: show it to the user once.
    pub async fn create_client_key(&self, name: &str) -> Result<(ClientKey, String), StoreError> {
        let secret = generate_secret();
        let (prefix, hash) = (secret_prefix(&secret), secret_sha256(&secret));
        let key = match &self.backend {
            Backend::Sqlite(db) => {
                db.create_client_key(name.trim().to_owned(), prefix, hash, now_millis())
                    .await?
            }
        };
        Ok((key, secret))
    }

    /// Every client key, revoked ones included (see [`ClientKey::revoked_at`]), oldest
    /// first.
    pub async fn list_client_keys(&self) -> Result<Vec<ClientKey>, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.list_client_keys().await,
        }
    }

    /// Revokes the key; `false` if there is no such key or it was already revoked.
    pub async fn revoke_client_key(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.trim().to_owned();
        match &self.backend {
            Backend::Sqlite(db) => db.revoke_client_key(id, now_millis()).await,
        }
    }

    /// Deletes the rows of every revoked key; returns their ids, oldest first. A server
    /// keeps requiring keys while any key row is left, revoked or not: with none left,
    /// a loopback gateway serves without keys again.
    pub async fn purge_revoked_client_keys(&self) -> Result<Vec<String>, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.purge_revoked_client_keys().await,
        }
    }

    /// The active key with this secret, if any (hashes compared in constant time).
    /// Records the use in `last_used_at`, at most once a minute per key.
    pub async fn verify_client_key(&self, secret: &str) -> Result<Option<ClientKey>, StoreError> {
        if secret.is_empty() {
            return Ok(None);
        }
        let (prefix, hash) = (secret_prefix(secret), secret_sha256(secret));
        match &self.backend {
            Backend::Sqlite(db) => db.verify_client_key(prefix, hash, now_millis()).await,
        }
    }

    // logs

    pub async fn append_audit(&self, event: AuditEvent) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.append_audit(event).await,
        }
    }

    /// The newest `limit` events at or after `since`, newest first.
    pub async fn list_audit(
        &self,
        since: Option<OffsetDateTime>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.list_audit(since, limit).await,
        }
    }

    pub async fn append_request_log(&self, entry: RequestLogEntry) -> Result<(), StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.append_request_log(entry).await,
        }
    }

    /// Appends a batch of request-log entries at once (the server's writer batches them
    /// off the request path).
    pub async fn append_request_logs(
        &self,
        entries: Vec<RequestLogEntry>,
    ) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        match &self.backend {
            Backend::Sqlite(db) => db.append_request_logs(entries).await,
        }
    }

    /// The newest `limit` requests at or after `since`, newest first.
    pub async fn list_request_log(
        &self,
        since: Option<OffsetDateTime>,
        limit: usize,
    ) -> Result<Vec<RequestLogRecord>, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.list_request_log(since, limit).await,
        }
    }

    /// Deletes requests logged before `older_than`; returns how many.
    pub async fn prune_request_log(&self, older_than: OffsetDateTime) -> Result<usize, StoreError> {
        match &self.backend {
            Backend::Sqlite(db) => db.prune_request_log(older_than).await,
        }
    }

    // sealing

    async fn resolve_account_id(&self, id_or_email: &str) -> Result<Option<String>, StoreError> {
        let key = id_or_email.trim().to_lowercase();
        match &self.backend {
            Backend::Sqlite(db) => db.account_id(key).await,
        }
    }

    fn seal_account_secret(
        &self,
        pool: Pool,
        email: &str,
        column: &'static str,
        secret: &Secret,
    ) -> Result<String, StoreError> {
        self.sealer
            .seal(secret.expose(), &account_context(pool, email, column))
            .map_err(|_| StoreError::Seal {
                what: format!("{} for account {email}", describe(column)),
            })
    }

    fn open_account(&self, row: AccountRow) -> Result<Account, StoreError> {
        let open = |sealed: &str, column| {
            self.sealer
                .unseal(sealed, &account_context(row.pool, &row.email, column))
                .map_err(|cause| StoreError::Unseal {
                    what: format!("{} for account {}", describe(column), row.email),
                    cause,
                    remedy: match self.sealer.source() {
                        KeySource::KeyFile(_) => "restore that key file, or re-add the account",
                        KeySource::Keychain { .. } => {
                            "restore that keychain entry, or re-add the account"
                        }
                        _ => "re-add the account",
                    },
                })
        };
        let refresh_token = open(&row.refresh_token, REFRESH_TOKEN)?;
        let access_token = row
            .access_token
            .as_deref()
            .map(|t| open(t, ACCESS_TOKEN))
            .transpose()?;
        Ok(Account {
            id: row.id,
            email: row.email,
            pool: row.pool,
            refresh_token,
            access_token,
            access_expires_at: row.access_expires_at,
            project_id: row.project_id,
            tier: row.tier,
            state: row.state,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

const REFRESH_TOKEN: &str = "refresh_token";
const ACCESS_TOKEN: &str = "access_token";

/// What an account secret is sealed for: it opens only in the same pool, e-mail and
/// column.
fn account_context(pool: Pool, email: &str, column: &str) -> String {
    format!("account/{pool}/{email}/{column}")
}

fn describe(column: &str) -> &'static str {
    match column {
        REFRESH_TOKEN => "refresh token",
        ACCESS_TOKEN => "access token",
        _ => "secret",
    }
}

fn found(changed: bool, id: &str) -> Result<(), StoreError> {
    if changed {
        Ok(())
    } else {
        Err(StoreError::account_not_found(id))
    }
}

/// Runs blocking setup work off the async threads.
async fn blocking<T, F>(f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?
}

pub(crate) fn create_data_dir(dir: &Path) -> Result<(), StoreError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|source| StoreError::Io {
        action: "create the data directory",
        path: dir.to_path_buf(),
        source,
    })
}

/// A new key next to a database that already holds accounts means the old key is gone
/// and the user forced a new one (else [`NewKeyPolicy`] refused): say once at startup
/// that those accounts cannot be read, rather than only per account.
fn warn_if_sealed_with_another_key(db_path: &Path, key: &KeySource) {
    if let Some(count) = SqliteStore::count_accounts_in(db_path)
        .ok()
        .filter(|&n| n > 0)
    {
        tracing::warn!(
            key = %key,
            accounts = count,
            "created a new sealing key (--force-new-key), but the database already holds accounts sealed with another key; \
             they are disabled when used: sign them in again, or restore the old key (secret.key, or the keychain entry named in secret.keychain)"
        );
    }
}
