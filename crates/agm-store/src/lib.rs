//! agm's persistence: accounts with sealed tokens, settings, client keys, the audit log
//! and the request log, behind one [`Store`].
//!
//! SQLite (`agm.db` in the data dir, WAL mode) is the embedded backend; PostgreSQL
//! ([`Store::open_postgres`]) is the one several agm processes share in cluster mode,
//! with the seal key given to each ([`SharedKey`]) and never stored in the database. Secrets are sealed with AES-256-GCM (see [`seal`]) before they
//! reach any backend, with a key kept in the OS keychain where one answers, else in a
//! 0600 key file (see [`keychain`]); client keys are kept only as SHA-256 hashes.
//! Timestamps are kept to the millisecond.

mod account;
mod audit;
mod client_key;
mod copy;
mod data_dir_lock;
mod error;
pub mod keychain;
mod names;
mod postgres;
mod raw;
mod request_log;
mod rows;
pub mod seal;
mod search;
mod secret;
mod shared_key;
mod sqlite;
mod store;
mod timestamp;
mod usage;
pub use timestamp::{now_rfc3339, rfc3339};

pub use account::{Account, AccountInfo, AccountState, NewAccount, Pool, TokenUpdate};
pub use audit::{AuditEvent, AuditKind, AuditRecord};
pub use client_key::{CLIENT_KEY_SCHEME, ClientKey, KeyPolicy, glob_match};
pub use copy::{CopyOptions, CopyProgress, CopyReport, TableCheck};
pub use data_dir_lock::{DataDirLock, LOCK_FILE};
pub use error::{StoreError, UnknownName};
pub use keychain::{
    KEYCHAIN_FILE, KEYCHAIN_SERVICE, KeyChoice, KeyStore, KeyVault, OsKeychain, VaultError,
};
pub use request_log::{ApiKind, RequestLogEntry, RequestLogRecord};
pub use seal::{KeySource, Sealer, UnsealError};
pub use search::{AuditFilter, RequestLogFilter, StatusFilter};
pub use secret::Secret;
pub use shared_key::{SEAL_KEY_ENV, SharedKey};
pub use store::{DB_FILE, KEY_FILE, PostgresOptions, Store, StoreOptions, UnreadableAccount};
pub use usage::{UsageBucket, UsageGroup, UsageQuery, UsageRow};
