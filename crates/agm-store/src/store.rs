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
use crate::client_key::{ClientKey, KeyPolicy, generate_secret, secret_prefix, secret_sha256};
use crate::error::StoreError;
use crate::keychain::{KeyChoice, KeyStore, KeyVault, NewKeyPolicy, OsKeychain, select_key};
use crate::postgres::{PgStore, Setup};
use crate::raw::RawPolicy;
use crate::request_log::{RequestLogEntry, RequestLogRecord};
use crate::rows::{AccountRow, SealedNewAccount, SealedTokenUpdate};
use crate::seal::{KeySource, Sealer};
use crate::search::{AuditFilter, RequestLogFilter};
use crate::secret::Secret;
use crate::shared_key::SharedKey;
use crate::sqlite::SqliteStore;
use crate::timestamp::now_millis;
use crate::usage::{UsageQuery, UsageRow, aggregate};

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
    pub(crate) backend: Backend,
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

/// Where the data lives: a closed set.
#[derive(Clone)]
pub(crate) enum Backend {
    Sqlite(SqliteStore),
    /// Cluster mode: one database shared by several agm processes.
    Postgres(PgStore),
}

/// Calls the same method on whichever backend the store has.
macro_rules! dispatch {
    ($store:ident, $db:ident => $call:expr) => {
        match &$store.backend {
            Backend::Sqlite($db) => $call,
            Backend::Postgres($db) => $call,
        }
    };
}

pub(crate) use dispatch;

/// How [`Store::open_postgres`] opens a database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostgresOptions {
    /// The most connections this process keeps open to the database.
    pub max_connections: usize,
    /// Make a new seal key (or adopt the given one) even though the database holds
    /// accounts sealed with another (`agm --force-new-key`): their tokens stay unreadable
    /// until signed in again, and every other agm sharing the database must then be given
    /// the new key.
    pub force_new_key: bool,
}

impl Default for PostgresOptions {
    fn default() -> PostgresOptions {
        PostgresOptions {
            max_connections: 16,
            force_new_key: false,
        }
    }
}

/// The seal key a PostgreSQL store is opened with.
enum KeyInput {
    Shared(SharedKey),
    /// Another store's (`agm store migrate` seals nothing anew: it copies sealed values).
    SameAs(Box<Sealer>),
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("location", &self.location())
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

    /// Opens the PostgreSQL database at `url` (cluster mode: every agm process of the
    /// cluster opens the same one) and brings its schema up to date. `url` is
    /// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE`, with libpq's query options
    /// where tokio-postgres has them (`options`, `connect_timeout`, `application_name`,
    /// ...) and its `sslmode`: `disable`, `prefer` (the default) or `require` encrypt
    /// without checking the server's certificate, `verify-ca` checks its chain and
    /// `verify-full` also its host name, against `sslrootcert=PATH` (PEM) if given, else
    /// the public web's roots; `require` with `sslrootcert` checks the chain.
    ///
    /// The seal key is never stored in the database: every agm sharing it is given the
    /// same `key` ([`SharedKey`]: the environment variable `AGM_SEAL_KEY` holding the key
    /// in base64, or a key file, `[storage] key_file`). The database keeps a value sealed
    /// with it, so another key is [`StoreError::SealKeyMismatch`] at open. A key file
    /// that does not exist is created (mode 0600) only while the database holds nothing
    /// sealed; once it does, a missing key is [`StoreError::SealKeyMissing`], never
    /// replaced, unless [`PostgresOptions::force_new_key`] says so.
    ///
    /// Replicas opening at once take turns: migrations and the key check run under a
    /// PostgreSQL advisory lock. Unreachable is [`StoreError::PostgresUnreachable`], a bad
    /// URL [`StoreError::PostgresUrl`]; neither shows the password.
    pub async fn open_postgres(
        url: &str,
        key: SharedKey,
        options: PostgresOptions,
    ) -> Result<Store, StoreError> {
        Store::open_postgres_keyed(url, KeyInput::Shared(key), options).await
    }

    /// Opens the PostgreSQL database at `url` as [`Store::open_postgres`] does, sealed
    /// with this store's key: the target of `agm store migrate`, which copies sealed
    /// values as they are.
    pub async fn open_postgres_with_key_of(
        &self,
        url: &str,
        options: PostgresOptions,
    ) -> Result<Store, StoreError> {
        let sealer = self.sealer.with_source(self.sealer.source().clone());
        Store::open_postgres_keyed(url, KeyInput::SameAs(Box::new(sealer)), options).await
    }

    async fn open_postgres_keyed(
        url: &str,
        key: KeyInput,
        options: PostgresOptions,
    ) -> Result<Store, StoreError> {
        let (db, setup) = PgStore::open(url, options.max_connections).await?;
        let (sealer, created) = match key {
            KeyInput::SameAs(sealer) => (*sealer, false),
            KeyInput::Shared(key) => {
                let loaded = {
                    let key = key.clone();
                    blocking(move || key.load()).await?
                };
                match loaded {
                    Some(sealer) => (sealer, false),
                    None => {
                        let accounts = setup.sealed_refresh_tokens().await?.len();
                        let sealed = accounts > 0 || setup.meta(SEAL_KEY_CHECK).await?.is_some();
                        if sealed && !options.force_new_key {
                            return Err(StoreError::SealKeyMissing {
                                expected: key.expected(),
                                accounts: i64::try_from(accounts).unwrap_or(i64::MAX),
                            });
                        }
                        (blocking(move || key.create()).await?, true)
                    }
                }
            }
        };
        check_shared_key(&setup, &sealer, created, options.force_new_key).await?;
        // Closing the setup connection lets the next replica in.
        drop(setup);
        Ok(Store {
            backend: Backend::Postgres(db),
            sealer: Arc::new(sealer),
            key_choice: KeyChoice::Shared { created },
        })
    }

    /// The database file, `None` for an in-memory store or PostgreSQL.
    pub fn db_path(&self) -> Option<PathBuf> {
        match &self.backend {
            Backend::Sqlite(db) => db.path().map(Path::to_path_buf),
            Backend::Postgres(_) => None,
        }
    }

    /// Where the data is, for messages: `the SQLite database PATH`, `an in-memory SQLite
    /// database`, or `PostgreSQL at USER@HOST:PORT/DATABASE` (never a password).
    pub fn location(&self) -> String {
        match &self.backend {
            Backend::Sqlite(db) => match db.path() {
                Some(path) => format!("the SQLite database {}", path.display()),
                None => "an in-memory SQLite database".to_owned(),
            },
            Backend::Postgres(db) => format!("PostgreSQL at {}", db.target()),
        }
    }

    /// Where the sealing key came from.
    pub fn key_source(&self) -> KeySource {
        self.sealer.source().clone()
    }

    /// Writes this store's seal key to a new key file at `path` (mode 0600), for other
    /// agm processes that share a database with it (`[storage] key_file`, or
    /// `AGM_SEAL_KEY` set to the file's contents). Returns `true` if it wrote the file,
    /// `false` if the file already holds this key; a file holding another key is
    /// [`StoreError::KeyFileHoldsAnotherKey`] and is left alone.
    pub async fn write_key_file(&self, path: &Path) -> Result<bool, StoreError> {
        let (sealer, path) = (Arc::clone(&self.sealer), path.to_path_buf());
        blocking(move || {
            if sealer.write_new_key_file(&path)? {
                return Ok(true);
            }
            match SharedKey::File(path.clone()).load()? {
                Some(existing) if existing.same_key(&sealer) => Ok(false),
                _ => Err(StoreError::KeyFileHoldsAnotherKey { path }),
            }
        })
        .await
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
        let row = dispatch!(self, db => db.upsert_account(sealed, now_millis()).await?);
        self.open_account(row)
    }

    /// Every account, oldest first.
    pub async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        let rows = dispatch!(self, db => db.list_accounts().await?);
        rows.into_iter().map(|row| self.open_account(row)).collect()
    }

    /// Every account without its tokens, oldest first: needs no key, so an account whose
    /// sealed tokens cannot be opened is listed too.
    pub async fn list_account_infos(&self) -> Result<Vec<AccountInfo>, StoreError> {
        let rows = dispatch!(self, db => db.list_accounts().await?);
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
        let rows = dispatch!(self, db => db.list_accounts().await?);
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
        let row = dispatch!(self, db => db.get_account(key).await?);
        row.map(|row| self.open_account(row)).transpose()
    }

    /// Removes the account named by id (or e-mail, as in [`Store::get_account`]).
    /// Returns `false` if there is none. Needs no key, so it also works for an account
    /// whose tokens can no longer be decrypted.
    pub async fn remove_account(&self, id: &str) -> Result<bool, StoreError> {
        let Some(id) = self.resolve_account_id(id).await? else {
            return Ok(false);
        };
        dispatch!(self, db => db.remove_account(id).await)
    }

    /// Sets the state of the account named by id (or e-mail, as in
    /// [`Store::get_account`]).
    pub async fn set_account_state(&self, id: &str, state: AccountState) -> Result<(), StoreError> {
        let resolved = self
            .resolve_account_id(id)
            .await?
            .ok_or_else(|| StoreError::account_not_found(id))?;
        let changed =
            dispatch!(self, db => db.set_account_state(resolved, state, now_millis()).await?);
        found(changed, id)
    }

    /// Stores a refreshed access token, and the refresh token if it was rotated.
    pub async fn update_tokens(&self, id: &str, tokens: TokenUpdate) -> Result<(), StoreError> {
        let identity = dispatch!(self, db => db.account_identity(id.to_owned()).await?);
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
        let changed =
            dispatch!(self, db => db.update_tokens(id.to_owned(), sealed, now_millis()).await?);
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
        let changed = dispatch!(self, db => {
            db.set_project(id.to_owned(), project_id, tier, now_millis()).await?
        });
        found(changed, id)
    }

    // settings

    pub async fn get_setting(&self, key: &str) -> Result<Option<serde_json::Value>, StoreError> {
        dispatch!(self, db => db.get_setting(key.to_owned()).await)
    }

    pub async fn set_setting(
        &self,
        key: &str,
        value: &serde_json::Value,
    ) -> Result<(), StoreError> {
        check_setting_name(key)?;
        let value = value.to_string();
        dispatch!(self, db => db.set_setting(key.to_owned(), value, now_millis()).await)
    }

    /// Reads the setting, passes it to `f`, and stores what `f` returns (`Some`) or
    /// deletes the setting (`None`), all in one transaction: concurrent updates of one
    /// key, from this process or another sharing the database, take turns, and none is
    /// lost. `f` runs at most once, while the setting is locked: keep it short, and do no
    /// I/O in it. An error from `f` changes nothing and is returned as it is. Returns
    /// what was stored.
    ///
    /// SQLite runs it in a `BEGIN IMMEDIATE` transaction (on the blocking pool);
    /// PostgreSQL locks the row (`SELECT ... FOR UPDATE`), or, while it does not exist,
    /// an advisory lock on the key.
    pub async fn update_setting<E, F>(
        &self,
        key: &str,
        f: F,
    ) -> Result<Option<serde_json::Value>, E>
    where
        F: FnOnce(Option<serde_json::Value>) -> Result<Option<serde_json::Value>, E>
            + Send
            + 'static,
        E: From<StoreError> + Send + 'static,
    {
        check_setting_name(key)?;
        dispatch!(self, db => db.update_setting(key.to_owned(), now_millis(), f).await)
    }

    // client keys

    /// Creates a client key. Returns it with its secret (`agm-` + 40 URL-safe
    /// characters), which the store does not keep: show it to the user once.
    pub async fn create_client_key(&self, name: &str) -> Result<(ClientKey, String), StoreError> {
        self.create_client_key_with(name, &KeyPolicy::default())
            .await
    }

    /// [`Store::create_client_key`], with its limits.
    pub async fn create_client_key_with(
        &self,
        name: &str,
        policy: &KeyPolicy,
    ) -> Result<(ClientKey, String), StoreError> {
        policy.check()?;
        let secret = generate_secret();
        let (prefix, hash) = (secret_prefix(&secret), secret_sha256(&secret));
        let policy = RawPolicy::from_policy(policy);
        let key = dispatch!(self, db => {
            db.create_client_key(name.trim().to_owned(), prefix, hash, policy, now_millis()).await?
        });
        Ok((key, secret))
    }

    /// Replaces the limits of the key with this id; `false` if there is no such key.
    pub async fn set_client_key_policy(
        &self,
        id: &str,
        policy: &KeyPolicy,
    ) -> Result<bool, StoreError> {
        policy.check()?;
        let (id, policy) = (id.trim().to_owned(), RawPolicy::from_policy(policy));
        dispatch!(self, db => db.set_client_key_policy(id, policy).await)
    }

    /// Every client key, revoked ones included (see [`ClientKey::revoked_at`]), oldest
    /// first.
    pub async fn list_client_keys(&self) -> Result<Vec<ClientKey>, StoreError> {
        dispatch!(self, db => db.list_client_keys().await)
    }

    /// Revokes the key; `false` if there is no such key or it was already revoked.
    pub async fn revoke_client_key(&self, id: &str) -> Result<bool, StoreError> {
        let id = id.trim().to_owned();
        dispatch!(self, db => db.revoke_client_key(id, now_millis()).await)
    }

    /// Deletes the rows of every revoked key; returns their ids, oldest first. A server
    /// keeps requiring keys while any key row is left, revoked or not: with none left,
    /// a loopback gateway serves without keys again.
    pub async fn purge_revoked_client_keys(&self) -> Result<Vec<String>, StoreError> {
        dispatch!(self, db => db.purge_revoked_client_keys().await)
    }

    /// The active key with this secret, if any (hashes compared in constant time).
    /// Records the use in `last_used_at`, at most once a minute per key.
    pub async fn verify_client_key(&self, secret: &str) -> Result<Option<ClientKey>, StoreError> {
        if secret.is_empty() {
            return Ok(None);
        }
        let (prefix, hash) = (secret_prefix(secret), secret_sha256(secret));
        dispatch!(self, db => db.verify_client_key(prefix, hash, now_millis()).await)
    }

    // logs

    pub async fn append_audit(&self, event: AuditEvent) -> Result<(), StoreError> {
        dispatch!(self, db => db.append_audit(event).await)
    }

    /// The newest `limit` events at or after `since`, newest first.
    pub async fn list_audit(
        &self,
        since: Option<OffsetDateTime>,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        dispatch!(self, db => db.list_audit(since, limit).await)
    }

    pub async fn append_request_log(&self, entry: RequestLogEntry) -> Result<(), StoreError> {
        dispatch!(self, db => db.append_request_log(entry).await)
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
        dispatch!(self, db => db.append_request_logs(entries).await)
    }

    /// The newest `limit` requests at or after `since`, newest first.
    pub async fn list_request_log(
        &self,
        since: Option<OffsetDateTime>,
        limit: usize,
    ) -> Result<Vec<RequestLogRecord>, StoreError> {
        dispatch!(self, db => db.list_request_log(since, limit).await)
    }

    /// Usage figures from the request log: requests, successes, tokens and latency
    /// percentiles per bucket and group, in bucket then group order.
    pub async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StoreError> {
        let samples = dispatch!(self, db => db.usage_samples(query.clone()).await?);
        Ok(aggregate(query, samples))
    }

    /// The newest `limit` requests `filter` keeps, newest first.
    pub async fn search_request_log(
        &self,
        filter: RequestLogFilter,
        limit: usize,
    ) -> Result<Vec<RequestLogRecord>, StoreError> {
        dispatch!(self, db => db.search_request_log(filter, limit).await)
    }

    /// One logged request, by its id.
    pub async fn get_request_log(&self, id: i64) -> Result<Option<RequestLogRecord>, StoreError> {
        dispatch!(self, db => db.get_request_log(id).await)
    }

    /// The newest `limit` audit events `filter` keeps, newest first.
    pub async fn search_audit(
        &self,
        filter: AuditFilter,
        limit: usize,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        dispatch!(self, db => db.search_audit(filter, limit).await)
    }

    /// Deletes requests logged before `older_than`; returns how many.
    pub async fn prune_request_log(&self, older_than: OffsetDateTime) -> Result<usize, StoreError> {
        dispatch!(self, db => db.prune_request_log(older_than).await)
    }

    // sealing

    async fn resolve_account_id(&self, id_or_email: &str) -> Result<Option<String>, StoreError> {
        let key = id_or_email.trim().to_lowercase();
        dispatch!(self, db => db.account_id(key).await)
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
                        KeySource::Env(_) => {
                            "set it to the key the account was sealed with, or re-add the account"
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
fn account_context(pool: impl fmt::Display, email: &str, column: &str) -> String {
    format!("account/{pool}/{email}/{column}")
}

fn describe(column: &str) -> &'static str {
    match column {
        REFRESH_TOKEN => "refresh token",
        ACCESS_TOKEN => "access token",
        _ => "secret",
    }
}

fn check_setting_name(key: &str) -> Result<(), StoreError> {
    if key.is_empty() {
        return Err(StoreError::InvalidInput {
            what: "setting name",
            problem: "it is empty".to_owned(),
        });
    }
    Ok(())
}

/// The `agm_meta` entry holding [`SEAL_KEY_CHECK_TEXT`] sealed with the shared key.
const SEAL_KEY_CHECK: &str = "seal_key_check";
const SEAL_KEY_CHECK_TEXT: &str = "agm seal key check";
const SEAL_KEY_CHECK_CONTEXT: &str = "agm_meta/seal_key_check";

/// Refuses a key that is not the database's (unless forced), and records the key in
/// the database (sealed check value) when it has none yet or a forced new one.
async fn check_shared_key(
    setup: &Setup,
    sealer: &Sealer,
    created: bool,
    force: bool,
) -> Result<(), StoreError> {
    let check = setup.meta(SEAL_KEY_CHECK).await?;
    let accounts = setup.sealed_refresh_tokens().await?;
    let fits = match &check {
        Some(sealed) => sealer
            .unseal(sealed, SEAL_KEY_CHECK_CONTEXT)
            .is_ok_and(|text| text.expose() == SEAL_KEY_CHECK_TEXT),
        // No check yet (a database an older agm wrote): the key fits if any account
        // opens with it.
        None => {
            accounts.is_empty()
                || accounts.iter().any(|(pool, email, token)| {
                    sealer
                        .unseal(token, &account_context(pool, email, REFRESH_TOKEN))
                        .is_ok()
                })
        }
    };
    if !fits && !force {
        return Err(StoreError::SealKeyMismatch {
            key: sealer.source().clone(),
        });
    }
    if (!fits || created) && !accounts.is_empty() {
        {
            tracing::warn!(
                key = %sealer.source(),
                accounts = accounts.len(),
                "sealing with a new key (--force-new-key), but the database holds accounts sealed with another; \
                 they are disabled when used: sign them in again, and give every agm sharing the database the new key"
            );
        }
    }
    if check.is_none() || !fits {
        let sealed = sealer
            .seal(SEAL_KEY_CHECK_TEXT, SEAL_KEY_CHECK_CONTEXT)
            .map_err(|_| StoreError::Seal {
                what: "seal key check".to_owned(),
            })?;
        setup.set_meta(SEAL_KEY_CHECK, &sealed).await?;
    }
    Ok(())
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
