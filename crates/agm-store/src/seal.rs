//! Sealing secrets at rest: AES-256-GCM with a random 96-bit nonce per value.
//!
//! A sealed value is `v1:` + base64(nonce ‖ ciphertext ‖ tag). Each value is also bound
//! to a *context* string (passed as AES-GCM associated data) naming where it is stored,
//! e.g. `account/antigravity/alice@example.com/refresh_token`, so a sealed value copied
//! into another row or column does not decrypt.
//!
//! The 32-byte key (base64 text) comes from the OS keychain, from a key file
//! (`secret.key`, mode 0600) or, for tests and the demo, from memory: [`KeySource`] says
//! which. [`crate::keychain`] decides between the keychain and the key file.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rand::{RngCore, TryRngCore};

use crate::secret::Secret;

/// The prefix of every value sealed by this version.
pub const SEALED_PREFIX: &str = "v1:";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// A key file is about 45 bytes; anything much larger is not one.
const KEY_FILE_MAX: u64 = 1024;

/// Where the sealing key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeySource {
    /// A key file in the data dir (`secret.key`).
    KeyFile(PathBuf),
    /// An entry in the OS keychain (macOS Keychain, Windows Credential Manager, the
    /// Secret Service on Linux and BSD).
    Keychain { service: String, user: String },
    /// A random key that lives only as long as the process (tests, `agm demo`).
    Memory,
    /// An environment variable holding the key (cluster mode: `AGM_SEAL_KEY`).
    Env(&'static str),
}

impl fmt::Display for KeySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeySource::KeyFile(path) => write!(f, "the key in {}", path.display()),
            KeySource::Keychain { service, user } => {
                write!(f, "the OS keychain entry {service}/{user}")
            }
            KeySource::Memory => f.write_str("the in-memory key"),
            KeySource::Env(var) => write!(f, "the key in the environment variable {var}"),
        }
    }
}

/// Why a sealed value could not be opened. Never contains any part of the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsealError {
    #[error("{key} is not the one it was sealed with, or the stored value was altered")]
    WrongKey { key: KeySource },
    #[error(
        "the stored value was sealed in a format this agm does not know ({version}); upgrade agm"
    )]
    UnknownFormat { version: String },
    #[error("the stored value is not a sealed value (the database was altered)")]
    NotSealed,
    #[error("the stored sealed value is damaged")]
    Damaged,
}

/// Encryption itself failed (only possible for absurdly large values).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the value is too large to seal")]
pub struct SealError;

/// Loading or creating the key file failed.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "the key file {path} can be read by other users (mode {mode:03o}); run `chmod 600 {path}` and start again",
        path = path.display()
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error(
        "the key file {} does not hold a key (expected 32 bytes in base64); restore it from a backup, or move it away to start with a new key (values sealed with the old key then cannot be read)",
        path.display()
    )]
    Invalid { path: PathBuf },
}

/// Seals and unseals secret values with one AES-256-GCM key.
pub struct Sealer {
    cipher: Aes256Gcm,
    /// Kept to write the key out for other agm processes (`agm store migrate
    /// --key-file`) and to compare keys; never shown.
    key: [u8; KEY_LEN],
    source: KeySource,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer for a key obtained elsewhere.
    pub fn new(key: [u8; KEY_LEN], source: KeySource) -> Sealer {
        Sealer {
            cipher: Aes256Gcm::new(&key.into()),
            key,
            source,
        }
    }

    /// A sealer with a fresh random key that is never written anywhere.
    pub fn in_memory() -> Sealer {
        let mut key = [0u8; KEY_LEN];
        rand::rng().fill_bytes(&mut key);
        Sealer::new(key, KeySource::Memory)
    }

    /// Reads the key file at `path`, or creates it (mode 0600, atomically) if it does not
    /// exist. Refuses a key file that other users can read.
    pub fn load_or_create(path: &Path) -> Result<Sealer, KeyFileError> {
        let source = KeySource::KeyFile(path.to_path_buf());
        if let Some(key) = read_key_file(path)? {
            return Ok(Sealer::new(key, source));
        }
        let key = random_key().map_err(|source| KeyFileError::Io {
            action: "generate a random key for",
            path: path.to_path_buf(),
            source,
        })?;
        if install_key_file(path, &key)? {
            tracing::info!(path = %path.display(), "created a new sealing key; back it up with agm.db");
            return Ok(Sealer::new(key, source));
        }
        // Another agm process created the key file first: use theirs.
        match read_key_file(path)? {
            Some(key) => Ok(Sealer::new(key, source)),
            None => Err(KeyFileError::Io {
                action: "read the key file",
                path: path.to_path_buf(),
                source: io::Error::from(io::ErrorKind::NotFound),
            }),
        }
    }

    /// Whether `other` seals with the same key.
    pub fn same_key(&self, other: &Sealer) -> bool {
        use subtle::ConstantTimeEq;
        self.key.ct_eq(&other.key).into()
    }

    /// This sealer with its key said to come from `source`.
    pub(crate) fn with_source(&self, source: KeySource) -> Sealer {
        Sealer::new(self.key, source)
    }

    /// Writes the key to a new key file at `path` (mode 0600, atomically). Returns
    /// `false`, leaving it alone, if the file already exists.
    pub(crate) fn write_new_key_file(&self, path: &Path) -> Result<bool, KeyFileError> {
        install_key_file(path, &self.key)
    }

    /// Where this sealer's key came from.
    pub fn source(&self) -> &KeySource {
        &self.source
    }

    /// Seals `plaintext` for storage at `context`.
    pub fn seal(&self, plaintext: &str, context: &str) -> Result<String, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let payload = Payload {
            msg: plaintext.as_bytes(),
            aad: context.as_bytes(),
        };
        let ciphertext = self
            .cipher
            .encrypt(&Nonce::from(nonce), payload)
            .map_err(|_| SealError)?;
        let mut bytes = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        bytes.extend_from_slice(&nonce);
        bytes.extend_from_slice(&ciphertext);
        Ok(format!("{SEALED_PREFIX}{}", BASE64.encode(bytes)))
    }

    /// Opens a value sealed for `context`. Fails, never returns garbage, if the key, the
    /// context or any byte of the value differs.
    pub fn unseal(&self, sealed: &str, context: &str) -> Result<Secret, UnsealError> {
        let Some(body) = sealed.strip_prefix(SEALED_PREFIX) else {
            return Err(match format_version(sealed) {
                Some(version) => UnsealError::UnknownFormat {
                    version: version.to_owned(),
                },
                None => UnsealError::NotSealed,
            });
        };
        let bytes = BASE64.decode(body).map_err(|_| UnsealError::Damaged)?;
        if bytes.len() < NONCE_LEN + TAG_LEN {
            return Err(UnsealError::Damaged);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| UnsealError::Damaged)?;
        let payload = Payload {
            msg: ciphertext,
            aad: context.as_bytes(),
        };
        let plaintext = self
            .cipher
            .decrypt(&Nonce::from(nonce), payload)
            .map_err(|_| UnsealError::WrongKey {
                key: self.source.clone(),
            })?;
        String::from_utf8(plaintext)
            .map(Secret::from)
            .map_err(|_| UnsealError::Damaged)
    }
}

/// `Some("v7")` for a value that looks like `v7:...`: sealed by another format version.
/// Returns nothing for anything else, so no part of a plaintext value leaks into errors.
fn format_version(value: &str) -> Option<&str> {
    let (version, _) = value.split_once(':')?;
    let digits = version.strip_prefix('v')?;
    (!digits.is_empty() && digits.len() <= 4 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then_some(version)
}

/// A new random key from the operating system's generator.
pub(crate) fn random_key() -> io::Result<[u8; KEY_LEN]> {
    let mut key = [0u8; KEY_LEN];
    rand::rngs::OsRng
        .try_fill_bytes(&mut key)
        .map_err(io::Error::other)?;
    Ok(key)
}

/// A key as it is stored: base64 text (without the key file's trailing newline).
pub(crate) fn encode_key(key: &[u8; KEY_LEN]) -> String {
    BASE64.encode(key)
}

/// The key in stored text (surrounding whitespace ignored); `None` if it is not one.
pub(crate) fn decode_key(text: &str) -> Option<[u8; KEY_LEN]> {
    BASE64
        .decode(text.trim())
        .ok()
        .and_then(|bytes| <[u8; KEY_LEN]>::try_from(bytes).ok())
}

/// The key in the file at `path`, `None` if there is no such file.
pub(crate) fn read_key_file(path: &Path) -> Result<Option<[u8; KEY_LEN]>, KeyFileError> {
    let io_error = |action, source| KeyFileError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("read the key file", e)),
    };
    // Check the file we opened, not the path, so nothing can swap it in between.
    let meta = file
        .metadata()
        .map_err(|e| io_error("read the key file", e))?;
    if !meta.is_file() {
        return Err(KeyFileError::Invalid {
            path: path.to_path_buf(),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Permissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    let mut text = String::new();
    match file.take(KEY_FILE_MAX).read_to_string(&mut text) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
            return Err(KeyFileError::Invalid {
                path: path.to_path_buf(),
            });
        }
        Err(e) => return Err(io_error("read the key file", e)),
    }
    let key = decode_key(&text).ok_or_else(|| KeyFileError::Invalid {
        path: path.to_path_buf(),
    })?;
    Ok(Some(key))
}

/// Writes `key` to `path` without ever exposing a partly written or world-readable file:
/// a temp file created with mode 0600 is linked into place. Returns `false`, leaving the
/// existing file alone, if `path` appeared in the meantime.
fn install_key_file(path: &Path, key: &[u8; KEY_LEN]) -> Result<bool, KeyFileError> {
    let io_error = |action, source| KeyFileError::Io {
        action,
        path: path.to_path_buf(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "secret.key".to_owned());
    let tmp = dir.join(format!(".{name}.{:08x}.tmp", rand::random::<u32>()));

    let written = write_private_file(&tmp, format!("{}\n", encode_key(key)).as_bytes());
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io_error("write the key file", e));
    }
    // A hard link fails if the target exists, so two agm processes starting at once
    // cannot overwrite each other's key. Filesystems without hard links fall back to
    // a rename.
    let installed = match fs::hard_link(&tmp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(_) => match path.try_exists() {
            Ok(true) => Ok(false),
            Ok(false) => fs::rename(&tmp, path)
                .map(|()| true)
                .map_err(|e| io_error("create the key file", e)),
            Err(e) => Err(io_error("create the key file", e)),
        },
    };
    if let Err(e) = fs::remove_file(&tmp)
        && e.kind() != io::ErrorKind::NotFound
    {
        tracing::warn!(path = %tmp.display(), error = %e, "could not remove a temporary key file");
    }
    if matches!(installed, Ok(true)) {
        sync_dir(dir);
    }
    installed
}

pub(crate) fn write_private_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Makes a new directory entry durable (best effort; not possible on every platform).
pub(crate) fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(dir = %dir.display(), error = %e, "could not sync the directory");
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTEXT: &str = "account/antigravity/alice@example.com/refresh_token";

    #[test]
    fn round_trip() {
        let sealer = Sealer::in_memory();
        let sealed = sealer.seal("1//0g-refresh", CONTEXT).unwrap();
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("1//0g-refresh"));
        assert_eq!(
            sealer.unseal(&sealed, CONTEXT).unwrap().expose(),
            "1//0g-refresh"
        );
    }

    #[test]
    fn each_seal_uses_a_fresh_nonce() {
        let sealer = Sealer::in_memory();
        let a = sealer.seal("same", CONTEXT).unwrap();
        let b = sealer.seal("same", CONTEXT).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn empty_plaintext_round_trips() {
        let sealer = Sealer::in_memory();
        let sealed = sealer.seal("", CONTEXT).unwrap();
        assert_eq!(sealer.unseal(&sealed, CONTEXT).unwrap().expose(), "");
    }

    #[test]
    fn another_key_is_refused() {
        let sealed = Sealer::in_memory().seal("token", CONTEXT).unwrap();
        let err = Sealer::in_memory().unseal(&sealed, CONTEXT).unwrap_err();
        assert_eq!(
            err,
            UnsealError::WrongKey {
                key: KeySource::Memory
            }
        );
    }

    #[test]
    fn another_context_is_refused() {
        let sealer = Sealer::in_memory();
        let sealed = sealer.seal("token", CONTEXT).unwrap();
        let err = sealer
            .unseal(&sealed, "account/antigravity/bob@example.com/refresh_token")
            .unwrap_err();
        assert!(matches!(err, UnsealError::WrongKey { .. }));
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let sealer = Sealer::in_memory();
        let sealed = sealer.seal("token", CONTEXT).unwrap();
        let mut bytes = BASE64.decode(&sealed[3..]).unwrap();
        for i in 0..bytes.len() {
            bytes[i] ^= 0x01;
            let tampered = format!("v1:{}", BASE64.encode(&bytes));
            assert!(sealer.unseal(&tampered, CONTEXT).is_err(), "byte {i}");
            bytes[i] ^= 0x01;
        }
    }

    #[test]
    fn malformed_values_are_errors_that_leak_nothing() {
        let sealer = Sealer::in_memory();
        assert_eq!(
            sealer.unseal("1//0g-plain", CONTEXT),
            Err(UnsealError::NotSealed)
        );
        assert_eq!(
            sealer.unseal("secret:stuff", CONTEXT),
            Err(UnsealError::NotSealed)
        );
        assert_eq!(
            sealer.unseal("v2:AAAA", CONTEXT),
            Err(UnsealError::UnknownFormat {
                version: "v2".into()
            })
        );
        assert_eq!(
            sealer.unseal("v1:not base64!", CONTEXT),
            Err(UnsealError::Damaged)
        );
        assert_eq!(sealer.unseal("v1:AAAA", CONTEXT), Err(UnsealError::Damaged));
    }

    #[test]
    fn a_wrong_keychain_key_names_the_entry() {
        let source = KeySource::Keychain {
            service: "agm".into(),
            user: "datadir-0123456789abcdef".into(),
        };
        let sealed = Sealer::in_memory().seal("token", CONTEXT).unwrap();
        let err = Sealer::new([7; 32], source)
            .unseal(&sealed, CONTEXT)
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "the OS keychain entry agm/datadir-0123456789abcdef is not the one it was sealed with, or the stored value was altered"
        );
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let debug = format!("{:?}", Sealer::new([7; 32], KeySource::Memory));
        assert_eq!(debug, "Sealer { source: Memory, .. }");
    }

    #[test]
    fn key_file_is_created_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let first = Sealer::load_or_create(&path).unwrap();
        let sealed = first.seal("token", CONTEXT).unwrap();
        let second = Sealer::load_or_create(&path).unwrap();
        assert_eq!(second.unseal(&sealed, CONTEXT).unwrap().expose(), "token");
        assert_eq!(second.source(), &KeySource::KeyFile(path.clone()));
        // No temp files left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("secret.key")]);
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_private_and_a_readable_one_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        Sealer::load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = Sealer::load_or_create(&path).unwrap_err();
        assert!(matches!(err, KeyFileError::Permissions { mode: 0o640, .. }));
        assert!(
            err.to_string()
                .contains(&format!("chmod 600 {}", path.display()))
        );
    }

    #[test]
    fn a_key_file_without_a_key_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        write_private_file(&path, b"not a key\n").unwrap();
        let err = Sealer::load_or_create(&path).unwrap_err();
        assert!(matches!(err, KeyFileError::Invalid { .. }), "{err}");
        // The bad file is left alone for the user to inspect.
        assert_eq!(fs::read(&path).unwrap(), b"not a key\n");
    }

    #[test]
    fn an_existing_key_file_is_never_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret.key");
        let theirs = Sealer::load_or_create(&path).unwrap();
        let before = fs::read(&path).unwrap();
        assert!(!install_key_file(&path, &[9; 32]).unwrap());
        assert_eq!(fs::read(&path).unwrap(), before);
        let sealed = theirs.seal("token", CONTEXT).unwrap();
        let ours = Sealer::load_or_create(&path).unwrap();
        assert_eq!(ours.unseal(&sealed, CONTEXT).unwrap().expose(), "token");
    }
}
