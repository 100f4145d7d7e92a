//! `POST /v1/messages`: the Anthropic Messages API, streamed and not.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use agm_google::ChunkStream;
use agm_translate::anthropic::request::{RequestOptions, to_gemini};
use agm_translate::anthropic::response::{ResponseContext, from_gemini};
use agm_translate::anthropic::stream::{StreamTranscoder, to_sse};
use agm_wire::anthropic::{MessagesRequest, StreamEvent};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::time::{Instant, sleep, sleep_until};

use crate::app::SharedState;
use crate::body::parse_json;
use crate::error::{ApiError, ApiKind, ErrorKind};
use crate::upstream::{OpenStream, UpstreamCall};

const API: ApiKind = ApiKind::Anthropic;
/// A quiet stream gets a `ping` this often, so proxies and clients don't time it out.
const PING_EVERY: Duration = Duration::from_secs(15);

pub async fn messages(
    State(state): State<SharedState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match handle(&state, body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn handle(
    state: &SharedState,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let request: MessagesRequest = parse_json(API, body)?;
    if request.model.trim().is_empty() {
        return Err(ApiError::invalid(
            API,
            "model: must name a model, e.g. claude-sonnet-4-5",
        ));
    }
    if request.messages.is_empty() {
        return Err(ApiError::invalid(
            API,
            "messages: at least one message is required",
        ));
    }
    let upstream_model = state.models.resolve(&request.model).to_owned();
    let translated = to_gemini(&request, &upstream_model, &RequestOptions::default())
        .map_err(|e| ApiError::invalid(API, e.to_string()))?;
    let request_seed = uuid::Uuid::new_v4().simple().to_string();
    let context = ResponseContext::for_request(&request.model, &translated, request_seed);
    let call = UpstreamCall {
        api: API,
        model: &upstream_model,
        request: translated.request,
    };
    let deadline = Instant::now() + state.config.server.request_timeout;

    if !request.is_stream() {
        let answer = tokio::time::timeout_at(deadline, call.generate(state))
            .await
            .map_err(|_| timeout(state))??;
        let message = from_gemini(&answer.response, &context);
        return Ok(axum::Json(message).into_response());
    }

    let OpenStream {
        first,
        rest,
        account,
    } = tokio::time::timeout_at(deadline, call.open_stream(state))
        .await
        .map_err(|_| timeout(state))??;
    tracing::debug!(%account, model = %upstream_model, "stream open");
    let mut transcoder = StreamTranscoder::new(context);
    let mut pending = VecDeque::new();
    for event in first
        .iter()
        .flat_map(|chunk| transcoder.push(&chunk.response))
    {
        let is_start = matches!(event, StreamEvent::MessageStart { .. });
        pending.push_back(Bytes::from(to_sse(&event)));
        if is_start {
            // Anthropic sends a ping right after message_start.
            pending.push_back(Bytes::from(to_sse(&StreamEvent::Ping)));
        }
    }
    let body = ClientStream {
        upstream: rest,
        transcoder,
        pending,
        finished: false,
        deadline,
    };
    let mut response = Response::new(Body::from_stream(body.into_stream()));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
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

/// The client's side of a stream: upstream chunks in, Anthropic SSE frames out, with
/// pings on quiet stretches. Dropping it (the client went away) drops the upstream call.
struct ClientStream {
    upstream: ChunkStream,
    transcoder: StreamTranscoder,
    pending: VecDeque<Bytes>,
    finished: bool,
    deadline: Instant,
}

impl ClientStream {
    fn into_stream(self) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send {
        futures_util::stream::unfold(self, |mut s| async move {
            loop {
                if let Some(frame) = s.pending.pop_front() {
                    return Some((Ok(frame), s));
                }
                if s.finished {
                    return None;
                }
                let events = tokio::select! {
                    item = s.upstream.next() => match item {
                        Some(Ok(chunk)) => s.transcoder.push(&chunk.response),
                        Some(Err(err)) => {
                            tracing::warn!(error = %err, "upstream stream broke");
                            s.finished = true;
                            s.transcoder.fail(format!("the upstream stream broke: {}", err.message()))
                        }
                        None => {
                            s.finished = true;
                            s.transcoder.finish()
                        }
                    },
                    () = sleep(PING_EVERY) => vec![StreamEvent::Ping],
                    () = sleep_until(s.deadline) => {
                        s.finished = true;
                        s.transcoder.fail("the request took longer than server.request_timeout")
                    }
                };
                s.pending
                    .extend(events.iter().map(|e| Bytes::from(to_sse(e))));
            }
        })
    }
}
