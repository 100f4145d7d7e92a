//! Building a Gemini request: what every client API's translation shares.

use std::collections::HashMap;

use agm_wire::gemini::{
    Content, FunctionCall, FunctionCallingConfig, FunctionDeclaration, FunctionResponse,
    GenerateContentRequest, Part, Tool, ToolConfig,
};
use serde_json::{Map, Value, json};

use crate::error::TranslateError;
use crate::schema::clean_parameters;
use crate::thinking::{SignatureStore, ThinkingOff};
use crate::tools::ToolNameMap;

/// Choices the caller makes per request.
#[derive(Clone, Copy, Default)]
pub struct RequestOptions<'a> {
    /// Send every thinking block of the history as plain text, with no signature (the
    /// retry after an upstream signature error).
    pub thinking_as_text: bool,
    /// The signature cache. Without one, signatures the client sends back are
    /// trusted; with one, only those it knows were made by the upstream model's
    /// family are replayed.
    pub signatures: Option<&'a dyn SignatureStore>,
}

impl std::fmt::Debug for RequestOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RequestOptions")
            .field("thinking_as_text", &self.thinking_as_text)
            .field("signatures", &self.signatures.is_some())
            .finish()
    }
}

/// A translated request and what the answer's translation needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct Translated {
    /// The Gemini request, `sessionId` set, ready for the Cloud Code envelope.
    pub request: GenerateContentRequest,
    /// The tool names changed for the upstream, to be reversed in the answer.
    pub tool_names: ToolNameMap,
    /// The conversation's session id (also in `request.session_id`).
    pub session_id: String,
    /// Whether thinking is on for this request (thoughts go to the client only then).
    pub thinking: bool,
    /// Set when the request goes without the thinking the client asked for, and why
    /// (the server says so in `x-agm-thinking: off`; a note says so in
    /// [`Translated::notes`] too).
    pub thinking_off: Option<ThinkingOff>,
    /// The client's stop sequences. They are not sent upstream: the answer's
    /// transcoder enforces them (see [`crate::common::stop`]).
    pub stop_sequences: Vec<String>,
    /// Parts of the request that were left out on purpose (tools Google's models
    /// cannot run, history items with no upstream equivalent), one sentence each, for
    /// the server's log.
    pub notes: Vec<String>,
}

/// Appends `parts` as a turn of `role`, merged into the previous turn when it has the
/// same role (Gemini wants roles to alternate).
pub(crate) fn push_turn(contents: &mut Vec<Content>, role: &str, mut parts: Vec<Part>) {
    if parts.is_empty() {
        return;
    }
    match contents.last_mut() {
        Some(previous) if previous.role.as_deref() == Some(role) => {
            previous.parts.append(&mut parts);
        }
        _ => contents.push(Content::new(role, parts)),
    }
}

/// The `systemInstruction` made of `parts` (empty texts dropped), if any are left.
pub(crate) fn system_instruction(parts: Vec<Part>) -> Option<Content> {
    let parts: Vec<Part> = parts
        .into_iter()
        .filter(|p| p.text.as_deref().is_none_or(|t| !t.is_empty()))
        .collect();
    (!parts.is_empty()).then(|| Content::new("user", parts))
}

/// A function declaration: the name made safe for Gemini (and registered in
/// `names`), the schema cleaned.
pub(crate) fn function_declaration(
    names: &mut ToolNameMap,
    name: &str,
    description: Option<&str>,
    schema: Option<&Value>,
) -> FunctionDeclaration {
    FunctionDeclaration {
        name: names.to_upstream(name),
        description: description.unwrap_or_default().to_owned(),
        parameters: Some(clean_parameters(schema.unwrap_or(&Value::Null))),
    }
}

/// The `tools` of a request with these declarations (none when there are none).
pub(crate) fn function_tools(declarations: Vec<FunctionDeclaration>) -> Vec<Tool> {
    if declarations.is_empty() {
        return Vec::new();
    }
    vec![Tool {
        function_declarations: declarations,
        ..Tool::default()
    }]
}

/// How the model must use the tools.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallingMode {
    /// The model chooses (`auto`).
    Auto,
    /// The model must call a tool (`required`, `any`).
    Any,
    /// The model must not call tools (`none`).
    None,
}

/// `toolConfig` for a mode, optionally restricted to one function. A named function
/// must be one of the declared ones: `field` names the client's field otherwise.
pub(crate) fn tool_config(
    mode: CallingMode,
    only: Option<&str>,
    names: &mut ToolNameMap,
    declared: &[FunctionDeclaration],
    field: &str,
) -> Result<ToolConfig, TranslateError> {
    let mut allowed = Vec::new();
    if let Some(name) = only {
        let upstream = names.to_upstream(name);
        if !declared.iter().any(|d| d.name == upstream) {
            return Err(TranslateError::invalid(
                field,
                format!("no tool named \"{name}\" in tools"),
            ));
        }
        allowed.push(upstream);
    }
    let mode = match mode {
        CallingMode::Auto => "AUTO",
        CallingMode::Any => "ANY",
        CallingMode::None => "NONE",
    };
    Ok(ToolConfig {
        function_calling_config: Some(FunctionCallingConfig {
            mode: mode.to_owned(),
            allowed_function_names: allowed,
        }),
    })
}

/// A call's arguments as Gemini `args`: a JSON object; other JSON values are wrapped
/// as `{"value": ...}`, and nothing at all is `{}`.
pub(crate) fn call_args(input: &Value) -> Value {
    match input {
        Value::Object(_) => input.clone(),
        Value::Null => Value::Object(Map::new()),
        other => json!({ "value": other }),
    }
}

/// Parses the JSON text of a call's `arguments` (OpenAI sends a string); an empty
/// string is `{}`. Invalid JSON is an error naming `field`.
pub(crate) fn parse_arguments(arguments: &str, field: &str) -> Result<Value, TranslateError> {
    if arguments.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_str::<Value>(arguments)
        .map(|value| call_args(&value))
        .map_err(|e| TranslateError::invalid(field, format!("is not valid JSON ({e})")))
}

/// A `functionCall` part.
pub(crate) fn function_call_part(
    id: Option<&str>,
    upstream_name: String,
    args: Value,
    signature: Option<String>,
) -> Part {
    Part {
        function_call: Some(FunctionCall {
            id: id.filter(|id| !id.is_empty()).map(str::to_owned),
            name: upstream_name,
            args,
        }),
        thought_signature: signature,
        ..Part::default()
    }
}

/// A tool's result as parts: a `functionResponse` (`{"output": text}`, or
/// `{"error": text}` for a failure) followed by its media, or, when no call with the
/// id came before it (`upstream_name` is `None`), a text part that says whose result
/// it is.
/// Tool output longer than this (in bytes) is cut in the middle, with a marker, so that
/// one huge result (a log, a minified bundle) cannot make the whole request fail.
pub const MAX_TOOL_RESULT_BYTES: usize = 512 * 1024;

/// `text` if it fits [`MAX_TOOL_RESULT_BYTES`], else its head and tail around a marker
/// that says how much was cut. Cuts on character boundaries.
pub fn bounded_tool_output(text: &str) -> std::borrow::Cow<'_, str> {
    if text.len() <= MAX_TOOL_RESULT_BYTES {
        return std::borrow::Cow::Borrowed(text);
    }
    let floor = |mut i: usize| {
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let ceil = |mut i: usize| {
        while !text.is_char_boundary(i) {
            i += 1;
        }
        i
    };
    let head_end = floor(MAX_TOOL_RESULT_BYTES * 3 / 4);
    let tail_start = ceil(text.len() - MAX_TOOL_RESULT_BYTES / 4);
    let cut = tail_start - head_end;
    std::borrow::Cow::Owned(format!(
        "{}\n[agm: {cut} bytes of this tool output were cut here to fit the request]\n{}",
        &text[..head_end],
        &text[tail_start..]
    ))
}

pub(crate) fn tool_result_parts(
    call_id: &str,
    upstream_name: Option<String>,
    text: &str,
    is_error: bool,
    mut media: Vec<Part>,
    parts: &mut Vec<Part>,
) {
    let text = bounded_tool_output(text);
    let text = text.as_ref();
    match upstream_name {
        Some(name) => {
            let key = if is_error { "error" } else { "output" };
            parts.push(Part {
                function_response: Some(FunctionResponse {
                    id: (!call_id.is_empty()).then(|| call_id.to_owned()),
                    name,
                    response: json!({ key: text }),
                }),
                ..Part::default()
            });
        }
        None => {
            let label = if is_error { "Error from" } else { "Result of" };
            parts.push(Part::text(format!("[{label} tool call {call_id}]\n{text}")));
        }
    }
    parts.append(&mut media);
}

/// The client's calls of a conversation: call id → the client's tool name (or the
/// upstream name, for a namespaced tool), so that a result finds the name of its call.
#[derive(Debug, Default)]
pub(crate) struct CallNames {
    client: HashMap<String, String>,
    upstream: HashMap<String, String>,
}

impl CallNames {
    pub fn record(&mut self, call_id: &str, name: &str) {
        if !call_id.is_empty() {
            self.upstream.remove(call_id);
            self.client.insert(call_id.to_owned(), name.to_owned());
        }
    }

    /// Records a call by the upstream name it was sent under (a namespaced tool's).
    pub fn record_upstream(&mut self, call_id: &str, upstream: &str) {
        if !call_id.is_empty() {
            self.client.remove(call_id);
            self.upstream
                .insert(call_id.to_owned(), upstream.to_owned());
        }
    }

    /// The upstream name of the call `call_id`, when one came before.
    pub fn upstream_name(&self, call_id: &str, names: &mut ToolNameMap) -> Option<String> {
        if let Some(upstream) = self.upstream.get(call_id) {
            return Some(upstream.clone());
        }
        self.client.get(call_id).map(|name| names.to_upstream(name))
    }
}

/// The client's stop sequences as [`Translated::stop_sequences`]: empty ones and
/// repeats dropped.
pub(crate) fn stop_sequences<'a>(stops: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    for stop in stops {
        if !stop.is_empty() && !kept.iter().any(|k| k == stop) {
            kept.push(stop.to_owned());
        }
    }
    kept
}

/// Joins texts with `\n`, skipping empty ones.
pub(crate) fn join_texts<'a>(texts: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::new();
    for text in texts.into_iter().filter(|t| !t.is_empty()) {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(text);
    }
    out
}

/// Reading translated requests in the translators' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::Translated;

    /// The `functionCallingConfig` mode and allowed names (`("", [])` without one).
    pub fn calling(t: &Translated) -> (String, Vec<String>) {
        t.request
            .tool_config
            .as_ref()
            .and_then(|c| c.function_calling_config.clone())
            .map(|c| (c.mode, c.allowed_function_names))
            .unwrap_or_default()
    }

    /// The names of the declared functions, in order.
    pub fn declared(t: &Translated) -> Vec<&str> {
        t.request
            .tools
            .iter()
            .flat_map(|tool| &tool.function_declarations)
            .map(|d| d.name.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turns_of_the_same_role_merge() {
        let mut contents = Vec::new();
        push_turn(&mut contents, "user", vec![Part::text("a")]);
        push_turn(&mut contents, "user", vec![Part::text("b")]);
        push_turn(&mut contents, "model", Vec::new());
        push_turn(&mut contents, "model", vec![Part::text("c")]);
        assert_eq!(
            contents,
            vec![
                Content::new("user", vec![Part::text("a"), Part::text("b")]),
                Content::new("model", vec![Part::text("c")]),
            ]
        );
    }

    #[test]
    fn arguments_are_parsed_and_bad_json_is_named() {
        assert_eq!(parse_arguments("", "f").unwrap(), json!({}));
        assert_eq!(parse_arguments(r#"{"a":1}"#, "f").unwrap(), json!({"a": 1}));
        assert_eq!(parse_arguments("[1]", "f").unwrap(), json!({"value": [1]}));
        let err =
            parse_arguments("{oops", "messages.1.tool_calls.0.function.arguments").unwrap_err();
        assert_eq!(err.field(), "messages.1.tool_calls.0.function.arguments");
        assert!(err.to_string().contains("is not valid JSON"), "{err}");
    }

    #[test]
    fn stop_sequences_drop_empty_ones_and_repeats() {
        let stops = ["", "a", "b", "a", "c", "d", "e", "f"];
        assert_eq!(stop_sequences(stops), ["a", "b", "c", "d", "e", "f"]);
    }
}

#[cfg(test)]
mod tool_output_tests {
    use super::*;

    #[test]
    fn small_output_is_untouched() {
        assert!(matches!(
            bounded_tool_output("ok"),
            std::borrow::Cow::Borrowed("ok")
        ));
    }

    #[test]
    fn huge_output_keeps_head_and_tail_with_a_marker() {
        let text = format!("HEAD{}TAIL", "é".repeat(MAX_TOOL_RESULT_BYTES));
        let out = bounded_tool_output(&text);
        assert!(out.len() <= MAX_TOOL_RESULT_BYTES + 100, "{}", out.len());
        assert!(out.starts_with("HEAD") && out.ends_with("TAIL"));
        assert!(out.contains("bytes of this tool output were cut here"));
    }
}
