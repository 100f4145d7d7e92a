//! OpenAI `ChatCompletionRequest` → Gemini `GenerateContentRequest`.

use agm_wire::gemini::{Content, FunctionDeclaration, GenerationConfig, Part, ToolConfig};
use std::collections::BTreeSet;

use agm_wire::openai::chat::{
    ChatCompletionRequest, ChatContent, ChatMessage, ChatRole, ContentPart, CustomToolFormat,
    FunctionDef, ResponseFormat, ToolCall, ToolChoice,
};
use serde_json::Value;

use crate::common::media::{file_data_part, inline_part, url_part};
use crate::common::openai_tools::{
    ToolKinds, allowed_tools_config, custom_call_args, custom_tool_declaration, custom_tool_set,
    hosted_tool, is_web_search, namespace_custom_tools, namespace_declarations, request_tools,
};
use crate::common::pipeline::{AnswerFormat, Draft, forces_a_call, output_limit};
use crate::common::request::{
    CallNames, CallingMode, function_call_part, function_declaration, join_texts, parse_arguments,
    push_turn, stop_sequences, tool_config, tool_result_parts,
};
use crate::common::{RequestOptions, Translated};
use crate::error::TranslateError;
use crate::session::openai_session_id;
use crate::thinking::{Effort, ModelFamily, SignaturePolicy};
use crate::tools::ToolNameMap;

/// Translates a Chat Completions request for `upstream_model`.
///
/// Errors name the offending field (`messages.2.tool_calls.0.function.arguments: is
/// not valid JSON (…)`) and map to OpenAI's `invalid_request_error`.
///
/// Custom tools, OpenAI's hosted tools and `allowed_tools` follow
/// [`crate::common::openai_tools`]. `stop` is not sent upstream but returned in
/// [`Translated::stop_sequences`] for the answer's transcoder to enforce, as for
/// Anthropic ([`crate::common::stop`]).
pub fn to_gemini(
    req: &ChatCompletionRequest,
    upstream_model: &str,
    options: &RequestOptions<'_>,
) -> Result<Translated, TranslateError> {
    if req.messages.is_empty() {
        return Err(TranslateError::invalid(
            "messages",
            "at least one message is required",
        ));
    }
    if req.n.is_some_and(|n| n > 1) {
        return Err(TranslateError::invalid(
            "n",
            "n > 1 is not supported: agm generates one choice per request",
        ));
    }
    let session_id = session_id(req);
    let family = ModelFamily::of(upstream_model);
    let mut tool_names = ToolNameMap::new();
    let mut notes = Vec::new();

    let (mut declarations, search) = declarations(req, &mut tool_names, &mut notes)?;
    let tool_config = if declarations.is_empty() {
        None
    } else {
        tool_choice(req, &mut declarations, &mut tool_names, &mut notes)?
    };
    let tools = request_tools(declarations, search.as_deref(), &mut notes);

    let policy = SignaturePolicy {
        family,
        options,
        session_id: &session_id,
    };
    let (system, contents) = history(&req.messages, &policy, &mut tool_names)?;

    let effort = match req.reasoning_effort.as_deref() {
        None => None,
        Some(text) => Some(Effort::parse(text).ok_or_else(|| {
            TranslateError::invalid(
                "reasoning_effort",
                format!("must be {}, not \"{text}\"", Effort::ACCEPTED),
            )
        })?),
    };
    let thinking = effort.and_then(|e| e.thinking_config(family, upstream_model));
    let generation_config = generation_config(req)?;

    Ok(Draft {
        upstream_model,
        family,
        session_id,
        tool_names,
        system,
        contents,
        tools,
        forced_call: forces_a_call(tool_config.as_ref()),
        tool_config,
        generation_config,
        thinking,
        show_thoughts: true,
        stop_sequences: stop_sequences(
            req.stop.as_ref().map(|s| s.sequences()).unwrap_or_default(),
        ),
        notes,
    }
    .finish())
}

/// The conversation's session id: from `prompt_cache_key`, else the first user
/// message.
fn session_id(req: &ChatCompletionRequest) -> String {
    let first_user_text = req
        .messages
        .iter()
        .find(|m| m.role == ChatRole::User)
        .and_then(|m| m.content.as_ref())
        .map(|content| match content {
            ChatContent::Text(text) => text.clone(),
            ChatContent::Parts(parts) => {
                let texts = parts.iter().filter_map(|p| match p {
                    ContentPart::Text { text } => Some(text.as_str()),
                    _ => None,
                });
                join_texts(texts)
            }
        })
        .unwrap_or_default();
    openai_session_id(req.prompt_cache_key.as_deref(), &first_user_text)
}

/// The function declarations of `tools` (function and custom tools) and of the
/// legacy `functions`, and the field of a web search tool, if there is one; other
/// hosted tools are refused or left out ([`hosted_tool`]).
fn declarations(
    req: &ChatCompletionRequest,
    names: &mut ToolNameMap,
    notes: &mut Vec<String>,
) -> Result<(Vec<FunctionDeclaration>, Option<String>), TranslateError> {
    let mut declarations = Vec::new();
    let mut search = None;
    let mut kinds = ToolKinds::default();
    for (i, tool) in req.tools.iter().enumerate() {
        match tool.kind.as_str() {
            "function" => {
                let (function, field) =
                    tool_def(tool.function.as_ref(), |f| &f.name, i, "function")?;
                kinds.function(&function.name, &field)?;
                declarations.push(declaration(names, function));
            }
            "custom" => {
                let (custom, field) = tool_def(tool.custom.as_ref(), |c| &c.name, i, "custom")?;
                kinds.custom(&custom.name, &field)?;
                let grammar = match &custom.format {
                    Some(CustomToolFormat::Grammar { grammar }) => {
                        Some((grammar.syntax.as_str(), grammar.definition.as_str()))
                    }
                    _ => None,
                };
                declarations.push(custom_tool_declaration(
                    names,
                    &custom.name,
                    custom.description.as_deref(),
                    grammar,
                ));
            }
            // The Responses API's namespace tool, in the same shape.
            "namespace" => namespace_declarations(
                tool.name.as_deref(),
                tool.description.as_deref(),
                &tool.tools,
                &format!("tools.{i}"),
                names,
                &mut declarations,
                notes,
            )?,
            kind if is_web_search(kind) => {
                search.get_or_insert_with(|| format!("tools.{i}.type"));
            }
            kind => hosted_tool(kind, &format!("tools.{i}.type"), notes)?,
        }
    }
    for (i, function) in req.functions.iter().enumerate() {
        let field = format!("functions.{i}.name");
        if function.name.is_empty() {
            return Err(TranslateError::invalid(field, "must not be empty"));
        }
        kinds.function(&function.name, &field)?;
        declarations.push(declaration(names, function));
    }
    Ok((declarations, search))
}

/// A function tool's declaration.
fn declaration(names: &mut ToolNameMap, function: &FunctionDef) -> FunctionDeclaration {
    function_declaration(
        names,
        &function.name,
        function.description.as_deref(),
        function.parameters.as_ref(),
    )
}

/// The definition of tool `i` under `key` (`function` or `custom`), which a tool of
/// that type requires, and the field of its name, which must not be empty.
fn tool_def<'a, T>(
    def: Option<&'a T>,
    name: impl Fn(&T) -> &String,
    i: usize,
    key: &str,
) -> Result<(&'a T, String), TranslateError> {
    let Some(def) = def else {
        return Err(TranslateError::invalid(
            format!("tools.{i}.{key}"),
            format!("required for {key} tools"),
        ));
    };
    let field = format!("tools.{i}.{key}.name");
    if name(def).is_empty() {
        return Err(TranslateError::invalid(field, "must not be empty"));
    }
    Ok((def, field))
}

/// The upstream names of the request's custom tools (their calls go back as custom
/// tool calls); `names` is the map of the translated request.
pub fn custom_tool_names(req: &ChatCompletionRequest, names: &ToolNameMap) -> BTreeSet<String> {
    let custom = req
        .tools
        .iter()
        .filter(|tool| tool.kind == "custom")
        .filter_map(|tool| tool.custom.as_ref())
        .map(|custom| custom.name.as_str());
    let mut set = custom_tool_set(custom, names);
    for tool in req.tools.iter().filter(|tool| tool.kind == "namespace") {
        set.extend(namespace_custom_tools(
            tool.name.as_deref(),
            &tool.tools,
            names,
        ));
    }
    set
}

/// `tool_choice` (or the legacy `function_call`) as `toolConfig`; an `allowed_tools`
/// choice in mode `auto` keeps only the allowed `declared` tools.
fn tool_choice(
    req: &ChatCompletionRequest,
    declared: &mut Vec<FunctionDeclaration>,
    names: &mut ToolNameMap,
    notes: &mut Vec<String>,
) -> Result<Option<ToolConfig>, TranslateError> {
    let mode = |text: &str, field: &str| match text {
        "auto" => Ok(CallingMode::Auto),
        "none" => Ok(CallingMode::None),
        "required" => Ok(CallingMode::Any),
        other => Err(TranslateError::invalid(
            field,
            format!("must be \"none\", \"auto\", \"required\" or name a function, not \"{other}\""),
        )),
    };
    // A call of the tool `name` (named at `field`) is required.
    let forced = |name: &str, field: &str, names: &mut ToolNameMap, declared: &[_]| {
        tool_config(CallingMode::Any, Some(name), names, declared, field).map(Some)
    };
    match (&req.tool_choice, &req.function_call) {
        (Some(ToolChoice::Mode(text)), _) => {
            let mode = mode(text, "tool_choice")?;
            tool_config(mode, None, names, declared, "tool_choice").map(Some)
        }
        (Some(ToolChoice::Named(named)), _) => forced(
            &named.function.name,
            "tool_choice.function.name",
            names,
            declared,
        ),
        (Some(ToolChoice::Custom(named)), _) => forced(
            &named.custom.name,
            "tool_choice.custom.name",
            names,
            declared,
        ),
        (Some(ToolChoice::AllowedTools(choice)), _) => allowed_tools_config(
            &choice.allowed_tools.mode,
            &choice.allowed_tools.tools,
            names,
            declared,
            "tool_choice.allowed_tools",
        )
        .map(Some),
        (Some(ToolChoice::Other(value)), _) => {
            let kind = value.get("type").and_then(Value::as_str).unwrap_or("?");
            notes.push(format!(
                "tool_choice: \"{kind}\" is not supported; the model chooses its tools"
            ));
            Ok(None)
        }
        (None, Some(Value::String(text))) => {
            let mode = mode(text, "function_call")?;
            tool_config(mode, None, names, declared, "function_call").map(Some)
        }
        (None, Some(value)) => {
            let Some(name) = value.get("name").and_then(Value::as_str) else {
                return Err(TranslateError::invalid(
                    "function_call",
                    "must be \"none\", \"auto\" or {\"name\": ...}",
                ));
            };
            forced(name, "function_call.name", names, declared)
        }
        (None, None) => Ok(None),
    }
}

/// The system parts and the contents of the conversation.
fn history(
    messages: &[ChatMessage],
    policy: &SignaturePolicy<'_>,
    names: &mut ToolNameMap,
) -> Result<(Vec<Part>, Vec<Content>), TranslateError> {
    let mut system = Vec::new();
    let mut contents: Vec<Content> = Vec::new();
    let mut calls = CallNames::default();
    for (i, message) in messages.iter().enumerate() {
        let field = format!("messages.{i}");
        match message.role {
            ChatRole::System | ChatRole::Developer => {
                let text = text_content(message.content.as_ref(), &field)?;
                if !text.is_empty() {
                    system.push(Part::text(text));
                }
            }
            ChatRole::User => {
                let mut parts = Vec::new();
                if let Some(content) = &message.content {
                    content_parts(content, &format!("{field}.content"), &mut parts)?;
                }
                if parts.is_empty() {
                    return Err(TranslateError::invalid(
                        format!("{field}.content"),
                        "must not be empty",
                    ));
                }
                push_turn(&mut contents, "user", parts);
            }
            ChatRole::Assistant => {
                let parts = assistant_parts(message, &field, policy, names, &mut calls)?;
                // An empty assistant message (no text, no calls) carries nothing.
                push_turn(&mut contents, "model", parts);
            }
            ChatRole::Tool => {
                let Some(call_id) = message.tool_call_id.as_deref().filter(|id| !id.is_empty())
                else {
                    return Err(TranslateError::invalid(
                        format!("{field}.tool_call_id"),
                        "required in tool messages",
                    ));
                };
                let text = text_content(message.content.as_ref(), &field)?;
                let mut parts = Vec::new();
                tool_result_parts(
                    call_id,
                    calls.upstream_name(call_id, names),
                    &text,
                    false,
                    Vec::new(),
                    &mut parts,
                );
                push_turn(&mut contents, "user", parts);
            }
            ChatRole::Function => {
                let Some(name) = message.name.as_deref().filter(|n| !n.is_empty()) else {
                    return Err(TranslateError::invalid(
                        format!("{field}.name"),
                        "required in function messages",
                    ));
                };
                let text = text_content(message.content.as_ref(), &field)?;
                let mut parts = Vec::new();
                tool_result_parts(
                    "",
                    Some(names.to_upstream(name)),
                    &text,
                    false,
                    Vec::new(),
                    &mut parts,
                );
                push_turn(&mut contents, "user", parts);
            }
            ChatRole::Unknown => {
                return Err(TranslateError::invalid(
                    format!("{field}.role"),
                    "must be \"system\", \"developer\", \"user\", \"assistant\" or \"tool\"",
                ));
            }
        }
    }
    if contents.is_empty() {
        return Err(TranslateError::invalid(
            "messages",
            "no user or assistant message has content that can be sent",
        ));
    }
    Ok((system, contents))
}

/// An assistant message's text and calls as model parts.
fn assistant_parts(
    message: &ChatMessage,
    field: &str,
    policy: &SignaturePolicy<'_>,
    names: &mut ToolNameMap,
    calls: &mut CallNames,
) -> Result<Vec<Part>, TranslateError> {
    let mut parts = Vec::new();
    match &message.content {
        Some(ChatContent::Text(text)) if !text.is_empty() => parts.push(Part::text(text.clone())),
        None | Some(ChatContent::Text(_)) => {}
        Some(ChatContent::Parts(content)) => {
            for (k, part) in content.iter().enumerate() {
                match part {
                    ContentPart::Text { text } | ContentPart::Refusal { refusal: text } => {
                        if !text.is_empty() {
                            parts.push(Part::text(text.clone()));
                        }
                    }
                    other => {
                        return Err(TranslateError::invalid(
                            format!("{field}.content.{k}"),
                            format!(
                                "assistant messages take text and refusal parts, not \"{}\"",
                                other.type_name()
                            ),
                        ));
                    }
                }
            }
        }
    }
    if let Some(refusal) = message.refusal.as_deref().filter(|r| !r.is_empty())
        && parts.is_empty()
    {
        parts.push(Part::text(refusal));
    }
    for (j, call) in message.tool_calls.iter().enumerate() {
        let call_field = format!("{field}.tool_calls.{j}");
        let empty = |name_field: &str| {
            TranslateError::invalid(format!("{call_field}.{name_field}"), "must not be empty")
        };
        let (name, namespace, args) = match (&call.function, &call.custom) {
            (Some(function), _) => {
                if function.name.is_empty() {
                    return Err(empty("function.name"));
                }
                let arguments = format!("{call_field}.function.arguments");
                (
                    &function.name,
                    &function.namespace,
                    parse_arguments(&function.arguments, &arguments)?,
                )
            }
            (None, Some(custom)) => {
                if custom.name.is_empty() {
                    return Err(empty("custom.name"));
                }
                (
                    &custom.name,
                    &custom.namespace,
                    custom_call_args(&custom.input),
                )
            }
            (None, None) => {
                return Err(TranslateError::invalid(
                    format!("{call_field}.function"),
                    "required (or `custom`, for a custom tool call)",
                ));
            }
        };
        // A namespaced tool's call goes up under the name its declaration had.
        let upstream = match namespace.as_deref().filter(|n| !n.is_empty()) {
            Some(namespace) => names.to_upstream_namespaced(namespace, name),
            None => names.to_upstream(name),
        };
        calls.record_upstream(&call.id, &upstream);
        let signature = policy.call_signature(&call.id, sent_signature(call));
        parts.push(function_call_part(
            Some(&call.id),
            upstream,
            args,
            signature,
        ));
    }
    if let Some(call) = &message.function_call {
        let args = parse_arguments(&call.arguments, &format!("{field}.function_call.arguments"))?;
        parts.push(function_call_part(
            None,
            names.to_upstream(&call.name),
            args,
            None,
        ));
    }
    Ok(parts)
}

/// The thought signature a client sent back on a tool call, in Google's
/// OpenAI-compatible place (`extra_content.google.thought_signature`).
fn sent_signature(call: &ToolCall) -> Option<&str> {
    call.extra_content
        .as_ref()?
        .get("google")?
        .get("thought_signature")?
        .as_str()
}

/// The text of a system, tool or function message: a string, or text parts joined.
fn text_content(content: Option<&ChatContent>, field: &str) -> Result<String, TranslateError> {
    match content {
        None => Ok(String::new()),
        Some(ChatContent::Text(text)) => Ok(text.clone()),
        Some(ChatContent::Parts(parts)) => {
            let mut texts = Vec::new();
            for (k, part) in parts.iter().enumerate() {
                match part {
                    ContentPart::Text { text } => texts.push(text.as_str()),
                    other => {
                        return Err(TranslateError::invalid(
                            format!("{field}.content.{k}"),
                            format!(
                                "only text parts are allowed here, not \"{}\"",
                                other.type_name()
                            ),
                        ));
                    }
                }
            }
            Ok(join_texts(texts))
        }
    }
}

/// The known part types, to tell a malformed known part from an unknown one.
const KNOWN_PARTS: [&str; 5] = ["text", "image_url", "input_audio", "file", "refusal"];

/// A user message's content as parts.
fn content_parts(
    content: &ChatContent,
    field: &str,
    parts: &mut Vec<Part>,
) -> Result<(), TranslateError> {
    let content = match content {
        ChatContent::Text(text) => {
            if !text.is_empty() {
                parts.push(Part::text(text.clone()));
            }
            return Ok(());
        }
        ChatContent::Parts(content) => content,
    };
    for (k, part) in content.iter().enumerate() {
        let field = format!("{field}.{k}");
        match part {
            ContentPart::Text { text } | ContentPart::Refusal { refusal: text } => {
                if !text.is_empty() {
                    parts.push(Part::text(text.clone()));
                }
            }
            ContentPart::ImageUrl { image_url } => parts.push(url_part(
                &image_url.url,
                "image/jpeg",
                &format!("{field}.image_url.url"),
            )?),
            ContentPart::InputAudio { input_audio } => {
                let data = input_audio.get("data").and_then(Value::as_str);
                let Some(data) = data.filter(|d| !d.is_empty()) else {
                    return Err(TranslateError::invalid(
                        format!("{field}.input_audio.data"),
                        "required (base64 audio)",
                    ));
                };
                let mime = match input_audio.get("format").and_then(Value::as_str) {
                    Some("mp3") => "audio/mp3".to_owned(),
                    Some(format) if !format.is_empty() => format!("audio/{format}"),
                    _ => "audio/wav".to_owned(),
                };
                parts.push(inline_part(&mime, data));
            }
            ContentPart::File { file } => {
                let filename = file.get("filename").and_then(Value::as_str);
                match file.get("file_data").and_then(Value::as_str) {
                    Some(data) if !data.is_empty() => parts.push(file_data_part(
                        data,
                        filename,
                        "application/pdf",
                        &format!("{field}.file.file_data"),
                    )?),
                    _ if file.get("file_id").is_some() => {
                        return Err(TranslateError::unsupported(
                            format!("{field}.file.file_id"),
                            "files uploaded to OpenAI are not available upstream; send file_data",
                        ));
                    }
                    _ => {
                        return Err(TranslateError::invalid(
                            format!("{field}.file.file_data"),
                            "required (a data URL or base64)",
                        ));
                    }
                }
            }
            ContentPart::Other(_) => {
                let kind = part.type_name();
                let message = if KNOWN_PARTS.contains(&kind) {
                    format!("malformed \"{kind}\" part (missing or mistyped fields)")
                } else {
                    format!("unknown part type \"{kind}\"")
                };
                return Err(TranslateError::invalid(field, message));
            }
        }
    }
    Ok(())
}

/// Sampling, limits, stop sequences and the response format.
/// Sampling, the output limit and the answer format.
fn generation_config(req: &ChatCompletionRequest) -> Result<GenerationConfig, TranslateError> {
    let max = match (req.max_completion_tokens, req.max_tokens) {
        (Some(max), _) => output_limit("max_completion_tokens", Some(max))?,
        (None, max) => output_limit("max_tokens", max)?,
    };
    // `stop` is enforced by agm (`Translated::stop_sequences`), not sent upstream.
    let mut config = GenerationConfig {
        temperature: req.temperature,
        top_p: req.top_p,
        max_output_tokens: max,
        seed: req.seed,
        presence_penalty: req.presence_penalty,
        frequency_penalty: req.frequency_penalty,
        ..GenerationConfig::default()
    };
    let format = match &req.response_format {
        None | Some(ResponseFormat::Text) => AnswerFormat::Text,
        Some(ResponseFormat::JsonObject) => AnswerFormat::JsonObject,
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            AnswerFormat::JsonSchema(json_schema.schema.as_ref())
        }
        Some(ResponseFormat::Other(value)) => AnswerFormat::Other(value),
    };
    format.apply(&mut config, "response_format.type")?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::request::testing::{calling, declared};
    use crate::thinking::{SKIP_SIGNATURE_VALIDATOR, SignatureStore};
    use agm_wire::gemini::{FunctionResponse, ThinkingConfig};
    use pretty_assertions::assert_eq;
    use serde_json::json;

    fn request(body: Value) -> ChatCompletionRequest {
        let mut body = body;
        if body.get("model").is_none() {
            body["model"] = json!("gpt-4o");
        }
        serde_json::from_value(body).unwrap()
    }

    fn translate(req: &ChatCompletionRequest, model: &str) -> Result<Translated, TranslateError> {
        to_gemini(req, model, &RequestOptions::default())
    }

    fn error(body: Value) -> String {
        translate(&request(body), "gemini-3-flash")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            error(json!({"messages": []})),
            "messages: at least one message is required"
        );
        assert_eq!(
            error(json!({"n": 2, "messages": [{"role": "user", "content": "hi"}]})),
            "n: n > 1 is not supported: agm generates one choice per request"
        );
        assert_eq!(
            error(
                json!({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{nope"}}]}]})
            ),
            "messages.1.tool_calls.0.function.arguments: is not valid JSON (key must be a string at line 1 column 2)"
        );
        assert_eq!(
            error(json!({"messages": [{"role": "tool", "content": "x"}]})),
            "messages.0.tool_call_id: required in tool messages"
        );
        assert_eq!(
            error(json!({"messages": [{"role": "robot", "content": "x"}]})),
            "messages.0.role: must be \"system\", \"developer\", \"user\", \"assistant\" or \"tool\""
        );
        assert_eq!(
            error(
                json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}]}]})
            ),
            "messages.0.content.0.image_url.url: must be an http(s) URL or a base64 data URL"
        );
        assert_eq!(
            error(
                json!({"messages": [{"role": "user", "content": [{"type": "video", "video": {}}]}]})
            ),
            "messages.0.content.0: unknown part type \"video\""
        );
        assert_eq!(
            error(json!({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})),
            "messages.0.content.0: malformed \"image_url\" part (missing or mistyped fields)"
        );
        assert_eq!(
            error(
                json!({"reasoning_effort": "max", "messages": [{"role": "user", "content": "x"}]})
            ),
            "reasoning_effort: must be none, minimal, low, medium, high or xhigh, not \"max\""
        );
        assert_eq!(
            error(
                json!({"max_tokens": 9, "max_completion_tokens": 0, "messages": [{"role": "user", "content": "x"}]})
            ),
            "max_completion_tokens: must be at least 1"
        );
        assert_eq!(
            error(json!({"messages": [{"role": "system", "content": "only a system prompt"}]})),
            "messages: no user or assistant message has content that can be sent"
        );
        assert_eq!(
            error(
                json!({"tools": [{"type": "function", "function": {"name": "f"}}],
                         "tool_choice": {"type": "function", "function": {"name": "g"}},
                         "messages": [{"role": "user", "content": "x"}]})
            ),
            "tool_choice.function.name: no tool named \"g\" in tools"
        );
        assert_eq!(
            error(
                json!({"response_format": {"type": "xml"}, "messages": [{"role": "user", "content": "x"}]})
            ),
            "response_format.type: must be \"text\", \"json_object\" or \"json_schema\", not \"xml\""
        );
        let unsupported = translate(
            &request(json!({"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]})),
            "gemini-3-flash",
        )
        .unwrap_err();
        assert!(matches!(unsupported, TranslateError::Unsupported { .. }));
        assert_eq!(unsupported.field(), "messages.0.content.0.file.file_id");
    }

    #[test]
    fn system_messages_join_and_turns_merge() {
        let out = translate(
            &request(json!({"messages": [
                {"role": "system", "content": "be brief"},
                {"role": "developer", "content": [{"type": "text", "text": "use tools"}]},
                {"role": "user", "content": "a"},
                {"role": "user", "content": [{"type": "text", "text": "b"}]},
                {"role": "assistant", "content": ""},
                {"role": "system", "content": "late"},
                {"role": "assistant", "content": "c"}
            ]})),
            "gemini-3-flash",
        )
        .unwrap();
        assert_eq!(
            out.request.system_instruction,
            Some(Content::new(
                "user",
                vec![
                    Part::text("be brief"),
                    Part::text("use tools"),
                    Part::text("late")
                ]
            ))
        );
        assert_eq!(
            out.request.contents,
            vec![
                Content::new("user", vec![Part::text("a"), Part::text("b")]),
                Content::new("model", vec![Part::text("c")]),
            ]
        );
        assert!(!out.thinking);
    }

    #[test]
    fn parallel_tool_calls_and_their_results() {
        let req = request(json!({
            "tools": [
                {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
                {"type": "function", "function": {"name": "my.tool", "parameters": {"type": "object"}}},
                {"type": "custom", "custom": {"name": "grammar"}}
            ],
            "tool_choice": "required",
            "messages": [
                {"role": "user", "content": "weather?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_b", "type": "function", "function": {"name": "my.tool", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
                {"role": "tool", "tool_call_id": "call_b", "content": [{"type": "text", "text": "done"}]},
                {"role": "tool", "tool_call_id": "call_zzz", "content": "orphan"}
            ]
        }));
        let out = translate(&req, "gemini-2.5-pro").unwrap();
        let safe = out.tool_names.upstream_name("my.tool").unwrap().to_owned();
        assert_ne!(safe, "my.tool");
        assert!(out.notes.is_empty(), "{:?}", out.notes);
        let declared: Vec<&str> = out.request.tools[0]
            .function_declarations
            .iter()
            .map(|d| d.name.as_str())
            .collect();
        assert_eq!(declared, ["get_weather", safe.as_str(), "grammar"]);
        let config = out
            .request
            .tool_config
            .unwrap()
            .function_calling_config
            .unwrap();
        assert_eq!(config.mode, "ANY");
        let model = &out.request.contents[1].parts;
        let calls: Vec<(&str, &Value)> = model
            .iter()
            .map(|p| {
                let call = p.function_call.as_ref().unwrap();
                (call.name.as_str(), &call.args)
            })
            .collect();
        assert_eq!(
            calls,
            [
                ("get_weather", &json!({"city": "Paris"})),
                (safe.as_str(), &json!({}))
            ]
        );
        assert_eq!(model[0].thought_signature, None, "Gemini 2.5 takes none");
        let user = &out.request.contents[2].parts;
        assert_eq!(user.len(), 3, "the three tool messages are one turn");
        assert_eq!(
            user[1].function_response,
            Some(FunctionResponse {
                id: Some("call_b".into()),
                name: safe,
                response: json!({"output": "done"}),
            })
        );
        assert_eq!(
            user[2].text.as_deref(),
            Some("[Result of tool call call_zzz]\norphan")
        );
    }

    struct Store;
    impl SignatureStore for Store {
        fn family_of(&self, _session: &str, signature: &str) -> Option<ModelFamily> {
            (signature == "Z2VtaW5p").then_some(ModelFamily::Gemini)
        }
        fn for_tool_use(&self, _session: &str, id: &str) -> Option<String> {
            (id == "call_cached").then(|| "Y2FjaGVk".to_owned())
        }
    }

    #[test]
    fn gemini_3_function_calls_get_their_signatures_back() {
        let req = request(json!({"messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "tool_calls": [
                {"id": "call_sent", "type": "function", "function": {"name": "f", "arguments": "{}"},
                 "extra_content": {"google": {"thought_signature": "Z2VtaW5p"}}}]},
            {"role": "tool", "tool_call_id": "call_sent", "content": "1"},
            {"role": "assistant", "tool_calls": [
                {"id": "call_cached", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_cached", "content": "2"},
            {"role": "assistant", "tool_calls": [
                {"id": "call_lost", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "call_lost", "content": "3"}
        ]}));
        let store = Store;
        let options = RequestOptions {
            thinking_as_text: false,
            signatures: Some(&store),
        };
        let out = to_gemini(&req, "gemini-3-pro-high", &options).unwrap();
        let signatures: Vec<Option<&str>> = out
            .request
            .contents
            .iter()
            .filter(|c| c.role.as_deref() == Some("model"))
            .map(|c| c.parts[0].thought_signature.as_deref())
            .collect();
        assert_eq!(
            signatures,
            [
                Some("Z2VtaW5p"),
                Some("Y2FjaGVk"),
                Some(SKIP_SIGNATURE_VALIDATOR)
            ]
        );
    }

    #[test]
    fn generation_settings() {
        let req = request(json!({
            "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 50,
            "max_completion_tokens": 100,
            "temperature": 0.3,
            "top_p": 0.9,
            "seed": 7,
            "presence_penalty": 0.5,
            "stop": ["a", "", "b", "c", "d", "e", "f", "a"],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "strict": true, "schema": {
                "type": "object", "additionalProperties": false,
                "properties": {"n": {"type": ["integer", "null"]}}, "required": ["n"]}}}
        }));
        let out = translate(&req, "gemini-2.5-flash").unwrap();
        assert_eq!(out.stop_sequences, ["a", "b", "c", "d", "e", "f"]);
        let config = out.request.generation_config.unwrap();
        assert_eq!(config.max_output_tokens, Some(100));
        assert!(
            config.stop_sequences.is_empty(),
            "enforced by agm, not sent"
        );
        assert_eq!((config.seed, config.presence_penalty), (Some(7), Some(0.5)));
        assert_eq!(
            config.response_mime_type.as_deref(),
            Some("application/json")
        );
        assert_eq!(
            config.response_schema,
            Some(
                json!({"type": "object", "properties": {"n": {"type": "integer", "nullable": true}}, "required": ["n"]})
            )
        );
        assert_eq!(config.thinking_config, None);

        let json_object = request(json!({"messages": [{"role": "user", "content": "hi"}],
                                         "response_format": {"type": "json_object"}, "stop": "END"}));
        let out = translate(&json_object, "claude-sonnet-4-5").unwrap();
        assert_eq!(out.stop_sequences, ["END"]);
        let config = out.request.generation_config.unwrap();
        assert_eq!(
            config.response_mime_type.as_deref(),
            Some("application/json")
        );
        assert_eq!(config.response_schema, None);
    }

    #[test]
    fn reasoning_effort_per_family() {
        let mut req = request(
            json!({"messages": [{"role": "user", "content": "hi"}], "reasoning_effort": "medium"}),
        );
        let out = translate(&req, "gemini-3-pro-high").unwrap();
        assert!(out.thinking);
        assert_eq!(
            out.request.generation_config.unwrap().thinking_config,
            Some(ThinkingConfig {
                include_thoughts: Some(true),
                thinking_budget: None,
                thinking_level: Some("high".into())
            })
        );
        req.reasoning_effort = Some("high".into());
        req.max_completion_tokens = Some(1000);
        req.temperature = Some(0.2);
        let out = translate(&req, "claude-opus-4-5-thinking").unwrap();
        assert!(out.thinking);
        let config = out.request.generation_config.unwrap();
        assert_eq!(
            config.thinking_config.unwrap().thinking_budget,
            Some(24_576)
        );
        assert_eq!(config.max_output_tokens, Some(24_576 + 1024));
        assert_eq!(
            config.temperature, None,
            "Claude thinks at the default temperature"
        );
        req.reasoning_effort = Some("none".into());
        let out = translate(&req, "gemini-2.5-flash").unwrap();
        assert!(!out.thinking);
        assert_eq!(out.request.generation_config.unwrap().thinking_config, None);

        // Claude in an open tool loop: Chat Completions cannot send the signed
        // thinking back, so thinking is off for this turn.
        let looped = request(json!({"reasoning_effort": "low", "messages": [
            {"role": "user", "content": "go"},
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"}
        ]}));
        let out = translate(&looped, "claude-sonnet-4-5-thinking").unwrap();
        assert!(!out.thinking);
        assert_eq!(out.request.generation_config.unwrap().thinking_config, None);
    }

    #[test]
    fn images_audio_and_files() {
        let req = request(json!({"messages": [{"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": "https://e.com/cat.jpg"}},
            {"type": "input_audio", "input_audio": {"data": "SUQz", "format": "mp3"}},
            {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}}
        ]}]}));
        let out = translate(&req, "gemini-3-flash").unwrap();
        let parts = &out.request.contents[0].parts;
        assert_eq!(parts.len(), 5);
        let mimes: Vec<String> = parts[1..]
            .iter()
            .map(|p| match (&p.inline_data, &p.file_data) {
                (Some(blob), _) => blob.mime_type.clone(),
                (_, Some(file)) => file.mime_type.clone().unwrap_or_default(),
                _ => String::new(),
            })
            .collect();
        assert_eq!(
            mimes,
            ["image/png", "image/jpeg", "audio/mp3", "application/pdf"]
        );
    }

    #[test]
    fn legacy_functions() {
        let req = request(json!({
            "functions": [{"name": "f", "parameters": {"type": "object"}}],
            "function_call": {"name": "f"},
            "messages": [
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": null, "function_call": {"name": "f", "arguments": "{\"x\":1}"}},
                {"role": "function", "name": "f", "content": "42"}
            ]
        }));
        let out = translate(&req, "gemini-2.5-flash").unwrap();
        let config = out
            .request
            .tool_config
            .unwrap()
            .function_calling_config
            .unwrap();
        assert_eq!(
            (config.mode.as_str(), config.allowed_function_names),
            ("ANY", vec!["f".to_owned()])
        );
        assert_eq!(
            out.request.contents[2].parts[0].function_response,
            Some(FunctionResponse {
                id: None,
                name: "f".into(),
                response: json!({"output": "42"})
            })
        );
    }

    #[test]
    fn custom_tools_are_functions_taking_their_raw_input() {
        let req = request(json!({
            "tools": [
                {"type": "custom", "custom": {"name": "apply_patch", "description": "Edit files.",
                 "format": {"type": "grammar", "grammar": {"syntax": "lark", "definition": "start: patch\n"}}}},
                {"type": "custom", "custom": {"name": "notes", "format": {"type": "text"}}},
                {"type": "function", "function": {"name": "shell", "parameters": {"type": "object"}}}
            ],
            "tool_choice": {"type": "custom", "custom": {"name": "apply_patch"}},
            "messages": [
                {"role": "user", "content": "edit"},
                {"role": "assistant", "tool_calls": [
                    {"id": "call_p", "type": "custom", "custom": {"name": "apply_patch", "input": "*** Begin Patch"}}]},
                {"role": "tool", "tool_call_id": "call_p", "content": "applied"}
            ]
        }));
        let out = translate(&req, "gemini-2.5-pro").unwrap();
        assert_eq!(declared(&out), ["apply_patch", "notes", "shell"]);
        let declarations = &out.request.tools[0].function_declarations;
        assert!(
            declarations[0]
                .description
                .ends_with("it must follow this lark grammar:\n```\nstart: patch\n```")
        );
        assert_eq!(declarations[1].description, "", "unconstrained text");
        assert_eq!(
            calling(&out),
            ("ANY".to_owned(), vec!["apply_patch".to_owned()])
        );
        let history = serde_json::to_value(&out.request.contents).unwrap();
        assert_eq!(
            history[1]["parts"][0]["functionCall"],
            json!({"id": "call_p", "name": "apply_patch", "args": {"input": "*** Begin Patch"}})
        );
        assert_eq!(
            history[2]["parts"][0]["functionResponse"],
            json!({"id": "call_p", "name": "apply_patch", "response": {"output": "applied"}})
        );
        assert_eq!(
            custom_tool_names(&req, &out.tool_names)
                .into_iter()
                .collect::<Vec<_>>(),
            ["apply_patch", "notes"]
        );
    }

    #[test]
    fn custom_tool_errors_name_the_field() {
        assert_eq!(
            error(
                json!({"tools": [{"type": "custom"}], "messages": [{"role": "user", "content": "x"}]})
            ),
            "tools.0.custom: required for custom tools"
        );
        assert_eq!(
            error(
                json!({"tools": [{"type": "custom", "custom": {"name": ""}}],
                         "messages": [{"role": "user", "content": "x"}]})
            ),
            "tools.0.custom.name: must not be empty"
        );
        assert_eq!(
            error(
                json!({"tools": [{"type": "function", "function": {"name": "p"}},
                                   {"type": "custom", "custom": {"name": "p"}}],
                         "messages": [{"role": "user", "content": "x"}]})
            ),
            "tools.1.custom.name: a custom tool must not share its name with another tool"
        );
        assert_eq!(
            error(json!({"messages": [{"role": "user", "content": "x"},
                {"role": "assistant", "tool_calls": [{"id": "c", "type": "custom", "custom": {"name": "", "input": "x"}}]}]})),
            "messages.1.tool_calls.0.custom.name: must not be empty"
        );
        assert_eq!(
            error(json!({"messages": [{"role": "user", "content": "x"},
                {"role": "assistant", "tool_calls": [{"id": "c", "type": "function"}]}]})),
            "messages.1.tool_calls.0.function: required (or `custom`, for a custom tool call)"
        );
    }

    #[test]
    fn hosted_tools_are_refused_and_web_search_is_google_search() {
        let err = translate(
            &request(json!({"tools": [{"type": "function", "function": {"name": "f"}}, {"type": "file_search"}],
                            "messages": [{"role": "user", "content": "x"}]})),
            "gemini-3-flash",
        )
        .unwrap_err();
        assert!(matches!(err, TranslateError::Unsupported { .. }));
        assert_eq!(err.field(), "tools.1.type");
        assert!(
            err.to_string()
                .starts_with("tools.1.type: \"file_search\" tools cannot run on Google's models"),
            "{err}"
        );
        let out = translate(
            &request(json!({"tools": [{"type": "web_search_preview"}],
                            "messages": [{"role": "user", "content": "news?"}]})),
            "gemini-3-flash",
        )
        .unwrap();
        assert_eq!(out.request.tools.len(), 1);
        assert_eq!(out.request.tools[0].google_search, Some(json!({})));
        assert!(out.request.tools[0].function_declarations.is_empty());
        // Next to function tools (as Codex sends it by default), web search and image
        // generation are left out, with notes.
        let mixed = translate(
            &request(json!({"tools": [{"type": "function", "function": {"name": "f"}}, {"type": "web_search"},
                                      {"type": "image_generation"}],
                            "messages": [{"role": "user", "content": "x"}]})),
            "gemini-3-flash",
        )
        .unwrap();
        assert_eq!(mixed.request.tools.len(), 1);
        assert_eq!(mixed.request.tools[0].google_search, None);
        assert_eq!(mixed.request.tools[0].function_declarations.len(), 1);
        assert_eq!(
            mixed.notes,
            [
                "tools.2.type: \"image_generation\" tools cannot run on Google's models and were left out",
                "tools.1.type: web search was left out: Gemini takes Google Search only in a \
                 request without function or custom tools"
            ]
        );
    }

    #[test]
    fn allowed_tools_restrict_the_calls() {
        let body = |mode: &str| {
            request(json!({
                "tools": [
                    {"type": "function", "function": {"name": "a"}},
                    {"type": "function", "function": {"name": "b"}},
                    {"type": "custom", "custom": {"name": "c"}}
                ],
                "tool_choice": {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": [
                    {"type": "function", "function": {"name": "a"}},
                    {"type": "custom", "custom": {"name": "c"}}]}},
                "messages": [{"role": "user", "content": "x"}]
            }))
        };
        let out = translate(&body("required"), "gemini-3-flash").unwrap();
        assert_eq!(
            calling(&out),
            ("ANY".to_owned(), vec!["a".to_owned(), "c".to_owned()])
        );
        assert_eq!(declared(&out), ["a", "b", "c"]);
        let out = translate(&body("auto"), "gemini-3-flash").unwrap();
        assert_eq!(calling(&out), ("AUTO".to_owned(), Vec::new()));
        assert_eq!(declared(&out), ["a", "c"], "only the allowed tools");
        assert_eq!(
            translate(&body("none"), "gemini-3-flash")
                .unwrap_err()
                .to_string(),
            "tool_choice.allowed_tools.mode: must be \"auto\" or \"required\", not \"none\""
        );
    }

    #[test]
    fn the_session_follows_the_conversation() {
        let first = request(
            json!({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "fix the bug"}]}),
        );
        let later = request(json!({"messages": [
            {"role": "user", "content": [{"type": "text", "text": "fix the bug"}]},
            {"role": "assistant", "content": "done"},
            {"role": "user", "content": "thanks"}]}));
        let a = translate(&first, "gemini-3-flash").unwrap().session_id;
        assert_eq!(a, translate(&later, "gemini-3-flash").unwrap().session_id);
        let keyed = request(
            json!({"prompt_cache_key": "k1", "messages": [{"role": "user", "content": "fix the bug"}]}),
        );
        assert_ne!(a, translate(&keyed, "gemini-3-flash").unwrap().session_id);
    }
}
