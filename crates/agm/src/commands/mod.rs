//! One module per command, plus what several commands share: loading the config and
//! opening the store in the data dir.

pub mod accounts;
pub mod audit;
pub mod config;
pub mod console;
pub mod demo;
pub mod doctor;
pub mod env;
pub mod ide;
pub mod keys;
pub mod logs;
pub mod models;
pub mod quota;
pub mod run;
pub mod safe_mode;
pub mod serve;
pub mod sign_in;
pub mod store;
pub mod tokens;
pub mod update;
pub mod validate;
pub mod warmup;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use agm_server::config::{Config, Env, LoadedConfig, LoggingSection, process_env};
use agm_store::Store;
use anyhow::Context;

use crate::logging;

/// The effective config and the store it names: what the account and key commands
/// work on. No server needs to run; a running one picks the changes up by itself.
pub struct Workspace {
    pub config: Config,
    pub store: Store,
    /// What the CLI shares with a running server (safe mode, cooldowns, quota, ...).
    pub shared: agm_server::state::Shared,
}

impl Workspace {
    /// Loads the config (file, then environment), starts logging (warnings only, unless
    /// `RUST_LOG` says otherwise: a command's output is its own), and opens the store in
    /// the data dir, creating it if needed.
    pub async fn open(explicit: Option<&Path>) -> anyhow::Result<Workspace> {
        let (loaded, env) = load_config(explicit)?;
        logging::init(&LoggingSection {
            level: "warn".to_owned(),
            ..loaded.config.logging.clone()
        });
        let (_, store) = open_store(&loaded.config, &env).await?;
        Ok(Workspace {
            config: loaded.config,
            shared: agm_server::state::Shared::new(store.clone()),
            store,
        })
    }

    /// A Google client for the configured addresses.
    pub fn google(&self) -> anyhow::Result<agm_google::GoogleClient> {
        agm_google::GoogleClient::new(agm_server::app::google_config(&self.config))
            .context("cannot start the HTTP client")
    }
}

/// The config from `--config` / `$AGM_CONFIG` / the default path, with the process
/// environment's overrides, and that environment.
pub fn load_config(explicit: Option<&Path>) -> anyhow::Result<(LoadedConfig, Env)> {
    let env = process_env();
    let loaded = Config::load(explicit, &env)?;
    Ok((loaded, env))
}

/// `agm --force-new-key`: set once by `main` before any command runs.
static FORCE_NEW_KEY: AtomicBool = AtomicBool::new(false);

/// Lets every store this process opens replace a lost sealing key (`--force-new-key`).
pub fn force_new_key() {
    FORCE_NEW_KEY.store(true, Ordering::Relaxed);
}

/// Opens the store the config names — SQLite in the data dir, or PostgreSQL at
/// `[storage] postgres_url` with the shared seal key (`AGM_SEAL_KEY` or
/// `[storage] key_file`); returns the data dir too. A lost sealing key is replaced only
/// under `--force-new-key`.
pub async fn open_store(config: &Config, env: &Env) -> anyhow::Result<(PathBuf, Store)> {
    let data_dir = config.data_dir(env);
    let force = FORCE_NEW_KEY.load(Ordering::Relaxed);
    let store = agm_server::state::open_store(config, env, &data_dir, force)
        .await
        .with_context(|| {
            format!(
                "cannot open the store: {}",
                describe_store(config, &data_dir)
            )
        })?;
    Ok((data_dir, store))
}

/// Where the config says the store is, for messages (never a password).
fn describe_store(config: &Config, data_dir: &Path) -> String {
    match config.storage.backend {
        agm_server::config::StorageBackend::Sqlite => {
            format!("the data dir {}", data_dir.display())
        }
        agm_server::config::StorageBackend::Postgres => {
            "PostgreSQL ([storage] postgres_url)".to_owned()
        }
    }
}

/// A timestamp as the JSON output and the export show it (RFC 3339, UTC).
pub use agm_store::rfc3339;
