//! `POST /v1/messages` and `/v1/messages/count_tokens`: the Anthropic Messages API.

use agm_translate::anthropic::Messages;
use agm_translate::anthropic::request::count_tokens_to_gemini;
use agm_translate::tokens;
use agm_wire::anthropic::{CountTokensRequest, CountTokensResponse};
use agm_wire::gemini::GenerateContentRequest;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

use crate::app::SharedState;
use crate::http::body::parse_json;
use crate::http::conversation::{self, Conversation};
use crate::http::error::{ApiError, ApiKind, ErrorKind};
use crate::routing::error::RouteError;
use crate::routing::executor::UpstreamCall;

const API: ApiKind = ApiKind::Anthropic;

/// `POST /v1/messages`.
pub async fn messages(
    State(state): State<SharedState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    conversation::serve::<Messages>(&state, body).await
}

impl Conversation for Messages {
    const API: ApiKind = API;
}

/// The response header saying where a `count_tokens` answer comes from: `upstream`
/// (Google's `countTokens`) or `estimate` (agm's own, [`agm_translate::tokens`]).
pub const TOKEN_COUNT_HEADER: &str = "x-agm-token-count";

/// `POST /v1/messages/count_tokens`: Google's own count of the translated request,
/// system prompt and tools included.
///
/// When Google cannot count right now ([`can_estimate`]: its server failed, the
/// network, an unreadable answer, capacity, rate limits, or the request timeout), the
/// answer is agm's local estimate of the same request instead of an error, marked
/// `x-agm-token-count: estimate`: clients call `count_tokens` to size their context,
/// and a close estimate serves them better than a failure. Errors that say the request
/// or the setup is wrong (a 400, an unknown model, no usable account) still reach the
/// client, since an estimate would hide what the user has to fix.
pub async fn count_tokens(
    State(state): State<SharedState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let result = async {
        let request: CountTokensRequest = parse_json(API, body)?;
        if request.messages.is_empty() {
            return Err(ApiError::invalid(
                API,
                "messages: at least one message is required",
            ));
        }
        agm_translate::edge::check_model_name(&request.model)
            .map_err(|e| ApiError::invalid(API, format!("model: {e}")))?;
        let upstream_model = crate::routing::catalogue::resolve(&state, API, &request.model)?.model;
        crate::http::request_log::note_models(&request.model, &upstream_model);
        crate::http::key_policy::check_model(API, &request.model, &upstream_model)?;
        let counted = count_tokens_to_gemini(&request, &upstream_model)
            .map_err(|e| ApiError::invalid(API, e.to_string()))?;
        let call = UpstreamCall {
            model: &upstream_model,
            request: GenerateContentRequest {
                contents: counted.request.contents,
                ..GenerateContentRequest::default()
            },
        };
        let deadline = Instant::now() + state.config.server.request_timeout;
        let counted = tokio::time::timeout_at(deadline, call.count_tokens(&state))
            .await
            .unwrap_or_else(|_| Err(RouteError::from(timeout(&state))));
        let (input_tokens, source) = match counted {
            Ok(tokens) => (tokens, "upstream"),
            Err(err) if can_estimate(&err) => {
                tracing::warn!(model = %upstream_model, error = %err.message, "countTokens failed; answering with agm's estimate");
                (tokens::estimate(&call.request), "estimate")
            }
            Err(err) => return Err(err.into_api(API)),
        };
        let mut response = axum::Json(CountTokensResponse { input_tokens }).into_response();
        response
            .headers_mut()
            .insert(TOKEN_COUNT_HEADER, HeaderValue::from_static(source));
        Ok(response)
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

/// Whether a failed upstream `countTokens` is answered with agm's estimate: when
/// Google could not count now, not when the request or the setup is wrong.
fn can_estimate(err: &RouteError) -> bool {
    matches!(
        err.kind,
        ErrorKind::UpstreamFailed
            | ErrorKind::Overloaded
            | ErrorKind::RateLimited
            | ErrorKind::Timeout
    )
}

fn timeout(state: &SharedState) -> ApiError {
    ApiError::new(
        API,
        ErrorKind::Timeout,
        format!(
            "the request took longer than server.request_timeout ({})",
            humantime::format_duration(state.config.server.request_timeout)
        ),
    )
}
