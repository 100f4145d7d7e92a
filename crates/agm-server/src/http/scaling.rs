//! Context scaling on the request path (`[context]`): the size check made on every
//! request when scaling is on, the shrinking steps of `agm_translate::context` when it
//! triggers, and for `aggressive` the summary of the oldest turns, made by a small
//! model through the executor and cached per conversation and span so it is made once.
//!
//! What the client is told: `x-agm-context-scaled: <mode>; cut=<N> tokens` on the
//! answer, the same in the request log, and usage that still counts its own request
//! (the tokens cut are added back to Google's prompt count, see [`add_back`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

use agm_translate::context::{self, Mode, Report, Span};
use agm_wire::cloudcode::CloudCodeResponse;
use agm_wire::gemini::GenerateContentRequest;
use axum::http::{HeaderMap, HeaderValue};

use crate::app::AppState;
use crate::routing::executor::UpstreamCall;

/// The most summaries remembered at once (the oldest go first).
const SUMMARY_CAPACITY: usize = 512;

/// Summaries made, by conversation and the digest of the messages they replace.
#[derive(Default)]
pub struct Summaries {
    inner: Mutex<SummaryMap>,
}

#[derive(Default)]
struct SummaryMap {
    entries: HashMap<(String, [u8; 32]), String>,
    order: VecDeque<(String, [u8; 32])>,
}

impl Summaries {
    fn get(&self, session: &str, span: &Span) -> Option<String> {
        let map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        map.entries.get(&(session.to_owned(), span.digest)).cloned()
    }

    fn put(&self, session: &str, span: &Span, summary: String) {
        let mut map = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (session.to_owned(), span.digest);
        if map.entries.insert(key.clone(), summary).is_none() {
            map.order.push_back(key);
        }
        while map.order.len() > SUMMARY_CAPACITY {
            if let Some(oldest) = map.order.pop_front() {
                map.entries.remove(&oldest);
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

/// Scales `request` (bound for `model`, in conversation `session_id`) when
/// `[context]` says so. With scaling off nothing is looked at; otherwise the check is
/// one token estimate of the request and a comparison.
pub async fn scale(
    state: &AppState,
    model: &str,
    session_id: &str,
    request: &mut GenerateContentRequest,
) -> Option<Scaled> {
    let section = &state.config.context;
    if section.scaling.mode() == Mode::Off {
        return None;
    }
    let estimate = agm_translate::tokens::estimate(request);
    let policy = section.policy(state.accounts.catalogue.get().window(model))?;
    if !policy.triggers(estimate) {
        return None;
    }
    let mut report = context::scale(request, &policy, estimate);
    let now = report.map_or(estimate, |r| r.after);
    if policy.mode == Mode::Aggressive
        && now > policy.target()
        && let Some(span) = context::summary_span(request, policy.keep_turns)
        && let Some(summary) = summary(state, session_id, &span, request).await
        && let Some(summarized) = context::apply_summary(request, &span, &summary)
    {
        let base = report.unwrap_or(Report {
            before: estimate,
            after: estimate,
            ..Report::default()
        });
        report = Some(base.and(summarized));
    }
    let scaled = Scaled {
        mode: policy.mode,
        report: report?,
    };
    tracing::debug!(model, session = session_id, scaled = %scaled.describe(), ?report, "context scaled");
    crate::http::request_log::note_context_scaled(&scaled.describe());
    Some(scaled)
}

/// The summary of `request.contents[..span.end]`: remembered, or made now by
/// `[context] summary_model` (`None` when that fails: the request goes without).
async fn summary(
    state: &AppState,
    session_id: &str,
    span: &Span,
    request: &GenerateContentRequest,
) -> Option<String> {
    if let Some(known) = state.summaries.get(session_id, span) {
        return Some(known);
    }
    let model = state.config.context.summary_model.as_str();
    let call = UpstreamCall {
        model,
        request: context::summary_request(&request.contents[..span.end]),
    };
    let answer = match call.generate(state).await {
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
    state.summaries.put(session_id, span, text.to_owned());
    Some(text.to_owned())
}

/// Google counted the scaled request: the tokens cut go back into the prompt count,
/// so the client's usage is that of the request it sent (Claude Code decides when to
/// compact its context from it).
pub fn add_back(chunk: &mut CloudCodeResponse, cut_tokens: u64) {
    if let Some(usage) = chunk.response.usage_metadata.as_mut()
        && usage.prompt_token_count > 0
    {
        usage.prompt_token_count = usage.prompt_token_count.saturating_add(cut_tokens);
        usage.total_token_count = usage.total_token_count.saturating_add(cut_tokens);
    }
}
