//! Generation: the deterministic default reply, scripted replies, stop sequences and
//! token limits, usage estimates, and the response/stream bodies (Cloud Code wraps
//! each in `{"response": ..., "traceId"}`, the official API does not).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::answer::{Answer, StreamFormat};
use crate::error::GoogleError;
use crate::fault::{FaultAction, ScriptedReply};
use crate::http::{Ctx, Outcome};
use crate::validate::{self, Flavor, field};

/// What the sim's signatures start with once decoded.
const SIGNATURE_TAG: &str = "agm-sim-signature:";

/// Tokens for a text of this many characters: chars / 4, rounded up.
pub(crate) fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// `claude`, `gemini` or `other`: the families a thought signature is valid within.
pub(crate) fn model_family(model: &str) -> &'static str {
    if model.starts_with("claude") {
        "claude"
    } else if model.starts_with("gemini") {
        "gemini"
    } else {
        "other"
    }
}

/// The family a signature minted by the sim belongs to (`None`: not the sim's).
pub(crate) fn signature_family(signature: &str) -> Option<String> {
    let bytes = validate::decode_base64(signature)?;
    let text = String::from_utf8(bytes).ok()?;
    let rest = text.strip_prefix(SIGNATURE_TAG)?;
    Some(rest.split(':').next().unwrap_or_default().to_owned())
}

fn mint_signature(model: &str) -> String {
    STANDARD.encode(format!(
        "{SIGNATURE_TAG}{}:{}",
        model_family(model),
        uuid::Uuid::new_v4().simple()
    ))
}

/// `POST /v1internal:generateContent` and `:streamGenerateContent`.
pub(crate) fn cloud_code(ctx: &Ctx, stream: bool) -> Outcome {
    let email = ctx.require_account()?;
    let envelope = validate::envelope(&ctx.body)?;
    let project = envelope.project.unwrap_or_default();
    let own_project = ctx.sim.account(email).and_then(|a| a.project);
    if own_project.as_deref() != Some(project) || project.is_empty() {
        return Err(GoogleError::project_denied(project).into());
    }
    let Some(model_id) = envelope.model.filter(|m| !m.is_empty()) else {
        return Err(GoogleError::invalid_argument(
            "* GenerateContentRequest.model: model is required\n",
        )
        .into());
    };
    let Some(model) = ctx.sim.model(model_id) else {
        return Err(GoogleError::not_found("Requested entity was not found.").into());
    };
    validate::generate_semantics(envelope.request, Flavor::CloudCode, &model)?;
    Ok(respond(ctx, &model.id, envelope.request, stream, true))
}

/// Builds the answer for a validated generation request, taking any
/// answer-shaping fault scripted for it.
pub(crate) fn respond(ctx: &Ctx, model: &str, request: &Value, stream: bool, wrap: bool) -> Answer {
    let fault = ctx.take_answer_fault();
    let format = if ctx.wants_sse() {
        StreamFormat::Sse
    } else {
        StreamFormat::JsonArray
    };
    if matches!(fault, Some(FaultAction::EmptyBody)) {
        let content_type = if stream && format == StreamFormat::Sse {
            "text/event-stream"
        } else {
            "application/json; charset=UTF-8"
        };
        return Answer::Empty { content_type };
    }
    let scripted = match &fault {
        Some(FaultAction::Reply(reply)) => Some(reply.clone()),
        _ => None,
    };
    let break_after = match fault {
        Some(FaultAction::BreakStreamAfter(chunks)) => Some(chunks),
        _ => None,
    };
    let reply = Reply::build(model, request, scripted, ctx.sim.config().stream_chunks);
    let ids = Ids::new();
    let wrap_body = |body: Value| {
        if wrap {
            json!({ "response": body, "traceId": ids.trace })
        } else {
            body
        }
    };
    let answer = if stream {
        Answer::Stream {
            chunks: reply
                .chunk_bodies(model, &ids.response)
                .into_iter()
                .map(wrap_body)
                .collect(),
            format,
            delay: ctx.sim.config().stream_chunk_delay,
            break_after: None,
        }
    } else {
        Answer::ok(wrap_body(reply.whole_body(model, &ids.response)))
    };
    match break_after {
        Some(chunks) => answer.broken_after(chunks),
        None => answer,
    }
}

struct Ids {
    response: String,
    trace: String,
}

impl Ids {
    fn new() -> Self {
        let uuid = uuid::Uuid::new_v4();
        let response =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&uuid.as_bytes()[..12]);
        let trace = format!("{:016x}", uuid.as_u64_pair().1);
        Ids { response, trace }
    }
}

/// A reply, ready to be sent whole or in chunks.
#[derive(Debug, PartialEq)]
pub(crate) struct Reply {
    /// The parts of each stream chunk, in order (never empty).
    chunks: Vec<Vec<Value>>,
    /// All parts, for the non-streaming answer.
    parts: Vec<Value>,
    finish_reason: String,
    usage: Value,
}

impl Reply {
    /// The default reply to `request` (or the scripted one), split into chunks.
    pub fn build(
        model: &str,
        request: &Value,
        scripted: Option<ScriptedReply>,
        stream_chunks: usize,
    ) -> Reply {
        let empty = Map::new();
        let request_object = request.as_object().unwrap_or(&empty);
        let prompt_tokens = estimate_tokens(&request.to_string());
        if let Some(scripted) = scripted {
            let usage = scripted
                .usage
                .clone()
                .unwrap_or_else(|| usage_for(prompt_tokens, &scripted.parts));
            return Reply {
                chunks: if scripted.parts.is_empty() {
                    vec![Vec::new()]
                } else {
                    scripted.parts.iter().map(|p| vec![p.clone()]).collect()
                },
                parts: scripted.parts,
                finish_reason: scripted.finish_reason,
                usage,
            };
        }

        let config = field(request_object, "generationConfig").and_then(Value::as_object);
        let user_text = last_user_text(request_object);
        let mut text = format!("Simulated {model} reply to: {user_text}");
        let mut finish_reason = "STOP";
        let stops = config
            .and_then(|c| field(c, "stopSequences"))
            .and_then(Value::as_array);
        if let Some(cut_at) = stops
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|s| !s.is_empty())
            .filter_map(|s| text.find(s))
            .min()
        {
            text.truncate(cut_at);
        }
        let max_tokens = config
            .and_then(|c| field(c, "maxOutputTokens"))
            .and_then(|v| {
                v.as_u64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            });
        if let Some(max_tokens) = max_tokens
            && max_tokens < estimate_tokens(&text)
        {
            let keep = usize::try_from(max_tokens.saturating_mul(4)).unwrap_or(usize::MAX);
            text = text.chars().take(keep).collect();
            finish_reason = "MAX_TOKENS";
        }
        let include_thoughts = config
            .and_then(|c| field(c, "thinkingConfig"))
            .and_then(Value::as_object)
            .and_then(|t| field(t, "includeThoughts"))
            .and_then(Value::as_bool)
            == Some(true);

        let mut chunks = Vec::new();
        let mut parts = Vec::new();
        let mut thoughts_tokens = 0;
        if include_thoughts {
            let thought = format!("Thinking about how to answer: {user_text}");
            thoughts_tokens = estimate_tokens(&thought);
            let part = json!({
                "text": thought,
                "thought": true,
                "thoughtSignature": mint_signature(model),
            });
            chunks.push(vec![part.clone()]);
            parts.push(part);
        }
        for piece in split_text(&text, stream_chunks) {
            chunks.push(vec![json!({ "text": piece })]);
        }
        let candidates_tokens = estimate_tokens(&text);
        parts.push(json!({ "text": text }));
        let mut usage = json!({
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": candidates_tokens,
            "totalTokenCount": prompt_tokens + candidates_tokens + thoughts_tokens,
        });
        if include_thoughts {
            usage["thoughtsTokenCount"] = json!(thoughts_tokens);
        }
        Reply {
            chunks,
            parts,
            finish_reason: finish_reason.to_owned(),
            usage,
        }
    }

    /// The non-streaming response body.
    pub fn whole_body(&self, model: &str, response_id: &str) -> Value {
        body(
            &self.parts,
            Some(&self.finish_reason),
            Some(&self.usage),
            model,
            response_id,
        )
    }

    /// One response body per stream chunk; finish reason and usage on the last only.
    pub fn chunk_bodies(&self, model: &str, response_id: &str) -> Vec<Value> {
        let last = self.chunks.len().saturating_sub(1);
        self.chunks
            .iter()
            .enumerate()
            .map(|(index, parts)| {
                let end = index == last;
                body(
                    parts,
                    end.then_some(self.finish_reason.as_str()),
                    end.then_some(&self.usage),
                    model,
                    response_id,
                )
            })
            .collect()
    }
}

fn body(
    parts: &[Value],
    finish_reason: Option<&str>,
    usage: Option<&Value>,
    model: &str,
    response_id: &str,
) -> Value {
    let mut candidate = json!({
        "content": { "role": "model", "parts": parts },
        "index": 0,
    });
    if let Some(reason) = finish_reason {
        candidate["finishReason"] = json!(reason);
    }
    let mut body = json!({
        "candidates": [candidate],
        "modelVersion": model,
        "responseId": response_id,
    });
    if let Some(usage) = usage {
        body["usageMetadata"] = usage.clone();
    }
    body
}

fn usage_for(prompt_tokens: u64, parts: &[Value]) -> Value {
    let (mut visible, mut thoughts) = (0, 0);
    for part in parts {
        let tokens = match part.get("text").and_then(Value::as_str) {
            Some(text) => estimate_tokens(text),
            None => estimate_tokens(&part.to_string()),
        };
        if part.get("thought").and_then(Value::as_bool) == Some(true) {
            thoughts += tokens;
        } else {
            visible += tokens;
        }
    }
    let mut usage = json!({
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": visible,
        "totalTokenCount": prompt_tokens + visible + thoughts,
    });
    if thoughts > 0 {
        usage["thoughtsTokenCount"] = json!(thoughts);
    }
    usage
}

/// The last non-thought text of the last user turn; for a turn of function results
/// only, `[function results: a, b]`.
fn last_user_text(request: &Map<String, Value>) -> String {
    let contents = field(request, "contents").and_then(Value::as_array);
    let Some(turn) = contents
        .into_iter()
        .flatten()
        .rev()
        .find(|c| matches!(c.get("role").and_then(Value::as_str), None | Some("user")))
    else {
        return String::new();
    };
    let parts: Vec<&Value> = turn
        .get("parts")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let text = parts
        .iter()
        .rev()
        .filter(|p| p.get("thought").and_then(Value::as_bool) != Some(true))
        .find_map(|p| p.get("text").and_then(Value::as_str));
    if let Some(text) = text {
        return text.to_owned();
    }
    let names: Vec<&str> = parts
        .iter()
        .filter_map(|p| p.as_object())
        .filter_map(|p| field(p, "functionResponse"))
        .filter_map(|r| r.get("name").and_then(Value::as_str))
        .collect();
    if names.is_empty() {
        String::new()
    } else {
        format!("[function results: {}]", names.join(", "))
    }
}

/// Splits text into `pieces` nearly equal pieces by characters (fewer if it is
/// shorter; one empty piece for an empty text).
pub(crate) fn split_text(text: &str, pieces: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let count = pieces.max(1).min(chars.len().max(1));
    (0..count)
        .map(|i| {
            let start = i * chars.len() / count;
            let end = (i + 1) * chars.len() / count;
            chars.get(start..end).unwrap_or_default().iter().collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str, config: Value) -> Value {
        json!({"contents": [{"role": "user", "parts": [{"text": text}]}], "generationConfig": config})
    }

    #[test]
    fn split_is_even_and_lossless() {
        assert_eq!(split_text("abcdefgh", 3), ["ab", "cde", "fgh"]);
        assert_eq!(split_text("ab", 3), ["a", "b"]);
        assert_eq!(split_text("", 3), [""]);
        assert_eq!(split_text("héllo", 1), ["héllo"]);
    }

    #[test]
    fn default_reply_names_model_and_prompt() {
        let reply = Reply::build("gemini-3-flash", &request("hello", json!({})), None, 3);
        assert_eq!(
            reply.parts,
            [json!({"text": "Simulated gemini-3-flash reply to: hello"})]
        );
        assert_eq!(reply.chunks.len(), 3);
        assert_eq!(reply.finish_reason, "STOP");
        let usage = &reply.usage;
        assert_eq!(
            usage["totalTokenCount"].as_u64().unwrap(),
            usage["promptTokenCount"].as_u64().unwrap()
                + usage["candidatesTokenCount"].as_u64().unwrap()
        );
    }

    #[test]
    fn stop_sequences_and_max_tokens_cut_the_reply() {
        let reply = Reply::build(
            "m",
            &request("hello", json!({"stopSequences": ["reply"]})),
            None,
            1,
        );
        assert_eq!(reply.parts, [json!({"text": "Simulated m "})]);
        assert_eq!(reply.finish_reason, "STOP");
        let reply = Reply::build(
            "m",
            &request("hello", json!({"maxOutputTokens": 2})),
            None,
            1,
        );
        assert_eq!(reply.parts, [json!({"text": "Simulate"})]);
        assert_eq!(reply.finish_reason, "MAX_TOKENS");
    }

    #[test]
    fn thoughts_come_first_with_a_signature() {
        let config = json!({"thinkingConfig": {"includeThoughts": true}});
        let reply = Reply::build("claude-opus-4-5-thinking", &request("hi", config), None, 2);
        assert_eq!(reply.chunks.len(), 3);
        let thought = &reply.parts[0];
        assert_eq!(thought["thought"], true);
        let signature = thought["thoughtSignature"].as_str().unwrap();
        assert_eq!(signature_family(signature).as_deref(), Some("claude"));
        assert!(reply.usage["thoughtsTokenCount"].as_u64().unwrap() > 0);
    }

    #[test]
    fn function_results_are_named() {
        let request = json!({"contents": [{"role": "user", "parts": [
            {"functionResponse": {"name": "read_file", "response": {}}}]}]});
        let reply = Reply::build("m", &request, None, 1);
        assert_eq!(
            reply.parts,
            [json!({"text": "Simulated m reply to: [function results: read_file]"})]
        );
    }

    #[test]
    fn scripted_parts_stream_one_per_chunk() {
        let scripted =
            ScriptedReply::text("a").with_part(json!({"functionCall": {"name": "f", "args": {}}}));
        let reply = Reply::build("m", &request("x", json!({})), Some(scripted), 3);
        let bodies = reply.chunk_bodies("m", "r");
        assert_eq!(bodies.len(), 2);
        assert!(bodies[0].get("usageMetadata").is_none());
        assert_eq!(bodies[1]["candidates"][0]["finishReason"], "STOP");
    }
}
