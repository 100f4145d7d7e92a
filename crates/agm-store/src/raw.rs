//! Rows as every backend stores them, column for column, before names and times are
//! checked: one shape for SQLite and PostgreSQL, so both check them the same way, and
//! so `agm store migrate` can copy a row from one to the other exactly as it is (and
//! checksum it the same on both sides).

use sha2::{Digest, Sha256};

use crate::account::{AccountState, Pool};
use crate::audit::{AuditEvent, AuditKind, AuditRecord};
use crate::client_key::{ClientKey, KeyPolicy, models_column, models_from_column};
use crate::error::StoreError;
use crate::request_log::{ApiKind, RequestLogEntry, RequestLogRecord};
use crate::rows::AccountRow;
use crate::timestamp::{from_millis, from_millis_opt, to_millis};

/// `since` as the millisecond bound of a `WHERE at >= ...`.
pub(crate) fn since_millis(since: Option<time::OffsetDateTime>) -> i64 {
    since.map_or(i64::MIN, to_millis)
}

pub(crate) fn limit_to_i64(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// A count as stored (counts past `i64::MAX` are capped).
pub(crate) fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// An `accounts` row; the tokens are sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawAccount {
    pub id: String,
    pub email: String,
    pub pool: String,
    pub refresh_token: String,
    pub access_token: Option<String>,
    pub access_expires_at: Option<i64>,
    pub project_id: Option<String>,
    pub tier: Option<String>,
    pub state: String,
    pub state_reason: Option<String>,
    pub state_url: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl RawAccount {
    pub(crate) fn check(self) -> Result<AccountRow, StoreError> {
        let pool = parse_pool(self.pool)?;
        let reason = self.state_reason.unwrap_or_default();
        let state = match self.state.as_str() {
            "active" => AccountState::Active,
            "disabled" => AccountState::Disabled { reason },
            "blocked" => AccountState::Blocked {
                reason,
                url: self.state_url,
            },
            _ => {
                return Err(StoreError::InvalidValue {
                    column: "accounts.state",
                    value: self.state,
                });
            }
        };
        Ok(AccountRow {
            id: self.id,
            email: self.email,
            pool,
            refresh_token: self.refresh_token,
            access_token: self.access_token,
            access_expires_at: from_millis_opt(
                self.access_expires_at,
                "accounts.access_expires_at",
            )?,
            project_id: self.project_id,
            tier: self.tier,
            state,
            created_at: from_millis(self.created_at, "accounts.created_at")?,
            updated_at: from_millis(self.updated_at, "accounts.updated_at")?,
        })
    }

    fn digest(&self, h: &mut RowHasher) {
        h.text(&self.id)
            .text(&self.email)
            .text(&self.pool)
            .text(&self.refresh_token)
            .opt_text(self.access_token.as_deref())
            .opt_int(self.access_expires_at)
            .opt_text(self.project_id.as_deref())
            .opt_text(self.tier.as_deref())
            .text(&self.state)
            .opt_text(self.state_reason.as_deref())
            .opt_text(self.state_url.as_deref())
            .int(self.created_at)
            .int(self.updated_at);
    }
}

pub(crate) fn parse_pool(pool: String) -> Result<Pool, StoreError> {
    pool.parse::<Pool>().map_err(|_| StoreError::InvalidValue {
        column: "accounts.pool",
        value: pool,
    })
}

/// The state as its three columns.
pub(crate) fn state_columns(state: &AccountState) -> (&'static str, Option<&str>, Option<&str>) {
    match state {
        AccountState::Active => ("active", None, None),
        AccountState::Disabled { reason } => ("disabled", Some(reason), None),
        AccountState::Blocked { reason, url } => ("blocked", Some(reason), url.as_deref()),
    }
}

/// A `client_keys` row without its hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawKey {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub policy: RawPolicy,
}

/// A key's policy columns (`models` is comma-separated patterns).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct RawPolicy {
    pub models: Option<String>,
    pub rpm: Option<i64>,
    pub concurrency: Option<i64>,
    pub daily_tokens: Option<i64>,
    pub daily_requests: Option<i64>,
    pub expires_at: Option<i64>,
}

impl RawPolicy {
    pub(crate) fn from_policy(policy: &KeyPolicy) -> RawPolicy {
        RawPolicy {
            models: models_column(&policy.models),
            rpm: policy.rpm.map(i64::from),
            concurrency: policy.concurrency.map(i64::from),
            daily_tokens: policy.daily_tokens.map(to_i64),
            daily_requests: policy.daily_requests.map(to_i64),
            expires_at: policy.expires_at.map(to_millis),
        }
    }

    fn check(self) -> Result<KeyPolicy, StoreError> {
        fn limit<T: TryFrom<i64>>(
            v: Option<i64>,
            column: &'static str,
        ) -> Result<Option<T>, StoreError> {
            v.map(|v| {
                T::try_from(v).map_err(|_| StoreError::InvalidValue {
                    column,
                    value: v.to_string(),
                })
            })
            .transpose()
        }
        Ok(KeyPolicy {
            models: models_from_column(self.models.as_deref()),
            rpm: limit(self.rpm, "client_keys.rpm")?,
            concurrency: limit(self.concurrency, "client_keys.concurrency")?,
            daily_tokens: limit(self.daily_tokens, "client_keys.daily_tokens")?,
            daily_requests: limit(self.daily_requests, "client_keys.daily_requests")?,
            expires_at: from_millis_opt(self.expires_at, "client_keys.expires_at")?,
        })
    }

    fn digest(&self, h: &mut RowHasher) {
        h.opt_text(self.models.as_deref())
            .opt_int(self.rpm)
            .opt_int(self.concurrency)
            .opt_int(self.daily_tokens)
            .opt_int(self.daily_requests)
            .opt_int(self.expires_at);
    }
}

impl RawKey {
    pub(crate) fn check(self) -> Result<ClientKey, StoreError> {
        Ok(ClientKey {
            id: self.id,
            name: self.name,
            prefix: self.prefix,
            created_at: from_millis(self.created_at, "client_keys.created_at")?,
            last_used_at: from_millis_opt(self.last_used_at, "client_keys.last_used_at")?,
            revoked_at: from_millis_opt(self.revoked_at, "client_keys.revoked_at")?,
            policy: self.policy.check()?,
        })
    }
}

/// A whole `client_keys` row, hash included (copying only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawKeyRow {
    pub key: RawKey,
    pub secret_sha256: String,
}

impl RawKeyRow {
    fn digest(&self, h: &mut RowHasher) {
        h.text(&self.key.id)
            .text(&self.key.name)
            .text(&self.key.prefix)
            .text(&self.secret_sha256)
            .int(self.key.created_at)
            .opt_int(self.key.last_used_at)
            .opt_int(self.key.revoked_at);
        self.key.policy.digest(h);
    }
}

/// A `settings` row; `value` is JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawSetting {
    pub key: String,
    pub value: String,
    pub updated_at: i64,
}

impl RawSetting {
    fn digest(&self, h: &mut RowHasher) {
        h.text(&self.key).text(&self.value).int(self.updated_at);
    }
}

/// Parses a stored setting value.
pub(crate) fn parse_setting(key: &str, text: &str) -> Result<serde_json::Value, StoreError> {
    serde_json::from_str(text).map_err(|_| StoreError::InvalidValue {
        column: "settings.value",
        value: format!("(the value of {key}, not JSON)"),
    })
}

/// An `audit_log` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawAudit {
    pub id: i64,
    pub at: i64,
    pub kind: String,
    pub subject: String,
    pub detail: String,
}

impl RawAudit {
    pub(crate) fn check(self) -> Result<AuditRecord, StoreError> {
        let kind = self
            .kind
            .parse::<AuditKind>()
            .map_err(|_| StoreError::InvalidValue {
                column: "audit_log.kind",
                value: self.kind.clone(),
            })?;
        Ok(AuditRecord {
            id: self.id,
            event: AuditEvent {
                at: from_millis(self.at, "audit_log.at")?,
                kind,
                subject: self.subject,
                detail: self.detail,
            },
        })
    }

    fn digest(&self, h: &mut RowHasher) {
        h.int(self.id)
            .int(self.at)
            .text(&self.kind)
            .text(&self.subject)
            .text(&self.detail);
    }
}

/// A `request_log` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawRequest {
    pub id: i64,
    pub at: i64,
    pub api: String,
    pub client_model: String,
    pub upstream_model: String,
    pub account_id: Option<String>,
    pub status: i64,
    pub latency_ms: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub error_class: Option<String>,
    pub route: String,
    pub attempts: i64,
    pub overhead_us: Option<i64>,
    pub context_scaled: Option<String>,
    pub key_id: Option<String>,
}

impl RawRequest {
    /// A new entry's row; the database gives the id.
    pub(crate) fn from_entry(entry: &RequestLogEntry) -> RawRequest {
        RawRequest {
            id: 0,
            at: to_millis(entry.at),
            api: entry.api.as_str().to_owned(),
            client_model: entry.client_model.clone(),
            upstream_model: entry.upstream_model.clone(),
            account_id: entry.account_id.clone(),
            status: i64::from(entry.status),
            latency_ms: to_i64(entry.latency_ms),
            input_tokens: to_i64(entry.input_tokens),
            output_tokens: to_i64(entry.output_tokens),
            error_class: entry.error_class.clone(),
            route: entry.route.clone(),
            attempts: i64::from(entry.attempts),
            overhead_us: entry.overhead_us.map(to_i64),
            context_scaled: entry.context_scaled.clone(),
            key_id: entry.key_id.clone(),
        }
    }

    pub(crate) fn check(self) -> Result<RequestLogRecord, StoreError> {
        let api = self
            .api
            .parse::<ApiKind>()
            .map_err(|_| StoreError::InvalidValue {
                column: "request_log.api",
                value: self.api.clone(),
            })?;
        let status = u16::try_from(self.status).map_err(|_| StoreError::InvalidValue {
            column: "request_log.status",
            value: self.status.to_string(),
        })?;
        let count = |v: i64| u64::try_from(v).unwrap_or(0);
        Ok(RequestLogRecord {
            id: self.id,
            entry: RequestLogEntry {
                at: from_millis(self.at, "request_log.at")?,
                api,
                client_model: self.client_model,
                upstream_model: self.upstream_model,
                account_id: self.account_id,
                status,
                latency_ms: count(self.latency_ms),
                input_tokens: count(self.input_tokens),
                output_tokens: count(self.output_tokens),
                error_class: self.error_class,
                route: self.route,
                attempts: u32::try_from(self.attempts).unwrap_or(0),
                overhead_us: self.overhead_us.map(count),
                context_scaled: self.context_scaled,
                key_id: self.key_id,
            },
        })
    }

    fn digest(&self, h: &mut RowHasher) {
        h.int(self.id)
            .int(self.at)
            .text(&self.api)
            .text(&self.client_model)
            .text(&self.upstream_model)
            .opt_text(self.account_id.as_deref())
            .int(self.status)
            .int(self.latency_ms)
            .int(self.input_tokens)
            .int(self.output_tokens)
            .opt_text(self.error_class.as_deref())
            .text(&self.route)
            .int(self.attempts)
            .opt_int(self.overhead_us)
            .opt_text(self.context_scaled.as_deref())
            .opt_text(self.key_id.as_deref());
    }
}

/// A row that can be checksummed: every column, in a form where no two rows collide.
pub(crate) trait Digestible {
    fn row_digest(&self) -> u128;
}

macro_rules! digestible {
    ($($t:ty),*) => {$(
        impl Digestible for $t {
            fn row_digest(&self) -> u128 {
                let mut h = RowHasher(Sha256::new());
                self.digest(&mut h);
                h.finish()
            }
        }
    )*};
}

digestible!(RawAccount, RawKeyRow, RawSetting, RawAudit, RawRequest);

/// Feeds columns into SHA-256, each tagged and length-prefixed, so that no two
/// different rows feed the same bytes.
struct RowHasher(Sha256);

impl RowHasher {
    fn text(&mut self, s: &str) -> &mut Self {
        self.0.update([b'T']);
        self.0.update((s.len() as u64).to_le_bytes());
        self.0.update(s.as_bytes());
        self
    }

    fn opt_text(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.text(s),
            None => {
                self.0.update([b'N']);
                self
            }
        }
    }

    fn int(&mut self, v: i64) -> &mut Self {
        self.0.update([b'I']);
        self.0.update(v.to_le_bytes());
        self
    }

    fn opt_int(&mut self, v: Option<i64>) -> &mut Self {
        match v {
            Some(v) => self.int(v),
            None => {
                self.0.update([b'N']);
                self
            }
        }
    }

    /// The first 128 bits of the hash.
    fn finish(&mut self) -> u128 {
        let digest = std::mem::take(&mut self.0).finalize();
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        u128::from_le_bytes(first)
    }
}
