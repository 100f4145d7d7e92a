//! Prometheus metrics (`GET /metrics`): requests by API and status, request latency to
//! the first byte, upstream calls and their successes by pool, project-id fetches,
//! safe mode, circuit breakers, cooldowns, and gauges read at scrape time (accounts,
//! project discovery, the thinking-signature cache). docs/METRICS.md lists them all.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::app::{SharedState, api_of_path};
use crate::http::error::ApiKind;

/// Latency buckets in seconds: fine below 10 ms, where a gateway's own time lives.
const BUCKETS: &[f64] = &[
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Finer buckets for the gateway's own overhead, which lives well below a millisecond.
const OVERHEAD_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_15, 0.000_2, 0.000_25, 0.000_3, 0.000_4, 0.000_5, 0.000_75, 0.001,
    0.001_5, 0.002, 0.003, 0.005, 0.01, 0.025, 0.1,
];

static PROMETHEUS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide recorder, installed on first use. `None` when another recorder
/// was installed first (metrics are then not rendered).
pub fn prometheus() -> Option<&'static PrometheusHandle> {
    PROMETHEUS
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .ok()?
                .set_buckets_for_metric(
                    metrics_exporter_prometheus::Matcher::Full(
                        "agm_gateway_overhead_seconds".into(),
                    ),
                    OVERHEAD_BUCKETS,
                )
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            register_every_unlabeled_series();
            Some(handle)
        })
        .as_ref()
}

/// Counters without labels, exported at 0 from the first scrape: dashboards and
/// `rate()` alerts need a series before the first event (a counter that appears only
/// at its first increment hides that increment from `rate()`).
const UNLABELED_COUNTERS: &[&str] = &[
    "agm_account_switches_total",
    "agm_body_budget_refusals_total",
    "agm_connections_evicted_total",
    "agm_connections_refused_total",
    "agm_official_daily_cap_refusals_total",
    "agm_request_log_dropped_total",
    "agm_token_refresh_total",
    "project_id_fetch_success_total",
    "project_id_fetch_total",
    "safe_mode_activations_total",
];

/// Gauges without labels, likewise (registered without changing a value already set).
const UNLABELED_GAUGES: &[&str] = &[
    "agm_accounts_available",
    "agm_active_accounts",
    "agm_connections_open",
    "agm_cooldowns_active",
    "agm_official_daily_request_cap",
    "agm_official_daily_requests",
    "agm_project_discovery_attempts",
    "agm_project_discovery_success_ratio",
    "agm_signature_cache_entries",
    "agm_signature_cache_hit_ratio",
    "agm_signature_cache_hits",
    "agm_signature_cache_misses",
    "agm_upstream_client_outdated",
    "project_id_consecutive_failures",
    "safe_mode_active",
];

fn register_every_unlabeled_series() {
    for name in UNLABELED_COUNTERS {
        metrics::counter!(*name).increment(0);
    }
    for name in UNLABELED_GAUGES {
        metrics::gauge!(*name).increment(0.0);
    }
}

fn api_label(api: ApiKind) -> &'static str {
    match api {
        ApiKind::Anthropic => "anthropic",
        ApiKind::OpenAi => "openai",
        ApiKind::Google => "gemini",
        ApiKind::Agm => "agm",
    }
}

tokio::task_local! {
    /// Nanoseconds the current request spent waiting on Google (calls, token refresh,
    /// discovery, and the waits Google asked for).
    static UPSTREAM_NANOS: std::cell::Cell<u64>;
}

/// Runs `work` (a call to Google, or a wait it asked for) and counts its time as
/// upstream time of the current request, so the gateway's own overhead can be told
/// apart.
pub async fn upstream<F: Future>(work: F) -> F::Output {
    let started = Instant::now();
    let out = work.await;
    let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
    let _ = UPSTREAM_NANOS.try_with(|n| n.set(n.get().saturating_add(nanos)));
    out
}

/// Counts every client request and times it to its response headers (for a stream:
/// the first byte, after the first upstream chunk arrived). The gateway's overhead —
/// that time minus the time spent on Google — goes to `agm_gateway_overhead_seconds`
/// and, unless `server.overhead_header = false`, to the `x-agm-overhead-ms` header.
pub async fn track(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    let _ = prometheus();
    let api = api_label(api_of_path(request.uri().path()));
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let logged = request.method() == axum::http::Method::POST && api != "agm";
    let client = request
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    let path = request.uri().path().to_owned();
    let started = Instant::now();
    let ((mut response, upstream_nanos), facts) = crate::http::request_log::with_facts(
        UPSTREAM_NANOS.scope(std::cell::Cell::new(0), async move {
            let response = next.run(request).await;
            (response, UPSTREAM_NANOS.with(std::cell::Cell::get))
        }),
    )
    .await;
    let elapsed = started.elapsed();
    // Every refused request, with why: a client that fails on a 4xx is found in the log.
    // Debug-formatted, so a client's text cannot forge log lines.
    if let Some(crate::http::error::Refusal(reason)) = response.extensions().get() {
        tracing::info!(route = %route, client = ?client, reason = ?reason, "request refused");
    }
    let overhead = (upstream_nanos > 0)
        .then(|| elapsed.saturating_sub(std::time::Duration::from_nanos(upstream_nanos)));
    let key_name = facts.key.as_ref().map(|k| k.name.clone());
    let ending = std::sync::Arc::clone(&facts.ending);
    if logged {
        // Written when the answer is completely sent (a stream: when it ends), with the
        // tokens Google reported and the calls it took (the console's detail view).
        let calls = facts.calls.clone();
        let entry = log_entry(&path, &route, &response, elapsed, overhead, facts);
        let state = state.clone();
        ending.on_end(move |tokens| {
            state.request_log.record_with_calls(
                agm_store::RequestLogEntry {
                    input_tokens: tokens.input,
                    output_tokens: tokens.output,
                    ..entry
                },
                calls,
            );
        });
    }
    if let Some(key) = key_name {
        count_key_request(key, api, response.status(), &ending);
    }
    drop(ending);
    let status = response.status().as_u16().to_string();
    metrics::counter!("agm_requests_total", "api" => api, "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("agm_request_first_byte_seconds", "api" => api, "route" => route.clone())
        .record(elapsed.as_secs_f64());
    if let Some(overhead) = overhead {
        metrics::histogram!("agm_gateway_overhead_seconds", "api" => api, "route" => route)
            .record(overhead.as_secs_f64());
        if state.config.server.overhead_header
            && let Ok(value) =
                HeaderValue::from_str(&format!("{:.3}", overhead.as_secs_f64() * 1000.0))
        {
            response.headers_mut().insert("x-agm-overhead-ms", value);
        }
    }
    response
}

/// The request-log row of a request, its latency to the first byte; its tokens are
/// filled in when the answer ends.
fn log_entry(
    path: &str,
    route: &str,
    response: &Response,
    elapsed: std::time::Duration,
    overhead: Option<std::time::Duration>,
    facts: crate::http::request_log::Facts,
) -> agm_store::RequestLogEntry {
    use agm_store::ApiKind as Logged;
    let api = if path.starts_with("/v1/messages") {
        Logged::Anthropic
    } else if path.starts_with("/v1/chat") {
        Logged::OpenAiChat
    } else if path.starts_with("/v1/responses") {
        Logged::OpenAiResponses
    } else {
        Logged::Gemini
    };
    let micros = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    agm_store::RequestLogEntry {
        at: time::OffsetDateTime::now_utc(),
        api,
        client_model: facts.client_model.unwrap_or_default(),
        upstream_model: facts.upstream_model.unwrap_or_default(),
        account_id: facts.account_id,
        status: response.status().as_u16(),
        latency_ms: micros(elapsed) / 1000,
        input_tokens: 0,
        output_tokens: 0,
        error_class: response
            .extensions()
            .get::<crate::http::error::ErrorName>()
            .map(|e| e.0.to_owned()),
        route: route.to_owned(),
        attempts: facts.attempts,
        overhead_us: overhead.map(micros),
        context_scaled: facts.context_scaled,
        key_id: facts.key.map(|k| k.id.clone()),
    }
}

/// Requests and tokens by client key name (`agm_key_*`); tokens when the answer ends.
fn count_key_request(
    key: String,
    api: &'static str,
    status: axum::http::StatusCode,
    ending: &crate::http::request_log::Ending,
) {
    let status = status.as_u16().to_string();
    metrics::counter!("agm_key_requests_total", "key" => key.clone(), "api" => api, "status" => status)
        .increment(1);
    ending.on_end(move |tokens| {
        metrics::counter!("agm_key_tokens_total", "key" => key.clone(), "direction" => "in")
            .increment(tokens.input);
        metrics::counter!("agm_key_tokens_total", "key" => key, "direction" => "out")
            .increment(tokens.output);
    });
}

/// `GET /metrics`.
pub async fn render(State(state): State<SharedState>) -> Response {
    let Some(handle) = prometheus() else {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "metrics are not available: another metrics recorder is installed\n",
        )
            .into_response();
    };
    if let Ok(active) = state.accounts.active_count().await {
        metrics::gauge!("agm_active_accounts").set(active as f64);
    }
    if let Ok(accounts) = state.store.list_account_infos().await {
        let mut by_state = [("active", 0u32), ("disabled", 0), ("blocked", 0)];
        for account in &accounts {
            let i = match account.state {
                agm_store::AccountState::Active => 0,
                agm_store::AccountState::Disabled { .. } => 1,
                agm_store::AccountState::Blocked { .. } => 2,
            };
            by_state[i].1 += 1;
        }
        for (name, n) in by_state {
            metrics::gauge!("agm_accounts", "state" => name).set(f64::from(n));
        }
    }
    let (sent_today, cap) = state.daily_cap.today();
    metrics::gauge!("agm_official_daily_requests").set(sent_today as f64);
    metrics::gauge!("agm_official_daily_request_cap").set(cap as f64);
    let (fetches, fetched) = state.accounts.discovery_stats.totals();
    metrics::counter!("project_id_fetch_total").absolute(fetches);
    metrics::counter!("project_id_fetch_success_total").absolute(fetched);
    metrics::gauge!("safe_mode_active").set(if state.safe_mode.is_active() {
        1.0
    } else {
        0.0
    });
    metrics::gauge!("project_id_consecutive_failures")
        .set(f64::from(state.safe_mode.consecutive_failures()));
    let now = Instant::now();
    let cooldowns = state.accounts.cooldowns.list(now);
    metrics::gauge!("agm_cooldowns_active").set(cooldowns.len() as f64);
    if let Ok(accounts) = state.accounts.active_accounts().await {
        let cooling: std::collections::HashSet<&str> =
            cooldowns.iter().map(|c| c.account.as_str()).collect();
        let available = accounts
            .iter()
            .filter(|(id, _)| !cooling.contains(id.as_str()))
            .count();
        metrics::gauge!("agm_accounts_available").set(available as f64);
    }
    for view in state.accounts.breakers.snapshot(now) {
        metrics::gauge!(
            "circuit_breaker_state",
            "endpoint" => view.endpoint.clone(),
            "account" => view.account.clone()
        )
        .set(crate::routing::breaker::state_value(&view.circuit));
    }
    let discovery = state.accounts.discovery_stats.summary();
    metrics::gauge!("agm_project_discovery_attempts").set(discovery.attempts as f64);
    metrics::gauge!("agm_project_discovery_success_ratio").set(discovery.success_rate);
    for (quantile, value) in [
        ("0.5", discovery.p50),
        ("0.95", discovery.p95),
        ("0.99", discovery.p99),
    ] {
        if let Some(v) = value {
            metrics::gauge!("agm_project_discovery_latency_seconds", "quantile" => quantile)
                .set(v.as_secs_f64());
        }
    }
    let signatures = state.signatures.stats();
    metrics::gauge!("agm_signature_cache_entries").set(signatures.entries as f64);
    metrics::gauge!("agm_signature_cache_hits").set(signatures.hits as f64);
    metrics::gauge!("agm_signature_cache_misses").set(signatures.misses as f64);
    metrics::gauge!("agm_signature_cache_hit_ratio").set(signatures.hit_rate());
    let mut response = handle.render().into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    response
}
