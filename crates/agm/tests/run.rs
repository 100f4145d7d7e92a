#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `agm run <client>` and `agm env <client>` as a user runs them, with a fake client
//! on PATH: a shell script that prints its arguments, environment and config files, so
//! that the wiring is checked without the real client (tests/e2e runs the real ones).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

struct Setup {
    home: tempfile::TempDir,
    bin: PathBuf,
    config: PathBuf,
}

/// A temporary HOME with an agm config (`extra` appended to its `[server]` table on
/// port 9123) and an empty bin dir for fake clients.
fn setup(extra: &str) -> Setup {
    let home = tempfile::tempdir().unwrap();
    let bin = home.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let config = home.path().join("agm.toml");
    std::fs::write(&config, format!("[server]\nport = 9123\n{extra}")).unwrap();
    Setup { home, bin, config }
}

impl Setup {
    /// Puts a fake client called `name` on PATH: `body` is a /bin/sh script.
    fn fake(&self, name: &str, body: &str) {
        let path = self.bin.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_agm"));
        cmd.arg("--config")
            .arg(&self.config)
            .args(args)
            .env_clear()
            .env("HOME", self.home.path())
            .env("TMPDIR", self.home.path())
            .env("PATH", format!("{}:/usr/bin:/bin", self.bin.display()))
            .env("RUST_LOG", "warn")
            .env("AGM_STORAGE__KEY_STORE", "file");
        cmd
    }

    fn agm(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
}

use common::{stderr, stdout};

/// The value of `NAME=value` lines the fake clients print.
fn printed<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    out.lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix('='))
        .collect()
}

/// Prints each argument on its own line as `ARG=...`.
const PRINT_ARGS: &str = "for a in \"$@\"; do printf 'ARG=%s\\n' \"$a\"; done\n";

#[test]
fn codex_gets_the_agm_provider_before_the_args_and_its_exit_code_is_agms() {
    let s = setup("");
    s.fake(
        "codex",
        &format!("{PRINT_ARGS}printf 'KEY=%s\\n' \"$AGM_API_KEY\"\nexit 7\n"),
    );
    let out = s.agm(&["run", "codex", "exec", "--json", "fix it, please"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let text = stdout(&out);
    let args = printed(&text, "ARG");
    assert_eq!(args[0], "-c");
    assert_eq!(args[1], "model_provider=\"agm\"");
    assert_eq!(args[2], "-c");
    // The value is TOML, as `codex -c key=value` reads it.
    let (key, value) = args[3].split_once('=').unwrap();
    assert_eq!(key, "model_providers.agm");
    let table: toml::Table = toml::from_str(&format!("p = {value}")).unwrap();
    assert_eq!(
        table["p"]["base_url"].as_str(),
        Some("http://127.0.0.1:9123/v1")
    );
    assert_eq!(table["p"]["wire_api"].as_str(), Some("responses"));
    assert_eq!(table["p"]["env_key"].as_str(), Some("AGM_API_KEY"));
    // ARGS follow, as they were, hyphens and spaces included.
    assert_eq!(args[4..], ["exec", "--json", "fix it, please"]);
    // A keyless loopback gateway: the placeholder key.
    assert_eq!(printed(&text, "KEY"), ["agm"]);
    assert!(
        stderr(&out).contains("nothing answers at http://127.0.0.1:9123"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn gemini_gets_the_variables_and_a_fresh_home_with_its_auth_type_and_the_users_preferences() {
    let s = setup("");
    let own = s.home.path().join(".gemini");
    std::fs::create_dir(&own).unwrap();
    std::fs::write(
        own.join("settings.json"),
        r#"{"general": {"enableAutoUpdate": false}, "privacy": {"usageStatisticsEnabled": false},
            "mcpServers": {"db": {"env": {"TOKEN": "a-secret-token"}}},
            "security": {"auth": {"selectedType": "oauth-personal"}}}"#,
    )
    .unwrap();
    s.fake(
        "gemini",
        "printf 'BASE=%s\\nKEY=%s\\nHOME_DIR=%s\\nTRUSTED=%s\\n' \"$GOOGLE_GEMINI_BASE_URL\" \"$GEMINI_API_KEY\" \"$GEMINI_CLI_HOME\" \"$GEMINI_CLI_TRUSTED_FOLDERS_PATH\"\n\
         echo '---'\ncat \"$GEMINI_CLI_HOME/.gemini/settings.json\"\n",
    );
    let out = s.agm(&["run", "gemini", "-p", "hi"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(printed(&text, "BASE"), ["http://127.0.0.1:9123"]);
    assert_eq!(printed(&text, "KEY"), ["agm"]);
    // The folders the user trusted stay trusted.
    assert_eq!(
        printed(&text, "TRUSTED"),
        [s.home
            .path()
            .join(".gemini/trustedFolders.json")
            .display()
            .to_string()]
    );
    let json: Value = serde_json::from_str(text.split_once("---\n").unwrap().1).unwrap();
    // The user's preferences come along; MCP servers (and their secrets) do not.
    assert_eq!(
        json,
        serde_json::json!({
            "general": {"enableAutoUpdate": false},
            "privacy": {"usageStatisticsEnabled": false},
            "security": {"auth": {"selectedType": "gemini-api-key"}}
        })
    );
    // The temporary home is gone once the client has exited, and agm said where it was.
    let home = PathBuf::from(printed(&text, "HOME_DIR")[0]);
    assert!(
        home.starts_with(s.home.path()),
        "under TMPDIR: {}",
        home.display()
    );
    assert!(!home.exists());
    assert!(
        stderr(&out).contains(&home.display().to_string()),
        "{}",
        stderr(&out)
    );
}

#[test]
fn opencode_gets_a_config_with_three_providers_and_the_key_only_in_its_environment() {
    let s = setup("api_keys = [\"agm-a-long-secret-client-key-0001\"]\n");
    s.fake(
        "opencode",
        &format!(
            "{PRINT_ARGS}printf 'KEY=%s\\nCONFIG=%s\\n' \"$AGM_API_KEY\" \"$OPENCODE_CONFIG\"\necho '---'\ncat \"$OPENCODE_CONFIG\"\n"
        ),
    );
    let out = s
        .command(&["run", "opencode", "run", "hello"])
        .env("AGM_API_KEY", "agm-a-long-secret-client-key-0001")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(printed(&text, "ARG"), ["run", "hello"]);
    assert_eq!(printed(&text, "KEY"), ["agm-a-long-secret-client-key-0001"]);
    let file = text.split_once("---\n").unwrap().1;
    assert!(!file.contains("secret"), "no key in the file: {file}");
    let json: Value = serde_json::from_str(file).unwrap();
    for (id, npm) in [
        ("agm", "@ai-sdk/openai-compatible"),
        ("agm-responses", "@ai-sdk/openai"),
        ("agm-anthropic", "@ai-sdk/anthropic"),
    ] {
        assert_eq!(json["provider"][id]["npm"], npm);
        assert_eq!(
            json["provider"][id]["options"]["baseURL"],
            "http://127.0.0.1:9123/v1"
        );
        assert_eq!(
            json["provider"][id]["options"]["apiKey"],
            "{env:AGM_API_KEY}"
        );
    }
    assert_eq!(json["model"], "agm/claude-sonnet-4-5");
    assert!(!Path::new(printed(&text, "CONFIG")[0]).exists());
}

#[test]
fn claude_gets_the_base_url_and_key_and_a_signal_death_is_reported_as_a_shell_would() {
    let s = setup("");
    s.fake(
        "claude",
        &format!(
            "{PRINT_ARGS}printf 'BASE=%s\\nKEY=%s\\nTOKEN=%s\\n' \"$ANTHROPIC_BASE_URL\" \"$ANTHROPIC_API_KEY\" \"${{ANTHROPIC_AUTH_TOKEN-unset}}\"\nkill -TERM $$\n"
        ),
    );
    let out = s
        .command(&["run", "claude", "-p", "--model", "claude-sonnet-4-5"])
        .env("ANTHROPIC_AUTH_TOKEN", "a-token-for-another-gateway")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(128 + 15), "{}", stderr(&out));
    let text = stdout(&out);
    assert_eq!(
        printed(&text, "ARG"),
        ["-p", "--model", "claude-sonnet-4-5"]
    );
    assert_eq!(printed(&text, "BASE"), ["http://127.0.0.1:9123"]);
    assert_eq!(printed(&text, "KEY"), ["agm"]);
    assert_eq!(printed(&text, "TOKEN"), ["unset"]);
}

#[test]
fn a_missing_client_is_one_line_saying_how_to_install_it() {
    let s = setup("");
    for (client, package) in [
        ("claude", "@anthropic-ai/claude-code"),
        ("codex", "@openai/codex"),
        ("opencode", "opencode-ai"),
        ("gemini", "@google/gemini-cli"),
    ] {
        let out = s
            .command(&["run", client])
            .env("PATH", &s.bin)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains(&format!("{client} is not on PATH"))
                && err.contains(&format!("npm install -g {package}")),
            "{err}"
        );
    }
}

#[test]
fn a_keyed_gateway_needs_agm_api_key() {
    let s = setup("api_keys = [\"agm-a-long-secret-client-key-0001\"]\n");
    s.fake("claude", "echo started\n");
    let out = s.agm(&["run", "claude"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("AGM_API_KEY"), "{err}");
    assert!(!stdout(&out).contains("started"));
}

/// What `agm env claude|gemini` prints can be `eval`'d as it is.
#[test]
fn env_output_evals_in_a_shell() {
    let s = setup("");
    for (client, check) in [
        ("claude", "echo \"$ANTHROPIC_BASE_URL $ANTHROPIC_API_KEY\""),
        ("gemini", "echo \"$GOOGLE_GEMINI_BASE_URL $GEMINI_API_KEY\""),
    ] {
        let out = s.agm(&["env", client]);
        assert!(out.status.success(), "{}", stderr(&out));
        let shell = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("set -e\neval \"$1\"\n{check}"))
            .arg("sh")
            .arg(stdout(&out))
            .output()
            .unwrap();
        assert!(shell.status.success(), "{}", stderr(&shell));
        assert_eq!(stdout(&shell).trim(), "http://127.0.0.1:9123 agm");
    }
    let gemini = stdout(&s.agm(&["env", "gemini"]));
    assert!(
        gemini.contains("\"selectedType\": \"gemini-api-key\""),
        "{gemini}"
    );
    let codex = stdout(&s.agm(&["env", "codex"]));
    let toml: toml::Table = toml::from_str(&codex).unwrap();
    assert_eq!(
        toml["model_providers"]["agm"]["base_url"].as_str(),
        Some("http://127.0.0.1:9123/v1")
    );
}
