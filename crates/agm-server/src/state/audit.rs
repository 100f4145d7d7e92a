//! The audit log, as the server and the CLI write it: each entry awaited where the
//! caller is async, else written on the side by a tracked task that `agm serve` waits
//! for at shutdown ([`drain`]), so no entry is lost to a stop.

use std::sync::LazyLock;
use std::time::Duration;

use agm_store::{AuditEvent, AuditKind, Store};
use tokio_util::task::TaskTracker;

/// The entries being written on the side.
static PENDING: LazyLock<TaskTracker> = LazyLock::new(TaskTracker::new);

/// Appends one audit event; a failure to write is logged, never the caller's problem.
pub async fn append_audit(store: &Store, kind: AuditKind, subject: &str, detail: &str) {
    let event = AuditEvent {
        at: time::OffsetDateTime::now_utc(),
        kind,
        subject: subject.to_owned(),
        detail: detail.to_owned(),
    };
    if let Err(e) = store.append_audit(event).await {
        tracing::warn!(error = %e, "could not write the audit log");
    }
}

/// [`append_audit`] from synchronous code (a circuit breaker's transition): written on
/// the side, and waited for by [`drain`].
pub fn append_audit_later(store: &Store, kind: AuditKind, subject: String, detail: String) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        tracing::warn!(%subject, %detail, "no runtime to write the audit entry");
        return;
    };
    let store = store.clone();
    PENDING.spawn_on(
        async move { append_audit(&store, kind, &subject, &detail).await },
        &handle,
    );
}

/// Waits (at most `limit`) for the entries still being written.
pub async fn drain(limit: Duration) {
    PENDING.close();
    if tokio::time::timeout(limit, PENDING.wait()).await.is_err() {
        tracing::warn!(
            left = PENDING.len(),
            "audit entries still unwritten at shutdown"
        );
    }
    PENDING.reopen();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_written_on_the_side_are_there_after_drain() {
        let store = Store::open_in_memory().await.unwrap();
        for i in 0..20 {
            append_audit_later(
                &store,
                AuditKind::Breaker,
                format!("acc-{i}"),
                "open".into(),
            );
        }
        drain(Duration::from_secs(5)).await;
        let entries = store.list_audit(None, 100).await.unwrap();
        assert_eq!(entries.len(), 20);
    }
}
