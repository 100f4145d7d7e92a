//! OpenAI `ResponsesRequest` → Gemini `GenerateContentRequest`.

use std::collections::BTreeSet;

use agm_wire::gemini::{
    Content, FunctionDeclaration, GenerationConfig, Part, ThinkingConfig, ToolConfig,
};
use agm_wire::openai::responses::{
    ContentPart, CustomToolFormat, FunctionOutput, Input, InputItem, InputMessage, MessageContent,
    ResponsesRequest, SummaryText, TextFormat, Tool, ToolChoice,
};
use serde_json::Value;

use crate::common::media::{file_data_part, url_part};
use crate::common::openai_tools::{
    ToolKinds, allowed_tools_config, custom_call_args, custom_tool_declaration, custom_tool_set,
    hosted_tool, is_web_search, namespace_custom_tools, namespace_declarations, request_tools,
};
use crate::common::pipeline::{AnswerFormat, Draft, ThinkingAsked, forces_a_call, output_limit};
use crate::common::request::{
    CallNames, CallingMode, function_call_part, function_declaration, join_texts, parse_arguments,
    push_turn, tool_config, tool_result_parts,
};
use crate::common::{RequestOptions, Translated};
use crate::error::TranslateError;
use crate::session::openai_session_id;
use crate::thinking::{Effort, ModelFamily, Replay, SignaturePolicy};
use crate::tools::ToolNameMap;

pub use crate::common::openai_tools::{CUSTOM_INPUT, MAX_GRAMMAR_BYTES};

/// Translates a Responses request for `upstream_model`.
///
/// Errors name the offending field (`input.3.arguments: is not valid JSON (…)`) and
/// map to OpenAI's `invalid_request_error`.
///
/// Custom tools, OpenAI's hosted tools and `allowed_tools` follow
/// [`crate::common::openai_tools`].
pub fn to_gemini(
    req: &ResponsesRequest,
    upstream_model: &str,
    options: &RequestOptions<'_>,
) -> Result<Translated, TranslateError> {
    if req.previous_response_id.is_some() {
        return Err(TranslateError::unsupported(
            "previous_response_id",
            "agm keeps no responses between requests; send the whole conversation in input \
             (with store: false)",
        ));
    }
    let session_id = session_id(req);
    let family = ModelFamily::of(upstream_model);
    let mut tool_names = ToolNameMap::new();
    let mut notes = Vec::new();

    let (mut declarations, search) =
        declarations(&declared_tools(req), &mut tool_names, &mut notes)?;
    let tool_config = match &req.tool_choice {
        Some(choice) if !declarations.is_empty() => {
            tool_choice(choice, &mut declarations, &mut tool_names, &mut notes)?
        }
        _ => None,
    };
    let tools = request_tools(declarations, search.as_deref(), &mut notes);

    let policy = SignaturePolicy {
        family,
        options,
        session_id: &session_id,
    };
    let mut system = Vec::new();
    if let Some(instructions) = req.instructions.as_deref().filter(|i| !i.is_empty()) {
        system.push(Part::text(instructions));
    }
    let contents = history(req, &policy, &mut tool_names, &mut system, &mut notes)?;

    let thinking = thinking_config(req, family, upstream_model)?;
    // Thoughts reach the client when it asked for a summary, as OpenAI's do; Claude's
    // always, because its signed thinking must come back whole in the next turn.
    let wants_summary = req
        .reasoning
        .as_ref()
        .and_then(|r| r.summary.as_deref())
        .is_some_and(|s| s != "none");
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
        show_thoughts: wants_summary || family == ModelFamily::Claude,
        // The Responses API has no stop sequences.
        stop_sequences: Vec::new(),
        notes,
    }
    .finish())
}

/// The conversation's session id: from `prompt_cache_key` (Codex sends its
/// conversation id), else the first user message.
fn session_id(req: &ResponsesRequest) -> String {
    let first_user_text = match &req.input {
        Input::Text(text) => text.clone(),
        Input::Items(items) => items
            .iter()
            .find_map(|item| match item {
                InputItem::Message(m) if m.role == "user" => Some(message_text(&m.content)),
                _ => None,
            })
            .unwrap_or_default(),
    };
    openai_session_id(req.prompt_cache_key.as_deref(), &first_user_text)
}

fn message_text(content: &MessageContent) -> String {
    match content {
        MessageContent::Text(text) => text.clone(),
        MessageContent::Parts(parts) => join_texts(parts.iter().filter_map(|p| match p {
            ContentPart::InputText { text } | ContentPart::OutputText { text } => {
                Some(text.as_str())
            }
            _ => None,
        })),
    }
}

/// The request's tools, each with its field: those of `tools` (`tools.3`), then
/// those of `additional_tools` input items (`input.0.tools.2`), which Codex sends in
/// place of `tools` and which count the same.
fn declared_tools(req: &ResponsesRequest) -> Vec<(String, &Tool)> {
    let mut all: Vec<(String, &Tool)> = req
        .tools
        .iter()
        .enumerate()
        .map(|(i, tool)| (format!("tools.{i}"), tool))
        .collect();
    if let Input::Items(items) = &req.input {
        for (i, item) in items.iter().enumerate() {
            if let InputItem::AdditionalTools { tools, .. } = item {
                all.extend(
                    tools
                        .iter()
                        .enumerate()
                        .map(|(k, tool)| (format!("input.{i}.tools.{k}"), tool)),
                );
            }
        }
    }
    all
}

/// The function declarations of the function and custom tools, and the field of a
/// web search tool, if there is one; other hosted tools are refused or left out
/// ([`hosted_tool`]).
fn declarations<'a>(
    tools: &'a [(String, &'a Tool)],
    names: &mut ToolNameMap,
    notes: &mut Vec<String>,
) -> Result<(Vec<FunctionDeclaration>, Option<String>), TranslateError> {
    let mut declarations = Vec::new();
    let mut search = None;
    let mut kinds = ToolKinds::default();
    for (at, tool) in tools {
        let field = format!("{at}.name");
        match tool {
            Tool::Function {
                name,
                description,
                parameters,
                ..
            } => {
                if name.is_empty() {
                    return Err(TranslateError::invalid(field, "must not be empty"));
                }
                kinds.function(name, &field)?;
                declarations.push(function_declaration(
                    names,
                    name,
                    description.as_deref(),
                    parameters.as_ref(),
                ));
            }
            Tool::Custom {
                name,
                description,
                format,
            } => {
                if name.is_empty() {
                    return Err(TranslateError::invalid(field, "must not be empty"));
                }
                kinds.custom(name, &field)?;
                let grammar = match format {
                    Some(CustomToolFormat::Grammar { syntax, definition }) => {
                        Some((syntax.as_str(), definition.as_str()))
                    }
                    _ => None,
                };
                declarations.push(custom_tool_declaration(
                    names,
                    name,
                    description.as_deref(),
                    grammar,
                ));
            }
            Tool::Namespace {
                name,
                description,
                tools,
            } => namespace_declarations(
                Some(name.as_str()),
                description.as_deref(),
                tools,
                at,
                names,
                &mut declarations,
                notes,
            )?,
            Tool::Other(_) if matches!(tool.type_name(), "function" | "custom" | "namespace") => {
                return Err(TranslateError::invalid(
                    at.clone(),
                    format!(
                        "malformed {} tool (missing or mistyped fields)",
                        tool.type_name()
                    ),
                ));
            }
            Tool::Other(_) if is_web_search(tool.type_name()) => {
                search.get_or_insert_with(|| format!("{at}.type"));
            }
            Tool::Other(_) => hosted_tool(tool.type_name(), &format!("{at}.type"), notes)?,
        }
    }
    Ok((declarations, search))
}

/// The upstream names of the request's custom tools (their calls come back as
/// `custom_tool_call` items); `names` is the map of the translated request.
pub fn custom_tool_names(req: &ResponsesRequest, names: &ToolNameMap) -> BTreeSet<String> {
    let tools = declared_tools(req);
    let custom = tools.iter().filter_map(|(_, tool)| match tool {
        Tool::Custom { name, .. } => Some(name.as_str()),
        _ => None,
    });
    let mut set = custom_tool_set(custom, names);
    for (_, tool) in &tools {
        if let Tool::Namespace { name, tools, .. } = tool {
            set.extend(namespace_custom_tools(Some(name.as_str()), tools, names));
        }
    }
    set
}

/// `tool_choice` as `toolConfig`; an `allowed_tools` choice in mode `auto` keeps only
/// the allowed `declared` tools.
fn tool_choice(
    choice: &ToolChoice,
    declared: &mut Vec<FunctionDeclaration>,
    names: &mut ToolNameMap,
    notes: &mut Vec<String>,
) -> Result<Option<ToolConfig>, TranslateError> {
    let (mode, only, field) = match choice {
        ToolChoice::AllowedTools(allowed) => {
            return allowed_tools_config(
                &allowed.mode,
                &allowed.tools,
                names,
                declared,
                "tool_choice",
            )
            .map(Some);
        }
        ToolChoice::Mode(text) => {
            let mode = match text.as_str() {
                "auto" => CallingMode::Auto,
                "none" => CallingMode::None,
                "required" => CallingMode::Any,
                other => {
                    return Err(TranslateError::invalid(
                        "tool_choice",
                        format!(
                            "must be \"none\", \"auto\", \"required\" or name a function, not \"{other}\""
                        ),
                    ));
                }
            };
            (mode, None, "tool_choice")
        }
        ToolChoice::Function(function)
            if matches!(function.kind.as_str(), "function" | "custom") =>
        {
            (
                CallingMode::Any,
                Some(function.name.as_str()),
                "tool_choice.name",
            )
        }
        ToolChoice::Function(_) | ToolChoice::Other(_) => {
            let kind = match choice {
                ToolChoice::Function(f) => f.kind.clone(),
                ToolChoice::Other(v) => v
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_owned(),
                ToolChoice::Mode(_) | ToolChoice::AllowedTools(_) => String::new(),
            };
            notes.push(format!(
                "tool_choice: \"{kind}\" is not supported; the model chooses its tools"
            ));
            return Ok(None);
        }
    };
    tool_config(mode, only, names, declared, field).map(Some)
}

/// Item types a Responses client may send that mean nothing upstream; they are left
/// out with a note.
const KNOWN_ITEMS: [&str; 6] = [
    "message",
    "function_call",
    "function_call_output",
    "custom_tool_call",
    "custom_tool_call_output",
    "reasoning",
];

/// The contents of the conversation; system and developer messages go to `system`.
fn history(
    req: &ResponsesRequest,
    policy: &SignaturePolicy<'_>,
    names: &mut ToolNameMap,
    system: &mut Vec<Part>,
    notes: &mut Vec<String>,
) -> Result<Vec<Content>, TranslateError> {
    let items = match &req.input {
        Input::Text(text) if text.is_empty() => {
            return Err(TranslateError::invalid("input", "must not be empty"));
        }
        Input::Text(text) => return Ok(vec![Content::new("user", vec![Part::text(text)])]),
        Input::Items(items) => items,
    };
    let mut contents: Vec<Content> = Vec::new();
    let mut calls = CallNames::default();
    // A Gemini signature of a reasoning item, waiting for the next function call of
    // the same model turn.
    let mut pending_signature: Option<String> = None;
    for (i, item) in items.iter().enumerate() {
        let field = format!("input.{i}");
        match item {
            InputItem::Message(message) => match message.role.as_str() {
                "system" | "developer" => {
                    let text = text_only(&message.content, &field)?;
                    if !text.is_empty() {
                        system.push(Part::text(text));
                    }
                }
                "user" => {
                    let parts = user_parts(message, &field)?;
                    if parts.is_empty() {
                        return Err(TranslateError::invalid(
                            format!("{field}.content"),
                            "must not be empty",
                        ));
                    }
                    pending_signature = None;
                    push_turn(&mut contents, "user", parts);
                }
                "assistant" => {
                    let parts = assistant_parts(&message.content, &field)?;
                    push_turn(&mut contents, "model", parts);
                }
                _ => {
                    return Err(TranslateError::invalid(
                        format!("{field}.role"),
                        "must be \"user\", \"assistant\", \"system\" or \"developer\"",
                    ));
                }
            },
            InputItem::Reasoning {
                summary,
                content,
                encrypted_content,
                ..
            } => {
                let text = reasoning_text(summary, content.as_deref());
                match policy.replay(encrypted_content.as_deref().unwrap_or_default()) {
                    // A signature is only good with the exact text it signed.
                    Replay::Thought(signature) if !text.is_empty() => push_turn(
                        &mut contents,
                        "model",
                        vec![Part {
                            text: Some(text),
                            thought: Some(true),
                            thought_signature: Some(signature),
                            ..Part::default()
                        }],
                    ),
                    Replay::Thought(_) => {}
                    Replay::Text => push_turn(&mut contents, "model", text_parts(text)),
                    Replay::Drop(signature) => {
                        if signature.is_some() {
                            pending_signature = signature;
                        }
                    }
                }
            }
            InputItem::FunctionCall {
                call_id,
                name,
                namespace,
                arguments,
                ..
            }
            | InputItem::CustomToolCall {
                call_id,
                name,
                namespace,
                input: arguments,
                ..
            } => {
                if name.is_empty() {
                    return Err(TranslateError::invalid(
                        format!("{field}.name"),
                        "must not be empty",
                    ));
                }
                let args = match item {
                    InputItem::CustomToolCall { .. } => custom_call_args(arguments),
                    _ => parse_arguments(arguments, &format!("{field}.arguments"))?,
                };
                // A namespaced tool's call goes up under the name its declaration had.
                let upstream = match namespace.as_deref().filter(|n| !n.is_empty()) {
                    Some(namespace) => names.to_upstream_namespaced(namespace, name),
                    None => names.to_upstream(name),
                };
                calls.record_upstream(call_id, &upstream);
                let signature = policy
                    .cached_tool_signature(call_id)
                    .or_else(|| pending_signature.take());
                push_turn(
                    &mut contents,
                    "model",
                    vec![function_call_part(Some(call_id), upstream, args, signature)],
                );
            }
            InputItem::FunctionCallOutput {
                call_id, output, ..
            }
            | InputItem::CustomToolCallOutput {
                call_id, output, ..
            } => {
                let (text, media) = output_parts(output, &format!("{field}.output"))?;
                let mut parts = Vec::new();
                tool_result_parts(
                    call_id,
                    calls.upstream_name(call_id, names),
                    &text,
                    false,
                    media,
                    &mut parts,
                );
                pending_signature = None;
                push_turn(&mut contents, "user", parts);
            }
            // Its tools were declared with the request's own (`declared_tools`).
            InputItem::AdditionalTools { .. } => {}
            InputItem::Other(_) => {
                let kind = item.type_name();
                if kind == "item_reference" {
                    return Err(TranslateError::unsupported(
                        field,
                        "item references need responses stored by OpenAI; send the items themselves",
                    ));
                }
                if KNOWN_ITEMS.contains(&kind) {
                    return Err(TranslateError::invalid(
                        field,
                        format!("malformed \"{kind}\" item (missing or mistyped fields)"),
                    ));
                }
                notes.push(format!(
                    "{field}: \"{kind}\" items have no upstream equivalent and were left out"
                ));
            }
        }
    }
    if contents.is_empty() {
        return Err(TranslateError::invalid(
            "input",
            "no user or assistant item has content that can be sent",
        ));
    }
    Ok(contents)
}

/// The thought text of a reasoning item: its summary parts (agm sends the whole
/// thought as one), or its `reasoning_text` content when it has no summary.
fn reasoning_text(summary: &[SummaryText], content: Option<&[Value]>) -> String {
    let summary: Vec<&str> = summary.iter().map(|s| s.text.as_str()).collect();
    if summary.iter().any(|s| !s.is_empty()) {
        return summary.join("\n\n");
    }
    let texts = content
        .unwrap_or_default()
        .iter()
        .filter_map(|c| c.get("text").and_then(Value::as_str));
    join_texts(texts)
}

fn text_parts(text: String) -> Vec<Part> {
    if text.is_empty() {
        Vec::new()
    } else {
        vec![Part::text(text)]
    }
}

/// The text of a system or developer message.
fn text_only(content: &MessageContent, field: &str) -> Result<String, TranslateError> {
    match content {
        MessageContent::Text(text) => Ok(text.clone()),
        MessageContent::Parts(parts) => {
            let mut texts = Vec::new();
            for (k, part) in parts.iter().enumerate() {
                match part {
                    ContentPart::InputText { text } | ContentPart::OutputText { text } => {
                        texts.push(text.as_str());
                    }
                    other => {
                        return Err(TranslateError::invalid(
                            format!("{field}.content.{k}"),
                            format!(
                                "system and developer messages take text only, not \"{}\"",
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

/// A user message's content as parts.
fn user_parts(message: &InputMessage, field: &str) -> Result<Vec<Part>, TranslateError> {
    let mut parts = Vec::new();
    let content = match &message.content {
        MessageContent::Text(text) => return Ok(text_parts(text.clone())),
        MessageContent::Parts(content) => content,
    };
    for (k, part) in content.iter().enumerate() {
        let field = format!("{field}.content.{k}");
        if let Some(part) = content_part(part, &field)? {
            parts.push(part);
        }
    }
    Ok(parts)
}

/// An earlier assistant message as model parts.
fn assistant_parts(content: &MessageContent, field: &str) -> Result<Vec<Part>, TranslateError> {
    let content = match content {
        MessageContent::Text(text) => return Ok(text_parts(text.clone())),
        MessageContent::Parts(content) => content,
    };
    let mut parts = Vec::new();
    for (k, part) in content.iter().enumerate() {
        match part {
            ContentPart::OutputText { text }
            | ContentPart::InputText { text }
            | ContentPart::Refusal { refusal: text } => parts.extend(text_parts(text.clone())),
            other => {
                return Err(TranslateError::invalid(
                    format!("{field}.content.{k}"),
                    format!(
                        "assistant messages take output_text and refusal parts, not \"{}\"",
                        other.type_name()
                    ),
                ));
            }
        }
    }
    Ok(parts)
}

const KNOWN_PARTS: [&str; 5] = [
    "input_text",
    "output_text",
    "input_image",
    "input_file",
    "refusal",
];

/// One content part of a user message or a function's output; `None` for empty
/// text.
fn content_part(part: &ContentPart, field: &str) -> Result<Option<Part>, TranslateError> {
    match part {
        ContentPart::InputText { text }
        | ContentPart::OutputText { text }
        | ContentPart::Refusal { refusal: text } => {
            Ok((!text.is_empty()).then(|| Part::text(text.clone())))
        }
        ContentPart::InputImage {
            image_url, file_id, ..
        } => match (image_url, file_id) {
            (Some(url), _) => url_part(url, "image/jpeg", &format!("{field}.image_url")).map(Some),
            (None, Some(_)) => Err(TranslateError::unsupported(
                format!("{field}.file_id"),
                "files uploaded to OpenAI are not available upstream; send image_url",
            )),
            (None, None) => Err(TranslateError::invalid(
                format!("{field}.image_url"),
                "required (an http(s) or data URL)",
            )),
        },
        ContentPart::InputFile {
            file_data,
            file_url,
            filename,
            file_id,
        } => match (file_data, file_url, file_id) {
            (Some(data), _, _) => file_data_part(
                data,
                filename.as_deref(),
                "application/pdf",
                &format!("{field}.file_data"),
            )
            .map(Some),
            (None, Some(url), _) => {
                url_part(url, "application/pdf", &format!("{field}.file_url")).map(Some)
            }
            (None, None, Some(_)) => Err(TranslateError::unsupported(
                format!("{field}.file_id"),
                "files uploaded to OpenAI are not available upstream; send file_data",
            )),
            (None, None, None) => Err(TranslateError::invalid(
                format!("{field}.file_data"),
                "required (a data URL or base64)",
            )),
        },
        ContentPart::Other(_) => {
            let kind = part.type_name();
            let message = if KNOWN_PARTS.contains(&kind) {
                format!("malformed \"{kind}\" part (missing or mistyped fields)")
            } else {
                format!("unknown part type \"{kind}\"")
            };
            Err(TranslateError::invalid(field, message))
        }
    }
}

/// A function's output: its text, and its images and files as media parts.
fn output_parts(
    output: &FunctionOutput,
    field: &str,
) -> Result<(String, Vec<Part>), TranslateError> {
    let parts = match output {
        FunctionOutput::Text(text) => return Ok((text.clone(), Vec::new())),
        FunctionOutput::Parts(parts) => parts,
        FunctionOutput::Other(value) => {
            let text = match value.get("content") {
                Some(Value::String(text)) => text.clone(),
                _ => value.to_string(),
            };
            return Ok((text, Vec::new()));
        }
    };
    let mut texts = Vec::new();
    let mut media = Vec::new();
    for (k, part) in parts.iter().enumerate() {
        if let Some(part) = content_part(part, &format!("{field}.{k}"))? {
            match part.text {
                Some(text) => texts.push(text),
                None => media.push(part),
            }
        }
    }
    Ok((join_texts(texts.iter().map(String::as_str)), media))
}

/// The thinking configuration `reasoning` asks for, and its budget.
fn thinking_config(
    req: &ResponsesRequest,
    family: ModelFamily,
    upstream_model: &str,
) -> Result<Option<ThinkingAsked>, TranslateError> {
    let Some(reasoning) = &req.reasoning else {
        return Ok(None);
    };
    match reasoning.effort.as_deref() {
        Some(text) => {
            let effort = Effort::parse(text).ok_or_else(|| {
                TranslateError::invalid(
                    "reasoning.effort",
                    format!("must be {}, not \"{text}\"", Effort::ACCEPTED),
                )
            })?;
            Ok(effort.thinking_config(family, upstream_model))
        }
        // Reasoning without an effort: Gemini's own (dynamic) budget; the others need
        // a budget.
        None if family == ModelFamily::Gemini => Ok(Some((
            ThinkingConfig {
                include_thoughts: Some(true),
                ..ThinkingConfig::default()
            },
            None,
        ))),
        None => Ok(Effort::Medium.thinking_config(family, upstream_model)),
    }
}

/// Sampling, the output limit and the text format.
fn generation_config(req: &ResponsesRequest) -> Result<GenerationConfig, TranslateError> {
    let mut config = GenerationConfig {
        temperature: req.temperature,
        top_p: req.top_p,
        max_output_tokens: output_limit("max_output_tokens", req.max_output_tokens)?,
        ..GenerationConfig::default()
    };
    let format = match req.text.as_ref().and_then(|t| t.format.as_ref()) {
        None | Some(TextFormat::Text) => AnswerFormat::Text,
        Some(TextFormat::JsonObject) => AnswerFormat::JsonObject,
        Some(TextFormat::JsonSchema { schema, .. }) => AnswerFormat::JsonSchema(schema.as_ref()),
        Some(TextFormat::Other(value)) => AnswerFormat::Other(value),
    };
    format.apply(&mut config, "text.format.type")?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::common::request::testing::{calling, declared};
    use crate::thinking::{SKIP_SIGNATURE_VALIDATOR, SignatureStore};
    use agm_wire::gemini::FunctionResponse;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    fn request(body: Value) -> ResponsesRequest {
        let mut body = body;
        if body.get("model").is_none() {
            body["model"] = json!("gpt-5-codex");
        }
        serde_json::from_value(body).unwrap()
    }

    fn translate(req: &ResponsesRequest, model: &str) -> Result<Translated, TranslateError> {
        to_gemini(req, model, &RequestOptions::default())
    }

    fn error(body: Value) -> String {
        translate(&request(body), "gemini-3-pro-high")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn errors_name_the_field() {
        assert_eq!(
            error(json!({"input": "hi", "previous_response_id": "resp_1"})),
            "previous_response_id: agm keeps no responses between requests; send the whole conversation in input (with store: false) (not supported by agm)"
        );
        assert_eq!(
            error(
                json!({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{x"}]})
            ),
            "input.0.arguments: is not valid JSON (key must be a string at line 1 column 2)"
        );
        assert_eq!(
            error(json!({"input": [{"type": "function_call", "name": "f"}]})),
            "input.0: malformed \"function_call\" item (missing or mistyped fields)"
        );
        assert_eq!(
            error(json!({"input": [{"type": "item_reference", "id": "msg_1"}]})),
            "input.0: item references need responses stored by OpenAI; send the items themselves (not supported by agm)"
        );
        assert_eq!(
            error(json!({"input": [{"role": "tool", "content": "x"}]})),
            "input.0.role: must be \"user\", \"assistant\", \"system\" or \"developer\""
        );
        assert_eq!(
            error(json!({"input": [{"role": "user", "content": [{"type": "input_video"}]}]})),
            "input.0.content.0: unknown part type \"input_video\""
        );
        assert_eq!(
            error(json!({"input": "hi", "reasoning": {"effort": "lots"}})),
            "reasoning.effort: must be none, minimal, low, medium, high or xhigh, not \"lots\""
        );
        assert_eq!(
            error(json!({"input": "hi", "text": {"format": {"type": "yaml"}}})),
            "text.format.type: must be \"text\", \"json_object\" or \"json_schema\", not \"yaml\""
        );
        assert_eq!(error(json!({"input": ""})), "input: must not be empty");
        assert_eq!(
            error(json!({"input": [{"role": "developer", "content": "only rules"}]})),
            "input: no user or assistant item has content that can be sent"
        );
    }

    #[test]
    fn a_string_input_is_one_user_message() {
        let out = translate(
            &request(json!({"input": "hello", "instructions": "be kind", "max_output_tokens": 50})),
            "gemini-3-flash",
        )
        .unwrap();
        assert_eq!(
            out.request.contents,
            vec![Content::new("user", vec![Part::text("hello")])]
        );
        assert_eq!(
            out.request.system_instruction,
            Some(Content::new("user", vec![Part::text("be kind")]))
        );
        assert_eq!(
            out.request.generation_config.unwrap().max_output_tokens,
            Some(50)
        );
    }

    struct Store;
    impl SignatureStore for Store {
        fn family_of(&self, _session: &str, signature: &str) -> Option<ModelFamily> {
            match signature {
                "Z2VtaW5p" => Some(ModelFamily::Gemini),
                "Y2xhdWRl" => Some(ModelFamily::Claude),
                _ => None,
            }
        }
        fn for_tool_use(&self, _session: &str, _id: &str) -> Option<String> {
            None
        }
    }

    fn tool_round(signature: &str) -> ResponsesRequest {
        request(json!({
            "reasoning": {"effort": "medium", "summary": "auto"},
            "tools": [{"type": "function", "name": "shell", "parameters": {"type": "object"}}],
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "list files"}]},
                {"type": "reasoning", "summary": [{"type": "summary_text", "text": "I should run ls."}],
                 "encrypted_content": signature},
                {"type": "function_call", "call_id": "call_1", "name": "shell", "arguments": "{\"command\":[\"ls\"]}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"}
            ]
        }))
    }

    #[test]
    fn reasoning_items_carry_signatures_to_the_right_family() {
        let store = Store;
        let options = RequestOptions {
            thinking_as_text: false,
            signatures: Some(&store),
        };
        // Gemini: the thought is left out, its signature goes on the call.
        let out = to_gemini(&tool_round("Z2VtaW5p"), "gemini-3-pro-high", &options).unwrap();
        let model = &out.request.contents[1].parts;
        assert_eq!(model.len(), 1);
        assert_eq!(model[0].thought_signature.as_deref(), Some("Z2VtaW5p"));
        assert!(out.thinking);
        // A Claude signature on Gemini: the documented stand-in.
        let out = to_gemini(&tool_round("Y2xhdWRl"), "gemini-3-pro-high", &options).unwrap();
        assert_eq!(
            out.request.contents[1].parts[0]
                .thought_signature
                .as_deref(),
            Some(SKIP_SIGNATURE_VALIDATOR)
        );
        // Claude: its own signed thinking is replayed, so thinking stays on.
        let out = to_gemini(
            &tool_round("Y2xhdWRl"),
            "claude-sonnet-4-5-thinking",
            &options,
        )
        .unwrap();
        let first = &out.request.contents[1].parts[0];
        assert!(first.is_thought());
        assert_eq!(first.text.as_deref(), Some("I should run ls."));
        assert_eq!(first.thought_signature.as_deref(), Some("Y2xhdWRl"));
        assert!(out.thinking);
        // A Gemini signature on Claude: plain text, and no thinking this turn.
        let out = to_gemini(
            &tool_round("Z2VtaW5p"),
            "claude-sonnet-4-5-thinking",
            &options,
        )
        .unwrap();
        assert_eq!(
            out.request.contents[1].parts[0],
            Part::text("I should run ls.")
        );
        assert!(!out.thinking);
        assert_eq!(out.request.generation_config.unwrap().thinking_config, None);
        let result = &out.request.contents[2].parts[0];
        assert_eq!(
            result.function_response,
            Some(FunctionResponse {
                id: Some("call_1".into()),
                name: "shell".into(),
                response: json!({"output": "a.txt"})
            })
        );
    }

    #[test]
    fn hosted_tools_are_refused_and_web_search_is_google_search() {
        for kind in [
            "local_shell",
            "code_interpreter",
            "computer_use_preview",
            "file_search",
            "mcp",
        ] {
            let err = translate(
                &request(json!({"input": "hi", "tools": [{"type": "function", "name": "f"}, {"type": kind}]})),
                "gemini-3-pro-high",
            )
            .unwrap_err();
            assert!(matches!(err, TranslateError::Unsupported { .. }));
            assert_eq!(
                err.to_string(),
                format!(
                    "tools.1.type: \"{kind}\" tools cannot run on Google's models: agm takes \
                     function, custom and namespace tools, and web_search (as Google Search), \
                     but not OpenAI's hosted tools; declare it as a function tool your client \
                     runs, or \
                     leave it out (not supported by agm)"
                )
            );
        }
        let out = translate(
            &request(
                json!({"input": "news?", "tools": [{"type": "web_search"}], "tool_choice": "auto"}),
            ),
            "gemini-3-pro-high",
        )
        .unwrap();
        assert_eq!(out.request.tools.len(), 1);
        assert_eq!(out.request.tools[0].google_search, Some(json!({})));
        assert_eq!(out.request.tool_config, None);
        let mixed = translate(
            &request(json!({"input": "x", "tools": [{"type": "web_search_preview"}, {"type": "custom", "name": "p"},
                                                    {"type": "image_generation", "output_format": "png"}]})),
            "gemini-3-pro-high",
        )
        .unwrap();
        assert_eq!(mixed.request.tools.len(), 1);
        assert_eq!(mixed.request.tools[0].function_declarations[0].name, "p");
        assert_eq!(mixed.notes.len(), 2, "{:?}", mixed.notes);
        assert!(mixed.notes[1].starts_with("tools.0.type: web search was left out"));
    }

    #[test]
    fn allowed_tools_restrict_the_calls() {
        let req = request(json!({
            "input": "x",
            "tools": [{"type": "function", "name": "a"}, {"type": "custom", "name": "b"},
                      {"type": "function", "name": "c"}],
            "tool_choice": {"type": "allowed_tools", "mode": "required",
                            "tools": [{"type": "custom", "name": "b"}]}
        }));
        let out = translate(&req, "gemini-3-pro-high").unwrap();
        assert_eq!(calling(&out), ("ANY".to_owned(), vec!["b".to_owned()]));
        let mut auto = req.clone();
        auto.tool_choice = Some(
            serde_json::from_value(json!({"type": "allowed_tools", "mode": "auto",
            "tools": [{"type": "function", "name": "c"}, {"type": "function", "name": "a"}]}))
            .unwrap(),
        );
        let out = translate(&auto, "gemini-3-pro-high").unwrap();
        assert_eq!(declared(&out), ["a", "c"]);
        assert_eq!(calling(&out), ("AUTO".to_owned(), Vec::new()));
        auto.tool_choice = Some(
            serde_json::from_value(json!({"type": "allowed_tools", "mode": "auto",
            "tools": [{"type": "function", "name": "zz"}]}))
            .unwrap(),
        );
        assert_eq!(
            translate(&auto, "gemini-3-pro-high")
                .unwrap_err()
                .to_string(),
            "tool_choice.tools.0: no tool named \"zz\" in tools"
        );
    }

    #[test]
    fn unsupported_tool_choices_and_unknown_items_are_left_out_with_notes() {
        let req = request(json!({
            "tools": [{"type": "function", "name": "f"}],
            "tool_choice": {"type": "web_search"},
            "input": [
                {"role": "user", "content": "go"},
                {"type": "local_shell_call", "call_id": "x", "action": {}},
                {"type": "function_call_output", "call_id": "old", "output": {"content": "legacy", "success": true}},
                {"type": "function_call_output", "call_id": "unknown", "output": [
                    {"type": "input_text", "text": "see"},
                    {"type": "input_image", "image_url": "data:image/png;base64,iVBO"}]}
            ]
        }));
        let out = translate(&req, "gemini-2.5-pro").unwrap();
        assert_eq!(
            out.notes,
            [
                "tool_choice: \"web_search\" is not supported; the model chooses its tools",
                "input.1: \"local_shell_call\" items have no upstream equivalent and were left out"
            ]
        );
        assert_eq!(out.request.tool_config, None);
        let user = &out.request.contents[0].parts;
        assert_eq!(
            user[1].text.as_deref(),
            Some("[Result of tool call old]\nlegacy")
        );
        assert_eq!(
            user[2].text.as_deref(),
            Some("[Result of tool call unknown]\nsee")
        );
        assert_eq!(user[3].inline_data.as_ref().unwrap().mime_type, "image/png");
    }

    #[test]
    fn reasoning_and_text_settings() {
        let req = request(json!({
            "input": "hi",
            "reasoning": {"effort": "low"},
            "temperature": 0.4,
            "text": {"format": {"type": "json_schema", "name": "out", "strict": true,
                                "schema": {"type": "object", "properties": {"a": {"const": 1}}}}}
        }));
        let out = translate(&req, "gemini-2.5-flash").unwrap();
        assert!(!out.thinking, "no summary asked for: thoughts stay hidden");
        let config = out.request.generation_config.unwrap();
        assert_eq!(config.thinking_config.unwrap().thinking_budget, Some(1024));
        assert_eq!(
            config.response_mime_type.as_deref(),
            Some("application/json")
        );
        assert_eq!(
            config.response_schema,
            Some(json!({"type": "object", "properties": {"a": {"type": "string", "enum": ["1"]}}}))
        );
        let summary_only = request(json!({"input": "hi", "reasoning": {"summary": "auto"}}));
        let out = translate(&summary_only, "gemini-3-pro-high").unwrap();
        assert!(out.thinking);
        assert_eq!(
            out.request.generation_config.unwrap().thinking_config,
            Some(ThinkingConfig {
                include_thoughts: Some(true),
                ..ThinkingConfig::default()
            })
        );
    }

    #[test]
    fn custom_tools_are_functions_taking_their_raw_input() {
        // The cut falls inside the `é`, so it moves back before it.
        let long = format!("{}étail", "a".repeat(MAX_GRAMMAR_BYTES - 1));
        let req = request(json!({
            "input": [
                {"role": "user", "content": "edit"},
                {"type": "custom_tool_call", "call_id": "c1", "name": "apply_patch", "input": "*** Begin Patch"},
                {"type": "custom_tool_call_output", "call_id": "c1", "output": [{"type": "input_text", "text": "ok"}]},
                {"type": "custom_tool_call_output", "call_id": "unknown", "output": "lost"}
            ],
            "tools": [
                {"type": "custom", "name": "apply_patch", "description": "Edit files.",
                 "format": {"type": "grammar", "syntax": "regex", "definition": "^\\*\\*\\*.*$\n"}},
                {"type": "custom", "name": "bare"},
                {"type": "custom", "name": "big", "format": {"type": "grammar", "syntax": "lark", "definition": long}}
            ],
            "tool_choice": {"type": "custom", "name": "apply_patch"}
        }));
        let out = translate(&req, "gemini-2.5-pro").unwrap();
        let declarations = &out.request.tools[0].function_declarations;
        assert_eq!(
            declarations[0].description,
            "Edit files.\n\nPass the tool's whole raw input (not JSON) as `input`; it must follow \
             this regex grammar:\n```\n^\\*\\*\\*.*$\n```"
        );
        assert_eq!(declarations[1].description, "");
        assert_eq!(
            declarations[1].parameters,
            Some(json!({"type": "object", "required": ["input"],
                        "properties": {"input": {"type": "string", "description": "the raw input for the tool"}}}))
        );
        let big = &declarations[2].description;
        assert!(big.len() < MAX_GRAMMAR_BYTES + 200, "{}", big.len());
        assert!(
            big.ends_with("a\n… [agm: 6 more bytes of the grammar were cut]\n```"),
            "{}",
            &big[big.len() - 80..]
        );
        let config = out
            .request
            .tool_config
            .unwrap()
            .function_calling_config
            .unwrap();
        assert_eq!(
            (config.mode.as_str(), config.allowed_function_names),
            ("ANY", vec!["apply_patch".to_owned()])
        );
        assert_eq!(
            out.request.contents[1].parts[0]
                .function_call
                .as_ref()
                .unwrap()
                .args,
            json!({"input": "*** Begin Patch"})
        );
        let results = &out.request.contents[2].parts;
        assert_eq!(
            results[0].function_response,
            Some(FunctionResponse {
                id: Some("c1".into()),
                name: "apply_patch".into(),
                response: json!({"output": "ok"})
            })
        );
        assert_eq!(
            results[1].text.as_deref(),
            Some("[Result of tool call unknown]\nlost")
        );
        assert_eq!(
            custom_tool_names(&req, &out.tool_names)
                .into_iter()
                .collect::<Vec<_>>(),
            ["apply_patch", "bare", "big"]
        );
        assert!(out.notes.is_empty(), "{:?}", out.notes);
    }

    #[test]
    fn malformed_and_clashing_custom_tools_are_errors() {
        assert_eq!(
            error(json!({"input": "hi", "tools": [{"type": "custom", "description": "no name"}]})),
            "tools.0: malformed custom tool (missing or mistyped fields)"
        );
        assert_eq!(
            error(json!({"input": "hi", "tools": [{"type": "custom", "name": ""}]})),
            "tools.0.name: must not be empty"
        );
        assert_eq!(
            error(json!({"input": "hi", "tools": [
                {"type": "function", "name": "apply_patch"},
                {"type": "custom", "name": "apply_patch"}]})),
            "tools.1.name: a custom tool must not share its name with another tool"
        );
        assert_eq!(
            error(json!({"input": "hi", "tools": [
                {"type": "custom", "name": "apply_patch"},
                {"type": "function", "name": "apply_patch"}]})),
            "tools.1.name: a custom tool must not share its name with another tool"
        );
        assert_eq!(
            error(json!({"input": [{"type": "custom_tool_call", "call_id": "c", "input": "x"}]})),
            "input.0: malformed \"custom_tool_call\" item (missing or mistyped fields)"
        );
        assert_eq!(
            error(
                json!({"input": [{"type": "custom_tool_call", "call_id": "c", "name": "", "input": "x"}]})
            ),
            "input.0.name: must not be empty"
        );
        assert_eq!(
            error(json!({"input": [{"type": "custom_tool_call_output", "output": "x"}]})),
            "input.0: malformed \"custom_tool_call_output\" item (missing or mistyped fields)"
        );
    }

    #[test]
    fn the_session_follows_the_prompt_cache_key() {
        let a = translate(
            &request(json!({"input": "x", "prompt_cache_key": "conv-1"})),
            "gemini-3-flash",
        )
        .unwrap();
        let b = translate(
            &request(json!({"input": "y", "prompt_cache_key": "conv-1"})),
            "gemini-3-flash",
        )
        .unwrap();
        let c = translate(&request(json!({"input": "x"})), "gemini-3-flash").unwrap();
        assert_eq!(a.session_id, b.session_id);
        assert_ne!(a.session_id, c.session_id);
    }
}
