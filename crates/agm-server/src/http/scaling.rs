//! Context scaling on the request path (`[context]`): the size check made on every
//! request when scaling is on, the shrinking steps of `agm_translate::context` when it
//! triggers, and for `aggressive` the summary of the oldest turns, made by a small
//! model through the executor and remembered per conversation with the span it
//! replaces: the next requests of the conversation (the same history and more) apply
//! it again without a call, and a new one is made only when they are over the target
//! again.
//!
//! What the client is told: `x-agm-context-scaled: <mode>; cut=<N> tokens` on the
//! answer, the same in the request log, and usage that still counts its own request
//! (the tokens cut are added back to Google's prompt count, see [`add_back`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use agm_translate::context::{self, Known, Mode, Report, Span};
use agm_wire::gemini::{GenerateContentRequest, GenerateContentResponse};
use axum::http::{HeaderMap, HeaderValue};

use crate::app::AppState;
use crate::routing::executor::UpstreamCall;

/// The most conversations whose summaries are remembered (the oldest go first).
const SUMMARY_SESSIONS: usize = 512;
/// The most summaries remembered per conversation (the oldest go first).
const SUMMARIES_PER_SESSION: usize = 8;

/// `[context]` in force: as loaded, replaced while the server runs when the console
/// changes it (each request reads it once).
pub struct LiveContext(std::sync::RwLock<std::sync::Arc<crate::config::ContextSection>>);

impl LiveContext {
    pub fn new(section: crate::config::ContextSection) -> LiveContext {
        LiveContext(std::sync::RwLock::new(std::sync::Arc::new(section)))
    }

    pub fn get(&self) -> std::sync::Arc<crate::config::ContextSection> {
        std::sync::Arc::clone(
            &self
                .0
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    pub fn set(&self, section: crate::config::ContextSection) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = std::sync::Arc::new(section);
    }
}

/// The summaries made per conversation (session id), each with the span it replaces.
#[derive(Default)]
pub struct Summaries {
    inner: Mutex<SummaryMap>,
}

#[derive(Default)]
struct SummaryMap {
    sessions: HashMap<String, Vec<Known>>,
    order: VecDeque<String>,
}

impl Summaries {
    fn of(&self, session: &str) -> Vec<Known> {
        let map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        map.sessions.get(session).cloned().unwrap_or_default()
    }

    fn put(&self, session: &str, known: Known) {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let map = &mut *map;
        let list = match map.sessions.get_mut(session) {
            Some(list) => list,
            None => {
                map.order.push_back(session.to_owned());
                map.sessions.entry(session.to_owned()).or_default()
            }
        };
        if !list.contains(&known) {
            list.push(known);
        }
        if list.len() > SUMMARIES_PER_SESSION {
            list.remove(0);
        }
        while map.order.len() > SUMMARY_SESSIONS {
            if let Some(oldest) = map.order.pop_front() {
                map.sessions.remove(&oldest);
            }
        }
    }
}

/// What scaling did to one request: its mode and report.
#[derive(Debug, Clone, Copy)]
pub struct Scaled {
    pub mode: Mode,
    pub report: Report,
}

impl Scaled {
    /// The value of `x-agm-context-scaled` and of the request log's `context_scaled`.
    pub fn describe(&self) -> String {
        self.report.header(self.mode)
    }

    /// Sets `x-agm-context-scaled`.
    pub fn write_header(&self, headers: &mut HeaderMap) {
        if let Ok(value) = HeaderValue::from_str(&self.describe()) {
            headers.insert("x-agm-context-scaled", value);
        }
    }
}

/// Scales `request` (bound for `model`, in conversation `session_id`, from a client
/// body of `body_bytes`) when `[context]` says so. With scaling off nothing is looked
/// at; otherwise a bound from the body's size and the request's parts, and only when
/// that is above the target, a token estimate of the request.
pub async fn scale(
    state: &AppState,
    model: &str,
    session_id: &str,
    body_bytes: usize,
    request: &mut GenerateContentRequest,
) -> Option<Scaled> {
    let section = state.context.get();
    if section.scaling.mode() == Mode::Off {
        return None;
    }
    let policy = section.policy(state.accounts.catalogue.get().window(model))?;
    if !policy.triggers(context::upper_bound(request, body_bytes)) {
        return None;
    }
    let estimate = agm_translate::tokens::estimate(request);
    if !policy.triggers(estimate) {
        return None;
    }
    let mut report = context::scale(request, &policy, estimate);
    if policy.mode == Mode::Aggressive {
        let base = Report {
            before: estimate,
            after: estimate,
            ..Report::default()
        };
        let over =
            |r: &GenerateContentRequest| agm_translate::tokens::estimate(r) > policy.target();
        // The summaries this conversation already has, then (still over) a new one.
        if over(request)
            && let Some(known) =
                context::apply_known(request, policy.keep_turns, &state.summaries.of(session_id))
        {
            report = Some(report.unwrap_or(base).and(known));
        }
        if over(request)
            && let Some(span) = context::summary_span(request, policy.keep_turns)
            && let Some(summary) = summary(state, session_id, &span, request).await
            && let Some(summarized) = context::apply_summary(request, &span, &summary)
        {
            report = Some(report.unwrap_or(base).and(summarized));
        }
    }
    let scaled = Scaled {
        mode: policy.mode,
        report: report?,
    };
    tracing::debug!(model, session = session_id, scaled = %scaled.describe(), ?report, "context scaled");
    crate::http::request_log::note_context_scaled(&scaled.describe());
    Some(scaled)
}

/// A new summary of `request.contents[..span.end]` by `[context] summary_model`,
/// remembered for the conversation (`None` when that fails: the request goes without).
async fn summary(
    state: &AppState,
    session_id: &str,
    span: &Span,
    request: &GenerateContentRequest,
) -> Option<String> {
    let section = state.context.get();
    let model = section.summary_model.as_str();
    let call = UpstreamCall {
        model,
        request: context::summary_request(&request.contents[..span.end]),
    };
    // Boxed: the executor's future is large, and inline it would make `scale`'s (awaited
    // on every request) as large, copied each time it moves (bench/profile).
    let answer = match Box::pin(call.generate(state)).await {
        Ok((answer, _)) => answer,
        Err(e) => {
            tracing::warn!(model, error = %e.message, "could not summarize the oldest turns; sending them as they are");
            return None;
        }
    };
    let text: String = answer
        .response
        .candidates
        .iter()
        .flat_map(|c| c.content.iter().flat_map(|content| &content.parts))
        .filter(|p| !p.is_thought())
        .filter_map(|p| p.text.as_deref())
        .collect();
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    state.summaries.put(
        session_id,
        Known {
            span: span.clone(),
            text: text.to_owned(),
        },
    );
    Some(text.to_owned())
}

/// Google counted the scaled request: the tokens cut go back into the prompt count,
/// so the client's usage is that of the request it sent (Claude Code decides when to
/// compact its context from it).
pub fn add_back(chunk: &mut GenerateContentResponse, cut_tokens: u64) {
    if let Some(usage) = chunk.usage_metadata.as_mut()
        && usage.prompt_token_count > 0
    {
        usage.prompt_token_count = usage.prompt_token_count.saturating_add(cut_tokens);
        usage.total_token_count = usage.total_token_count.saturating_add(cut_tokens);
    }
}
