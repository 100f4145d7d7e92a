//! What the store hands to and gets from a backend: the same as the public types, but
//! with secrets still sealed. Sealing happens above the backends, so every backend
//! stores the same sealed strings.

use time::OffsetDateTime;

use crate::account::{AccountState, Pool};

/// An account row as stored.
#[derive(Debug, Clone)]
pub(crate) struct AccountRow {
    pub id: String,
    pub email: String,
    pub pool: Pool,
    pub refresh_token: String,
    pub access_token: Option<String>,
    pub access_expires_at: Option<OffsetDateTime>,
    pub project_id: Option<String>,
    pub tier: Option<String>,
    pub state: AccountState,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// An account to insert or update by (pool, email), tokens sealed.
#[derive(Debug, Clone)]
pub(crate) struct SealedNewAccount {
    pub email: String,
    pub pool: Pool,
    pub refresh_token: String,
    pub access_token: Option<String>,
    pub access_expires_at: Option<OffsetDateTime>,
    pub project_id: Option<String>,
    pub tier: Option<String>,
}

/// New tokens for an account, sealed.
#[derive(Debug, Clone)]
pub(crate) struct SealedTokenUpdate {
    pub access_token: String,
    pub access_expires_at: OffsetDateTime,
    pub refresh_token: Option<String>,
}
