//! Settings changed from the console (`POST /api/settings`): each change is checked by
//! the same validation as loading the config, written to the config file with
//! `toml_edit` (its comments, order and spacing stay), applied to the running server
//! and audited. Only settings the server can take without a restart are offered.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::Value;

use super::ConsoleError;
use crate::config::{Config, process_env};

/// The settings the console can change, as `section.key`; each applies at once.
pub const EDITABLE: &[&str] = &[
    "routing.scheduling",
    "routing.quota_threshold",
    "logging.request_log_retention",
    "server.language",
];

/// The console's view of the settings: the config file, and what it last wrote.
pub struct Settings {
    /// The config file `agm serve` read; `None` where there is none to write (`agm demo`).
    file: Option<PathBuf>,
    /// The config in force, with the console's changes.
    current: Mutex<Config>,
    /// `[logging] request_log_retention` in force, in seconds (read by housekeeping).
    retention_secs: AtomicU64,
    /// One change at a time: two would each rewrite the file from the same original.
    writing: tokio::sync::Mutex<()>,
}

impl Settings {
    pub fn new(config: &Config) -> Settings {
        Settings {
            file: None,
            current: Mutex::new(config.clone()),
            retention_secs: AtomicU64::new(config.logging.request_log_retention.as_secs()),
            writing: tokio::sync::Mutex::new(()),
        }
    }

    /// Names the config file that changes are written to.
    pub fn set_file(&mut self, path: PathBuf) {
        self.file = Some(path);
    }

    /// Whether changes can be written (a config file is known).
    pub fn has_file(&self) -> bool {
        self.file.is_some()
    }

    /// The config in force (with the console's changes).
    pub fn current(&self) -> Config {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// `[logging] request_log_retention` in force.
    pub fn request_log_retention(&self) -> Duration {
        Duration::from_secs(self.retention_secs.load(Ordering::Relaxed))
    }

    /// Checks `changes` (`{"section.key": value}`), writes them to the config file and
    /// returns the validated config; the caller applies it. Nothing is written when any
    /// change is refused.
    pub async fn change(
        &self,
        changes: &serde_json::Map<String, Value>,
    ) -> Result<(Config, Vec<String>), ConsoleError> {
        let bad = |m: String| ConsoleError::new(StatusCode::BAD_REQUEST, m);
        if changes.is_empty() {
            return Err(bad(
                "no change given: send {\"changes\": {\"routing.scheduling\": \"balance\"}}".into(),
            ));
        }
        for key in changes.keys() {
            if !EDITABLE.contains(&key.as_str()) {
                return Err(bad(format!(
                    "{:?} cannot be changed from the console; it can: {} (edit the config file for the rest)",
                    key.chars().take(60).collect::<String>(),
                    EDITABLE.join(", ")
                )));
            }
        }
        let Some(path) = self.file.clone() else {
            return Err(ConsoleError::new(
                StatusCode::CONFLICT,
                "this server has no config file to write (agm demo keeps its settings in memory); run `agm serve` to change settings",
            ));
        };
        let _one_at_a_time = self.writing.lock().await;
        let original = match tokio::fs::read_to_string(&path).await {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => {
                return Err(ConsoleError::internal(format!(
                    "cannot read {}: {e}",
                    path.display()
                )));
            }
        };
        let edited = edit(&original, changes).map_err(|e| bad(e.to_string()))?;
        let config = Config::from_toml_and_env(&edited, &path, &process_env())
            .map_err(|e| bad(format!("not saved: {e}")))?;
        write_file(&path, &edited)
            .await
            .map_err(|e| ConsoleError::internal(format!("cannot write {}: {e}", path.display())))?;
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        current.routing.scheduling = config.routing.scheduling;
        current.routing.quota_threshold = config.routing.quota_threshold;
        current.logging.request_log_retention = config.logging.request_log_retention;
        current.server.language = config.server.language;
        self.retention_secs.store(
            config.logging.request_log_retention.as_secs(),
            Ordering::Relaxed,
        );
        let mut keys: Vec<String> = changes.keys().cloned().collect();
        keys.sort();
        Ok((current.clone(), keys))
    }
}

/// Why a config file was not edited (it is left as it was).
#[derive(Debug, thiserror::Error)]
pub enum EditError {
    #[error("the config file does not parse, so it was not changed: {0}")]
    Unparsable(#[from] toml_edit::TomlError),
    #[error("{0:?} is not section.key")]
    NotSectionKey(String),
    #[error("{key}: {value} is not a number TOML can hold")]
    Number { key: String, value: String },
    #[error("{0}: give a string, a number or true/false")]
    Type(String),
    #[error("[{0}] in the config file is not a table")]
    NotATable(String),
}

/// `text` (a config file) with each `section.key` set to its value: a value already
/// in the file keeps its comment and place; a new one goes at the end of its section.
pub fn edit(text: &str, changes: &serde_json::Map<String, Value>) -> Result<String, EditError> {
    let mut doc: toml_edit::DocumentMut = text.parse()?;
    for (dotted, value) in changes {
        let (section, key) = dotted
            .split_once('.')
            .ok_or_else(|| EditError::NotSectionKey(dotted.clone()))?;
        let new = match value {
            Value::String(s) => toml_edit::Value::from(s.trim()),
            Value::Bool(b) => toml_edit::Value::from(*b),
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => toml_edit::Value::from(i),
                (None, Some(f)) => toml_edit::Value::from(f),
                _ => {
                    return Err(EditError::Number {
                        key: dotted.clone(),
                        value: n.to_string(),
                    });
                }
            },
            _ => return Err(EditError::Type(dotted.clone())),
        };
        let table = doc
            .entry(section)
            .or_insert_with(toml_edit::table)
            .as_table_like_mut()
            .ok_or_else(|| EditError::NotATable(section.to_owned()))?;
        match table.get_mut(key).and_then(toml_edit::Item::as_value_mut) {
            Some(old) => {
                let decor = old.decor().clone();
                *old = new;
                *old.decor_mut() = decor;
            }
            None => {
                table.insert(key, toml_edit::Item::Value(new));
            }
        }
    }
    Ok(doc.to_string())
}

/// Replaces the file at once (a temporary file in its directory, renamed over it),
/// keeping its permissions.
async fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(dir).await?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "config.toml".into());
    let temp = dir.join(format!(".{name}.agm-{}", std::process::id()));
    tokio::fs::write(&temp, text).await?;
    if let Ok(meta) = tokio::fs::metadata(path).await {
        tokio::fs::set_permissions(&temp, meta.permissions()).await?;
    }
    if let Err(e) = tokio::fs::rename(&temp, path).await {
        let _ = tokio::fs::remove_file(&temp).await;
        return Err(e);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn changes(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn an_edit_keeps_comments_and_order() {
        let text = crate::config::DEFAULT_CONFIG_TOML;
        let edited = edit(
            text,
            &changes(json!({"routing.scheduling": "balance", "routing.quota_threshold": 0.25})),
        )
        .unwrap();
        assert!(
            edited.contains(
                "scheduling = \"balance\"  # cache-first | balance | performance-first | round-robin"
            ),
            "{edited}"
        );
        assert!(edited.contains("quota_threshold = 0.25      # skip an account"));
        // Everything else is as it was, line for line.
        let before: Vec<&str> = text.lines().collect();
        let after: Vec<&str> = edited.lines().collect();
        assert_eq!(before.len(), after.len());
        let differing = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        assert_eq!(differing, 2);
    }

    #[test]
    fn an_edit_adds_a_missing_key_and_section() {
        let edited = edit(
            "# mine\n[server]\nport = 9000 # here\n",
            &changes(json!({"logging.request_log_retention": "3d", "server.language": "vi"})),
        )
        .unwrap();
        assert!(edited.starts_with("# mine\n[server]\nport = 9000 # here\n"));
        let config: Config = toml::from_str(&edited).unwrap();
        assert_eq!(config.server.language.as_str(), "vi");
        assert_eq!(
            config.logging.request_log_retention,
            Duration::from_secs(3 * 86_400)
        );
    }

    #[tokio::test]
    async fn a_change_is_validated_before_it_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[routing]\nscheduling = \"balance\" # mine\n").unwrap();
        let mut settings = Settings::new(&Config::default());
        settings.set_file(path.clone());
        for refused in [
            json!({"routing.scheduling": "fastest"}),
            json!({"routing.quota_threshold": 2}),
            json!({"server.port": 1}),
        ] {
            assert!(settings.change(&changes(refused)).await.is_err());
        }
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "[routing]\nscheduling = \"balance\" # mine\n"
        );
        let (config, keys) = settings
            .change(&changes(json!({"routing.scheduling": "round-robin"})))
            .await
            .unwrap();
        assert_eq!(config.routing.scheduling.name(), "round-robin");
        assert_eq!(keys, ["routing.scheduling"]);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "[routing]\nscheduling = \"round-robin\" # mine\n"
        );
    }

    #[tokio::test]
    async fn without_a_file_nothing_changes() {
        let settings = Settings::new(&Config::default());
        let e = settings
            .change(&changes(json!({"routing.scheduling": "balance"})))
            .await
            .unwrap_err();
        assert_eq!(e.status, StatusCode::CONFLICT);
    }
}
