//! Smart warmup as `agm serve` runs it (`[warmup]`, off by default): every
//! `interval`, the plan of `agm_pool::warmup` over the active accounts' stored quota
//! snapshots, then one minimal request (one token out) per warmup due, on that
//! account only. A round stops at the first failure. Each warmup is audited, counted
//! (`agm_warmups_total{result}`) and remembered under `warmup:history`, which
//! `agm warmup status` reads.

use std::time::{Duration, Instant};

use agm_pool::warmup::{self, Due, WarmupAccount, WarmupConfig, WarmupHistory};
use agm_store::AuditKind;
use agm_wire::gemini::{Content, GenerateContentRequest, GenerationConfig, Part};
use time::OffsetDateTime;

use crate::app::{AppState, SharedState};
use crate::config::WarmupSection;
use crate::state::{StateError, keys};

/// The planner's settings from `[warmup]`.
pub fn config_of(section: &WarmupSection) -> WarmupConfig {
    WarmupConfig {
        groups: section.groups.clone(),
        window: time::Duration::try_from(section.window).unwrap_or(time::Duration::hours(5)),
        quiet_hours: section.quiet_hours.0,
    }
}

/// How one warmup went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub due: Due,
    /// `None`: sent and answered; else why not.
    pub error: Option<String>,
}

/// How often the job looks at `[warmup]` in force (the console turns it on or off and
/// changes its interval while the server runs).
const LOOK_EVERY: Duration = Duration::from_secs(5);

/// The background job: a round every `[warmup] interval` while `[warmup] enabled`, as
/// the settings in force say (on the leader only, in cluster mode).
pub async fn run(state: SharedState) {
    let mut last = Instant::now();
    loop {
        let section = state.console.settings.current().warmup;
        tokio::time::sleep(LOOK_EVERY.min(section.interval)).await;
        let section = state.console.settings.current().warmup;
        if !section.enabled || last.elapsed() < section.interval {
            continue;
        }
        last = Instant::now();
        // Cluster mode: the leader's job (the history is shared in the store).
        if state.runs_cluster_jobs() {
            round(&state, OffsetDateTime::now_utc()).await;
        }
    }
}

/// What each active account looks like to the planner: its stored quota snapshot,
/// without the models cooling down; not usable while safe mode is on or its project id
/// keeps failing.
async fn accounts(state: &AppState) -> Result<Vec<WarmupAccount>, StateError> {
    let now = Instant::now();
    let mut out = Vec::new();
    let active = state.accounts.active_accounts().await.unwrap_or_default();
    for (id, email) in active {
        let Some(snapshot) = crate::state::quota::load(&state.shared, &id).await? else {
            continue;
        };
        let models = snapshot
            .models
            .iter()
            .filter(|m| state.accounts.cooldowns.until(&id, &m.model, now).is_none())
            .map(|m| warmup::ModelQuota {
                model: m.model.clone(),
                remaining: m.remaining_fraction,
                reset_time: m.reset_time,
            })
            .collect();
        out.push(WarmupAccount {
            usable: !state.safe_mode.is_active() && !state.safe_mode.account_tripped(&email),
            id,
            models,
        });
    }
    Ok(out)
}

/// One round at `now`: plans, sends what is due (stopping at the first failure) and
/// records it. Returns what was tried.
pub async fn round(state: &AppState, now: OffsetDateTime) -> Vec<Outcome> {
    let config = config_of(&state.console.settings.current().warmup);
    let (accounts, history) = match (
        accounts(state).await,
        state.shared.get(&keys::WARMUP_HISTORY).await,
    ) {
        (Ok(accounts), Ok(history)) => (accounts, history.unwrap_or_default()),
        (Err(e), _) | (_, Err(e)) => {
            tracing::warn!(error = %e, "warmup: cannot read the accounts' state");
            return Vec::new();
        }
    };
    let mut outcomes = Vec::new();
    for due in warmup::plan(&config, &accounts, &history, now) {
        let error = send(state, &due).await.err().map(|e| e.to_string());
        let result = if error.is_some() { "failed" } else { "sent" };
        metrics::counter!("agm_warmups_total", "result" => result).increment(1);
        let detail = match &error {
            None => format!(
                "{}: a window started with one minimal request to {}",
                due.group, due.model
            ),
            Some(e) => format!(
                "{}: the warmup request to {} failed: {e}",
                due.group, due.model
            ),
        };
        let account = state.accounts.label(&due.account).await;
        crate::state::audit::append_audit(&state.store, AuditKind::Warmup, &account, &detail).await;
        if error.is_none() {
            let reset = accounts
                .iter()
                .find(|a| a.id == due.account)
                .and_then(|a| a.models.iter().find(|m| m.model == due.model))
                .and_then(|m| m.reset_time);
            let recorded = due.clone();
            let config = config.clone();
            let written = state
                .shared
                .update(
                    &keys::WARMUP_HISTORY,
                    move |stored: Option<WarmupHistory>| {
                        let mut history = stored.unwrap_or_default();
                        warmup::record(&config, &mut history, &recorded, reset, now);
                        (Some(history), ())
                    },
                )
                .await;
            if let Err(e) = written {
                tracing::warn!(error = %e, "warmup: cannot record the warmup");
            }
        }
        let failed = error.is_some();
        outcomes.push(Outcome { due, error });
        if failed {
            tracing::warn!("warmup: stopping this round at the first failure");
            break;
        }
    }
    outcomes
}

/// Why a warmup was not sent or not answered.
#[derive(Debug, thiserror::Error)]
enum WarmupError {
    #[error(transparent)]
    Lease(#[from] crate::routing::accounts::LeaseError),
    #[error(transparent)]
    Upstream(#[from] agm_google::UpstreamError),
}

/// The smallest request that starts a quota window: one word in, one token out.
async fn send(state: &AppState, due: &Due) -> Result<(), WarmupError> {
    let lease = state.accounts.lease_for(&due.account).await?;
    let call = crate::routing::executor::UpstreamCall {
        model: &due.model,
        request: GenerateContentRequest {
            contents: vec![Content {
                role: Some("user".into()),
                parts: vec![Part::text("hi")],
            }],
            generation_config: Some(GenerationConfig {
                max_output_tokens: Some(1),
                ..GenerationConfig::default()
            }),
            ..GenerateContentRequest::default()
        },
    };
    call.generate_once(state, &lease).await?;
    Ok(())
}

/// One account and model group, as `agm warmup status` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StatusRow {
    pub account: String,
    pub email: String,
    pub group: String,
    /// The group's model in the account's latest quota snapshot, if offered.
    pub model: Option<String>,
    pub remaining: Option<f64>,
    /// The last warmup, and when the window it started ends.
    #[serde(with = "time::serde::rfc3339::option")]
    pub warmed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub window_ends: Option<OffsetDateTime>,
    /// Whether a round now would warm it.
    pub due: bool,
}

/// The warmup state of every active account, from the store (no server needed): what
/// was warmed, and what a round at `now` would warm. Cooldowns are a running server's
/// (`agm accounts list` shows them); this view leaves them out.
pub async fn status(
    store: &agm_store::Store,
    shared: &crate::state::Shared,
    section: &WarmupSection,
    now: OffsetDateTime,
) -> Result<Vec<StatusRow>, StateError> {
    let config = config_of(section);
    let history = shared.get(&keys::WARMUP_HISTORY).await?.unwrap_or_default();
    let mut rows = Vec::new();
    for info in store.list_account_infos().await? {
        if !info.state.is_active() {
            continue;
        }
        let snapshot = crate::state::quota::load(shared, &info.id).await?;
        let models: Vec<warmup::ModelQuota> = snapshot
            .iter()
            .flat_map(|s| &s.models)
            .map(|m| warmup::ModelQuota {
                model: m.model.clone(),
                remaining: m.remaining_fraction,
                reset_time: m.reset_time,
            })
            .collect();
        let account = WarmupAccount {
            id: info.id.clone(),
            usable: true,
            models,
        };
        let due = warmup::plan(&config, std::slice::from_ref(&account), &history, now);
        for group in &config.groups {
            let quota = account
                .models
                .iter()
                .find(|m| m.model.starts_with(group.as_str()));
            let warmed = history.warmed.get(&info.id).and_then(|g| g.get(group));
            rows.push(StatusRow {
                account: info.id.clone(),
                email: info.email.clone(),
                group: group.clone(),
                model: quota.map(|q| q.model.clone()),
                remaining: quota.and_then(|q| q.remaining),
                warmed_at: warmed.map(|w| w.at),
                window_ends: warmed.map(|w| w.window_ends),
                due: due.iter().any(|d| d.group == *group),
            });
        }
    }
    Ok(rows)
}
