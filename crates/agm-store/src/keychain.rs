//! Where the sealing key lives: in the OS keychain where one answers, else in the key
//! file `secret.key` (mode 0600) in the data dir. `[storage] key_store` can force either.
//!
//! The rules, in order, are chosen so that no sealed token is ever stranded:
//!
//! 1. A `secret.key` in the data dir is always used. Existing installs keep working, and
//!    a key never moves without the user moving it.
//! 2. Otherwise, unless `key_store = "file"`, the key is the keychain entry for service
//!    [`KEYCHAIN_SERVICE`] and a user derived from the data dir's path
//!    ([`keychain_user`]), so two data dirs never share or overwrite a key. A new key is
//!    stored there and read back before it is used, and the entry's name is then written
//!    to [`KEYCHAIN_FILE`] in the data dir (it holds no secret).
//! 3. Otherwise (`"auto"` where no keychain answers, or `"file"`) the key file is used,
//!    or created, as before keychains were supported.
//!
//! [`KEYCHAIN_FILE`] is what stops rule 3 from quietly starting a new key file while the
//! keychain that holds the key is only locked or out of reach: with it there, a keychain
//! that does not answer, or answers without the entry, is an error that says what to do,
//! never a fallback or a new key.
//!
//! Keychain calls block (D-Bus on Linux), so all of this runs on the store's blocking
//! open path, never on the async threads.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{StoreError, UnknownName};
use crate::seal::{
    KeySource, Sealer, decode_key, encode_key, random_key, read_key_file, sync_dir,
    write_private_file,
};
use crate::secret::Secret;
use crate::sqlite::SqliteStore;
use crate::store::KEY_FILE;

/// The keychain service under which agm keeps its sealing keys.
pub const KEYCHAIN_SERVICE: &str = "agm";
/// The file in the data dir that names the keychain entry holding the key. No secret.
pub const KEYCHAIN_FILE: &str = "secret.keychain";
/// Held while a new key is put in the keychain, so two agm processes starting at once
/// cannot store two different keys one over the other.
const LOCK_FILE: &str = ".secret.keychain.lock";
/// A [`KEYCHAIN_FILE`] is a few lines; anything much larger is not one.
const KEYCHAIN_FILE_MAX: u64 = 4096;

/// Where to keep the sealing key: the `[storage] key_store` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyStore {
    /// The OS keychain where one answers, else the key file. An existing key file is
    /// always kept.
    #[default]
    Auto,
    /// The OS keychain only: an error, not a fallback, where none answers.
    Keychain,
    /// The key file `secret.key` (mode 0600) in the data dir; the keychain is not asked.
    File,
}

impl KeyStore {
    pub const NAMES: [&'static str; 3] = ["auto", "keychain", "file"];

    pub fn as_str(self) -> &'static str {
        match self {
            KeyStore::Auto => "auto",
            KeyStore::Keychain => "keychain",
            KeyStore::File => "file",
        }
    }
}

impl fmt::Display for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyStore {
    type Err = UnknownName;

    fn from_str(s: &str) -> Result<KeyStore, UnknownName> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(KeyStore::Auto),
            "keychain" => Ok(KeyStore::Keychain),
            "file" => Ok(KeyStore::File),
            _ => Err(UnknownName {
                what: "key store",
                value: s.to_owned(),
                expected: KeyStore::NAMES.join(", "),
            }),
        }
    }
}

/// Why the store uses the key it does (what `agm doctor` reports). Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyChoice {
    /// The key is in the OS keychain; `created` if this open put it there.
    Keychain { created: bool },
    /// `secret.key` already existed, and an existing key file is always kept.
    ExistingKeyFile,
    /// `key_store = "file"`.
    FileForced,
    /// No OS keychain answered, so a key file was created; what the keychain said.
    NoKeychain { reason: String },
    /// A keychain answered but did not take the new key, so a key file was created.
    KeychainRefused { reason: String },
    /// A random key that lives only as long as the process.
    Memory,
    /// The key every agm sharing a PostgreSQL database is given (`AGM_SEAL_KEY`, or
    /// `[storage] key_file`); `created` if this open made the key file.
    Shared { created: bool },
}

impl fmt::Display for KeyChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyChoice::Keychain { created: true } => {
                f.write_str("a new key was created in the OS keychain")
            }
            KeyChoice::Keychain { created: false } => f.write_str("the key is in the OS keychain"),
            KeyChoice::ExistingKeyFile => {
                f.write_str("the key file already existed, and an existing key file is kept")
            }
            KeyChoice::FileForced => f.write_str("[storage] key_store = \"file\""),
            KeyChoice::NoKeychain { reason } => write!(f, "no OS keychain answered ({reason})"),
            KeyChoice::KeychainRefused { reason } => {
                write!(f, "the OS keychain did not take a new key ({reason})")
            }
            KeyChoice::Memory => f.write_str("the key lives only in memory"),
            KeyChoice::Shared { created: false } => {
                f.write_str("the key shared by every agm on the database (AGM_SEAL_KEY or [storage] key_file)")
            }
            KeyChoice::Shared { created: true } => f.write_str(
                "a new shared key file was created: give it to every agm on the database ([storage] key_file)",
            ),
        }
    }
}

/// Why a keychain request failed. Never holds any part of a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// No keychain answers here (no Secret Service or session bus, a locked keychain
    /// that may not prompt, an unsupported platform). Says why.
    #[error("{0}")]
    Unavailable(String),
    /// The entry exists but does not hold text.
    #[error("the entry does not hold text")]
    NotText,
    /// The keychain answered but the request failed. Says why.
    #[error("{0}")]
    Failed(String),
}

/// A place to keep named secrets: the OS keychain ([`OsKeychain`]), or a stand-in in
/// tests. Calls may block.
pub trait KeyVault: Send + Sync {
    /// The secret in the entry (`service`, `user`), `None` if there is no such entry.
    fn get(&self, service: &str, user: &str) -> Result<Option<Secret>, VaultError>;
    /// Creates or replaces the entry.
    fn set(&self, service: &str, user: &str, value: &Secret) -> Result<(), VaultError>;
}

/// The OS keychain, through the `keyring` crate: Keychain Services on macOS, the
/// Credential Manager on Windows, the Secret Service over D-Bus (pure Rust, zbus)
/// elsewhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsKeychain;

impl KeyVault for OsKeychain {
    fn get(&self, service: &str, user: &str) -> Result<Option<Secret>, VaultError> {
        match os_entry(service, user)?.get_password() {
            Ok(text) => Ok(Some(Secret::from(text))),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(vault_error(e)),
        }
    }

    fn set(&self, service: &str, user: &str, value: &Secret) -> Result<(), VaultError> {
        os_entry(service, user)?
            .set_password(value.expose())
            .map_err(vault_error)
    }
}

fn os_entry(service: &str, user: &str) -> Result<keyring::Entry, VaultError> {
    keyring::Entry::new(service, user).map_err(|e| match e {
        // The platform store could not be set up; the reason is kept by keyring.
        keyring::Error::NoDefaultStore => match keyring::Entry::store_status() {
            Err(cause) => VaultError::Unavailable(describe_os_error(cause)),
            Ok(()) => VaultError::Unavailable("no OS keychain is set up".to_owned()),
        },
        other => vault_error(other),
    })
}

/// Maps a keyring error without ever formatting the bytes some variants carry.
fn vault_error(e: keyring::Error) -> VaultError {
    match e {
        keyring::Error::PlatformFailure(_)
        | keyring::Error::NoStorageAccess(_)
        | keyring::Error::NoDefaultStore => VaultError::Unavailable(describe_os_error(&e)),
        keyring::Error::BadEncoding(_) | keyring::Error::BadDataFormat(..) => VaultError::NotText,
        other => VaultError::Failed(describe_os_error(&other)),
    }
}

fn describe_os_error(e: &keyring::Error) -> String {
    match e {
        keyring::Error::PlatformFailure(cause) | keyring::Error::NoStorageAccess(cause) => {
            cause.to_string()
        }
        keyring::Error::NoDefaultStore => "no OS keychain is set up".to_owned(),
        keyring::Error::BadEncoding(_) | keyring::Error::BadDataFormat(..) => {
            "the entry does not hold text".to_owned()
        }
        keyring::Error::Ambiguous(entries) => {
            format!("{} keychain entries match the name", entries.len())
        }
        // The remaining variants describe names and limits, never the secret.
        other => other.to_string(),
    }
}

/// The keychain user for a data dir: `datadir-` and 16 hex digits of the SHA-256 of its
/// canonical path. Stable for a data dir, different between data dirs.
pub fn keychain_user(data_dir: &Path) -> String {
    let path = fs::canonicalize(data_dir).unwrap_or_else(|_| data_dir.to_path_buf());
    let digest = Sha256::digest(path.as_os_str().as_encoded_bytes());
    let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("datadir-{hex}")
}

/// Why no OS keychain answers, in the keychain's own words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeychainUnavailable(pub String);

/// Whether an OS keychain answers for `data_dir`: `Err` says why not. Only reads (the
/// entry [`KEYCHAIN_FILE`] names, else the data dir's own); never creates anything.
pub async fn os_keychain_status(data_dir: &Path) -> Result<(), KeychainUnavailable> {
    let data_dir = data_dir.to_path_buf();
    tokio::task::spawn_blocking(move || keychain_answers(&OsKeychain, &data_dir))
        .await
        .map_err(|e| KeychainUnavailable(format!("the keychain check failed ({e})")))?
}

/// [`os_keychain_status`] for any vault.
pub fn keychain_answers(vault: &dyn KeyVault, data_dir: &Path) -> Result<(), KeychainUnavailable> {
    let entry = read_keychain_file(&data_dir.join(KEYCHAIN_FILE))
        .ok()
        .flatten()
        .unwrap_or_else(|| Entry::for_data_dir(data_dir));
    match vault.get(&entry.service, &entry.user) {
        Err(VaultError::Unavailable(reason)) => Err(KeychainUnavailable(reason)),
        // Any other answer, even an error about the entry, is an answer.
        Ok(_) | Err(VaultError::NotText | VaultError::Failed(_)) => Ok(()),
    }
}

/// A keychain entry's name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    service: String,
    user: String,
}

impl Entry {
    fn for_data_dir(data_dir: &Path) -> Entry {
        Entry {
            service: KEYCHAIN_SERVICE.to_owned(),
            user: keychain_user(data_dir),
        }
    }

    fn source(&self) -> KeySource {
        KeySource::Keychain {
            service: self.service.clone(),
            user: self.user.clone(),
        }
    }
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.service, self.user)
    }
}

/// The key a store opens with, and why.
pub(crate) struct SelectedKey {
    pub(crate) sealer: Sealer,
    pub(crate) choice: KeyChoice,
    /// A new key was made by this open (so nothing stored so far can be read with it).
    pub(crate) created: bool,
}

/// Whether a new sealing key may be made: never while the database holds accounts (their
/// tokens are sealed with the key that is gone), unless the user forces it.
pub(crate) struct NewKeyPolicy<'a> {
    pub(crate) db_path: &'a Path,
    pub(crate) force: bool,
}

impl NewKeyPolicy<'_> {
    /// `Ok` if a new key may be made; `expected` says where the missing one was looked for.
    fn check(&self, expected: impl FnOnce() -> String) -> Result<(), StoreError> {
        if self.force {
            return Ok(());
        }
        match SqliteStore::count_accounts_in(self.db_path)? {
            0 => Ok(()),
            accounts => Err(StoreError::SealKeyMissing {
                expected: expected(),
                accounts,
            }),
        }
    }
}

/// Picks (creating if need be, as `policy` allows) the sealing key for `data_dir`,
/// which must exist.
pub(crate) fn select_key(
    data_dir: &Path,
    mode: KeyStore,
    vault: &dyn KeyVault,
    policy: &NewKeyPolicy<'_>,
) -> Result<SelectedKey, StoreError> {
    let key_path = data_dir.join(KEY_FILE);
    let keychain_file = data_dir.join(KEYCHAIN_FILE);

    // 1. An existing key file always wins.
    if let Some(key) = read_key_file(&key_path)? {
        if mode == KeyStore::Keychain {
            return Err(StoreError::KeyFileInUse { path: key_path });
        }
        if keychain_file.exists() {
            tracing::warn!(
                key_file = %key_path.display(),
                keychain_file = %keychain_file.display(),
                "the data dir has both a key file and a keychain entry name; using the key file"
            );
        }
        let choice = match mode {
            KeyStore::File => KeyChoice::FileForced,
            _ => KeyChoice::ExistingKeyFile,
        };
        return Ok(SelectedKey {
            sealer: Sealer::new(key, KeySource::KeyFile(key_path)),
            choice,
            created: false,
        });
    }

    let recorded = read_keychain_file(&keychain_file)?;
    if mode == KeyStore::File {
        if let Some(entry) = recorded {
            return Err(StoreError::KeyInKeychain {
                entry: entry.to_string(),
                keychain_file,
            });
        }
        return file_key(&key_path, KeyChoice::FileForced, policy);
    }

    // 2. The keychain.
    let keychain = Keychain {
        vault,
        mode,
        entry: recorded
            .clone()
            .unwrap_or_else(|| Entry::for_data_dir(data_dir)),
        recorded: recorded.is_some(),
        key_path: &key_path,
        keychain_file: &keychain_file,
        policy,
    };
    match vault.get(&keychain.entry.service, &keychain.entry.user) {
        Ok(Some(text)) => keychain.use_key(&text),
        Ok(None) => {
            let _lock = CreationLock::acquire(data_dir)?;
            // Another agm may have stored a key while this one waited for the lock.
            match vault.get(&keychain.entry.service, &keychain.entry.user) {
                Ok(Some(text)) => keychain.use_key(&text),
                Ok(None) => keychain.create(),
                Err(e) => keychain.unanswered(e),
            }
        }
        Err(e) => keychain.unanswered(e),
    }
}

/// The key file, read or created (as `policy` allows). 3. in the module docs.
fn file_key(
    key_path: &Path,
    choice: KeyChoice,
    policy: &NewKeyPolicy<'_>,
) -> Result<SelectedKey, StoreError> {
    let existed = key_path.exists();
    if !existed {
        policy.check(|| format!("the key file {}", key_path.display()))?;
    }
    let sealer = Sealer::load_or_create(key_path)?;
    Ok(SelectedKey {
        sealer,
        choice,
        created: !existed,
    })
}

struct Keychain<'a> {
    vault: &'a dyn KeyVault,
    mode: KeyStore,
    entry: Entry,
    /// [`KEYCHAIN_FILE`] names this entry: the stored tokens are sealed with its key.
    recorded: bool,
    key_path: &'a Path,
    keychain_file: &'a Path,
    policy: &'a NewKeyPolicy<'a>,
}

impl Keychain<'_> {
    fn use_key(&self, text: &Secret) -> Result<SelectedKey, StoreError> {
        let key = decode_key(text.expose()).ok_or_else(|| StoreError::KeychainInvalid {
            entry: self.entry.to_string(),
        })?;
        if !self.recorded {
            write_keychain_file(self.keychain_file, &self.entry)?;
        }
        Ok(SelectedKey {
            sealer: Sealer::new(key, self.entry.source()),
            choice: KeyChoice::Keychain { created: false },
            created: false,
        })
    }

    /// The keychain did not give an answer to a read.
    fn unanswered(&self, error: VaultError) -> Result<SelectedKey, StoreError> {
        let entry = self.entry.to_string();
        match error {
            VaultError::NotText => Err(StoreError::KeychainInvalid { entry }),
            VaultError::Failed(reason) => Err(StoreError::Keychain {
                action: "read",
                entry,
                reason,
                remedy: "try again; if it keeps failing, fix the entry in the keychain's own tool",
            }),
            VaultError::Unavailable(reason) if self.recorded => {
                Err(StoreError::KeychainUnavailable { entry, reason })
            }
            VaultError::Unavailable(reason) if self.mode == KeyStore::Keychain => {
                Err(StoreError::KeychainRequired { reason })
            }
            VaultError::Unavailable(reason) => {
                tracing::debug!(
                    %reason,
                    key_file = %self.key_path.display(),
                    "no OS keychain answered; the sealing key is kept in the key file"
                );
                file_key(self.key_path, KeyChoice::NoKeychain { reason }, self.policy)
            }
        }
    }

    /// Puts a new key in the keychain and reads it back before using it. Only called
    /// with the creation lock held.
    fn create(&self) -> Result<SelectedKey, StoreError> {
        let entry = self.entry.to_string();
        if self.recorded && !self.policy.force {
            // The key the tokens are sealed with may well be in another keychain (or
            // collection, or login session) than the one answering now: a new key here
            // would mix two keys in one database. Only the user can tell.
            return Err(StoreError::KeychainEntryMissing {
                entry,
                keychain_file: self.keychain_file.to_path_buf(),
            });
        }
        self.policy.check(|| {
            format!(
                "the OS keychain entry {entry} or the key file {}",
                self.key_path.display()
            )
        })?;
        let key = random_key().map_err(|e| StoreError::Keychain {
            action: "make a new key for",
            entry: entry.clone(),
            reason: e.to_string(),
            remedy: "the system's random number generator failed; try again",
        })?;
        let text = Secret::new(encode_key(&key));
        if let Err(e) = self.vault.set(&self.entry.service, &self.entry.user, &text) {
            let reason = e.to_string();
            if self.mode == KeyStore::Auto {
                // Nothing has been sealed with any key yet: the key file is as good.
                tracing::warn!(
                    entry = %entry,
                    %reason,
                    key_file = %self.key_path.display(),
                    "the OS keychain did not take the new sealing key; keeping it in the key file instead"
                );
                return file_key(
                    self.key_path,
                    KeyChoice::KeychainRefused { reason },
                    self.policy,
                );
            }
            return Err(StoreError::Keychain {
                action: "store a new key in",
                entry,
                reason,
                remedy: "unlock the keychain and try again, or set [storage] key_store = \"file\" to keep the key in a file",
            });
        }
        let read_back = self.vault.get(&self.entry.service, &self.entry.user);
        let problem = match read_back {
            Ok(Some(back)) if decode_key(back.expose()) == Some(key) => None,
            Ok(Some(_)) => Some("reading it back gave another value".to_owned()),
            Ok(None) => Some("reading it back found no entry".to_owned()),
            Err(e) => Some(format!("reading it back failed: {e}")),
        };
        if let Some(reason) = problem {
            return Err(StoreError::Keychain {
                action: "verify the new key in",
                entry,
                reason,
                remedy: "nothing was sealed with it; try again, or set [storage] key_store = \"file\" to keep the key in a file",
            });
        }
        write_keychain_file(self.keychain_file, &self.entry)?;
        tracing::info!(
            entry = %entry,
            "created a new sealing key in the OS keychain; agm.db can only be read with it"
        );
        Ok(SelectedKey {
            sealer: Sealer::new(key, self.entry.source()),
            choice: KeyChoice::Keychain { created: true },
            created: true,
        })
    }
}

/// The entry [`KEYCHAIN_FILE`] names, `None` if there is no such file.
fn read_keychain_file(path: &Path) -> Result<Option<Entry>, StoreError> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(StoreError::Io {
                action: "read",
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let invalid = || StoreError::KeychainFileInvalid {
        path: path.to_path_buf(),
    };
    let mut text = String::new();
    file.take(KEYCHAIN_FILE_MAX)
        .read_to_string(&mut text)
        .map_err(|_| invalid())?;
    let (mut service, mut user) = (None, None);
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once('=').map(|(k, v)| (k.trim(), v.trim())) {
            Some(("service", value)) => service = Some(value),
            Some(("user", value)) => user = Some(value),
            _ => return Err(invalid()),
        }
    }
    let valid = |name: &str| {
        !name.is_empty()
            && name.len() <= 128
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
    };
    match (service, user) {
        (Some(service), Some(user)) if valid(service) && valid(user) => Ok(Some(Entry {
            service: service.to_owned(),
            user: user.to_owned(),
        })),
        _ => Err(invalid()),
    }
}

/// Writes [`KEYCHAIN_FILE`] in place atomically (a temp file renamed over it).
fn write_keychain_file(path: &Path, entry: &Entry) -> Result<(), StoreError> {
    let contents = format!(
        "# The key that seals the tokens in agm.db is in the OS keychain, in this entry.\n\
         # This file holds no secret. Keep it with agm.db: it tells agm where the key is.\n\
         service = {}\nuser = {}\n",
        entry.service, entry.user
    );
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{KEYCHAIN_FILE}.{:08x}.tmp",
        rand::random::<u32>()
    ));
    let written =
        write_private_file(&tmp, contents.as_bytes()).and_then(|()| fs::rename(&tmp, path));
    if let Err(source) = written {
        let _ = fs::remove_file(&tmp);
        return Err(StoreError::Io {
            action: "write",
            path: path.to_path_buf(),
            source,
        });
    }
    sync_dir(dir);
    Ok(())
}

/// An exclusive lock on [`LOCK_FILE`] in the data dir, released (and the file removed)
/// on drop. Removing it is safe: whoever waited on the old file reads the keychain again
/// once it has the lock, and finds the key the holder stored.
struct CreationLock {
    file: File,
    path: PathBuf,
}

impl CreationLock {
    fn acquire(data_dir: &Path) -> Result<CreationLock, StoreError> {
        let path = data_dir.join(LOCK_FILE);
        let io_error = |source| StoreError::Io {
            action: "lock",
            path: path.clone(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_error)?;
        file.lock().map_err(io_error)?;
        Ok(CreationLock { file, path })
    }
}

impl Drop for CreationLock {
    fn drop(&mut self) {
        let _ = self.file.unlock();
        let _ = fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_store_names_round_trip() {
        for name in KeyStore::NAMES {
            let store: KeyStore = name.parse().unwrap();
            assert_eq!(store.to_string(), name);
        }
        assert_eq!(" File ".parse::<KeyStore>().unwrap(), KeyStore::File);
        let err = "vault".parse::<KeyStore>().unwrap_err().to_string();
        assert!(err.contains("auto, keychain, file"), "{err}");
        assert_eq!(KeyStore::default(), KeyStore::Auto);
    }

    #[test]
    fn keychain_users_are_stable_and_differ_between_data_dirs() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let user = keychain_user(a.path());
        assert_eq!(user, keychain_user(a.path()));
        assert_ne!(user, keychain_user(b.path()));
        assert!(user.starts_with("datadir-"), "{user}");
        assert_eq!(user.len(), "datadir-".len() + 16);
        // Another spelling of the same directory is the same user.
        let dotted = a.path().join(".");
        assert_eq!(keychain_user(&dotted), user);
    }

    #[test]
    fn the_keychain_file_round_trips_and_a_damaged_one_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEYCHAIN_FILE);
        assert_eq!(read_keychain_file(&path).unwrap(), None);
        let entry = Entry::for_data_dir(dir.path());
        write_keychain_file(&path, &entry).unwrap();
        assert_eq!(read_keychain_file(&path).unwrap(), Some(entry));

        for damaged in [
            "",
            "service = agm\n",
            "service = agm\nuser = a b\n",
            "junk\n",
        ] {
            fs::write(&path, damaged).unwrap();
            let err = read_keychain_file(&path).unwrap_err();
            assert!(
                matches!(err, StoreError::KeychainFileInvalid { .. }),
                "{damaged:?}: {err}"
            );
        }
    }

    #[test]
    fn choices_explain_themselves() {
        let reason = "zbus error".to_owned();
        assert_eq!(
            KeyChoice::NoKeychain { reason }.to_string(),
            "no OS keychain answered (zbus error)"
        );
        assert_eq!(
            KeyChoice::FileForced.to_string(),
            "[storage] key_store = \"file\""
        );
    }
}
