//! The console's own sign-in, apart from client keys (a client key never opens it):
//!
//! - **Sign-in links** (`/ui/login?token=…`), on a loopback bind only: the token `agm
//!   serve` and `agm demo` print at start (kept in memory as its SHA-256), and the
//!   tokens `agm console` writes to the store's settings (`console:login_tokens`, as
//!   SHA-256 with an expiry), so it works with the server running. Each token signs in
//!   once.
//! - **The admin password**, on any bind: `agm admin set-password` (argon2id, in the
//!   setting `console:admin_password`), else `[server] admin_password` (an argon2 PHC
//!   string, or the password itself). The CLI's one wins. A non-loopback bind without
//!   either keeps the console closed.
//! - **Sessions**: a random id in an HttpOnly, SameSite=Strict cookie, kept in memory
//!   with its CSRF token, for [`SESSION_TTL`].
//! - **Failed sign-ins** are limited per client address: [`MAX_FAILURES`] within
//!   [`FAILURE_WINDOW`], then 429.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::state::{Shared, StateError, keys};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use serde::{Deserialize, Serialize};

/// How long a token from `agm console` is good for.
pub const LOGIN_TOKEN_TTL: Duration = Duration::from_secs(10 * 60);
/// How long a console session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// The most sessions kept at once (the oldest goes first).
const MAX_SESSIONS: usize = 256;
/// Failed sign-ins allowed per client address within [`FAILURE_WINDOW`].
pub const MAX_FAILURES: usize = 10;
pub const FAILURE_WINDOW: Duration = Duration::from_secs(10 * 60);
/// The shortest admin password `agm admin set-password` takes.
pub const MIN_PASSWORD_CHARS: usize = 10;

/// A signed-in browser.
#[derive(Clone)]
pub struct Session {
    pub csrf: String,
    expires: Instant,
}

/// Why a sign-in was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Too many failures from this address; try again after this long.
    TooMany(Duration),
    /// Wrong, used or expired token or password (the message says which way in works).
    Invalid(&'static str),
}

pub struct Auth {
    /// The start-up token, in clear until it has been printed once.
    startup_token: Mutex<Option<String>>,
    startup_hash: Mutex<Option<[u8; 32]>>,
    sessions: Mutex<HashMap<String, Session>>,
    failures: Mutex<HashMap<Option<IpAddr>, VecDeque<Instant>>>,
    /// Whether the server listens on loopback only (sign-in links work).
    loopback: bool,
    config_password: String,
    shared: Shared,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// 32 random bytes as 64 hex characters.
pub fn random_token() -> String {
    let bytes: [u8; 32] = rand::random();
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

use crate::app::{constant_time_eq, sha256};

/// One sign-in token `agm console` made, by its hash.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredToken {
    sha256: String,
    /// Unix seconds.
    expires_at: i64,
}

/// The sign-in tokens `agm console` made and no one used yet.
pub type StoredTokens = Vec<StoredToken>;

/// The admin password's argon2 hash (`agm admin set-password`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoredPassword {
    argon2: String,
}

impl Auth {
    pub fn new(loopback: bool, config_password: String, shared: Shared) -> Auth {
        let token = random_token();
        Auth {
            startup_hash: Mutex::new(Some(sha256(&token))),
            startup_token: Mutex::new(loopback.then_some(token)),
            sessions: Mutex::new(HashMap::new()),
            failures: Mutex::new(HashMap::new()),
            loopback,
            config_password,
            shared,
        }
    }

    /// The start-up sign-in token, once (for `agm serve` and `agm demo` to print); none
    /// on a non-loopback bind, where the console takes the admin password only.
    pub fn take_startup_token(&self) -> Option<String> {
        lock(&self.startup_token).take()
    }

    pub fn loopback(&self) -> bool {
        self.loopback
    }

    /// Whether an admin password is set (in the store or the config).
    pub async fn has_password(&self) -> bool {
        !self.config_password.is_empty() || matches!(self.stored_password().await, Ok(Some(_)))
    }

    async fn stored_password(&self) -> Result<Option<String>, StateError> {
        Ok(self
            .shared
            .get(&keys::CONSOLE_PASSWORD)
            .await?
            .map(|p| p.argon2))
    }

    /// Refuses at once when `client` failed too often lately.
    pub fn check_rate(&self, client: Option<IpAddr>) -> Result<(), Refused> {
        let now = Instant::now();
        let mut failures = lock(&self.failures);
        let Some(times) = failures.get_mut(&client) else {
            return Ok(());
        };
        while times
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= FAILURE_WINDOW)
        {
            times.pop_front();
        }
        if times.len() >= MAX_FAILURES {
            let oldest = times.front().copied().unwrap_or(now);
            let wait = FAILURE_WINDOW.saturating_sub(now.saturating_duration_since(oldest));
            return Err(Refused::TooMany(wait.max(Duration::from_secs(1))));
        }
        Ok(())
    }

    fn fail(&self, client: Option<IpAddr>) {
        let mut failures = lock(&self.failures);
        if failures.len() > 4096 {
            failures.clear();
        }
        let times = failures.entry(client).or_default();
        times.push_back(Instant::now());
        while times.len() > MAX_FAILURES {
            times.pop_front();
        }
    }

    /// Signs in with a sign-in link's token: the start-up one or one from `agm
    /// console`, each once. Returns the new session's id and CSRF token.
    pub async fn sign_in_with_token(
        &self,
        client: Option<IpAddr>,
        token: &str,
    ) -> Result<(String, Session), Refused> {
        self.check_rate(client)?;
        if !self.loopback {
            self.fail(client);
            return Err(Refused::Invalid(
                "sign-in links work only when agm listens on a loopback address; sign in with the admin password",
            ));
        }
        let hash = sha256(token.trim());
        let startup = {
            let mut startup = lock(&self.startup_hash);
            if startup.is_some_and(|h| constant_time_eq(&h, &hash)) {
                *startup = None;
                true
            } else {
                false
            }
        };
        if startup || self.take_stored_token(&hash).await {
            return Ok(self.new_session());
        }
        self.fail(client);
        Err(Refused::Invalid(
            "this sign-in link is wrong, used or expired: run `agm console` for a fresh one",
        ))
    }

    /// Signs in with the admin password.
    pub async fn sign_in_with_password(
        &self,
        client: Option<IpAddr>,
        password: &str,
    ) -> Result<(String, Session), Refused> {
        self.check_rate(client)?;
        let stored = self.stored_password().await.ok().flatten();
        let config = self.config_password.clone();
        let password = password.to_owned();
        let ok = tokio::task::spawn_blocking(move || match stored {
            Some(phc) => verify_password(&phc, &password),
            None if config.starts_with("$argon2") => verify_password(&config, &password),
            None if !config.is_empty() => constant_time_eq(&sha256(&config), &sha256(&password)),
            None => false,
        })
        .await
        .unwrap_or(false);
        if ok {
            return Ok(self.new_session());
        }
        self.fail(client);
        Err(Refused::Invalid(
            "wrong password (set one with `agm admin set-password`)",
        ))
    }

    /// Removes and accepts a stored, unexpired token with this hash.
    /// Atomic: a token used from two tabs at once signs in one of them.
    async fn take_stored_token(&self, hash: &[u8; 32]) -> bool {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let wanted = hex(hash);
        let taken = self
            .shared
            .update(
                &keys::CONSOLE_LOGIN_TOKENS,
                move |stored: Option<StoredTokens>| {
                    let Some(mut tokens) = stored else {
                        return (None, false);
                    };
                    let before = tokens.len();
                    let mut found = false;
                    tokens.retain(|t| {
                        let matches = constant_time_eq(t.sha256.as_bytes(), wanted.as_bytes());
                        found |= matches && t.expires_at > now;
                        !matches && t.expires_at > now
                    });
                    let changed = tokens.len() != before;
                    (changed.then_some(tokens), found)
                },
            )
            .await;
        match taken {
            Ok(found) => found,
            Err(e) => {
                tracing::warn!(error = %e, "could not store the console's sign-in tokens");
                false
            }
        }
    }

    fn new_session(&self) -> (String, Session) {
        let id = random_token();
        let session = Session {
            csrf: random_token(),
            expires: Instant::now() + SESSION_TTL,
        };
        let mut sessions = lock(&self.sessions);
        let now = Instant::now();
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(k, _)| k.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(id.clone(), session.clone());
        (id, session)
    }

    /// The live session with this id.
    pub fn session(&self, id: &str) -> Option<Session> {
        let mut sessions = lock(&self.sessions);
        match sessions.get(id) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                sessions.remove(id);
                None
            }
            None => None,
        }
    }

    pub fn sign_out(&self, id: &str) {
        lock(&self.sessions).remove(id);
    }
}

/// Writes a fresh sign-in token for `agm console` (good for [`LOGIN_TOKEN_TTL`], once),
/// dropping expired ones. Returns the token.
pub async fn mint_login_token(shared: &Shared) -> Result<String, StateError> {
    let token = random_token();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let new = StoredToken {
        sha256: hex(&sha256(&token)),
        expires_at: now + LOGIN_TOKEN_TTL.as_secs() as i64,
    };
    shared
        .update(
            &keys::CONSOLE_LOGIN_TOKENS,
            move |stored: Option<StoredTokens>| {
                let mut tokens = stored.unwrap_or_default();
                tokens.retain(|t| t.expires_at > now);
                // A bounded list: a loop of `agm console` cannot grow it without end.
                if tokens.len() >= 32 {
                    tokens.remove(0);
                }
                tokens.push(new);
                (Some(tokens), ())
            },
        )
        .await?;
    Ok(token)
}

/// Why a password was not set.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("the admin password must have at least {MIN_PASSWORD_CHARS} characters")]
    TooShort,
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("{0}")]
    Store(#[from] StateError),
}

/// The argon2id PHC string of `password`, with a random salt.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let salt: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

fn verify_password(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// `agm admin set-password`: stores the argon2 hash of `password` (which wins over
/// `[server] admin_password`).
pub async fn set_admin_password(shared: &Shared, password: &str) -> Result<(), PasswordError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort);
    }
    let owned = password.to_owned();
    let phc = tokio::task::spawn_blocking(move || hash_password(&owned))
        .await
        .map_err(|e| PasswordError::Hash(e.to_string()))??;
    shared
        .put(&keys::CONSOLE_PASSWORD, &StoredPassword { argon2: phc })
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn auth(loopback: bool, password: &str) -> Auth {
        let store = agm_store::Store::open_in_memory().await.unwrap();
        Auth::new(loopback, password.to_owned(), Shared::new(store))
    }

    #[tokio::test]
    async fn the_startup_token_signs_in_once() {
        let auth = auth(true, "").await;
        let token = auth.take_startup_token().unwrap();
        assert!(auth.take_startup_token().is_none(), "printed once");
        let (id, session) = auth.sign_in_with_token(None, &token).await.unwrap();
        assert_eq!(auth.session(&id).unwrap().csrf, session.csrf);
        assert!(auth.sign_in_with_token(None, &token).await.is_err());
        auth.sign_out(&id);
        assert!(auth.session(&id).is_none());
    }

    #[tokio::test]
    async fn stored_tokens_sign_in_once_and_not_on_a_public_bind() {
        let auth = auth(true, "").await;
        let token = mint_login_token(&auth.shared).await.unwrap();
        assert!(auth.sign_in_with_token(None, &token).await.is_ok());
        assert!(auth.sign_in_with_token(None, &token).await.is_err());
        let public = Auth::new(false, String::new(), auth.shared.clone());
        assert!(public.take_startup_token().is_none());
        let token = mint_login_token(&auth.shared).await.unwrap();
        assert!(public.sign_in_with_token(None, &token).await.is_err());
    }

    #[tokio::test]
    async fn passwords_from_the_cli_win_over_the_config() {
        let auth = auth(false, "from-the-config").await;
        assert!(auth.has_password().await);
        assert!(
            auth.sign_in_with_password(None, "from-the-config")
                .await
                .is_ok()
        );
        assert!(matches!(
            set_admin_password(&auth.shared, "short").await,
            Err(PasswordError::TooShort)
        ));
        set_admin_password(&auth.shared, "a long enough one")
            .await
            .unwrap();
        assert!(
            auth.sign_in_with_password(None, "from-the-config")
                .await
                .is_err()
        );
        assert!(
            auth.sign_in_with_password(None, "a long enough one")
                .await
                .is_ok()
        );
        let fresh = Shared::new(agm_store::Store::open_in_memory().await.unwrap());
        let hashed = Auth::new(false, hash_password("hashed in config").unwrap(), fresh);
        assert!(
            hashed
                .sign_in_with_password(None, "hashed in config")
                .await
                .is_ok()
        );
        assert!(hashed.sign_in_with_password(None, "wrong").await.is_err());
    }

    #[tokio::test]
    async fn failures_are_limited_per_address() {
        let auth = auth(true, "").await;
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        for _ in 0..MAX_FAILURES {
            assert!(matches!(
                auth.sign_in_with_token(a, "nope").await,
                Err(Refused::Invalid(_))
            ));
        }
        let token = auth.take_startup_token().unwrap();
        assert!(matches!(
            auth.sign_in_with_token(a, &token).await,
            Err(Refused::TooMany(_))
        ));
        // Another address is not held back.
        assert!(
            auth.sign_in_with_token(Some(IpAddr::from([10, 0, 0, 2])), &token)
                .await
                .is_ok()
        );
    }
}
