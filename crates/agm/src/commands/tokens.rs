//! An account's access token for a CLI command that calls Google with it (`agm accounts
//! quota`, `agm ide switch`): the stored one while it is good for five more minutes,
//! else a refreshed one, saved to the store (with the refresh token, if Google rotated
//! it).

use agm_store::{Account, Secret, Store, TokenUpdate};
use anyhow::Context;
use time::OffsetDateTime;

/// An account's tokens, and when the access token expires.
pub struct Tokens {
    pub access: Secret,
    pub refresh: Secret,
    pub expires_at: OffsetDateTime,
}

/// The account's tokens, its access token refreshed (and the store updated) unless it
/// is good for five more minutes.
pub async fn fresh_tokens(
    google: &agm_google::GoogleClient,
    store: &Store,
    account: &Account,
) -> anyhow::Result<Tokens> {
    let now = OffsetDateTime::now_utc();
    if let (Some(token), Some(expires)) = (&account.access_token, account.access_expires_at)
        && expires - time::Duration::minutes(5) > now
    {
        return Ok(Tokens {
            access: token.clone(),
            refresh: account.refresh_token.clone(),
            expires_at: expires,
        });
    }
    let grant = google
        .refresh(account.refresh_token.expose())
        .await
        .with_context(|| {
            format!(
                "cannot refresh the access token of {} (`agm accounts list` shows its state)",
                account.email
            )
        })?;
    let tokens = Tokens {
        access: Secret::new(grant.access_token),
        // Google may rotate the refresh token: the IDE gets the one that works now.
        refresh: grant
            .refresh_token
            .map_or_else(|| account.refresh_token.clone(), Secret::new),
        expires_at: now + grant.expires_in,
    };
    store
        .update_tokens(
            &account.id,
            TokenUpdate {
                access_token: tokens.access.clone(),
                access_expires_at: tokens.expires_at,
                refresh_token: Some(tokens.refresh.clone()),
            },
        )
        .await?;
    Ok(tokens)
}
