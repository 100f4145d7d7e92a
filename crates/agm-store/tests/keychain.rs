#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Where the sealing key lives: the OS keychain where one answers, else `secret.key`.
//! A stand-in [`KeyVault`] plays the keychain, so no real keychain is ever written to.

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agm_store::keychain::{keychain_answers, keychain_user, os_keychain_status};
use agm_store::{
    KEYCHAIN_FILE, KEYCHAIN_SERVICE, KeyChoice, KeySource, KeyStore, KeyVault, NewAccount, Secret,
    Store, StoreError, StoreOptions, VaultError,
};

const REFRESH: &str = "1//0gREFRESH-token-that-must-never-leak";
/// A valid key, base64 of 32 bytes, that no store created.
const OTHER_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// An in-memory keychain that can be made to stop answering, refuse writes, or keep
/// something other than what it was given.
#[derive(Default)]
struct FakeKeychain {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    entries: HashMap<(String, String), String>,
    /// `Some(reason)`: no keychain answers.
    unavailable: Option<String>,
    refuse_set: bool,
    garble_set: bool,
    gets: usize,
    sets: usize,
}

impl FakeKeychain {
    fn answering() -> Arc<FakeKeychain> {
        Arc::new(FakeKeychain::default())
    }

    fn unavailable() -> Arc<FakeKeychain> {
        let vault = FakeKeychain::answering();
        vault.set_available(false);
        vault
    }

    fn with(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.state.lock().unwrap());
    }

    fn set_available(&self, available: bool) {
        self.with(|s| {
            s.unavailable =
                (!available).then(|| "Secret Service not found on the session bus".to_owned());
        });
    }

    fn entry(&self, user: &str) -> Option<String> {
        let key = (KEYCHAIN_SERVICE.to_owned(), user.to_owned());
        self.state.lock().unwrap().entries.get(&key).cloned()
    }

    fn put(&self, user: &str, value: &str) {
        self.with(|s| {
            s.entries.insert(
                (KEYCHAIN_SERVICE.to_owned(), user.to_owned()),
                value.to_owned(),
            );
        });
    }

    fn len(&self) -> usize {
        self.state.lock().unwrap().entries.len()
    }

    fn calls(&self) -> (usize, usize) {
        let s = self.state.lock().unwrap();
        (s.gets, s.sets)
    }
}

impl KeyVault for FakeKeychain {
    fn get(&self, service: &str, user: &str) -> Result<Option<Secret>, VaultError> {
        let mut s = self.state.lock().unwrap();
        s.gets += 1;
        if let Some(reason) = &s.unavailable {
            return Err(VaultError::Unavailable(reason.clone()));
        }
        let key = (service.to_owned(), user.to_owned());
        Ok(s.entries.get(&key).map(|v| Secret::new(v.as_str())))
    }

    fn set(&self, service: &str, user: &str, value: &Secret) -> Result<(), VaultError> {
        {
            let mut s = self.state.lock().unwrap();
            s.sets += 1;
            if let Some(reason) = &s.unavailable {
                return Err(VaultError::Unavailable(reason.clone()));
            }
            if s.refuse_set {
                return Err(VaultError::Failed("the user denied access".to_owned()));
            }
        }
        // Widen the window in which two agm processes could both be storing a key.
        std::thread::sleep(Duration::from_millis(50));
        let mut s = self.state.lock().unwrap();
        let stored = if s.garble_set {
            OTHER_KEY.to_owned()
        } else {
            value.expose().to_owned()
        };
        s.entries
            .insert((service.to_owned(), user.to_owned()), stored);
        Ok(())
    }
}

async fn open(
    dir: &Path,
    mode: impl Into<StoreOptions>,
    vault: &Arc<FakeKeychain>,
) -> Result<Store, StoreError> {
    Store::open_sqlite_with_vault(dir, mode, Arc::clone(vault) as Arc<dyn KeyVault>).await
}

fn keychain_source(dir: &Path) -> KeySource {
    KeySource::Keychain {
        service: "agm".into(),
        user: keychain_user(dir),
    }
}

async fn add_alice(store: &Store) {
    store
        .upsert_account(NewAccount::antigravity("alice@example.com", REFRESH))
        .await
        .unwrap();
}

async fn alice_refresh(store: &Store) -> Result<String, StoreError> {
    let account = store.get_account("alice@example.com").await?.unwrap();
    Ok(account.refresh_token.expose().to_owned())
}

#[tokio::test]
async fn a_new_data_dir_keeps_its_key_in_the_keychain_and_reuses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = FakeKeychain::answering();
    let store = open(tmp.path(), KeyStore::Auto, &vault).await.unwrap();
    assert_eq!(store.key_source(), keychain_source(tmp.path()));
    assert_eq!(store.key_choice(), &KeyChoice::Keychain { created: true });
    add_alice(&store).await;
    drop(store);

    // The key is in the keychain, not on disk; the data dir only names the entry.
    let user = keychain_user(tmp.path());
    assert!(vault.entry(&user).is_some());
    assert_eq!(vault.len(), 1);
    assert!(!tmp.path().join("secret.key").exists());
    let named = fs::read_to_string(tmp.path().join(KEYCHAIN_FILE)).unwrap();
    assert!(named.contains(&format!("user = {user}")), "{named}");
    assert!(
        !named.contains(&vault.entry(&user).unwrap()),
        "no secret in it"
    );
    assert!(!tmp.path().join(".secret.keychain.lock").exists());

    for mode in [KeyStore::Auto, KeyStore::Keychain] {
        let store = open(tmp.path(), mode, &vault).await.unwrap();
        assert_eq!(store.key_choice(), &KeyChoice::Keychain { created: false });
        assert_eq!(store.key_source(), keychain_source(tmp.path()));
        assert_eq!(alice_refresh(&store).await.unwrap(), REFRESH);
    }
    assert_eq!(vault.calls().1, 1, "the key was stored once");
}

#[tokio::test]
async fn an_existing_key_file_wins_over_the_keychain() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite_with(tmp.path(), KeyStore::File)
        .await
        .unwrap();
    add_alice(&store).await;
    drop(store);

    // Even a keychain that holds another key for this data dir does not take over.
    let vault = FakeKeychain::answering();
    vault.put(&keychain_user(tmp.path()), OTHER_KEY);
    let store = open(tmp.path(), KeyStore::Auto, &vault).await.unwrap();
    assert_eq!(
        store.key_source(),
        KeySource::KeyFile(tmp.path().join("secret.key"))
    );
    assert_eq!(store.key_choice(), &KeyChoice::ExistingKeyFile);
    assert_eq!(alice_refresh(&store).await.unwrap(), REFRESH);
    assert_eq!(vault.calls(), (0, 0), "the keychain is not even asked");
    assert!(!tmp.path().join(KEYCHAIN_FILE).exists());

    let store = open(tmp.path(), KeyStore::File, &vault).await.unwrap();
    assert_eq!(store.key_choice(), &KeyChoice::FileForced);
}

#[tokio::test]
async fn no_keychain_falls_back_to_the_key_file() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = FakeKeychain::unavailable();
    let store = open(tmp.path(), KeyStore::Auto, &vault).await.unwrap();
    let key_file = tmp.path().join("secret.key");
    assert_eq!(store.key_source(), KeySource::KeyFile(key_file.clone()));
    assert_eq!(
        store.key_choice(),
        &KeyChoice::NoKeychain {
            reason: "Secret Service not found on the session bus".into()
        }
    );
    add_alice(&store).await;
    drop(store);
    assert!(key_file.is_file());
    assert!(!tmp.path().join(KEYCHAIN_FILE).exists());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    // A keychain that turns up later does not take over from the key file.
    vault.set_available(true);
    let store = open(tmp.path(), KeyStore::Auto, &vault).await.unwrap();
    assert_eq!(store.key_source(), KeySource::KeyFile(key_file));
    assert_eq!(store.key_choice(), &KeyChoice::ExistingKeyFile);
    assert_eq!(alice_refresh(&store).await.unwrap(), REFRESH);
    assert_eq!(vault.len(), 0);
}

#[tokio::test]
async fn a_forced_keychain_that_does_not_answer_is_an_error_that_names_the_way_out() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = FakeKeychain::unavailable();
    let err = open(tmp.path(), KeyStore::Keychain, &vault)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::KeychainRequired { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains("no OS keychain answered (Secret Service not found"),
        "{message}"
    );
    assert!(message.contains("key_store = \"file\""), "{message}");
    assert!(message.contains("AGM_STORAGE__KEY_STORE=file"), "{message}");
    // Nothing was created on the way.
    assert!(!tmp.path().join("secret.key").exists());
    assert!(!tmp.path().join("agm.db").exists());
}

#[tokio::test]
async fn a_wrong_key_in_the_keychain_names_the_entry_and_what_to_do() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = FakeKeychain::answering();
    let store = open(tmp.path(), KeyStore::Auto, &vault).await.unwrap();
    add_alice(&store).await;
    drop(store);

    let user = keychain_user(tmp.path());
    vault.put(&user, OTHER_KEY);
    let store = open(tmp.path(), KeyStore::Auto, &vault).await.unwrap();
    let err = alice_refresh(&store).await.unwrap_err();
    assert!(matches!(err, StoreError::Unseal { .. }), "{err}");
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "the OS keychain entry agm/{user} is not the one it was sealed with"
        )),
        "{message}"
    );
    assert!(
        message.contains("restore that keychain entry, or re-add the account"),
        "{message}"
    );
    assert!(!message.contains(REFRESH), "{message}");
    assert!(!message.contains(OTHER_KEY), "{message}");
}

#[tokio::test]
async fn a_keychain_that_stops_answering_never_leads_to_a_new_key_file() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = FakeKeychain::answering();
    let store = open(tmp.path(), KeyStore::Auto, &vault).await.unwrap();
    add_alice(&store).await;
    drop(store);
    let user = keychain_user(tmp.path());

    // Locked, or a session without the Secret Service: an error, not a fresh key file
    // that would then shadow the key the tokens are sealed with.
    vault.set_available(false);
    let err = open(tmp.path(), KeyStore::Auto, &vault).await.unwrap_err();
    assert!(
        matches!(err, StoreError::KeychainUnavailable { .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&format!("in the OS keychain entry agm/{user}")),
        "{message}"
    );
    assert!(message.contains("unlock the keychain"), "{message}");
    assert!(!tmp.path().join("secret.key").exists());

    // Forcing the key file would strand the tokens too.
    let err = open(tmp.path(), KeyStore::File, &vault).await.unwrap_err();
    assert!(matches!(err, StoreError::KeyInKeychain { .. }), "{err}");
    assert!(err.to_string().contains("key_store = \"auto\""), "{err}");
    assert!(!tmp.path().join("secret.key").exists());

    // Once it answers again, everything is there.
    vault.set_available(true);
    let store = open(tmp.path(), KeyStore::Auto, &vault).await.unwrap();
    assert_eq!(alice_refresh(&store).await.unwrap(), REFRESH);
}

#[tokio::test]
async fn the_keychain_entry_name_survives_a_moved_data_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let old = tmp.path().join("old");
    let vault = FakeKeychain::answering();
    let store = open(&old, KeyStore::Auto, &vault).await.unwrap();
    add_alice(&store).await;
    let source = store.key_source();
    drop(store);

    let new = tmp.path().join("new");
    fs::rename(&old, &new).unwrap();
    let store = open(&new, KeyStore::Auto, &vault).await.unwrap();
    assert_eq!(
        store.key_source(),
        source,
        "the entry secret.keychain names"
    );
    assert_eq!(alice_refresh(&store).await.unwrap(), REFRESH);
    assert_eq!(vault.len(), 1);
}

#[tokio::test]
async fn a_key_put_in_the_keychain_by_hand_is_used() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = FakeKeychain::answering();
    vault.put(&keychain_user(tmp.path()), &format!("{OTHER_KEY}\n"));
    let store = open(tmp.path(), KeyStore::Keychain, &vault).await.unwrap();
    assert_eq!(store.key_choice(), &KeyChoice::Keychain { created: false });
    assert!(tmp.path().join(KEYCHAIN_FILE).is_file(), "now recorded");
    assert_eq!(vault.calls().1, 0);
}

#[tokio::test]
async fn a_forced_keychain_keeps_away_from_an_existing_key_file() {
    let tmp = tempfile::tempdir().unwrap();
    drop(
        Store::open_sqlite_with(tmp.path(), KeyStore::File)
            .await
            .unwrap(),
    );
    let vault = FakeKeychain::answering();
    let err = open(tmp.path(), KeyStore::Keychain, &vault)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::KeyFileInUse { .. }), "{err}");
    assert!(err.to_string().contains("secret.key"), "{err}");
    assert_eq!(vault.calls(), (0, 0));
}

#[tokio::test]
async fn a_keychain_that_refuses_the_new_key() {
    // auto: the key file instead, since nothing was sealed with any key yet.
    let tmp = tempfile::tempdir().unwrap();
    let vault = FakeKeychain::answering();
    vault.with(|s| s.refuse_set = true);
    let store = open(tmp.path(), KeyStore::Auto, &vault).await.unwrap();
    assert_eq!(
        store.key_source(),
        KeySource::KeyFile(tmp.path().join("secret.key"))
    );
    assert_eq!(
        store.key_choice(),
        &KeyChoice::KeychainRefused {
            reason: "the user denied access".into()
        }
    );
    assert!(!tmp.path().join(KEYCHAIN_FILE).exists());

    // keychain: an error.
    let tmp = tempfile::tempdir().unwrap();
    let err = open(tmp.path(), KeyStore::Keychain, &vault)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Keychain { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "cannot store a new key in the OS keychain entry agm/{}: the user denied access",
            keychain_user(tmp.path())
        )),
        "{err}"
    );
    assert!(!tmp.path().join("secret.key").exists());
}

#[tokio::test]
async fn a_new_key_that_does_not_read_back_is_never_used() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = FakeKeychain::answering();
    vault.with(|s| s.garble_set = true);
    let err = open(tmp.path(), KeyStore::Auto, &vault).await.unwrap_err();
    assert!(matches!(err, StoreError::Keychain { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("cannot verify the new key in the OS keychain entry"),
        "{err}"
    );
    assert!(!err.to_string().contains(OTHER_KEY), "{err}");
    // Nothing was sealed with it, and nothing records it.
    assert!(!tmp.path().join("agm.db").exists());
    assert!(!tmp.path().join(KEYCHAIN_FILE).exists());
    assert!(!tmp.path().join("secret.key").exists());
}

#[tokio::test]
async fn an_entry_that_is_not_a_key_is_refused_and_left_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = FakeKeychain::answering();
    let user = keychain_user(tmp.path());
    vault.put(&user, "hunter2");
    let err = open(tmp.path(), KeyStore::Auto, &vault).await.unwrap_err();
    assert!(matches!(err, StoreError::KeychainInvalid { .. }), "{err}");
    assert!(err.to_string().contains(&format!("agm/{user}")), "{err}");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert_eq!(vault.entry(&user).as_deref(), Some("hunter2"));
    assert_eq!(vault.calls().1, 0);
}

#[tokio::test]
async fn two_data_dirs_never_share_an_entry() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = FakeKeychain::answering();
    let a = open(&tmp.path().join("a"), KeyStore::Auto, &vault)
        .await
        .unwrap();
    let b = open(&tmp.path().join("b"), KeyStore::Auto, &vault)
        .await
        .unwrap();
    assert_ne!(a.key_source(), b.key_source());
    assert_eq!(vault.len(), 2);
}

#[tokio::test]
async fn the_file_setting_never_asks_the_keychain() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = FakeKeychain::answering();
    let store = open(tmp.path(), KeyStore::File, &vault).await.unwrap();
    assert_eq!(store.key_choice(), &KeyChoice::FileForced);
    assert_eq!(
        store.key_source(),
        KeySource::KeyFile(tmp.path().join("secret.key"))
    );
    assert_eq!(vault.calls(), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agm_processes_starting_at_once_share_one_key() {
    let tmp = tempfile::tempdir().unwrap();
    let vault = FakeKeychain::answering();
    let (a, b) = tokio::join!(
        open(tmp.path(), KeyStore::Auto, &vault),
        open(tmp.path(), KeyStore::Auto, &vault)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    add_alice(&a).await;
    assert_eq!(alice_refresh(&b).await.unwrap(), REFRESH);
    assert_eq!(vault.calls().1, 1, "only one key was stored");
    let created = [a.key_choice(), b.key_choice()]
        .iter()
        .filter(|c| ***c == KeyChoice::Keychain { created: true })
        .count();
    assert_eq!(created, 1);
}

#[test]
fn keychain_answers_reports_why_not() {
    let tmp = tempfile::tempdir().unwrap();
    assert_eq!(
        keychain_answers(FakeKeychain::unavailable().as_ref(), tmp.path()),
        Err(agm_store::keychain::KeychainUnavailable(
            "Secret Service not found on the session bus".to_owned()
        ))
    );
    let vault = FakeKeychain::answering();
    assert_eq!(keychain_answers(vault.as_ref(), tmp.path()), Ok(()));
    assert_eq!(vault.len(), 0, "it only reads");
}

/// The real OS keychain, only where none answers (CI, headless Linux): the default
/// open falls back to the key file. Where one answers this test writes nothing.
#[tokio::test]
async fn with_no_os_keychain_the_default_open_uses_the_key_file() {
    let tmp = tempfile::tempdir().unwrap();
    let Err(reason) = os_keychain_status(tmp.path()).await else {
        return;
    };
    assert!(!reason.0.is_empty());
    let store = Store::open_sqlite(tmp.path()).await.unwrap();
    assert_eq!(
        store.key_source(),
        KeySource::KeyFile(tmp.path().join("secret.key"))
    );
    assert!(
        matches!(store.key_choice(), KeyChoice::NoKeychain { .. }),
        "{:?}",
        store.key_choice()
    );
}

/// The real OS keychain end to end: a new key stored, read back, and used again by the
/// next open. Writes to the keychain (and removes its entry after), so it only runs when
/// asked: `cargo test -p agm-store --test keychain -- --ignored`. On Linux, inside
/// `dbus-run-session` with an unlocked `gnome-keyring-daemon --components=secrets`.
#[tokio::test]
#[ignore = "writes to the real OS keychain"]
async fn the_real_os_keychain_keeps_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    os_keychain_status(tmp.path()).await.unwrap();
    let store = Store::open_sqlite(tmp.path()).await.unwrap();
    assert_eq!(store.key_source(), keychain_source(tmp.path()));
    add_alice(&store).await;
    drop(store);
    let store = Store::open_sqlite_with(tmp.path(), KeyStore::Keychain)
        .await
        .unwrap();
    assert_eq!(store.key_choice(), &KeyChoice::Keychain { created: false });
    assert_eq!(alice_refresh(&store).await.unwrap(), REFRESH);
    assert!(!tmp.path().join("secret.key").exists());

    let user = keychain_user(tmp.path());
    tokio::task::spawn_blocking(move || {
        keyring::Entry::new(KEYCHAIN_SERVICE, &user)
            .unwrap()
            .delete_credential()
            .unwrap();
    })
    .await
    .unwrap();
}

/// A data dir whose key is in the keychain, with alice sealed with it, and then the
/// entry gone: another keychain answers now, or the entry was deleted.
async fn alice_sealed_with_a_lost_entry() -> (tempfile::TempDir, Arc<FakeKeychain>) {
    let tmp = tempfile::tempdir().unwrap();
    let vault = FakeKeychain::answering();
    let store = open(tmp.path(), KeyStore::Auto, &vault).await.unwrap();
    add_alice(&store).await;
    drop(store);
    vault.with(|s| s.entries.clear());
    (tmp, vault)
}

#[tokio::test]
async fn a_recorded_entry_gone_from_the_keychain_is_an_error_until_the_user_says_so() {
    // No new key on its own.
    let (tmp, vault) = alice_sealed_with_a_lost_entry().await;
    let err = open(tmp.path(), KeyStore::Auto, &vault).await.unwrap_err();
    assert!(
        matches!(err, StoreError::KeychainEntryMissing { .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(message.contains("make that one answer"), "{message}");
    assert!(
        message.contains("run with --force-new-key to start with a new key"),
        "{message}"
    );
    assert_eq!(vault.len(), 0);
    assert!(!tmp.path().join("secret.key").exists());

    // Deleting the entry's name does not get around it: the accounts are still sealed.
    fs::remove_file(tmp.path().join(KEYCHAIN_FILE)).unwrap();
    let err = open(tmp.path(), KeyStore::Auto, &vault).await.unwrap_err();
    assert!(
        matches!(err, StoreError::SealKeyMissing { accounts: 1, .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains(&format!(
            "expected in the OS keychain entry agm/{}",
            keychain_user(tmp.path())
        )),
        "{message}"
    );
    assert_eq!(vault.len(), 0);
    assert!(!tmp.path().join("secret.key").exists());

    // The way out it names: a new key, and the old accounts say they cannot be read.
    let forced = StoreOptions {
        key_store: KeyStore::Auto,
        force_new_key: true,
    };
    let store = open(tmp.path(), forced, &vault).await.unwrap();
    assert_eq!(store.key_choice(), &KeyChoice::Keychain { created: true });
    let err = alice_refresh(&store).await.unwrap_err();
    assert!(matches!(err, StoreError::Unseal { .. }), "{err}");
}

#[tokio::test]
async fn a_forced_new_key_goes_into_the_recorded_entry() {
    let (tmp, vault) = alice_sealed_with_a_lost_entry().await;
    let forced = StoreOptions {
        key_store: KeyStore::Auto,
        force_new_key: true,
    };
    let store = open(tmp.path(), forced, &vault).await.unwrap();
    assert_eq!(store.key_choice(), &KeyChoice::Keychain { created: true });
    assert_eq!(store.key_source(), keychain_source(tmp.path()));
    assert_eq!(vault.len(), 1);
    assert!(tmp.path().join(KEYCHAIN_FILE).is_file());
    assert!(!tmp.path().join("secret.key").exists());
    drop(store);
    // From then on the new key is simply used.
    let store = open(tmp.path(), KeyStore::Auto, &vault).await.unwrap();
    assert_eq!(store.key_choice(), &KeyChoice::Keychain { created: false });
}
