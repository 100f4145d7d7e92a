//! Calling Google for a client request: the router of docs/ARCHITECTURE.md.
//!
//! - L0/L1: safe mode (or `ENABLE_ANTIGRAVITY_AUTH=false`) sends the request to the
//!   official Gemini API with an API key; otherwise it goes the Antigravity way.
//! - L2/L3: the account pool picks an account (scheduling, sticky sessions, cooldowns,
//!   quota protection) with a fresh token and its project.
//! - L4: each account's calls pass its circuit breakers, one per endpoint.
//! - L5: the call, with endpoint fallback in the Google client. What happens after each
//!   outcome (the next account, the same one with a fresh token, a wait, giving up) is
//!   the pure plan of `agm_pool::attempts`; [`UpstreamCall::with_accounts`] and
//!   `with_keys` only execute its steps, and `crate::routing::effects` performs its effects.

use std::time::{Duration, Instant};

use agm_google::{ChunkStream, ErrorClass, UpstreamError};
use agm_pool::attempts::{
    self, Failed, Limits, Outcome, Plan, PoolAnswer, RouteFailure, RouteFailureKind, Step,
};
use agm_pool::safe_mode::Route;
use agm_store::Pool;
use agm_translate::models::official_is_substitute;
use agm_wire::cloudcode::{CloudCodeRequest, CloudCodeResponse};
use agm_wire::gemini::GenerateContentRequest;
use axum::http::{HeaderMap, HeaderValue};
use futures_util::{StreamExt, TryStreamExt};

use crate::app::AppState;
use crate::http::error::ErrorKind;
use crate::routing::accounts::{Lease, PoolError};
use crate::routing::breaker::AccountGate;
use crate::routing::error::RouteError;

/// An upstream answer with no content is asked for again this many times.
const EMPTY_ANSWER_RETRIES: usize = 1;

/// A request bound for one upstream model.
pub struct UpstreamCall<'a> {
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
#[derive(Clone)]
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
    ) -> Result<(CloudCodeResponse, Served), RouteError> {
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
    ) -> Result<(CloudCodeResponse, Served), RouteError> {
        self.with_accounts(state, pool, |lease| async move {
            let body = self.envelope(&lease);
            let gate = gate(state, &lease);
            let user_agent = self.code_assist_user_agent(state, &lease);
            let auth = self.auth(state, &lease, &gate, user_agent.as_deref());
            let started = Instant::now();
            let mut empty = 0;
            loop {
                let answer = state.google.generate(auth, &body).await?;
                if let Some(refusal) = agm_google::refusal_in_answer(
                    || format!("Cloud Code (account {})", lease.account_id),
                    &answer.response,
                ) {
                    return Err(refusal);
                }
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

    /// One `generateContent` on `lease`'s account and nothing else: no other account, no
    /// retry (the warmup's minimal request, `crate::ops::warmup`).
    pub(crate) async fn generate_once(
        &self,
        state: &AppState,
        lease: &Lease,
    ) -> Result<CloudCodeResponse, UpstreamError> {
        let body = self.envelope(lease);
        let gate = gate(state, lease);
        let user_agent = self.code_assist_user_agent(state, lease);
        let auth = self.auth(state, lease, &gate, user_agent.as_deref());
        state.google.generate(auth, &body).await
    }

    /// `streamGenerateContent`, returned once the first chunk has arrived, so that a
    /// failure before it still rotates accounts or becomes a proper error status.
    pub async fn open_stream(&self, state: &AppState) -> Result<OpenStream, RouteError> {
        self.route(
            state,
            |pool| self.open_stream_on(state, pool),
            || self.official_stream(state),
        )
        .await
    }

    async fn open_stream_on(&self, state: &AppState, pool: Pool) -> Result<OpenStream, RouteError> {
        self.with_accounts(state, pool, |lease| async move {
            let body = self.envelope(&lease);
            let gate = gate(state, &lease);
            let user_agent = self.code_assist_user_agent(state, &lease);
            let auth = self.auth(state, &lease, &gate, user_agent.as_deref());
            let started = Instant::now();
            let mut empty = 0;
            let stalled = state.config.google.first_chunk_timeout;
            loop {
                // A stalled call (no head, or no first chunk) must not hold the request
                // for the whole stall: past the timeout it is a transient fault, and
                // the routing plan moves on.
                let opened = match tokio::time::timeout(stalled, async {
                    first_content(state.google.stream(auth, &body).await?).await
                })
                .await
                {
                    Ok(opened) => opened?,
                    Err(_) => {
                        return Err(UpstreamError::Network {
                            endpoint: format!("Cloud Code (account {})", lease.account_id),
                            message: format!(
                                "no first chunk within google.first_chunk_timeout ({})",
                                humantime::format_duration(stalled)
                            ),
                        });
                    }
                };
                if let Some(refusal) = opened.as_ref().and_then(|(first, _)| {
                    agm_google::refusal_in_answer(
                        || format!("Cloud Code (account {})", lease.account_id),
                        &first.last()?.response,
                    )
                }) {
                    return Err(refusal);
                }
                if let Some((first, rest)) = opened {
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
    fn pools<'s>(&self, state: &'s AppState) -> &'s [Pool] {
        if !self.model.starts_with("gemini-") {
            return &[Pool::Antigravity];
        }
        &state.config.routing.gemini_pool_order
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
    ) -> Result<T, RouteError>
    where
        A: Fn(Pool) -> AF,
        AF: Future<Output = Result<T, RouteError>>,
        O: Fn() -> OF,
        OF: Future<Output = Result<T, RouteError>>,
    {
        if self.goes_official(state) {
            return official().await;
        }
        let pools = self.pools(state);
        let keys = !state.gemini_keys.get().is_empty();
        let mut last: Option<RouteError> = None;
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
            let exhausted = error.pool_exhausted();
            let more = pools[i + 1..].iter().any(|p| *p != Pool::GeminiApi || keys);
            // A pool with no account at all says less than an earlier pool's failure.
            if last.is_none() || !error.no_account {
                last = Some(error);
            }
            if !(exhausted && more) {
                break;
            }
            tracing::info!(model = self.model, pool = %pool, "pool exhausted; trying the next");
        }
        let error = last.unwrap_or_else(|| {
            RouteError::new(
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
    pub async fn count_tokens(&self, state: &AppState) -> Result<u64, RouteError> {
        if self.goes_official(state) {
            let target = self.official_target(state)?;
            return crate::ops::telemetry::upstream(state.google.official_count_tokens(
                &target.key,
                &target.model,
                &self.request.contents,
            ))
            .await
            .map_err(|e| RouteError::from_upstream(&e, &target.model, &target.label));
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
    fn falls_back(&self, state: &AppState, error: &RouteError) -> bool {
        error.no_account && (!state.gemini_keys.get().is_empty() || state.safe_mode.is_active())
    }

    fn official_target(&self, state: &AppState) -> Result<OfficialTarget, RouteError> {
        let keys = state.gemini_keys.get();
        if keys.is_empty() {
            return Err(self.no_key(state));
        }
        Ok(self.official_target_at(&keys, state, state.official_key_cursor.next(keys.len())))
    }

    /// The official API's key number `index` of `keys` (in range) and the model for it.
    fn official_target_at(
        &self,
        keys: &[String],
        state: &AppState,
        index: usize,
    ) -> OfficialTarget {
        OfficialTarget {
            key: keys[index].clone(),
            label: format!("gemini-api key {}", index + 1),
            model: state.official_models.resolve(self.model).to_owned(),
        }
    }

    /// The 503 for the official path with no key: how to add one.
    fn no_key(&self, state: &AppState) -> RouteError {
        RouteError::new(
            ErrorKind::Unavailable,
            if state.config.routing.enable_antigravity {
                "safe mode is on (the Antigravity path keeps failing) and no Gemini API key is configured: add one with GEMINI_API_KEY=<key> or [safe_mode] gemini_api_keys in the config, or turn safe mode off with `agm safe-mode disable`"
            } else {
                "the Antigravity path is turned off (ENABLE_ANTIGRAVITY_AUTH=false) and no Gemini API key is configured: add one with GEMINI_API_KEY=<key> or [safe_mode] gemini_api_keys in the config"
            },
        )
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
    ) -> Result<(CloudCodeResponse, Served), RouteError> {
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

    async fn official_stream(&self, state: &AppState) -> Result<OpenStream, RouteError> {
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

    /// Runs `call` with the official API's keys, as the routing plan says (next key
    /// after a refused key, a limit or a fault; a single key retried once after a
    /// back-off); the daily cap checked first.
    async fn with_keys<T, F, Fut>(&self, state: &AppState, call: F) -> Result<T, RouteError>
    where
        F: Fn(OfficialTarget) -> Fut,
        Fut: Future<Output = Result<T, UpstreamError>>,
    {
        let list = state.gemini_keys.get();
        let keys = list.len();
        if let Some(cap) = state.daily_cap.check() {
            metrics::counter!("agm_official_daily_cap_refusals_total").increment(1);
            return Err(RouteError {
                retry_after: Some(cap),
                ..RouteError::new(
                    ErrorKind::RateLimited,
                    format!(
                        "the daily request cap of the paid Gemini API pool ([safe_mode] daily_request_cap = {}) is reached; it resets at midnight UTC",
                        state.daily_cap.cap()
                    ),
                )
            });
        }
        if keys == 0 {
            return Err(self.no_key(state));
        }
        let mut plan = Plan::for_keys(
            Limits::keys(keys, state.config.routing.max_wait),
            Instant::now(),
        );
        let mut turn = plan.start(Instant::now());
        let mut target: Option<OfficialTarget> = None;
        let mut value = None;
        let mut last: Option<(UpstreamError, String, String)> = None;
        loop {
            turn = match turn.step {
                Step::Acquire { exclude } => {
                    let next = (0..keys)
                        .map(|_| state.official_key_cursor.next(keys))
                        .find(|i| !exclude.contains(&key_id(*i)));
                    match next {
                        Some(index) => {
                            target = Some(self.official_target_at(&list, state, index));
                            plan.acquired(PoolAnswer::Acquired(key_id(index)), Instant::now())
                        }
                        None => plan.acquired(PoolAnswer::NoneUsable, Instant::now()),
                    }
                }
                Step::Call { .. } | Step::RetrySame { .. } => {
                    let Some(t) = target.as_ref() else {
                        return Err(RouteError::new(
                            ErrorKind::Internal,
                            "the routing plan called a key it was not given",
                        ));
                    };
                    let (label, model) = (t.label.clone(), t.model.clone());
                    metrics::counter!("api_call_total", "pool" => "gemini-api").increment(1);
                    crate::http::request_log::note_attempt(None);
                    match crate::ops::telemetry::upstream(call(t.clone())).await {
                        Ok(v) => {
                            metrics::counter!("api_call_success_total", "pool" => "gemini-api")
                                .increment(1);
                            value = Some(v);
                            plan.called(Outcome::Success, Instant::now(), 0.0)
                        }
                        Err(err) => {
                            tracing::warn!(key = %label, model = %model, error = %err, "official Gemini API call failed");
                            let class = err.class(unix_now());
                            crate::http::request_log::note_failure(&class);
                            last = Some((err, label, model));
                            plan.called(
                                Outcome::Failed(Failed::new(class)),
                                Instant::now(),
                                rand::random(),
                            )
                        }
                    }
                }
                Step::Wait(d) => {
                    crate::http::request_log::note_wait(d);
                    crate::ops::telemetry::upstream(tokio::time::sleep(d)).await;
                    plan.waited(Instant::now())
                }
                Step::Done => {
                    return value
                        .ok_or_else(|| RouteError::new(ErrorKind::Internal, "no answer was kept"));
                }
                Step::Fail(_) => {
                    return Err(match last {
                        Some((err, label, model)) => {
                            RouteError::from_upstream(&err, &model, &label)
                        }
                        None => RouteError::new(
                            ErrorKind::Unavailable,
                            "no Gemini API key could be tried",
                        ),
                    });
                }
            };
        }
    }

    /// Runs `call` on the pool's accounts as the routing plan (`agm_pool::attempts`)
    /// says: this is only its executor. Each step's effects go through
    /// `crate::routing::effects`; the plan owns every limit and decision.
    async fn with_accounts<T, F, Fut>(
        &self,
        state: &AppState,
        pool: Pool,
        call: F,
    ) -> Result<T, RouteError>
    where
        F: Fn(Lease) -> Fut,
        Fut: Future<Output = Result<T, UpstreamError>>,
    {
        let session = self.request.session_id.as_deref();
        let mut plan = Plan::new(
            Limits::accounts(state.config.routing.max_wait),
            Instant::now(),
        );
        let mut turn = plan.start(Instant::now());
        let mut lease: Option<Lease> = None;
        let mut last: Option<Failure> = None;
        let mut pool_err: Option<PoolError> = None;
        let mut value: Option<T> = None;
        loop {
            for effect in std::mem::take(&mut turn.effects) {
                crate::routing::effects::apply(
                    state,
                    self.model,
                    effect,
                    lease.as_ref(),
                    last.as_ref(),
                )
                .await;
            }
            let (current, without_header) = match turn.step {
                Step::Acquire { exclude } => {
                    let answer = match crate::ops::telemetry::upstream(state.accounts.acquire_for(
                        pool,
                        Some(self.model),
                        session,
                        &exclude,
                    ))
                    .await
                    {
                        Ok(l) => {
                            let id = l.account_id.clone();
                            lease = Some(l);
                            PoolAnswer::Acquired(id)
                        }
                        Err(PoolError::AllCoolingDown { retry_after, .. }) => {
                            PoolAnswer::AllCoolingDown { retry_after }
                        }
                        Err(e) => {
                            pool_err = Some(e);
                            PoolAnswer::NoneUsable
                        }
                    };
                    turn = plan.acquired(answer, Instant::now());
                    continue;
                }
                Step::Call {
                    without_project_header,
                    ..
                } => match lease.clone() {
                    Some(l) => (l, without_project_header),
                    None => {
                        turn = plan.lease_failed(Instant::now());
                        continue;
                    }
                },
                Step::RetrySame {
                    account,
                    fresh_token,
                    without_project_header,
                } => {
                    let again = if fresh_token
                        || lease.as_ref().is_none_or(|l| l.account_id != account)
                    {
                        // The token was invalidated: lease the account anew, which
                        // refreshes it (one refresh per account at a time).
                        crate::ops::telemetry::upstream(state.accounts.lease_for(&account))
                            .await
                            .map_err(|reason| {
                                tracing::debug!(%account, %reason, "cannot lease the account again");
                            })
                            .ok()
                    } else {
                        lease.clone()
                    };
                    match again {
                        Some(l) => {
                            lease = Some(l.clone());
                            (l, without_project_header)
                        }
                        None => {
                            turn = plan.lease_failed(Instant::now());
                            continue;
                        }
                    }
                }
                Step::Wait(d) => {
                    crate::http::request_log::note_wait(d);
                    crate::ops::telemetry::upstream(tokio::time::sleep(d)).await;
                    turn = plan.waited(Instant::now());
                    continue;
                }
                Step::Done => {
                    return value
                        .ok_or_else(|| RouteError::new(ErrorKind::Internal, "no answer was kept"));
                }
                Step::Fail(failure) => {
                    return Err(self.route_error(state, failure, last, pool_err));
                }
            };
            let current = if without_header {
                current.without_project_header()
            } else {
                current
            };
            crate::http::request_log::note_attempt(Some(&current.account_id));
            metrics::counter!("api_call_total", "pool" => "antigravity").increment(1);
            turn = match crate::ops::telemetry::upstream(call(current.clone())).await {
                Ok(v) => {
                    metrics::counter!("api_call_success_total", "pool" => "antigravity")
                        .increment(1);
                    value = Some(v);
                    plan.called(Outcome::Success, Instant::now(), 0.0)
                }
                Err(err) => {
                    tracing::warn!(account = %current.email, model = self.model, error = %err, "upstream call failed");
                    let class = err.class(unix_now());
                    crate::http::request_log::note_failure(&class);
                    let mut failed = Failed::new(class.clone());
                    if let Some(limit) = attempts::limit(&class) {
                        let decision = state.accounts.cooldowns.report(
                            &current.account_id,
                            self.model,
                            limit,
                            Instant::now(),
                        );
                        if let agm_pool::cooldown::Decision::Switch { until, reason } = decision {
                            // Every replica honours it before this answer goes out.
                            crate::cluster::sync::share_cooldown(
                                state,
                                &current.account_id,
                                self.model,
                                until,
                                reason,
                            )
                            .await;
                        }
                        failed = failed.with_cooldown(decision);
                    }
                    if current.project_header && blames_project_header(&err, &current.project) {
                        failed = failed.blaming_project_header();
                    }
                    last = Some(Failure {
                        error: err,
                        account_id: current.account_id.clone(),
                        pool: current.pool,
                    });
                    plan.called(Outcome::Failed(failed), Instant::now(), rand::random())
                }
            };
        }
    }

    /// The client's error for a failed plan: Google's last answer in words a user can
    /// act on (accounts named by id), or the pool's own error.
    fn route_error(
        &self,
        state: &AppState,
        failure: RouteFailure,
        last: Option<Failure>,
        pool_err: Option<PoolError>,
    ) -> RouteError {
        let from_last =
            |last: &Failure| RouteError::from_upstream(&last.error, self.model, &last.account_id);
        match failure.kind {
            RouteFailureKind::AllLimited { retry_after } => {
                let mut error = match (&last, &failure.last_error_account) {
                    (Some(last), Some(_)) => from_last(last),
                    _ => RouteError::new(
                        ErrorKind::RateLimited,
                        format!(
                            "every account is rate-limited for {}; retry after the delay",
                            self.model
                        ),
                    ),
                };
                error.kind = ErrorKind::RateLimited;
                error.retry_after = Some(retry_after.max(Duration::from_secs(1)));
                error
            }
            RouteFailureKind::NoAccount => match pool_err {
                Some(e) => pool_error(&e),
                None => RouteError::new(ErrorKind::Unavailable, "no account could be tried"),
            },
            RouteFailureKind::Exhausted {
                token_unconfirmed: true,
            } => RouteError::new(
                ErrorKind::Unavailable,
                "Google refused an account's access token and no fresh one could be tried in time; retry the request",
            ),
            RouteFailureKind::Final | RouteFailureKind::Exhausted { .. } => {
                let Some(last) = last else {
                    return match pool_err {
                        Some(e) => pool_error(&e),
                        None => {
                            RouteError::new(ErrorKind::Unavailable, "no account could be tried")
                        }
                    };
                };
                let mut error = from_last(&last);
                match last.error.class(unix_now()) {
                    ErrorClass::ClientOutdated => {
                        let google = &state.config.google;
                        let (_, fix) = crate::routing::drift::fix_for(
                            last.pool,
                            &google.antigravity_version,
                            &google.gemini_cli_version,
                        );
                        error.message = format!("{fix}. Google said: {}", last.error.message());
                    }
                    ErrorClass::NotFound => {
                        // The caller fetches this account's models again and, if the
                        // name now resolves elsewhere, retries once.
                        let known: Vec<String> = crate::routing::catalogue::listing(state)
                            .into_iter()
                            .filter(|l| l.resolves_to.is_none())
                            .map(|l| l.id)
                            .collect();
                        error.message = format!(
                            "{}; models the pool offers: {}",
                            error.message,
                            known.join(", ")
                        );
                    }
                    _ => {}
                }
                error
            }
        }
    }
}

/// The last failed call of a request: Google's error and the account (by store id).
pub struct Failure {
    pub error: UpstreamError,
    pub account_id: String,
    pub pool: Pool,
}

fn key_id(index: usize) -> String {
    format!("key-{index}")
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The breaker gate for one lease's calls.
fn gate<'a>(state: &'a AppState, lease: &'a Lease) -> AccountGate<'a> {
    AccountGate {
        breakers: &state.accounts.breakers,
        account_id: &lease.account_id,
        email: &lease.email,
        store: &state.store,
        cluster: state.cluster.as_ref(),
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

fn pool_error(err: &PoolError) -> RouteError {
    let (kind, retry_after) = match err {
        PoolError::Store(_) => (ErrorKind::Internal, None),
        PoolError::NoAccounts | PoolError::NoneUsable(_) | PoolError::EmptyPool(_) => {
            (ErrorKind::Unavailable, None)
        }
        PoolError::AllCoolingDown { retry_after, .. } => {
            (ErrorKind::RateLimited, Some(*retry_after))
        }
    };
    RouteError {
        retry_after,
        no_account: matches!(
            err,
            PoolError::NoAccounts | PoolError::NoneUsable(_) | PoolError::EmptyPool(_)
        ),
        ..RouteError::new(kind, err.to_string())
    }
}
