//! The Gemini API as the google-genai SDKs use it: `POST /v1beta/models/{model}:generateContent`,
//! `:streamGenerateContent` (`alt=sse` or the JSON-array form) and `:countTokens`, also
//! under `/v1/`. The request goes through the Cloud Code envelope with minimal change.

use std::collections::HashMap;

use agm_google::ErrorClass;
use agm_translate::gemini_api::{Passthrough, parse_model_path, prepare_request, session_id};
use agm_wire::gemini::{Content, GenerateContentRequest, GenerateContentResponse};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;

use crate::app::SharedState;
use crate::http::body::parse_json;
use crate::http::conversation::stream_body;
use crate::http::error::{ApiError, ApiKind, ErrorKind};
use crate::routing::error::RouteError;
use crate::routing::executor::{OpenStream, UpstreamCall};

const API: ApiKind = ApiKind::Google;

/// `POST /v1beta/models/{model}:{action}`.
pub async fn model_action(
    State(state): State<SharedState>,
    Path(path): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match handle(&state, &path, &query, body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

/// `countTokens` takes `{contents}` or `{generateContentRequest: {...}}`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CountTokensBody {
    #[serde(default)]
    contents: Vec<Content>,
    #[serde(default)]
    generate_content_request: Option<GenerateContentRequest>,
}

async fn handle(
    state: &SharedState,
    path: &str,
    query: &HashMap<String, String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (model, action) = parse_model_path(path).map_err(|e| {
        let kind = if e.is_not_found() {
            ErrorKind::NotFound
        } else {
            ErrorKind::InvalidRequest
        };
        ApiError::new(API, kind, e.to_string())
    })?;
    let resolved = crate::routing::catalogue::resolve(state, API, model)?;
    let mut upstream_model = resolved.model;
    let mut retired = resolved.retired;
    crate::http::request_log::note_models(model, &upstream_model);
    crate::http::key_policy::check_model(API, model, &upstream_model)?;
    let deadline = Instant::now() + state.config.server.request_timeout;
    match action {
        "countTokens" => {
            let body: CountTokensBody = parse_json(API, body)?;
            let contents = match body.generate_content_request {
                Some(request) => request.contents,
                None => body.contents,
            };
            if contents.is_empty() {
                return Err(ApiError::invalid(
                    API,
                    "contents: at least one content is required",
                ));
            }
            let call = UpstreamCall {
                model: &upstream_model,
                request: GenerateContentRequest {
                    contents,
                    ..GenerateContentRequest::default()
                },
            };
            let total = within(state, deadline, call.count_tokens(state))
                .await
                .map_err(|e| e.into_api(API))?;
            Ok(axum::Json(json!({"totalTokens": total})).into_response())
        }
        "generateContent" | "streamGenerateContent" => {
            let body_bytes = body.as_ref().map_or(0, Bytes::len);
            let mut request: GenerateContentRequest = parse_json(API, body)?;
            if request.contents.is_empty() {
                return Err(ApiError::invalid(
                    API,
                    "contents: at least one content is required",
                ));
            }
            let session = session_id(&request);
            prepare_request(&mut request, &session, &upstream_model);
            crate::http::edge::check_counts(API, &request, &state.config.server)?;
            if let Some(note) =
                agm_translate::models::cap_output_tokens(&mut request, &upstream_model)
            {
                tracing::debug!(model = %upstream_model, "{note}");
            }
            // Usage stays the client's: the cut goes back into Google's prompt count.
            let scaled = crate::http::scaling::scale(
                state,
                &upstream_model,
                &session,
                body_bytes,
                &mut request,
            )
            .await;
            let cut_tokens = scaled.map_or(0, |s| s.report.cut_tokens());
            let mut tries = 0;
            let (answer, open) = loop {
                tries += 1;
                let call = UpstreamCall {
                    model: &upstream_model,
                    request,
                };
                // Boxed, as in `conversation::handle` (see there).
                let result = if action == "generateContent" {
                    within(state, deadline, Box::pin(call.generate(state)))
                        .await
                        .map(|answer| (Some(answer), None))
                } else {
                    within(state, deadline, Box::pin(call.open_stream(state)))
                        .await
                        .map(|open| (None, Some(open)))
                };
                let error = match result {
                    Ok(done) => break done,
                    Err(e) => e,
                };
                // Google no longer serves the model: learn what the account is offered
                // now and, if the name resolves elsewhere, try once more.
                let again = if tries == 1 && matches!(error.class(), Some(ErrorClass::NotFound)) {
                    crate::routing::catalogue::after_not_found(
                        state,
                        API,
                        model,
                        &upstream_model,
                        crate::http::request_log::last_account().as_deref(),
                    )
                    .await
                } else {
                    None
                };
                let Some(again) = again else {
                    return Err(error.into_api(API));
                };
                request = call.request;
                upstream_model = again.model;
                retired = again.retired.or_else(|| Some(model.to_owned()));
                crate::http::request_log::note_models(model, &upstream_model);
                prepare_request(&mut request, &session, &upstream_model);
            };
            if let Some((mut answer, served)) = answer {
                crate::http::request_log::note_usage(&answer.response);
                crate::http::scaling::add_back(&mut answer.response, cut_tokens);
                let mut response = axum::Json(answer.response).into_response();
                served.write_headers(response.headers_mut());
                if let Some(scaled) = &scaled {
                    scaled.write_header(response.headers_mut());
                }
                crate::http::conversation::mark_retired(response.headers_mut(), retired.as_deref());
                return Ok(response);
            }
            let Some(open) = open else {
                return Err(ApiError::new(API, ErrorKind::Internal, "no answer"));
            };
            let mut response = if query.get("alt").map(String::as_str) == Some("sse") {
                sse_response(open, deadline, cut_tokens)
            } else {
                json_array_response(open, deadline, cut_tokens).await?
            };
            if let Some(scaled) = &scaled {
                scaled.write_header(response.headers_mut());
            }
            crate::http::conversation::mark_retired(response.headers_mut(), retired.as_deref());
            Ok(response)
        }
        other => Err(ApiError::new(
            API,
            ErrorKind::NotFound,
            format!(
                "the Gemini method {other} is not served; agm serves generateContent, streamGenerateContent and countTokens"
            ),
        )),
    }
}

/// The router's work within the request's deadline.
async fn within<T>(
    state: &SharedState,
    deadline: Instant,
    work: impl Future<Output = Result<T, RouteError>>,
) -> Result<T, RouteError> {
    tokio::time::timeout_at(deadline, work).await.map_err(|_| {
        RouteError::new(
            ErrorKind::Timeout,
            format!(
                "the request took longer than server.request_timeout ({})",
                humantime::format_duration(state.config.server.request_timeout)
            ),
        )
    })?
}

/// Upstream chunks as Gemini SSE, unwrapped from the Cloud Code envelope
/// ([`Passthrough`]). A broken upstream ends the stream with an error object, as
/// Google's own API does, and so does the request's deadline (an upstream that stalls
/// after its first chunk).
fn sse_response(open: OpenStream, deadline: Instant, cut_tokens: u64) -> Response {
    let OpenStream {
        first,
        rest,
        served,
        lease,
        ..
    } = open;
    // The lease keeps the account's in-flight count up until the stream ends.
    let body = stream_body(
        Passthrough::new(),
        &first,
        rest,
        lease,
        deadline,
        None,
        cut_tokens,
    );
    let mut response = Response::new(body);
    served.write_headers(response.headers_mut());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `streamGenerateContent` without `alt=sse`: Google answers one JSON array of chunks.
async fn json_array_response(
    open: OpenStream,
    deadline: Instant,
    cut_tokens: u64,
) -> Result<Response, ApiError> {
    let OpenStream {
        first,
        mut rest,
        account,
        served,
        lease: _lease,
    } = open;
    let mut chunks: Vec<GenerateContentResponse> = first.into_iter().map(|c| c.response).collect();
    loop {
        match tokio::time::timeout_at(deadline, rest.next()).await {
            Ok(Some(Ok(chunk))) => chunks.push(chunk.response),
            Ok(Some(Err(err))) => {
                return Err(ApiError::from_upstream(API, &err, "the model", &account));
            }
            Ok(None) => break,
            Err(_) => {
                return Err(ApiError::new(
                    API,
                    ErrorKind::Timeout,
                    "the request took longer than server.request_timeout",
                ));
            }
        }
    }
    for chunk in &mut chunks {
        crate::http::request_log::note_usage(chunk);
        crate::http::scaling::add_back(chunk, cut_tokens);
    }
    let mut response = axum::Json(chunks).into_response();
    served.write_headers(response.headers_mut());
    Ok(response)
}
