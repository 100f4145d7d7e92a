//! `agm doctor`: config, data dir, secret key (OS keychain or key file), accounts,
//! upstream reachability and the port, each as one line that is either fine or says what
//! to do.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use agm_store::keychain::os_keychain_status;
use agm_store::{AccountState, KeyChoice, KeySource, Store};

use crate::config::LoadedConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Check {
    pub name: &'static str,
    pub status: Status,
    pub detail: String,
}

fn check(name: &'static str, status: Status, detail: impl Into<String>) -> Check {
    Check {
        name,
        status,
        detail: detail.into(),
    }
}

/// How long each upstream reachability probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs every check. Never fails itself: a check that cannot run says so.
pub async fn run_checks(
    loaded: &LoadedConfig,
    data_dir: &Path,
    env: &crate::config::Env,
) -> Vec<Check> {
    let config = &loaded.config;
    let mut checks = vec![if loaded.file_exists {
        check(
            "config",
            Status::Ok,
            format!("{} is valid", loaded.path.display()),
        )
    } else {
        check(
            "config",
            Status::Ok,
            format!(
                "{} does not exist: all defaults apply (`agm config init` writes one to edit)",
                loaded.path.display()
            ),
        )
    }];
    checks.push(data_dir_check(data_dir));

    match crate::state::open_store(config, env, data_dir, false).await {
        Ok(store) => {
            checks.push(check("store", Status::Ok, store.location()));
            checks.push(secrets_check(&store, data_dir).await);
            checks.push(accounts_check(&store).await);
            let shared = crate::state::Shared::new(store.clone());
            checks.push(discovery_check(&shared).await);
            checks.push(safe_mode_check(loaded, &shared).await);
            checks.push(client_version_check(loaded, &shared).await);
            checks.push(warmup_check(loaded, &shared).await);
            checks.push(updates_check(loaded, &shared).await);
            checks.push(conversations_check(loaded, &shared).await);
        }
        Err(e) => checks.push(check("store", Status::Fail, e.to_string())),
    }

    if let Some(line) = cluster_check(config).await {
        checks.push(line);
    }

    let http = reqwest::Client::builder()
        .timeout(PROBE_TIMEOUT)
        .connect_timeout(PROBE_TIMEOUT)
        .build();
    match http {
        Ok(http) => {
            let mut targets: Vec<(&'static str, &str)> = config
                .google
                .code_assist_endpoints
                .iter()
                .map(|e| ("code assist", e.as_str()))
                .collect();
            targets.push(("oauth", config.google.oauth_token_url.as_str()));
            for (name, url) in targets {
                checks.push(probe(&http, name, url).await);
            }
        }
        Err(e) => checks.push(check(
            "upstream",
            Status::Fail,
            format!("cannot build an HTTP client: {e}"),
        )),
    }

    let addr = SocketAddr::new(config.server.bind, config.server.port);
    checks.push(match std::net::TcpListener::bind(addr) {
        Ok(_) => check("port", Status::Ok, format!("{addr} is free")),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => check(
            "port",
            Status::Warn,
            format!("{addr} is in use: agm may already be running (curl http://{addr}/healthz), or pick another with --port"),
        ),
        Err(e) => check("port", Status::Fail, format!("cannot listen on {addr}: {e}")),
    });
    if !config.server.bind.is_loopback() && config.server.api_keys.is_empty() {
        checks.push(check(
            "exposure",
            Status::Warn,
            format!("server.bind = {} is not loopback: agm serves only with client API keys (`agm keys create`)", config.server.bind),
        ));
    }
    checks
}

fn data_dir_check(dir: &Path) -> Check {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => check(
            "data dir",
            Status::Ok,
            format!("{} will be created on first use", dir.display()),
        ),
        Err(e) => check(
            "data dir",
            Status::Fail,
            format!("cannot read {}: {e}", dir.display()),
        ),
        Ok(meta) if !meta.is_dir() => check(
            "data dir",
            Status::Fail,
            format!(
                "{} is not a directory: set AGM_DATA_DIR or [storage] data_dir to another path",
                dir.display()
            ),
        ),
        Ok(meta) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return check(
                        "data dir",
                        Status::Warn,
                        format!(
                            "{} is mode {mode:o}: others can read it; run chmod 700 {}",
                            dir.display(),
                            dir.display()
                        ),
                    );
                }
            }
            let _ = meta;
            check(
                "data dir",
                Status::Ok,
                format!("{} (private)", dir.display()),
            )
        }
    }
}

/// Where the sealing key is, and why there: the OS keychain, or the key file and what
/// kept it from the keychain.
async fn secrets_check(store: &Store, data_dir: &Path) -> Check {
    const SEALED: &str = "tokens sealed with AES-256-GCM";
    let path = match store.key_source() {
        KeySource::KeyFile(path) => path,
        KeySource::Keychain { service, user } => {
            let created = match store.key_choice() {
                KeyChoice::Keychain { created: true } => " (created just now)",
                _ => "",
            };
            return check(
                "secrets",
                Status::Ok,
                format!("{SEALED}; key in the OS keychain entry {service}/{user}{created}"),
            );
        }
        KeySource::Env(var) => {
            return check(
                "secrets",
                Status::Ok,
                format!("{SEALED}; the key every replica shares, from {var}"),
            );
        }
        other => return check("secrets", Status::Warn, format!("key source: {other}")),
    };
    let why = match store.key_choice() {
        KeyChoice::FileForced => {
            "the OS keychain is not used because [storage] key_store = \"file\"".to_owned()
        }
        KeyChoice::NoKeychain { reason } => format!("no OS keychain answered ({reason})"),
        KeyChoice::KeychainRefused { reason } => {
            format!("the OS keychain answered but did not take the key ({reason})")
        }
        KeyChoice::ExistingKeyFile => match os_keychain_status(data_dir).await {
            Err(reason) => format!("no OS keychain answered ({reason})"),
            Ok(()) => "an OS keychain answers, but this key file already existed and an existing key is never moved".to_owned(),
        },
        other => other.to_string(),
    };
    check(
        "secrets",
        Status::Ok,
        format!("{SEALED}; key file {} (mode 0600): {why}", path.display()),
    )
}

/// Project discovery as the running server measured it (it writes its telemetry to the
/// store every minute): attempts, success rate, latency percentiles, errors by class.
/// Whether Google refused the client version agm reports, as a running server last saw.
async fn client_version_check(loaded: &LoadedConfig, shared: &crate::state::Shared) -> Check {
    let google = &loaded.config.google;
    match crate::routing::drift::stored(shared).await {
        Some(refusal) => check(
            "client version",
            Status::Fail,
            format!(
                "Google refused {} at {} (\"{}\"): {}",
                refusal.sent, refusal.at, refusal.message, refusal.fix
            ),
        ),
        None => check(
            "client version",
            Status::Ok,
            format!(
                "antigravity/{}, GeminiCLI/{} (no refusal seen)",
                google.antigravity_version, google.gemini_cli_version
            ),
        ),
    }
}

async fn discovery_check(shared: &crate::state::Shared) -> Check {
    const NAME: &str = "project discovery";
    let value = match shared.get(&crate::state::keys::DISCOVERY_TELEMETRY).await {
        Ok(Some(value)) => value,
        Ok(None) => {
            return check(
                NAME,
                Status::Ok,
                "no telemetry yet: `agm serve` records every discovery and writes it here once a minute",
            );
        }
        Err(e) => return check(NAME, Status::Fail, e.to_string()),
    };
    let summary = &value.summary;
    let attempts = summary["attempts"].as_u64().unwrap_or(0);
    let rate = summary["success_rate"].as_f64().unwrap_or(0.0);
    let ms = |key: &str| {
        summary[key]
            .as_f64()
            .map_or_else(|| "-".to_owned(), |v| format!("{v:.0} ms"))
    };
    let errors = summary["errors_by_class"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(class, n)| format!("{class} {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let detail = format!(
        "{attempts} attempts, {:.1} % succeeded, p50 {} / p95 {} / p99 {}{} (written by the server at {})",
        rate * 100.0,
        ms("p50_ms"),
        ms("p95_ms"),
        ms("p99_ms"),
        if errors.is_empty() {
            String::new()
        } else {
            format!("; errors: {errors}")
        },
        value.written_at,
    );
    if rate >= 0.9 {
        check(NAME, Status::Ok, detail)
    } else {
        check(
            NAME,
            Status::Warn,
            format!(
                "{detail}: under the 90 % the validation gate asks; `agm accounts list` shows which accounts fail"
            ),
        )
    }
}

/// What a restart keeps of the ongoing conversations, and how long sessions grow
/// before context scaling acts.
async fn conversations_check(loaded: &LoadedConfig, shared: &crate::state::Shared) -> Check {
    const NAME: &str = "conversations";
    let sessions = shared.get(&crate::state::keys::STICKY_SESSIONS).await;
    let signatures = shared.get(&crate::state::keys::SIGNATURES).await;
    let scaling = match loaded.config.context.scaling {
        crate::config::Scaling::Off => "context scaling off".to_owned(),
        crate::config::Scaling::Standard => {
            "context scaling standard (above 80% of the window)".to_owned()
        }
        crate::config::Scaling::Aggressive => format!(
            "context scaling aggressive (above 60% of the window; summaries by {})",
            loaded.config.context.summary_model
        ),
    };
    match (sessions, signatures) {
        (Ok(sessions), Ok(signatures)) => check(
            NAME,
            Status::Ok,
            format!(
                "{} sticky sessions and {} thinking signatures saved for the next start; {scaling}",
                sessions.map_or(0, |s| s.len()),
                signatures.map_or(0, |s| s.len())
            ),
        ),
        (Err(e), _) | (_, Err(e)) => check(NAME, Status::Fail, e.to_string()),
    }
}

/// The last update check (`agm serve`'s, or `agm update check`'s).
async fn updates_check(loaded: &LoadedConfig, shared: &crate::state::Shared) -> Check {
    const NAME: &str = "updates";
    let current = crate::ops::updates::current();
    match crate::ops::updates::load(shared).await {
        Err(e) => check(NAME, Status::Fail, e.to_string()),
        Ok(Some(latest)) => match latest.release() {
            Some(release) if release.is_newer_than(&current) => check(
                NAME,
                Status::Warn,
                format!(
                    "{} (checked {})",
                    release.verdict(&current),
                    latest.checked_at
                ),
            ),
            _ => check(
                NAME,
                Status::Ok,
                format!(
                    "agm {current} is up to date: the newest release is {} (checked {})",
                    latest.version, latest.checked_at
                ),
            ),
        },
        Ok(None) if loaded.config.updates.check => check(
            NAME,
            Status::Ok,
            "not checked yet: `agm serve` checks in the background, `agm update check` now",
        ),
        Ok(None) => check(
            NAME,
            Status::Ok,
            "off ([updates] check = false): `agm update check` checks by hand",
        ),
    }
}

/// Whether smart warmup is on, and when it last started a window.
async fn warmup_check(loaded: &LoadedConfig, shared: &crate::state::Shared) -> Check {
    const NAME: &str = "warmup";
    let section = &loaded.config.warmup;
    if !section.enabled {
        return check(NAME, Status::Ok, "off ([warmup] enabled = false)");
    }
    let history = match shared.get(&crate::state::keys::WARMUP_HISTORY).await {
        Ok(history) => history.unwrap_or_default(),
        Err(e) => return check(NAME, Status::Fail, e.to_string()),
    };
    let last = history
        .warmed
        .values()
        .flat_map(|groups| groups.values())
        .map(|w| w.at)
        .max();
    check(
        NAME,
        Status::Ok,
        match last {
            Some(at) => format!(
                "on, every {}; last window started {} (`agm warmup status`)",
                humantime::format_duration(section.interval),
                agm_store::rfc3339(at)
            ),
            None => format!(
                "on, every {}; no window started yet (`agm warmup status`)",
                humantime::format_duration(section.interval)
            ),
        },
    )
}

/// Whether requests go to the official Gemini API, and whether a key is there for it.
async fn safe_mode_check(loaded: &LoadedConfig, shared: &crate::state::Shared) -> Check {
    const NAME: &str = "safe mode";
    let config = crate::routing::safe_mode::config_of(&loaded.config);
    let status = match crate::routing::safe_mode::stored_status(config, shared).await {
        Ok(status) => status,
        Err(e) => return check(NAME, Status::Fail, e.to_string()),
    };
    let keys = loaded.config.safe_mode.gemini_api_keys.len();
    match (status.active, keys) {
        (false, 0) => check(
            NAME,
            Status::Ok,
            "off; no Gemini API key for it (GEMINI_API_KEY or [safe_mode] gemini_api_keys would let it answer if Antigravity keeps failing)",
        ),
        (false, n) => check(
            NAME,
            Status::Ok,
            format!("off; {n} Gemini API key(s) ready for it"),
        ),
        (true, 0) => check(
            NAME,
            Status::Fail,
            format!(
                "ON ({}) and no Gemini API key: requests get a 503; add GEMINI_API_KEY or run `agm safe-mode disable`",
                status.reason.unwrap_or_default()
            ),
        ),
        (true, n) => check(
            NAME,
            Status::Warn,
            format!(
                "ON ({}): requests go to the official Gemini API with {n} key(s); `agm safe-mode status` says more",
                status.reason.unwrap_or_default()
            ),
        ),
    }
}

/// Cluster mode (`[cluster] redis_url`): Redis answers, and the store is one the
/// replicas share. `None` without a Redis URL.
async fn cluster_check(config: &crate::config::Config) -> Option<Check> {
    let cluster = match crate::cluster::Cluster::from_config(&config.cluster) {
        Ok(Some(cluster)) => cluster,
        Ok(None) => return None,
        Err(e) => return Some(check("cluster", Status::Fail, e.to_string())),
    };
    if config.storage.backend != crate::config::StorageBackend::Postgres {
        return Some(check(
            "cluster",
            Status::Warn,
            "[cluster] redis_url is set but the store is SQLite: replicas share accounts and keys only through [storage] backend = \"postgres\" (see docs/operations/cluster.md)",
        ));
    }
    let prefix = &config.cluster.key_prefix;
    Some(
        match tokio::time::timeout(PROBE_TIMEOUT, cluster.probe()).await {
            Ok(Ok(leader)) => check(
                "cluster",
                Status::Ok,
                format!(
                    "Redis at {} answers (keys under {prefix:?}); {}",
                    cluster.address(),
                    leader.map_or_else(
                        || "no replica leads the background jobs right now".to_owned(),
                        |l| format!("replica {l} leads the background jobs"),
                    )
                ),
            ),
            Ok(Err(e)) => check(
                "cluster",
                Status::Warn,
                format!(
                    "{e}: replicas serve on their own state (degraded) until it does; check the address and password in [cluster] redis_url"
                ),
            ),
            Err(_) => check(
                "cluster",
                Status::Warn,
                format!(
                    "Redis at {} did not answer within {}s",
                    cluster.address(),
                    PROBE_TIMEOUT.as_secs()
                ),
            ),
        },
    )
}

async fn accounts_check(store: &Store) -> Check {
    let accounts = match store.list_account_infos().await {
        Ok(a) => a,
        Err(e) => return check("accounts", Status::Fail, e.to_string()),
    };
    if accounts.is_empty() {
        return check(
            "accounts",
            Status::Warn,
            "none yet: add one with `agm accounts add` (or try agm without one: `agm demo`)",
        );
    }
    let active = accounts
        .iter()
        .filter(|a| matches!(a.state, AccountState::Active))
        .count();
    let mut problems = Vec::new();
    // Tokens that cannot be opened with this data dir's key (a changed key, a damaged
    // row): the server disables such an account on first use.
    if let Ok((_, unreadable)) = store.list_accounts_lenient().await {
        for bad in unreadable
            .iter()
            .filter(|b| matches!(b.state, AccountState::Active))
        {
            problems.push(format!(
                "{}'s tokens cannot be decrypted with this seal key (re-add it with `agm accounts add`)",
                bad.email
            ));
        }
    }
    for a in &accounts {
        match &a.state {
            AccountState::Active => {}
            AccountState::Disabled { reason } => {
                problems.push(format!("{} disabled: {reason}", a.email))
            }
            AccountState::Blocked { reason, url } => problems.push(match url {
                Some(url) => format!("{} blocked: {reason} (open {url})", a.email),
                None => format!("{} blocked: {reason}", a.email),
            }),
        }
    }
    let status = match (active, problems.is_empty()) {
        (0, _) => Status::Fail,
        (_, false) => Status::Warn,
        _ => Status::Ok,
    };
    let mut detail = format!("{active} of {} active", accounts.len());
    if !problems.is_empty() {
        detail.push_str("; ");
        detail.push_str(&problems.join("; "));
    }
    check("accounts", status, detail)
}

/// Reachable means any HTTP answer at all: a 404 from the host root still proves the
/// network path and TLS work.
async fn probe(http: &reqwest::Client, name: &'static str, url: &str) -> Check {
    match http.get(url).send().await {
        Ok(r) => check(
            name,
            Status::Ok,
            format!("{url} reachable (HTTP {})", r.status().as_u16()),
        ),
        Err(e) if e.is_timeout() => check(
            name,
            Status::Fail,
            format!(
                "{url} timed out after {}s: check the network or a proxy",
                PROBE_TIMEOUT.as_secs()
            ),
        ),
        Err(_) => check(
            name,
            Status::Fail,
            format!(
                "{url} unreachable: check the network, DNS, or the [google] address in the config"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Env};
    use agm_store::KeyStore;

    fn env(var: &str, value: &str) -> Env {
        [(var.to_owned(), value.to_owned())].into_iter().collect()
    }

    #[tokio::test]
    async fn the_secrets_line_says_when_the_setting_forces_the_key_file() {
        let config = Config::from_toml_and_env(
            "",
            Path::new("c.toml"),
            &env("AGM_STORAGE__KEY_STORE", "file"),
        )
        .unwrap();
        assert_eq!(config.storage.key_store, KeyStore::File);
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open_sqlite_with(tmp.path(), config.storage.key_store)
            .await
            .unwrap();
        let line = secrets_check(&store, tmp.path()).await;
        assert_eq!(line.status, Status::Ok);
        assert!(
            line.detail.contains("secret.key (mode 0600)"),
            "{}",
            line.detail
        );
        assert!(
            line.detail.contains("key_store = \"file\""),
            "{}",
            line.detail
        );
    }

    #[test]
    fn key_store_is_read_from_the_file_and_checked() {
        let config = Config::from_toml_and_env(
            "[storage]\nkey_store = \"keychain\"\n",
            Path::new("c.toml"),
            &Env::new(),
        )
        .unwrap();
        assert_eq!(config.storage.key_store, KeyStore::Keychain);
        assert_eq!(Config::default().storage.key_store, KeyStore::Auto);
        let err = Config::from_toml_and_env(
            "",
            Path::new("c.toml"),
            &env("AGM_STORAGE__KEY_STORE", "vault"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("AGM_STORAGE__KEY_STORE"), "{err}");
        assert!(err.contains("keychain"), "{err}");
    }
}
