//! Project discovery (the PRD's `fetchProjectID`, docs/PROTOCOL.md §2): `loadCodeAssist`
//! names the account's Cloud Code project, or the tier to onboard to; onboarding is a
//! long-running operation polled until done. Setup calls are retried by the PRD's
//! error table, every wait goes through the caller's `sleep`, and every call is
//! recorded in [`DiscoveryStats`]. No project id is ever made up: an account without
//! one is an error that says why.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use agm_wire::cloudcode::{LoadCodeAssistResponse, Operation, Tier};

use crate::classify::{ErrorClass, UpstreamError};
use crate::client::GoogleClient;
use crate::stats::{AttemptOutcome, DiscoveryAttempt, DiscoveryStats, SetupCall, error_class_name};

/// Tiers whose onboarding takes no project: Google makes one.
const MANAGED_PROJECT_TIERS: [&str; 2] = ["free-tier", "legacy-tier"];

/// The tier that needs the user's own Google Cloud project.
const STANDARD_TIER: &str = "standard-tier";

/// How hard discovery tries (the PRD's error table). Waits go through the `sleep`
/// given to [`ProjectDiscovery::discover`]; each call is bounded by
/// `GoogleConfig::setup_timeout` (5 s by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryPolicy {
    /// Most polls of an onboarding operation before giving up (default 10).
    pub max_polls: u32,
    /// Wait before each poll (default 1 s).
    pub poll_interval: Duration,
    /// Retries after a 429 (default 3, waiting 1 s, 2 s, 4 s).
    pub rate_limit_retries: u32,
    /// Retries after a 5xx (default 3).
    pub server_error_retries: u32,
    /// Retries after a timeout or a network failure (default 2).
    pub network_retries: u32,
    /// The first wait before a retry, doubled for each further retry of the same kind
    /// (default 1 s).
    pub backoff: Duration,
    /// The longest wait before a retry (default 8 s).
    pub max_backoff: Duration,
}

impl Default for DiscoveryPolicy {
    fn default() -> Self {
        DiscoveryPolicy {
            max_polls: 10,
            poll_interval: Duration::from_secs(1),
            rate_limit_retries: 3,
            server_error_retries: 3,
            network_retries: 2,
            backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(8),
        }
    }
}

/// An account's Cloud Code project, as Google named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredProject {
    pub project_id: String,
    /// The Code Assist tier (`currentTier`, or the tier onboarded to), when Google
    /// named one.
    pub tier_id: Option<String>,
    pub tier_name: Option<String>,
    /// The subscription (`paidTier`, e.g. `g1-pro-tier`), when Google named one.
    pub paid_tier_id: Option<String>,
    /// True when this discovery onboarded the account.
    pub onboarded: bool,
}

/// Why an account has no project.
#[derive(Debug, Clone, thiserror::Error)]
pub enum DiscoveryError {
    /// The account's owner must verify it (`VALIDATION_REQUIRED`); block the account
    /// and show the URL. Not retried.
    #[error("Google needs the account's owner to verify it: {}", validation_hint(.url.as_deref()))]
    ValidationRequired {
        url: Option<String>,
        message: String,
    },
    /// The tier (the standard tier) needs the user's own Google Cloud project and none
    /// is configured for the account.
    #[error(
        "the account is on Google's {tier_id} tier, which needs a Google Cloud project of \
         the user's own: configure the project (with the Gemini for Google Cloud API \
         enabled) for this account"
    )]
    ProjectRequired { tier_id: String },
    /// Google named neither a project nor a tier to onboard to.
    #[error("Google offers this account no Code Assist tier to onboard to{}", reasons_suffix(.reasons))]
    NoTier { reasons: Vec<String> },
    /// Onboarding did not finish within the poll bound.
    #[error(
        "onboarding the account was not done after {polls} polls of {operation}; \
         try again later"
    )]
    OnboardingTimedOut { operation: String, polls: u32 },
    /// Onboarding finished with an error, or without a project.
    #[error("onboarding the account failed: {message}")]
    OnboardingFailed { message: String },
    /// Google refused a setup call (403 / 404): the account, or this way of using
    /// Google, is blocked. A safe-mode signal; not retried.
    #[error("{call} was refused: {error}")]
    Refused {
        call: SetupCall,
        class: ErrorClass,
        error: UpstreamError,
    },
    /// A setup call kept failing (429, 5xx, timeouts) through every retry.
    #[error("{call} failed {attempts} times; giving up: {error}")]
    GaveUp {
        call: SetupCall,
        attempts: u32,
        class: ErrorClass,
        error: UpstreamError,
    },
    /// Another failure, not retried here (401: refresh the token first; 400; an
    /// unreadable answer).
    #[error("{call} failed: {error}")]
    Upstream {
        call: SetupCall,
        class: ErrorClass,
        error: UpstreamError,
    },
}

fn validation_hint(url: Option<&str>) -> String {
    match url {
        Some(url) => format!("open {url} signed in as that account, then try again"),
        None => "sign in to Antigravity with that account to see what Google asks".to_owned(),
    }
}

fn reasons_suffix(reasons: &[String]) -> String {
    if reasons.is_empty() {
        String::new()
    } else {
        format!(": {}", reasons.join("; "))
    }
}

impl DiscoveryError {
    /// True when Google refused discovery with a 403 or 404: the caller should count
    /// it toward safe mode (the PRD's error table). A verification request is not one:
    /// it concerns this account only.
    pub fn is_safe_mode_signal(&self) -> bool {
        matches!(self, DiscoveryError::Refused { .. })
    }

    /// The class of the upstream failure behind this error, if there was one.
    pub fn class(&self) -> Option<&ErrorClass> {
        match self {
            DiscoveryError::Refused { class, .. }
            | DiscoveryError::GaveUp { class, .. }
            | DiscoveryError::Upstream { class, .. } => Some(class),
            _ => None,
        }
    }

    /// The upstream failure behind this error, if there was one.
    pub fn upstream(&self) -> Option<&UpstreamError> {
        match self {
            DiscoveryError::Refused { error, .. }
            | DiscoveryError::GaveUp { error, .. }
            | DiscoveryError::Upstream { error, .. } => Some(error),
            _ => None,
        }
    }

    /// True when the account cannot be used until its user acts (verification, a
    /// project to configure, a ban): the caller blocks it with this error's message.
    pub fn needs_the_user(&self) -> bool {
        match self {
            DiscoveryError::ValidationRequired { .. }
            | DiscoveryError::ProjectRequired { .. }
            | DiscoveryError::NoTier { .. } => true,
            DiscoveryError::Refused { class, .. } => matches!(class, ErrorClass::Banned),
            _ => false,
        }
    }
}

/// Finds (or onboards) accounts' projects. Cheap to share.
#[derive(Debug, Clone, Default)]
pub struct ProjectDiscovery {
    policy: DiscoveryPolicy,
}

/// Who discovery is for: `account` names it in telemetry (an e-mail or a hashed id,
/// never a token); `duet_project` is the user's configured Google Cloud project, if
/// any (the standard tier needs one).
#[derive(Debug, Clone, Copy)]
pub struct DiscoveryRequest<'a> {
    pub account: &'a str,
    pub access_token: &'a str,
    pub duet_project: Option<&'a str>,
}

impl ProjectDiscovery {
    pub fn new(policy: DiscoveryPolicy) -> ProjectDiscovery {
        ProjectDiscovery { policy }
    }

    pub fn policy(&self) -> &DiscoveryPolicy {
        &self.policy
    }

    /// Finds the account's project: `loadCodeAssist`, then, when Google names a tier
    /// but no project, `onboardUser` and polls of its operation. Every wait (retry
    /// backoff, poll interval) is `sleep(duration).await`, e.g. `tokio::time::sleep`;
    /// every call is recorded in `stats`.
    pub async fn discover<S, F>(
        &self,
        client: &GoogleClient,
        request: DiscoveryRequest<'_>,
        stats: &DiscoveryStats,
        sleep: S,
    ) -> Result<DiscoveredProject, DiscoveryError>
    where
        S: Fn(Duration) -> F,
        F: Future<Output = ()>,
    {
        let calls = Calls {
            policy: &self.policy,
            account: request.account,
            stats,
            sleep: &sleep,
        };
        let token = request.access_token;
        let load = calls
            .run(SetupCall::LoadCodeAssist, || {
                client.load_code_assist(token, request.duet_project)
            })
            .await?;
        let paid_tier_id = load.paid_tier.as_ref().map(|t| t.id.clone());
        if let Some(project_id) = load
            .cloudaicompanion_project
            .as_ref()
            .map(|p| p.id().trim())
            .filter(|id| !id.is_empty())
        {
            let tier = load.current_tier.as_ref();
            return Ok(DiscoveredProject {
                project_id: project_id.to_owned(),
                tier_id: tier.map(|t| t.id.clone()).filter(|id| !id.is_empty()),
                tier_name: tier.and_then(|t| t.name.clone()),
                paid_tier_id,
                onboarded: false,
            });
        }
        if let Some(ineligible) = load
            .ineligible_tiers
            .iter()
            .find(|t| t.reason_code == "VALIDATION_REQUIRED")
        {
            return Err(DiscoveryError::ValidationRequired {
                url: ineligible
                    .validation_url
                    .clone()
                    .filter(|u| !u.trim().is_empty()),
                message: ineligible.reason_message.clone(),
            });
        }
        let Some(tier) = onboarding_tier(&load) else {
            return Err(DiscoveryError::NoTier {
                reasons: ineligible_reasons(&load),
            });
        };
        let project = if MANAGED_PROJECT_TIERS.contains(&tier.id.as_str()) {
            None
        } else if tier.id == STANDARD_TIER
            || tier.user_defined_cloudaicompanion_project == Some(true)
        {
            let Some(project) = request.duet_project.filter(|p| !p.trim().is_empty()) else {
                return Err(DiscoveryError::ProjectRequired {
                    tier_id: tier.id.clone(),
                });
            };
            Some(project)
        } else {
            None
        };
        tracing::info!(account = %request.account, tier = %tier.id, "onboarding the account");
        let mut operation = calls
            .run(SetupCall::OnboardUser, || {
                client.onboard_user(token, &tier.id, project)
            })
            .await?;
        let mut polls = 0;
        while !operation.done {
            if operation.name.trim().is_empty() {
                return Err(DiscoveryError::OnboardingFailed {
                    message: "Google answered an unfinished operation with no name".into(),
                });
            }
            if polls >= self.policy.max_polls {
                return Err(DiscoveryError::OnboardingTimedOut {
                    operation: operation.name,
                    polls,
                });
            }
            sleep(self.policy.poll_interval).await;
            polls += 1;
            let name = operation.name.clone();
            operation = calls
                .run(SetupCall::GetOperation, || {
                    client.get_operation(token, &name)
                })
                .await?;
        }
        let project_id = onboarded_project(&operation)
            .map_err(|message| DiscoveryError::OnboardingFailed { message })?;
        Ok(DiscoveredProject {
            project_id,
            tier_id: Some(tier.id.clone()),
            tier_name: tier.name.clone(),
            paid_tier_id,
            onboarded: true,
        })
    }
}

/// The tier to onboard to: the current one, else the allowed tier marked default.
fn onboarding_tier(load: &LoadCodeAssistResponse) -> Option<&Tier> {
    load.current_tier
        .as_ref()
        .filter(|t| !t.id.is_empty())
        .or_else(|| {
            load.allowed_tiers
                .iter()
                .find(|t| t.is_default == Some(true) && !t.id.is_empty())
        })
}

/// Why Google finds the account ineligible for each tier it names.
fn ineligible_reasons(load: &LoadCodeAssistResponse) -> Vec<String> {
    load.ineligible_tiers
        .iter()
        .map(|t| {
            let reason = if t.reason_message.is_empty() {
                &t.reason_code
            } else {
                &t.reason_message
            };
            format!("{}: {reason}", t.tier_id)
        })
        .collect()
}

/// The project of a finished onboarding operation, or why there is none.
fn onboarded_project(operation: &Operation) -> Result<String, String> {
    if let Some(error) = &operation.error {
        return Err(error
            .get("message")
            .and_then(serde_json::Value::as_str)
            .map_or_else(|| error.to_string(), str::to_owned));
    }
    operation
        .response
        .as_ref()
        .and_then(|r| r.cloudaicompanion_project.as_ref())
        .map(|p| p.id().trim())
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| "Google finished onboarding without naming a project".to_owned())
}

/// What to do after a failed setup call.
enum Next {
    Retry { wait: Duration },
    Stop(DiscoveryError),
}

/// Runs setup calls with retries, waits and telemetry.
struct Calls<'a, S> {
    policy: &'a DiscoveryPolicy,
    account: &'a str,
    stats: &'a DiscoveryStats,
    sleep: &'a S,
}

/// Retries used so far, per kind of failure.
#[derive(Default)]
struct Retries {
    rate_limited: u32,
    server_error: u32,
    network: u32,
}

impl<S, F> Calls<'_, S>
where
    S: Fn(Duration) -> F,
    F: Future<Output = ()>,
{
    async fn run<T, C, CF>(&self, call: SetupCall, mut send: C) -> Result<T, DiscoveryError>
    where
        C: FnMut() -> CF,
        CF: Future<Output = Result<T, UpstreamError>>,
    {
        let mut retries = Retries::default();
        let mut attempts = 0;
        loop {
            let at_unix_ms = unix_ms();
            let started = Instant::now();
            let result = send().await;
            let latency = started.elapsed();
            attempts += 1;
            let error = match result {
                Ok(value) => {
                    self.record(call, at_unix_ms, latency, AttemptOutcome::Ok);
                    return Ok(value);
                }
                Err(error) => error,
            };
            let class = error.class(at_unix_ms / 1000);
            let outcome = AttemptOutcome::Failed(error_class_name(&class));
            self.record(call, at_unix_ms, latency, outcome);
            match self.next(call, attempts, &mut retries, class, error) {
                Next::Retry { wait } => {
                    tracing::debug!(account = %self.account, %call, ?wait, "retrying a setup call");
                    (self.sleep)(wait).await;
                }
                Next::Stop(error) => return Err(error),
            }
        }
    }

    /// The PRD's error table: 429 → exponential backoff; 5xx → 3 retries; timeout or
    /// network → 2 retries; 403 / 404 → stop (safe-mode signal); `VALIDATION_REQUIRED`
    /// → stop; anything else → stop.
    fn next(
        &self,
        call: SetupCall,
        attempts: u32,
        retries: &mut Retries,
        class: ErrorClass,
        error: UpstreamError,
    ) -> Next {
        let status = error.status();
        let (used, limit) = match (&class, status) {
            (ErrorClass::ValidationRequired { url }, _) => {
                return Next::Stop(DiscoveryError::ValidationRequired {
                    url: url.clone(),
                    message: error.message(),
                });
            }
            (_, Some(403 | 404)) => {
                return Next::Stop(DiscoveryError::Refused { call, class, error });
            }
            (_, Some(429)) => (&mut retries.rate_limited, self.policy.rate_limit_retries),
            (_, Some(500..=599)) => (&mut retries.server_error, self.policy.server_error_retries),
            (ErrorClass::Network, _) => (&mut retries.network, self.policy.network_retries),
            _ => return Next::Stop(DiscoveryError::Upstream { call, class, error }),
        };
        if *used >= limit {
            return Next::Stop(DiscoveryError::GaveUp {
                call,
                attempts,
                class,
                error,
            });
        }
        let wait = self
            .policy
            .backoff
            .saturating_mul(1 << (*used).min(16))
            .min(self.policy.max_backoff);
        *used += 1;
        Next::Retry { wait }
    }

    fn record(&self, call: SetupCall, at_unix_ms: i64, latency: Duration, outcome: AttemptOutcome) {
        self.stats.record(DiscoveryAttempt {
            at_unix_ms,
            account: self.account.to_owned(),
            call,
            latency,
            outcome,
        });
    }
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
