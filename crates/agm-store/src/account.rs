//! Accounts: one Google account (or API key) in one pool, with its sealed tokens.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::StoreError;
use crate::names::named_enum;
use crate::secret::Secret;

named_enum! {
    /// Which upstream an account serves.
    pub enum Pool ("pool") {
        /// Antigravity's Cloud Code endpoints.
        Antigravity = "antigravity",
        /// gemini-cli's Code Assist endpoints.
        CodeAssist = "code-assist",
        /// The official Gemini API.
        GeminiApi = "gemini-api",
    }
}

/// Whether an account may be used, and if not, why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum AccountState {
    Active,
    /// Turned off by the user or because its refresh token stopped working.
    Disabled {
        reason: String,
    },
    /// Google blocks it until someone acts, e.g. verifies the account at `url`.
    Blocked {
        reason: String,
        url: Option<String>,
    },
}

impl AccountState {
    pub fn is_active(&self) -> bool {
        matches!(self, AccountState::Active)
    }

    /// `active`, `disabled` or `blocked`: the name stored and shown.
    pub fn name(&self) -> &'static str {
        match self {
            AccountState::Active => "active",
            AccountState::Disabled { .. } => "disabled",
            AccountState::Blocked { .. } => "blocked",
        }
    }
}

/// A stored account with its tokens opened. `Debug` shows no token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// Short random id (8 hex characters).
    pub id: String,
    /// Lowercase e-mail; unique within a pool.
    pub email: String,
    pub pool: Pool,
    pub refresh_token: Secret,
    pub access_token: Option<Secret>,
    pub access_expires_at: Option<OffsetDateTime>,
    pub project_id: Option<String>,
    pub tier: Option<String>,
    pub state: AccountState,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// What can be known of an account without its seal key: everything but the tokens
/// ([`Store::list_account_infos`](crate::Store::list_account_infos)). Listing accounts
/// never needs a secret, so an account whose tokens cannot be opened is still shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    pub id: String,
    pub email: String,
    pub pool: Pool,
    pub project_id: Option<String>,
    pub tier: Option<String>,
    pub state: AccountState,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// What [`Store::upsert_account`](crate::Store::upsert_account) adds or updates.
#[derive(Debug, Clone)]
pub struct NewAccount {
    /// Matched case-insensitively; stored lowercase.
    pub email: String,
    pub pool: Pool,
    pub refresh_token: Secret,
    /// The access token obtained with the refresh token, if any. Replaces the stored
    /// one (also when `None`: an access token belongs to its refresh token).
    pub access_token: Option<Secret>,
    pub access_expires_at: Option<OffsetDateTime>,
    /// Replaces the stored project when `Some`; `None` keeps it.
    pub project_id: Option<String>,
    /// Replaces the stored tier when `Some`; `None` keeps it.
    pub tier: Option<String>,
}

impl NewAccount {
    /// An Antigravity account known only by its refresh token; the token, project and
    /// tier are filled in when it is first used.
    pub fn antigravity(email: impl Into<String>, refresh_token: impl Into<Secret>) -> NewAccount {
        NewAccount {
            email: email.into(),
            pool: Pool::Antigravity,
            refresh_token: refresh_token.into(),
            access_token: None,
            access_expires_at: None,
            project_id: None,
            tier: None,
        }
    }
}

/// A refreshed access token, and the refresh token if Google rotated it.
#[derive(Debug, Clone)]
pub struct TokenUpdate {
    pub access_token: Secret,
    pub access_expires_at: OffsetDateTime,
    pub refresh_token: Option<Secret>,
}

/// The form e-mails are stored and looked up in.
pub(crate) fn normalize_email(email: &str) -> Result<String, StoreError> {
    let email = email.trim().to_lowercase();
    if email.is_empty() {
        return Err(StoreError::InvalidInput {
            what: "account e-mail",
            problem: "it is empty".to_owned(),
        });
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_names() {
        assert_eq!(Pool::CodeAssist.as_str(), "code-assist");
        assert_eq!("gemini-api".parse::<Pool>().unwrap(), Pool::GeminiApi);
        let err = "vertex".parse::<Pool>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown pool \"vertex\" (expected one of: antigravity, code-assist, gemini-api)"
        );
        assert_eq!(
            serde_json::to_string(&Pool::Antigravity).unwrap(),
            "\"antigravity\""
        );
    }

    #[test]
    fn state_json_carries_the_reason() {
        let state = AccountState::Blocked {
            reason: "needs verification".into(),
            url: Some("https://accounts.google.com/x".into()),
        };
        assert_eq!(
            serde_json::to_value(&state).unwrap(),
            serde_json::json!({"state": "blocked", "reason": "needs verification", "url": "https://accounts.google.com/x"})
        );
        assert_eq!(
            serde_json::to_value(AccountState::Active).unwrap(),
            serde_json::json!({"state": "active"})
        );
    }

    #[test]
    fn emails_are_trimmed_and_lowercased() {
        assert_eq!(
            normalize_email(" Alice@Example.COM ").unwrap(),
            "alice@example.com"
        );
        assert!(matches!(
            normalize_email("  "),
            Err(StoreError::InvalidInput { .. })
        ));
    }
}
