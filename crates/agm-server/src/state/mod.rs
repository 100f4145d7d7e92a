//! What the CLI and the server (and, in cluster mode, several replicas) share: safe
//! mode, cooldowns and the CLI's requests to clear them, quota snapshots, telemetry for
//! `agm doctor`, update notices and the console's sign-in state.
//!
//! Each piece lives under one typed [`Key`], all listed in [`keys`]. [`Shared`] reads,
//! writes and — for every read-modify-write — *updates* them: the change runs in one
//! transaction of the [`SharedBackend`], so a CLI command racing the running server
//! loses nothing. The backend today is the store (SQLite, or in memory for tests);
//! cluster mode's replicas share it on PostgreSQL (the hot state they share through
//! Redis is [`crate::cluster`]'s).

pub mod audit;
pub mod cooldowns;
pub mod quota;
pub mod sessions;

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use agm_store::{Store, StoreError};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Opens the store `config` names: SQLite in `data_dir`, or PostgreSQL at `[storage]
/// postgres_url` with the seal key every replica shares (`AGM_SEAL_KEY` in `env`, or
/// `[storage] key_file`). A lost sealing key is replaced only with `force_new_key`.
pub async fn open_store(
    config: &crate::config::Config,
    env: &crate::config::Env,
    data_dir: &std::path::Path,
    force_new_key: bool,
) -> Result<Store, StoreError> {
    match config.storage.backend {
        crate::config::StorageBackend::Postgres => {
            let key = agm_store::SharedKey::from_settings(
                env.get(agm_store::SEAL_KEY_ENV)
                    .map(|k| agm_store::Secret::new(k.clone())),
                Some(std::path::PathBuf::from(&config.storage.key_file)),
            )?;
            let options = agm_store::PostgresOptions {
                force_new_key,
                ..agm_store::PostgresOptions::default()
            };
            Store::open_postgres(&config.storage.postgres_url, key, options).await
        }
        crate::config::StorageBackend::Sqlite => {
            let options = agm_store::StoreOptions {
                key_store: config.storage.key_store,
                force_new_key,
            };
            Store::open_sqlite_with(data_dir, options).await
        }
    }
}

/// A boxed future, as the object-safe [`SharedBackend`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A change of one stored value: given what is stored, the new value, or `None` to
/// leave it as it is.
pub type Change = Box<dyn FnOnce(Option<Value>) -> Option<Value> + Send>;

/// Why shared state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("could not encode {key}: {message}")]
    Encode { key: String, message: String },
}

/// Where shared state lives: JSON values by name, with an atomic read-modify-write.
pub trait SharedBackend: Send + Sync + 'static {
    fn read<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Value>, StateError>>;
    fn write<'a>(&'a self, name: &'a str, value: Value) -> BoxFuture<'a, Result<(), StateError>>;
    /// Applies `change` to the stored value with every other writer held off until it
    /// is written. Returns the value stored afterwards.
    fn update<'a>(
        &'a self,
        name: &'a str,
        change: Change,
    ) -> BoxFuture<'a, Result<Option<Value>, StateError>>;
}

impl SharedBackend for Store {
    fn read<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<Option<Value>, StateError>> {
        Box::pin(async move { Ok(self.get_setting(name).await?) })
    }

    fn write<'a>(&'a self, name: &'a str, value: Value) -> BoxFuture<'a, Result<(), StateError>> {
        Box::pin(async move { Ok(self.set_setting(name, &value).await?) })
    }

    fn update<'a>(
        &'a self,
        name: &'a str,
        change: Change,
    ) -> BoxFuture<'a, Result<Option<Value>, StateError>> {
        // `Store::update_setting`'s `None` deletes; a `Change`'s `None` leaves the value.
        Box::pin(async move {
            Ok(self
                .update_setting(name, move |current| {
                    Ok::<_, StoreError>(match change(current.clone()) {
                        Some(value) => Some(value),
                        None => current,
                    })
                })
                .await?)
        })
    }
}

/// The name of one piece of shared state, and the type stored under it.
pub struct Key<T> {
    name: Cow<'static, str>,
    _type: PhantomData<fn() -> T>,
}

impl<T> Key<T> {
    const fn fixed(name: &'static str) -> Key<T> {
        Key {
            name: Cow::Borrowed(name),
            _type: PhantomData,
        }
    }

    fn owned(name: String) -> Key<T> {
        Key {
            name: Cow::Owned(name),
            _type: PhantomData,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<T> fmt::Debug for Key<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key({})", self.name)
    }
}

/// Every piece of shared state, listed once.
pub mod keys {
    use super::Key;
    use crate::console::auth::{StoredPassword, StoredTokens};
    use crate::ops::jobs::DiscoveryTelemetry;
    use crate::ops::updates::{Latest, VersionMark};
    use crate::routing::drift::Refusal;
    use crate::state::cooldowns::{ClearRequest, StoredCooldown};
    use agm_google::QuotaSnapshot;
    use agm_pool::safe_mode::SafeModeRecord;
    use agm_pool::selection::SavedSession;
    use agm_pool::signatures::SavedSignature;
    use agm_pool::warmup::WarmupHistory;

    /// Safe mode's state machine, as `agm safe-mode` and every server see it.
    pub const SAFE_MODE: Key<SafeModeRecord> = Key::fixed("safe_mode");
    /// The running cooldowns (wall-clock ends), so a restart keeps them.
    pub const COOLDOWNS: Key<Vec<StoredCooldown>> = Key::fixed("cooldowns");
    /// The CLI's latest request to clear cooldowns, which a running server follows.
    pub const COOLDOWN_CLEAR: Key<ClearRequest> = Key::fixed("cooldowns:clear");
    /// The project-discovery summary a server writes for `agm doctor`.
    pub const DISCOVERY_TELEMETRY: Key<DiscoveryTelemetry> = Key::fixed("telemetry:discovery");
    /// Google's refusal of agm's client version, while one is in force.
    pub const VERSION_DRIFT: Key<Option<Refusal>> = Key::fixed("telemetry:version_drift");
    /// The last update check's result.
    pub const UPDATE_LATEST: Key<Latest> = Key::fixed("updates:latest");
    /// The newest version already announced in `agm serve`'s log.
    pub const UPDATE_ANNOUNCED: Key<VersionMark> = Key::fixed("updates:announced");
    /// The version whose notice was dismissed in the console.
    pub const UPDATE_DISMISSED: Key<VersionMark> = Key::fixed("updates:dismissed");
    /// The console's admin password (an argon2 hash).
    pub const CONSOLE_PASSWORD: Key<StoredPassword> = Key::fixed("console:admin_password");
    /// The one-time sign-in tokens `agm console` made (their hashes).
    pub const CONSOLE_LOGIN_TOKENS: Key<StoredTokens> = Key::fixed("console:login_tokens");

    /// Sticky sessions (conversation → account), kept across a restart.
    pub const STICKY_SESSIONS: Key<Vec<SavedSession>> = Key::fixed("sessions:sticky");
    /// Thinking signatures handed out, kept across a restart.
    pub const SIGNATURES: Key<Vec<SavedSignature>> = Key::fixed("sessions:signatures");

    /// The warmups sent: per account and model group, until when its window runs.
    pub const WARMUP_HISTORY: Key<WarmupHistory> = Key::fixed("warmup:history");

    /// Requests sent to the paid Gemini API pool today (`[safe_mode] daily_request_cap`).
    pub const OFFICIAL_DAILY: Key<crate::routing::official::StoredDailyCount> =
        Key::fixed("official:daily_requests");

    /// An account's latest quota snapshot.
    pub fn quota(account_id: &str) -> Key<QuotaSnapshot> {
        Key::owned(format!("quota:{account_id}"))
    }
}

/// Typed access to the shared state. Cheap to clone.
#[derive(Clone)]
pub struct Shared {
    backend: Arc<dyn SharedBackend>,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Shared")
    }
}

impl Shared {
    pub fn new(backend: impl SharedBackend) -> Shared {
        Shared {
            backend: Arc::new(backend),
        }
    }

    /// The value under `key`. A value that does not parse as `T` (written by another
    /// version of agm, or damaged) is logged and read as absent.
    pub async fn get<T: DeserializeOwned>(&self, key: &Key<T>) -> Result<Option<T>, StateError> {
        Ok(self
            .backend
            .read(key.name())
            .await?
            .and_then(|v| decode(key.name(), v)))
    }

    pub async fn put<T: Serialize>(&self, key: &Key<T>, value: &T) -> Result<(), StateError> {
        let value = encode(key.name(), value)?;
        self.backend.write(key.name(), value).await
    }

    /// Reads, changes and writes the value under `key` as one step: `change` gets what
    /// is stored and returns the new value (`None`: leave it) and an answer for the
    /// caller. No other writer, in this process or another, comes in between.
    pub async fn update<T, R, F>(&self, key: &Key<T>, change: F) -> Result<R, StateError>
    where
        T: Serialize + DeserializeOwned + Send + 'static,
        R: Send + 'static,
        F: FnOnce(Option<T>) -> (Option<T>, R) + Send + 'static,
    {
        let answer: Arc<Mutex<Option<Result<R, StateError>>>> = Arc::new(Mutex::new(None));
        let slot = Arc::clone(&answer);
        let name = key.name().to_owned();
        let boxed: Change = Box::new(move |stored| {
            let (new, r) = change(stored.and_then(|v| decode(&name, v)));
            let encoded = new.map(|v| encode(&name, &v)).transpose();
            let (value, r) = match encoded {
                Ok(value) => (value, Ok(r)),
                Err(e) => (None, Err(e)),
            };
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(r);
            value
        });
        self.backend.update(key.name(), boxed).await?;
        let answer = answer.lock().unwrap_or_else(PoisonError::into_inner).take();
        answer.unwrap_or_else(|| {
            Err(StateError::Encode {
                key: key.name().to_owned(),
                message: "the change did not run".to_owned(),
            })
        })
    }
}

fn decode<T: DeserializeOwned>(name: &str, value: Value) -> Option<T> {
    match serde_json::from_value(value) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(key = name, error = %e, "a stored setting is unreadable; ignoring it");
            None
        }
    }
}

fn encode<T: Serialize>(name: &str, value: &T) -> Result<Value, StateError> {
    serde_json::to_value(value).map_err(|e| StateError::Encode {
        key: name.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const COUNTER: Key<u64> = Key::fixed("test:counter");

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn updates_from_two_processes_lose_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let a = Shared::new(
            Store::open_sqlite_with(dir.path(), agm_store::KeyStore::File)
                .await
                .unwrap(),
        );
        let b = Shared::new(
            Store::open_sqlite_with(dir.path(), agm_store::KeyStore::File)
                .await
                .unwrap(),
        );
        let mut tasks = Vec::new();
        for i in 0..30 {
            let shared = if i % 2 == 0 { a.clone() } else { b.clone() };
            tasks.push(tokio::spawn(async move {
                shared
                    .update(&COUNTER, |n| {
                        let next = n.unwrap_or(0) + 1;
                        (Some(next), next)
                    })
                    .await
                    .unwrap()
            }));
        }
        let mut seen = Vec::new();
        for task in tasks {
            seen.push(task.await.unwrap());
        }
        seen.sort_unstable();
        assert_eq!(seen, (1..=30).collect::<Vec<u64>>());
        assert_eq!(a.get(&COUNTER).await.unwrap(), Some(30));
    }

    #[tokio::test]
    async fn an_unreadable_value_reads_as_absent() {
        let store = Store::open_in_memory().await.unwrap();
        store
            .set_setting("test:counter", &serde_json::json!("not a number"))
            .await
            .unwrap();
        let shared = Shared::new(store);
        assert_eq!(shared.get(&COUNTER).await.unwrap(), None);
        let left = shared.update(&COUNTER, |n| (None, n)).await.unwrap();
        assert_eq!(left, None);
    }
}
