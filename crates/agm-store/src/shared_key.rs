//! The seal key of a store that several agm processes share (cluster mode, PostgreSQL).
//!
//! The key is never stored in the database. Every replica is given the same key, in one
//! of two ways:
//!
//! - the environment variable [`SEAL_KEY_ENV`] (`AGM_SEAL_KEY`) holding the key itself,
//!   32 bytes in base64 (what `openssl rand -base64 32` prints, or the contents of a
//!   data dir's `secret.key`);
//! - a key file, `[storage] key_file = PATH`, holding the same text, readable by its
//!   owner only (mode 0600, as `secret.key`).
//!
//! Exactly one must be set ([`SharedKey::from_settings`]). The database keeps a value
//! sealed with the key (`agm_meta.seal_key_check`), so a replica with another key is
//! refused at open ([`StoreError::SealKeyMismatch`](crate::StoreError::SealKeyMismatch))
//! instead of failing account by account. A key file that does not exist is created
//! only by the first agm to open a database that holds nothing sealed; once the
//! database is sealed with a key, an agm without it is refused
//! ([`StoreError::SealKeyMissing`](crate::StoreError::SealKeyMissing)) unless it runs with
//! `--force-new-key`, the same rule as for SQLite.

use std::path::PathBuf;

use crate::error::StoreError;
use crate::seal::{KeySource, Sealer, decode_key, read_key_file};
use crate::secret::Secret;

/// The environment variable that holds the shared seal key (base64 of 32 bytes).
pub const SEAL_KEY_ENV: &str = "AGM_SEAL_KEY";

/// Where a shared store's seal key comes from. `Debug` shows no key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SharedKey {
    /// The key itself, base64 text: the value of [`SEAL_KEY_ENV`].
    Env(Secret),
    /// A file holding the key as base64 text, mode 0600: `[storage] key_file`.
    File(PathBuf),
}

impl SharedKey {
    /// The key source the settings give: `env` is the value of `AGM_SEAL_KEY`, `key_file`
    /// the `[storage] key_file` setting; empty values count as unset. Exactly one must be
    /// set: none is [`StoreError::SealKeyNotConfigured`], both
    /// [`StoreError::SealKeyTwice`].
    pub fn from_settings(
        env: Option<Secret>,
        key_file: Option<PathBuf>,
    ) -> Result<SharedKey, StoreError> {
        let env = env.filter(|v| !v.expose().trim().is_empty());
        let key_file = key_file.filter(|p| !p.as_os_str().is_empty());
        match (env, key_file) {
            (Some(key), None) => Ok(SharedKey::Env(key)),
            (None, Some(path)) => Ok(SharedKey::File(path)),
            (None, None) => Err(StoreError::SealKeyNotConfigured),
            (Some(_), Some(path)) => Err(StoreError::SealKeyTwice { path }),
        }
    }

    /// Where the key is, for messages.
    pub fn source(&self) -> KeySource {
        match self {
            SharedKey::Env(_) => KeySource::Env(SEAL_KEY_ENV),
            SharedKey::File(path) => KeySource::KeyFile(path.clone()),
        }
    }

    /// The key, `None` if it is a key file that does not exist. Blocking (a file read).
    pub(crate) fn load(&self) -> Result<Option<Sealer>, StoreError> {
        match self {
            SharedKey::Env(text) => {
                let key = decode_key(text.expose())
                    .ok_or(StoreError::SealKeyEnvInvalid { var: SEAL_KEY_ENV })?;
                Ok(Some(Sealer::new(key, self.source())))
            }
            SharedKey::File(path) => {
                Ok(read_key_file(path)?.map(|key| Sealer::new(key, self.source())))
            }
        }
    }

    /// A new key in the key file (which another process may have created meanwhile: then
    /// that key). Only for [`SharedKey::File`]; blocking.
    pub(crate) fn create(&self) -> Result<Sealer, StoreError> {
        match self {
            SharedKey::File(path) => Ok(Sealer::load_or_create(path)?),
            // An environment variable always holds a key (or is refused by `load`).
            SharedKey::Env(_) => Err(StoreError::SealKeyEnvInvalid { var: SEAL_KEY_ENV }),
        }
    }

    /// Where the key was looked for, for [`StoreError::SealKeyMissing`].
    pub(crate) fn expected(&self) -> String {
        match self {
            SharedKey::Env(_) => SEAL_KEY_ENV.to_owned(),
            SharedKey::File(path) => format!(
                "the key file {} (copy it from another agm that shares this database, or set {SEAL_KEY_ENV})",
                path.display()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_one_source_must_be_set() {
        let key = || Some(Secret::new("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="));
        assert!(matches!(
            SharedKey::from_settings(key(), None),
            Ok(SharedKey::Env(_))
        ));
        assert_eq!(
            SharedKey::from_settings(None, Some("/k".into())).unwrap(),
            SharedKey::File("/k".into())
        );
        assert!(matches!(
            SharedKey::from_settings(Some(Secret::new(" ")), Some(PathBuf::new())),
            Err(StoreError::SealKeyNotConfigured)
        ));
        let err = SharedKey::from_settings(key(), Some("/k".into())).unwrap_err();
        assert!(matches!(err, StoreError::SealKeyTwice { .. }), "{err}");
        assert!(err.to_string().contains("AGM_SEAL_KEY"), "{err}");
    }

    #[test]
    fn a_bad_env_key_is_refused_without_showing_it() {
        let err = SharedKey::Env(Secret::new("not-a-key-at-all"))
            .load()
            .unwrap_err();
        assert!(matches!(err, StoreError::SealKeyEnvInvalid { .. }), "{err}");
        assert!(!err.to_string().contains("not-a-key"), "{err}");
        let debug = format!("{:?}", SharedKey::Env(Secret::new("s3cret")));
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    #[test]
    fn a_missing_key_file_is_none_and_created_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let key = SharedKey::File(dir.path().join("seal.key"));
        assert!(key.load().unwrap().is_none());
        let made = key.create().unwrap();
        let loaded = key.load().unwrap().unwrap();
        assert!(made.same_key(&loaded));
    }
}
