//! One request path for every chat-style client API (Anthropic Messages, OpenAI Chat
//! Completions, OpenAI Responses): parse, translate with the signature cache, call the
//! upstream (retrying once with thinking as text after a refused signature), and answer
//! whole or as a stream. Each API plugs in its converters ([`ChatApi`], in
//! agm-translate) through [`Conversation`], which adds the shape of its errors. The
//! stream body ([`stream_body`]) serves the Gemini API's pass-through too.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use agm_google::{ChunkStream, ErrorClass};
use agm_translate::common::{ChatApi, RequestOptions, StreamFault, Transcoder};
use agm_translate::thinking::ModelFamily;
use agm_wire::cloudcode::CloudCodeResponse;
use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::time::{Instant, sleep, sleep_until};

use crate::app::SharedState;
use crate::http::body::parse_json;
use crate::http::error::{ApiError, ApiKind, ErrorKind};
use crate::routing::error::RouteError;
use crate::routing::executor::{OpenStream, UpstreamCall};

/// A quiet stream gets a keep-alive this often, so proxies and clients don't time it out.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(15);

/// A chat-style client API on the shared path: its converters ([`ChatApi`]) and the
/// shape of its errors.
pub trait Conversation: ChatApi {
    const API: ApiKind;
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
    let body_bytes = body.as_ref().map_or(0, Bytes::len);
    let request: C::Request = parse_json(api, body)?;
    if C::model(&request).trim().is_empty() {
        return Err(ApiError::invalid(
            api,
            "model: must name a model, e.g. claude-sonnet-4-5",
        ));
    }
    C::check(&request).map_err(|e| ApiError::invalid(api, e.to_string()))?;
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
    crate::http::key_policy::check_model(api, client_model, &upstream_model)?;
    let deadline = Instant::now() + state.config.server.request_timeout;
    let attempt = |thinking_as_text: bool, upstream_model: String| {
        let request = &request;
        async move {
            let upstream_model = upstream_model.as_str();
            // The cache view is not Send: use it before the first await.
            let translate = || {
                let view = state.signatures.at(std::time::Instant::now());
                let tracked = crate::cluster::sync::MissTracking {
                    inner: &view,
                    missed: std::cell::Cell::new(false),
                };
                let options = RequestOptions {
                    thinking_as_text,
                    signatures: Some(&tracked),
                };
                C::to_gemini(request, upstream_model, &options)
                    .map(|t| (t, tracked.missed.get()))
                    .map_err(|e| RouteError::new(ErrorKind::InvalidRequest, e.to_string()))
            };
            let (mut translated, missed) = translate()?;
            // Cluster mode: a signature this replica does not know may be another's.
            if missed
                && Box::pin(crate::cluster::sync::recall_signatures(
                    state,
                    &translated.session_id,
                ))
                .await
            {
                translated = translate()?.0;
            }
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
            let thinking_off = thinking_as_text || translated.thinking_off.is_some();
            let seed = uuid::Uuid::new_v4().simple().to_string();
            let unix_now =
                u64::try_from(time::OffsetDateTime::now_utc().unix_timestamp()).unwrap_or(0);
            // The answer's context is made from the request as the client sent it: its
            // usage estimate counts the whole conversation, scaled or not.
            let context = C::context(request, &translated, seed, unix_now);
            let session_id = translated.session_id.clone();
            let scaled = crate::http::scaling::scale(
                state,
                upstream_model,
                &session_id,
                body_bytes,
                &mut translated.request,
            )
            .await;
            let call = UpstreamCall {
                model: upstream_model,
                request: translated.request,
            };
            // Boxed: the executor's futures are large, and kept inline they made every
            // future around them (this one, `timeout_at`'s, the handler's) large too, each
            // copied whenever it moves (bench/profile: 58 k instructions a request in
            // memcpy, with the summary call in `scaling::summary`, boxed for the same reason).
            let answer = if C::is_stream(request) {
                Answer::Stream(Box::new(Box::pin(call.open_stream(state)).await?))
            } else {
                Answer::Whole(Box::pin(call.generate(state)).await?)
            };
            let sent = Sent {
                thinking_off,
                scaled,
            };
            Ok::<_, RouteError>((answer, context, session_id, sent))
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
    let (answer, context, session_id, sent) = match first_try {
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

    let cut_tokens = sent.scaled.map_or(0, |s| s.report.cut_tokens());
    let open = match answer {
        Answer::Whole((mut answer, served)) => {
            crate::http::request_log::note_usage(&answer.response);
            crate::http::scaling::add_back(&mut answer.response, cut_tokens);
            let (answer, signatures) = C::convert(&answer.response, &context);
            crate::cluster::sync::remember_signatures_now(state, &session_id, family, &signatures)
                .await;
            let mut response = axum::Json(answer).into_response();
            served.write_headers(response.headers_mut());
            mark_retired(response.headers_mut(), retired.as_deref());
            sent.write_headers(response.headers_mut());
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
    let remember = Remember {
        state: Arc::clone(state),
        session_id,
        family,
    };
    let body = stream_body(
        C::transcoder(context),
        &first,
        rest,
        lease,
        deadline,
        Some(remember),
        cut_tokens,
    );
    let mut response = Response::new(body);
    served.write_headers(response.headers_mut());
    mark_retired(response.headers_mut(), retired.as_deref());
    sent.write_headers(response.headers_mut());
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

/// How the request went upstream, as the answer's headers say.
struct Sent {
    /// Without the thinking the client asked for.
    thinking_off: bool,
    /// Shrunk by context scaling.
    scaled: Option<crate::http::scaling::Scaled>,
}

impl Sent {
    /// `x-agm-thinking: off` and `x-agm-context-scaled`.
    fn write_headers(&self, headers: &mut axum::http::HeaderMap) {
        mark_thinking_off(headers, self.thinking_off);
        if let Some(scaled) = &self.scaled {
            scaled.write_header(headers);
        }
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

/// Where a stream's thinking signatures go when it ends: the conversation's entry
/// in the signature cache.
pub(crate) struct Remember {
    pub state: SharedState,
    pub session_id: String,
    pub family: ModelFamily,
}

/// The body of a streamed answer: the frames of the `first` chunks, then the rest of
/// the upstream stream through `transcoder`, with keep-alives on quiet stretches (when
/// the API has them), until the upstream ends, a stop sequence ends the answer, the
/// upstream breaks or `deadline` passes (the last two end with the API's error). The
/// signatures the upstream handed out go to `remember` when the answer is complete.
/// `cut_tokens` (what context scaling took out of the request) is added back to the
/// prompt count Google reports.
pub(crate) fn stream_body<T: Transcoder + Send + 'static>(
    mut transcoder: T,
    first: &[CloudCodeResponse],
    rest: ChunkStream,
    lease: Option<crate::routing::accounts::Lease>,
    deadline: Instant,
    remember: Option<Remember>,
    cut_tokens: u64,
) -> Body {
    // The request's end waits for the stream's: its row gets the stream's tokens.
    let ending = crate::http::request_log::ending();
    let pending: VecDeque<Bytes> = first
        .iter()
        .flat_map(|chunk| {
            if let Some(ending) = &ending {
                ending.observe(&chunk.response);
            }
            if cut_tokens == 0 {
                return transcoder.on_chunk(&chunk.response);
            }
            let mut chunk = chunk.clone();
            crate::http::scaling::add_back(&mut chunk.response, cut_tokens);
            transcoder.on_chunk(&chunk.response)
        })
        .map(Bytes::from)
        .collect();
    let mut stream = ClientStream {
        upstream: rest,
        keepalive: transcoder.keepalive(),
        transcoder,
        pending,
        finished: false,
        deadline,
        remember,
        cut_tokens,
        _lease: lease,
        ending,
    };
    if stream.transcoder.finished() {
        // A stop sequence matched in the first chunks.
        stream.end();
    }
    Body::from_stream(stream.into_stream())
}

/// The client's side of a stream: upstream chunks in, frames out, with keep-alives
/// on quiet stretches. Dropping it (the client went away) drops the upstream call.
struct ClientStream<T> {
    upstream: ChunkStream,
    transcoder: T,
    /// What a quiet stretch sends, once every [`KEEPALIVE_EVERY`].
    keepalive: Option<String>,
    pending: VecDeque<Bytes>,
    finished: bool,
    deadline: Instant,
    remember: Option<Remember>,
    /// Added back to Google's prompt count (context scaling).
    cut_tokens: u64,
    /// Counts the stream as in flight on its account until it ends.
    _lease: Option<crate::routing::accounts::Lease>,
    /// The request's end: its usage, and what runs when the stream is dropped.
    ending: Option<Arc<crate::http::request_log::Ending>>,
}

impl<T: Transcoder + Send + 'static> ClientStream<T> {
    /// The answer is complete: remember its signatures, and take nothing more from
    /// the upstream (dropping the stream drops the upstream call).
    fn end(&mut self) {
        self.finished = true;
        if let Some(remember) = &self.remember {
            crate::cluster::sync::remember_signatures(
                &remember.state,
                &remember.session_id,
                remember.family,
                self.transcoder.signatures(),
            );
        }
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
                        Some(Ok(mut chunk)) => {
                            if let Some(ending) = &s.ending {
                                ending.observe(&chunk.response);
                            }
                            crate::http::scaling::add_back(&mut chunk.response, s.cut_tokens);
                            let frames = s.transcoder.on_chunk(&chunk.response);
                            if s.transcoder.finished() {
                                // A stop sequence ended the answer.
                                s.end();
                            }
                            frames
                        }
                        Some(Err(err)) => {
                            tracing::warn!(error = %err, "upstream stream broke");
                            s.finished = true;
                            s.transcoder.on_fault(&StreamFault::Broken(err.message()))
                        }
                        None => {
                            s.end();
                            s.transcoder.on_end()
                        }
                    },
                    () = sleep(KEEPALIVE_EVERY), if s.keepalive.is_some() => {
                        s.keepalive.iter().cloned().collect()
                    }
                    () = sleep_until(s.deadline) => {
                        s.finished = true;
                        s.transcoder.on_fault(&StreamFault::Deadline)
                    }
                };
                s.pending.extend(frames.into_iter().map(Bytes::from));
            }
        })
    }
}
