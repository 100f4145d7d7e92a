//! `agm doctor`: config, data dir, secret key, accounts, upstream reachability and the
//! port, each as one line that is either fine or says what to do.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use agm_store::{AccountState, KeySource, Store};

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
pub async fn run_checks(loaded: &LoadedConfig, data_dir: &Path) -> Vec<Check> {
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

    match Store::open_sqlite(data_dir).await {
        Ok(store) => {
            checks.push(match store.key_source() {
                KeySource::KeyFile(path) => check(
                    "secrets",
                    Status::Ok,
                    format!("tokens sealed with AES-256-GCM; key file {} (mode 0600; no OS keychain is used)", path.display()),
                ),
                other => check("secrets", Status::Warn, format!("key source: {other}")),
            });
            checks.push(accounts_check(&store).await);
        }
        Err(e) => checks.push(check("store", Status::Fail, e.to_string())),
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

async fn accounts_check(store: &Store) -> Check {
    let accounts = match store.list_accounts().await {
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
