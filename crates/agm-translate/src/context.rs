//! Context scaling: shrinking the *upstream* request of a long conversation when it
//! nears the model's window (or a configured budget), so that it still fits, without
//! changing what the client sent or what it is told about its own usage.
//!
//! The caller estimates the request ([`crate::tokens::estimate`]) and asks
//! [`Policy::triggers`]; only then does [`scale`] walk the request. In order, each step
//! applied to every *old* turn, and the next one only while the estimate is still above
//! the target:
//!
//! 1. **De-duplicate.** A tool result (`functionResponse`: same name, same payload) or
//!    an attachment (`inlineData`: same type, same bytes) seen before is replaced by a
//!    short marker that names the message holding the first copy. The first copy
//!    stays, so the prefix of a growing conversation keeps its shape from request to
//!    request (Google's prompt cache keeps hitting).
//! 2. **Cut old tool results.** Every string of an old tool result longer than
//!    [`CUT_ABOVE`] bytes keeps its first [`CUT_HEAD`] and last [`CUT_TAIL`] bytes around
//!    a marker that says how much was cut.
//! 3. **Drop old thinking.** `thought: true` parts of old model turns go. A signature
//!    on a function call is never touched, and a turn that is all thinking keeps it.
//! 4. **Summarize** (`aggressive` only, done by the server with a small model): the
//!    oldest turns are replaced by one user turn holding their summary
//!    ([`summary_span`], [`summary_request`], [`apply_summary`]); the summaries a
//!    conversation already has apply first, while their span still starts the request
//!    ([`apply_known`]).
//!
//! What is never touched: the system instruction, the tools and the last `keep_turns`
//! messages. Steps 3 and 4 also leave the whole current turn alone (from the last user
//! message that is not only tool results, [`protected_from`]): Gemini 3 checks the
//! signatures of the current turn's function calls, and Claude the signed thinking of
//! the tool loop in progress. Steps 1 and 2 change only tool results, which carry no
//! signature, so they reach into a long tool loop too (one user prompt followed by
//! hundreds of calls is one turn). Function calls and their signatures are never
//! changed. A function call and its result are both kept (steps 1–3 change payloads,
//! never remove a call or a result) or both summarized (a summary ends before a model
//! turn, and no kept result answers a summarized call).
//!
//! Each step only ever makes the request smaller, and a scaled request scaled again
//! stays as it is (markers are never de-duplicated or cut again).

use std::collections::HashMap;

use agm_wire::gemini::{Content, GenerateContentRequest, Part};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::tokens;

/// How much agm may change a request to make it fit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Never: the request goes as translated, byte for byte.
    Off,
    /// Above 80% of the limit: steps 1–3.
    #[default]
    Standard,
    /// Above 60% of the limit: steps 1–3, then a summary of the oldest turns.
    Aggressive,
}

impl Mode {
    /// The name in the configuration and in `x-agm-context-scaled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Standard => "standard",
            Mode::Aggressive => "aggressive",
        }
    }
}

/// When to scale and what to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    /// The tokens the request must fit: the model's window, or a smaller budget.
    pub limit: u64,
    /// The last messages never touched.
    pub keep_turns: usize,
}

impl Policy {
    /// The estimate above which a request is scaled, and which scaling aims for.
    pub fn target(&self) -> u64 {
        match self.mode {
            Mode::Off => u64::MAX,
            Mode::Standard => self.limit / 10 * 8,
            Mode::Aggressive => self.limit / 10 * 6,
        }
    }

    /// Whether a request of `estimate` tokens is scaled: the one check made on every
    /// request (a comparison; the estimate is the caller's).
    pub fn triggers(&self, estimate: u64) -> bool {
        self.mode != Mode::Off && estimate > self.target()
    }
}

/// An upper bound of a translated request's estimate, from the size of the client's
/// body and without reading any text: every character the estimate counts came from
/// that body (decoded JSON is never longer than the JSON), each message and call adds
/// a few tokens of framing, and each attachment its fixed cost. Slack covers the little
/// text a translation adds (labels, markers). When the bound is below the target the
/// request cannot need scaling, and the estimate is not made: so a small request pays
/// a walk over its messages, not over its bytes.
pub fn upper_bound(request: &GenerateContentRequest, body_bytes: usize) -> u64 {
    let mut bound = body_bytes as u64 + 1024;
    for content in request
        .contents
        .iter()
        .chain(request.system_instruction.as_ref())
    {
        bound += tokens::TURN_TOKENS;
        for part in &content.parts {
            bound += tokens::CALL_TOKENS;
            if part.inline_data.is_some() || part.file_data.is_some() {
                bound += tokens::MEDIA_TOKENS.max(tokens::IMAGE_TOKENS);
            }
        }
    }
    bound
}

/// What scaling did to a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Report {
    /// The estimate before and after.
    pub before: u64,
    pub after: u64,
    /// Tool results and attachments replaced by a reference to their first copy.
    pub deduplicated: usize,
    /// Strings of old tool results cut to a head and a tail.
    pub cut: usize,
    /// Thought parts of old turns dropped.
    pub thoughts_dropped: usize,
    /// Messages replaced by a summary.
    pub summarized: usize,
}

impl Report {
    /// The estimated tokens taken out.
    pub fn cut_tokens(&self) -> u64 {
        self.before.saturating_sub(self.after)
    }

    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        self.deduplicated + self.cut + self.thoughts_dropped + self.summarized > 0
    }

    /// Adds what a later step did (`after` moves on; `before` stays).
    pub fn and(self, later: Report) -> Report {
        Report {
            before: self.before,
            after: later.after,
            deduplicated: self.deduplicated + later.deduplicated,
            cut: self.cut + later.cut,
            thoughts_dropped: self.thoughts_dropped + later.thoughts_dropped,
            summarized: self.summarized + later.summarized,
        }
    }

    /// The value of `x-agm-context-scaled`: `standard; cut=12345 tokens`.
    pub fn header(&self, mode: Mode) -> String {
        format!("{}; cut={} tokens", mode.as_str(), self.cut_tokens())
    }
}

/// Every agm marker starts with this; markers are never de-duplicated or cut again.
pub const MARKER: &str = "[agm:";

/// The first line of a summary turn.
pub const SUMMARY_MARKER: &str = "[agm: summary of the earlier conversation]";

/// Payloads shorter than this (serialized) are not worth a reference.
pub const DEDUP_ABOVE: usize = 512;

/// Old tool-result strings longer than this are cut.
pub const CUT_ABOVE: usize = 4096;
/// What a cut string keeps of its start.
pub const CUT_HEAD: usize = 1536;
/// What a cut string keeps of its end.
pub const CUT_TAIL: usize = 512;

/// Where the untouchable end of the conversation starts: the last `keep_turns`
/// messages, and the whole current turn (from the last user message with something
/// other than tool results: the tool loop in progress carries the signatures Google
/// checks).
pub fn protected_from(contents: &[Content], keep_turns: usize) -> usize {
    let by_count = contents.len().saturating_sub(keep_turns);
    let current_turn = contents
        .iter()
        .rposition(|c| {
            c.role.as_deref() != Some("model")
                && !c.parts.is_empty()
                && c.parts.iter().all(|p| p.function_response.is_none())
        })
        .unwrap_or(0);
    by_count.min(current_turn)
}

/// Steps 1–3 (see the module docs) on a request whose estimate is `estimate`, when the
/// policy says so; `None` when nothing changed.
pub fn scale(
    request: &mut GenerateContentRequest,
    policy: &Policy,
    estimate: u64,
) -> Option<Report> {
    if !policy.triggers(estimate) {
        return None;
    }
    // Tool results carry no signature: steps 1 and 2 reach into the tool loop in
    // progress (a long autonomous loop is one turn), up to the last messages.
    let aged = request.contents.len().saturating_sub(policy.keep_turns);
    let old = protected_from(&request.contents, policy.keep_turns);
    let target = policy.target();
    let mut report = Report {
        before: estimate,
        after: estimate,
        ..Report::default()
    };
    report.deduplicated = deduplicate(&mut request.contents, aged);
    if report.deduplicated > 0 {
        report.after = tokens::estimate(request);
    }
    if report.after > target {
        report.cut = cut_tool_results(&mut request.contents[..aged]);
        if report.cut > 0 {
            report.after = tokens::estimate(request);
        }
    }
    if report.after > target {
        report.thoughts_dropped = drop_thoughts(&mut request.contents[..old]);
        if report.thoughts_dropped > 0 {
            report.after = tokens::estimate(request);
        }
    }
    report.changed().then_some(report)
}

/// Whether a part is, or holds, one of agm's markers.
fn is_marker(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains(MARKER),
        Value::Array(items) => items.iter().any(is_marker),
        Value::Object(map) => map.values().any(is_marker),
        _ => false,
    }
}

/// What makes two payloads the same: a digest of the tool's name and its result, or
/// of an attachment's type and bytes; `None` for what is not de-duplicated.
fn payload_key(part: &Part) -> Option<([u8; 32], &'static str)> {
    if let Some(response) = &part.function_response {
        if is_marker(&response.response) {
            return None;
        }
        let payload = serde_json::to_vec(&response.response).ok()?;
        if payload.len() < DEDUP_ABOVE {
            return None;
        }
        let mut hash = Sha256::new();
        hash.update(b"functionResponse\0");
        hash.update(response.name.as_bytes());
        hash.update([0]);
        hash.update(&payload);
        return Some((hash.finalize().into(), "tool result"));
    }
    if let Some(blob) = &part.inline_data {
        if blob.data.len() < DEDUP_ABOVE {
            return None;
        }
        let mut hash = Sha256::new();
        hash.update(b"inlineData\0");
        hash.update(blob.mime_type.as_bytes());
        hash.update([0]);
        hash.update(blob.data.as_bytes());
        return Some((hash.finalize().into(), "attachment"));
    }
    None
}

/// Step 1: later copies in `contents[..aged]` of a payload seen before become a
/// reference to the message of the first copy (numbered from 1). Returns how many.
fn deduplicate(contents: &mut [Content], aged: usize) -> usize {
    let mut first_seen: HashMap<[u8; 32], usize> = HashMap::new();
    let mut replaced = 0;
    for (index, content) in contents.iter_mut().enumerate() {
        for part in &mut content.parts {
            let Some((key, what)) = payload_key(part) else {
                continue;
            };
            let Some(&first) = first_seen.get(&key) else {
                first_seen.insert(key, index);
                continue;
            };
            if index >= aged {
                continue;
            }
            let note = format!(
                "{MARKER} the same {what} as in message {}; omitted to save context]",
                first + 1
            );
            if let Some(response) = &mut part.function_response {
                response.response = serde_json::json!({ "output": note });
            } else {
                *part = Part::text(note);
            }
            replaced += 1;
        }
    }
    replaced
}

/// The largest char boundary at or below `i`.
fn floor_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The smallest char boundary at or above `i`.
fn ceil_boundary(text: &str, mut i: usize) -> usize {
    while !text.is_char_boundary(i) {
        i += 1;
    }
    i
}

/// `text` cut to its head and tail around a marker, if it is longer than
/// [`CUT_ABOVE`] and not a marker already.
fn cut_string(text: &str) -> Option<String> {
    if text.len() <= CUT_ABOVE || text.contains(MARKER) {
        return None;
    }
    let head_end = floor_boundary(text, CUT_HEAD);
    let tail_start = ceil_boundary(text, text.len() - CUT_TAIL);
    let cut = &text[head_end..tail_start];
    Some(format!(
        "{}\n{MARKER} {} bytes (about {} tokens) of this old tool result cut]\n{}",
        &text[..head_end],
        cut.len(),
        tokens::text_tokens(cut),
        &text[tail_start..]
    ))
}

/// Cuts every long string in a JSON value; returns how many.
fn cut_value(value: &mut Value) -> usize {
    match value {
        Value::String(s) => match cut_string(s) {
            Some(cut) => {
                *s = cut;
                1
            }
            None => 0,
        },
        Value::Array(items) => items.iter_mut().map(cut_value).sum(),
        Value::Object(map) => map.values_mut().map(cut_value).sum(),
        _ => 0,
    }
}

/// Step 2: long strings of the tool results in `contents` cut. Returns how many.
fn cut_tool_results(contents: &mut [Content]) -> usize {
    contents
        .iter_mut()
        .flat_map(|c| c.parts.iter_mut())
        .filter_map(|p| p.function_response.as_mut())
        .map(|r| cut_value(&mut r.response))
        .sum()
}

/// Step 3: the thought parts of the model turns in `contents` dropped, except in a
/// turn that is nothing but thinking (it would be left empty). Returns how many.
fn drop_thoughts(contents: &mut [Content]) -> usize {
    let mut dropped = 0;
    for content in contents {
        if content.role.as_deref() != Some("model") {
            continue;
        }
        let thoughts = content
            .parts
            .iter()
            .filter(|p| p.is_thought() && p.function_call.is_none())
            .count();
        if thoughts == 0 || thoughts == content.parts.len() {
            continue;
        }
        content
            .parts
            .retain(|p| !(p.is_thought() && p.function_call.is_none()));
        dropped += thoughts;
    }
    dropped
}

/// The oldest messages a summary may replace: `contents[..end]`, with the digest of
/// their JSON (the key of a cached summary, with the conversation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub end: usize,
    pub digest: [u8; 32],
}

impl Span {
    /// The digest in hex, for cache keys and logs.
    pub fn digest_hex(&self) -> String {
        self.digest.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Whether a message is a summary agm made.
pub fn is_summary(content: &Content) -> bool {
    content.role.as_deref() == Some("user")
        && content
            .parts
            .first()
            .and_then(|p| p.text.as_deref())
            .is_some_and(|t| t.starts_with(SUMMARY_MARKER))
}

/// The span a summary would replace: the old messages up to (not including) the last
/// model turn before the protected end, so that the kept part starts with a model turn
/// after the summary's user turn and no kept function result answers a summarized call.
/// `None` when there are fewer than two messages to summarize (a summary already made
/// counts as one).
pub fn summary_span(request: &GenerateContentRequest, keep_turns: usize) -> Option<Span> {
    let contents = &request.contents;
    let old = protected_from(contents, keep_turns);
    let end = (2..=old.min(contents.len().saturating_sub(1)))
        .rev()
        .find(|&end| can_end_at(contents, end))?;
    Some(span_to(contents, end))
}

/// Whether a summary of `contents[..end]` keeps every pair: `contents[end]` is a model
/// turn (the summary is a user turn; Gemini pairs a result with the model turn right
/// before it), and no later result answers a summarized call by id.
fn can_end_at(contents: &[Content], end: usize) -> bool {
    if contents.get(end).and_then(|c| c.role.as_deref()) != Some("model") {
        return false;
    }
    let summarized: Vec<&str> = contents[..end]
        .iter()
        .flat_map(|c| &c.parts)
        .filter_map(|p| p.function_call.as_ref()?.id.as_deref())
        .collect();
    !contents[end..]
        .iter()
        .flat_map(|c| &c.parts)
        .filter_map(|p| p.function_response.as_ref()?.id.as_deref())
        .any(|id| summarized.contains(&id))
}

fn span_to(contents: &[Content], end: usize) -> Span {
    let mut hash = Sha256::new();
    for content in &contents[..end] {
        hash.update(serde_json::to_vec(content).unwrap_or_default());
        hash.update([0]);
    }
    Span {
        end,
        digest: hash.finalize().into(),
    }
}

/// A summary made earlier in the conversation: the span it replaces and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub span: Span,
    pub text: String,
}

/// Applies the summaries already made for this conversation, the longest first, while
/// one still matches the start of the request (the same messages, before the protected
/// end): a conversation that grew since keeps its summary, with no new call. A summary
/// of a summary applies in turn. `None` when none matched.
pub fn apply_known(
    request: &mut GenerateContentRequest,
    keep_turns: usize,
    known: &[Known],
) -> Option<Report> {
    let mut order: Vec<&Known> = known.iter().collect();
    order.sort_by_key(|k| std::cmp::Reverse(k.span.end));
    let mut report: Option<Report> = None;
    'again: loop {
        let old = protected_from(&request.contents, keep_turns);
        for entry in &order {
            let end = entry.span.end;
            if end < 2 || end > old || !can_end_at(&request.contents, end) {
                continue;
            }
            if span_to(&request.contents, end) != entry.span {
                continue;
            }
            if let Some(done) = apply_summary(request, &entry.span, &entry.text) {
                report = Some(report.map_or(done, |r| r.and(done)));
                continue 'again;
            }
        }
        return report;
    }
}

/// Replaces `contents[..span.end]` by one user message holding `summary`, if that
/// makes the request smaller; returns what it did (`None`: left as it was).
pub fn apply_summary(
    request: &mut GenerateContentRequest,
    span: &Span,
    summary: &str,
) -> Option<Report> {
    if span.end > request.contents.len() || span.end < 2 {
        return None;
    }
    let before = tokens::estimate(request);
    let turn = Content::new(
        "user",
        vec![Part::text(format!("{SUMMARY_MARKER}\n{summary}"))],
    );
    let replaced: u64 = request.contents[..span.end]
        .iter()
        .map(tokens::estimate_content)
        .sum();
    if tokens::estimate_content(&turn) >= replaced {
        return None;
    }
    request.contents.splice(..span.end, [turn]);
    Some(Report {
        before,
        after: tokens::estimate(request),
        summarized: span.end,
        ..Report::default()
    })
}

/// The most of one message the summarizer reads.
const SUMMARY_INPUT_PER_MESSAGE: usize = 6000;

/// The request that asks a small model to summarize `contents` (the span's messages):
/// the messages as plain text, each at most a few thousand bytes, and an instruction to
/// keep what an agent needs to carry on.
pub fn summary_request(contents: &[Content]) -> GenerateContentRequest {
    use std::fmt::Write;
    let mut transcript = String::new();
    for (i, content) in contents.iter().enumerate() {
        let role = content.role.as_deref().unwrap_or("user");
        let mut text = String::new();
        for part in &content.parts {
            if part.is_thought() {
                continue;
            }
            if let Some(t) = &part.text {
                text.push_str(t);
                text.push('\n');
            }
            if let Some(call) = &part.function_call {
                let _ = writeln!(text, "(calls {} with {})", call.name, call.args);
            }
            if let Some(response) = &part.function_response {
                let _ = writeln!(text, "(result of {}: {})", response.name, response.response);
            }
            if let Some(blob) = &part.inline_data {
                let _ = writeln!(text, "(attachment: {})", blob.mime_type);
            }
        }
        if text.len() > SUMMARY_INPUT_PER_MESSAGE {
            let head = floor_boundary(&text, SUMMARY_INPUT_PER_MESSAGE * 3 / 4);
            let tail = ceil_boundary(&text, text.len() - SUMMARY_INPUT_PER_MESSAGE / 4);
            text = format!("{}\n…\n{}", &text[..head], &text[tail..]);
        }
        let _ = writeln!(transcript, "### message {} ({role})\n{text}", i + 1);
    }
    GenerateContentRequest {
        contents: vec![Content::new("user", vec![Part::text(transcript)])],
        system_instruction: Some(Content::new(
            "user",
            vec![Part::text(
                "You summarize the earlier part of a conversation between a user and a \
                 coding agent, so that the agent can carry on without it. Keep: the user's \
                 goals and instructions, decisions made, files and symbols touched (exact \
                 paths and names), commands run and their outcome, errors still open, and \
                 what was about to happen next. Leave out file contents and tool output \
                 that can be read again. Write plain text, at most 600 words.",
            )],
        )),
        generation_config: Some(agm_wire::gemini::GenerationConfig {
            max_output_tokens: Some(2048),
            temperature: Some(0.2),
            ..agm_wire::gemini::GenerationConfig::default()
        }),
        ..GenerateContentRequest::default()
    }
}
