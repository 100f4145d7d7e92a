//! Settings changed from the console (`POST /api/settings`): each change is checked by
//! the same validation as loading the config, written to the config file with
//! `toml_edit` (its comments, order and spacing stay), applied to the running server
//! where it can be (the rest at the next start, said in [`EDITABLE`]) and audited.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::StatusCode;
use serde::Serialize;
use serde_json::{Value, json};

use super::ConsoleError;
use crate::config::{Config, process_env};

/// When a change takes effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Applies {
    /// At once, in this server.
    Now,
    /// At the next start of `agm serve` (it is written to the file now).
    Restart,
}

/// The key whose value is a list of secrets, changed by `{"add": [..], "remove":
/// [masked..]}` rather than by its whole (the console never holds the keys in full).
pub const GEMINI_KEYS: &str = "safe_mode.gemini_api_keys";

/// The settings the console can change, as `section.key`, and when each applies.
pub const EDITABLE: &[(&str, Applies)] = &[
    ("routing.scheduling", Applies::Now),
    ("routing.quota_threshold", Applies::Now),
    ("logging.request_log_retention", Applies::Now),
    ("server.language", Applies::Now),
    ("models.map", Applies::Now),
    ("safe_mode.daily_request_cap", Applies::Now),
    ("safe_mode.auto_activate_threshold", Applies::Now),
    ("safe_mode.retry_interval", Applies::Now),
    ("safe_mode.claude_large_model", Applies::Restart),
    ("safe_mode.claude_small_model", Applies::Restart),
    (GEMINI_KEYS, Applies::Now),
    ("warmup.enabled", Applies::Now),
    ("warmup.interval", Applies::Now),
    ("warmup.window", Applies::Now),
    ("warmup.quiet_hours", Applies::Now),
    ("context.scaling", Applies::Now),
    ("context.budget", Applies::Now),
    ("context.keep_turns", Applies::Now),
    ("context.summary_model", Applies::Now),
];

/// When `key` applies, if the console can change it.
pub fn applies(key: &str) -> Option<Applies> {
    EDITABLE.iter().find(|(k, _)| *k == key).map(|(_, a)| *a)
}

/// [`EDITABLE`] as the admin API lists it.
pub fn editable_json() -> Value {
    json!(
        EDITABLE
            .iter()
            .map(|(key, applies)| json!({"key": key, "applies": applies}))
            .collect::<Vec<_>>()
    )
}

/// A secret as the console shows it: its first four and last four characters.
pub fn mask(secret: &str) -> String {
    let chars: Vec<char> = secret.chars().collect();
    if chars.len() <= 12 {
        return "****".to_owned();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

/// The console's view of the settings: the config file, and what it last wrote.
pub struct Settings {
    /// The config file `agm serve` read; `None` where there is none to write (`agm demo`).
    file: Option<PathBuf>,
    /// The config in force, with the console's changes.
    current: Mutex<Config>,
    /// Changes written to the file that apply at the next start: key → the value the
    /// admin API shows (secrets masked).
    pending: Mutex<BTreeMap<String, Value>>,
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
            pending: Mutex::new(BTreeMap::new()),
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

    /// The changes written to the file that wait for a restart.
    pub fn pending(&self) -> BTreeMap<String, Value> {
        self.pending
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
            if applies(key).is_none() {
                return Err(bad(format!(
                    "{:?} cannot be changed from the console; it can: {} (edit the config file for the rest)",
                    key.chars().take(60).collect::<String>(),
                    EDITABLE
                        .iter()
                        .map(|(k, _)| *k)
                        .collect::<Vec<_>>()
                        .join(", ")
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
        let mut changes = changes.clone();
        if let Some(keys) = changes.get(GEMINI_KEYS).cloned() {
            let listed = gemini_keys_after(&original, &keys).map_err(bad)?;
            changes.insert(GEMINI_KEYS.to_owned(), json!(listed));
        }
        let edited = edit(&original, &changes).map_err(|e| bad(e.to_string()))?;
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
        current.models.map = config.models.map.clone();
        current.safe_mode.daily_request_cap = config.safe_mode.daily_request_cap;
        current.safe_mode.auto_activate_threshold = config.safe_mode.auto_activate_threshold;
        current.safe_mode.retry_interval = config.safe_mode.retry_interval;
        current.context = config.context.clone();
        current.warmup = config.warmup.clone();
        current.safe_mode.gemini_api_keys = config.safe_mode.gemini_api_keys.clone();
        // As the admin API shows them (secrets masked): what the file now says, and
        // what this server does until it restarts.
        let written = crate::console::api::masked_config(&config);
        let in_force = crate::console::api::masked_config(&current);
        let mut pending = self
            .pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for key in changes.keys() {
            if applies(key) == Some(Applies::Restart) {
                let pointer = format!("/{}", key.replace('.', "/"));
                let shown = written.pointer(&pointer).cloned().unwrap_or(Value::Null);
                if in_force.pointer(&pointer) == Some(&shown) {
                    pending.remove(key);
                } else {
                    pending.insert(key.clone(), shown);
                }
            }
        }
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
            Value::Array(items) => {
                let mut array = toml_edit::Array::new();
                for item in items {
                    match item {
                        Value::String(s) => array.push(s.trim()),
                        _ => return Err(EditError::Type(dotted.clone())),
                    }
                }
                toml_edit::Value::Array(array)
            }
            Value::Object(entries) => {
                set_table(&mut doc, section, key, entries, dotted)?;
                continue;
            }
            Value::Null => return Err(EditError::Type(dotted.clone())),
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

/// Sets `[section.key]` to exactly `entries` (strings): an entry already there keeps
/// its comment and place, one not given is removed, a new one goes at the end.
fn set_table(
    doc: &mut toml_edit::DocumentMut,
    section: &str,
    key: &str,
    entries: &serde_json::Map<String, Value>,
    dotted: &str,
) -> Result<(), EditError> {
    let parent = doc
        .entry(section)
        .or_insert_with(toml_edit::table)
        .as_table_like_mut()
        .ok_or_else(|| EditError::NotATable(section.to_owned()))?;
    let table = parent
        .entry(key)
        .or_insert_with(toml_edit::table)
        .as_table_like_mut()
        .ok_or_else(|| EditError::NotATable(dotted.to_owned()))?;
    let gone: Vec<String> = table
        .iter()
        .map(|(k, _)| k.to_owned())
        .filter(|k| !entries.contains_key(k))
        .collect();
    for k in gone {
        table.remove(&k);
    }
    for (name, value) in entries {
        let Value::String(target) = value else {
            return Err(EditError::Type(format!("{dotted}.{name}")));
        };
        match table.get_mut(name).and_then(toml_edit::Item::as_value_mut) {
            Some(old) => {
                let decor = old.decor().clone();
                *old = toml_edit::Value::from(target.trim());
                *old.decor_mut() = decor;
            }
            None => {
                table.insert(name, toml_edit::value(target.trim()));
            }
        }
    }
    Ok(())
}

/// The Gemini API keys the file lists after `change` (`{"add": [keys], "remove":
/// [masked keys]}`), checked: a key added has no space or control character and is
/// not there yet; a key removed is named by its masked form and is in the file (a key
/// from `GEMINI_API_KEY` is not: unset it there).
fn gemini_keys_after(text: &str, change: &Value) -> Result<Vec<String>, String> {
    let doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| format!("the config file does not parse, so it was not changed: {e}"))?;
    let mut keys: Vec<String> = doc
        .get("safe_mode")
        .and_then(|s| s.get("gemini_api_keys"))
        .and_then(toml_edit::Item::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let list = |name: &str| -> Result<Vec<String>, String> {
        match change.get(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(|s| s.trim().to_owned())
                        .ok_or_else(|| format!("{GEMINI_KEYS}.{name}: give a list of strings"))
                })
                .collect(),
            Some(_) => Err(format!("{GEMINI_KEYS}.{name}: give a list of strings")),
        }
    };
    if !change.is_object()
        || change
            .as_object()
            .is_some_and(|o| o.keys().any(|k| k != "add" && k != "remove"))
    {
        return Err(format!(
            "{GEMINI_KEYS}: give {{\"add\": [\"AIza...\"], \"remove\": [\"AIza…wxyz\"]}} (keys are removed by their masked form)"
        ));
    }
    for masked in list("remove")? {
        let index = keys.iter().position(|k| mask(k) == masked).ok_or_else(|| {
            format!(
                "{GEMINI_KEYS}: no key {masked:?} in the config file (a key from GEMINI_API_KEY is removed there)"
            )
        })?;
        keys.remove(index);
    }
    for key in list("add")? {
        if key.len() < 8
            || key.len() > 200
            || key.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(format!(
                "{GEMINI_KEYS}: a key is 8 to 200 characters with no space (Google's look like AIza…)"
            ));
        }
        if keys.contains(&key) {
            return Err(format!("{GEMINI_KEYS}: {} is already listed", mask(&key)));
        }
        keys.push(key);
    }
    Ok(keys)
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

    #[test]
    fn the_model_map_is_set_entry_by_entry_with_its_comments() {
        let text = "[models.map] # mine\n\"a\" = \"x\" # keep\n\"b\" = \"y\"\n\n[logging]\nlevel = \"info\"\n";
        let edited = edit(
            text,
            &changes(json!({"models.map": {"a": "z", "c*": "gemini-3-pro"}})),
        )
        .unwrap();
        let config: Config = toml::from_str(&edited).unwrap();
        assert_eq!(
            config.models.map,
            BTreeMap::from([
                ("a".to_owned(), "z".to_owned()),
                ("c*".to_owned(), "gemini-3-pro".to_owned())
            ])
        );
        assert!(edited.contains("[models.map] # mine"), "{edited}");
        assert!(edited.contains("\"a\" = \"z\" # keep"), "{edited}");
        assert!(edited.contains("[logging]\nlevel = \"info\""), "{edited}");
        let fresh = edit("", &changes(json!({"models.map": {"m": "n"}}))).unwrap();
        let config: Config = toml::from_str(&fresh).unwrap();
        assert_eq!(config.models.map["m"], "n");
    }

    #[test]
    fn gemini_keys_are_added_and_removed_by_their_masked_form() {
        let text = "[safe_mode]\ngemini_api_keys = [\"AIzaFIRST-key-0001\"] # the pool\n";
        assert_eq!(mask("AIzaFIRST-key-0001"), "AIza…0001");
        let keys = gemini_keys_after(
            text,
            &json!({"add": ["AIzaSECOND-key-0002"], "remove": ["AIza…0001"]}),
        )
        .unwrap();
        assert_eq!(keys, ["AIzaSECOND-key-0002"]);
        let edited = edit(text, &changes(json!({GEMINI_KEYS: keys}))).unwrap();
        assert_eq!(
            edited,
            "[safe_mode]\ngemini_api_keys = [\"AIzaSECOND-key-0002\"] # the pool\n"
        );
        for (bad, words) in [
            (json!({"remove": ["AIza…9999"]}), "no key"),
            (json!({"add": ["has space in it"]}), "no space"),
            (json!({"add": ["AIzaFIRST-key-0001"]}), "already listed"),
            (json!(["AIzaFIRST-key-0001"]), "give {"),
            (json!({"add": "one"}), "list of strings"),
        ] {
            let e = gemini_keys_after(text, &bad).unwrap_err();
            assert!(e.contains(words), "{bad}: {e}");
            assert!(
                !e.contains("AIzaFIRST-key-0001"),
                "never the whole key: {e}"
            );
        }
    }

    #[tokio::test]
    async fn a_restart_setting_is_written_and_said_to_wait() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, crate::config::DEFAULT_CONFIG_TOML).unwrap();
        let mut settings = Settings::new(&Config::default());
        settings.set_file(path.clone());
        let (config, _) = settings
            .change(&changes(json!({
                "safe_mode.claude_large_model": "gemini-3-pro",
                "context.scaling": "aggressive",
                "safe_mode.daily_request_cap": 50,
            })))
            .await
            .unwrap();
        assert_eq!(
            config.safe_mode.claude_large_model, "gemini-2.5-pro",
            "in force: as started"
        );
        assert_eq!(
            config.context.scaling,
            crate::config::Scaling::Aggressive,
            "applies now"
        );
        assert_eq!(config.safe_mode.daily_request_cap, 50, "applies now");
        assert_eq!(
            settings.pending()["safe_mode.claude_large_model"],
            "gemini-3-pro"
        );
        assert_eq!(settings.pending().len(), 1);
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(
            written.contains("scaling = \"aggressive\"        # off | standard"),
            "{written}"
        );
        assert!(
            written.contains("claude_large_model = \"gemini-3-pro\""),
            "{written}"
        );
        let e = settings
            .change(&changes(json!({"context.scaling": "max"})))
            .await
            .unwrap_err();
        assert!(e.message.contains("scaling"), "{}", e.message);
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
