#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! `agm ide status | switch | restore` against a fixture laid out like the Antigravity
//! IDE's user data dir (docs/PROTOCOL.md, Part C): `User/globalStorage/state.vscdb`
//! (VS Code's `ItemTable`, with the sign-in keys, device identifiers and settings) and
//! `storage.json`. The real binary runs in a clean environment against the simulated
//! Google, always with `--ide-dir` or `AGM_IDE_DIR` at a temp dir: never the user's IDE.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use agm_sim::{RunningSim, Sim};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use common::{stderr, stdout};
use serde_json::Value;
use tokio::process::Command;

/// The rows of `ItemTable`: key → value bytes.
type Rows = BTreeMap<String, Vec<u8>>;

const DEVICE_ROW: &str = "storage.serviceMachineId";
const DEVICE_ID: &str = "6f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d5e";
const STORAGE_JSON: &str = r#"{
  "telemetry.machineId": "a3f1c0de5b7e4d2c9f8a6b4c2d0e1f3a5b7c9d1e3f5a7b9c1d3e5f7a9b1c3d5e",
  "telemetry.macMachineId": "0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d",
  "telemetry.devDeviceId": "6f1c2d3e-4b5a-4c6d-8e7f-901a2b3c4d5e",
  "telemetry.sqmId": "{5A6B7C8D-9E0F-4A1B-8C2D-3E4F5A6B7C8D}"
}
"#;

struct User {
    home: tempfile::TempDir,
    data_dir: PathBuf,
    sim: RunningSim,
    /// The IDE's user data dir (the fixture).
    ide: PathBuf,
}

impl User {
    async fn new() -> User {
        let sim = Sim::demo().start().await.unwrap();
        let home = tempfile::tempdir().unwrap();
        let data_dir = home.path().join("data");
        let ide = home.path().join("Antigravity");
        make_fixture(&ide);
        let user = User {
            home,
            data_dir,
            sim,
            ide,
        };
        for token in ["demo-refresh-alice", "demo-refresh-bob"] {
            let out = user
                .agm(&["accounts", "import", "--refresh-token", token])
                .await;
            assert!(out.status.success(), "{}", stderr(&out));
        }
        user
    }

    fn command(&self, args: &[&str]) -> Command {
        let bin = Path::new(env!("CARGO_BIN_EXE_agm"));
        let mut cmd = common::isolated(bin, self.home.path(), &self.data_dir);
        common::at_sim(&mut cmd, &self.sim.base_url());
        cmd.args(args);
        cmd
    }

    async fn agm(&self, args: &[&str]) -> Output {
        self.command(args).output().await.unwrap()
    }

    /// `agm ide ARGS --ide-dir <the fixture>`.
    async fn ide(&self, args: &[&str]) -> Output {
        let dir = self.ide.display().to_string();
        let mut all = vec!["ide"];
        all.extend_from_slice(args);
        all.extend(["--ide-dir", &dir]);
        let out = self.agm(&all).await;
        no_secret(&out);
        out
    }

    async fn status(&self) -> Value {
        let out = self.ide(&["status", "--json"]).await;
        assert!(out.status.success(), "{}", stderr(&out));
        serde_json::from_str(&stdout(&out)).unwrap()
    }

    fn global(&self) -> PathBuf {
        self.ide.join("User").join("globalStorage")
    }

    fn db(&self) -> PathBuf {
        self.global().join("state.vscdb")
    }

    fn backup(&self) -> PathBuf {
        self.global().join("state.vscdb.agm-backup")
    }

    fn rows(&self) -> Rows {
        rows(&self.db())
    }
}

/// Output never carries a token.
fn no_secret(out: &Output) {
    for text in [stdout(out), stderr(out)] {
        for secret in ["demo-refresh", "ya29", "1//orig"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
    }
}

/// A failed command: exit 1 and one line on stderr, which is returned.
fn user_error(o: &Output) -> String {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "exit 1: {err} / {}", stdout(o));
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    err
}

// --- a little protobuf, written here from the format's description -----------------

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn field(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
    varint(out, number << 3 | 2);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A topic entry `{1: key, 2: {1: base64(payload)}}`, as field 1 of a topic.
fn topic_entry(key: &str, payload: &[u8]) -> Vec<u8> {
    let mut row = Vec::new();
    field(&mut row, 1, BASE64.encode(payload).as_bytes());
    let mut entry = Vec::new();
    field(&mut entry, 1, key.as_bytes());
    field(&mut entry, 2, &row);
    let mut out = Vec::new();
    field(&mut out, 1, &entry);
    out
}

/// Field number → values; varints as their decimal text, the rest as bytes.
fn decode(mut buf: &[u8]) -> BTreeMap<u64, Vec<Vec<u8>>> {
    fn read(buf: &mut &[u8]) -> u64 {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = buf[0];
            *buf = &buf[1..];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
        }
        v
    }
    let mut out: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
    while !buf.is_empty() {
        let tag = read(&mut buf);
        let value = match tag & 7 {
            0 => read(&mut buf).to_string().into_bytes(),
            2 => {
                let len = read(&mut buf) as usize;
                let (value, rest) = buf.split_at(len);
                buf = rest;
                value.to_vec()
            }
            other => panic!("wire type {other}"),
        };
        out.entry(tag >> 3).or_default().push(value);
    }
    out
}

/// The topic's entries: sentinel key → (payload, the entry's bytes).
fn topic(value: &[u8]) -> BTreeMap<String, (Vec<u8>, Vec<u8>)> {
    let bytes = BASE64.decode(value).unwrap();
    let mut out = BTreeMap::new();
    for entry in decode(&bytes).remove(&1).unwrap_or_default() {
        let fields = decode(&entry);
        let key = String::from_utf8(fields[&1][0].clone()).unwrap();
        let row = decode(&fields[&2][0]);
        let payload = BASE64.decode(&row[&1][0]).unwrap();
        out.insert(key, (payload, entry));
    }
    out
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

// --- the fixture -------------------------------------------------------------------

/// The original sign-in: orig@example.com, in every place IDEs have kept it.
fn original_rows() -> Vec<(String, Vec<u8>)> {
    let mut token = Vec::new();
    field(&mut token, 1, b"ya29.orig-access");
    field(&mut token, 2, b"Bearer");
    field(&mut token, 3, b"1//orig-refresh");
    let mut oauth = topic_entry(
        "authStateWithContextSentinelKey",
        br#"{"state":"signedIn"}"#,
    );
    oauth.extend(topic_entry("oauthTokenInfoSentinelKey", &token));
    let mut status = Vec::new();
    field(&mut status, 3, b"Orig Inal");
    field(&mut status, 7, b"orig@example.com");
    let mut legacy = Vec::new();
    field(&mut legacy, 1, b"user-123");
    field(&mut legacy, 2, b"orig@example.com");
    field(&mut legacy, 6, &token);
    let mut project = Vec::new();
    field(&mut project, 3, b"orig-gcp-project");
    vec![
        (DEVICE_ROW.into(), DEVICE_ID.into()),
        (
            "telemetry.firstSessionDate".into(),
            b"Mon, 01 Jun 2026 08:00:00 GMT".to_vec(),
        ),
        (
            "workbench.activity.pinnedViewlets2".into(),
            br#"[{"id":"workbench.view.explorer","pinned":true}]"#.to_vec(),
        ),
        (
            "antigravityUnifiedStateSync.oauthToken".into(),
            BASE64.encode(&oauth).into_bytes(),
        ),
        (
            "antigravityUnifiedStateSync.userStatus".into(),
            BASE64
                .encode(topic_entry("userStatusSentinelKey", &status))
                .into_bytes(),
        ),
        (
            "antigravityUnifiedStateSync.enterprisePreferences".into(),
            BASE64
                .encode(topic_entry("enterpriseGcpProjectId", &project))
                .into_bytes(),
        ),
        (
            "jetskiStateSync.agentManagerInitState".into(),
            BASE64.encode(&legacy).into_bytes(),
        ),
        (
            "antigravityAuthStatus".into(),
            br#"{"name":"Orig Inal","email":"orig@example.com","apiKey":"ya29.orig-access"}"#
                .to_vec(),
        ),
        ("antigravityOnboarding".into(), b"true".to_vec()),
    ]
}

fn make_fixture(ide: &Path) {
    let global = ide.join("User").join("globalStorage");
    std::fs::create_dir_all(&global).unwrap();
    std::fs::write(global.join("storage.json"), STORAGE_JSON).unwrap();
    let conn = rusqlite::Connection::open(global.join("state.vscdb")).unwrap();
    // VS Code's schema.
    conn.execute(
        "CREATE TABLE ItemTable (key TEXT UNIQUE ON CONFLICT REPLACE, value BLOB)",
        [],
    )
    .unwrap();
    for (key, value) in original_rows() {
        // VS Code writes text; a blob row must come through too.
        if key == "telemetry.firstSessionDate" {
            conn.execute(
                "INSERT INTO ItemTable VALUES (?1, ?2)",
                rusqlite::params![key, value],
            )
            .unwrap();
        } else {
            conn.execute(
                "INSERT INTO ItemTable VALUES (?1, ?2)",
                rusqlite::params![key, text(&value)],
            )
            .unwrap();
        }
    }
}

fn rows(db: &Path) -> Rows {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    let mut stmt = conn.prepare("SELECT key, value FROM ItemTable").unwrap();
    stmt.query_map([], |row| {
        let value = match row.get_ref(1)? {
            rusqlite::types::ValueRef::Text(t) | rusqlite::types::ValueRef::Blob(t) => t.to_vec(),
            other => panic!("{other:?}"),
        };
        Ok((row.get::<_, String>(0)?, value))
    })
    .unwrap()
    .map(Result::unwrap)
    .collect()
}

/// The account's id, from `agm accounts list --json`.
async fn account_id(user: &User, email: &str) -> String {
    let out = user.agm(&["accounts", "list", "--json"]).await;
    let list: Value = serde_json::from_str(&stdout(&out)).unwrap();
    list.as_array()
        .unwrap()
        .iter()
        .find(|a| a["email"] == email)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Checks that the store holds `email`'s sign-in in the IDE's format, and that every
/// row but the sign-in's is as the fixture had it.
fn assert_signed_in_as(rows: &Rows, email: &str, refresh: &str) {
    let oauth = topic(&rows["antigravityUnifiedStateSync.oauthToken"]);
    let (token, _) = &oauth["oauthTokenInfoSentinelKey"];
    let token = decode(token);
    assert!(!token[&1][0].is_empty(), "an access token");
    assert_eq!(text(&token[&2][0]), "Bearer");
    assert_eq!(text(&token[&3][0]), refresh);
    let expiry = decode(&token[&4][0]);
    let seconds: i64 = text(&expiry[&1][0]).parse().unwrap();
    assert!(
        seconds > time::OffsetDateTime::now_utc().unix_timestamp(),
        "expires later"
    );
    // The topic's other entry is kept byte for byte.
    let original = original_rows()
        .into_iter()
        .find(|(k, _)| k == "antigravityUnifiedStateSync.oauthToken")
        .unwrap()
        .1;
    assert_eq!(
        oauth["authStateWithContextSentinelKey"].1,
        topic(&original)["authStateWithContextSentinelKey"].1
    );

    let status = topic(&rows["antigravityUnifiedStateSync.userStatus"]);
    let status = decode(&status["userStatusSentinelKey"].0);
    assert_eq!(text(&status[&7][0]), email);
    assert_eq!(rows["antigravityOnboarding"], b"true");
    // What named the previous account is gone.
    for gone in [
        "jetskiStateSync.agentManagerInitState",
        "antigravityAuthStatus",
        "antigravityUnifiedStateSync.enterprisePreferences",
    ] {
        assert!(!rows.contains_key(gone), "{gone} is left");
    }
    // Every other row, the device identifier first, is byte-identical.
    let sign_in = [
        "antigravityUnifiedStateSync.oauthToken",
        "antigravityUnifiedStateSync.userStatus",
        "antigravityOnboarding",
    ];
    let others: Rows = rows
        .iter()
        .filter(|(k, _)| !sign_in.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let expected: Rows = original_rows()
        .into_iter()
        .filter(|(k, _)| !sign_in.contains(&k.as_str()))
        .filter(|(k, _)| {
            ![
                "jetskiStateSync.agentManagerInitState",
                "antigravityAuthStatus",
                "antigravityUnifiedStateSync.enterprisePreferences",
            ]
            .contains(&k.as_str())
        })
        .collect();
    assert_eq!(others, expected);
    assert_eq!(rows[DEVICE_ROW], DEVICE_ID.as_bytes());
}

#[tokio::test]
async fn switch_then_restore_brings_the_original_back_byte_for_byte() {
    let user = User::new().await;
    let original_file = std::fs::read(user.db()).unwrap();
    let original_rows = user.rows();

    let before = user.status().await;
    assert_eq!(before["signed_in"], true);
    assert_eq!(before["email"], "orig@example.com");
    assert_eq!(before["backup"], Value::Null);
    assert_eq!(before["running"], false);
    let text = user.ide(&["status"]).await;
    assert!(
        stdout(&text).contains("signed in as: orig@example.com"),
        "{}",
        stdout(&text)
    );
    assert!(stdout(&text).contains("backup: none"), "{}", stdout(&text));

    // By e-mail.
    let out = user.ide(&["switch", "alice@demo.agm"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(
        said.contains("signed the Antigravity IDE into alice@demo.agm"),
        "{said}"
    );
    assert!(said.contains("backed up the IDE's own sign-in"), "{said}");
    assert_signed_in_as(&user.rows(), "alice@demo.agm", "demo-refresh-alice");
    // `agm doctor` says so (the IDE found through AGM_IDE_DIR).
    let doctor = user
        .command(&["doctor"])
        .env("AGM_IDE_DIR", &user.ide)
        .output()
        .await
        .unwrap();
    let report = stdout(&doctor);
    let line = report
        .lines()
        .find(|l| l.contains("ide "))
        .unwrap_or_default();
    assert!(
        line.contains("signed into alice@demo.agm by `agm ide switch`")
            && line.contains("agm ide restore"),
        "{report}"
    );
    // The backup is the original file, readable by the user only.
    assert_eq!(std::fs::read(user.backup()).unwrap(), original_file);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(user.backup())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(user.global().join("state.vscdb.agm-backup.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["original_email"], "orig@example.com");
    // storage.json (the device identifiers) is not touched.
    assert_eq!(
        std::fs::read_to_string(user.global().join("storage.json")).unwrap(),
        STORAGE_JSON
    );

    let after = user.status().await;
    assert_eq!(after["email"], "alice@demo.agm");
    assert_eq!(after["backup"]["original_email"], "orig@example.com");

    // A second switch, by id, keeps the original backup.
    let bob = account_id(&user, "bob@demo.agm").await;
    let out = user.ide(&["switch", &bob]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("kept the backup"), "{}", stdout(&out));
    assert_signed_in_as(&user.rows(), "bob@demo.agm", "demo-refresh-bob");
    assert_eq!(std::fs::read(user.backup()).unwrap(), original_file);
    assert_eq!(user.status().await["email"], "bob@demo.agm");

    // Both switches are audited by e-mail, with no token.
    let audit = user.agm(&["audit", "--kind", "account", "--json"]).await;
    no_secret(&audit);
    let audit = stdout(&audit);
    for who in ["alice@demo.agm", "bob@demo.agm"] {
        assert!(audit.contains(who), "{who} in {audit}");
    }
    assert!(audit.contains("agm ide switch"), "{audit}");

    let out = user.ide(&["restore"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("orig@example.com"),
        "{}",
        stdout(&out)
    );
    assert_eq!(user.rows(), original_rows);
    assert_eq!(std::fs::read(user.db()).unwrap(), original_file);
    assert!(!user.backup().exists());
    assert!(!user.global().join("state.vscdb.agm-backup.json").exists());
    let restored = user.status().await;
    assert_eq!(restored["email"], "orig@example.com");
    assert_eq!(restored["backup"], Value::Null);
    let audit = stdout(&user.agm(&["audit", "--kind", "account"]).await);
    assert!(audit.contains("agm ide restore"), "{audit}");

    // After a restore the next switch backs up afresh.
    let out = user.ide(&["switch", "alice@demo.agm"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("backed up"), "{}", stdout(&out));
}

#[tokio::test]
async fn a_running_ide_is_never_touched() {
    let user = User::new().await;
    // Signed into alice first, so that there is a backup to refuse restoring.
    let out = user.ide(&["switch", "alice@demo.agm"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let file = std::fs::read(user.db()).unwrap();
    let backup = std::fs::read(user.backup()).unwrap();

    // A process named like the IDE: a copy of sleep under a name of this test's own,
    // which `AGM_IDE_PROCESS_NAMES` makes agm look for (the other tests run beside it).
    let fake = user.home.path().join("agmfakeide");
    std::fs::copy("/bin/sleep", &fake).unwrap();
    let mut ide = std::process::Command::new(&fake).arg("60").spawn().unwrap();
    let dir = user.ide.display().to_string();
    let run = |args: &[&str]| {
        let mut cmd = user.command(&["ide"]);
        cmd.args(args)
            .env("AGM_IDE_PROCESS_NAMES", "agmfakeide")
            .env("AGM_IDE_DIR", &dir);
        cmd
    };
    let status = run(&["status", "--json"]).output().await.unwrap();
    let status: Value = serde_json::from_str(&stdout(&status)).unwrap();
    assert_eq!(status["running"], true);
    for args in [&["switch", "bob@demo.agm"][..], &["restore"][..]] {
        let out = run(args).output().await.unwrap();
        let err = user_error(&out);
        assert!(
            err.contains("Antigravity is running: close it first"),
            "{err}"
        );
    }
    assert_eq!(std::fs::read(user.db()).unwrap(), file);
    assert_eq!(std::fs::read(user.backup()).unwrap(), backup);

    ide.kill().unwrap();
    ide.wait().unwrap();
    let status = run(&["status", "--json"]).output().await.unwrap();
    let status: Value = serde_json::from_str(&stdout(&status)).unwrap();
    assert_eq!(status["running"], false);
    assert!(run(&["restore"]).output().await.unwrap().status.success());
}

#[tokio::test]
async fn bad_input_is_one_actionable_line() {
    let user = User::new().await;
    let file = std::fs::read(user.db()).unwrap();

    // No IDE data there.
    let nowhere = user.home.path().join("no-ide");
    let out = user
        .agm(&["ide", "status", "--ide-dir", &nowhere.display().to_string()])
        .await;
    let err = user_error(&out);
    assert!(err.contains("no Antigravity IDE data at"), "{err}");
    assert!(err.contains("pass --ide-dir"), "{err}");
    // Nor at the OS's default places in this clean home.
    let err = user_error(&user.agm(&["ide", "status"]).await);
    assert!(err.contains(".config/Antigravity"), "{err}");

    // An account the pool does not have.
    let err = user_error(&user.ide(&["switch", "nobody@example.com"]).await);
    assert!(err.contains("no account nobody@example.com"), "{err}");
    assert!(err.contains("agm accounts list"), "{err}");

    // Restore with no backup.
    let err = user_error(&user.ide(&["restore"]).await);
    assert!(err.contains("no backup"), "{err}");
    assert!(err.contains("nothing to restore"), "{err}");
    assert_eq!(std::fs::read(user.db()).unwrap(), file, "nothing changed");
    assert!(!user.backup().exists());

    // A file that is not the IDE's store.
    let other = user.home.path().join("Other");
    let global = other.join("User").join("globalStorage");
    std::fs::create_dir_all(&global).unwrap();
    rusqlite::Connection::open(global.join("state.vscdb"))
        .unwrap()
        .execute("CREATE TABLE t (x)", [])
        .unwrap();
    let out = user
        .agm(&[
            "ide",
            "switch",
            "alice@demo.agm",
            "--ide-dir",
            &other.display().to_string(),
        ])
        .await;
    let err = user_error(&out);
    assert!(
        err.contains("is not an Antigravity IDE state store"),
        "{err}"
    );
    assert!(
        !global.join("state.vscdb.agm-backup").exists(),
        "no backup of a stranger"
    );

    // `AGM_IDE_DIR` stands for `--ide-dir`.
    let mut cmd = user.command(&["ide", "status", "--json"]);
    cmd.env("AGM_IDE_DIR", &user.ide);
    let out = cmd.output().await.unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let status: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(status["email"], "orig@example.com");
}

#[tokio::test]
async fn a_write_ahead_log_left_by_the_ide_is_in_the_backup() {
    let user = User::new().await;
    // The IDE quit with its last writes still in `state.vscdb-wal`: made here by copying
    // the files while a connection in WAL mode still holds a row there.
    let scratch = user.home.path().join("scratch.vscdb");
    std::fs::copy(user.db(), &scratch).unwrap();
    let conn = rusqlite::Connection::open(&scratch).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    conn.pragma_update(None, "wal_autocheckpoint", 0).unwrap();
    conn.execute(
        "INSERT INTO ItemTable VALUES ('workbench.lastWrite', 'only in the log')",
        [],
    )
    .unwrap();
    std::fs::copy(&scratch, user.db()).unwrap();
    let wal = user.global().join("state.vscdb-wal");
    std::fs::copy(user.home.path().join("scratch.vscdb-wal"), &wal).unwrap();
    drop(conn);
    let before = user.rows();
    assert_eq!(before["workbench.lastWrite"], b"only in the log");

    let out = user.ide(&["switch", "alice@demo.agm"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    // The backup alone holds the logged row.
    assert_eq!(
        rows(&user.backup())["workbench.lastWrite"],
        b"only in the log"
    );
    assert_eq!(user.rows()["workbench.lastWrite"], b"only in the log");

    let out = user.ide(&["restore"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(user.rows(), before);
}
