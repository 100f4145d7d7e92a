#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]
//! `agm store migrate --to postgres://…` as a user runs it, against the PostgreSQL at
//! `AGM_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/test`), in a
//! schema of its own. Fails where PostgreSQL does not answer, unless
//! `AGM_TEST_NO_POSTGRES=1`.

use std::path::Path;
use std::process::{Command, Output};

/// The real binary with a clean environment: `home`, its data dir, and `vars`.
fn agm_with(home: &Path, args: &[&str], vars: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agm"))
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("AGM_DATA_DIR", home.join("data"))
        .envs(vars.iter().copied())
        .output()
        .unwrap()
}

/// A single-process agm on SQLite.
fn agm(home: &Path, args: &[&str]) -> Output {
    agm_with(home, args, &[("AGM_STORAGE__KEY_STORE", "file")])
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

#[tokio::test]
async fn migrate_copies_the_store_says_how_to_share_the_key_and_runs_again_safely() {
    let base = std::env::var("AGM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test?sslmode=disable".to_owned());
    let admin = match connect(&base).await {
        Ok(client) => client,
        Err(e) if std::env::var("AGM_TEST_NO_POSTGRES").as_deref() == Ok("1") => {
            eprintln!("skipped: PostgreSQL at {base} does not answer ({e})");
            return;
        }
        Err(e) => panic!(
            "PostgreSQL at {base} does not answer ({e}): start it, point AGM_TEST_POSTGRES_URL at one, \
             or set AGM_TEST_NO_POSTGRES=1 to skip this test"
        ),
    };
    let schema = format!("agm_cli_{:016x}", rand::random::<u64>());
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-c%20search_path%3D{schema}");

    let home = tempfile::tempdir().unwrap();
    let missing = agm(home.path(), &["store", "migrate", "--to", &url]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("there is no store to migrate"),
        "{}",
        text(&missing.stderr)
    );

    assert!(agm(home.path(), &["keys", "create"]).status.success());
    let key_file = home.path().join("cluster.key");
    let key_file_arg = key_file.display().to_string();
    let first = agm(
        home.path(),
        &[
            "store",
            "migrate",
            "--to",
            &url,
            "--key-file",
            &key_file_arg,
        ],
    );
    let (out, err) = (text(&first.stdout), text(&first.stderr));
    assert!(first.status.success(), "{out}{err}");
    assert!(out.contains("client_keys: 1 rows"), "{out}");
    assert!(
        out.contains("the same in both") && out.contains("migrated"),
        "{out}"
    );
    assert!(
        err.contains("AGM_SEAL_KEY") && err.contains(&key_file_arg),
        "{err}"
    );
    assert_eq!(
        std::fs::read(&key_file).unwrap(),
        std::fs::read(home.path().join("data/secret.key")).unwrap()
    );
    let keys: i64 = admin
        .query_one(&format!("SELECT count(*) FROM {schema}.client_keys"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(keys, 1);

    let again = agm(home.path(), &["store", "migrate", "--to", &url]);
    assert!(again.status.success(), "{}", text(&again.stderr));
    assert!(
        text(&again.stdout).contains("already migrated"),
        "{}",
        text(&again.stdout)
    );

    let down = agm(
        home.path(),
        &[
            "store",
            "migrate",
            "--to",
            "postgres://agm:hunter2@127.0.0.1:1/agm",
        ],
    );
    let err = text(&down.stderr);
    assert_eq!(down.status.code(), Some(1), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("cannot connect to PostgreSQL at agm@127.0.0.1:1/agm"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");

    // The migrated store in use: two "replicas" (own homes and data dirs) configured
    // with backend = "postgres" and the shared key file see one set of keys.
    let cluster = [
        ("AGM_STORAGE__BACKEND", "postgres"),
        ("AGM_STORAGE__POSTGRES_URL", url.as_str()),
    ];
    // Nothing outside: Google's addresses point at a closed loopback port.
    let nowhere = "http://127.0.0.1:9";
    let endpoints = format!("[\"{nowhere}\"]");
    let replica = |home: &Path, args: &[&str]| {
        let mut vars = cluster.to_vec();
        vars.push(("AGM_STORAGE__KEY_FILE", key_file_arg.as_str()));
        vars.push(("AGM_GOOGLE__CODE_ASSIST_ENDPOINTS", endpoints.as_str()));
        vars.push(("AGM_GOOGLE__OAUTH_TOKEN_URL", nowhere));
        agm_with(home, args, &vars)
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let made = replica(a.path(), &["keys", "create", "--name", "from-a"]);
    assert!(made.status.success(), "{}", text(&made.stderr));
    let listed = replica(b.path(), &["keys", "list"]);
    let out = text(&listed.stdout);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(out.contains("from-a"), "{out}");
    assert_eq!(
        out.matches("agm-").count(),
        2,
        "the migrated key and from-a: {out}"
    );
    // agm doctor checks the store the config names, with the shared key.
    let doctor = replica(b.path(), &["doctor"]);
    let out = text(&doctor.stdout);
    assert!(
        out.contains("PostgreSQL at"),
        "{out}{}",
        text(&doctor.stderr)
    );
    assert!(out.contains(&key_file_arg), "{out}");
    // Without the shared key a replica says what to set.
    let keyless = agm_with(b.path(), &["keys", "list"], &cluster);
    assert_eq!(keyless.status.code(), Some(1));
    assert!(
        text(&keyless.stderr).contains("AGM_SEAL_KEY"),
        "{}",
        text(&keyless.stderr)
    );

    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}
