//! Anthropic `MessagesRequest` → Gemini `GenerateContentRequest`.

use agm_wire::anthropic::{
    ContentBlock, CountTokensRequest, MessageContent, MessagesRequest, Role, Source, System,
    Thinking, ToolChoice, ToolDef, ToolResultContent,
};
use agm_wire::cloudcode;
use agm_wire::gemini::{
    Content, FunctionDeclaration, GenerationConfig, Part, ThinkingConfig, Tool, ToolConfig,
};
use serde_json::{Value, json};

use crate::common::media::{file_uri_part, inline_part};
use crate::common::pipeline::{Draft, ThinkingAsked, output_limit};
use crate::common::request::{
    CallNames, CallingMode, call_args, function_call_part, function_declaration, function_tools,
    push_turn, stop_sequences, tool_config, tool_result_parts as common_tool_result_parts,
};
use crate::error::TranslateError;
use crate::session::session_id;
use crate::thinking::{ModelFamily, Replay, SignaturePolicy, clamp_budget};
use crate::tools::ToolNameMap;

pub use crate::common::request::{RequestOptions, Translated};

/// Translates an Anthropic Messages request for `upstream_model`.
///
/// Errors name the offending field (`messages.2.content.0: unknown block type "foo"`)
/// and map to Anthropic's `invalid_request_error`.
///
/// `stop_sequences` are not sent upstream but returned in
/// [`Translated::stop_sequences`] for the answer's transcoder to enforce: Gemini would
/// stop at them but report `STOP` without saying which one matched, and Anthropic's
/// answer must name it (`stop_reason: "stop_sequence"`, `stop_sequence`). See
/// [`crate::common::stop`].
pub fn to_gemini(
    req: &MessagesRequest,
    upstream_model: &str,
    options: &RequestOptions<'_>,
) -> Result<Translated, TranslateError> {
    let max_output_tokens = output_limit("max_tokens", Some(req.max_tokens))?;
    if req.messages.is_empty() {
        return Err(TranslateError::invalid(
            "messages",
            "at least one message is required",
        ));
    }
    let session_id = session_id(req);
    let family = ModelFamily::of(upstream_model);
    let mut tool_names = ToolNameMap::new();

    let (declarations, search) = translate_tools(&req.tools, &mut tool_names)?;
    let tool_config = match &req.tool_choice {
        Some(choice) if search || !declarations.is_empty() => Some(translate_tool_choice(
            choice,
            &declarations,
            &mut tool_names,
        )?),
        _ => None,
    };
    let mut tools = function_tools(declarations);
    if search {
        tools.push(Tool {
            google_search: Some(json!({})),
            ..Tool::default()
        });
    }

    let history = History {
        policy: SignaturePolicy {
            family,
            options,
            session_id: &session_id,
        },
    };
    let contents = history.contents(req, &mut tool_names)?;

    Ok(Draft {
        upstream_model,
        family,
        session_id,
        tool_names,
        system: system_parts(req),
        contents,
        tools,
        tool_config,
        generation_config: GenerationConfig {
            temperature: req.temperature,
            top_p: req.top_p,
            top_k: req.top_k,
            max_output_tokens,
            // `stop_sequences` are enforced by agm (`Translated::stop_sequences`): Google
            // would not say which one matched.
            ..GenerationConfig::default()
        },
        thinking: thinking(req, family, upstream_model),
        // Anthropic refuses thinking with a forced tool choice.
        forced_call: matches!(
            req.tool_choice,
            Some(ToolChoice::Any { .. } | ToolChoice::Tool { .. })
        ),
        show_thoughts: true,
        stop_sequences: stop_sequences(req.stop_sequences.iter().map(String::as_str)),
        notes: Vec::new(),
    }
    .finish())
}

/// Translates a `count_tokens` request into Cloud Code's `:countTokens` body, which
/// takes only contents: the system prompt and the tool declarations are counted as a
/// leading user turn.
pub fn count_tokens_to_gemini(
    req: &CountTokensRequest,
    upstream_model: &str,
) -> Result<cloudcode::CountTokensRequest, TranslateError> {
    let as_messages = MessagesRequest {
        model: req.model.clone(),
        messages: req.messages.clone(),
        system: req.system.clone(),
        max_tokens: 1,
        tools: req.tools.clone(),
        tool_choice: req.tool_choice.clone(),
        thinking: req.thinking.clone(),
        ..MessagesRequest::default()
    };
    let options = RequestOptions {
        thinking_as_text: true,
        signatures: None,
    };
    let translated = to_gemini(&as_messages, upstream_model, &options)?;
    let mut preamble = Vec::new();
    if let Some(system) = translated.request.system_instruction {
        preamble.extend(system.parts);
    }
    let declarations: Vec<&FunctionDeclaration> = translated
        .request
        .tools
        .iter()
        .flat_map(|t| &t.function_declarations)
        .collect();
    if !declarations.is_empty() {
        let text = serde_json::to_string(&declarations).unwrap_or_default();
        preamble.push(Part::text(format!("Tools:\n{text}")));
    }
    let mut contents = translated.request.contents;
    if !preamble.is_empty() {
        match contents.first_mut() {
            Some(first) if first.role.as_deref() == Some("user") => {
                preamble.append(&mut first.parts);
                first.parts = preamble;
            }
            _ => contents.insert(0, Content::new("user", preamble)),
        }
    }
    let model = upstream_model
        .strip_prefix("models/")
        .unwrap_or(upstream_model);
    Ok(cloudcode::CountTokensRequest {
        request: cloudcode::CountTokensInner {
            model: format!("models/{model}"),
            contents,
        },
    })
}

/// Function declarations, and whether Anthropic's web search tool (which becomes
/// `googleSearch`) was among the tools.
fn translate_tools(
    defs: &[ToolDef],
    names: &mut ToolNameMap,
) -> Result<(Vec<FunctionDeclaration>, bool), TranslateError> {
    let mut declarations = Vec::new();
    let mut search = false;
    for (i, def) in defs.iter().enumerate() {
        match def.kind.as_deref() {
            None | Some("custom") => {}
            Some(kind) if kind.starts_with("web_search") => {
                search = true;
                continue;
            }
            Some(kind) => {
                return Err(TranslateError::unsupported(
                    format!("tools.{i}.type"),
                    format!("Anthropic server tool \"{kind}\" cannot run on Google's models"),
                ));
            }
        }
        if def.name.is_empty() {
            return Err(TranslateError::invalid(
                format!("tools.{i}.name"),
                "must not be empty",
            ));
        }
        declarations.push(function_declaration(
            names,
            &def.name,
            def.description.as_deref(),
            def.input_schema.as_ref(),
        ));
    }
    Ok((declarations, search))
}

fn translate_tool_choice(
    choice: &ToolChoice,
    declared: &[FunctionDeclaration],
    names: &mut ToolNameMap,
) -> Result<ToolConfig, TranslateError> {
    let (mode, only) = match choice {
        ToolChoice::Auto { .. } => (CallingMode::Auto, None),
        ToolChoice::Any { .. } => (CallingMode::Any, None),
        ToolChoice::Tool { name, .. } => (CallingMode::Any, Some(name.as_str())),
        ToolChoice::None => (CallingMode::None, None),
    };
    tool_config(mode, only, names, declared, "tool_choice.name")
}

/// The system prompt, then the text of every `role: "system"` message in order: Gemini
/// has one system instruction for the whole conversation.
fn system_parts(req: &MessagesRequest) -> Vec<Part> {
    let mut parts: Vec<Part> = match &req.system {
        None => Vec::new(),
        Some(System::Text(text)) => vec![Part::text(text.clone())],
        Some(System::Blocks(blocks)) => blocks.iter().map(|b| Part::text(b.text.clone())).collect(),
    };
    for message in req.messages.iter().filter(|m| m.role == Role::System) {
        match &message.content {
            MessageContent::Text(text) => parts.push(Part::text(text.clone())),
            MessageContent::Blocks(blocks) => {
                parts.extend(blocks.iter().filter_map(|block| match block {
                    ContentBlock::Text { text, .. } => Some(Part::text(text.clone())),
                    _ => None,
                }))
            }
        }
    }
    parts
}

/// The thinking asked for: `enabled` with its budget (clamped to what the model
/// takes), `adaptive` with the model's own.
fn thinking(
    req: &MessagesRequest,
    family: ModelFamily,
    upstream_model: &str,
) -> Option<ThinkingAsked> {
    let budget = match req.thinking {
        Some(Thinking::Enabled { budget_tokens }) => {
            Some(clamp_budget(family, upstream_model, budget_tokens))
        }
        Some(Thinking::Adaptive) => None,
        _ => return None,
    };
    Some((
        ThinkingConfig {
            include_thoughts: Some(true),
            thinking_budget: budget.map(i64::from),
            thinking_level: None,
        },
        budget,
    ))
}

/// Blocks that are results of Anthropic's own server tools: nothing upstream can
/// read them, so they are left out of the history.
const SERVER_TOOL_BLOCKS: [&str; 10] = [
    "server_tool_use",
    "web_search_tool_result",
    "web_fetch_tool_result",
    "code_execution_tool_result",
    "bash_code_execution_tool_result",
    "text_editor_code_execution_tool_result",
    "tool_search_tool_result",
    "mcp_tool_use",
    "mcp_tool_result",
    "container_upload",
];

struct History<'a> {
    policy: SignaturePolicy<'a>,
}

impl History<'_> {
    fn contents(
        &self,
        req: &MessagesRequest,
        names: &mut ToolNameMap,
    ) -> Result<Vec<Content>, TranslateError> {
        // tool_use id → the client's tool name, for the tool_result after it.
        let mut calls = CallNames::default();
        let mut contents: Vec<Content> = Vec::new();
        let last = req.messages.len() - 1;
        for (i, message) in req.messages.iter().enumerate() {
            let role = match message.role {
                Role::User => "user",
                Role::Assistant => "model",
                // Part of the system instruction (see `system_instruction`).
                Role::System => continue,
                Role::Unknown => {
                    return Err(TranslateError::invalid(
                        format!("messages.{i}.role"),
                        "must be \"user\", \"assistant\" or \"system\"",
                    ));
                }
            };
            let text_only;
            let blocks: &[ContentBlock] = match &message.content {
                MessageContent::Text(text) => {
                    text_only = [ContentBlock::text(text.clone())];
                    &text_only
                }
                MessageContent::Blocks(blocks) => blocks,
            };
            let mut parts = Vec::new();
            let mut dropped_by_policy = false;
            let mut pending_signature: Option<String> = None;
            for (j, block) in blocks.iter().enumerate() {
                let field = || format!("messages.{i}.content.{j}");
                match block {
                    ContentBlock::Text { text, .. } => {
                        if !text.is_empty() {
                            parts.push(Part::text(text.clone()));
                        }
                    }
                    ContentBlock::Image { source } => parts.push(media_part(
                        source,
                        "image/jpeg",
                        false,
                        &format!("{}.source", field()),
                    )?),
                    ContentBlock::Document { source, title, .. } => {
                        document_parts(source, title.as_deref(), &field(), &mut parts)?;
                    }
                    ContentBlock::ToolUse { id, name, input } => {
                        if message.role != Role::Assistant {
                            return Err(TranslateError::invalid(
                                field(),
                                "tool_use blocks belong in assistant messages",
                            ));
                        }
                        calls.record(id, name);
                        let signature = self
                            .policy
                            .cached_tool_signature(id)
                            .or_else(|| pending_signature.take());
                        parts.push(function_call_part(
                            Some(id),
                            names.to_upstream(name),
                            call_args(input),
                            signature,
                        ));
                    }
                    ContentBlock::ToolResult {
                        tool_use_id,
                        content,
                        is_error,
                    } => {
                        if message.role != Role::User {
                            return Err(TranslateError::invalid(
                                field(),
                                "tool_result blocks belong in user messages",
                            ));
                        }
                        tool_result_parts(
                            tool_use_id,
                            calls.upstream_name(tool_use_id, names),
                            content.as_ref(),
                            is_error.unwrap_or(false),
                            &field(),
                            &mut parts,
                        )?;
                    }
                    ContentBlock::Thinking {
                        thinking,
                        signature,
                    } => {
                        if message.role != Role::Assistant {
                            dropped_by_policy = true;
                            continue;
                        }
                        match self.policy.replay(signature) {
                            Replay::Thought(signature) => parts.push(Part {
                                text: Some(thinking.clone()),
                                thought: Some(true),
                                thought_signature: Some(signature),
                                ..Part::default()
                            }),
                            Replay::Text if !thinking.is_empty() => {
                                parts.push(Part::text(thinking.clone()));
                            }
                            Replay::Text => dropped_by_policy = true,
                            Replay::Drop(signature) => {
                                dropped_by_policy = true;
                                if signature.is_some() {
                                    pending_signature = signature;
                                }
                            }
                        }
                    }
                    ContentBlock::RedactedThinking { .. } => dropped_by_policy = true,
                    ContentBlock::Other(value) => {
                        let kind = block.type_name();
                        if SERVER_TOOL_BLOCKS.contains(&kind) {
                            dropped_by_policy = true;
                        } else if kind == "search_result" {
                            parts.push(Part::text(search_result_text(value)));
                        } else if KNOWN_BLOCKS.contains(&kind) {
                            return Err(TranslateError::invalid(
                                field(),
                                format!("malformed \"{kind}\" block (missing or mistyped fields)"),
                            ));
                        } else {
                            return Err(TranslateError::invalid(
                                field(),
                                format!("unknown block type \"{kind}\""),
                            ));
                        }
                    }
                }
            }
            if parts.is_empty() {
                if dropped_by_policy || (i == last && message.role == Role::Assistant) {
                    // Only thinking or server-tool blocks (left out on purpose), or an
                    // empty prefill: nothing to send for this message.
                    continue;
                }
                return Err(TranslateError::invalid(
                    format!("messages.{i}.content"),
                    "must not be empty (empty text blocks are dropped)",
                ));
            }
            push_turn(&mut contents, role, parts);
        }
        if contents.is_empty() {
            return Err(TranslateError::invalid(
                "messages",
                "no message has content that can be sent",
            ));
        }
        Ok(contents)
    }
}

const KNOWN_BLOCKS: [&str; 7] = [
    "text",
    "image",
    "document",
    "tool_use",
    "tool_result",
    "thinking",
    "redacted_thinking",
];

/// An image or PDF as a Gemini part: inline bytes, or a file URI.
fn media_part(
    source: &Source,
    default_mime: &str,
    allow_text: bool,
    field: &str,
) -> Result<Part, TranslateError> {
    match source {
        Source::Base64 { media_type, data } => Ok(inline_part(media_type, data)),
        Source::Url { url } => Ok(file_uri_part(url, default_mime)),
        Source::Text { data, .. } if allow_text => Ok(Part::text(data.clone())),
        Source::File { .. } => Err(TranslateError::unsupported(
            field,
            "files of Anthropic's Files API (file_id) are not available upstream; send the bytes as base64",
        )),
        Source::Text { .. } | Source::Content { .. } => Err(TranslateError::invalid(
            field,
            "images take a base64 or url source",
        )),
    }
}

fn document_parts(
    source: &Source,
    title: Option<&str>,
    field: &str,
    parts: &mut Vec<Part>,
) -> Result<(), TranslateError> {
    let title = title.filter(|t| !t.is_empty());
    match source {
        Source::Text { data, .. } => {
            let text = match title {
                Some(title) => format!("{title}\n\n{data}"),
                None => data.clone(),
            };
            if !text.is_empty() {
                parts.push(Part::text(text));
            }
        }
        Source::Content { content } => {
            if let Some(title) = title {
                parts.push(Part::text(title));
            }
            for (k, block) in content.iter().enumerate() {
                match block {
                    ContentBlock::Text { text, .. } if !text.is_empty() => {
                        parts.push(Part::text(text.clone()));
                    }
                    ContentBlock::Text { .. } => {}
                    ContentBlock::Image { source } => parts.push(media_part(
                        source,
                        "image/jpeg",
                        false,
                        &format!("{field}.source.content.{k}.source"),
                    )?),
                    other => {
                        return Err(TranslateError::invalid(
                            format!("{field}.source.content.{k}"),
                            format!(
                                "document content takes text and image blocks, not \"{}\"",
                                other.type_name()
                            ),
                        ));
                    }
                }
            }
        }
        _ => parts.push(media_part(
            source,
            "application/pdf",
            true,
            &format!("{field}.source"),
        )?),
    }
    Ok(())
}

/// A `tool_result` as a `functionResponse` (plus its images), or as text when no
/// `tool_use` with its id came before it.
fn tool_result_parts(
    tool_use_id: &str,
    upstream_name: Option<String>,
    content: Option<&ToolResultContent>,
    is_error: bool,
    field: &str,
    parts: &mut Vec<Part>,
) -> Result<(), TranslateError> {
    let mut text = String::new();
    let mut media = Vec::new();
    match content {
        None => {}
        Some(ToolResultContent::Text(t)) => text.push_str(t),
        Some(ToolResultContent::Blocks(blocks)) => {
            for (k, block) in blocks.iter().enumerate() {
                let inner = format!("{field}.content.{k}");
                match block {
                    ContentBlock::Text { text: t, .. } => {
                        if !t.is_empty() {
                            if !text.is_empty() {
                                text.push('\n');
                            }
                            text.push_str(t);
                        }
                    }
                    ContentBlock::Image { source } => media.push(media_part(
                        source,
                        "image/jpeg",
                        false,
                        &format!("{inner}.source"),
                    )?),
                    ContentBlock::Document { source, title, .. } => {
                        let mut doc = Vec::new();
                        document_parts(source, title.as_deref(), &inner, &mut doc)?;
                        for part in doc {
                            match part.text {
                                Some(t) => {
                                    if !text.is_empty() {
                                        text.push('\n');
                                    }
                                    text.push_str(&t);
                                }
                                None => media.push(part),
                            }
                        }
                    }
                    ContentBlock::Other(value) if block.type_name() == "search_result" => {
                        if !text.is_empty() {
                            text.push('\n');
                        }
                        text.push_str(&search_result_text(value));
                    }
                    other => {
                        return Err(TranslateError::invalid(
                            inner,
                            format!(
                                "tool results take text, image and document blocks, not \"{}\"",
                                other.type_name()
                            ),
                        ));
                    }
                }
            }
        }
    }
    common_tool_result_parts(tool_use_id, upstream_name, &text, is_error, media, parts);
    Ok(())
}

fn search_result_text(value: &Value) -> String {
    let title = value
        .get("title")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let source = value
        .get("source")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut out = match (title.is_empty(), source.is_empty()) {
        (false, false) => format!("{title} ({source})"),
        (false, true) => title.to_owned(),
        (true, false) => source.to_owned(),
        (true, true) => String::new(),
    };
    if let Some(blocks) = value.get("content").and_then(Value::as_array) {
        for text in blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
        {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(text);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::thinking::{
        SKIP_SIGNATURE_VALIDATOR, SignatureStore, needs_function_call_signatures,
    };
    use agm_wire::gemini::{FileData, FunctionResponse};
    use pretty_assertions::assert_eq;

    fn request(messages: Value) -> MessagesRequest {
        serde_json::from_value(json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 1000,
            "messages": messages
        }))
        .unwrap()
    }

    fn translate(req: &MessagesRequest, model: &str) -> Result<Translated, TranslateError> {
        to_gemini(req, model, &RequestOptions::default())
    }

    fn error(messages: Value) -> String {
        translate(&request(messages), "gemini-3-flash")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn system_messages_join_the_system_instruction() {
        // Recent Claude Code sends its environment as a system message after the first
        // user turn.
        let req: MessagesRequest = serde_json::from_value(json!({
            "model": "claude-opus-5-5",
            "max_tokens": 64,
            "system": "You are Claude Code.",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "system", "content": [{"type": "text", "text": "# Environment"}]},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": "go on"}
            ]
        }))
        .unwrap();
        let out = to_gemini(&req, "claude-opus-4-5-thinking", &RequestOptions::default()).unwrap();
        let system: Vec<&str> = out
            .request
            .system_instruction
            .as_ref()
            .unwrap()
            .parts
            .iter()
            .filter_map(|p| p.text.as_deref())
            .collect();
        assert_eq!(system, ["You are Claude Code.", "# Environment"]);
        let roles: Vec<&str> = out
            .request
            .contents
            .iter()
            .filter_map(|c| c.role.as_deref())
            .collect();
        assert_eq!(roles, ["user", "model", "user"]);
    }

    #[test]
    fn validation_errors_name_the_field() {
        assert_eq!(
            error(json!([])),
            "messages: at least one message is required"
        );
        assert_eq!(
            error(json!([{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}])),
            "messages.1.role: must be \"user\", \"assistant\" or \"system\""
        );
        assert_eq!(
            error(
                json!([{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "foo"}]}])
            ),
            "messages.0.content.1: unknown block type \"foo\""
        );
        assert_eq!(
            error(json!([{"role": "user", "content": [{"type": "image"}]}])),
            "messages.0.content.0: malformed \"image\" block (missing or mistyped fields)"
        );
        assert_eq!(
            error(json!([{"role": "user", "content": [{"type": "text", "text": ""}]}])),
            "messages.0.content: must not be empty (empty text blocks are dropped)"
        );
        assert_eq!(
            error(
                json!([{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "x", "input": {}}]}])
            ),
            "messages.0.content.0: tool_use blocks belong in assistant messages"
        );
        let mut req = request(json!([{"role": "user", "content": "hi"}]));
        req.max_tokens = 0;
        assert_eq!(
            translate(&req, "gemini-3-flash").unwrap_err(),
            TranslateError::invalid("max_tokens", "must be at least 1")
        );
        req.max_tokens = 10;
        req.tools = vec![ToolDef {
            name: "a".into(),
            ..ToolDef::default()
        }];
        req.tool_choice = Some(ToolChoice::Tool {
            name: "b".into(),
            disable_parallel_tool_use: None,
        });
        assert_eq!(
            translate(&req, "gemini-3-flash").unwrap_err().field(),
            "tool_choice.name"
        );
    }

    #[test]
    fn merges_roles_and_allows_an_assistant_first_message_and_empty_prefill() {
        let req = request(json!([
            {"role": "assistant", "content": "I start"},
            {"role": "user", "content": "a"},
            {"role": "user", "content": [{"type": "text", "text": "b"}, {"type": "text", "text": ""}]},
            {"role": "assistant", "content": ""}
        ]));
        let out = translate(&req, "gemini-3-flash").unwrap();
        assert_eq!(
            out.request.contents,
            vec![
                Content::new("model", vec![Part::text("I start")]),
                Content::new("user", vec![Part::text("a"), Part::text("b")]),
            ]
        );
    }

    #[test]
    fn tool_round_trip_with_mapped_names() {
        let req: MessagesRequest = serde_json::from_value(json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 100,
            "tools": [{"name": "mcp__my.server__do it", "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}],
            "tool_choice": {"type": "tool", "name": "mcp__my.server__do it"},
            "messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "mcp__my.server__do it", "input": {"q": "x"}}]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": true, "content": [
                        {"type": "text", "text": "boom"},
                        {"type": "image", "source": {"type": "url", "url": "https://x/y.PNG?z=1"}}]},
                    {"type": "tool_result", "tool_use_id": "toolu_unknown", "content": "late"}]}
            ]
        }))
        .unwrap();
        let out = translate(&req, "claude-sonnet-4-5").unwrap();
        let safe = out
            .tool_names
            .upstream_name("mcp__my.server__do it")
            .unwrap()
            .to_owned();
        assert!(safe.starts_with("mcp__my_server__do_it_"));
        assert_eq!(out.tool_names.to_client(&safe), "mcp__my.server__do it");
        let config = out
            .request
            .tool_config
            .unwrap()
            .function_calling_config
            .unwrap();
        assert_eq!(config.mode, "ANY");
        assert_eq!(config.allowed_function_names, vec![safe.clone()]);
        assert_eq!(out.request.tools[0].function_declarations[0].name, safe);
        let call = out.request.contents[1].parts[0]
            .function_call
            .clone()
            .unwrap();
        assert_eq!(call.name, safe);
        assert_eq!(call.id.as_deref(), Some("toolu_1"));
        let user = &out.request.contents[2].parts;
        assert_eq!(
            user[0].function_response,
            Some(FunctionResponse {
                id: Some("toolu_1".into()),
                name: safe,
                response: json!({"error": "boom"}),
            })
        );
        assert_eq!(
            user[1].file_data,
            Some(FileData {
                mime_type: Some("image/png".into()),
                file_uri: "https://x/y.PNG?z=1".into()
            })
        );
        assert_eq!(
            user[2].text.as_deref(),
            Some("[Result of tool call toolu_unknown]\nlate")
        );
    }

    struct Store;
    impl SignatureStore for Store {
        fn family_of(&self, _session: &str, signature: &str) -> Option<ModelFamily> {
            match signature {
                "claudeSig" => Some(ModelFamily::Claude),
                "geminiSig" => Some(ModelFamily::Gemini),
                _ => None,
            }
        }
        fn for_tool_use(&self, _session: &str, id: &str) -> Option<String> {
            (id == "toolu_cached").then(|| "cachedSig".to_owned())
        }
    }

    fn thinking_history(signature: &str, tool_id: &str) -> MessagesRequest {
        let mut req = request(json!([
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "let me see", "signature": signature},
                {"type": "redacted_thinking", "data": "xx"},
                {"type": "tool_use", "id": tool_id, "name": "Bash", "input": {"command": "ls"}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": "a.txt"}]}
        ]));
        req.thinking = Some(Thinking::Enabled {
            budget_tokens: 2000,
        });
        req
    }

    #[test]
    fn claude_replays_its_own_signed_thinking() {
        let store = Store;
        let options = RequestOptions {
            thinking_as_text: false,
            signatures: Some(&store),
        };
        let out = to_gemini(
            &thinking_history("claudeSig", "t1"),
            "claude-opus-4-5-thinking",
            &options,
        )
        .unwrap();
        assert!(out.thinking);
        let first = &out.request.contents[1].parts[0];
        assert!(first.is_thought());
        assert_eq!(first.thought_signature.as_deref(), Some("claudeSig"));
        let config = out.request.generation_config.unwrap();
        assert_eq!(config.max_output_tokens, Some(3024));
        assert_eq!(
            config.thinking_config,
            Some(ThinkingConfig {
                include_thoughts: Some(true),
                thinking_budget: Some(2000),
                thinking_level: None
            })
        );

        // A signature from another family: thinking as text, and thinking turned off
        // because the open tool turn no longer starts with a signed thought.
        let out = to_gemini(
            &thinking_history("geminiSig", "t1"),
            "claude-opus-4-5-thinking",
            &options,
        )
        .unwrap();
        assert_eq!(out.request.contents[1].parts[0], Part::text("let me see"));
        assert!(!out.thinking);
        assert_eq!(out.request.generation_config.unwrap().thinking_config, None);

        // The retry after a signature error.
        let retry = RequestOptions {
            thinking_as_text: true,
            signatures: None,
        };
        let out = to_gemini(
            &thinking_history("claudeSig", "t1"),
            "claude-opus-4-5-thinking",
            &retry,
        )
        .unwrap();
        assert_eq!(out.request.contents[1].parts[0], Part::text("let me see"));
    }

    #[test]
    fn gemini_moves_signatures_to_function_calls() {
        let store = Store;
        let options = RequestOptions {
            thinking_as_text: false,
            signatures: Some(&store),
        };
        // Own signature: thought text left out, signature on the call.
        let out = to_gemini(
            &thinking_history("geminiSig", "t1"),
            "gemini-3-pro-high",
            &options,
        )
        .unwrap();
        let model = &out.request.contents[1].parts;
        assert_eq!(model.len(), 1);
        assert_eq!(model[0].thought_signature.as_deref(), Some("geminiSig"));
        assert!(out.thinking);
        // The cache wins over the thinking block.
        let out = to_gemini(
            &thinking_history("geminiSig", "toolu_cached"),
            "gemini-3-pro-high",
            &options,
        )
        .unwrap();
        assert_eq!(
            out.request.contents[1].parts[0]
                .thought_signature
                .as_deref(),
            Some("cachedSig")
        );
        // A foreign signature: the documented stand-in.
        let out = to_gemini(
            &thinking_history("claudeSig", "t1"),
            "gemini-3-pro-high",
            &options,
        )
        .unwrap();
        assert_eq!(
            out.request.contents[1].parts[0]
                .thought_signature
                .as_deref(),
            Some(SKIP_SIGNATURE_VALIDATOR)
        );
    }

    #[test]
    fn only_gemini_3_and_later_get_stand_in_signatures() {
        assert!(needs_function_call_signatures("gemini-3-pro-high"));
        assert!(needs_function_call_signatures("models/gemini-3.1-flash"));
        assert!(needs_function_call_signatures("gemini-10-ultra"));
        assert!(!needs_function_call_signatures("gemini-2.5-flash"));
        assert!(!needs_function_call_signatures("claude-opus-4-5-thinking"));
        let out = translate(&thinking_history("", "t1"), "gemini-2.5-pro").unwrap();
        assert_eq!(out.request.contents[1].parts[0].thought_signature, None);
    }

    #[test]
    fn claude_thinking_drops_sampling_it_refuses_and_forced_tools_turn_it_off() {
        let mut req = request(json!([{"role": "user", "content": "hi"}]));
        req.thinking = Some(Thinking::Enabled {
            budget_tokens: 2000,
        });
        req.temperature = Some(0.2);
        req.top_k = Some(5);
        let out = translate(&req, "claude-sonnet-4-5-thinking").unwrap();
        assert!(out.thinking);
        let config = out.request.generation_config.unwrap();
        assert_eq!((config.temperature, config.top_k), (None, None));
        req.tools = vec![ToolDef {
            name: "Bash".into(),
            ..ToolDef::default()
        }];
        req.tool_choice = Some(ToolChoice::Any {
            disable_parallel_tool_use: None,
        });
        let out = translate(&req, "claude-sonnet-4-5-thinking").unwrap();
        assert!(!out.thinking);
        assert_eq!(
            out.request.generation_config.unwrap().temperature,
            Some(0.2)
        );
    }

    #[test]
    fn thinking_budget_and_system_and_generation_settings() {
        let mut req = request(json!([{"role": "user", "content": "hi"}]));
        req.system = Some(System::Text("be brief".into()));
        req.temperature = Some(0.5);
        req.top_k = Some(3);
        req.stop_sequences = (0..7).map(|i| format!("s{i}")).collect();
        req.stop_sequences.push(String::new());
        req.thinking = Some(Thinking::Enabled {
            budget_tokens: 100_000,
        });
        let out = translate(&req, "gemini-2.5-flash").unwrap();
        assert_eq!(
            out.request.system_instruction,
            Some(Content::new("user", vec![Part::text("be brief")]))
        );
        assert_eq!(
            out.stop_sequences,
            (0..7).map(|i| format!("s{i}")).collect::<Vec<_>>(),
            "all kept for agm to enforce, the empty one dropped"
        );
        let config = out.request.generation_config.unwrap();
        assert!(config.stop_sequences.is_empty(), "not sent upstream");
        assert_eq!(config.temperature, Some(0.5));
        assert_eq!(
            config.thinking_config.unwrap().thinking_budget,
            Some(24_576)
        );
        assert_eq!(config.max_output_tokens, Some(24_576 + 1024));
        assert_eq!(
            out.request.session_id.as_deref(),
            Some(out.session_id.as_str())
        );

        req.thinking = Some(Thinking::Adaptive);
        let config = translate(&req, "gemini-3-pro-high")
            .unwrap()
            .request
            .generation_config
            .unwrap();
        assert_eq!(
            config.thinking_config,
            Some(ThinkingConfig {
                include_thoughts: Some(true),
                ..ThinkingConfig::default()
            })
        );
        req.thinking = Some(Thinking::Disabled);
        let out = translate(&req, "gemini-3-pro-high").unwrap();
        assert!(!out.thinking);
        assert_eq!(out.request.generation_config.unwrap().thinking_config, None);
    }

    #[test]
    fn documents_images_and_server_tools() {
        let mut req = request(json!([{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}},
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}},
            {"type": "document", "title": "notes", "source": {"type": "text", "media_type": "text/plain", "data": "hello"}},
            {"type": "document", "source": {"type": "url", "url": "https://e.com/doc"}},
            {"type": "web_search_tool_result", "tool_use_id": "s", "content": []}
        ]}]));
        req.tools = vec![ToolDef {
            name: "web_search".into(),
            kind: Some("web_search_20250305".into()),
            ..ToolDef::default()
        }];
        let out = translate(&req, "gemini-3-flash").unwrap();
        let parts = &out.request.contents[0].parts;
        assert_eq!(parts.len(), 4);
        assert_eq!(
            parts[0].inline_data.as_ref().unwrap().mime_type,
            "image/png"
        );
        assert_eq!(
            parts[1].inline_data.as_ref().unwrap().mime_type,
            "application/pdf"
        );
        assert_eq!(parts[2].text.as_deref(), Some("notes\n\nhello"));
        assert_eq!(
            parts[3].file_data.as_ref().unwrap().mime_type.as_deref(),
            Some("application/pdf")
        );
        assert_eq!(out.request.tools.len(), 1);
        assert!(out.request.tools[0].google_search.is_some());

        req.tools[0].kind = Some("computer_20250124".into());
        let err = translate(&req, "gemini-3-flash").unwrap_err();
        assert!(matches!(err, TranslateError::Unsupported { .. }));
        assert_eq!(err.field(), "tools.0.type");
    }

    #[test]
    fn count_tokens_puts_system_and_tools_first() {
        let req: CountTokensRequest = serde_json::from_value(json!({
            "model": "claude-sonnet-4-5",
            "system": "sys",
            "tools": [{"name": "Read", "input_schema": {"type": "object", "properties": {"p": {"type": "string"}}}}],
            "messages": [{"role": "user", "content": "hi"}]
        }))
        .unwrap();
        let out = count_tokens_to_gemini(&req, "gemini-3-flash").unwrap();
        assert_eq!(out.request.model, "models/gemini-3-flash");
        assert_eq!(out.request.contents.len(), 1);
        let parts = &out.request.contents[0].parts;
        assert_eq!(parts[0].text.as_deref(), Some("sys"));
        assert!(
            parts[1]
                .text
                .as_deref()
                .unwrap()
                .starts_with("Tools:\n[{\"name\":\"Read\"")
        );
        assert_eq!(parts[2].text.as_deref(), Some("hi"));
    }
}
