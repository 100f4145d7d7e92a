//! The configuration: one TOML file, `AGM_<SECTION>__<KEY>` environment overrides, and
//! the two well-known variables `ENABLE_ANTIGRAVITY_AUTH` and `GEMINI_API_KEY`.
//!
//! Defaults live in the `Default` impls below and nowhere else; [`DEFAULT_CONFIG_TOML`]
//! is the commented file `agm config init` writes, and a test keeps the two equal.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use agm_pool::selection::Scheduling;
use agm_store::Pool;
use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

/// `[server] language`: the console's language when the browser names none it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Language {
    #[default]
    #[serde(rename = "en")]
    En,
    #[serde(rename = "zh-CN")]
    ZhCn,
    #[serde(rename = "zh-TW")]
    ZhTw,
    #[serde(rename = "vi")]
    Vi,
}

impl Language {
    pub const ALL: [Language; 4] = [Language::En, Language::ZhCn, Language::ZhTw, Language::Vi];

    /// The locale tag, as in the config and the console's `i18n/<tag>.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Language::En => "en",
            Language::ZhCn => "zh-CN",
            Language::ZhTw => "zh-TW",
            Language::Vi => "vi",
        }
    }
}

/// `[logging] format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[storage] backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StorageBackend {
    /// `agm.db` in the data dir: one process, nothing to install.
    #[default]
    Sqlite,
    /// PostgreSQL at `[storage] postgres_url`, shared by several agm (cluster mode). The
    /// seal key comes from `AGM_SEAL_KEY` or `[storage] key_file`, never the database.
    Postgres,
}

/// `[context] scaling`: how much agm may shrink the upstream request of a conversation
/// that nears the model's window (`agm_translate::context`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scaling {
    /// Never: requests go upstream as translated.
    Off,
    /// Above 80% of the window (or budget): de-duplicate, cut old tool results, drop
    /// old thinking.
    #[default]
    Standard,
    /// Above 60%: the same, then a summary of the oldest turns by `summary_model`.
    Aggressive,
}

impl Scaling {
    /// The translator's mode.
    pub fn mode(self) -> agm_translate::context::Mode {
        match self {
            Scaling::Off => agm_translate::context::Mode::Off,
            Scaling::Standard => agm_translate::context::Mode::Standard,
            Scaling::Aggressive => agm_translate::context::Mode::Aggressive,
        }
    }
}

/// The commented default configuration `agm config init` writes.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("default_config.toml");

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub server: ServerSection,
    pub google: GoogleSection,
    pub routing: RoutingSection,
    pub safe_mode: SafeModeSection,
    pub circuit_breaker: CircuitBreakerSection,
    pub project_id: ProjectIdSection,
    pub storage: StorageSection,
    pub cluster: ClusterSection,
    pub models: ModelsSection,
    pub logging: LoggingSection,
    pub updates: UpdatesSection,
    pub warmup: WarmupSection,
    pub context: ContextSection,
}

/// `[warmup]`: one minimal request per account and model group once its quota window
/// has reset, so the next window starts (and ends) early (`crate::ops::warmup`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WarmupSection {
    /// Off by default: each warmup is a request on the account.
    pub enabled: bool,
    /// Model groups, each a prefix of upstream model ids.
    pub groups: Vec<String>,
    /// How often `agm serve` looks for windows to start.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// How long a window lasts when Google does not say when it resets.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// No warmup in these hours, UTC: `"22:00-07:00"`; empty: any time.
    pub quiet_hours: QuietHours,
}

impl Default for WarmupSection {
    fn default() -> Self {
        WarmupSection {
            enabled: false,
            groups: vec![
                "claude".into(),
                "gemini-3-pro".into(),
                "gemini-3-flash".into(),
            ],
            interval: Duration::from_secs(600),
            window: Duration::from_secs(5 * 3600),
            quiet_hours: QuietHours::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContextSection {
    /// `off`, `standard` or `aggressive`.
    pub scaling: Scaling,
    /// A token budget smaller than the model's window (0: the window alone).
    pub budget: u64,
    /// The last messages never touched.
    pub keep_turns: usize,
    /// The small model that writes the summaries of `aggressive`.
    pub summary_model: String,
}

impl Default for ContextSection {
    fn default() -> Self {
        ContextSection {
            scaling: Scaling::Standard,
            budget: 0,
            keep_turns: 6,
            summary_model: "gemini-2.5-flash".into(),
        }
    }
}

/// Hours of the day (UTC) written `"HH:MM-HH:MM"`; may wrap past midnight. Empty: none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct QuietHours(pub Option<(time::Time, time::Time)>);

impl TryFrom<String> for QuietHours {
    type Error = String;

    fn try_from(text: String) -> Result<QuietHours, String> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(QuietHours(None));
        }
        let format = time::macros::format_description!("[hour]:[minute]");
        let parse = |t: &str| time::Time::parse(t.trim(), &format);
        match text.split_once('-').map(|(a, b)| (parse(a), parse(b))) {
            Some((Ok(start), Ok(end))) if start != end => Ok(QuietHours(Some((start, end)))),
            _ => Err(format!(
                "`{text}` is not a range of hours like \"22:00-07:00\" (UTC)"
            )),
        }
    }
}

impl From<QuietHours> for String {
    fn from(hours: QuietHours) -> String {
        match hours.0 {
            Some((start, end)) => format!(
                "{:02}:{:02}-{:02}:{:02}",
                start.hour(),
                start.minute(),
                end.hour(),
                end.minute()
            ),
            None => String::new(),
        }
    }
}

impl ContextSection {
    /// The policy for a request to a model with this window (`None`: unknown).
    pub fn policy(&self, window: Option<u64>) -> Option<agm_translate::context::Policy> {
        let budget = (self.budget > 0).then_some(self.budget);
        let limit = match (window, budget) {
            (Some(w), Some(b)) => w.min(b),
            (w, b) => w.or(b)?,
        };
        Some(agm_translate::context::Policy {
            mode: self.scaling.mode(),
            limit,
            keep_turns: self.keep_turns,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpdatesSection {
    /// Where `agm update check` and `agm serve`'s background check read the newest
    /// release (GitHub's releases API shape: `tag_name`, `html_url`).
    pub url: String,
    /// `agm serve` checks for a newer release in the background (false: never asks).
    pub check: bool,
    /// How often `agm serve` checks.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
}

impl Default for UpdatesSection {
    fn default() -> Self {
        UpdatesSection {
            url: "https://api.github.com/repos/agm-gateway/agm/releases/latest".into(),
            check: true,
            interval: Duration::from_secs(24 * 3600),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    pub bind: IpAddr,
    pub port: u16,
    pub api_keys: Vec<String>,
    pub admin_password: String,
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    pub max_body: ByteSize,
    /// More messages (contents, input items) in one request: a 400.
    pub max_messages: usize,
    /// More tool (function) declarations in one request: a 400.
    pub max_tools: usize,
    /// The request bodies held at once, all requests together; over it a request waits
    /// briefly, then gets a 503.
    pub max_inflight_body: ByteSize,
    /// A request's header block must arrive within this (also how long an idle HTTP/1
    /// keep-alive connection waits for its next request).
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
    /// A request body must arrive whole within this.
    #[serde(with = "humantime_serde")]
    pub body_timeout: Duration,
    /// A connection with no request in progress is closed after this.
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    /// The most connections open at once; see `crate::http::listener`.
    pub max_connections: usize,
    pub language: Language,
    /// Send `x-agm-overhead-ms` (the gateway's own time, Google's excluded) on answers.
    pub overhead_header: bool,
    /// Names (`agm.example.com`, or with a port) the web console also answers to, as
    /// `Host` and `Origin`, behind a reverse proxy; loopback names and IP addresses
    /// always do.
    pub console_hosts: Vec<String>,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: 8045,
            api_keys: Vec::new(),
            admin_password: String::new(),
            request_timeout: Duration::from_secs(600),
            max_body: ByteSize::mib(32),
            max_messages: 10_000,
            max_tools: 1_000,
            max_inflight_body: ByteSize::mib(256),
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(90),
            max_connections: 1024,
            language: Language::En,
            overhead_header: true,
            console_hosts: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GoogleSection {
    pub code_assist_endpoints: Vec<String>,
    pub oauth_auth_url: String,
    pub oauth_token_url: String,
    pub userinfo_url: String,
    pub gemini_api_base: String,
    /// The Antigravity IDE's public installed-app OAuth client.
    pub oauth_client_id: String,
    pub oauth_client_secret: String,
    /// The Antigravity version sent in `User-Agent: antigravity/<version> <os>/<arch>`.
    /// Google refuses versions it no longer supports; raise it when that happens.
    pub antigravity_version: String,
    /// `User-Agent` for setup calls (loadCodeAssist, onboardUser, quota).
    pub setup_user_agent: String,
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// The one endpoint `code-assist` pool accounts are called on (production).
    pub code_assist_pool_endpoint: String,
    /// The gemini-cli version in the Code Assist style's `User-Agent`.
    pub gemini_cli_version: String,
    /// HTTP clients that generation calls take turns on: over HTTP/2, connections per
    /// Google host, each good for about 100 concurrent requests (docs/BENCHMARKS.md).
    pub http2_connections: usize,
    /// A stream whose answer head and first chunk do not arrive within this is a
    /// stalled call: the request moves to another account.
    #[serde(with = "humantime_serde")]
    pub first_chunk_timeout: Duration,
}

impl Default for GoogleSection {
    fn default() -> Self {
        GoogleSection {
            code_assist_endpoints: vec![
                "https://daily-cloudcode-pa.sandbox.googleapis.com".into(),
                "https://daily-cloudcode-pa.googleapis.com".into(),
                "https://cloudcode-pa.googleapis.com".into(),
            ],
            oauth_auth_url: "https://accounts.google.com/o/oauth2/v2/auth".into(),
            oauth_token_url: "https://oauth2.googleapis.com/token".into(),
            userinfo_url: "https://www.googleapis.com/oauth2/v2/userinfo".into(),
            gemini_api_base: "https://generativelanguage.googleapis.com".into(),
            oauth_client_id:
                "1071006060591-tmhssin2h21lcre235vtolojh4g403ep.apps.googleusercontent.com".into(),
            oauth_client_secret: "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".into(),
            antigravity_version: "1.15.8".into(),
            setup_user_agent: "google-api-nodejs-client/9.15.1".into(),
            connect_timeout: Duration::from_secs(10),
            code_assist_pool_endpoint: "https://cloudcode-pa.googleapis.com".into(),
            gemini_cli_version: "0.21.0".into(),
            http2_connections: 4,
            first_chunk_timeout: Duration::from_secs(90),
        }
    }
}

impl GoogleSection {
    /// Points every Google address at one base URL (the simulated Google of `agm demo`
    /// and the tests).
    pub fn all_at(&mut self, base_url: &str) {
        let base = base_url.trim_end_matches('/');
        self.code_assist_endpoints = vec![base.to_owned()];
        self.code_assist_pool_endpoint = base.to_owned();
        self.oauth_auth_url = format!("{base}/o/oauth2/v2/auth");
        self.oauth_token_url = format!("{base}/token");
        self.userinfo_url = format!("{base}/oauth2/v2/userinfo");
        self.gemini_api_base = base.to_owned();
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoutingSection {
    pub enable_antigravity: bool,
    pub scheduling: Scheduling,
    #[serde(with = "humantime_serde")]
    pub max_wait: Duration,
    /// A conversation sticks to its account this long after its last request.
    #[serde(with = "humantime_serde")]
    pub sticky_ttl: Duration,
    /// Cache-first waits this long for a conversation's rate-limited account.
    #[serde(with = "humantime_serde")]
    pub sticky_wait: Duration,
    /// Accounts with less of a model's quota left than this fraction are skipped.
    pub quota_threshold: f64,
    /// How often each account's quota is fetched in the background ("0s": never).
    #[serde(with = "humantime_serde")]
    pub quota_refresh: Duration,
    /// For Gemini models: the pools tried in turn, the next when one is exhausted.
    pub gemini_pool_order: Vec<Pool>,
}

impl Default for RoutingSection {
    fn default() -> Self {
        RoutingSection {
            enable_antigravity: true,
            scheduling: Scheduling::CacheFirst,
            max_wait: Duration::from_secs(60),
            sticky_ttl: Duration::from_secs(3600),
            sticky_wait: Duration::from_secs(5),
            quota_threshold: 0.10,
            quota_refresh: Duration::from_secs(600),
            gemini_pool_order: vec![Pool::Antigravity, Pool::CodeAssist],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SafeModeSection {
    pub auto_activate_threshold: u32,
    #[serde(with = "humantime_serde")]
    pub retry_interval: Duration,
    pub gemini_api_keys: Vec<String>,
    /// The Gemini model that answers Claude opus/sonnet requests on the official API.
    pub claude_large_model: String,
    /// The Gemini model that answers other Claude (haiku) and GPT-OSS requests there.
    pub claude_small_model: String,
    /// Requests per UTC day sent to the paid official API; 0 for no cap.
    pub daily_request_cap: u64,
}

impl Default for SafeModeSection {
    fn default() -> Self {
        SafeModeSection {
            auto_activate_threshold: 5,
            retry_interval: Duration::from_secs(3600),
            gemini_api_keys: Vec::new(),
            claude_large_model: "gemini-2.5-pro".into(),
            claude_small_model: "gemini-2.5-flash".into(),
            daily_request_cap: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CircuitBreakerSection {
    pub failure_threshold: u32,
    #[serde(with = "humantime_serde")]
    pub reset_timeout: Duration,
    pub half_open_max_attempts: u32,
}

impl Default for CircuitBreakerSection {
    fn default() -> Self {
        CircuitBreakerSection {
            failure_threshold: 3,
            reset_timeout: Duration::from_secs(30),
            half_open_max_attempts: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProjectIdSection {
    #[serde(with = "humantime_serde")]
    pub cache_ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// How often a free-tier account's onboarding operation is polled.
    #[serde(with = "humantime_serde")]
    pub poll_interval: Duration,
}

impl Default for ProjectIdSection {
    fn default() -> Self {
        ProjectIdSection {
            cache_ttl: Duration::from_secs(3600),
            timeout: Duration::from_secs(5),
            poll_interval: Duration::from_secs(1),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    pub data_dir: String,
    pub backend: StorageBackend,
    pub postgres_url: String,
    /// Before `[cluster]` existed, a placeholder that agm never used. Still read, so an
    /// old file loads: its value moves to `[cluster] redis_url` (with a warning).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub redis_url: String,
    /// With `backend = "postgres"`: a file holding the seal key every replica shares
    /// (base64, mode 0600), unless `AGM_SEAL_KEY` holds the key itself.
    pub key_file: String,
    /// Where the key that seals tokens at rest lives: `auto` (the OS keychain where one
    /// answers, else `secret.key`, mode 0600, in the data dir; an existing `secret.key`
    /// is always kept), `keychain`, or `file`.
    pub key_store: agm_store::KeyStore,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            data_dir: String::new(),
            backend: StorageBackend::Sqlite,
            postgres_url: String::new(),
            redis_url: String::new(),
            key_file: String::new(),
            key_store: agm_store::KeyStore::Auto,
        }
    }
}

/// `[cluster]`: several replicas sharing one pool. PostgreSQL (`[storage]`) holds what
/// must not be lost; Redis holds the hot shared state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// `redis://[:PASSWORD@]HOST[:PORT][/DB]` (or `rediss://`); empty: no Redis, every
    /// replica keeps its hot state to itself.
    pub redis_url: String,
    /// What every Redis key and channel of this cluster starts with: clusters (or
    /// tests) sharing one Redis keep apart by it.
    pub key_prefix: String,
}

impl Default for ClusterSection {
    fn default() -> Self {
        ClusterSection {
            redis_url: String::new(),
            key_prefix: "agm:".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ModelsSection {
    /// Client model name (exact, or with `*` wildcards) → upstream model id. Merged over
    /// the built-in table; an exact name beats a pattern, a longer pattern a shorter one.
    pub map: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LoggingSection {
    /// A `tracing` filter, e.g. `info` or `agm_server=debug,info`. `RUST_LOG` wins.
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
    /// Request-log entries older than this are deleted.
    #[serde(with = "humantime_serde")]
    pub request_log_retention: Duration,
}

impl Default for LoggingSection {
    fn default() -> Self {
        LoggingSection {
            level: "info".into(),
            format: LogFormat::Text,
            request_log_retention: Duration::from_secs(7 * 86_400),
        }
    }
}

/// A configuration problem, said so that the user can fix it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("config {key}: {message}")]
    Invalid { key: &'static str, message: String },
}

/// Where the config came from, with the config itself.
#[derive(Debug, Clone)]
pub struct LoadedConfig {
    pub config: Config,
    pub path: PathBuf,
    /// False when the file did not exist and all defaults (plus env) apply.
    pub file_exists: bool,
}

/// The environment the config reads, passed in so tests don't touch the process's.
pub type Env = BTreeMap<String, String>;

/// The process environment, as a map.
pub fn process_env() -> Env {
    std::env::vars().collect()
}

/// The config file path: `--config`, else `$AGM_CONFIG`, else
/// `$XDG_CONFIG_HOME/agm/config.toml`, else `~/.config/agm/config.toml`.
pub fn config_path(explicit: Option<&Path>, env: &Env) -> PathBuf {
    if let Some(p) = explicit {
        return p.to_path_buf();
    }
    if let Some(p) = env.get("AGM_CONFIG").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    xdg_dir(env, "XDG_CONFIG_HOME", ".config")
        .join("agm")
        .join("config.toml")
}

fn xdg_dir(env: &Env, var: &str, fallback: &str) -> PathBuf {
    match env.get(var).filter(|p| !p.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => {
            let home = env
                .get("HOME")
                .map_or_else(|| PathBuf::from("."), PathBuf::from);
            home.join(fallback)
        }
    }
}

impl Config {
    /// Reads the config file (a missing one means all defaults), applies the environment,
    /// and validates the result.
    pub fn load(explicit: Option<&Path>, env: &Env) -> Result<LoadedConfig, ConfigError> {
        let path = config_path(explicit, env);
        let (text, file_exists) = match std::fs::read_to_string(&path) {
            Ok(text) => (text, true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && explicit.is_none() => {
                (String::new(), false)
            }
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let config = Config::from_toml_and_env(&text, &path, env)?;
        Ok(LoadedConfig {
            config,
            path,
            file_exists,
        })
    }

    /// Parses `text` (the file at `path`, named in errors), then applies `env`.
    pub fn from_toml_and_env(text: &str, path: &Path, env: &Env) -> Result<Config, ConfigError> {
        let parse_err = |message: String| ConfigError::Parse {
            path: path.to_path_buf(),
            message,
        };
        let mut table: toml::Table = toml::from_str(text).map_err(|e| parse_err(one_line(&e)))?;
        // Check the file alone first so that its errors name the file, not a variable.
        Config::deserialize(toml::Value::Table(table.clone()))
            .map_err(|e| parse_err(one_line(&e)))?;

        for (var, value) in env {
            let Some((section, key)) = env_override_key(var) else {
                continue;
            };
            let section_table = table
                .entry(section.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            let toml::Value::Table(section_table) = section_table else {
                continue;
            };
            section_table.insert(key, env_value(value));
            Config::deserialize(toml::Value::Table(table.clone())).map_err(|e| {
                ConfigError::Env {
                    var: var.clone(),
                    message: one_line(&e),
                }
            })?;
        }

        let mut config =
            Config::deserialize(toml::Value::Table(table)).map_err(|e| parse_err(one_line(&e)))?;
        if let Some(flag) = env.get("ENABLE_ANTIGRAVITY_AUTH") {
            config.routing.enable_antigravity =
                parse_bool(flag).ok_or_else(|| ConfigError::Env {
                    var: "ENABLE_ANTIGRAVITY_AUTH".into(),
                    message: format!("`{flag}` is not true or false"),
                })?;
        }
        if let Some(key) = env.get("GEMINI_API_KEY").filter(|k| !k.trim().is_empty()) {
            let key = key.trim().to_owned();
            if !config.safe_mode.gemini_api_keys.contains(&key) {
                config.safe_mode.gemini_api_keys.push(key);
            }
        }
        if !config.storage.redis_url.is_empty() {
            let old = std::mem::take(&mut config.storage.redis_url);
            if config.cluster.redis_url.is_empty() {
                tracing::warn!(
                    "[storage] redis_url has moved to [cluster] redis_url; using it from there"
                );
                config.cluster.redis_url = old;
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks what serde cannot: value sets, URLs, non-empty lists.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn url(key: &'static str, value: &str) -> Result<(), ConfigError> {
            if value.starts_with("http://") || value.starts_with("https://") {
                Ok(())
            } else {
                Err(ConfigError::Invalid {
                    key,
                    message: format!("`{value}` is not an http(s) URL"),
                })
            }
        }
        if self.storage.backend == StorageBackend::Postgres {
            let url = self.storage.postgres_url.trim();
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err(ConfigError::Invalid {
                    key: "storage.postgres_url",
                    message: "backend = \"postgres\" needs a postgres://user@host:port/database URL (or AGM_STORAGE__POSTGRES_URL)".into(),
                });
            }
        }
        let redis = self.cluster.redis_url.trim();
        if !(redis.is_empty() || redis.starts_with("redis://") || redis.starts_with("rediss://")) {
            return Err(ConfigError::Invalid {
                key: "cluster.redis_url",
                message: "needs a redis://[:password@]host:port[/db] URL (or rediss:// for TLS), or empty for no Redis".into(),
            });
        }
        for host in &self.server.console_hosts {
            let bad = host.is_empty()
                || host.len() > 253
                || !host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
            if bad {
                return Err(ConfigError::Invalid {
                    key: "server.console_hosts",
                    message: format!(
                        "`{host}` is not a host name (agm.example.com, or agm.example.com:8443): no scheme, path or space"
                    ),
                });
            }
        }
        if !(0.0..=1.0).contains(&self.routing.quota_threshold) {
            return Err(ConfigError::Invalid {
                key: "routing.quota_threshold",
                message: format!(
                    "`{}` is not a fraction between 0 and 1 (0.10 keeps 10 % in reserve)",
                    self.routing.quota_threshold
                ),
            });
        }
        if self.google.code_assist_endpoints.is_empty() {
            return Err(ConfigError::Invalid {
                key: "google.code_assist_endpoints",
                message: "needs at least one endpoint".into(),
            });
        }
        for endpoint in &self.google.code_assist_endpoints {
            url("google.code_assist_endpoints", endpoint)?;
        }
        if !(1..=64).contains(&self.google.http2_connections) {
            return Err(ConfigError::Invalid {
                key: "google.http2_connections",
                message: format!(
                    "`{}` is not between 1 and 64 (each connection carries about 100 concurrent requests)",
                    self.google.http2_connections
                ),
            });
        }
        url("google.oauth_auth_url", &self.google.oauth_auth_url)?;
        url("google.oauth_token_url", &self.google.oauth_token_url)?;
        url("google.userinfo_url", &self.google.userinfo_url)?;
        url("google.gemini_api_base", &self.google.gemini_api_base)?;
        url("updates.url", &self.updates.url)?;
        if self.updates.interval < Duration::from_secs(1) {
            return Err(ConfigError::Invalid {
                key: "updates.interval",
                message: "must be at least 1s (the default, \"24h\", is plenty)".into(),
            });
        }
        if self.server.max_body.as_u64() < 1024 {
            return Err(ConfigError::Invalid {
                key: "server.max_body",
                message: "must be at least 1KiB".into(),
            });
        }
        if self.server.max_inflight_body < self.server.max_body {
            return Err(ConfigError::Invalid {
                key: "server.max_inflight_body",
                message: format!(
                    "`{}` is smaller than server.max_body ({}): one largest request must fit",
                    self.server.max_inflight_body, self.server.max_body
                ),
            });
        }
        for (key, value) in [
            ("server.max_messages", self.server.max_messages),
            ("server.max_tools", self.server.max_tools),
            ("server.max_connections", self.server.max_connections),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid {
                    key,
                    message: "must be at least 1".into(),
                });
            }
        }
        for (key, value) in [
            ("server.header_timeout", self.server.header_timeout),
            ("server.body_timeout", self.server.body_timeout),
            ("server.idle_timeout", self.server.idle_timeout),
        ] {
            if value < Duration::from_millis(100) {
                return Err(ConfigError::Invalid {
                    key,
                    message: "must be at least 100ms".into(),
                });
            }
        }
        Ok(())
    }

    /// The data dir: `$AGM_DATA_DIR`, else `[storage] data_dir`, else
    /// `$XDG_DATA_HOME/agm`, else `~/.local/share/agm`.
    pub fn data_dir(&self, env: &Env) -> PathBuf {
        if let Some(dir) = env.get("AGM_DATA_DIR").filter(|d| !d.is_empty()) {
            return PathBuf::from(dir);
        }
        if !self.storage.data_dir.is_empty() {
            return PathBuf::from(&self.storage.data_dir);
        }
        xdg_dir(env, "XDG_DATA_HOME", ".local/share").join("agm")
    }
}

/// `AGM_SERVER__PORT` → (`server`, `port`). Variables without `__` (such as
/// `AGM_CONFIG`) are not overrides.
fn env_override_key(var: &str) -> Option<(String, String)> {
    let rest = var.strip_prefix("AGM_")?;
    let (section, key) = rest.split_once("__")?;
    if section.is_empty() || key.is_empty() {
        return None;
    }
    Some((section.to_ascii_lowercase(), key.to_ascii_lowercase()))
}

/// An env value is read as a TOML value when it is one (`9000`, `true`, `["a","b"]`),
/// else as a plain string (`0.0.0.0`, `30s`).
fn env_value(raw: &str) -> toml::Value {
    let probe = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&probe) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_owned())),
        Err(_) => toml::Value::String(raw.to_owned()),
    }
}

fn parse_bool(s: &str) -> Option<bool> {
    match s.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '|' || c == '^' || c == ' '))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn default_file_matches_defaults() {
        let parsed =
            Config::from_toml_and_env(DEFAULT_CONFIG_TOML, Path::new("d.toml"), &Env::new())
                .unwrap();
        assert_eq!(parsed, Config::default());
    }

    #[test]
    fn empty_file_is_defaults() {
        let c = Config::from_toml_and_env("", Path::new("c.toml"), &Env::new()).unwrap();
        assert_eq!(c.server.port, 8045);
        assert_eq!(c.server.bind.to_string(), "127.0.0.1");
        assert_eq!(c.server.max_body, ByteSize::mib(32));
    }

    #[test]
    fn redis_lives_under_cluster_and_an_old_storage_key_moves_there() {
        let load = |toml: &str, env: &[(&str, &str)]| {
            let env: Env = env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            Config::from_toml_and_env(toml, Path::new("c.toml"), &env)
        };
        let c = load("[cluster]\nredis_url = \"redis://cache:6379/0\"\n", &[]).unwrap();
        assert_eq!(c.cluster.redis_url, "redis://cache:6379/0");
        let c = load("", &[("AGM_CLUSTER__REDIS_URL", "rediss://cache:6380")]).unwrap();
        assert_eq!(c.cluster.redis_url, "rediss://cache:6380");
        // A file written before [cluster] existed still loads, and nothing is lost.
        let c = load("[storage]\nredis_url = \"redis://old:6379\"\n", &[]).unwrap();
        assert_eq!(c.cluster.redis_url, "redis://old:6379");
        assert!(c.storage.redis_url.is_empty());
        let err = load("[cluster]\nredis_url = \"cache:6379\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("cluster.redis_url"), "{err}");
    }

    #[test]
    fn only_a_storage_backend_this_build_has_passes() {
        let err = Config::from_toml_and_env(
            "[storage]\nbackend = \"mysql\"\n",
            Path::new("c.toml"),
            &Env::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("storage.backend"), "{err}");
        assert!(
            err.contains("`sqlite`") && err.contains("`postgres`"),
            "{err}"
        );
        let err = Config::from_toml_and_env(
            "[storage]\nbackend = \"postgres\"\n",
            Path::new("c.toml"),
            &Env::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("storage.postgres_url"), "{err}");
        let env: Env = [(
            "AGM_STORAGE__POSTGRES_URL".to_owned(),
            "postgres://agm@db:5432/agm".to_owned(),
        )]
        .into_iter()
        .collect();
        let config = Config::from_toml_and_env(
            "[storage]\nbackend = \"postgres\"\n",
            Path::new("c.toml"),
            &env,
        )
        .unwrap();
        assert_eq!(config.storage.backend, StorageBackend::Postgres);
        assert_eq!(config.storage.postgres_url, "postgres://agm@db:5432/agm");
    }

    #[test]
    fn unknown_key_names_file_and_key() {
        let err =
            Config::from_toml_and_env("[server]\nprot = 1\n", Path::new("/x/c.toml"), &Env::new())
                .unwrap_err()
                .to_string();
        assert!(err.contains("/x/c.toml"), "{err}");
        assert!(err.contains("prot"), "{err}");
        assert!(
            err.contains("port"),
            "the fix (expected keys) is named: {err}"
        );
    }

    #[test]
    fn env_overrides_beat_the_file() {
        let c = Config::from_toml_and_env(
            "[server]\nport = 1\n",
            Path::new("c.toml"),
            &env(&[
                ("AGM_SERVER__PORT", "9000"),
                ("AGM_SERVER__BIND", "0.0.0.0"),
                ("AGM_PROJECT_ID__CACHE_TTL", "5m"),
                (
                    "AGM_GOOGLE__CODE_ASSIST_ENDPOINTS",
                    "[\"http://127.0.0.1:1\"]",
                ),
                ("AGM_CONFIG", "/ignored"),
                ("ENABLE_ANTIGRAVITY_AUTH", "false"),
                ("GEMINI_API_KEY", "AIzaTestKey1234"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.port, 9000);
        assert_eq!(c.server.bind.to_string(), "0.0.0.0");
        assert_eq!(c.project_id.cache_ttl, Duration::from_secs(300));
        assert_eq!(c.google.code_assist_endpoints, vec!["http://127.0.0.1:1"]);
        assert!(!c.routing.enable_antigravity);
        assert_eq!(c.safe_mode.gemini_api_keys, vec!["AIzaTestKey1234"]);
    }

    #[test]
    fn bad_env_override_names_the_variable() {
        let err =
            Config::from_toml_and_env("", Path::new("c.toml"), &env(&[("AGM_SERVER__PROT", "1")]))
                .unwrap_err()
                .to_string();
        assert!(
            err.starts_with("environment variable AGM_SERVER__PROT"),
            "{err}"
        );
        let err = Config::from_toml_and_env(
            "",
            Path::new("c.toml"),
            &env(&[("AGM_SERVER__PORT", "lots")]),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("AGM_SERVER__PORT"), "{err}");
    }

    #[test]
    fn durations_and_sizes_parse_humanly() {
        let c = Config::from_toml_and_env(
            "[server]\nrequest_timeout = \"2m\"\nmax_body = \"1MiB\"\n",
            Path::new("c.toml"),
            &Env::new(),
        )
        .unwrap();
        assert_eq!(c.server.request_timeout, Duration::from_secs(120));
        assert_eq!(c.server.max_body, ByteSize::mib(1));
        let err = Config::from_toml_and_env(
            "[server]\nrequest_timeout = \"soon\"\n",
            Path::new("c.toml"),
            &Env::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("request_timeout"), "{err}");
    }

    #[test]
    fn validation_names_the_key() {
        let err = Config::from_toml_and_env(
            "[routing]\nscheduling = \"random\"\n",
            Path::new("c.toml"),
            &Env::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("routing.scheduling") && err.contains("cache-first"),
            "{err}"
        );
        let err = Config::from_toml_and_env(
            "[google]\ncode_assist_endpoints = []\n",
            Path::new("c.toml"),
            &Env::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("google.code_assist_endpoints"), "{err}");
        let err = Config::from_toml_and_env(
            "[google]\nhttp2_connections = 0\n",
            Path::new("c.toml"),
            &Env::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("google.http2_connections"), "{err}");
    }

    #[test]
    fn paths_follow_the_contract() {
        let e = env(&[("HOME", "/home/u")]);
        assert_eq!(
            config_path(None, &e),
            PathBuf::from("/home/u/.config/agm/config.toml")
        );
        assert_eq!(
            Config::default().data_dir(&e),
            PathBuf::from("/home/u/.local/share/agm")
        );
        let e = env(&[
            ("HOME", "/home/u"),
            ("XDG_CONFIG_HOME", "/xc"),
            ("XDG_DATA_HOME", "/xd"),
        ]);
        assert_eq!(config_path(None, &e), PathBuf::from("/xc/agm/config.toml"));
        assert_eq!(Config::default().data_dir(&e), PathBuf::from("/xd/agm"));
        let e = env(&[("AGM_CONFIG", "/a.toml"), ("AGM_DATA_DIR", "/data")]);
        assert_eq!(config_path(None, &e), PathBuf::from("/a.toml"));
        assert_eq!(
            config_path(Some(Path::new("/b.toml")), &e),
            PathBuf::from("/b.toml")
        );
        assert_eq!(Config::default().data_dir(&e), PathBuf::from("/data"));
    }

    #[test]
    fn the_context_limit_is_the_window_or_a_smaller_budget() {
        use agm_translate::context::Mode;
        let mut section = ContextSection::default();
        assert_eq!(section.scaling, Scaling::Standard);
        let policy = section.policy(Some(200_000)).unwrap();
        assert_eq!(
            (policy.mode, policy.limit, policy.keep_turns),
            (Mode::Standard, 200_000, 6)
        );
        assert_eq!(
            section.policy(None),
            None,
            "no window, no budget: nothing to scale to"
        );
        section.budget = 50_000;
        assert_eq!(section.policy(Some(200_000)).unwrap().limit, 50_000);
        assert_eq!(section.policy(None).unwrap().limit, 50_000);
        section.budget = 900_000;
        assert_eq!(section.policy(Some(200_000)).unwrap().limit, 200_000);
        let e = Config::from_toml_and_env(
            "[context]\nscaling = \"max\"\n",
            Path::new("d.toml"),
            &Env::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("aggressive"), "{e}");
    }
}
