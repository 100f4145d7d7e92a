//! Checking an account with Google before it is saved: the refresh token works and the
//! e-mail is the expected one. Nothing is written until that has answered, so a bad
//! token leaves no half-saved account behind. Once saved, [`set_up_project`] finishes
//! the Cloud Code set-up while the user is there: project discovery (loadCodeAssist,
//! then onboardUser and its bounded polling) with the gateway's own
//! `agm_google::ProjectDiscovery`; the gateway's lazy discovery stays the fallback.

use crate::config::Config;
use agm_google::{
    DiscoveryError, DiscoveryPolicy, DiscoveryRequest, DiscoveryStats, GoogleClient,
    ProjectDiscovery, TokenGrant, UpstreamError,
};
use agm_store::{Account, AccountState, AuditKind, NewAccount, Pool, Secret, Store, StoreError};
use time::OffsetDateTime;

/// An account Google has vouched for, ready to save.
#[derive(Debug)]
pub struct Verified {
    pub email: String,
    pub refresh_token: Secret,
    pub access_token: Secret,
    pub access_expires_at: OffsetDateTime,
}

/// Why Google did not vouch for an account. Nothing was saved.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("the refresh token is empty")]
    EmptyToken,
    #[error("Google refused the refresh token ({0})")]
    TokenRefused(String),
    #[error("cannot {action}: {error}")]
    Google {
        action: &'static str,
        error: UpstreamError,
    },
    #[error("Google did not say which account this is (no e-mail)")]
    NoEmail,
    #[error("the token belongs to {got}, not {expected}")]
    OtherAccount { got: String, expected: String },
}

/// Refreshes `refresh_token`, then verifies as [`from_grant`] does.
pub async fn from_refresh_token(
    google: &GoogleClient,
    refresh_token: &str,
    expected_email: Option<&str>,
) -> Result<Verified, VerifyError> {
    let refresh_token = refresh_token.trim();
    if refresh_token.is_empty() {
        return Err(VerifyError::EmptyToken);
    }
    let grant = google
        .refresh(refresh_token)
        .await
        .map_err(|e| describe(e, "refresh the token"))?;
    from_grant(google, grant, refresh_token, expected_email).await
}

/// Reads the e-mail (refusing another than `expected_email`) for a fresh grant.
/// `refresh_token` is kept unless Google rotated it in the grant.
pub async fn from_grant(
    google: &GoogleClient,
    grant: TokenGrant,
    refresh_token: &str,
    expected_email: Option<&str>,
) -> Result<Verified, VerifyError> {
    let me = google
        .user_info(&grant.access_token)
        .await
        .map_err(|e| describe(e, "read the account's e-mail"))?;
    let email = me.email.trim().to_lowercase();
    if email.is_empty() {
        return Err(VerifyError::NoEmail);
    }
    if let Some(expected) = expected_email
        && !expected.trim().eq_ignore_ascii_case(&email)
    {
        return Err(VerifyError::OtherAccount {
            got: email,
            expected: expected.trim().to_owned(),
        });
    }
    let lifetime = time::Duration::try_from(grant.expires_in).unwrap_or(time::Duration::HOUR);
    Ok(Verified {
        email,
        refresh_token: Secret::new(grant.refresh_token.as_deref().unwrap_or(refresh_token)),
        access_token: Secret::new(grant.access_token),
        access_expires_at: OffsetDateTime::now_utc() + lifetime,
    })
}

/// What [`set_up_project`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetUp {
    /// Google named the account's project; `onboarded` when this run onboarded it.
    Project { onboarded: bool },
    /// The account needs its user (verification, a tier it cannot have): saved
    /// blocked with the reason and the link.
    Blocked,
    /// Not tried (a disabled account, or no access token).
    Skipped,
    /// Discovery failed (network, 5xx, ...): the gateway tries again when the account
    /// is first used.
    Deferred { reason: String },
}

/// The gateway's discovery policy (`[project_id] poll_interval`, at most 10 polls),
/// with one retry of each kind: a network failure here is a warning, not a wait.
fn policy(config: &Config) -> DiscoveryPolicy {
    DiscoveryPolicy {
        rate_limit_retries: 1,
        server_error_retries: 1,
        network_retries: 1,
        ..crate::app::pool_settings(config).discovery
    }
}

/// Finishes the account's Cloud Code set-up now, as the gateway would on its first
/// request: finds (or onboards) the project and saves it with the tier. An account
/// that needs its user is saved blocked with the link (as the gateway does); a
/// blocked one whose set-up now succeeds is active again. `account` follows.
pub async fn set_up_project(
    store: &Store,
    google: &GoogleClient,
    config: &Config,
    account: &mut Account,
) -> SetUp {
    if matches!(account.state, AccountState::Disabled { .. }) || account.pool == Pool::GeminiApi {
        return SetUp::Skipped;
    }
    let Some(token) = account.access_token.as_ref() else {
        return SetUp::Skipped;
    };
    let request = DiscoveryRequest {
        account: &account.email,
        access_token: token.expose(),
        duet_project: None,
    };
    let found = ProjectDiscovery::new(policy(config))
        .discover(
            google,
            request,
            &DiscoveryStats::default(),
            tokio::time::sleep,
        )
        .await;
    match found {
        Ok(found) => {
            if let Err(e) = store
                .set_project(
                    &account.id,
                    Some(&found.project_id),
                    found.tier_id.as_deref(),
                )
                .await
            {
                return SetUp::Deferred {
                    reason: format!("cannot save the project: {e}"),
                };
            }
            account.project_id = Some(found.project_id);
            if found.tier_id.is_some() {
                account.tier = found.tier_id;
            }
            if matches!(account.state, AccountState::Blocked { .. })
                && store
                    .set_account_state(&account.id, AccountState::Active)
                    .await
                    .is_ok()
            {
                account.state = AccountState::Active;
                audit(
                    store,
                    &account.email,
                    "unblocked: the project set-up succeeded",
                )
                .await;
            }
            SetUp::Project {
                onboarded: found.onboarded,
            }
        }
        Err(e) if e.needs_the_user() => {
            let url = match &e {
                DiscoveryError::ValidationRequired { url, .. } => url.clone(),
                _ => None,
            };
            let reason = e.to_string();
            let state = AccountState::Blocked {
                reason: reason.clone(),
                url,
            };
            if let Err(err) = store.set_account_state(&account.id, state.clone()).await {
                return SetUp::Deferred {
                    reason: format!("{reason} (and the account could not be blocked: {err})"),
                };
            }
            account.state = state;
            audit(store, &account.email, &format!("blocked: {reason}")).await;
            SetUp::Blocked
        }
        Err(e) => SetUp::Deferred {
            reason: e.to_string(),
        },
    }
}

async fn audit(store: &Store, subject: &str, detail: &str) {
    crate::state::audit::append_audit(store, AuditKind::Account, subject, detail).await;
}

/// What saving did.
#[derive(Debug)]
pub struct Saved {
    pub account: Account,
    /// False when an account with this e-mail was already in the pool and was updated.
    pub created: bool,
}

/// Adds the account, or updates the one with the same e-mail in `pool` (new tokens;
/// its id, project, tier and state stay). A new account takes `initial_state` when it
/// is not active.
pub async fn save(
    store: &Store,
    verified: Verified,
    pool: Pool,
    initial_state: Option<AccountState>,
) -> Result<Saved, StoreError> {
    // Ask first, to tell "imported" from "updated". An unreadable stored account (its
    // key lost) is one that exists: the upsert replaces its tokens.
    let existed = match store.get_account(&verified.email).await {
        Ok(found) => found.is_some_and(|a| a.pool == pool),
        Err(_) => true,
    };
    let mut account = store
        .upsert_account(NewAccount {
            email: verified.email,
            pool,
            refresh_token: verified.refresh_token,
            access_token: Some(verified.access_token),
            access_expires_at: Some(verified.access_expires_at),
            project_id: None,
            tier: None,
        })
        .await?;
    if let Some(state) = initial_state.filter(|s| !existed && !s.is_active()) {
        store.set_account_state(&account.id, state.clone()).await?;
        account.state = state;
    }
    Ok(Saved {
        account,
        created: !existed,
    })
}

/// What a failed call means for the user, without the token.
fn describe(err: UpstreamError, action: &'static str) -> VerifyError {
    match err {
        UpstreamError::InvalidGrant { description } => VerifyError::TokenRefused(description),
        error => VerifyError::Google { action, error },
    }
}
