//! Generation: the deterministic default reply, scripted replies, call directives,
//! stop sequences and token limits, usage estimates, and the response/stream bodies
//! (Cloud Code wraps each in `{"response": ..., "traceId"}`, the official API does not).
//!
//! # Call directives
//!
//! A prompt can make the sim call one of the functions its request declares, so that a
//! real client (Claude Code, an SDK's tool loop) runs a tool end to end. A line of the
//! last user turn's text that reads
//!
//! ```text
//! agm-sim:call <function-name> <JSON object of arguments>
//! ```
//!
//! (the arguments may be left out: `{}`) is answered with a `functionCall` part of that
//! name and those arguments, id `agm-sim-call-<number of contents>-<index>`, finish
//! `STOP`; several such lines give several calls, in order (after a signed thought part
//! when `thinkingConfig.includeThoughts` is set). The name must equal one of the
//! request's `functionDeclarations` names exactly (what the gateway sent, after any
//! renaming), be allowed by `toolConfig.functionCallingConfig`, and the arguments must
//! be a JSON object; otherwise the answer is a text that starts with `agm-sim:` and
//! says why. Directives are read only from a turn without function results, so a tool
//! loop ends: a last user turn that carries `functionResponse` parts is answered
//! `Simulated <model> reply to: [function results: <name> returned <response JSON>; ...]`,
//! quoting each result in full.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

use crate::answer::{Answer, StreamFormat};
use crate::config::{GateForm, client_version, version_less};
use crate::error::GoogleError;
use crate::fault::{FaultAction, ScriptedReply};
use crate::http::{Ctx, Outcome};
use crate::json_mode;
use crate::sim::ModelLookup;
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
    let user_agent = ctx.header("user-agent").unwrap_or_default();
    if let Some(gate) = ctx.sim.refusing_gate(user_agent) {
        return match gate.form {
            GateForm::Answer => Ok(refusal(ctx, &gate.message, stream)),
            GateForm::Error(code) => {
                Err(GoogleError::new(code, status_name(code), gate.message).into())
            }
        };
    }
    let model = match ctx.sim.lookup_model(email, model_id) {
        ModelLookup::Live(model) => model,
        ModelLookup::Notice(text) => return Ok(refusal(ctx, &text, stream)),
        ModelLookup::NotFound => return Err(GoogleError::model_not_found().into()),
    };
    if let Some(min) = &model.min_client_version
        && let Some((client, version)) = client_version(user_agent)
        && client == "antigravity"
        && version_less(&version, min)
    {
        let text = format!(
            "{} is not available on this version. Please upgrade to the latest version.",
            model.display_name
        );
        return Ok(refusal(ctx, &text, stream));
    }
    validate::generate_semantics(envelope.request, Flavor::CloudCode, &model)?;
    Ok(respond(ctx, &model.id, envelope.request, stream, true))
}

/// A refusal Google writes as the answer (an old client, a model withdrawn with a
/// notice): HTTP 200, `{"response":{"candidates":[{"content":{"parts":[{"text":
/// "<message>"}]}}]}}` with no role, finish reason or usage, one chunk when streamed.
fn refusal(ctx: &Ctx, message: &str, stream: bool) -> Answer {
    let body = json!({ "response": { "candidates": [
        { "content": { "parts": [{ "text": message }] } }
    ]}});
    if stream {
        Answer::Stream {
            chunks: vec![body],
            format: if ctx.wants_sse() {
                StreamFormat::Sse
            } else {
                StreamFormat::JsonArray
            },
            delay: ctx.sim.config().stream_chunk_delay,
            break_after: None,
        }
    } else {
        Answer::ok(body)
    }
}

/// The RPC status name Google pairs with an HTTP status.
fn status_name(code: u16) -> &'static str {
    match code {
        400 | 412 | 426 => "FAILED_PRECONDITION",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        500..=599 => "INTERNAL",
        _ => "UNKNOWN",
    }
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
        let include_thoughts = config
            .and_then(|c| field(c, "thinkingConfig"))
            .and_then(Value::as_object)
            .and_then(|t| field(t, "includeThoughts"))
            .and_then(Value::as_bool)
            == Some(true);
        let user_text = last_user_text(request_object);
        let thought = include_thoughts.then(|| thought_part(model, &user_text));
        // A JSON-mode request (a client's router or classifier, say) answers in JSON:
        // it cannot call a function, so call directives in its prompt are not for it.
        let json = json_mode::answer(config, model, &user_text);
        if json.is_none()
            && let Some(reply) =
                Reply::directed(model, request_object, prompt_tokens, thought.as_ref())
        {
            return reply;
        }
        let mut text = json.unwrap_or_else(|| format!("Simulated {model} reply to: {user_text}"));
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

        let mut chunks = Vec::new();
        let mut parts = Vec::new();
        let mut thoughts_tokens = 0;
        if let Some((part, tokens)) = thought {
            thoughts_tokens = tokens;
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

    /// The answer to call directives in the last user turn (see the module docs):
    /// the calls, or a text saying why they cannot be made. `None`: no directive.
    fn directed(
        model: &str,
        request: &Map<String, Value>,
        prompt_tokens: u64,
        thought: Option<&(Value, u64)>,
    ) -> Option<Reply> {
        let directives = call_directives(request);
        if directives.is_empty() {
            return None;
        }
        let turn = field(request, "contents")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        let mut parts: Vec<Value> = thought.into_iter().map(|(part, _)| part.clone()).collect();
        for (index, line) in directives.iter().enumerate() {
            match function_call(request, line) {
                Ok((name, args)) => {
                    let mut call = json!({
                        "functionCall": {
                            "name": name,
                            "args": args,
                            "id": format!("agm-sim-call-{turn}-{index}"),
                        }
                    });
                    // Gemini 3 signs the first call of a turn, as Google does; the
                    // client must send the signature back with it.
                    if index == 0 && model.starts_with("gemini-3") {
                        call["thoughtSignature"] = json!(mint_signature(model));
                    }
                    parts.push(call);
                }
                Err(problem) => {
                    let parts = vec![json!({ "text": format!("agm-sim: {problem}") })];
                    return Some(Reply {
                        chunks: vec![parts.clone()],
                        usage: usage_for(prompt_tokens, &parts),
                        parts,
                        finish_reason: "STOP".to_owned(),
                    });
                }
            }
        }
        Some(Reply {
            chunks: parts.iter().map(|p| vec![p.clone()]).collect(),
            usage: usage_for(prompt_tokens, &parts),
            parts,
            finish_reason: "STOP".to_owned(),
        })
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

/// A signed thought part about `user_text`, and its token count.
fn thought_part(model: &str, user_text: &str) -> (Value, u64) {
    let thought = format!("Thinking about how to answer: {user_text}");
    let tokens = estimate_tokens(&thought);
    let part = json!({
        "text": thought,
        "thought": true,
        "thoughtSignature": mint_signature(model),
    });
    (part, tokens)
}

/// The parts of the last user turn (none if there is no user turn).
fn last_user_parts(request: &Map<String, Value>) -> Vec<&Value> {
    let contents = field(request, "contents").and_then(Value::as_array);
    contents
        .into_iter()
        .flatten()
        .rev()
        .find(|c| matches!(c.get("role").and_then(Value::as_str), None | Some("user")))
        .and_then(|turn| turn.get("parts"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect()
}

/// The `functionResponse` objects among `parts`.
fn function_responses<'a>(parts: &[&'a Value]) -> Vec<&'a Value> {
    parts
        .iter()
        .filter_map(|p| p.as_object())
        .filter_map(|p| field(p, "functionResponse"))
        .collect()
}

/// For a turn of function results, `[function results: a returned {...}; b returned
/// {...}]`, each result's `response` quoted as compact JSON; else the last non-thought
/// text of the last user turn.
fn last_user_text(request: &Map<String, Value>) -> String {
    let parts = last_user_parts(request);
    let responses = function_responses(&parts);
    if !responses.is_empty() {
        let results: Vec<String> = responses
            .iter()
            .map(|r| {
                let name = r.get("name").and_then(Value::as_str).unwrap_or_default();
                let response = r.get("response").cloned().unwrap_or_else(|| json!({}));
                format!("{name} returned {response}")
            })
            .collect();
        return format!("[function results: {}]", results.join("; "));
    }
    parts
        .iter()
        .rev()
        .filter(|p| p.get("thought").and_then(Value::as_bool) != Some(true))
        .find_map(|p| p.get("text").and_then(Value::as_str))
        .unwrap_or_default()
        .to_owned()
}

/// What follows `agm-sim:call` on each directive line of the last user turn, in order
/// (none for a turn that carries function results).
fn call_directives(request: &Map<String, Value>) -> Vec<&str> {
    let parts = last_user_parts(request);
    if !function_responses(&parts).is_empty() {
        return Vec::new();
    }
    parts
        .into_iter()
        .filter(|p| p.get("thought").and_then(Value::as_bool) != Some(true))
        .filter_map(|p| p.get("text").and_then(Value::as_str))
        .flat_map(str::lines)
        .filter_map(|line| line.trim().strip_prefix(CALL_DIRECTIVE))
        .filter(|rest| rest.is_empty() || rest.starts_with(char::is_whitespace))
        .map(str::trim)
        .collect()
}

/// The start of a call directive line.
const CALL_DIRECTIVE: &str = "agm-sim:call";

/// The name and arguments of the call a directive asks for, or why it cannot be made.
fn function_call<'a>(
    request: &Map<String, Value>,
    directive: &'a str,
) -> Result<(&'a str, Value), String> {
    let (name, args) = directive
        .split_once(char::is_whitespace)
        .map_or((directive, ""), |(name, args)| (name, args.trim()));
    if name.is_empty() {
        return Err(format!(
            "{CALL_DIRECTIVE} needs a function name: {CALL_DIRECTIVE} <name> <JSON object>"
        ));
    }
    let declared = declared_functions(request);
    if !declared.contains(&name) {
        let known = if declared.is_empty() {
            "the request declares no functions".to_owned()
        } else {
            format!("declared: {}", declared.join(", "))
        };
        return Err(format!(
            "cannot call {name}: no function of that name ({known})"
        ));
    }
    let calling = field(request, "toolConfig")
        .and_then(Value::as_object)
        .and_then(|c| field(c, "functionCallingConfig"))
        .and_then(Value::as_object);
    let mode = calling
        .and_then(|c| field(c, "mode"))
        .and_then(Value::as_str)
        .unwrap_or("AUTO");
    if mode == "NONE" {
        return Err(format!(
            "cannot call {name}: toolConfig.functionCallingConfig.mode is NONE"
        ));
    }
    let allowed: Vec<&str> = calling
        .and_then(|c| field(c, "allowedFunctionNames"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if !allowed.is_empty() && !allowed.contains(&name) {
        return Err(format!(
            "cannot call {name}: not in toolConfig.functionCallingConfig.allowedFunctionNames ({})",
            allowed.join(", ")
        ));
    }
    let args = if args.is_empty() {
        json!({})
    } else {
        match serde_json::from_str::<Value>(args) {
            Ok(args @ Value::Object(_)) => args,
            Ok(_) => {
                return Err(format!(
                    "cannot call {name}: the arguments must be a JSON object, not {args}"
                ));
            }
            Err(error) => {
                return Err(format!(
                    "cannot call {name}: the arguments are not JSON ({error}): {args}"
                ));
            }
        }
    };
    Ok((name, args))
}

/// The names of the request's `functionDeclarations`, in order.
fn declared_functions(request: &Map<String, Value>) -> Vec<&str> {
    field(request, "tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object)
        .filter_map(|tool| field(tool, "functionDeclarations"))
        .filter_map(Value::as_array)
        .flatten()
        .filter_map(Value::as_object)
        .filter_map(|declaration| field(declaration, "name"))
        .filter_map(Value::as_str)
        .collect()
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
    fn function_results_are_quoted() {
        let request = json!({"contents": [{"role": "user", "parts": [
            {"functionResponse": {"name": "read_file", "response": {"content": "a\tb"}}},
            {"functionResponse": {"name": "ls", "response": {}}},
            {"text": "agm-sim:call ls"}]}]});
        let reply = Reply::build("m", &request, None, 1);
        assert_eq!(
            reply.parts,
            [
                json!({"text": "Simulated m reply to: [function results: read_file returned {\"content\":\"a\\tb\"}; ls returned {}]"})
            ]
        );
    }

    fn with_tools(text: &str, names: &[&str]) -> Value {
        let declarations: Vec<Value> = names.iter().map(|n| json!({"name": n})).collect();
        json!({
            "contents": [
                {"role": "user", "parts": [{"text": "earlier"}]},
                {"role": "model", "parts": [{"text": "ok"}]},
                {"role": "user", "parts": [{"text": "context"}, {"text": text}]},
            ],
            "tools": [{"functionDeclarations": declarations}],
        })
    }

    #[test]
    fn a_directive_calls_a_declared_function() {
        let request = with_tools(
            "Please read it.\n  agm-sim:call Read {\"file_path\": \"/tmp/a b.txt\"}\nagm-sim:call Glob",
            &["Bash", "Read", "Glob"],
        );
        let reply = Reply::build("m", &request, None, 3);
        assert_eq!(
            reply.parts,
            [
                json!({"functionCall": {"name": "Read", "args": {"file_path": "/tmp/a b.txt"}, "id": "agm-sim-call-3-0"}}),
                json!({"functionCall": {"name": "Glob", "args": {}, "id": "agm-sim-call-3-1"}}),
            ]
        );
        assert_eq!(reply.chunks.len(), 2);
        assert_eq!(reply.finish_reason, "STOP");
        assert!(reply.usage["candidatesTokenCount"].as_u64().unwrap() > 0);
    }

    #[test]
    fn a_directive_with_thinking_comes_after_a_signed_thought() {
        let mut request = with_tools("agm-sim:call f {}", &["f"]);
        request["generationConfig"] = json!({"thinkingConfig": {"includeThoughts": true}});
        let reply = Reply::build("claude-sonnet-4-5", &request, None, 1);
        assert_eq!(reply.parts.len(), 2);
        assert_eq!(reply.parts[0]["thought"], true);
        assert!(reply.parts[0]["thoughtSignature"].is_string());
        assert_eq!(reply.parts[1]["functionCall"]["name"], "f");
        assert!(reply.usage["thoughtsTokenCount"].as_u64().unwrap() > 0);
    }

    fn text_of(reply: &Reply) -> &str {
        assert_eq!(reply.parts.len(), 1, "{:?}", reply.parts);
        reply.parts[0]["text"].as_str().unwrap()
    }

    #[test]
    fn a_json_mode_request_answers_json_even_with_a_directive() {
        let mut request = with_tools("route this\nagm-sim:call read_file {}", &[]);
        request["generationConfig"] = json!({"responseMimeType": "application/json"});
        let reply = Reply::build("m", &request, None, 1);
        let text = text_of(&reply);
        assert!(
            serde_json::from_str::<Value>(text).is_ok(),
            "JSON, not a call or an error: {text}"
        );
    }

    #[test]
    fn a_directive_that_cannot_be_followed_says_why() {
        let reply = Reply::build(
            "m",
            &with_tools("agm-sim:call Write {}", &["Read"]),
            None,
            1,
        );
        assert_eq!(
            text_of(&reply),
            "agm-sim: cannot call Write: no function of that name (declared: Read)"
        );
        let reply = Reply::build("m", &with_tools("agm-sim:call read {}", &[]), None, 1);
        assert_eq!(
            text_of(&reply),
            "agm-sim: cannot call read: no function of that name (the request declares no functions)"
        );
        let reply = Reply::build(
            "m",
            &with_tools("agm-sim:call Read [1]", &["Read"]),
            None,
            1,
        );
        assert_eq!(
            text_of(&reply),
            "agm-sim: cannot call Read: the arguments must be a JSON object, not [1]"
        );
        let reply = Reply::build("m", &with_tools("agm-sim:call Read {x", &["Read"]), None, 1);
        assert!(
            text_of(&reply).starts_with("agm-sim: cannot call Read: the arguments are not JSON ("),
            "{:?}",
            reply.parts
        );
        let reply = Reply::build("m", &with_tools("agm-sim:call", &["Read"]), None, 1);
        assert!(text_of(&reply).starts_with("agm-sim: agm-sim:call needs a function name"));
        let mut request = with_tools("agm-sim:call Read", &["Read", "Bash"]);
        request["toolConfig"] = json!({"functionCallingConfig": {"mode": "NONE"}});
        let reply = Reply::build("m", &request, None, 1);
        assert_eq!(
            text_of(&reply),
            "agm-sim: cannot call Read: toolConfig.functionCallingConfig.mode is NONE"
        );
        request["toolConfig"] =
            json!({"function_calling_config": {"mode": "ANY", "allowed_function_names": ["Bash"]}});
        let reply = Reply::build("m", &request, None, 1);
        assert_eq!(
            text_of(&reply),
            "agm-sim: cannot call Read: not in toolConfig.functionCallingConfig.allowedFunctionNames (Bash)"
        );
    }

    #[test]
    fn only_whole_directive_lines_count() {
        for text in [
            "say agm-sim:call Read {}",
            "agm-sim:caller Read {}",
            "AGM-SIM:CALL Read {}",
        ] {
            let reply = Reply::build("m", &with_tools(text, &["Read"]), None, 1);
            assert_eq!(text_of(&reply), format!("Simulated m reply to: {text}"));
        }
        // A directive in an earlier turn is history, not a request.
        let mut request = with_tools("now", &["Read"]);
        request["contents"][0]["parts"][0]["text"] = json!("agm-sim:call Read");
        let reply = Reply::build("m", &request, None, 1);
        assert_eq!(text_of(&reply), "Simulated m reply to: now");
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
