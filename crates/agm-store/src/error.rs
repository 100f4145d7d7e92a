//! [`StoreError`]: everything the store can fail with, each message saying what to do.
//! No message ever contains a secret.

use std::io;
use std::path::PathBuf;

use rusqlite::ErrorCode;

use crate::seal::{KeyFileError, UnsealError};

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
