#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The `agm` binary as a user runs it: exit codes, messages, files.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn agm(home: &Path, args: &[&str]) -> Output {
    command(home, args).output().unwrap()
}

fn command(home: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_agm"));
    cmd.args(args)
        .env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        // Never a real OS keychain from a test.
        .env("AGM_STORAGE__KEY_STORE", "file");
    cmd
}

use common::{stderr, stdout};

#[test]
fn version_and_help() {
    let home = tempfile::tempdir().unwrap();
    let v = agm(home.path(), &["--version"]);
    assert!(v.status.success());
    assert_eq!(
        stdout(&v).trim(),
        format!("agm {}", env!("CARGO_PKG_VERSION"))
    );
    let help = agm(home.path(), &["--help"]);
    for word in ["serve", "demo", "config", "--config"] {
        assert!(stdout(&help).contains(word), "{word} in --help");
    }
    let usage = agm(home.path(), &["serve", "--port", "lots"]);
    assert_eq!(usage.status.code(), Some(2), "usage errors exit 2");
}

#[test]
fn config_path_follows_the_contract() {
    let home = tempfile::tempdir().unwrap();
    let p = agm(home.path(), &["config", "path"]);
    assert_eq!(
        stdout(&p).trim(),
        home.path()
            .join(".config/agm/config.toml")
            .display()
            .to_string()
    );
    let explicit = agm(home.path(), &["--config", "/tmp/x.toml", "config", "path"]);
    assert_eq!(stdout(&explicit).trim(), "/tmp/x.toml");
    let by_env = command(home.path(), &["config", "path"])
        .env("AGM_CONFIG", "/etc/agm.toml")
        .output()
        .unwrap();
    assert_eq!(stdout(&by_env).trim(), "/etc/agm.toml");
}

#[test]
fn config_init_writes_once_and_show_reads_it() {
    let home = tempfile::tempdir().unwrap();
    let init = agm(home.path(), &["config", "init"]);
    assert!(init.status.success(), "{}", stderr(&init));
    let path = home.path().join(".config/agm/config.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("[server]") && text.contains("port = 8045"));

    let again = agm(home.path(), &["config", "init"]);
    assert_eq!(again.status.code(), Some(1));
    let err = stderr(&again);
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(err.contains("--force"), "{err}");

    std::fs::write(
        &path,
        "[server]\nport = 9100\napi_keys = [\"agm-very-secret-key\"]\n",
    )
    .unwrap();
    let show = command(home.path(), &["config", "show"])
        .env("AGM_SERVER__BIND", "127.0.0.2")
        .output()
        .unwrap();
    assert!(show.status.success(), "{}", stderr(&show));
    let out = stdout(&show);
    assert!(out.contains("port = 9100"), "{out}");
    assert!(
        out.contains("bind = \"127.0.0.2\""),
        "env overrides the file: {out}"
    );
    assert!(!out.contains("very-secret"), "secrets are masked: {out}");
}

#[test]
fn bad_config_is_one_clear_line() {
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("bad.toml");
    std::fs::write(&path, "[server]\nprot = 1\n").unwrap();
    let out = agm(home.path(), &["--config", path.to_str().unwrap(), "serve"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("bad.toml") && err.contains("prot"), "{err}");

    let missing = agm(home.path(), &["--config", "/nonexistent/agm.toml", "serve"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(stderr(&missing).contains("/nonexistent/agm.toml"));
}

#[test]
fn open_bind_without_keys_refuses_to_start() {
    let home = tempfile::tempdir().unwrap();
    let out = agm(home.path(), &["serve", "--bind", "0.0.0.0", "--port", "0"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("refusing to listen on 0.0.0.0"), "{err}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_healthy(url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = reqwest::blocking::Client::new();
    while Instant::now() < deadline {
        if client
            .get(format!("{url}/healthz"))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("agm did not come up at {url}");
}

fn sigterm(child: &std::process::Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn serve_creates_the_data_dir_and_stops_on_sigterm() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let port = free_port();
    let mut child = command(home.path(), &["serve", "--port", &port.to_string()])
        .env("AGM_DATA_DIR", &data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    wait_healthy(&url);
    let ready = reqwest::blocking::get(format!("{url}/readyz")).unwrap();
    assert_eq!(ready.status(), 503, "no accounts yet");
    assert!(ready.text().unwrap().contains("agm accounts add"));
    assert!(data.join("agm.db").exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the data dir is private");
    }
    sigterm(&child);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "clean exit on SIGTERM");
}

#[test]
fn demo_answers_a_streamed_curl_like_request() {
    let home = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = command(home.path(), &["demo", "--port", &port.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    wait_healthy(&url);
    let body = serde_json::json!({
        "model": "claude-sonnet-4-5", "max_tokens": 64, "stream": true,
        "messages": [{"role": "user", "content": "Hello"}],
    });
    let response = reqwest::blocking::Client::new()
        .post(format!("{url}/v1/messages"))
        .json(&body)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    let text = response.text().unwrap();
    assert!(text.starts_with("event: message_start\n"), "{text}");
    assert!(text.contains("reply to: Hello"), "{text}");
    assert!(
        text.trim_end()
            .ends_with("data: {\"type\":\"message_stop\"}"),
        "{text}"
    );
    sigterm(&child);
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let printed = stdout(&output);
    assert!(
        printed.contains(&format!("agm demo is running on {url}")),
        "{printed}"
    );
    assert!(printed.contains("ANTHROPIC_BASE_URL="), "{printed}");
    assert!(
        !home.path().join(".local/share/agm").exists(),
        "demo leaves the data dir alone"
    );
}

#[test]
fn safe_mode_commands_change_the_stored_state_and_audit_it() {
    let home = tempfile::tempdir().unwrap();
    let status = |home: &Path| -> serde_json::Value {
        let out = agm(home, &["safe-mode", "status", "--json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str(&stdout(&out)).unwrap()
    };
    assert_eq!(
        status(home.path()),
        serde_json::json!({"active": false, "reason": null, "since": null, "next_retry": null})
    );
    let on = agm(
        home.path(),
        &["safe-mode", "enable", "--note", "maintenance"],
    );
    assert!(on.status.success(), "{}", stderr(&on));
    assert!(
        stdout(&on).contains("safe mode: ON: turned on by hand: maintenance"),
        "{}",
        stdout(&on)
    );
    assert!(
        stderr(&on).contains("GEMINI_API_KEY"),
        "warns there is no key: {}",
        stderr(&on)
    );
    let s = status(home.path());
    assert_eq!(s["active"], true);
    assert_eq!(s["next_retry"], serde_json::Value::Null);
    assert!(s["since"].as_str().unwrap().ends_with('Z'));

    let off = agm(home.path(), &["safe-mode", "reset-all"]);
    assert!(off.status.success(), "{}", stderr(&off));
    assert_eq!(status(home.path())["active"], false);

    let audit = agm(home.path(), &["audit", "--kind", "safe-mode", "--json"]);
    assert!(audit.status.success(), "{}", stderr(&audit));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&audit)).unwrap();
    let details: Vec<&str> = rows.iter().map(|r| r["detail"].as_str().unwrap()).collect();
    assert!(
        details
            .iter()
            .any(|d| d.contains("turned on: turned on by hand: maintenance")),
        "{details:?}"
    );
    assert!(
        details.iter().any(|d| d.starts_with("reset-all")),
        "{details:?}"
    );
    let bad = agm(home.path(), &["audit", "--kind", "nonsense"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        stderr(&bad).contains("safe-mode, account-switch"),
        "{}",
        stderr(&bad)
    );
}

#[test]
fn env_prints_what_each_client_needs() {
    let home = tempfile::tempdir().unwrap();
    let claude = command(home.path(), &["env", "claude"])
        .env("AGM_SERVER__PORT", "9123")
        .output()
        .unwrap();
    assert!(claude.status.success(), "{}", stderr(&claude));
    assert_eq!(
        stdout(&claude),
        "export ANTHROPIC_BASE_URL=http://127.0.0.1:9123\nexport ANTHROPIC_API_KEY=agm\n# or let agm start it with this configuration: agm run claude\n"
    );
    for client in ["codex", "opencode", "gemini"] {
        let out = agm(home.path(), &["env", client]);
        assert!(out.status.success(), "{client}: {}", stderr(&out));
        assert!(stdout(&out).contains("http://127.0.0.1:8045"), "{client}");
    }
    // Once keys are required, the key is the user's to fill in.
    assert!(
        agm(home.path(), &["keys", "create", "--name", "laptop"])
            .status
            .success()
    );
    let keyed = agm(home.path(), &["env", "gemini"]);
    assert!(stdout(&keyed).contains("GEMINI_API_KEY=<your agm client key>"));
    assert!(stderr(&keyed).contains("agm keys create"));
    let bad = agm(home.path(), &["env", "vim"]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "an unknown client is a usage error"
    );
}

/// Answers every HTTP request on a loopback port with `body` (JSON), from a thread.
fn serve_json(body: &'static str) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/releases/latest", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn update_check_compares_with_the_newest_release() {
    let home = tempfile::tempdir().unwrap();
    let newer =
        serve_json(r#"{"tag_name": "v99.0.0", "html_url": "https://example.test/r/v99.0.0"}"#);
    let out = command(home.path(), &["update", "check"])
        .env("AGM_UPDATES__URL", &newer)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with(&format!(
            "agm 99.0.0 is out (this is {})",
            env!("CARGO_PKG_VERSION")
        )),
        "{}",
        stdout(&out)
    );
    let same = serve_json(concat!(
        r#"{"tag_name": "v"#,
        env!("CARGO_PKG_VERSION"),
        r#""}"#
    ));
    let out = command(home.path(), &["update", "check"])
        .env("AGM_UPDATES__URL", &same)
        .output()
        .unwrap();
    assert!(stdout(&out).contains("is up to date"), "{}", stdout(&out));
    let dead = format!("http://127.0.0.1:{}/x", free_port());
    let out = command(home.path(), &["update", "check"])
        .env("AGM_UPDATES__URL", &dead)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot reach"), "{}", stderr(&out));
}

#[test]
fn one_serve_per_data_dir_and_the_other_commands_work_beside_it() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let serve = |port: u16| {
        command(home.path(), &["serve", "--port", &port.to_string()])
            .env("AGM_DATA_DIR", &data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let port = free_port();
    let mut first = serve(port);
    wait_healthy(&format!("http://127.0.0.1:{port}"));

    let second = command(home.path(), &["serve", "--port", &free_port().to_string()])
        .env("AGM_DATA_DIR", &data)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1), "{}", stderr(&second));
    assert_eq!(
        stderr(&second),
        format!(
            "agm: another agm serve (pid {}) is using the data dir {}: stop it first, or give this one another data dir (AGM_DATA_DIR)\n",
            first.id(),
            data.display()
        )
    );
    for args in [
        &["keys", "create"][..],
        &["keys", "list"],
        &["accounts", "list"],
        &["audit"],
    ] {
        let out = command(home.path(), args)
            .env("AGM_DATA_DIR", &data)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }

    // However the first one ends, the lock goes with it.
    first.kill().unwrap();
    first.wait().unwrap();
    let port = free_port();
    let mut third = serve(port);
    wait_healthy(&format!("http://127.0.0.1:{port}"));
    sigterm(&third);
    assert_eq!(third.wait().unwrap().code(), Some(0));
}

#[test]
fn a_lost_seal_key_is_never_replaced_without_force_new_key() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = agm_store::Store::open_sqlite_with(&data, agm_store::KeyStore::File)
            .await
            .unwrap();
        store
            .upsert_account(agm_store::NewAccount::antigravity(
                "alice@example.com",
                "1//0g-sealed",
            ))
            .await
            .unwrap();
    });
    let key = data.join("secret.key");
    std::fs::remove_file(&key).unwrap();
    let run = |args: &[&str]| {
        command(home.path(), args)
            .env("AGM_DATA_DIR", &data)
            .output()
            .unwrap()
    };

    for args in [
        &["accounts", "list"][..],
        &["keys", "list"],
        &["serve", "--port", "0"],
    ] {
        let out = run(args);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        for words in [
            "the seal key is missing",
            &format!("expected in the key file {}", key.display()),
            "cannot be read without it",
            "restore it from a backup",
            "--force-new-key",
        ] {
            assert!(err.contains(words), "{words:?} in {err}");
        }
        assert!(!key.exists(), "no new key was made");
    }

    let forced = run(&["--force-new-key", "keys", "list"]);
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert!(key.is_file());
    // The account can still be removed, and then there is nothing sealed to lose.
    let removed = run(&["accounts", "remove", "alice@example.com"]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    let help = run(&["--help"]);
    assert!(stdout(&help).contains("--force-new-key"));
}

#[test]
fn config_show_masks_every_secret() {
    let home = tempfile::tempdir().unwrap();
    let path = home.path().join("agm.toml");
    std::fs::write(
        &path,
        r#"
[server]
api_keys = ["agm-0123456789abcdefSECRET", "short-SECRET"]
admin_password = "hunter2-hunter2-SECRET"

[google]
oauth_client_secret = "GOCSPX-client-SECRET-value"

[safe_mode]
gemini_api_keys = ["AIzaSy-gemini-SECRET-000"]

[storage]
postgres_url = "postgres://agm:pg-SECRET-password@db.example:5432/agm"

[cluster]
redis_url = "redis://:redis-SECRET@cache.example:6379/0"
"#,
    )
    .unwrap();
    let out = agm(
        home.path(),
        &["--config", path.to_str().unwrap(), "config", "show"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(!shown.contains("SECRET"), "{shown}");
    for line in [
        r#"api_keys = ["#,
        r#""agm-****","#,
        r#""****","#,
        r#"admin_password = "hunt****""#,
        r#"oauth_client_secret = "GOCS****""#,
        r#"gemini_api_keys = ["AIza****"]"#,
        r#"postgres_url = "postgres://agm:****@db.example:5432/agm""#,
        r#"redis_url = "redis://:****@cache.example:6379/0""#,
    ] {
        assert!(shown.contains(line), "{line} in {shown}");
    }
    // The built-in OAuth client secret is masked too.
    let defaults = agm(home.path(), &["config", "show"]);
    assert!(stdout(&defaults).contains(r#"oauth_client_secret = "GOCS****""#));
}

#[test]
fn keys_carry_limits_that_set_changes_and_usage_counts_per_key() {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("data");
    let run = |args: &[&str]| {
        command(home.path(), args)
            .env("AGM_DATA_DIR", &data)
            .output()
            .unwrap()
    };
    let created = run(&[
        "keys",
        "create",
        "ci",
        "--models",
        "gemini-*,claude-sonnet-4-5",
        "--rpm",
        "60",
        "--concurrency",
        "2",
        "--daily-tokens",
        "100000",
        "--expires",
        "2027-01-01",
        "--json",
    ]);
    assert!(created.status.success(), "{}", stderr(&created));
    let created: serde_json::Value = serde_json::from_str(&stdout(&created)).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["name"], "ci");
    assert_eq!(
        created["limits"],
        serde_json::json!({"models": ["gemini-*", "claude-sonnet-4-5"], "rpm": 60,
            "concurrency": 2, "daily_tokens": 100000, "daily_requests": null,
            "expires_at": "2027-01-01T00:00:00Z"})
    );

    // Only what is given changes; 0 and `never` clear.
    let set = run(&[
        "keys",
        "set",
        &id,
        "--rpm",
        "0",
        "--daily-requests",
        "500",
        "--expires",
        "never",
    ]);
    assert!(set.status.success(), "{}", stderr(&set));
    let list = run(&["keys", "list"]);
    let table = stdout(&list);
    assert!(table.contains("LIMITS"), "{table}");
    assert!(
        table
            .contains("gemini-*,claude-sonnet-4-5; 2 at once; 500 requests/day; 100000 tokens/day"),
        "{table}"
    );
    let nothing = run(&["keys", "set", &id]);
    assert_eq!(nothing.status.code(), Some(1));
    assert!(
        stderr(&nothing).contains("nothing to change"),
        "{}",
        stderr(&nothing)
    );
    let bad = run(&["keys", "set", &id, "--expires", "soon"]);
    assert!(stderr(&bad).contains("2027-01-01"), "{}", stderr(&bad));
    let past = run(&["keys", "set", &id, "--expires", "2020-01-01"]);
    assert!(past.status.success(), "{}", stderr(&past));
    let table = stdout(&run(&["keys", "list"]));
    assert!(
        table.contains("expires 2020-01-01T00:00:00Z (expired)"),
        "{table}"
    );
    let unknown = run(&["keys", "set", "00000000", "--rpm", "1"]);
    assert!(
        stderr(&unknown).contains("agm keys list"),
        "{}",
        stderr(&unknown)
    );

    // Usage per key, from the request log.
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = agm_store::Store::open_sqlite_with(&data, agm_store::KeyStore::File)
            .await
            .unwrap();
        let entry = |key: Option<&str>, status: u16| agm_store::RequestLogEntry {
            at: time::OffsetDateTime::now_utc() - time::Duration::hours(1),
            api: agm_store::ApiKind::Anthropic,
            client_model: "claude-sonnet-4-5".into(),
            upstream_model: "claude-sonnet-4-5".into(),
            account_id: None,
            status,
            latency_ms: 100,
            input_tokens: 1000,
            output_tokens: 20,
            error_class: None,
            route: "/v1/messages".into(),
            attempts: 1,
            overhead_us: None,
            context_scaled: None,
            key_id: key.map(str::to_owned),
        };
        store
            .append_request_logs(vec![
                entry(Some(&id), 200),
                entry(Some(&id), 429),
                entry(None, 200),
            ])
            .await
            .unwrap();
    });
    let used = run(&["keys", "usage", "--since", "1d", "--json"]);
    assert!(used.status.success(), "{}", stderr(&used));
    let used: serde_json::Value = serde_json::from_str(&stdout(&used)).unwrap();
    assert_eq!(
        used,
        serde_json::json!([
            {"id": null, "name": null, "requests": 1, "errors": 0, "input_tokens": 1000, "output_tokens": 20},
            {"id": id, "name": "ci", "requests": 2, "errors": 1, "input_tokens": 2000, "output_tokens": 40},
        ])
    );
    let table = stdout(&run(&["keys", "usage"]));
    assert!(
        table.contains("(no key)") && table.contains("ci"),
        "{table}"
    );
    let old = stdout(&run(&["keys", "usage", "--since", "10m"]));
    assert!(old.contains("no requests since"), "{old}");
    let bad = run(&["keys", "usage", "--since", "lately"]);
    assert!(stderr(&bad).contains("7d"), "{}", stderr(&bad));
}
