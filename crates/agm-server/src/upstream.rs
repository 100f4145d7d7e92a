//! Calling Google for a client request: the router of docs/ARCHITECTURE.md.
//!
//! - L0/L1: safe mode (or `ENABLE_ANTIGRAVITY_AUTH=false`) sends the request to the
//!   official Gemini API with an API key; otherwise it goes the Antigravity way.
//! - L2/L3: the account pool picks an account (scheduling, sticky sessions, cooldowns,
//!   quota protection) with a fresh token and its project.
//! - L4: each account's calls pass its circuit breakers, one per endpoint.
//! - L5: the call, with endpoint fallback in the Google client; here the next account
//!   on an account-level failure (each account once, twice after a 401), a short wait
//!   on a short rate limit, and jittered backoff on server errors — every wait bounded
//!   by `routing.max_wait`, the number of upstream calls by [`MAX_UPSTREAM_CALLS`].

use std::time::{Duration, Instant};

use agm_google::{ChunkStream, ErrorClass, UpstreamError};
use agm_pool::backoff::Backoff;
use agm_pool::cooldown::{CooldownReason, Decision, Limit};
use agm_pool::safe_mode::Route;
use agm_store::{AuditKind, Pool};
use agm_translate::models::official_is_substitute;
use agm_wire::cloudcode::{CloudCodeRequest, CloudCodeResponse};
use agm_wire::gemini::GenerateContentRequest;
use axum::http::{HeaderMap, HeaderValue};
use futures_util::{StreamExt, TryStreamExt};

use crate::accounts::{Lease, PoolError};
use crate::app::AppState;
use crate::breaker::AccountGate;
use crate::error::{ApiError, ApiKind, ErrorKind};

/// At most this many accounts are tried for one request.
const MAX_ACCOUNTS_PER_REQUEST: usize = 3;
/// At most this many waits (short rate limits, capacity and server-error backoff, the
/// soonest reset when every account is limited) per request.
const MAX_WAITS: usize = 3;
/// When every account is limited and the first is free again within this, wait for it
/// (within `routing.max_wait`) instead of answering 429 at once.
const SHORT_POOL_WAIT: Duration = Duration::from_secs(2);
/// An upstream answer with no content is asked for again this many times.
const EMPTY_ANSWER_RETRIES: usize = 1;
/// The most upstream generation calls one client request can cause, retries and
/// fallbacks included (the retry budget: no self-DDoS). Each call may still walk the
/// configured endpoints in order.
pub const MAX_UPSTREAM_CALLS: usize = 6;
/// Backoff before retrying after a server error or a network failure: short, because
/// the client is waiting; the circuit breaker takes over for longer outages.
const SERVER_ERROR_BACKOFF: Backoff = Backoff {
    base: Duration::from_millis(250),
    cap: Duration::from_secs(4),
    jitter: agm_pool::backoff::Jitter::Equal,
};

/// A request bound for one upstream model.
pub struct UpstreamCall<'a> {
    pub api: ApiKind,
    pub model: &'a str,
    pub request: GenerateContentRequest,
}

/// Which way a request went: said in the response headers.
#[derive(Debug, Clone)]
pub struct Served {
    pub official: bool,
    /// The model that answered.
    pub model: String,
    /// A Claude (or GPT-OSS) request answered by a Gemini model.
    pub substitute: bool,
}

impl Served {
    /// `x-agm-upstream: antigravity|gemini-api`, `x-agm-model`, and, when another model
    /// family answered, `x-agm-substitute-model`.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        headers.insert(
            "x-agm-upstream",
            HeaderValue::from_static(if self.official {
                "gemini-api"
            } else {
                "antigravity"
            }),
        );
        if let Ok(model) = HeaderValue::from_str(&self.model) {
            if self.substitute {
                headers.insert("x-agm-substitute-model", model.clone());
            }
            headers.insert("x-agm-model", model);
        }
    }
}

/// A stream that has produced its first chunk: the client can be sent a 200.
pub struct OpenStream {
    /// The chunks up to and including the first one with content (or a finish reason).
    pub first: Vec<CloudCodeResponse>,
    pub rest: ChunkStream,
    pub account: String,
    pub served: Served,
    /// Keeps the account's in-flight count up while the stream lasts.
    pub lease: Option<Lease>,
}

/// The official-API side of a call: which key and model.
struct OfficialTarget {
    key: String,
    label: String,
    model: String,
}

impl UpstreamCall<'_> {
    /// The Cloud Code envelope of one attempt, around the translated request itself
    /// (borrowed: an attempt serializes it, never copies it).
    fn envelope(&self, lease: &Lease) -> CloudCodeRequest<&GenerateContentRequest> {
        // The Code Assist style sends none of Antigravity's envelope fields.
        let antigravity = lease.pool != Pool::CodeAssist;
        CloudCodeRequest {
            project: lease.project.clone(),
            model: self.model.to_owned(),
            request_id: antigravity.then(|| format!("agent-{}", uuid::Uuid::new_v4())),
            user_agent: antigravity.then(|| "antigravity".into()),
            request_type: antigravity.then(|| "agent".into()),
            request: &self.request,
        }
    }

    fn served_by(&self) -> Served {
        Served {
            official: false,
            model: self.model.to_owned(),
            substitute: false,
        }
    }

    /// `generateContent`; an empty answer is retried, never returned.
    pub async fn generate(
        &self,
        state: &AppState,
    ) -> Result<(CloudCodeResponse, Served), ApiError> {
        self.route(
            state,
            |pool| self.generate_on(state, pool),
            || self.official_generate(state),
        )
        .await
    }

    async fn generate_on(
        &self,
        state: &AppState,
        pool: Pool,
    ) -> Result<(CloudCodeResponse, Served), ApiError> {
        self.with_accounts(state, pool, |lease| async move {
            let body = self.envelope(&lease);
            let gate = gate(state, &lease);
            let user_agent = self.code_assist_user_agent(state, &lease);
            let auth = self.auth(state, &lease, &gate, user_agent.as_deref());
            let started = Instant::now();
            let mut empty = 0;
            loop {
                let answer = state.google.generate(auth, &body).await?;
                if has_content(&answer) {
                    lease.record_latency(started.elapsed());
                    return Ok((answer, self.served_by()));
                }
                empty += 1;
                if empty > EMPTY_ANSWER_RETRIES {
                    return Err(empty_answer(&lease));
                }
                tracing::debug!(account = %lease.email, "empty upstream answer; asking again");
            }
        })
        .await
    }

    /// `streamGenerateContent`, returned once the first chunk has arrived, so that a
    /// failure before it still rotates accounts or becomes a proper error status.
    pub async fn open_stream(&self, state: &AppState) -> Result<OpenStream, ApiError> {
        self.route(
            state,
            |pool| self.open_stream_on(state, pool),
            || self.official_stream(state),
        )
        .await
    }

    async fn open_stream_on(&self, state: &AppState, pool: Pool) -> Result<OpenStream, ApiError> {
        self.with_accounts(state, pool, |lease| async move {
            let body = self.envelope(&lease);
            let gate = gate(state, &lease);
            let user_agent = self.code_assist_user_agent(state, &lease);
            let auth = self.auth(state, &lease, &gate, user_agent.as_deref());
            let started = Instant::now();
            let mut empty = 0;
            loop {
                let stream = state.google.stream(auth, &body).await?;
                if let Some((first, rest)) = first_content(stream).await? {
                    lease.record_latency(started.elapsed());
                    return Ok(OpenStream {
                        first,
                        rest,
                        account: lease.account_id.clone(),
                        served: self.served_by(),
                        lease: Some(lease.clone()),
                    });
                }
                empty += 1;
                if empty > EMPTY_ANSWER_RETRIES {
                    return Err(empty_answer(&lease));
                }
                tracing::debug!(account = %lease.email, "empty upstream stream; asking again");
            }
        })
        .await
    }

    /// The pools this request may use, in order: for a Gemini model the configured
    /// `routing.gemini_pool_order`; for anything else (Claude, GPT-OSS) Antigravity,
    /// which alone serves them.
    fn pools(&self, state: &AppState) -> Vec<Pool> {
        if !self.model.starts_with("gemini-") {
            return vec![Pool::Antigravity];
        }
        state
            .config
            .routing
            .gemini_pool_order
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// L0/L1 then the pools in order: the next pool when one is exhausted (every
    /// account limited or unusable, or none in it); the official API when safe mode
    /// says so, when it is in the pool order, or as the fallback when no account could
    /// serve at all.
    async fn route<T, A, AF, O, OF>(
        &self,
        state: &AppState,
        on_pool: A,
        official: O,
    ) -> Result<T, ApiError>
    where
        A: Fn(Pool) -> AF,
        AF: Future<Output = Result<T, ApiError>>,
        O: Fn() -> OF,
        OF: Future<Output = Result<T, ApiError>>,
    {
        if self.goes_official(state) {
            return official().await;
        }
        let pools = self.pools(state);
        let keys = !state.config.safe_mode.gemini_api_keys.is_empty();
        let mut last: Option<ApiError> = None;
        let mut tried_official = false;
        for (i, pool) in pools.iter().enumerate() {
            let result = match pool {
                Pool::GeminiApi if !keys => continue,
                Pool::GeminiApi => {
                    tried_official = true;
                    official().await
                }
                oauth => on_pool(*oauth).await,
            };
            let error = match result {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            let exhausted = error.pool_empty
                || matches!(error.kind, ErrorKind::RateLimited | ErrorKind::Overloaded);
            let more = pools[i + 1..].iter().any(|p| *p != Pool::GeminiApi || keys);
            // A pool with no account at all says less than an earlier pool's failure.
            if last.is_none() || !error.pool_empty {
                last = Some(error);
            }
            if !(exhausted && more) {
                break;
            }
            tracing::info!(model = self.model, pool = %pool, "pool exhausted; trying the next");
        }
        let error = last.unwrap_or_else(|| {
            ApiError::new(
                self.api,
                ErrorKind::Unavailable,
                "no pool in routing.gemini_pool_order can serve this request",
            )
        });
        if !tried_official && self.falls_back(state, &error) {
            return official().await;
        }
        Err(error)
    }

    /// How a lease's calls are sent: gated by its breakers, in the Code Assist style
    /// for a `code-assist` account.
    fn auth<'a>(
        &self,
        state: &'a AppState,
        lease: &'a Lease,
        gate: &'a AccountGate<'a>,
        code_assist_user_agent: Option<&'a str>,
    ) -> agm_google::CallAuth<'a> {
        agm_google::CallAuth {
            gate: Some(gate),
            code_assist: code_assist_user_agent.map(|user_agent| agm_google::CodeAssistStyle {
                endpoint: &state.config.google.code_assist_pool_endpoint,
                user_agent,
            }),
            ..lease.auth()
        }
    }

    fn code_assist_user_agent(&self, state: &AppState, lease: &Lease) -> Option<String> {
        (lease.pool == Pool::CodeAssist).then(|| {
            agm_google::CodeAssistStyle::user_agent(
                &state.config.google.gemini_cli_version,
                self.model,
            )
        })
    }

    /// `countTokens` on the upstream model, for the request's contents.
    pub async fn count_tokens(&self, state: &AppState) -> Result<u64, ApiError> {
        if self.goes_official(state) {
            let target = self.official_target(state)?;
            return crate::telemetry::upstream(state.google.official_count_tokens(
                &target.key,
                &target.model,
                &self.request.contents,
            ))
            .await
            .map_err(|e| ApiError::from_upstream(self.api, &e, &target.model, &target.label));
        }
        self.with_accounts(state, Pool::Antigravity, |lease| async move {
            state
                .google
                .count_tokens(
                    &lease.access_token,
                    self.model,
                    self.request.contents.clone(),
                )
                .await
        })
        .await
    }

    /// L0/L1: whether this request goes to the official Gemini API. With no Google
    /// account at all but an API key configured, the official API is the way too.
    fn goes_official(&self, state: &AppState) -> bool {
        match state.safe_mode.route() {
            Route::OfficialApi => true,
            Route::ProbeAntigravity => {
                tracing::info!("safe mode: trying the Antigravity path again with this request");
                false
            }
            Route::Antigravity => false,
        }
    }

    /// Whether a failed Antigravity request goes to the official API instead: when no
    /// account could serve it at all (none set up, or every one out because its project
    /// id keeps failing) and an API key is configured, or safe mode has just turned on
    /// (then, with no key, the client learns how to add one).
    fn falls_back(&self, state: &AppState, error: &ApiError) -> bool {
        error.pool_empty
            && (!state.config.safe_mode.gemini_api_keys.is_empty() || state.safe_mode.is_active())
    }

    fn official_target(&self, state: &AppState) -> Result<OfficialTarget, ApiError> {
        let keys = &state.config.safe_mode.gemini_api_keys;
        if keys.is_empty() {
            return Err(ApiError::new(
                self.api,
                ErrorKind::Unavailable,
                if state.config.routing.enable_antigravity {
                    "safe mode is on (the Antigravity path keeps failing) and no Gemini API key is configured: add one with GEMINI_API_KEY=<key> or [safe_mode] gemini_api_keys in the config, or turn safe mode off with `agm safe-mode disable`"
                } else {
                    "the Antigravity path is turned off (ENABLE_ANTIGRAVITY_AUTH=false) and no Gemini API key is configured: add one with GEMINI_API_KEY=<key> or [safe_mode] gemini_api_keys in the config"
                },
            ));
        }
        let model = state.official_models.resolve(self.model).to_owned();
        let index = state.official_key_cursor.next(keys.len());
        Ok(OfficialTarget {
            key: keys[index].clone(),
            label: format!("gemini-api key {}", index + 1),
            model,
        })
    }

    fn official_served(&self, target: &OfficialTarget) -> Served {
        Served {
            official: true,
            model: target.model.clone(),
            substitute: official_is_substitute(self.model),
        }
    }

    async fn official_generate(
        &self,
        state: &AppState,
    ) -> Result<(CloudCodeResponse, Served), ApiError> {
        self.with_keys(state, |target| async move {
            // The Gemini API client leaves Cloud-Code-only fields (`sessionId`) out.
            let response = state
                .google
                .official_generate(&target.key, &target.model, &self.request)
                .await?;
            let answer = CloudCodeResponse {
                response,
                trace_id: None,
            };
            if !has_content(&answer) {
                return Err(UpstreamError::Decode {
                    endpoint: "the Gemini API".into(),
                    message: "Google answered with no content".into(),
                });
            }
            Ok((answer, self.official_served(&target)))
        })
        .await
    }

    async fn official_stream(&self, state: &AppState) -> Result<OpenStream, ApiError> {
        self.with_keys(state, |target| async move {
            let stream = state
                .google
                .official_stream(&target.key, &target.model, &self.request)
                .await?;
            let wrapped: ChunkStream = Box::pin(stream.map_ok(|response| CloudCodeResponse {
                response,
                trace_id: None,
            }));
            match first_content(wrapped).await? {
                Some((first, rest)) => Ok(OpenStream {
                    first,
                    rest,
                    account: target.label.clone(),
                    served: self.official_served(&target),
                    lease: None,
                }),
                None => Err(UpstreamError::Decode {
                    endpoint: "the Gemini API".into(),
                    message: "Google's stream ended with no content".into(),
                }),
            }
        })
        .await
    }

    /// Runs `call` with the official API's keys: the next key after a refused key or
    /// a rate limit, each key once; the daily cap checked first.
    async fn with_keys<T, F, Fut>(&self, state: &AppState, call: F) -> Result<T, ApiError>
    where
        F: Fn(OfficialTarget) -> Fut,
        Fut: Future<Output = Result<T, UpstreamError>>,
    {
        let keys = state.config.safe_mode.gemini_api_keys.len().max(1);
        if let Some(cap) = state.daily_cap.check() {
            return Err(ApiError {
                retry_after: Some(cap),
                ..ApiError::new(
                    self.api,
                    ErrorKind::RateLimited,
                    format!(
                        "the daily request cap of the paid Gemini API pool ([safe_mode] daily_request_cap = {}) is reached; it resets at midnight UTC",
                        state.config.safe_mode.daily_request_cap
                    ),
                )
            });
        }
        let mut last = None;
        for _ in 0..keys {
            let target = self.official_target(state)?;
            let label = target.label.clone();
            let model = target.model.clone();
            metrics::counter!("api_call_total", "pool" => "gemini-api").increment(1);
            crate::request_log::note_attempt(None);
            match crate::telemetry::upstream(call(target)).await {
                Ok(value) => {
                    metrics::counter!("api_call_success_total", "pool" => "gemini-api")
                        .increment(1);
                    return Ok(value);
                }
                Err(err) => {
                    let now = time::OffsetDateTime::now_utc().unix_timestamp();
                    tracing::warn!(key = %label, model = %model, error = %err, "official Gemini API call failed");
                    let next = matches!(
                        err.class(now),
                        ErrorClass::InvalidApiKey
                            | ErrorClass::RateLimited { .. }
                            | ErrorClass::QuotaExhausted { .. }
                            | ErrorClass::ServerError
                            | ErrorClass::Network
                    );
                    last = Some((err, label, model));
                    if !next {
                        break;
                    }
                }
            }
        }
        match last {
            Some((err, label, model)) => {
                Err(ApiError::from_upstream(self.api, &err, &model, &label))
            }
            None => Err(ApiError::new(
                self.api,
                ErrorKind::Unavailable,
                "no Gemini API key could be tried",
            )),
        }
    }

    async fn with_accounts<T, F, Fut>(
        &self,
        state: &AppState,
        pool: Pool,
        call: F,
    ) -> Result<T, ApiError>
    where
        F: Fn(Lease) -> Fut,
        Fut: Future<Output = Result<T, UpstreamError>>,
    {
        let session = self.request.session_id.as_deref();
        let mut last: Option<(UpstreamError, String)> = None;
        // Accounts this request is done with: each is asked once (twice after a 401,
        // with a fresh token), so a rate-limited single account is not hammered.
        let mut done_with: Vec<String> = Vec::new();
        let mut refreshed: Vec<String> = Vec::new();
        // Waits on a short rate limit, Google's capacity backoff or a server error,
        // bounded by max_wait.
        let wait_until = Instant::now() + state.config.routing.max_wait;
        let mut waits = 0;
        let mut calls = 0;
        let mut previous: Option<String> = None;
        while done_with.len() < MAX_ACCOUNTS_PER_REQUEST && calls < MAX_UPSTREAM_CALLS {
            let lease = match crate::telemetry::upstream(state.accounts.acquire_for(
                pool,
                Some(self.model),
                session,
                &done_with,
            ))
            .await
            {
                Ok(lease) => lease,
                Err(PoolError::AllCoolingDown { retry_after, .. })
                    if retry_after <= SHORT_POOL_WAIT
                        && Instant::now() + retry_after <= wait_until
                        && waits < MAX_WAITS =>
                {
                    // Every account is limited, but the first is free again in a
                    // moment: a short wait beats a 429 the client has to retry.
                    waits += 1;
                    crate::telemetry::upstream(tokio::time::sleep(retry_after)).await;
                    continue;
                }
                Err(PoolError::AllCoolingDown { retry_after, .. }) => {
                    let now_unix = time::OffsetDateTime::now_utc().unix_timestamp();
                    let mut error = match &last {
                        Some((err, account))
                            if matches!(
                                err.class(now_unix),
                                ErrorClass::RateLimited { .. }
                                    | ErrorClass::QuotaExhausted { .. }
                                    | ErrorClass::CapacityExhausted { .. }
                            ) =>
                        {
                            ApiError::from_upstream(self.api, err, self.model, account)
                        }
                        _ => ApiError::new(
                            self.api,
                            ErrorKind::RateLimited,
                            format!(
                                "every account is rate-limited for {}; retry after the delay",
                                self.model
                            ),
                        ),
                    };
                    error.kind = ErrorKind::RateLimited;
                    error.retry_after = Some(retry_after.max(Duration::from_secs(1)));
                    return Err(error);
                }
                // Every usable account failed already: report Google's last answer.
                Err(_) if last.is_some() => break,
                Err(e) => return Err(pool_error(self.api, &e)),
            };
            // Logs name the account by e-mail (the operator's own); what reaches the
            // client names it by id only (other key holders share this gateway).
            let account = lease.email.clone();
            let account_id = lease.account_id.clone();
            let shown = account_id.clone();
            let lease_pool = lease.pool;
            if let Some(from) = previous.replace(account.clone())
                && from != account
                && let Some((err, _)) = &last
            {
                metrics::counter!("agm_account_switches_total").increment(1);
                let detail = format!(
                    "{}: moved from {} after: {}",
                    self.model,
                    account_hash(&from),
                    agm_google::error_class_name(
                        &err.class(time::OffsetDateTime::now_utc().unix_timestamp())
                    )
                );
                let store = state.store.clone();
                let subject = account_hash(&account);
                tokio::spawn(async move {
                    crate::safe_mode::append_audit(
                        &store,
                        AuditKind::AccountSwitch,
                        &subject,
                        &detail,
                    )
                    .await;
                });
            }
            calls += 1;
            crate::request_log::note_attempt(Some(&account_id));
            metrics::counter!("api_call_total", "pool" => "antigravity").increment(1);
            let mut result = crate::telemetry::upstream(call(lease.clone())).await;
            if let Err(err) = &result
                && lease.project_header
                && blames_project_header(err, &lease.project)
            {
                // PROTOCOL.md §2: some accounts get 403s because of the header; retry
                // once without it and remember that for the account.
                state.accounts.omit_project_header(&account_id).await;
                let without = lease.without_project_header();
                calls += 1;
                crate::request_log::note_attempt(Some(&account_id));
                result = crate::telemetry::upstream(call(without)).await;
            }
            match result {
                Ok(value) => {
                    metrics::counter!("api_call_success_total", "pool" => "antigravity")
                        .increment(1);
                    state
                        .accounts
                        .cooldowns
                        .record_success(&account_id, self.model);
                    // The first success of an account whose models are not known yet:
                    // learn them on the side (one fetchAvailableModels).
                    state.version_drift.clear(&state.store);
                    if !state.accounts.catalogue.get().knows(&account_id) {
                        crate::catalogue::Refresher::new(state).learn_in_background(&account_id);
                    }
                    if state.safe_mode.is_active() {
                        // A safe-mode probe served by an account whose project was
                        // cached: the Antigravity path works again.
                        state.safe_mode.record_project_success(&account).await;
                    }
                    return Ok(value);
                }
                Err(err) => {
                    let now = time::OffsetDateTime::now_utc().unix_timestamp();
                    let class = err.class(now);
                    tracing::warn!(%account, model = self.model, error = %err, "upstream call failed");
                    match class {
                        ErrorClass::Unauthorized => {
                            // The next lease of this account refreshes its token; one
                            // more try with it, then the account is done.
                            state.accounts.invalidate_token(&account_id).await;
                            if refreshed.contains(&account_id) {
                                // Refused with a fresh token too (PROTOCOL.md §3).
                                state
                                    .accounts
                                    .disable(
                                        &account_id,
                                        &format!(
                                            "Google refused a freshly refreshed access token (401: {}); sign in again with `agm accounts add`, then `agm accounts enable`",
                                            err.message()
                                        ),
                                    )
                                    .await;
                                done_with.push(account_id);
                            } else {
                                refreshed.push(account_id);
                            }
                        }
                        ErrorClass::ProjectProblem => {
                            // Discovery runs again for this account on its next lease.
                            state.accounts.invalidate_project(&account_id);
                            done_with.push(account_id);
                        }
                        ErrorClass::RateLimited { delay }
                        | ErrorClass::QuotaExhausted { delay }
                        | ErrorClass::CapacityExhausted { delay } => {
                            let limit = match class {
                                ErrorClass::RateLimited { .. } => Limit::RateLimited { delay },
                                ErrorClass::QuotaExhausted { .. } => {
                                    Limit::QuotaExhausted { delay }
                                }
                                _ => Limit::CapacityExhausted { delay },
                            };
                            let now = Instant::now();
                            match state.accounts.cooldowns.report(
                                &account_id,
                                self.model,
                                limit,
                                now,
                            ) {
                                Decision::WaitThenRetrySame(wait)
                                    if now + wait <= wait_until && waits < MAX_WAITS =>
                                {
                                    waits += 1;
                                    crate::telemetry::upstream(tokio::time::sleep(wait)).await;
                                }
                                Decision::BackOff { until }
                                    if until <= wait_until && waits < MAX_WAITS =>
                                {
                                    waits += 1;
                                    crate::telemetry::upstream(tokio::time::sleep_until(
                                        until.into(),
                                    ))
                                    .await;
                                }
                                Decision::BackOff { .. } => {
                                    return Err(ApiError::from_upstream(
                                        self.api, &err, self.model, &shown,
                                    ));
                                }
                                Decision::Switch {
                                    reason:
                                        CooldownReason::QuotaExhausted {
                                            needs_quota_recheck: true,
                                        },
                                    ..
                                } => {
                                    // No hint, or an absurd one: ask Google's quota call
                                    // when this account's quota really comes back.
                                    crate::jobs::recheck_quota(state, &account_id, self.model);
                                    done_with.push(account_id);
                                }
                                Decision::WaitThenRetrySame(_) | Decision::Switch { .. } => {
                                    done_with.push(account_id);
                                }
                            }
                        }
                        ErrorClass::ServerError | ErrorClass::Network | ErrorClass::Decode => {
                            // The endpoints all failed for this account (their breakers
                            // have heard): back off briefly, then another account, or
                            // this one again if it is the only one.
                            let delay = SERVER_ERROR_BACKOFF.delay(
                                u32::try_from(waits).unwrap_or(u32::MAX),
                                rand::random::<f64>(),
                            );
                            if waits >= MAX_WAITS || Instant::now() + delay > wait_until {
                                last = Some((err, shown));
                                break;
                            }
                            waits += 1;
                            crate::telemetry::upstream(tokio::time::sleep(delay)).await;
                            done_with.push(account_id);
                            if state.accounts.active_count().await.unwrap_or(0) <= done_with.len() {
                                // Only this account (or all tried): let it try again.
                                done_with.pop();
                            }
                        }
                        ErrorClass::Banned => {
                            state
                                .accounts
                                .disable(
                                    &account_id,
                                    &format!(
                                        "Google disabled this account for a Terms of Service violation: {}",
                                        err.message()
                                    ),
                                )
                                .await;
                            done_with.push(account_id);
                        }
                        ErrorClass::ValidationRequired { .. } => done_with.push(account_id),
                        ErrorClass::ClientOutdated => {
                            // Every account would get the same: no retry, no blame.
                            let google = &state.config.google;
                            let (sent, fix) = crate::drift::fix_for(
                                lease_pool,
                                &google.antigravity_version,
                                &google.gemini_cli_version,
                            );
                            state.version_drift.record(
                                &state.store,
                                crate::drift::Refusal {
                                    at: time::OffsetDateTime::now_utc()
                                        .format(&time::format_description::well_known::Rfc3339)
                                        .unwrap_or_default(),
                                    pool: lease_pool.to_string(),
                                    sent,
                                    message: err.message(),
                                    fix: fix.clone(),
                                },
                            );
                            let mut error =
                                ApiError::from_upstream(self.api, &err, self.model, &shown);
                            error.message = format!("{fix}. Google said: {}", err.message());
                            return Err(error);
                        }
                        ErrorClass::NotFound => {
                            // The caller fetches this account's models again and, if
                            // the name now resolves elsewhere, retries once.
                            let mut error =
                                ApiError::from_upstream(self.api, &err, self.model, &shown);
                            let known: Vec<String> = crate::catalogue::listing(state)
                                .into_iter()
                                .filter(|l| l.resolves_to.is_none())
                                .map(|l| l.id)
                                .collect();
                            error.message = format!(
                                "{}; models the pool offers: {}",
                                error.message,
                                known.join(", ")
                            );
                            return Err(error);
                        }
                        _ => {
                            return Err(ApiError::from_upstream(
                                self.api, &err, self.model, &shown,
                            ));
                        }
                    }
                    last = Some((err, shown));
                }
            }
        }
        match last {
            Some((err, account)) => Err(ApiError::from_upstream(
                self.api, &err, self.model, &account,
            )),
            None => Err(ApiError::new(
                self.api,
                ErrorKind::Unavailable,
                "no account could be tried",
            )),
        }
    }
}

/// The breaker gate for one lease's calls.
fn gate<'a>(state: &'a AppState, lease: &'a Lease) -> AccountGate<'a> {
    AccountGate {
        breakers: &state.accounts.breakers,
        account_id: &lease.account_id,
        email: &lease.email,
        store: &state.store,
    }
}

/// Reads a stream up to its first chunk with content. `None` when it ended without
/// any (an empty answer).
async fn first_content(
    mut stream: ChunkStream,
) -> Result<Option<(Vec<CloudCodeResponse>, ChunkStream)>, UpstreamError> {
    let mut first = Vec::new();
    loop {
        match stream.next().await {
            Some(Ok(chunk)) => {
                let has_content = has_content(&chunk);
                first.push(chunk);
                if has_content {
                    return Ok(Some((first, stream)));
                }
            }
            Some(Err(e)) => return Err(e),
            None => return Ok(None),
        }
    }
}

/// A short, stable stand-in for an e-mail in the audit log's account switches.
fn account_hash(email: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(email.as_bytes());
    let hex: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    format!("acct-{hex}")
}

/// Whether a chunk carries anything for the client: parts or a finish reason. Chunks
/// with usage only don't count, and a stream with nothing else is an empty answer.
fn has_content(chunk: &CloudCodeResponse) -> bool {
    !chunk.response.parts().is_empty() || chunk.response.finish_reason().is_some()
}

/// A 403 whose message names the `X-Goog-User-Project` header or the project itself.
fn blames_project_header(err: &UpstreamError, project: &str) -> bool {
    if err.status() != Some(403) {
        return false;
    }
    let message = err.message().to_ascii_lowercase();
    message.contains("x-goog-user-project")
        || message.contains("user project")
        || (!project.is_empty() && message.contains(&project.to_ascii_lowercase()))
}

fn empty_answer(lease: &Lease) -> UpstreamError {
    UpstreamError::Decode {
        endpoint: format!("Cloud Code (account {})", lease.account_id),
        message: "Google answered with no content, twice".into(),
    }
}

fn pool_error(api: ApiKind, err: &PoolError) -> ApiError {
    let (kind, retry_after) = match err {
        PoolError::Store(_) => (ErrorKind::Internal, None),
        PoolError::NoAccounts | PoolError::NoneUsable(_) | PoolError::EmptyPool(_) => {
            (ErrorKind::Unavailable, None)
        }
        PoolError::AllCoolingDown { retry_after, .. } => {
            (ErrorKind::RateLimited, Some(*retry_after))
        }
    };
    ApiError {
        retry_after,
        pool_empty: matches!(
            err,
            PoolError::NoAccounts | PoolError::NoneUsable(_) | PoolError::EmptyPool(_)
        ),
        ..ApiError::new(api, kind, err.to_string())
    }
}
