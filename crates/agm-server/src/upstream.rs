//! Calling Google for a client request: pick an account, send, and on an account-level
//! failure try again with another account (at most three accounts, each once). After a
//! 401 the account's cached token is dropped and it gets one more try with a fresh one.
//!
//! This is the walking skeleton's router; cooldowns, stickiness, the circuit breaker and
//! safe mode replace the simple round-robin here.

use std::time::{Duration, Instant};

use agm_google::{ChunkStream, ErrorClass, UpstreamError};
use agm_pool::cooldown::{Decision, Limit};
use agm_wire::cloudcode::{CloudCodeRequest, CloudCodeResponse};
use agm_wire::gemini::GenerateContentRequest;
use futures_util::StreamExt;

use crate::accounts::{Lease, PoolError};
use crate::app::AppState;
use crate::error::{ApiError, ApiKind, ErrorKind};

/// At most this many accounts are tried for one request.
const MAX_ACCOUNTS_PER_REQUEST: usize = 3;
/// At most this many waits (short rate limits, capacity backoff) per request.
const MAX_WAITS: usize = 2;
/// An upstream answer with no content is asked for again this many times.
const EMPTY_ANSWER_RETRIES: usize = 1;

/// A request bound for one upstream model.
pub struct UpstreamCall<'a> {
    pub api: ApiKind,
    pub model: &'a str,
    pub request: GenerateContentRequest,
}

/// A stream that has produced its first chunk: the client can be sent a 200.
pub struct OpenStream {
    /// The chunks up to and including the first one with content (or a finish reason).
    pub first: Vec<CloudCodeResponse>,
    pub rest: ChunkStream,
    pub account: String,
}

impl UpstreamCall<'_> {
    fn envelope(&self, lease: &Lease) -> CloudCodeRequest {
        CloudCodeRequest {
            project: lease.project.clone(),
            model: self.model.to_owned(),
            request_id: Some(format!("agent-{}", uuid::Uuid::new_v4())),
            user_agent: Some("antigravity".into()),
            request_type: Some("agent".into()),
            request: self.request.clone(),
        }
    }

    /// `generateContent`; an empty answer is retried, never returned.
    pub async fn generate(&self, state: &AppState) -> Result<CloudCodeResponse, ApiError> {
        self.with_accounts(state, |lease| async move {
            let body = self.envelope(&lease);
            let mut empty = 0;
            loop {
                let answer = state.google.generate(lease.auth(), &body).await?;
                if has_content(&answer) {
                    return Ok(answer);
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
        self.with_accounts(state, |lease| async move {
            let body = self.envelope(&lease);
            let mut empty = 0;
            loop {
                let mut stream = state.google.stream(lease.auth(), &body).await?;
                let mut first = Vec::new();
                loop {
                    match stream.next().await {
                        Some(Ok(chunk)) => {
                            let has_content = has_content(&chunk);
                            first.push(chunk);
                            if has_content {
                                return Ok(OpenStream {
                                    first,
                                    rest: stream,
                                    account: lease.email.clone(),
                                });
                            }
                        }
                        Some(Err(e)) => return Err(e),
                        None => break,
                    }
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

    /// `countTokens` on the upstream model, for the request's contents.
    pub async fn count_tokens(&self, state: &AppState) -> Result<u64, ApiError> {
        self.with_accounts(state, |lease| async move {
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

    async fn with_accounts<T, F, Fut>(&self, state: &AppState, call: F) -> Result<T, ApiError>
    where
        F: Fn(Lease) -> Fut,
        Fut: Future<Output = Result<T, UpstreamError>>,
    {
        let mut last: Option<(UpstreamError, String)> = None;
        // Accounts this request is done with: each is asked once (twice after a 401,
        // with a fresh token), so a rate-limited single account is not hammered.
        let mut done_with: Vec<String> = Vec::new();
        let mut refreshed: Vec<String> = Vec::new();
        // Waits on a short rate limit or Google's capacity backoff, bounded by max_wait.
        let wait_until = Instant::now() + state.config.routing.max_wait;
        let mut waits = 0;
        while done_with.len() < MAX_ACCOUNTS_PER_REQUEST {
            let lease = match state
                .accounts
                .acquire_for(Some(self.model), &done_with)
                .await
            {
                Ok(lease) => lease,
                Err(PoolError::AllCoolingDown { retry_after, .. }) => {
                    let mut error = match &last {
                        Some((err, account)) => {
                            ApiError::from_upstream(self.api, err, self.model, account)
                        }
                        None => ApiError::new(
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
            let account = lease.email.clone();
            let account_id = lease.account_id.clone();
            let mut result = call(lease.clone()).await;
            if let Err(err) = &result
                && lease.project_header
                && blames_project_header(err, &lease.project)
            {
                // PROTOCOL.md §2: some accounts get 403s because of the header; retry
                // once without it and remember that for the account.
                state.accounts.omit_project_header(&account_id).await;
                let without = Lease {
                    project_header: false,
                    ..lease
                };
                result = call(without).await;
            }
            match result {
                Ok(value) => {
                    state
                        .accounts
                        .cooldowns
                        .record_success(&account_id, self.model);
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
                                    tokio::time::sleep(wait).await;
                                }
                                Decision::BackOff { until }
                                    if until <= wait_until && waits < MAX_WAITS =>
                                {
                                    waits += 1;
                                    tokio::time::sleep_until(until.into()).await;
                                }
                                Decision::BackOff { .. } => {
                                    return Err(ApiError::from_upstream(
                                        self.api, &err, self.model, &account,
                                    ));
                                }
                                Decision::WaitThenRetrySame(_) | Decision::Switch { .. } => {
                                    done_with.push(account_id);
                                }
                            }
                        }
                        ErrorClass::ValidationRequired { .. } | ErrorClass::Banned => {
                            done_with.push(account_id)
                        }
                        ErrorClass::NotFound => {
                            let mut error =
                                ApiError::from_upstream(self.api, &err, self.model, &account);
                            error.message = format!(
                                "{}; models agm knows: {}",
                                error.message,
                                state.models.listed().join(", ")
                            );
                            return Err(error);
                        }
                        _ => {
                            return Err(ApiError::from_upstream(
                                self.api, &err, self.model, &account,
                            ));
                        }
                    }
                    last = Some((err, account));
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
        endpoint: format!("Cloud Code (account {})", lease.email),
        message: "Google answered with no content, twice".into(),
    }
}

fn pool_error(api: ApiKind, err: &PoolError) -> ApiError {
    let (kind, retry_after) = match err {
        PoolError::Store(_) => (ErrorKind::Internal, None),
        PoolError::NoAccounts | PoolError::NoneUsable(_) => (ErrorKind::Unavailable, None),
        PoolError::AllCoolingDown { retry_after, .. } => {
            (ErrorKind::RateLimited, Some(*retry_after))
        }
    };
    ApiError {
        retry_after,
        ..ApiError::new(api, kind, err.to_string())
    }
}
