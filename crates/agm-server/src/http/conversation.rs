//! One request path for every chat-style client API (Anthropic Messages, OpenAI Chat
//! Completions, OpenAI Responses): parse, translate with the signature cache, call the
//! upstream (retrying once with thinking as text after a refused signature), and answer
//! whole or as a stream. Each API plugs in its converter through [`Conversation`].

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use agm_google::{ChunkStream, ErrorClass};
use agm_translate::TranslateError;
use agm_translate::common::{RequestOptions, StreamEnd, Translated};
use agm_translate::thinking::{ModelFamily, SeenSignature};
use agm_wire::cloudcode::CloudCodeResponse;
use agm_wire::gemini::GenerateContentResponse;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::time::{Instant, sleep, sleep_until};

use crate::app::SharedState;
use crate::http::body::parse_json;
use crate::http::error::{ApiError, ApiKind, ErrorKind};
use crate::routing::error::RouteError;
use crate::routing::executor::{OpenStream, UpstreamCall};

/// A quiet stream gets a keep-alive this often, so proxies and clients don't time it out.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(15);

/// A client API with a converter pair: what the shared path needs to know of it.
pub trait Conversation: 'static {
    const API: ApiKind;
    type Request: DeserializeOwned + Send + Sync;
    type Context: Send;
    /// Ends the answer on its own when a stop sequence matches ([`StreamEnd`]).
    type Transcoder: StreamEnd + Send + 'static;
    type Answer: Serialize;

    fn model(request: &Self::Request) -> &str;
    fn is_stream(request: &Self::Request) -> bool;
    /// Checks serde cannot make (non-empty lists and the like), naming the field.
    fn check(request: &Self::Request) -> Result<(), String>;
    /// How many messages (input items) and tools the client sent, for
    /// `server.max_messages` and `server.max_tools`.
    fn counts(request: &Self::Request) -> (usize, usize);
    fn translate(
        request: &Self::Request,
        upstream_model: &str,
        options: &RequestOptions<'_>,
    ) -> Result<Translated, TranslateError>;
    fn context(
        request: &Self::Request,
        translated: &Translated,
        seed: String,
        unix_now: u64,
    ) -> Self::Context;
    /// A whole upstream answer as the client's answer, with the signatures it carried.
    fn convert(
        response: &GenerateContentResponse,
        context: &Self::Context,
    ) -> (Self::Answer, Vec<SeenSignature>);
    fn transcoder(context: Self::Context) -> Self::Transcoder;
    /// SSE frames for one upstream chunk.
    fn push(transcoder: &mut Self::Transcoder, chunk: &GenerateContentResponse) -> Vec<String>;
    /// SSE frames that end a complete stream.
    fn finish(transcoder: &mut Self::Transcoder) -> Vec<String>;
    /// SSE frames that end a broken stream with the API's error event.
    fn fail(transcoder: &mut Self::Transcoder, message: &str) -> Vec<String>;
    fn signatures(transcoder: &Self::Transcoder) -> &[SeenSignature];
    /// What a quiet stream sends to stay open.
    fn keepalive() -> String;
}

enum Answer {
    Whole((CloudCodeResponse, crate::routing::executor::Served)),
    Stream(Box<OpenStream>),
}

/// Serves one request of API `C`.
pub async fn serve<C: Conversation>(
    state: &SharedState,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    match handle::<C>(state, body).await {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

async fn handle<C: Conversation>(
    state: &SharedState,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let api = C::API;
    let request: C::Request = parse_json(api, body)?;
    if C::model(&request).trim().is_empty() {
        return Err(ApiError::invalid(
            api,
            "model: must name a model, e.g. claude-sonnet-4-5",
        ));
    }
    C::check(&request).map_err(|message| ApiError::invalid(api, message))?;
    let (messages, tools) = C::counts(&request);
    crate::http::edge::check_limits(api, messages, tools, &state.config.server)?;
    // The name goes into headers and URLs upstream: refused here, before any call.
    agm_translate::edge::check_model_name(C::model(&request))
        .map_err(|e| ApiError::invalid(api, format!("model: {e}")))?;
    let client_model = C::model(&request);
    let resolved = crate::routing::catalogue::resolve(state, api, client_model)?;
    let mut upstream_model = resolved.model;
    let mut retired = resolved.retired;
    crate::http::request_log::note_models(client_model, &upstream_model);
    let deadline = Instant::now() + state.config.server.request_timeout;
    let attempt = |thinking_as_text: bool, upstream_model: String| {
        let request = &request;
        async move {
            let upstream_model = upstream_model.as_str();
            // The cache view is not Send: use it before the first await.
            let mut translated = {
                let view = state.signatures.at(std::time::Instant::now());
                let options = RequestOptions {
                    thinking_as_text,
                    signatures: Some(&view),
                };
                C::translate(request, upstream_model, &options)
                    .map_err(|e| RouteError::new(ErrorKind::InvalidRequest, e.to_string()))?
            };
            crate::http::edge::check_counts(api, &translated.request, &state.config.server)
                .map_err(RouteError::from)?;
            if let Some(note) =
                agm_translate::models::cap_output_tokens(&mut translated.request, upstream_model)
            {
                translated.notes.push(note);
            }
            for note in &translated.notes {
                tracing::debug!(model = %upstream_model, "{note}");
            }
            let thinking_off = thinking_as_text
                || translated
                    .notes
                    .iter()
                    .any(|n| n.starts_with(agm_translate::common::THINKING_OFF_NOTE));
            let seed = uuid::Uuid::new_v4().simple().to_string();
            let unix_now =
                u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0);
            let context = C::context(request, &translated, seed, unix_now);
            let session_id = translated.session_id.clone();
            let call = UpstreamCall {
                model: upstream_model,
                request: translated.request,
            };
            let answer = if C::is_stream(request) {
                Answer::Stream(Box::new(call.open_stream(state).await?))
            } else {
                Answer::Whole(call.generate(state).await?)
            };
            Ok::<_, RouteError>((answer, context, session_id, thinking_off))
        }
    };
    let timed_out = || {
        ApiError::new(
            api,
            ErrorKind::Timeout,
            format!(
                "the request took longer than server.request_timeout ({})",
                humantime::format_duration(state.config.server.request_timeout)
            ),
        )
    };
    let mut first_try = tokio::time::timeout_at(deadline, attempt(false, upstream_model.clone()))
        .await
        .map_err(|_| timed_out())?;
    // Google no longer serves the model (retired, or not for this account): learn what
    // the account is offered now and, if the name resolves elsewhere, try once more.
    if let Err(e) = &first_try
        && matches!(e.class(), Some(ErrorClass::NotFound))
        && let Some(again) = crate::routing::catalogue::after_not_found(
            state,
            api,
            client_model,
            &upstream_model,
            crate::http::request_log::last_account().as_deref(),
        )
        .await
    {
        upstream_model = again.model;
        retired = again.retired.or_else(|| Some(client_model.to_owned()));
        crate::http::request_log::note_models(client_model, &upstream_model);
        first_try = tokio::time::timeout_at(deadline, attempt(false, upstream_model.clone()))
            .await
            .map_err(|_| timed_out())?;
    }
    // A refused thinking signature gets one more try with thinking sent as text.
    let (answer, context, session_id, thinking_off) = match first_try {
        Err(e) if matches!(e.class(), Some(ErrorClass::SignatureInvalid)) => {
            tracing::warn!(model = %upstream_model, "thinking signature refused; retrying with thinking as text");
            tokio::time::timeout_at(deadline, attempt(true, upstream_model.clone()))
                .await
                .map_err(|_| timed_out())?
                .map_err(|e| e.into_api(api))?
        }
        other => other.map_err(|e| e.into_api(api))?,
    };
    let family = ModelFamily::of(&upstream_model);

    let open = match answer {
        Answer::Whole((answer, served)) => {
            let (answer, signatures) = C::convert(&answer.response, &context);
            state
                .signatures
                .remember(&session_id, family, &signatures, std::time::Instant::now());
            let mut response = axum::Json(answer).into_response();
            served.write_headers(response.headers_mut());
            mark_retired(response.headers_mut(), retired.as_deref());
            mark_thinking_off(response.headers_mut(), thinking_off);
            return Ok(response);
        }
        Answer::Stream(open) => *open,
    };
    let OpenStream {
        first,
        rest,
        account,
        served,
        lease,
    } = open;
    tracing::debug!(%account, model = %upstream_model, "stream open");
    let mut transcoder = C::transcoder(context);
    let pending: VecDeque<Bytes> = first
        .iter()
        .flat_map(|chunk| C::push(&mut transcoder, &chunk.response))
        .map(Bytes::from)
        .collect();
    let mut body = ClientStream::<C> {
        upstream: rest,
        transcoder,
        pending,
        finished: false,
        deadline,
        state: Arc::clone(state),
        session_id,
        family,
        _lease: lease,
    };
    if body.transcoder.finished() {
        // A stop sequence matched in the first chunks.
        body.end();
    }
    let mut response = Response::new(Body::from_stream(body.into_stream()));
    served.write_headers(response.headers_mut());
    mark_retired(response.headers_mut(), retired.as_deref());
    mark_thinking_off(response.headers_mut(), thinking_off);
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

/// `x-agm-model-retired: <name>` when the model asked for is retired (or no longer
/// served) and `x-agm-model` names the one that answered instead.
pub fn mark_retired(headers: &mut axum::http::HeaderMap, retired: Option<&str>) {
    if let Some(value) = retired.and_then(|r| HeaderValue::from_str(r).ok()) {
        headers.insert("x-agm-model-retired", value);
    }
}

/// `x-agm-thinking: off` when the request went without the thinking the client asked
/// for (a replayed signature agm does not know, a forced tool choice, or a refused
/// signature retried with thinking as text): the answer then has no thinking blocks.
fn mark_thinking_off(headers: &mut axum::http::HeaderMap, off: bool) {
    if off {
        headers.insert("x-agm-thinking", HeaderValue::from_static("off"));
    }
}

/// The client's side of a stream: upstream chunks in, SSE frames out, with keep-alives
/// on quiet stretches. Dropping it (the client went away) drops the upstream call.
struct ClientStream<C: Conversation> {
    upstream: ChunkStream,
    transcoder: C::Transcoder,
    pending: VecDeque<Bytes>,
    finished: bool,
    deadline: Instant,
    state: SharedState,
    session_id: String,
    family: ModelFamily,
    /// Counts the stream as in flight on its account until it ends.
    _lease: Option<crate::routing::accounts::Lease>,
}

impl<C: Conversation> ClientStream<C> {
    /// The answer is complete: remember its signatures, and take nothing more from
    /// the upstream (dropping the stream drops the upstream call).
    fn end(&mut self) {
        self.finished = true;
        self.state.signatures.remember(
            &self.session_id,
            self.family,
            C::signatures(&self.transcoder),
            std::time::Instant::now(),
        );
    }

    fn into_stream(self) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send {
        futures_util::stream::unfold(self, |mut s| async move {
            loop {
                if let Some(frame) = s.pending.pop_front() {
                    return Some((Ok(frame), s));
                }
                if s.finished {
                    return None;
                }
                let frames = tokio::select! {
                    item = s.upstream.next() => match item {
                        Some(Ok(chunk)) => {
                            let frames = C::push(&mut s.transcoder, &chunk.response);
                            if s.transcoder.finished() {
                                // A stop sequence ended the answer.
                                s.end();
                            }
                            frames
                        }
                        Some(Err(err)) => {
                            tracing::warn!(error = %err, "upstream stream broke");
                            s.finished = true;
                            C::fail(&mut s.transcoder, &format!("the upstream stream broke: {}", err.message()))
                        }
                        None => {
                            s.end();
                            C::finish(&mut s.transcoder)
                        }
                    },
                    () = sleep(KEEPALIVE_EVERY) => vec![C::keepalive()],
                    () = sleep_until(s.deadline) => {
                        s.finished = true;
                        C::fail(&mut s.transcoder, "the request took longer than server.request_timeout")
                    }
                };
                s.pending.extend(frames.into_iter().map(Bytes::from));
            }
        })
    }
}
