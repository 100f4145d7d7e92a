#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! What is on disk: file modes, sealed secrets, restarts, tampering and wrong keys.

use std::fs;
use std::path::Path;

use agm_store::{
    AccountState, AuditEvent, AuditKind, KeySource, KeyStore, NewAccount, Pool, Secret, Store,
    StoreError, StoreOptions, TokenUpdate,
};
use time::macros::datetime;

const REFRESH: &str = "1//0gREFRESH-token-that-must-never-hit-the-disk";
const ACCESS: &str = "ya29.ACCESS-token-that-must-never-hit-the-disk";

fn alice() -> NewAccount {
    NewAccount {
        email: "alice@example.com".into(),
        pool: Pool::Antigravity,
        refresh_token: Secret::new(REFRESH),
        access_token: Some(Secret::new(ACCESS)),
        access_expires_at: Some(datetime!(2030-01-01 00:00 UTC)),
        project_id: Some("proj-alice".into()),
        tier: Some("free-tier".into()),
    }
}

/// Opens the store with the key in `secret.key`. These tests are about what lands on
/// disk, and must never write to a developer's real OS keychain; `tests/keychain.rs`
/// covers the keychain.
async fn open(dir: &Path) -> Result<Store, StoreError> {
    Store::open_sqlite_with(dir, KeyStore::File).await
}

/// [`open`], allowed to replace a lost key (`agm --force-new-key`).
async fn open_forcing_a_new_key(dir: &Path) -> Result<Store, StoreError> {
    let options = StoreOptions {
        key_store: KeyStore::File,
        force_new_key: true,
    };
    Store::open_sqlite_with(dir, options).await
}

/// Every byte SQLite keeps for the database: the file, its WAL and shared memory.
fn db_bytes(dir: &Path) -> Vec<u8> {
    let mut bytes = Vec::new();
    for name in ["agm.db", "agm.db-wal", "agm.db-shm"] {
        if let Ok(b) = fs::read(dir.join(name)) {
            bytes.extend(b);
        }
    }
    bytes
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn open_creates_a_private_dir_database_and_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("share").join("agm");
    let store = open(&dir).await.unwrap();
    store.upsert_account(alice()).await.unwrap();

    assert_eq!(store.db_path(), Some(dir.join("agm.db")));
    assert_eq!(
        store.key_source(),
        KeySource::KeyFile(dir.join("secret.key"))
    );
    assert!(dir.join("agm.db").is_file());
    assert!(dir.join("agm.db-wal").is_file(), "WAL mode");
    assert!(dir.join("secret.key").is_file());
    #[cfg(unix)]
    {
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("secret.key")), 0o600);
        assert_eq!(mode(&dir.join("agm.db")), 0o600);
        assert_eq!(mode(&dir.join("agm.db-wal")), 0o600);
    }
    // Exactly one key file, no temp files.
    let mut names: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["agm.db", "agm.db-shm", "agm.db-wal", "secret.key"]);
}

#[tokio::test]
async fn a_restart_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path()).await.unwrap();
    let account = store.upsert_account(alice()).await.unwrap();
    let bob = store
        .upsert_account(NewAccount {
            email: "bob@example.com".into(),
            pool: Pool::CodeAssist,
            access_token: None,
            access_expires_at: None,
            ..alice()
        })
        .await
        .unwrap();
    store
        .set_account_state(
            &bob.id,
            AccountState::Disabled {
                reason: "disabled by the user".into(),
            },
        )
        .await
        .unwrap();
    store
        .update_tokens(
            &account.id,
            TokenUpdate {
                access_token: Secret::new("ya29.refreshed"),
                access_expires_at: datetime!(2030-02-02 02:02:02.5 UTC),
                refresh_token: Some(Secret::new("1//rotated")),
            },
        )
        .await
        .unwrap();
    let (key, secret) = store.create_client_key("laptop").await.unwrap();
    store
        .set_setting("safe_mode", &serde_json::json!({"active": true}))
        .await
        .unwrap();
    store
        .append_audit(AuditEvent {
            at: datetime!(2025-01-01 00:00 UTC),
            kind: AuditKind::SafeMode,
            subject: "safe mode".into(),
            detail: "turned on".into(),
        })
        .await
        .unwrap();
    let before = store.list_accounts().await.unwrap();
    drop(store);

    let store = open(tmp.path()).await.unwrap();
    let after = store.list_accounts().await.unwrap();
    assert_eq!(after, before);
    assert_eq!(after.len(), 2);
    let alice = store
        .get_account("alice@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alice.refresh_token.expose(), "1//rotated");
    assert_eq!(alice.access_token.unwrap().expose(), "ya29.refreshed");
    assert_eq!(
        alice.access_expires_at,
        Some(datetime!(2030-02-02 02:02:02.5 UTC))
    );
    assert_eq!(
        store.get_account(&bob.id).await.unwrap().unwrap().state,
        AccountState::Disabled {
            reason: "disabled by the user".into()
        }
    );
    assert_eq!(
        store.verify_client_key(&secret).await.unwrap().unwrap().id,
        key.id
    );
    assert_eq!(
        store.get_setting("safe_mode").await.unwrap(),
        Some(serde_json::json!({"active": true}))
    );
    assert_eq!(store.list_audit(None, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn secrets_are_sealed_at_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path()).await.unwrap();
    let account = store.upsert_account(alice()).await.unwrap();
    store
        .update_tokens(
            &account.id,
            TokenUpdate {
                access_token: Secret::new("ya29.SECOND-access-token"),
                access_expires_at: datetime!(2030-01-01 01:00 UTC),
                refresh_token: Some(Secret::new("1//0gROTATED-refresh-token")),
            },
        )
        .await
        .unwrap();
    let (_, client_secret) = store.create_client_key("laptop").await.unwrap();

    let secrets = [
        REFRESH,
        ACCESS,
        "ya29.SECOND-access-token",
        "1//0gROTATED-refresh-token",
        client_secret.as_str(),
    ];
    let check = |phase: &str| {
        let bytes = db_bytes(tmp.path());
        assert!(
            contains(&bytes, "alice@example.com"),
            "{phase}: reading the right files"
        );
        assert!(contains(&bytes, "v1:"), "{phase}: sealed values are stored");
        for secret in secrets {
            assert!(!contains(&bytes, secret), "{phase}: {secret} is on disk");
        }
    };
    // While open (the writes are in the WAL) and after closing (checkpointed into agm.db).
    check("open");
    drop(store);
    assert!(
        !tmp.path().join("agm.db-wal").exists(),
        "checkpointed on close"
    );
    check("closed");
}

/// Replaces the stored refresh token of every account with `f(old)`.
fn edit_refresh_tokens(dir: &Path, f: impl Fn(&str) -> String) {
    let conn = rusqlite::Connection::open(dir.join("agm.db")).unwrap();
    let rows: Vec<(String, String)> = conn
        .prepare("SELECT id, refresh_token FROM accounts")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (id, sealed) in rows {
        conn.execute(
            "UPDATE accounts SET refresh_token = ?2 WHERE id = ?1",
            [id, f(&sealed)],
        )
        .unwrap();
    }
}

fn assert_unseal_error(err: &StoreError, dir: &Path) {
    assert!(matches!(err, StoreError::Unseal { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message
            .starts_with("cannot decrypt the stored refresh token for account alice@example.com:"),
        "{message}"
    );
    assert!(
        message.contains(&dir.join("secret.key").display().to_string()),
        "{message}"
    );
    assert!(
        message.contains("restore that key file, or re-add the account"),
        "{message}"
    );
    assert!(!message.contains(REFRESH), "{message}");
}

#[tokio::test]
async fn a_tampered_value_is_an_unseal_error() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path()).await.unwrap();
    let account = store.upsert_account(alice()).await.unwrap();
    drop(store);

    edit_refresh_tokens(tmp.path(), |sealed| {
        // Change one character of the ciphertext, keeping it valid base64.
        let mut chars: Vec<char> = sealed.chars().collect();
        let i = chars.len() / 2;
        chars[i] = if chars[i] == 'A' { 'B' } else { 'A' };
        chars.into_iter().collect()
    });

    let store = open(tmp.path()).await.unwrap();
    let err = store.get_account(&account.id).await.unwrap_err();
    assert_unseal_error(&err, tmp.path());
    let err = store.list_accounts().await.unwrap_err();
    assert_unseal_error(&err, tmp.path());

    // The account can still be removed (and then added again).
    assert!(store.remove_account("alice@example.com").await.unwrap());
    store.upsert_account(alice()).await.unwrap();
    assert_eq!(store.list_accounts().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_value_moved_to_another_account_does_not_open() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path()).await.unwrap();
    store.upsert_account(alice()).await.unwrap();
    let bob = store
        .upsert_account(NewAccount {
            email: "bob@example.com".into(),
            refresh_token: Secret::new("1//bob"),
            ..alice()
        })
        .await
        .unwrap();
    drop(store);

    // Copy alice's sealed refresh token into bob's row.
    let conn = rusqlite::Connection::open(tmp.path().join("agm.db")).unwrap();
    conn.execute(
        "UPDATE accounts SET refresh_token = \
         (SELECT refresh_token FROM accounts WHERE email = 'alice@example.com') \
         WHERE email = 'bob@example.com'",
        [],
    )
    .unwrap();
    drop(conn);

    let store = open(tmp.path()).await.unwrap();
    let err = store.get_account(&bob.id).await.unwrap_err();
    assert!(matches!(err, StoreError::Unseal { .. }), "{err}");
    assert!(err.to_string().contains("bob@example.com"), "{err}");
}

#[tokio::test]
async fn another_key_is_an_unseal_error() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path()).await.unwrap();
    store.upsert_account(alice()).await.unwrap();
    drop(store);

    // The key file is lost, and the user forces a new one.
    fs::remove_file(tmp.path().join("secret.key")).unwrap();
    let store = open_forcing_a_new_key(tmp.path()).await.unwrap();
    let err = store.get_account("alice@example.com").await.unwrap_err();
    assert_unseal_error(&err, tmp.path());
    assert!(
        err.to_string()
            .contains("is not the one it was sealed with"),
        "{err}"
    );
}

#[tokio::test]
async fn a_lost_key_file_is_never_replaced_while_accounts_are_sealed_with_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path()).await.unwrap();
    store.upsert_account(alice()).await.unwrap();
    drop(store);
    let key_file = tmp.path().join("secret.key");
    fs::remove_file(&key_file).unwrap();

    let err = open(tmp.path()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::SealKeyMissing { accounts: 1, .. }),
        "{err}"
    );
    let message = err.to_string();
    for words in [
        "the seal key is missing",
        &format!("expected in the key file {}", key_file.display()),
        "cannot be read without it",
        "restore it from a backup",
        "--force-new-key",
        "disabled when used",
    ] {
        assert!(message.contains(words), "{words:?} in {message}");
    }
    assert!(!key_file.exists(), "no new key was made");

    // Forced: a new key, and the old account says it cannot be read.
    let store = open_forcing_a_new_key(tmp.path()).await.unwrap();
    assert!(key_file.is_file());
    let err = store.get_account("alice@example.com").await.unwrap_err();
    assert!(matches!(err, StoreError::Unseal { .. }), "{err}");
    drop(store);
    // The new key is now the key: a plain open uses it.
    open(tmp.path()).await.unwrap();
}

#[tokio::test]
async fn a_lost_key_file_with_no_accounts_is_simply_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path()).await.unwrap();
    store.create_client_key("laptop").await.unwrap();
    drop(store);
    fs::remove_file(tmp.path().join("secret.key")).unwrap();
    // Client keys are hashes, not sealed: nothing is lost with the key.
    let store = open(tmp.path()).await.unwrap();
    assert_eq!(store.list_client_keys().await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_stored_plaintext_is_not_passed_off_as_a_token() {
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path()).await.unwrap();
    store.upsert_account(alice()).await.unwrap();
    drop(store);
    edit_refresh_tokens(tmp.path(), |_| "1//planted-plaintext".to_owned());

    let store = open(tmp.path()).await.unwrap();
    let err = store.list_accounts().await.unwrap_err();
    assert!(matches!(err, StoreError::Unseal { .. }), "{err}");
    assert!(!err.to_string().contains("planted"), "{err}");
}

#[cfg(unix)]
#[tokio::test]
async fn a_key_file_others_can_read_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let store = open(tmp.path()).await.unwrap();
    store.upsert_account(alice()).await.unwrap();
    drop(store);

    let key = tmp.path().join("secret.key");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let err = open(tmp.path()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::KeyFilePermissions { mode: 0o644, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains(&format!("run `chmod 600 {}`", key.display())),
        "{err}"
    );

    // The fix it gives works.
    fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
    let store = open(tmp.path()).await.unwrap();
    assert_eq!(store.list_accounts().await.unwrap().len(), 1);
}

#[cfg(unix)]
#[tokio::test]
async fn a_readable_key_file_is_refused_before_any_database_exists() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("secret.key");
    fs::write(&key, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n").unwrap();
    fs::set_permissions(&key, fs::Permissions::from_mode(0o644)).unwrap();
    let err = open(tmp.path()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::KeyFilePermissions { .. }),
        "{err}"
    );
    assert!(!tmp.path().join("agm.db").exists());
}

#[tokio::test]
async fn a_database_from_a_newer_agm_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    drop(open(tmp.path()).await.unwrap());
    let conn = rusqlite::Connection::open(tmp.path().join("agm.db")).unwrap();
    conn.pragma_update(None, "user_version", 42).unwrap();
    drop(conn);
    let err = open(tmp.path()).await.unwrap_err();
    assert!(
        matches!(err, StoreError::DatabaseTooNew { found: 42, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn a_data_dir_that_is_a_file_is_an_io_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("not-a-dir");
    fs::write(&file, "x").unwrap();
    let err = open(&file).await.unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "cannot create the data directory {}",
            file.display()
        )),
        "{err}"
    );
}
