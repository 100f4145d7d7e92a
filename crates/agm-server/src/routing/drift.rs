//! Client-version drift: Google refusing the client version agm reports ("This version
//! of Antigravity is no longer supported"). No account is to blame and no other
//! account helps; the fix is a config value. While it lasts it shows in `/readyz`,
//! `agm doctor` (through the store) and `agm_upstream_client_outdated`, and every such
//! error tells the client what to change. A later success clears it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use agm_store::Pool;
use serde::{Deserialize, Serialize};

use crate::state::{Shared, keys};

/// The last refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    /// RFC 3339.
    pub at: String,
    /// `antigravity` or `code-assist`.
    pub pool: String,
    /// What agm reported: `antigravity/1.15.8` or `GeminiCLI/0.21.0`.
    pub sent: String,
    /// Google's words.
    pub message: String,
    /// What to change.
    pub fix: String,
}

#[derive(Default)]
pub struct VersionDrift {
    outdated: AtomicBool,
    last: Mutex<Option<Refusal>>,
}

/// What to change for `pool`, with the version agm sent.
pub fn fix_for(
    pool: Pool,
    antigravity_version: &str,
    gemini_cli_version: &str,
) -> (String, String) {
    if pool == Pool::CodeAssist {
        (
            format!("GeminiCLI/{gemini_cli_version}"),
            format!(
                "Google no longer accepts the Gemini CLI version agm reports ({gemini_cli_version}) for code-assist accounts: set [google] gemini_cli_version to the current Gemini CLI release (AGM_GOOGLE__GEMINI_CLI_VERSION=…), or update agm"
            ),
        )
    } else {
        (
            format!("antigravity/{antigravity_version}"),
            format!(
                "Google no longer accepts the Antigravity version agm reports ({antigravity_version}): set [google] antigravity_version to the current Antigravity release (AGM_GOOGLE__ANTIGRAVITY_VERSION=…), or update agm"
            ),
        )
    }
}

impl VersionDrift {
    /// Google refused the version; stored for `agm doctor` on the side.
    pub fn record(&self, shared: &Shared, refusal: Refusal) {
        metrics::counter!("agm_upstream_client_outdated_total", "pool" => refusal.pool.clone())
            .increment(1);
        metrics::gauge!("agm_upstream_client_outdated").set(1.0);
        let first = !self.outdated.swap(true, Ordering::AcqRel);
        if first {
            tracing::error!(sent = %refusal.sent, google = %refusal.message, "{}", refusal.fix);
        }
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(refusal.clone());
        let shared = shared.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                if let Err(e) = shared.put(&keys::VERSION_DRIFT, &Some(refusal)).await {
                    tracing::debug!(error = %e, "could not store the version refusal");
                }
            });
        }
    }

    /// A call went through: the version is accepted again. Cheap when nothing is on.
    pub fn clear(&self, shared: &Shared) {
        if !self.outdated.swap(false, Ordering::AcqRel) {
            return;
        }
        metrics::gauge!("agm_upstream_client_outdated").set(0.0);
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        tracing::info!("Google accepts agm's client version again");
        let shared = shared.clone();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = shared.put(&keys::VERSION_DRIFT, &None).await;
            });
        }
    }

    /// The refusal in force, if any.
    pub fn current(&self) -> Option<Refusal> {
        if !self.outdated.load(Ordering::Acquire) {
            return None;
        }
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The stored refusal, for `agm doctor` (no server needed).
pub async fn stored(shared: &Shared) -> Option<Refusal> {
    shared.get(&keys::VERSION_DRIFT).await.ok()??
}
