//! [`StoreError`]: everything the store can fail with, each message saying what to do.
//! No message ever contains a secret.

use std::io;
use std::path::PathBuf;

use rusqlite::ErrorCode;

use crate::seal::{KeyFileError, KeySource, UnsealError};
use crate::shared_key::SEAL_KEY_ENV;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("database error: {0}")]
    Sqlite(#[source] rusqlite::Error),
    #[error(
        "the database stayed locked by another agm process for more than 5 s; try again, or stop the other process"
    )]
    Busy,
    #[error(
        "cannot upgrade the database schema to {migration}: {source} (restore agm.db from a backup, or report this as a bug)"
    )]
    Migration {
        migration: &'static str,
        source: rusqlite::Error,
    },
    #[error(
        "the database {path} has schema version {found}, but this agm knows versions up to {known} only: it was written by a newer agm; upgrade agm"
    )]
    DatabaseTooNew {
        path: String,
        found: u32,
        known: u32,
    },
    #[error("cannot decrypt the stored {what}: {cause} ({remedy})")]
    Unseal {
        /// What the value is, e.g. "refresh token for account alice@example.com".
        what: String,
        cause: UnsealError,
        remedy: &'static str,
    },
    #[error("cannot encrypt the {what}: the value is too large")]
    Seal { what: String },
    #[error(
        "the key file {path} can be read by other users (mode {mode:03o}); run `chmod 600 {path}` and start again",
        path = path.display()
    )]
    KeyFilePermissions { path: PathBuf, mode: u32 },
    #[error(
        "the key file {} does not hold a key (expected 32 bytes in base64); restore it from a backup, or move it away to start with a new key (stored tokens then cannot be read)",
        path.display()
    )]
    KeyFileInvalid { path: PathBuf },
    #[error(
        "[storage] key_store = \"keychain\", but no OS keychain answered ({reason}); set key_store = \"file\" (or AGM_STORAGE__KEY_STORE=file) to keep the key in the file secret.key (mode 0600) in the data dir"
    )]
    KeychainRequired { reason: String },
    #[error(
        "the key that seals the stored tokens is in the OS keychain entry {entry}, but no OS keychain answered ({reason}); unlock the keychain, or start its service (on Linux a Secret Service such as gnome-keyring or KeePassXC, in the same session), and try again"
    )]
    KeychainUnavailable { entry: String, reason: String },
    #[error("cannot {action} the OS keychain entry {entry}: {reason} ({remedy})")]
    Keychain {
        action: &'static str,
        entry: String,
        reason: String,
        remedy: &'static str,
    },
    #[error(
        "the OS keychain entry {entry} does not hold a key (expected 32 bytes in base64); restore it from a backup, or delete the entry to start with a new key (stored tokens then cannot be read)"
    )]
    KeychainInvalid { entry: String },
    #[error(
        "the OS keychain has no entry {entry}, which {} names as holding the key that seals the stored tokens; if that key is in another keychain, make that one answer (unlock it, or start its service) and try again; if it is gone for good, run with --force-new-key to start with a new key (stored tokens then cannot be read: re-add the accounts)",
        keychain_file.display()
    )]
    KeychainEntryMissing {
        entry: String,
        keychain_file: PathBuf,
    },
    #[error(
        "{} is damaged: it should name the OS keychain entry that holds the sealing key (lines `service = agm` and `user = datadir-…`); restore it from a backup",
        path.display()
    )]
    KeychainFileInvalid { path: PathBuf },
    #[error(
        "[storage] key_store = \"keychain\", but the stored tokens are sealed with the key file {}; set key_store = \"auto\" (the default) to keep using it",
        path.display()
    )]
    KeyFileInUse { path: PathBuf },
    #[error(
        "[storage] key_store = \"file\", but the key that seals the stored tokens is in the OS keychain entry {entry} (named in {}); set key_store = \"auto\" (the default) to keep using it",
        keychain_file.display()
    )]
    KeyInKeychain {
        entry: String,
        keychain_file: PathBuf,
    },
    #[error(
        "the seal key is missing: it was expected in {expected}, and the stored accounts ({accounts}) cannot be read without it; restore it from a backup, or run with --force-new-key to make a new key and leave those accounts unreadable (they are then disabled when used)"
    )]
    SealKeyMissing {
        /// Where the key was looked for: a key file, or a keychain entry and a key file.
        expected: String,
        /// How many accounts hold tokens sealed with the missing key.
        accounts: i64,
    },
    #[error(
        "the seal key ({key}) is not the one the stored tokens are sealed with; every agm sharing this database must use the same key ({SEAL_KEY_ENV}, or [storage] key_file): copy it from a replica that works, or run with --force-new-key to start over with this one (the stored accounts then cannot be read: sign them in again)"
    )]
    SealKeyMismatch { key: KeySource },
    #[error(
        "{var} does not hold a key (expected 32 bytes in base64, as `openssl rand -base64 32` prints); set it to the key every agm sharing the database uses"
    )]
    SealKeyEnvInvalid { var: &'static str },
    #[error(
        "cluster mode needs the seal key every replica shares: set {SEAL_KEY_ENV} to it (32 bytes in base64), or [storage] key_file to a file holding it (mode 0600); `agm store migrate --key-file PATH` writes an existing data dir's key to such a file"
    )]
    SealKeyNotConfigured,
    #[error(
        "both {SEAL_KEY_ENV} and [storage] key_file = {} are set; set only one of them", path.display()
    )]
    SealKeyTwice { path: PathBuf },
    #[error(
        "the key file {} holds another key than the one the stored tokens are sealed with; name another file, or move that one away",
        path.display()
    )]
    KeyFileHoldsAnotherKey { path: PathBuf },
    #[error("PostgreSQL error: {}", describe_pg(.0))]
    Postgres(#[source] tokio_postgres::Error),
    #[error(
        "cannot connect to PostgreSQL at {target}: {reason}; check that it is running and reachable, and the URL's host, port, user, password and database"
    )]
    PostgresUnreachable { target: String, reason: String },
    #[error(
        "invalid PostgreSQL URL: {problem} (expected postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE, optionally with ?sslmode=require)"
    )]
    PostgresUrl { problem: String },
    #[error(
        "cannot upgrade the PostgreSQL schema to {migration}: {} (restore the database from a backup, or report this as a bug)",
        describe_pg(source)
    )]
    PostgresMigration {
        migration: &'static str,
        source: tokio_postgres::Error,
    },
    #[error(
        "{target} already holds {holds}: migrate into an empty database (or schema), or empty that one first"
    )]
    CopyTargetNotEmpty { target: String, holds: String },
    #[error(
        "{target} was migrated from this store at {finished} and has changed since (a cluster may be using it): nothing was copied; to copy again, migrate into an empty database"
    )]
    CopyTargetInUse { target: String, finished: String },
    #[error(
        "after copying, {table} differs between the source and the target ({detail}); stop whatever writes to either (agm serve) and run the migration again"
    )]
    CopyMismatch { table: &'static str, detail: String },
    #[error("{}", data_dir_in_use(*pid, dir))]
    DataDirInUse {
        /// The process holding the lock, if it has written its id yet.
        pid: Option<u32>,
        dir: PathBuf,
    },
    #[error("no {what} {id:?} ({hint})")]
    NotFound {
        what: &'static str,
        id: String,
        hint: &'static str,
    },
    #[error("{email} is in more than one pool (ids {ids}); name the account by its id")]
    AmbiguousAccount { email: String, ids: String },
    #[error("invalid {what}: {problem}")]
    InvalidInput { what: &'static str, problem: String },
    #[error(
        "the database holds a value this agm does not understand in {column}: {value:?} (was it written by a newer agm? upgrade agm)"
    )]
    InvalidValue { column: &'static str, value: String },
    #[error("the store's background task failed ({0}); this is a bug, please report it")]
    Internal(String),
}

impl StoreError {
    pub(crate) fn ambiguous_account<'a>(
        email: &str,
        ids: impl Iterator<Item = &'a str>,
    ) -> StoreError {
        StoreError::AmbiguousAccount {
            email: email.to_owned(),
            ids: ids.collect::<Vec<_>>().join(", "),
        }
    }

    pub(crate) fn account_not_found(id: &str) -> StoreError {
        StoreError::NotFound {
            what: "account",
            id: id.to_owned(),
            hint: "`agm accounts list` shows the ids and e-mails",
        }
    }
}

fn data_dir_in_use(pid: Option<u32>, dir: &std::path::Path) -> String {
    let holder = match pid {
        Some(pid) => format!("another agm serve (pid {pid})"),
        None => "another agm serve".to_owned(),
    };
    format!(
        "{holder} is using the data dir {}: stop it first, or give this one another data dir (AGM_DATA_DIR)",
        dir.display()
    )
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => StoreError::Busy,
            _ => StoreError::Sqlite(e),
        }
    }
}

/// A PostgreSQL error in one line: the server's message and SQLSTATE, or the client's
/// error and its cause. The server's DETAIL (which can quote row values) is left out.
pub(crate) fn describe_pg(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        return format!("{} (SQLSTATE {})", db.message(), db.code().code());
    }
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> StoreError {
        StoreError::Postgres(e)
    }
}

impl From<KeyFileError> for StoreError {
    fn from(e: KeyFileError) -> StoreError {
        match e {
            KeyFileError::Io {
                action,
                path,
                source,
            } => StoreError::Io {
                action,
                path,
                source,
            },
            KeyFileError::Permissions { path, mode } => {
                StoreError::KeyFilePermissions { path, mode }
            }
            KeyFileError::Invalid { path } => StoreError::KeyFileInvalid { path },
        }
    }
}

/// A name (pool, state, audit kind, API) that is not one of the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?} (expected one of: {expected})")]
pub struct UnknownName {
    pub what: &'static str,
    pub value: String,
    pub expected: String,
}
