//! The audit log: what the gateway decided and why (safe mode, account switches,
//! breakers, account and key changes, settings changed in the console, alerts).

use time::OffsetDateTime;

use crate::names::named_enum;

named_enum! {
    /// What an audit event is about.
    pub enum AuditKind ("audit kind") {
        SafeMode = "safe-mode",
        AccountSwitch = "account-switch",
        Breaker = "breaker",
        Account = "account",
        Alert = "alert",
        Key = "key",
        Warmup = "warmup",
        Settings = "settings",
    }
}

/// One event to record. Never put a secret in `subject` or `detail`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub at: OffsetDateTime,
    pub kind: AuditKind,
    /// What the event is about: an account e-mail, a key id, a model.
    pub subject: String,
    /// What happened, in words.
    pub detail: String,
}

/// A recorded event (`at` truncated to the millisecond).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// Increases with every event appended.
    pub id: i64,
    pub event: AuditEvent,
}
