//! `agm run claude|codex|opencode|gemini [ARGS…]`: starts the client, found on `PATH`,
//! with what `agm env` prints already in place, passes it ARGS as they are, and exits
//! with its exit code.
//!
//! The gateway's address comes from the effective config (`server.bind`, `server.port`);
//! the client key from `$AGM_API_KEY`, else the placeholder a keyless loopback gateway
//! accepts. What each client gets:
//!
//! - Claude Code: `ANTHROPIC_BASE_URL`, `ANTHROPIC_API_KEY` (and no
//!   `ANTHROPIC_AUTH_TOKEN`, which would win over the key).
//! - Codex: `-c` overrides before ARGS that select the `agm` model provider (the
//!   Responses API at `/v1`, key from `$AGM_API_KEY`). They apply over the user's own
//!   `~/.codex/config.toml`, so sessions, MCP servers and trust stay where they are and
//!   no file is written.
//! - OpenCode: `OPENCODE_CONFIG` naming a temporary opencode.json with agm's three
//!   providers and a default model; the key stays in the environment
//!   (`{env:AGM_API_KEY}`), not in the file.
//! - Gemini CLI: `GOOGLE_GEMINI_BASE_URL`, `GEMINI_API_KEY`, and `GEMINI_CLI_HOME`
//!   naming a temporary home whose `.gemini/settings.json` sets
//!   `security.auth.selectedType = "gemini-api-key"` (the auth type cannot be chosen by
//!   a variable, and Gemini CLI reads system settings only from root-owned files). Of
//!   the user's ~/.gemini it carries the preference sections of settings.json (see
//!   `GEMINI_SETTINGS_CARRIED`) and the trusted folders
//!   (`GEMINI_CLI_TRUSTED_FOLDERS_PATH`); nothing else, since MCP server entries and
//!   the rest may hold secrets.
//!
//! Temporary files live in a private directory (mode 0700) under the system's temp dir,
//! hold no secret, and are removed when the client exits.

use std::ffi::OsString;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

use crate::commands::Workspace;
use crate::commands::env::{self, Client, Gateway, KEY_VAR, PLACEHOLDER_KEY};
use crate::output;

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The client to start: claude, codex, opencode or gemini
    #[arg(value_enum)]
    client: Client,

    /// Passed to the client as they are, e.g. `-p "hello"` or `exec "fix the tests"`
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    args: Vec<OsString>,
}

/// The client's program name and the npm package that installs it.
fn program(client: Client) -> (&'static str, &'static str) {
    match client {
        Client::Claude => ("claude", "@anthropic-ai/claude-code"),
        Client::Codex => ("codex", "@openai/codex"),
        Client::Opencode => ("opencode", "opencode-ai"),
        Client::Gemini => ("gemini", "@google/gemini-cli"),
    }
}

pub async fn run(explicit: Option<&Path>, args: RunArgs) -> anyhow::Result<()> {
    let (name, package) = program(args.client);
    let path = std::env::var_os("PATH").unwrap_or_default();
    let Some(binary) = find_on_path(name, &path) else {
        bail!("{name} is not on PATH: install it with `npm install -g {package}`");
    };

    let workspace = Workspace::open(explicit).await?;
    let gateway = Gateway::of(&workspace).await?;
    let key = match std::env::var(KEY_VAR) {
        Ok(key) if !key.is_empty() => key,
        _ if gateway.keyed => bail!(
            "this gateway requires a client key: set {KEY_VAR} to one (`agm keys create` makes one)"
        ),
        _ => PLACEHOLDER_KEY.to_owned(),
    };

    let mut temp = None;
    let mut command = tokio::process::Command::new(&binary);
    command.env(KEY_VAR, &key);
    match args.client {
        Client::Claude => {
            command
                .env("ANTHROPIC_BASE_URL", &gateway.base)
                .env("ANTHROPIC_API_KEY", &key)
                .env_remove("ANTHROPIC_AUTH_TOKEN");
            output::note(&format!("agm: Claude Code uses {}", gateway.base));
        }
        Client::Codex => {
            for value in env::codex_overrides(&gateway.base) {
                command.arg("-c").arg(value);
            }
            output::note(&format!(
                "agm: Codex uses the model provider `agm` at {}/v1 (-c overrides over your config.toml)",
                gateway.base
            ));
        }
        Client::Opencode => {
            let dir = TempDir::new("opencode")?;
            let file = dir.path.join("opencode.json");
            let key_ref = Value::from(format!("{{env:{KEY_VAR}}}"));
            write_json(&file, &env::opencode_config(&gateway.base, &key_ref))?;
            command.env("OPENCODE_CONFIG", &file);
            output::note(&format!(
                "agm: OpenCode uses agm at {}/v1 (providers agm, agm-responses, agm-anthropic; the config is {}, removed on exit)",
                gateway.base,
                file.display()
            ));
            temp = Some(dir);
        }
        Client::Gemini => {
            let dir = TempDir::new("gemini")?;
            let gemini_dir = dir.path.join(".gemini");
            std::fs::create_dir(&gemini_dir)
                .with_context(|| format!("cannot make {}", gemini_dir.display()))?;
            let mut settings = gemini_user_settings();
            settings.extend(
                env::gemini_settings()
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            );
            write_json(&gemini_dir.join("settings.json"), &Value::Object(settings))?;
            command
                .env("GOOGLE_GEMINI_BASE_URL", &gateway.base)
                .env("GEMINI_API_KEY", &key)
                .env("GEMINI_CLI_HOME", &dir.path);
            if std::env::var_os("GEMINI_CLI_TRUSTED_FOLDERS_PATH").is_none()
                && let Some(trusted) = gemini_trusted_folders()
            {
                command.env("GEMINI_CLI_TRUSTED_FOLDERS_PATH", trusted);
            }
            output::note(&format!(
                "agm: Gemini CLI uses {} (auth type {}) with a fresh home, {}, removed on exit",
                gateway.base,
                env::GEMINI_AUTH_TYPE,
                dir.path.display()
            ));
            temp = Some(dir);
        }
    }
    command.args(&args.args);
    warn_if_unreachable(&gateway.base);

    let mut child = command
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let status = wait(&mut child).await;
    drop(temp);
    let code = exit_code(status?);
    // agm's own exit would say only success or failure: give the client's code back.
    std::process::exit(code)
}

/// The first executable `name` in `path` (a `PATH` value).
fn find_on_path(name: &str, path: &std::ffi::OsStr) -> Option<PathBuf> {
    std::env::split_paths(path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .flat_map(|dir| candidates(&dir, name))
        .find(|candidate| is_executable(candidate))
}

#[cfg(windows)]
fn candidates(dir: &Path, name: &str) -> Vec<PathBuf> {
    ["exe", "cmd", "bat"]
        .iter()
        .map(|ext| dir.join(format!("{name}.{ext}")))
        .collect()
}

#[cfg(not(windows))]
fn candidates(dir: &Path, name: &str) -> Vec<PathBuf> {
    vec![dir.join(name)]
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}

/// The sections of the user's ~/.gemini/settings.json that hold preferences and no
/// secret (update checks, telemetry, usage statistics, model, UI), to carry into the
/// temporary home: MCP servers and the rest may carry tokens, and stay behind.
const GEMINI_SETTINGS_CARRIED: [&str; 7] = [
    "general",
    "ui",
    "ide",
    "output",
    "privacy",
    "telemetry",
    "model",
];

fn gemini_user_settings() -> serde_json::Map<String, Value> {
    let Some(path) = gemini_home().map(|home| home.join(".gemini").join("settings.json")) else {
        return serde_json::Map::new();
    };
    let Ok(text) = std::fs::read_to_string(&path) else {
        return serde_json::Map::new();
    };
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(all)) => all
            .into_iter()
            .filter(|(key, _)| GEMINI_SETTINGS_CARRIED.contains(&key.as_str()))
            .collect(),
        _ => {
            output::warn(&format!(
                "{} is not plain JSON: Gemini CLI runs without your settings",
                path.display()
            ));
            serde_json::Map::new()
        }
    }
}

/// The home whose `.gemini` Gemini CLI would use without agm: `$GEMINI_CLI_HOME`, else
/// `$HOME`.
fn gemini_home() -> Option<PathBuf> {
    std::env::var_os("GEMINI_CLI_HOME")
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var_os("HOME").filter(|h| !h.is_empty()))
        .map(PathBuf::from)
}

/// The user's own list of trusted folders, `~/.gemini/trustedFolders.json` (under
/// `$GEMINI_CLI_HOME` when that is set), so that folders they trusted stay trusted.
fn gemini_trusted_folders() -> Option<PathBuf> {
    Some(gemini_home()?.join(".gemini").join("trustedFolders.json"))
}

fn write_json(path: &Path, value: &Value) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("cannot write {}", path.display()))
}

/// A private directory under the system's temp dir, removed when dropped.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(client: &str) -> anyhow::Result<TempDir> {
        let base = std::env::temp_dir();
        let pid = std::process::id();
        for attempt in 0..32u32 {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let path = base.join(format!("agm-run-{client}-{pid}-{nanos:08x}{attempt}"));
            let mut builder = std::fs::DirBuilder::new();
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            match builder.create(&path) {
                Ok(()) => return Ok(TempDir { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("cannot make a directory in {}", base.display()));
                }
            }
        }
        bail!("cannot make a directory in {}", base.display())
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Warns when nothing listens at the gateway's address: the client would fail with
/// its own, less clear, connection error.
fn warn_if_unreachable(base: &str) {
    let authority = base.trim_start_matches("http://");
    let addrs: Vec<SocketAddr> = authority
        .to_socket_addrs()
        .map(Iterator::collect)
        .unwrap_or_default();
    let up = addrs
        .iter()
        .any(|addr| TcpStream::connect_timeout(addr, Duration::from_millis(500)).is_ok());
    if !up {
        output::warn(&format!(
            "nothing answers at {base}: start the gateway with `agm serve` (or try `agm demo`)"
        ));
    }
}

/// Waits for the client. Ctrl-C and Ctrl-\ reach it from the terminal (it is in the
/// same process group), so agm only keeps waiting; a SIGTERM sent to agm is passed on.
#[cfg(unix)]
async fn wait(child: &mut tokio::process::Child) -> anyhow::Result<ExitStatus> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut quit = signal(SignalKind::quit())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let pid = child.id();
    loop {
        tokio::select! {
            status = child.wait() => return Ok(status?),
            _ = interrupt.recv() => {}
            _ = quit.recv() => {}
            _ = terminate.recv() => {
                if let Some(pid) = pid {
                    // std has no kill(2) with a signal; the `kill` utility is POSIX.
                    let _ = std::process::Command::new("kill")
                        .args(["-s", "TERM", &pid.to_string()])
                        .status();
                }
            }
        }
    }
}

#[cfg(not(unix))]
async fn wait(child: &mut tokio::process::Child) -> anyhow::Result<ExitStatus> {
    Ok(child.wait().await?)
}

/// The client's exit code; killed by a signal, 128 + its number, as shells report it.
fn exit_code(status: ExitStatus) -> i32 {
    if let Some(code) = status.code() {
        return code;
    }
    #[cfg(unix)]
    if let Some(signal) = std::os::unix::process::ExitStatusExt::signal(&status) {
        return 128 + signal;
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_temp_dir_is_private_and_removed() {
        let dir = TempDir::new("test").unwrap();
        let path = dir.path.clone();
        assert!(path.is_dir());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        drop(dir);
        assert!(!path.exists());
    }
}
