//! Checking an account with Google before it is saved: the refresh token works, the
//! e-mail is the expected one, and `loadCodeAssist` names the project and tier. Nothing
//! is written until all of that has answered, so a bad token leaves no half-saved
//! account behind.

use agm_google::{ErrorClass, GoogleClient, TokenGrant, UpstreamError};
use agm_store::{Account, AccountState, NewAccount, Pool, Secret, Store, StoreError};
use agm_wire::cloudcode::LoadCodeAssistResponse;
use time::OffsetDateTime;

/// An account Google has vouched for, ready to save.
#[derive(Debug)]
pub struct Verified {
    pub email: String,
    pub refresh_token: Secret,
    pub access_token: Secret,
    pub access_expires_at: OffsetDateTime,
    pub project_id: Option<String>,
    pub tier: Option<String>,
    /// Set when Google says the account needs the user first (e.g. verification).
    pub blocked: Option<AccountState>,
}

/// Refreshes `refresh_token`, then verifies as [`from_grant`] does.
pub async fn from_refresh_token(
    google: &GoogleClient,
    refresh_token: &str,
    expected_email: Option<&str>,
) -> Result<Verified, String> {
    let refresh_token = refresh_token.trim();
    if refresh_token.is_empty() {
        return Err("the refresh token is empty".to_owned());
    }
    let grant = google
        .refresh(refresh_token)
        .await
        .map_err(|e| describe(&e, "refresh the token"))?;
    from_grant(google, grant, refresh_token, expected_email).await
}

/// Reads the e-mail (refusing another than `expected_email`) and the project and tier
/// for a fresh grant. `refresh_token` is kept unless Google rotated it in the grant.
pub async fn from_grant(
    google: &GoogleClient,
    grant: TokenGrant,
    refresh_token: &str,
    expected_email: Option<&str>,
) -> Result<Verified, String> {
    let me = google
        .user_info(&grant.access_token)
        .await
        .map_err(|e| describe(&e, "read the account's e-mail"))?;
    let email = me.email.trim().to_lowercase();
    if email.is_empty() {
        return Err("Google did not say which account this is (no e-mail)".to_owned());
    }
    if let Some(expected) = expected_email
        && !expected.trim().eq_ignore_ascii_case(&email)
    {
        return Err(format!(
            "the token belongs to {email}, not {}",
            expected.trim()
        ));
    }
    let (project_id, tier, blocked) = match google.load_code_assist(&grant.access_token, None).await
    {
        Ok(answer) => project_and_tier(&answer),
        Err(e) => match e.class(OffsetDateTime::now_utc().unix_timestamp()) {
            ErrorClass::ValidationRequired { url } => (
                None,
                None,
                Some(AccountState::Blocked {
                    reason: format!("Google asks to verify the account: {}", e.message()),
                    url,
                }),
            ),
            _ => return Err(describe(&e, "find the account's Cloud Code project")),
        },
    };
    let lifetime = time::Duration::try_from(grant.expires_in).unwrap_or(time::Duration::HOUR);
    Ok(Verified {
        email,
        refresh_token: Secret::new(grant.refresh_token.as_deref().unwrap_or(refresh_token)),
        access_token: Secret::new(grant.access_token),
        access_expires_at: OffsetDateTime::now_utc() + lifetime,
        project_id,
        tier,
        blocked,
    })
}

/// Project, tier and, if Google asks the user to act first, the blocked state.
fn project_and_tier(
    answer: &LoadCodeAssistResponse,
) -> (Option<String>, Option<String>, Option<AccountState>) {
    let project = answer
        .cloudaicompanion_project
        .as_ref()
        .map(|p| p.id().to_owned())
        .filter(|p| !p.is_empty());
    let tier = answer
        .current_tier
        .as_ref()
        .map(|t| t.id.clone())
        .filter(|t| !t.is_empty());
    let blocked = answer
        .ineligible_tiers
        .iter()
        .find(|t| t.reason_code == "VALIDATION_REQUIRED")
        .filter(|_| project.is_none() && tier.is_none())
        .map(|t| AccountState::Blocked {
            reason: if t.reason_message.is_empty() {
                "Google asks to verify the account".to_owned()
            } else {
                t.reason_message.clone()
            },
            url: t.validation_url.clone(),
        });
    (project, tier, blocked)
}

/// What saving did.
#[derive(Debug)]
pub struct Saved {
    pub account: Account,
    /// False when an account with this e-mail was already in the pool and was updated.
    pub created: bool,
}

/// Adds the account, or updates the one with the same e-mail in `pool` (new tokens,
/// project and tier; its id and state stay). A new account takes `initial_state` when
/// it is not active; Google's own block wins over both.
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
            project_id: verified.project_id,
            tier: verified.tier,
        })
        .await?;
    let state = verified
        .blocked
        .or(initial_state.filter(|s| !existed && !s.is_active()));
    if let Some(state) = state {
        store.set_account_state(&account.id, state.clone()).await?;
        account.state = state;
    }
    Ok(Saved {
        account,
        created: !existed,
    })
}

/// What a failed call means for the user, without the token.
fn describe(err: &UpstreamError, action: &str) -> String {
    match err {
        UpstreamError::InvalidGrant { description } => {
            format!("Google refused the refresh token ({description})")
        }
        other => format!("cannot {action}: {other}"),
    }
}
