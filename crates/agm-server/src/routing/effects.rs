//! The side effects of routing a request, in one place: what the routing plan
//! (`agm_pool::attempts`) asks for after an outcome. One policy for naming accounts:
//! logs and the audit log name an account by its store id plus, in logs only, its
//! e-mail (the operator's own); nothing here reaches a client.

use agm_pool::attempts::Effect;
use agm_store::AuditKind;

use crate::app::AppState;
use crate::routing::accounts::Lease;
use crate::routing::executor::Failure;

/// Performs `effect` for a request to `model`. `lease` is the account last leased,
/// `last` the last failed call (Google's words for a disable reason).
pub async fn apply(
    state: &AppState,
    model: &str,
    effect: Effect,
    lease: Option<&Lease>,
    last: Option<&Failure>,
) {
    let google = || last.map(|l| l.error.message()).unwrap_or_default();
    match effect {
        Effect::InvalidateToken { account } => {
            let refused = lease
                .filter(|l| l.account_id == account)
                .map(|l| l.access_token.as_str());
            state.accounts.invalidate_token(&account, refused).await;
        }
        Effect::InvalidateProject { account } => state.accounts.invalidate_project(&account),
        Effect::OmitProjectHeader { account } => {
            state.accounts.omit_project_header(&account).await;
        }
        Effect::Disable { account, reason } => {
            state
                .accounts
                .disable(&account, &reason.describe(&google()))
                .await;
        }
        Effect::RecheckQuota { account } => crate::ops::jobs::recheck_quota(state, &account, model),
        Effect::Switched { from, to, after } => {
            metrics::counter!("agm_account_switches_total").increment(1);
            // The audit log names accounts as the operator's log does: by e-mail.
            let (from, to) = (
                state.accounts.label(&from).await,
                state.accounts.label(&to).await,
            );
            let detail = format!(
                "{model}: moved from {from} to {to} after: {}",
                agm_google::error_class_name(&after)
            );
            // Awaited: an audit entry is never lost to a shutdown.
            crate::state::audit::append_audit(&state.store, AuditKind::AccountSwitch, &to, &detail)
                .await;
        }
        Effect::VersionRefused { account: _ } => {
            let Some(last) = last else {
                return;
            };
            let google = &state.config.google;
            let (sent, fix) = crate::routing::drift::fix_for(
                last.pool,
                &google.antigravity_version,
                &google.gemini_cli_version,
            );
            state.version_drift.record(
                &state.shared,
                crate::routing::drift::Refusal {
                    at: agm_store::now_rfc3339(),
                    pool: last.pool.to_string(),
                    sent,
                    message: last.error.message(),
                    fix,
                },
            );
        }
        Effect::Succeeded { account } => {
            state.accounts.cooldowns.record_success(&account, model);
            state.version_drift.clear(&state.shared);
            if state.safe_mode.is_active()
                && let Some(lease) = lease.filter(|l| l.account_id == account)
            {
                // A safe-mode probe served by an account whose project was cached:
                // the Antigravity path works again.
                state.safe_mode.record_project_success(&lease.email).await;
            }
            if !state.accounts.catalogue.get().knows(&account) {
                // The first success of an account whose models are not known yet:
                // learn them on the side (one fetchAvailableModels).
                crate::routing::catalogue::Refresher::new(state).learn_in_background(&account);
            }
        }
    }
}
