//! Telemetry of project discovery: every setup call (`loadCodeAssist`, `onboardUser`,
//! operation polls) is recorded with its account, latency and outcome in a bounded
//! ring, and summarised (success rate, exact p50/p95/p99, errors by class) for the
//! metrics, `agm doctor` and the validation gate.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::classify::ErrorClass;

/// The setup calls project discovery makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SetupCall {
    LoadCodeAssist,
    OnboardUser,
    /// A poll of the onboarding operation.
    GetOperation,
}

impl SetupCall {
    /// Google's name of the call, as in the URL.
    pub fn name(self) -> &'static str {
        match self {
            SetupCall::LoadCodeAssist => "loadCodeAssist",
            SetupCall::OnboardUser => "onboardUser",
            SetupCall::GetOperation => "getOperation",
        }
    }
}

impl std::fmt::Display for SetupCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How one call went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "class")]
pub enum AttemptOutcome {
    Ok,
    /// Failed; `class` is the [`error_class_name`] of the failure.
    Failed(&'static str),
}

/// One recorded call. `account` is whatever the caller identifies accounts by in
/// telemetry (an e-mail or a hashed id); never a token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiscoveryAttempt {
    /// When the call started, in Unix milliseconds.
    pub at_unix_ms: i64,
    pub account: String,
    pub call: SetupCall,
    #[serde(rename = "latency_ms", serialize_with = "millis")]
    pub latency: Duration,
    #[serde(flatten)]
    pub outcome: AttemptOutcome,
}

/// What the recorded attempts add up to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiscoverySummary {
    pub attempts: u64,
    pub successes: u64,
    /// `successes / attempts`; 0 when nothing was recorded.
    pub success_rate: f64,
    /// Latency percentiles (nearest rank over the stored attempts); `None` when
    /// nothing was recorded.
    #[serde(rename = "p50_ms", serialize_with = "option_millis")]
    pub p50: Option<Duration>,
    #[serde(rename = "p95_ms", serialize_with = "option_millis")]
    pub p95: Option<Duration>,
    #[serde(rename = "p99_ms", serialize_with = "option_millis")]
    pub p99: Option<Duration>,
    /// Failed attempts per error class name.
    pub errors_by_class: BTreeMap<String, u64>,
}

/// The last `capacity` discovery attempts, shared by every task that discovers.
#[derive(Debug)]
pub struct DiscoveryStats {
    capacity: usize,
    attempts: Mutex<VecDeque<DiscoveryAttempt>>,
    /// Every attempt and every success since start, stored or not (for counters).
    total: std::sync::atomic::AtomicU64,
    total_ok: std::sync::atomic::AtomicU64,
}

impl Default for DiscoveryStats {
    fn default() -> Self {
        DiscoveryStats::new(DiscoveryStats::DEFAULT_CAPACITY)
    }
}

impl DiscoveryStats {
    /// How many attempts are kept by default.
    pub const DEFAULT_CAPACITY: usize = 10_000;

    /// Keeps the last `capacity` attempts (at least one).
    pub fn new(capacity: usize) -> DiscoveryStats {
        DiscoveryStats {
            capacity: capacity.max(1),
            attempts: Mutex::new(VecDeque::new()),
            total: std::sync::atomic::AtomicU64::new(0),
            total_ok: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Records one attempt, dropping the oldest when full.
    pub fn record(&self, attempt: DiscoveryAttempt) {
        use std::sync::atomic::Ordering::Relaxed;
        self.total.fetch_add(1, Relaxed);
        if attempt.outcome == AttemptOutcome::Ok {
            self.total_ok.fetch_add(1, Relaxed);
        }
        let mut attempts = self.lock();
        while attempts.len() >= self.capacity {
            attempts.pop_front();
        }
        attempts.push_back(attempt);
    }

    /// (attempts, successes) since start, including those no longer stored.
    pub fn totals(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.total.load(Relaxed), self.total_ok.load(Relaxed))
    }

    /// The stored attempts, oldest first.
    pub fn attempts(&self) -> Vec<DiscoveryAttempt> {
        self.lock().iter().cloned().collect()
    }

    /// The summary of every stored attempt.
    pub fn summary(&self) -> DiscoverySummary {
        summarize(self.lock().iter())
    }

    /// The summary of the stored attempts of one call.
    pub fn summary_of(&self, call: SetupCall) -> DiscoverySummary {
        summarize(self.lock().iter().filter(|a| a.call == call))
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<DiscoveryAttempt>> {
        self.attempts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn summarize<'a>(attempts: impl Iterator<Item = &'a DiscoveryAttempt>) -> DiscoverySummary {
    let mut latencies = Vec::new();
    let mut successes = 0u64;
    let mut errors_by_class = BTreeMap::new();
    for attempt in attempts {
        latencies.push(attempt.latency);
        match attempt.outcome {
            AttemptOutcome::Ok => successes += 1,
            AttemptOutcome::Failed(class) => {
                *errors_by_class.entry(class.to_owned()).or_insert(0) += 1;
            }
        }
    }
    latencies.sort_unstable();
    let attempts = latencies.len() as u64;
    DiscoverySummary {
        attempts,
        successes,
        success_rate: if attempts == 0 {
            0.0
        } else {
            successes as f64 / attempts as f64
        },
        p50: percentile(&latencies, 50),
        p95: percentile(&latencies, 95),
        p99: percentile(&latencies, 99),
        errors_by_class,
    }
}

/// The nearest-rank percentile of sorted values: the smallest value with at least
/// `p` % of the values at or below it.
fn percentile(sorted: &[Duration], p: usize) -> Option<Duration> {
    let n = sorted.len();
    let rank = (p * n).div_ceil(100).max(1);
    sorted.get(rank.min(n).checked_sub(1)?).copied()
}

/// A short, stable name for an error class, as telemetry counts it.
pub fn error_class_name(class: &ErrorClass) -> &'static str {
    match class {
        ErrorClass::RateLimited { .. } => "rate_limited",
        ErrorClass::QuotaExhausted { .. } => "quota_exhausted",
        ErrorClass::CapacityExhausted { .. } => "capacity_exhausted",
        ErrorClass::ServerError => "server_error",
        ErrorClass::Unauthorized => "unauthorized",
        ErrorClass::ValidationRequired { .. } => "validation_required",
        ErrorClass::ProjectProblem => "project_problem",
        ErrorClass::Banned => "banned",
        ErrorClass::NotFound => "not_found",
        ErrorClass::SignatureInvalid => "signature_invalid",
        ErrorClass::PromptTooLong => "prompt_too_long",
        ErrorClass::InvalidArgument => "invalid_argument",
        ErrorClass::Other => "other",
        ErrorClass::Network => "network",
        ErrorClass::InvalidGrant => "invalid_grant",
        ErrorClass::InvalidApiKey => "invalid_api_key",
        ErrorClass::Decode => "decode",
        ErrorClass::Local => "local",
        ErrorClass::ClientOutdated => "client-outdated",
    }
}

fn millis<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64() * 1000.0)
}

fn option_millis<S: Serializer>(
    duration: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => millis(duration, serializer),
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(latency_ms: u64, outcome: AttemptOutcome) -> DiscoveryAttempt {
        DiscoveryAttempt {
            at_unix_ms: 1_700_000_000_000,
            account: "alice@example.com".into(),
            call: SetupCall::LoadCodeAssist,
            latency: Duration::from_millis(latency_ms),
            outcome,
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let ms = |v: u64| Some(Duration::from_millis(v));
        let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentile(&values, 50), ms(50));
        assert_eq!(percentile(&values, 95), ms(95));
        assert_eq!(percentile(&values, 99), ms(99));
        assert_eq!(percentile(&values[..1], 99), ms(1));
        assert_eq!(percentile(&values[..3], 50), ms(2));
        assert_eq!(percentile(&values[..3], 95), ms(3));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn summary_counts_rate_percentiles_and_classes() {
        let stats = DiscoveryStats::default();
        // 1..=100 ms; every tenth fails, alternating between two classes.
        for ms in 1..=100u64 {
            let outcome = match ms % 20 {
                0 => AttemptOutcome::Failed("server_error"),
                10 => AttemptOutcome::Failed("network"),
                _ => AttemptOutcome::Ok,
            };
            stats.record(attempt(ms, outcome));
        }
        let summary = stats.summary();
        assert_eq!(summary.attempts, 100);
        assert_eq!(summary.successes, 90);
        assert!((summary.success_rate - 0.9).abs() < 1e-12);
        assert_eq!(summary.p50, Some(Duration::from_millis(50)));
        assert_eq!(summary.p95, Some(Duration::from_millis(95)));
        assert_eq!(summary.p99, Some(Duration::from_millis(99)));
        assert_eq!(
            summary.errors_by_class,
            BTreeMap::from([("network".to_owned(), 5), ("server_error".to_owned(), 5)])
        );
        assert_eq!(stats.summary_of(SetupCall::OnboardUser).attempts, 0);
        assert_eq!(stats.summary_of(SetupCall::LoadCodeAssist).attempts, 100);

        let json = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["p95_ms"], 95.0);
        assert_eq!(json["errors_by_class"]["network"], 5);
        let json = serde_json::to_value(&stats.attempts()[9]).unwrap();
        assert_eq!(json["outcome"], "failed");
        assert_eq!(json["class"], "network");
        assert_eq!(json["latency_ms"], 10.0);
        assert_eq!(json["call"], "load_code_assist");
    }

    #[test]
    fn empty_summary() {
        let summary = DiscoveryStats::default().summary();
        assert_eq!(summary.attempts, 0);
        assert_eq!(summary.success_rate, 0.0);
        assert_eq!(summary.p50, None);
        assert!(summary.errors_by_class.is_empty());
    }

    #[test]
    fn the_ring_keeps_the_last_attempts() {
        let stats = DiscoveryStats::new(3);
        for ms in 1..=5 {
            stats.record(attempt(ms, AttemptOutcome::Ok));
        }
        let kept: Vec<u128> = stats
            .attempts()
            .iter()
            .map(|a| a.latency.as_millis())
            .collect();
        assert_eq!(kept, [3, 4, 5]);
        assert_eq!(stats.summary().p50, Some(Duration::from_millis(4)));
    }
}
