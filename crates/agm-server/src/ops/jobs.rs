//! Background jobs beside the request path, started with the server and stopped with
//! it: following safe-mode changes made with the CLI, storing the running cooldowns and
//! following the CLI's requests to clear them, refreshing each account's quota (for
//! quota protection), pruning the request log and expired sticky sessions, and keeping
//! the discovery telemetry where `agm doctor` can read it, and checking for a newer
//! release (`crate::ops::updates`). Also the one-off quota re-check after a quota limit with
//! an absurd hint.

use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::app::SharedState;

/// How often the request log is pruned and expired sticky sessions are dropped.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(10 * 60);
/// How often the cooldowns are written and the CLI's clear requests are read.
const COOLDOWN_SYNC_EVERY: Duration = Duration::from_secs(2);
/// How often the discovery telemetry is written for `agm doctor`.
const TELEMETRY_EVERY: Duration = Duration::from_secs(60);
/// The project-discovery summary a server writes for `agm doctor`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DiscoveryTelemetry {
    /// When it was written (RFC 3339).
    pub written_at: String,
    /// `agm_google::DiscoverySummary`, as serialized (attempts, success_rate, p50_ms,
    /// p95_ms, p99_ms, errors_by_class).
    pub summary: serde_json::Value,
}

/// Starts every job; they end when the returned set is dropped.
pub fn start(state: &SharedState) -> JoinSet<()> {
    let mut jobs = JoinSet::new();
    jobs.spawn(follow_safe_mode(state.clone()));
    jobs.spawn(housekeeping(state.clone()));
    jobs.spawn(telemetry(state.clone()));
    jobs.spawn(keep_cooldowns(state.clone()));
    jobs.spawn(keep_sessions(state.clone()));
    jobs.spawn(keep_daily_cap(state.clone()));
    // Never with the Antigravity path off: it would be a call with the accounts. It
    // runs rounds only while `[warmup] enabled` (the console can turn it on).
    if state.config.routing.enable_antigravity {
        jobs.spawn(crate::ops::warmup::run(state.clone()));
    }
    {
        let state = state.clone();
        jobs.spawn(async move { state.request_log.run(state.store.clone()).await });
    }
    // With the Antigravity path off (`ENABLE_ANTIGRAVITY_AUTH=false`, the rollback) no
    // call goes out with the accounts, this one's neither.
    if !state.config.routing.quota_refresh.is_zero() && state.config.routing.enable_antigravity {
        jobs.spawn(refresh_quota(state.clone()));
    }
    if state.config.updates.check {
        let leader = state.clone();
        jobs.spawn(crate::ops::updates::watch(
            state.shared.clone(),
            state.config.updates.clone(),
            move || leader.runs_cluster_jobs(),
        ));
    }
    jobs
}

async fn follow_safe_mode(state: SharedState) {
    loop {
        sync_safe_mode(&state).await;
        tokio::time::sleep(crate::routing::safe_mode::SYNC_EVERY).await;
    }
}

/// Reads the stored safe-mode state now (every second, and at once when another
/// replica announces a change); a reset-all clears this process's breakers and
/// cooldowns.
pub async fn sync_safe_mode(state: &crate::app::AppState) {
    {
        match state.safe_mode.sync().await {
            Ok(true) => {
                let now = Instant::now();
                let breakers = state.accounts.breakers.reset_all(now);
                state.accounts.cooldowns.clear_all();
                for transition in &breakers {
                    metrics::gauge!(
                        "circuit_breaker_state",
                        "endpoint" => transition.key.endpoint.clone(),
                        "account" => transition.key.account.clone()
                    )
                    .set(0.0);
                }
                tracing::warn!(
                    breakers = breakers.len(),
                    "reset-all: circuit breakers and cooldowns cleared"
                );
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "could not read the safe-mode state"),
        }
    }
}

/// Writes the running cooldowns to the store when they change (a restart keeps them;
/// `agm accounts list` shows them) and clears them when the CLI asks.
async fn keep_cooldowns(state: SharedState) {
    use crate::state::cooldowns as sync;
    let mut seen_clear = sync::load_clear(&state.shared)
        .await
        .map(|r| r.generation)
        .unwrap_or(0);
    let mut written: Option<Vec<(String, String)>> = None;
    loop {
        tokio::time::sleep(COOLDOWN_SYNC_EVERY).await;
        if let Ok(request) = sync::load_clear(&state.shared).await
            && request.generation > seen_clear
        {
            seen_clear = request.generation;
            let cleared = match &request.account {
                Some(account) => state.accounts.cooldowns.clear_account(account),
                None => {
                    let n = state.accounts.cooldowns.list(Instant::now()).len();
                    state.accounts.cooldowns.clear_all();
                    n
                }
            };
            tracing::info!(cleared, account = ?request.account, "cooldowns cleared from the CLI");
            if let Some(cluster) = &state.cluster {
                cluster.clear_cooldowns(request.account.as_deref()).await;
            }
        }
        let running = sync::snapshot(&state.accounts.cooldowns);
        let keys: Vec<(String, String)> = running
            .iter()
            .map(|c| (c.account.clone(), c.model.clone()))
            .collect();
        if written.as_ref() != Some(&keys) {
            match sync::save(&state.shared, &running).await {
                Ok(()) => written = Some(keys),
                Err(e) => tracing::debug!(error = %e, "could not store the cooldowns"),
            }
        }
    }
}

/// Saves the sticky sessions and signatures now and then, so a crash loses little.
async fn keep_sessions(state: SharedState) {
    loop {
        tokio::time::sleep(crate::state::sessions::SAVE_EVERY).await;
        if let Err(e) = crate::state::sessions::save(&state).await {
            tracing::debug!(error = %e, "could not save the conversations");
        }
    }
}

/// How often the paid pool's daily count is shared (a crash loses at most this much,
/// and replicas see each other's requests this late).
const DAILY_CAP_SYNC_EVERY: Duration = Duration::from_secs(2);

/// Shares the paid pool's daily request count (`[safe_mode] daily_request_cap`).
async fn keep_daily_cap(state: SharedState) {
    loop {
        if let Err(e) = state.daily_cap.sync(&state.shared).await {
            tracing::debug!(error = %e, "could not share the daily request count");
        }
        tokio::time::sleep(DAILY_CAP_SYNC_EVERY).await;
    }
}

async fn housekeeping(state: SharedState) {
    loop {
        // As changed in the console, if it was.
        let keep = state.console.settings.request_log_retention();
        let cutoff = time::OffsetDateTime::now_utc()
            - time::Duration::try_from(keep).unwrap_or(time::Duration::days(7));
        // The store is shared in cluster mode: the leader prunes it.
        if state.runs_cluster_jobs() {
            match state.store.prune_request_log(cutoff).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "pruned the request log"),
                Err(e) => tracing::warn!(error = %e, "could not prune the request log"),
            }
        }
        state.accounts.selector.prune_sessions(Instant::now());
        tokio::time::sleep(HOUSEKEEPING_EVERY).await;
    }
}

async fn telemetry(state: SharedState) {
    loop {
        tokio::time::sleep(TELEMETRY_EVERY).await;
        if let Err(e) = write_discovery_telemetry(&state).await {
            tracing::debug!(error = %e, "could not store the discovery telemetry");
        }
    }
}

/// Writes the project-discovery summary where `agm doctor` reads it (nothing when no
/// discovery ran yet).
pub async fn write_discovery_telemetry(
    state: &crate::app::AppState,
) -> Result<(), crate::state::StateError> {
    let summary = state.accounts.discovery_stats.summary();
    if summary.attempts == 0 {
        return Ok(());
    }
    let telemetry = DiscoveryTelemetry {
        written_at: agm_store::now_rfc3339(),
        summary: serde_json::to_value(&summary).unwrap_or_default(),
    };
    state
        .shared
        .put(&crate::state::keys::DISCOVERY_TELEMETRY, &telemetry)
        .await
}

/// Fetches each active account's quota now and then, stores the snapshot (as
/// `agm accounts quota` does) and hands the fractions to the pool's quota protection.
async fn refresh_quota(state: SharedState) {
    let every = state.config.routing.quota_refresh;
    loop {
        // First after one interval: at start the stored snapshots are used.
        tokio::time::sleep(every).await;
        if !state.runs_cluster_jobs() {
            continue;
        }
        let accounts = state.accounts.active_accounts().await.unwrap_or_default();
        // The quota and the model catalogue come from one call per account.
        let refresher = crate::routing::catalogue::Refresher::new(&state);
        for (id, email) in accounts {
            // Cluster mode: one fetch per account and interval, whoever leads (a new
            // leader does not fetch again what the last one just fetched).
            if let Some(cluster) = &state.cluster
                && cluster.try_lock(&format!("lease:quota:{id}"), every).await == Some(false)
            {
                continue;
            }
            match refresher.refresh(&id).await {
                Ok(()) => {
                    if let Some(cluster) = &state.cluster {
                        cluster
                            .publish(crate::cluster::Event::Quota {
                                account: id.clone(),
                            })
                            .await;
                    }
                }
                Err(reason) => tracing::debug!(account = %email, %reason, "quota refresh failed"),
            }
        }
    }
}

/// Confirms a quota-exhausted cooldown whose hint was missing or absurd with the
/// account's quota: the cooldown then ends at the model's reset time, or at once if
/// quota is left. Runs on the side; the request has moved on.
pub fn recheck_quota(state: &crate::app::AppState, account_id: &str, model: &str) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let google = state.google.clone();
    let account_id = account_id.to_owned();
    let model = model.to_owned();
    let accounts = std::sync::Arc::clone(&state.accounts);
    handle.spawn(async move {
        let lease = match accounts.lease_for(&account_id).await {
            Ok(lease) => lease,
            Err(reason) => {
                tracing::debug!(%reason, "no quota re-check");
                return;
            }
        };
        let snapshot = match google
            .quota_snapshot(
                &lease.access_token,
                &lease.project,
                time::OffsetDateTime::now_utc(),
            )
            .await
        {
            Ok(snapshot) => snapshot,
            Err(e) => {
                tracing::debug!(account = %lease.email, error = %e, "quota re-check failed");
                return;
            }
        };
        let Some(quota) = snapshot.models.iter().find(|m| m.model == model) else {
            return;
        };
        let now = Instant::now();
        match (quota.remaining_fraction, quota.reset_time) {
            (Some(left), _) if left > 0.0 => {
                accounts.cooldowns.clear(&account_id, &model);
                tracing::info!(account = %lease.email, %model, "quota re-check: quota left; cooldown cleared");
            }
            (_, Some(reset)) => {
                let wait = reset - time::OffsetDateTime::now_utc();
                let wait = Duration::try_from(wait).unwrap_or(Duration::ZERO);
                accounts.cooldowns.set(
                    &account_id,
                    &model,
                    now + wait,
                    agm_pool::cooldown::CooldownReason::QuotaExhausted {
                        needs_quota_recheck: false,
                    },
                );
                tracing::info!(account = %lease.email, %model, reset = %reset, "quota re-check: cooling down until the reset");
            }
            _ => {}
        }
        accounts
            .set_quota(&account_id, crate::state::quota::fractions(&snapshot))
            .await;
    });
}
