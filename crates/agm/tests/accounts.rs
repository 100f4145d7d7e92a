#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `agm accounts ...` and `agm keys ...` as a user runs them: the real binary, its own
//! data dir, and every Google address pointed at the simulated Google.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use agm_sim::{RunningSim, Sim, SimAccount, SimMethod};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, Command};

/// One user: a home with its own data dir, and a simulated Google.
struct User {
    home: tempfile::TempDir,
    data_dir: PathBuf,
    sim: RunningSim,
    /// A free port for `server.port`.
    port: u16,
}

impl User {
    async fn new() -> User {
        let sim = Sim::demo().start().await.unwrap();
        // A third account with no Cloud Code project yet.
        sim.add_account(SimAccount::new(
            "carol@demo.agm",
            "demo-refresh-carol",
            None,
            "free-tier",
        ));
        let home = tempfile::tempdir().unwrap();
        let data_dir = home.path().join("data");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        User {
            home,
            data_dir,
            sim,
            port,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let bin = Path::new(env!("CARGO_BIN_EXE_agm"));
        let mut cmd = common::isolated(bin, self.home.path(), &self.data_dir);
        common::at_sim(&mut cmd, &self.sim.base_url());
        // Never the default port: `agm doctor` checks it, and a running `agm demo` on
        // 8045 must not fail the suite (issue 14).
        cmd.args(args)
            .env("AGM_SERVER__PORT", self.port.to_string());
        cmd
    }

    async fn agm(&self, args: &[&str]) -> Output {
        self.command(args).output().await.unwrap()
    }

    async fn agm_with_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self.command(args).stdin(Stdio::piped()).spawn().unwrap();
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(input.as_bytes()).await.unwrap();
        drop(stdin);
        child.wait_with_output().await.unwrap()
    }

    /// `agm accounts list --json`.
    async fn accounts(&self) -> Vec<Value> {
        let out = self.agm(&["accounts", "list", "--json"]).await;
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str::<Value>(&stdout(&out))
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }

    async fn account(&self, email: &str) -> Value {
        self.accounts()
            .await
            .into_iter()
            .find(|a| a["email"] == email)
            .unwrap_or_else(|| panic!("{email} is not listed"))
    }

    /// Every byte of every file in the data dir (the database, its WAL, the key file).
    fn data_dir_bytes(&self) -> Vec<u8> {
        let mut all = Vec::new();
        for entry in std::fs::read_dir(&self.data_dir).unwrap() {
            all.extend(std::fs::read(entry.unwrap().path()).unwrap());
        }
        all
    }
}

use common::{stderr, stdout};

/// A failed command: exit 1 and one line on stderr, which is returned.
fn user_error(o: &Output) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "exit 1: {err} / {}", stdout(o));
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

fn query_of(url: &str) -> HashMap<String, String> {
    let query = url.split_once('?').map_or("", |(_, q)| q);
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Starts `agm accounts add --no-browser ...` and reads the consent URL it prints.
async fn start_add(user: &User, extra: &[&str]) -> (Child, String, BufReader<ChildStderr>) {
    let mut args = vec!["accounts", "add", "--no-browser", "--timeout", "60s"];
    args.extend_from_slice(extra);
    let (child, url, err, _) = start(user, &args).await;
    (child, url, err)
}

/// Starts agm with `args` and reads stderr up to the consent URL; returns what it read.
async fn start(user: &User, args: &[&str]) -> (Child, String, BufReader<ChildStderr>, String) {
    let mut child = user.command(args).stdin(Stdio::piped()).spawn().unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let mut line = String::new();
            assert!(
                err.read_line(&mut line).await.unwrap() > 0,
                "agm ended early: {seen}"
            );
            seen.push_str(&line);
            if line.contains("/o/oauth2/v2/auth?") {
                return line.trim().to_owned();
            }
        }
    })
    .await
    .expect("agm printed the sign-in URL");
    (child, url, err, seen)
}

/// Opens the consent URL like a browser (the sim approves at once) and returns the
/// address Google redirects to.
async fn approve(url: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = http.get(url).send().await.unwrap();
    assert_eq!(response.status(), 302);
    response.headers()["location"].to_str().unwrap().to_owned()
}

async fn finish(mut child: Child, mut err: BufReader<ChildStderr>) -> (Output, String) {
    drop(child.stdin.take());
    let mut rest = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut err, &mut rest)
        .await
        .unwrap();
    let output = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("agm finished")
        .unwrap();
    (output, rest)
}

#[tokio::test]
async fn add_signs_in_through_the_loopback_redirect() {
    let user = User::new().await;
    let (child, url, err) = start_add(&user, &["--email", "bob@demo.agm"]).await;

    let q = query_of(&url);
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["access_type"], "offline");
    assert_eq!(q["prompt"], "consent");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["login_hint"], "bob@demo.agm");
    assert!(q["scope"].split(' ').any(|s| s == "openid"), "{url}");
    assert!(
        q["scope"]
            .split(' ')
            .any(|s| s == "https://www.googleapis.com/auth/cclog")
    );
    let redirect_uri = &q["redirect_uri"];
    assert!(
        redirect_uri.starts_with("http://localhost:") && redirect_uri.ends_with("/oauth-callback"),
        "{redirect_uri}"
    );

    // The browser follows Google's redirect to agm's loopback listener.
    let location = approve(&url).await;
    assert!(location.starts_with(redirect_uri.as_str()), "{location}");
    let page = reqwest::get(&location).await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("Signed in"));

    let (out, _) = finish(child, err).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "added bob@demo.agm (project demo-project-bob, tier free-tier)\n"
    );

    // PKCE: the verifier agm sent hashes to the challenge in the URL.
    let exchange = user
        .sim
        .requests()
        .into_iter()
        .find(|r| r.method == SimMethod::Token)
        .unwrap();
    assert_eq!(exchange.body["grant_type"], "authorization_code");
    assert_eq!(exchange.body["redirect_uri"], redirect_uri.as_str());
    let verifier = exchange.body["code_verifier"].as_str().unwrap();
    assert_eq!(agm_sim::pkce_challenge(verifier), q["code_challenge"]);

    let bob = user.account("bob@demo.agm").await;
    assert_eq!(bob["project_id"], "demo-project-bob");
    assert_eq!(bob["tier"], "free-tier");
    assert_eq!(bob["state"], "active");
    assert!(
        !contains(&user.data_dir_bytes(), "demo-refresh-bob"),
        "sealed at rest"
    );
    let audit = audit_of(&user, "account").await;
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert_eq!(audit[0]["subject"], "bob@demo.agm");
    assert_eq!(
        audit[0]["detail"],
        "added with `agm accounts add` (pool antigravity)"
    );
}

#[tokio::test]
async fn add_takes_the_pasted_redirect_address() {
    let user = User::new().await;
    let (mut child, url, err) = start_add(&user, &["--email", "carol@demo.agm"]).await;
    let location = approve(&url).await;
    let stdin = child.stdin.as_mut().unwrap();
    // Something that is not an answer first: agm asks again.
    stdin.write_all(b"hello there\n").await.unwrap();
    stdin
        .write_all(format!("{location}\n").as_bytes())
        .await
        .unwrap();
    let (out, rest) = finish(child, err).await;
    assert!(out.status.success(), "{rest}");
    assert!(rest.contains("neither the address"), "{rest}");
    let line = stdout(&out);
    // Carol had no project: adding her onboards her while the user is there.
    assert!(
        line.starts_with("added carol@demo.agm: onboarded, project "),
        "{line}"
    );
    assert!(line.trim_end().ends_with(" on tier free-tier"), "{line}");
    assert_eq!(line.lines().count(), 1);
    let carol = user.account("carol@demo.agm").await;
    assert!(carol["project_id"].is_string(), "{carol}");
}

#[tokio::test]
async fn add_takes_a_bare_code() {
    let user = User::new().await;
    let (mut child, url, err) = start_add(&user, &[]).await;
    let code = query_of(&approve(&url).await)["code"].clone();
    let stdin = child.stdin.as_mut().unwrap();
    stdin
        .write_all(format!("  {code}\n").as_bytes())
        .await
        .unwrap();
    let (out, rest) = finish(child, err).await;
    assert!(out.status.success(), "{rest}");
    assert_eq!(
        stdout(&out),
        "added alice@demo.agm (project demo-project-alice, tier g1-pro-tier)\n",
        "no login hint: the sim signs in its first account"
    );
}

#[tokio::test]
async fn add_refuses_a_wrong_state_and_saves_nothing() {
    let user = User::new().await;

    // Pasted, with the state changed.
    let (mut child, url, err) = start_add(&user, &[]).await;
    let location = approve(&url).await;
    let q = query_of(&location);
    let forged = location.replace(&format!("state={}", q["state"]), "state=forged");
    assert_ne!(forged, location);
    let stdin = child.stdin.as_mut().unwrap();
    stdin
        .write_all(format!("{forged}\n").as_bytes())
        .await
        .unwrap();
    let (out, rest) = finish(child, err).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(rest.contains("state differs"), "{rest}");
    assert!(rest.contains("nothing was saved"), "{rest}");

    // Through the loopback listener.
    let (child, url, err) = start_add(&user, &[]).await;
    let location = approve(&url).await;
    let q = query_of(&location);
    let forged = location.replace(&format!("state={}", q["state"]), "state=forged");
    let page = reqwest::get(&forged).await.unwrap();
    assert_eq!(page.status(), 400);
    let (out, rest) = finish(child, err).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(rest.contains("state differs"), "{rest}");

    assert_eq!(user.sim.count(SimMethod::Token), 0, "no code was exchanged");
    assert!(user.accounts().await.is_empty());
}

/// Without a desktop there is no browser to open: agm says so and takes the paste;
/// Ctrl-C then stops it cleanly.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn add_without_a_browser_falls_back_and_ctrl_c_cancels() {
    let user = User::new().await;
    let (child, _url, err, seen) = start(&user, &["accounts", "add"]).await;
    assert!(seen.contains("No browser could be opened"), "{seen}");
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (out, rest) = finish(child, err).await;
    assert_eq!(out.status.code(), Some(1), "{rest}");
    assert!(
        rest.contains("sign-in cancelled; nothing was saved"),
        "{rest}"
    );
    assert!(user.accounts().await.is_empty());
}

#[tokio::test]
async fn add_gives_up_after_the_timeout() {
    let user = User::new().await;
    let out = user
        .agm(&["accounts", "add", "--no-browser", "--timeout", "1s"])
        .await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let last = err.trim_end().lines().last().unwrap();
    assert!(last.contains("no sign-in within 1s"), "{err}");
    assert!(user.accounts().await.is_empty());

    let usage = user.agm(&["accounts", "add", "--timeout", "soon"]).await;
    assert_eq!(usage.status.code(), Some(2), "usage errors exit 2");
}

#[tokio::test]
async fn import_a_refresh_token() {
    let user = User::new().await;
    let out = user
        .agm(&[
            "accounts",
            "import",
            "--refresh-token",
            "demo-refresh-alice",
        ])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "imported alice@demo.agm (project demo-project-alice, tier g1-pro-tier)\n"
    );
    // A token on the command line works, with a warning (never showing the token).
    let warning = stderr(&out);
    assert_eq!(warning.lines().count(), 1, "{warning}");
    assert!(warning.starts_with("agm: warning: "), "{warning}");
    for words in ["process list", "shell history", "`--refresh-token -`"] {
        assert!(warning.contains(words), "{words:?} in {warning}");
    }
    assert!(!warning.contains("demo-refresh-alice"), "{warning}");
    let alice = user.account("alice@demo.agm").await;
    assert_eq!(alice["pool"], "antigravity");

    // The same e-mail again updates the account in place.
    let again = user
        .agm(&[
            "accounts",
            "import",
            "--refresh-token",
            "demo-refresh-alice",
            "--email",
            "ALICE@demo.agm",
        ])
        .await;
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(stdout(&again).starts_with("updated alice@demo.agm"));
    let accounts = user.accounts().await;
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0]["id"], alice["id"], "same account, same id");

    // From stdin.
    let piped = user
        .agm_with_stdin(
            &["accounts", "import", "--refresh-token", "-"],
            "demo-refresh-bob\n",
        )
        .await;
    assert!(piped.status.success(), "{}", stderr(&piped));
    assert!(stdout(&piped).starts_with("imported bob@demo.agm"));
    assert_eq!(stderr(&piped), "", "no warning for a token on stdin");
    assert_eq!(user.accounts().await.len(), 2);
}

#[tokio::test]
async fn import_refuses_a_bad_token_or_another_account() {
    let user = User::new().await;
    let bad = user
        .agm_with_stdin(
            &["accounts", "import", "--refresh-token", "-"],
            "1//0g-not-a-token\n",
        )
        .await;
    let err = user_error(&bad);
    assert!(err.contains("not imported"), "{err}");
    assert!(err.contains("Google refused the refresh token"), "{err}");
    assert!(err.contains("expired or revoked"), "the reason: {err}");
    assert!(err.contains("nothing was saved"), "{err}");
    assert!(
        !err.contains("1//0g-not-a-token"),
        "no token in errors: {err}"
    );

    let other = user
        .agm_with_stdin(
            &[
                "accounts",
                "import",
                "--refresh-token",
                "-",
                "--email",
                "bob@demo.agm",
            ],
            "demo-refresh-alice\n",
        )
        .await;
    let err = user_error(&other);
    assert!(
        err.contains("belongs to alice@demo.agm, not bob@demo.agm"),
        "{err}"
    );
    assert!(user.accounts().await.is_empty(), "nothing half-saved");

    let usage = user.agm(&["accounts", "import"]).await;
    assert_eq!(usage.status.code(), Some(2));
    let usage = user
        .agm(&["accounts", "import", "--file", "x.json", "--email", "a@b"])
        .await;
    assert_eq!(
        usage.status.code(),
        Some(2),
        "--email goes with --refresh-token"
    );
    assert!(stderr(&usage).contains("--email"), "{}", stderr(&usage));
}

#[tokio::test]
async fn import_a_gemini_cli_creds_file() {
    let user = User::new().await;
    let path = user.home.path().join("oauth_creds.json");
    std::fs::write(
        &path,
        json!({
            "access_token": "ya29.stale", "refresh_token": "demo-refresh-bob",
            "scope": "https://www.googleapis.com/auth/cloud-platform openid",
            "token_type": "Bearer", "id_token": "a.b.c", "expiry_date": 1_700_000_000_000_u64,
        })
        .to_string(),
    )
    .unwrap();
    let out = user
        .agm(&["accounts", "import", "--file", path.to_str().unwrap()])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "imported bob@demo.agm (project demo-project-bob, tier free-tier)\n"
    );
}

#[tokio::test]
async fn import_antigravity_manager_files() {
    let user = User::new().await;
    let am = |email: &str, refresh: &str, disabled: bool| {
        json!({
            "id": format!("id-{email}"), "email": email, "name": null,
            "token": {
                "access_token": "ya29.old", "refresh_token": refresh, "expires_in": 3599,
                "expiry_timestamp": 1_700_000_000, "token_type": "Bearer", "email": email,
                "project_id": "stale-project", "is_gcp_tos": true,
            },
            "quota": null, "disabled": disabled,
            "disabled_reason": if disabled { json!("turned off in AM") } else { Value::Null },
            "created_at": 1_700_000_000, "last_used": 1_700_000_000,
        })
    };
    // One account per file.
    let single = user.home.path().join("alice.json");
    std::fs::write(
        &single,
        am("alice@demo.agm", "demo-refresh-alice", false).to_string(),
    )
    .unwrap();
    let out = user
        .agm(&["accounts", "import", "--file", single.to_str().unwrap()])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "imported alice@demo.agm (project demo-project-alice, tier g1-pro-tier)\n",
        "the project comes from Google, not the file"
    );

    // A list: a disabled one, a dead token, one whose token is someone else's, and an update.
    let list = user.home.path().join("accounts.json");
    std::fs::write(
        &list,
        json!([
            am("bob@demo.agm", "demo-refresh-bob", true),
            am("dave@demo.agm", "dead-token", false),
            am("erin@demo.agm", "demo-refresh-carol", false),
            am("alice@demo.agm", "demo-refresh-alice", false),
        ])
        .to_string(),
    )
    .unwrap();
    let out = user
        .agm(&["accounts", "import", "--file", list.to_str().unwrap()])
        .await;
    let err = user_error(&out);
    assert!(err.contains("2 of 4 accounts refused"), "{err}");
    let report = stdout(&out);
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 4, "{report}");
    assert!(lines[0].starts_with("imported bob@demo.agm"), "{report}");
    assert!(lines[0].contains("disabled (turned off in AM)"), "{report}");
    assert!(lines[1].starts_with("refused dave@demo.agm: Google refused the refresh token"));
    assert!(
        lines[2].starts_with("refused erin@demo.agm: the token belongs to carol@demo.agm"),
        "{report}"
    );
    assert!(lines[3].starts_with("updated alice@demo.agm"), "{report}");

    let emails: Vec<String> = user
        .accounts()
        .await
        .iter()
        .map(|a| a["email"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(emails, ["alice@demo.agm", "bob@demo.agm"]);
    let bob = user.account("bob@demo.agm").await;
    assert_eq!(bob["state"], "disabled");
    assert_eq!(bob["reason"], "turned off in AM");
}

#[tokio::test]
async fn export_then_import_elsewhere() {
    let user = User::new().await;
    for token in ["demo-refresh-alice", "demo-refresh-bob"] {
        let out = user
            .agm(&["accounts", "import", "--refresh-token", token])
            .await;
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = user
        .agm(&[
            "accounts",
            "disable",
            "bob@demo.agm",
            "--reason",
            "on holiday",
        ])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));

    let path = user.home.path().join("export.json");
    let out = user
        .agm(&["accounts", "export", "--file", path.to_str().unwrap()])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("warning"), "{}", stderr(&out));
    assert!(stderr(&out).contains("refresh token"));
    assert!(stdout(&out).contains("exported 2 accounts"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the export is private");
    }
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(file["version"], 1);
    assert_eq!(file["accounts"][0]["email"], "alice@demo.agm");
    assert_eq!(file["accounts"][0]["refresh_token"], "demo-refresh-alice");
    assert_eq!(file["accounts"][0]["project_id"], "demo-project-alice");
    assert_eq!(file["accounts"][1]["state"], "disabled");
    assert_eq!(file["accounts"][1]["reason"], "on holiday");

    // To stdout: the same JSON.
    let printed = user.agm(&["accounts", "export"]).await;
    assert!(printed.status.success());
    let printed: Value = serde_json::from_str(&stdout(&printed)).unwrap();
    assert_eq!(printed["accounts"], file["accounts"]);

    // Another machine.
    let other = User::new().await;
    let out = other
        .agm(&["accounts", "import", "--file", path.to_str().unwrap()])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let report = stdout(&out);
    assert!(
        report.starts_with("imported alice@demo.agm (project demo-project-alice"),
        "{report}"
    );
    assert!(report.contains("imported bob@demo.agm"), "{report}");
    let bob = other.account("bob@demo.agm").await;
    assert_eq!(bob["state"], "disabled");
    assert_eq!(bob["reason"], "on holiday");
    assert_eq!(other.account("alice@demo.agm").await["state"], "active");

    // Importing it again only updates.
    let again = other
        .agm(&["accounts", "import", "--file", path.to_str().unwrap()])
        .await;
    assert!(again.status.success());
    assert_eq!(
        stdout(&again)
            .lines()
            .filter(|l| l.starts_with("updated "))
            .count(),
        2
    );
    assert_eq!(other.accounts().await.len(), 2);
}

#[tokio::test]
async fn list_never_shows_a_token() {
    let user = User::new().await;
    let empty = user.agm(&["accounts", "list"]).await;
    assert!(stdout(&empty).contains("no accounts yet"));
    for token in ["demo-refresh-alice", "demo-refresh-carol"] {
        let out = user
            .agm(&["accounts", "import", "--refresh-token", token])
            .await;
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let table = user.agm(&["accounts", "list"]).await;
    let json = user.agm(&["accounts", "list", "--json"]).await;
    for out in [&table, &json] {
        assert!(out.status.success(), "{}", stderr(out));
        for text in [stdout(out), stderr(out)] {
            assert!(!text.contains("demo-refresh"), "{text}");
            assert!(!text.contains("ya29."), "{text}");
        }
    }
    let text = stdout(&table);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for header in ["ID", "EMAIL", "POOL", "TIER", "PROJECT", "STATE"] {
        assert!(lines[0].contains(header), "{text}");
    }
    assert!(lines[1].contains("alice@demo.agm") && lines[1].contains("demo-project-alice"));
    assert!(lines[1].contains(" active "), "{text}");
    assert!(lines[2].contains("carol@demo.agm") && lines[2].contains("free-tier"));
    let listed: Value = serde_json::from_str(&stdout(&json)).unwrap();
    let keys: Vec<&String> = listed[0].as_object().unwrap().keys().collect();
    for key in keys {
        assert!(!key.contains("token"), "{key}");
    }
}

#[tokio::test]
async fn enable_disable_and_remove_by_id_or_email() {
    let user = User::new().await;
    for token in ["demo-refresh-alice", "demo-refresh-bob"] {
        assert!(
            user.agm(&["accounts", "import", "--refresh-token", token])
                .await
                .status
                .success()
        );
    }
    let alice_id = user.account("alice@demo.agm").await["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let out = user
        .agm(&[
            "accounts",
            "disable",
            "Alice@Demo.agm",
            "--reason",
            "testing",
        ])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("disabled alice@demo.agm ({alice_id})\n")
    );
    let listed = user.agm(&["accounts", "list"]).await;
    assert!(
        stdout(&listed).contains("disabled: testing"),
        "{}",
        stdout(&listed)
    );

    let out = user.agm(&["accounts", "enable", &alice_id]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("enabled alice@demo.agm ({alice_id})\n")
    );
    assert_eq!(user.account("alice@demo.agm").await["state"], "active");

    let out = user.agm(&["accounts", "disable", &alice_id]).await;
    assert!(out.status.success());
    assert_eq!(
        user.account("alice@demo.agm").await["reason"],
        "disabled by the user"
    );
    let out = user.agm(&["accounts", "enable", "alice@demo.agm"]).await;
    assert!(out.status.success());

    let out = user.agm(&["accounts", "remove", &alice_id]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("removed alice@demo.agm ({alice_id})\n")
    );
    let out = user.agm(&["accounts", "remove", "bob@demo.agm"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(user.accounts().await.is_empty());

    for command in ["remove", "enable", "disable"] {
        let out = user.agm(&["accounts", command, "nobody@demo.agm"]).await;
        let err = user_error(&out);
        assert!(err.contains("nobody@demo.agm"), "{err}");
        assert!(err.contains("agm accounts list"), "{err}");
    }
}

#[tokio::test]
async fn keys_create_list_revoke() {
    let user = User::new().await;
    let empty = user.agm(&["keys", "list"]).await;
    assert!(stdout(&empty).contains("no client keys"));

    let out = user.agm(&["keys", "create", "--name", "laptop"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let secret = stdout(&out).trim().to_owned();
    assert!(secret.starts_with("agm-") && secret.len() == 44, "{secret}");
    assert!(stderr(&out).contains("only time"), "{}", stderr(&out));

    let out = user.agm(&["keys", "create", "--json"]).await;
    assert!(out.status.success());
    let second: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let second_secret = second["secret"].as_str().unwrap().to_owned();
    assert!(second_secret.starts_with(second["prefix"].as_str().unwrap()));

    let listed = user.agm(&["keys", "list", "--json"]).await;
    let listed: Value = serde_json::from_str(&stdout(&listed)).unwrap();
    let laptop = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "laptop")
        .unwrap()
        .clone();
    assert_eq!(laptop["prefix"], secret[..10]);
    assert_eq!(laptop["last_used_at"], Value::Null);
    assert_eq!(laptop["revoked_at"], Value::Null);
    let id = laptop["id"].as_str().unwrap().to_owned();

    let table = user.agm(&["keys", "list"]).await;
    let text = stdout(&table);
    for header in ["ID", "NAME", "PREFIX", "CREATED", "LAST USED", "REVOKED"] {
        assert!(text.contains(header), "{text}");
    }
    assert!(text.contains("laptop") && text.contains("never"), "{text}");
    assert!(!text.contains(&secret) && !text.contains(&second_secret));

    let out = user.agm(&["keys", "revoke", &id]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("revoked {id}\n"));
    let listed = user.agm(&["keys", "list", "--json"]).await;
    let listed: Value = serde_json::from_str(&stdout(&listed)).unwrap();
    let laptop = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id.as_str())
        .unwrap();
    assert!(laptop["revoked_at"].is_string());

    let again = user.agm(&["keys", "revoke", &id]).await;
    let err = user_error(&again);
    assert!(err.contains("agm keys list"), "{err}");

    // The store keeps hashes, never the secrets.
    let bytes = user.data_dir_bytes();
    assert!(!bytes.is_empty());
    assert!(
        !contains(&bytes, &secret),
        "the secret is not stored in clear"
    );
    assert!(!contains(&bytes, &second_secret));
}

#[tokio::test]
async fn help_names_the_new_commands() {
    let user = User::new().await;
    let help = user.agm(&["--help"]).await;
    for word in ["accounts", "keys"] {
        assert!(stdout(&help).contains(word), "{word}");
    }
    let help = user.agm(&["accounts", "--help"]).await;
    for word in [
        "add", "import", "export", "list", "remove", "enable", "disable",
    ] {
        assert!(stdout(&help).contains(word), "{word}");
    }
    assert!(data_dir_untouched(&user.data_dir));
}

fn data_dir_untouched(dir: &Path) -> bool {
    !dir.exists()
}

async fn import_demo_accounts(user: &User) {
    for token in ["demo-refresh-alice", "demo-refresh-bob"] {
        let out = user
            .agm(&["accounts", "import", "--refresh-token", token])
            .await;
        assert!(out.status.success(), "{}", stderr(&out));
    }
}

#[tokio::test]
async fn quota_is_fetched_stored_and_printed() {
    let user = User::new().await;
    import_demo_accounts(&user).await;
    user.sim.set_quota("alice@demo.agm", "gemini-3-flash", 0.25);
    let out = user.agm(&["accounts", "quota", "--json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let all: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let alice = all
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["email"] == "alice@demo.agm")
        .unwrap();
    let flash = alice["quota"]["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == "gemini-3-flash")
        .unwrap();
    assert_eq!(flash["remaining_fraction"], 0.25);
    assert!(alice["quota"]["fetched_at"].as_str().is_some());

    let table = user.agm(&["accounts", "quota", "alice@demo.agm"]).await;
    assert!(table.status.success(), "{}", stderr(&table));
    let text = stdout(&table);
    assert!(text.starts_with("ACCOUNT"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("gemini-3-flash") && l.contains("25%")),
        "{text}"
    );
    assert!(
        !text.contains("bob@demo.agm"),
        "one account asked for: {text}"
    );

    let missing = user.agm(&["accounts", "quota", "nobody@demo.agm"]).await;
    assert_eq!(missing.status.code(), Some(1));

    // `accounts list` shows what was stored, without asking Google again.
    let asked = user.sim.count(SimMethod::FetchAvailableModels);
    let list = user.agm(&["accounts", "list"]).await;
    let text = stdout(&list);
    assert!(
        text.lines()
            .any(|l| l.contains("alice@demo.agm") && l.contains("25% (gemini-3-flash)")),
        "{text}"
    );
    let listed: Value =
        serde_json::from_str(&stdout(&user.agm(&["accounts", "list", "--json"]).await)).unwrap();
    let alice = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["email"] == "alice@demo.agm")
        .unwrap();
    assert!(
        alice["quota"]["models"]
            .as_array()
            .is_some_and(|m| !m.is_empty())
    );
    assert_eq!(user.sim.count(SimMethod::FetchAvailableModels), asked);
}

#[tokio::test]
async fn models_lists_what_the_pool_is_offered_and_the_names_that_resolve_to_it() {
    let user = User::new().await;
    import_demo_accounts(&user).await;
    // Before any model list is known: the built-in table, with a note saying so.
    let before = user.agm(&["models"]).await;
    assert!(before.status.success(), "{}", stderr(&before));
    assert!(
        stderr(&before).contains("agm accounts quota"),
        "{}",
        stderr(&before)
    );

    assert!(user.agm(&["accounts", "quota"]).await.status.success());
    let out = user.agm(&["models", "--json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let models: Value = serde_json::from_str(&stdout(&out)).unwrap();
    let models = models.as_array().unwrap();
    let pro = models
        .iter()
        .find(|m| m["id"] == "gemini-3-pro-high")
        .unwrap_or_else(|| panic!("{models:?}"));
    assert_eq!(pro["accounts"].as_array().unwrap().len(), 2, "{pro}");
    assert!(
        pro["aliases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "gemini-3.1-pro-preview"),
        "Gemini CLI's default name resolves to it: {pro}"
    );
    let table = stdout(&user.agm(&["models"]).await);
    assert!(table.starts_with("MODEL"), "{table}");
    assert!(
        table.lines().any(
            |l| l.starts_with("claude-sonnet-4-5 ") && l.contains("claude-sonnet-4-5-20250929")
        ),
        "{table}"
    );
}

#[tokio::test]
async fn doctor_reports_each_check() {
    let user = User::new().await;
    import_demo_accounts(&user).await;
    let out = user.agm(&["doctor"]).await;
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    for name in [
        "config",
        "data dir",
        "secrets",
        "accounts",
        "code assist",
        "oauth",
        "port",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("ok") && l.contains(name)),
            "{name} ok in:\n{text}"
        );
    }
    assert!(text.contains("2 of 2 active"), "{text}");

    let dead = user
        .command(&["doctor"])
        .env(
            "AGM_GOOGLE__CODE_ASSIST_ENDPOINTS",
            "[\"http://127.0.0.1:9\"]",
        )
        .output()
        .await
        .unwrap();
    assert_eq!(dead.status.code(), Some(1));
    assert!(
        stdout(&dead)
            .lines()
            .any(|l| l.starts_with("FAIL") && l.contains("127.0.0.1:9"))
    );
    assert_eq!(stderr(&dead).lines().count(), 1, "{}", stderr(&dead));
}

#[tokio::test]
async fn validation_gate_go_and_no_go() {
    let user = User::new().await;
    import_demo_accounts(&user).await;
    let report = user.home.path().join("gate.html");
    let out = user
        .agm(&[
            "validate",
            "project-id",
            "--accounts",
            "2",
            "--duration",
            "300ms",
            "--interval",
            "50ms",
            "--report",
            report.to_str().unwrap(),
        ])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("GO: "), "{text}");
    assert!(text.contains("latency p50"), "{text}");
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("<svg") && html.contains("alice@demo.agm"));

    user.sim.script(
        agm_sim::Fault::status(SimMethod::LoadCodeAssist, 404, "NOT_FOUND", "gone").always(),
    );
    let markdown = user.home.path().join("gate.md");
    let out = user
        .agm(&[
            "validate",
            "project-id",
            "--duration",
            "100ms",
            "--interval",
            "20ms",
            "--report",
            markdown.to_str().unwrap(),
        ])
        .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("NO-GO"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("only 2 active"),
        "asked for 3: {}",
        stderr(&out)
    );
    let md = std::fs::read_to_string(&markdown).unwrap();
    assert!(md.starts_with("# Project-ID validation gate: NO-GO"));
    assert!(md.contains("| not_found |"), "{md}");
}

/// `agm audit --kind KIND --json`, oldest first.
async fn audit_of(user: &User, kind: &str) -> Vec<Value> {
    let out = user.agm(&["audit", "--kind", kind, "--json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let mut rows: Vec<Value> = serde_json::from_str(&stdout(&out)).unwrap();
    rows.reverse();
    rows
}

#[tokio::test]
async fn revoking_the_last_key_warns_and_purge_deletes_revoked_keys() {
    let user = User::new().await;
    let mut keys = Vec::new();
    for name in ["laptop", "ci"] {
        let out = user
            .agm(&["keys", "create", "--name", name, "--json"])
            .await;
        assert!(out.status.success(), "{}", stderr(&out));
        keys.push(serde_json::from_str::<Value>(&stdout(&out)).unwrap());
    }
    let id = |i: usize| keys[i]["id"].as_str().unwrap().to_owned();

    let first = user.agm(&["keys", "revoke", &id(0)]).await;
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(stderr(&first), "", "another key is still active");

    let last = user.agm(&["keys", "revoke", &id(1)]).await;
    assert!(last.status.success(), "{}", stderr(&last));
    assert_eq!(stdout(&last), format!("revoked {}\n", id(1)));
    let warning = stderr(&last);
    assert_eq!(warning.lines().count(), 1, "{warning}");
    for words in [
        "agm: warning: that was the last active client key",
        "refuses every client until you create one with `agm keys create`",
        "agm keys purge",
    ] {
        assert!(warning.contains(words), "{words:?} in {warning}");
    }

    let purge = user.agm(&["keys", "purge"]).await;
    assert!(purge.status.success(), "{}", stderr(&purge));
    assert_eq!(stdout(&purge), "purged 2 revoked keys\n");
    assert!(
        stderr(&purge).contains("a gateway on a loopback address now serves without keys again"),
        "{}",
        stderr(&purge)
    );
    assert!(stdout(&user.agm(&["keys", "list"]).await).contains("no client keys"));
    let again = user.agm(&["keys", "purge"]).await;
    assert_eq!(stdout(&again), "purged 0 revoked keys\n");

    // A live key survives a purge, and nothing is said about keyless serving.
    let out = user.agm(&["keys", "create", "--name", "desk"]).await;
    let desk_secret = stdout(&out).trim().to_owned();
    let purge = user.agm(&["keys", "purge"]).await;
    assert_eq!(stdout(&purge), "purged 0 revoked keys\n");
    assert_eq!(stderr(&purge), "");

    // Every change is in the audit log, by key id, with no secret.
    let rows = audit_of(&user, "key").await;
    let events: Vec<(String, String)> = rows
        .iter()
        .map(|r| {
            (
                r["subject"].as_str().unwrap().to_owned(),
                r["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect = [
        (id(0), "created: name \"laptop\", prefix agm-"),
        (id(1), "created: name \"ci\", prefix agm-"),
        (id(0), "revoked: name \"laptop\""),
        (id(1), "revoked: name \"ci\""),
    ];
    for (i, (subject, detail)) in expect.iter().enumerate() {
        assert_eq!(&events[i].0, subject, "{events:?}");
        assert!(events[i].1.starts_with(detail), "{events:?}");
    }
    let purged: Vec<&String> = events[4..6].iter().map(|(s, _)| s).collect();
    assert!(
        purged.contains(&&id(0)) && purged.contains(&&id(1)),
        "{events:?}"
    );
    assert!(events[4].1.starts_with("purged"), "{events:?}");
    assert_eq!(events.len(), 7, "and the desk key's creation: {events:?}");
    for (_, detail) in &events {
        for key in &keys {
            assert!(
                !detail.contains(key["secret"].as_str().unwrap()),
                "{detail}"
            );
        }
        assert!(!detail.contains(&desk_secret), "{detail}");
    }
    let table = user.agm(&["audit"]).await;
    assert!(
        stdout(&table).contains("revoked: name \"ci\""),
        "{}",
        stdout(&table)
    );
}

#[tokio::test]
async fn account_changes_are_audited() {
    let user = User::new().await;
    let out = user
        .agm_with_stdin(
            &["accounts", "import", "--refresh-token", "-"],
            "demo-refresh-alice\n",
        )
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), "", "no warning for a token on stdin");
    let path = user.home.path().join("bob.json");
    std::fs::write(
        &path,
        json!([{"email": "bob@demo.agm", "refresh_token": "demo-refresh-bob"}]).to_string(),
    )
    .unwrap();
    let out = user
        .agm(&["accounts", "import", "--file", path.to_str().unwrap()])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    for args in [
        &[
            "accounts",
            "disable",
            "alice@demo.agm",
            "--reason",
            "on holiday",
        ][..],
        &["accounts", "enable", "alice@demo.agm"],
        &["accounts", "remove", "bob@demo.agm"],
    ] {
        let out = user.agm(args).await;
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    let rows = audit_of(&user, "account").await;
    let events: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["subject"].as_str().unwrap(),
                r["detail"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        events,
        [
            "alice@demo.agm imported with `agm accounts import` (pool antigravity)",
            "bob@demo.agm imported with `agm accounts import` (pool antigravity)",
            "alice@demo.agm disabled with `agm accounts disable`: on holiday",
            "alice@demo.agm enabled with `agm accounts enable`",
            "bob@demo.agm removed with `agm accounts remove`",
        ]
    );
    for row in &rows {
        assert!(!row.to_string().contains("demo-refresh"), "{row}");
    }
}

#[tokio::test]
async fn export_never_writes_through_a_symbolic_link() {
    let user = User::new().await;
    import_demo_accounts(&user).await;
    let victim = user.home.path().join("victim.txt");
    std::fs::write(&victim, "keep me\n").unwrap();
    let link = user.home.path().join("export.json");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let dangling = user.home.path().join("dangling.json");
    let nowhere = user.home.path().join("created-through-a-link.json");
    std::os::unix::fs::symlink(&nowhere, &dangling).unwrap();

    for path in [&link, &dangling] {
        let out = user
            .agm(&["accounts", "export", "--file", path.to_str().unwrap()])
            .await;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(1), "{err}");
        let last = err.lines().last().unwrap();
        assert_eq!(
            last,
            format!(
                "agm: {} is a symbolic link: agm does not write an export through one; give the path of a new or regular file",
                path.display()
            )
        );
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me\n");
    assert!(!nowhere.exists());

    // An existing regular file is replaced by a new private one; no temp file is left.
    let plain = user.home.path().join("plain.json");
    std::fs::write(&plain, "old").unwrap();
    std::fs::set_permissions(&plain, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let out = user
        .agm(&["accounts", "export", "--file", plain.to_str().unwrap()])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&plain).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&plain).unwrap()).unwrap();
    assert_eq!(file["accounts"].as_array().unwrap().len(), 2);
    let names: Vec<String> = std::fs::read_dir(user.home.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
}

#[tokio::test]
async fn import_reads_only_regular_files_of_bounded_size() {
    let user = User::new().await;
    let fifo = user.home.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let dir = user.home.path().to_path_buf();
    for path in [Path::new("/dev/zero"), fifo.as_path(), dir.as_path()] {
        let out = tokio::time::timeout(
            Duration::from_secs(20),
            user.agm(&["accounts", "import", "--file", path.to_str().unwrap()]),
        )
        .await
        .expect("agm does not wait on the file");
        let err = user_error(&out);
        assert_eq!(
            err.trim_end(),
            format!(
                "agm: cannot import {}: it is not a regular file (a device, a FIFO or a directory); give the path of a JSON file",
                path.display()
            )
        );
    }
    let huge = user.home.path().join("huge.json");
    let file = std::fs::File::create(&huge).unwrap();
    file.set_len(16 * 1024 * 1024 + 1).unwrap();
    let out = user
        .agm(&["accounts", "import", "--file", huge.to_str().unwrap()])
        .await;
    let err = user_error(&out);
    assert!(err.contains("larger than 16 MiB"), "{err}");
    assert!(user.accounts().await.is_empty());
}

#[tokio::test]
async fn control_characters_from_a_file_are_escaped_on_the_terminal() {
    let user = User::new().await;
    let path = user.home.path().join("hostile.json");
    std::fs::write(
        &path,
        json!([
            {"email": "eve\u{1b}]0;pwned\u{7}\r@x.test", "refresh_token": "demo-refresh-alice"},
            {"email": "mallory\n@x.test\u{9b}2J"},
        ])
        .to_string(),
    )
    .unwrap();
    let out = user
        .agm(&["accounts", "import", "--file", path.to_str().unwrap()])
        .await;
    assert_eq!(out.status.code(), Some(1));
    for text in [stdout(&out), stderr(&out)] {
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
    }
    let report = stdout(&out);
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 2, "{report}");
    assert!(
        lines[0].starts_with(
            "refused eve\\x1b]0;pwned\\x07\\r@x.test: the token belongs to alice@demo.agm"
        ),
        "{report}"
    );
    assert_eq!(
        lines[1],
        "refused mallory\\n@x.test\\u{9b}2J: it has no refresh_token"
    );
}
