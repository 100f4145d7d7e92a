//! The circuit breaker (layer L4) as the upstream calls see it: an
//! [`EndpointGate`] for one account, over the pool's `Breakers`, that logs, counts and
//! audits every change of state.

use std::time::Instant;

use agm_google::{EndpointGate, UpstreamError};
use agm_pool::breaker::{Allow, BreakerKey, Breakers, CircuitState, Transition};
use agm_store::{AuditKind, Store};

/// The breakers of one account's calls.
pub struct AccountGate<'a> {
    pub breakers: &'a Breakers,
    pub account_id: &'a str,
    pub email: &'a str,
    pub store: &'a Store,
    /// Cluster mode: transitions are announced to the other replicas.
    pub cluster: Option<&'a std::sync::Arc<crate::cluster::Cluster>>,
}

impl EndpointGate for AccountGate<'_> {
    fn allow(&self, endpoint: &str) -> bool {
        let key = BreakerKey::new(endpoint, self.account_id);
        match self.breakers.allow(&key, Instant::now()) {
            Allow::Yes | Allow::Probe => true,
            Allow::No { .. } => false,
        }
    }

    fn record(&self, endpoint: &str, outcome: Result<(), &UpstreamError>) {
        let key = BreakerKey::new(endpoint, self.account_id);
        let now = Instant::now();
        let transition = match outcome {
            Ok(()) => self.breakers.record_success(&key, now),
            Err(_) => self.breakers.record_failure(&key, now),
        };
        if let Some(transition) = transition {
            announce(&transition, self.email, self.store);
            crate::cluster::sync::share_breaker(self.cluster, &transition);
        }
    }
}

/// 0 closed, 1 half-open, 2 open: higher is worse (the `circuit_breaker_state` gauge).
pub fn state_value(state: &CircuitState) -> f64 {
    match state {
        CircuitState::Closed { .. } => 0.0,
        CircuitState::HalfOpen { .. } => 1.0,
        CircuitState::Open { .. } => 2.0,
    }
}

/// Logs, counts and audits one change of state.
pub fn announce(transition: &Transition, email: &str, store: &Store) {
    let endpoint = transition.key.endpoint.clone();
    let account = transition.key.account.clone();
    metrics::gauge!(
        "circuit_breaker_state",
        "endpoint" => endpoint.clone(),
        "account" => account.clone()
    )
    .set(state_value(&transition.to));
    let detail = match (&transition.from, &transition.to) {
        (CircuitState::Closed { .. }, CircuitState::Open { until, .. }) => {
            metrics::counter!("circuit_breaker_open_total", "endpoint" => endpoint.clone())
                .increment(1);
            format!(
                "{endpoint}: opened after consecutive failures; calls skip it for {}s",
                until.saturating_duration_since(transition.at).as_secs()
            )
        }
        (_, CircuitState::Open { until, .. }) => format!(
            "{endpoint}: the probe failed; open again for {}s",
            until.saturating_duration_since(transition.at).as_secs()
        ),
        (_, CircuitState::HalfOpen { .. }) => format!("{endpoint}: half-open, probing"),
        (_, CircuitState::Closed { .. }) => {
            if let Some(after) = transition.recovered_after {
                metrics::histogram!("circuit_breaker_recovery_seconds").record(after.as_secs_f64());
            }
            match transition.recovered_after {
                Some(after) => format!("{endpoint}: closed, recovered after {}s", after.as_secs()),
                None => format!("{endpoint}: closed (reset)"),
            }
        }
    };
    match transition.to {
        CircuitState::Closed { .. } => {
            tracing::info!(account = %email, "circuit breaker {detail}");
        }
        _ => tracing::warn!(account = %email, "circuit breaker {detail}"),
    }
    // The gate is called from synchronous code: written on the side, drained at shutdown.
    crate::state::audit::append_audit_later(store, AuditKind::Breaker, email.to_owned(), detail);
}
