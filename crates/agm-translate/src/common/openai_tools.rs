//! Tools as both OpenAI APIs (Chat Completions and Responses) declare them: custom
//! (freeform) tools, OpenAI's hosted tools, and `allowed_tools` tool choices. The two
//! APIs spell these differently; the rules are the same and live here.
//!
//! - A custom tool becomes a function taking one string, [`CUSTOM_INPUT`], its grammar
//!   (if any) spelled out in the description; the model's call comes back as a custom
//!   tool call with that string as the raw input. Custom and function tools must not
//!   share a name, since their calls are told apart by name alone.
//! - OpenAI's hosted tools (`file_search`, `code_interpreter`, `computer_use_preview`,
//!   `local_shell`, `mcp`, …) run on OpenAI's side or need OpenAI's own item types:
//!   Google's models cannot run them, and a request declaring one is refused with a
//!   400 naming it rather than answered without it. `web_search` (and
//!   `web_search_preview`, dated variants included) becomes Gemini's `googleSearch`.
//! - Some hosted tools are left out with a note instead of refused, because Codex CLI
//!   declares them in every request by default (web search since January 2026, image
//!   generation since April 2026, tool search with `gpt-5.5` in 0.171), so refusing
//!   them would refuse every Codex request: `image_generation` and `tool_search`
//!   ([`AMBIENT_TOOLS`]), and `web_search` next to function or custom tools. Gemini refuses `googleSearch` next to function declarations (that
//!   needs `toolConfig.includeServerSideToolInvocations`, Gemini 3 only, with history
//!   parts agm cannot carry back), and the client's own tools matter more.
//! - A namespace tool (`type: "namespace"`: a `name`, a `description` and `tools`, the
//!   function and custom tools of the group; Codex declares its sub-agent tools and
//!   each MCP server's tools so) is flattened: each of its tools becomes a function
//!   named `<namespace>__<name>` (or a stand-in, see [`crate::tools`]) whose
//!   description ends with the namespace's. Calls go back with the tool's own `name`
//!   and its `namespace`, as Codex expects them, and come back the same way.
//! - `allowed_tools` with mode `required` becomes mode `ANY` restricted to the allowed
//!   functions (`allowedFunctionNames`). Gemini takes `allowedFunctionNames` only with
//!   mode `ANY`, so mode `auto` is done by declaring only the allowed tools, mode
//!   `AUTO`: the model may answer or call one of them, and cannot call the others.

use std::collections::BTreeSet;

use agm_wire::gemini::{FunctionDeclaration, Tool, ToolConfig};
use serde_json::{Value, json};

use crate::common::request::{CallingMode, tool_config};
use crate::error::TranslateError;
use crate::schema::clean_parameters;
use crate::tools::ToolNameMap;

/// The longest grammar (in bytes) copied into a custom tool's description.
pub const MAX_GRAMMAR_BYTES: usize = 8 * 1024;

/// The parameter a custom tool's raw input travels in.
pub const CUSTOM_INPUT: &str = "input";

/// A custom (freeform) tool as a function taking one string, [`CUSTOM_INPUT`]; a
/// grammar (`(syntax, definition)`) the input must follow is spelled out in the
/// description.
pub(crate) fn custom_tool_declaration(
    names: &mut ToolNameMap,
    name: &str,
    description: Option<&str>,
    grammar: Option<(&str, &str)>,
) -> FunctionDeclaration {
    custom_declaration(names.to_upstream(name), description, grammar)
}

/// [`custom_tool_declaration`] under the upstream name `upstream`.
fn custom_declaration(
    upstream: String,
    description: Option<&str>,
    grammar: Option<(&str, &str)>,
) -> FunctionDeclaration {
    let mut description = description.unwrap_or_default().to_owned();
    if let Some((syntax, definition)) = grammar {
        if !description.is_empty() {
            description.push_str("\n\n");
        }
        let grammar = if syntax.is_empty() {
            "this grammar".to_owned()
        } else {
            format!("this {syntax} grammar")
        };
        description.push_str(&format!(
            "Pass the tool's whole raw input (not JSON) as `{CUSTOM_INPUT}`; it must follow \
             {grammar}:\n```\n{}\n```",
            truncate(definition.trim_end(), MAX_GRAMMAR_BYTES)
        ));
    }
    FunctionDeclaration {
        name: upstream,
        description,
        parameters: Some(json!({
            "type": "object",
            "properties": {
                CUSTOM_INPUT: {"type": "string", "description": "the raw input for the tool"}
            },
            "required": [CUSTOM_INPUT]
        })),
    }
}

/// `text` cut to at most `max` bytes on a character boundary, with a marker when cut.
fn truncate(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!(
        "{}\n… [agm: {} more bytes of the grammar were cut]",
        &text[..end],
        text.len() - end
    )
    .into()
}

/// The Gemini `args` of an earlier custom tool call: its raw input as [`CUSTOM_INPUT`].
pub(crate) fn custom_call_args(input: &str) -> Value {
    json!({ CUSTOM_INPUT: input })
}

/// A custom tool's raw input from the call's arguments: the [`CUSTOM_INPUT`] string;
/// any other value there as JSON text; without one, the whole arguments as JSON text
/// (nothing for no arguments).
pub(crate) fn custom_input(args: &Value) -> String {
    match args.get(CUSTOM_INPUT) {
        Some(Value::String(input)) => input.clone(),
        Some(other) => other.to_string(),
        None => match args {
            Value::Null => String::new(),
            Value::Object(map) if map.is_empty() => String::new(),
            other => other.to_string(),
        },
    }
}

/// The upstream names of the custom tools named `custom` (as the client wrote them),
/// from the translated request's name map: their calls go back as custom tool calls.
pub(crate) fn custom_tool_set<'a>(
    custom: impl IntoIterator<Item = &'a str>,
    names: &ToolNameMap,
) -> BTreeSet<String> {
    custom
        .into_iter()
        .filter_map(|name| names.upstream_name(name).map(str::to_owned))
        .collect()
}

/// The names of a request's function and custom tools, to refuse a custom tool that
/// shares its name with another tool.
#[derive(Debug, Default)]
pub(crate) struct ToolKinds<'a> {
    functions: BTreeSet<&'a str>,
    custom: BTreeSet<&'a str>,
}

impl<'a> ToolKinds<'a> {
    /// Notes a function tool; `field` names it for the error.
    pub fn function(&mut self, name: &'a str, field: &str) -> Result<(), TranslateError> {
        self.functions.insert(name);
        if self.custom.contains(name) {
            return Err(clash(field));
        }
        Ok(())
    }

    /// Notes a custom tool; `field` names it for the error.
    pub fn custom(&mut self, name: &'a str, field: &str) -> Result<(), TranslateError> {
        if self.functions.contains(name) || !self.custom.insert(name) {
            return Err(clash(field));
        }
        Ok(())
    }
}

fn clash(field: &str) -> TranslateError {
    TranslateError::invalid(
        field,
        "a custom tool must not share its name with another tool",
    )
}

/// A tool of a namespace tool, read from either API's shape: the Responses API's flat
/// one (`{"type": "function", "name", "description", "parameters"}`, `{"type":
/// "custom", "name", "format": {"type": "grammar", "syntax", "definition"}}`) or Chat
/// Completions' nested one (under `function` or `custom`, a grammar under
/// `format.grammar`).
struct Member<'a> {
    custom: bool,
    name: &'a str,
    description: Option<&'a str>,
    parameters: Option<&'a Value>,
    /// A custom tool's `(syntax, definition)`.
    grammar: Option<(&'a str, &'a str)>,
}

/// Reads the tool `tool` of a namespace (at `field`); a tool of any other type is
/// refused like a hosted tool.
fn member<'a>(tool: &'a Value, field: &str) -> Result<Member<'a>, TranslateError> {
    let kind = tool
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("function");
    let custom = match kind {
        "function" => false,
        "custom" => true,
        other => return Err(hosted_tool_error(other, &format!("{field}.type"))),
    };
    let nested = tool.get(kind).filter(|v| v.is_object());
    let get = move |key: &str| tool.get(key).or_else(|| nested.and_then(|n| n.get(key)));
    let name = get("name").and_then(Value::as_str).unwrap_or_default();
    if name.is_empty() {
        return Err(TranslateError::invalid(
            format!("{field}.name"),
            "required (a tool of a namespace needs a name)",
        ));
    }
    let grammar = get("format")
        .filter(|f| f.get("type").and_then(Value::as_str) == Some("grammar"))
        .map(|f| {
            let g = f.get("grammar").unwrap_or(f);
            let text = |key: &str| g.get(key).and_then(Value::as_str).unwrap_or_default();
            (text("syntax"), text("definition"))
        });
    Ok(Member {
        custom,
        name,
        description: get("description").and_then(Value::as_str),
        parameters: get("parameters").filter(|p| !p.is_null()),
        grammar,
    })
}

/// The description of a namespace's tool: its own, then the namespace's.
fn member_description(
    own: Option<&str>,
    namespace: &str,
    namespace_description: Option<&str>,
) -> String {
    let own = own.unwrap_or_default().trim_end();
    let group = match namespace_description
        .map(str::trim)
        .filter(|d| !d.is_empty())
    {
        Some(about) => format!("Part of the `{namespace}` tools: {about}"),
        None => format!("Part of the `{namespace}` tools."),
    };
    if own.is_empty() {
        group
    } else {
        format!("{own}\n\n{group}")
    }
}

/// The namespace tool at `field` (`tools.3`), named `namespace`, flattened: a
/// declaration for each of its function and custom tools ([`ToolNameMap::
/// to_upstream_namespaced`]), the namespace's description carried into each.
pub(crate) fn namespace_declarations(
    namespace: Option<&str>,
    description: Option<&str>,
    tools: &[Value],
    field: &str,
    names: &mut ToolNameMap,
    declarations: &mut Vec<FunctionDeclaration>,
    notes: &mut Vec<String>,
) -> Result<(), TranslateError> {
    let Some(namespace) = namespace.filter(|n| !n.is_empty()) else {
        return Err(TranslateError::invalid(
            format!("{field}.name"),
            "required (the namespace's name)",
        ));
    };
    if tools.is_empty() {
        notes.push(format!(
            "{field}: namespace \"{namespace}\" declares no tools and was left out"
        ));
        return Ok(());
    }
    for (k, tool) in tools.iter().enumerate() {
        let at = format!("{field}.tools.{k}");
        let member = member(tool, &at)?;
        if names
            .namespaced_upstream_name(namespace, member.name)
            .is_some()
        {
            return Err(TranslateError::invalid(
                format!("{at}.name"),
                format!(
                    "namespace \"{namespace}\" already has a tool named \"{}\"",
                    member.name
                ),
            ));
        }
        let upstream = names.to_upstream_namespaced(namespace, member.name);
        let about = member_description(member.description, namespace, description);
        declarations.push(if member.custom {
            custom_declaration(upstream, Some(&about), member.grammar)
        } else {
            FunctionDeclaration {
                name: upstream,
                description: about,
                parameters: Some(clean_parameters(member.parameters.unwrap_or(&Value::Null))),
            }
        });
    }
    Ok(())
}

/// The upstream names of the custom tools of a namespace tool (`namespace`, its
/// `tools`), from the translated request's name map: their calls go back as custom
/// tool calls.
pub(crate) fn namespace_custom_tools(
    namespace: Option<&str>,
    tools: &[Value],
    names: &ToolNameMap,
) -> Vec<String> {
    let Some(namespace) = namespace else {
        return Vec::new();
    };
    tools
        .iter()
        .filter_map(|tool| member(tool, "").ok())
        .filter(|member| member.custom)
        .filter_map(|member| names.namespaced_upstream_name(namespace, member.name))
        .map(str::to_owned)
        .collect()
}

/// Hosted tools that are left out with a note rather than refused: Codex CLI declares
/// them in every request by default, whether the user wants them or not
/// (`tool_search`, OpenAI's deferred discovery of MCP tools, with `gpt-5.5` since
/// Codex 0.171).
pub const AMBIENT_TOOLS: [&str; 2] = ["image_generation", "tool_search"];

/// True for OpenAI's web search tools (`web_search`, `web_search_preview`, and their
/// dated variants), which become Google Search.
pub(crate) fn is_web_search(kind: &str) -> bool {
    kind.starts_with("web_search")
}

/// A hosted (non-function, non-custom, non-search) tool of type `kind` at `field`: left
/// out with a note when it is one of the [`AMBIENT_TOOLS`], else refused.
pub(crate) fn hosted_tool(
    kind: &str,
    field: &str,
    notes: &mut Vec<String>,
) -> Result<(), TranslateError> {
    if AMBIENT_TOOLS.contains(&kind) {
        notes.push(format!(
            "{field}: \"{kind}\" tools cannot run on Google's models and were left out"
        ));
        return Ok(());
    }
    Err(hosted_tool_error(kind, field))
}

/// The error for a hosted OpenAI tool of type `kind` (at `field`): Google's models
/// cannot run it.
fn hosted_tool_error(kind: &str, field: &str) -> TranslateError {
    TranslateError::unsupported(
        field,
        format!(
            "\"{kind}\" tools cannot run on Google's models: agm takes function, custom and \
             namespace tools, and web_search (as Google Search), but not OpenAI's hosted \
             tools; declare it as a function tool your client runs, or leave it out"
        ),
    )
}

/// The request's `tools`: its function declarations, or Google Search when the
/// client declared OpenAI's web search (at `search`, the field of that tool) and no
/// function or custom tool. Gemini does not take both: next to functions, web search
/// is left out with a note.
pub(crate) fn request_tools(
    declarations: Vec<FunctionDeclaration>,
    search: Option<&str>,
    notes: &mut Vec<String>,
) -> Vec<Tool> {
    match search {
        Some(_) if declarations.is_empty() => vec![Tool {
            google_search: Some(json!({})),
            ..Tool::default()
        }],
        _ if declarations.is_empty() => Vec::new(),
        search => {
            if let Some(field) = search {
                notes.push(format!(
                    "{field}: web search was left out: Gemini takes Google Search only in a \
                     request without function or custom tools"
                ));
            }
            vec![Tool {
                function_declarations: declarations,
                ..Tool::default()
            }]
        }
    }
}

/// A tool reference of an `allowed_tools` list: its type and name (`name`,
/// `function.name` or `custom.name`).
fn allowed_tool(tool: &Value) -> (&str, Option<&str>) {
    let kind = tool.get("type").and_then(Value::as_str).unwrap_or("?");
    let name = tool
        .get("name")
        .or_else(|| tool.get("function").and_then(|f| f.get("name")))
        .or_else(|| tool.get("custom").and_then(|f| f.get("name")))
        .and_then(Value::as_str);
    (kind, name)
}

/// `toolConfig` for an `allowed_tools` tool choice (mode `auto` or `required`, the
/// allowed tools as `tools`, at `field`); for mode `auto`, `declarations` keeps only
/// the allowed ones.
pub(crate) fn allowed_tools_config(
    mode: &str,
    tools: &[Value],
    names: &mut ToolNameMap,
    declarations: &mut Vec<FunctionDeclaration>,
    field: &str,
) -> Result<ToolConfig, TranslateError> {
    let mode = match mode {
        "auto" => CallingMode::Auto,
        "required" => CallingMode::Any,
        other => {
            return Err(TranslateError::invalid(
                format!("{field}.mode"),
                format!("must be \"auto\" or \"required\", not \"{other}\""),
            ));
        }
    };
    let mut allowed: Vec<String> = Vec::new();
    for (k, tool) in tools.iter().enumerate() {
        let at = format!("{field}.tools.{k}");
        match allowed_tool(tool) {
            // Google Search is no function and cannot be named; ambient tools are left
            // out anyway.
            (kind, _) if is_web_search(kind) || AMBIENT_TOOLS.contains(&kind) => {}
            ("function" | "custom", Some(name)) => {
                let config = tool_config(mode, Some(name), names, declarations, &at)?;
                if let Some(config) = config.function_calling_config {
                    allowed.extend(config.allowed_function_names);
                }
            }
            ("function" | "custom", None) => {
                return Err(TranslateError::invalid(
                    format!("{at}.name"),
                    "required (the name of one of the request's tools)",
                ));
            }
            (kind, _) => return Err(hosted_tool_error(kind, &format!("{at}.type"))),
        }
    }
    if allowed.is_empty() {
        return Err(TranslateError::invalid(
            format!("{field}.tools"),
            "must name at least one of the request's function or custom tools",
        ));
    }
    if mode == CallingMode::Auto {
        declarations.retain(|d| allowed.contains(&d.name));
        allowed.clear();
    }
    let mut config = tool_config(mode, None, names, declarations, field)?;
    if let Some(calling) = &mut config.function_calling_config {
        calling.allowed_function_names = allowed;
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn declared(names: &mut ToolNameMap, list: &[&str]) -> Vec<FunctionDeclaration> {
        list.iter()
            .map(|n| custom_tool_declaration(names, n, None, None))
            .collect()
    }

    #[test]
    fn required_restricts_the_names_and_auto_the_declarations() {
        let mut names = ToolNameMap::new();
        let mut declarations = declared(&mut names, &["a", "b", "my.tool"]);
        let tools = [
            json!({"type": "function", "function": {"name": "a"}}),
            json!({"type": "custom", "name": "my.tool"}),
            json!({"type": "web_search"}),
        ];
        let config = allowed_tools_config("required", &tools, &mut names, &mut declarations, "tc")
            .unwrap()
            .function_calling_config
            .unwrap();
        let safe = names.upstream_name("my.tool").unwrap().to_owned();
        assert_eq!(config.mode, "ANY");
        assert_eq!(
            config.allowed_function_names,
            ["a".to_owned(), safe.clone()]
        );
        assert_eq!(declarations.len(), 3);

        let config = allowed_tools_config("auto", &tools, &mut names, &mut declarations, "tc")
            .unwrap()
            .function_calling_config
            .unwrap();
        assert_eq!(config.mode, "AUTO");
        assert!(config.allowed_function_names.is_empty());
        let left: Vec<&str> = declarations.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(left, ["a", safe.as_str()]);
    }

    #[test]
    fn allowed_tools_errors_name_the_field() {
        let mut names = ToolNameMap::new();
        let mut declarations = declared(&mut names, &["a"]);
        let mut error = |mode: &str, tools: Value| {
            let tools = tools.as_array().cloned().unwrap_or_default();
            allowed_tools_config(mode, &tools, &mut names, &mut declarations, "tool_choice")
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            error("any", json!([])),
            "tool_choice.mode: must be \"auto\" or \"required\", not \"any\""
        );
        assert_eq!(
            error(
                "auto",
                json!([{"type": "function", "function": {"name": "zz"}}])
            ),
            "tool_choice.tools.0: no tool named \"zz\" in tools"
        );
        assert_eq!(
            error("auto", json!([{"type": "function"}])),
            "tool_choice.tools.0.name: required (the name of one of the request's tools)"
        );
        assert_eq!(
            error("auto", json!([{"type": "web_search"}])),
            "tool_choice.tools: must name at least one of the request's function or custom tools"
        );
        assert!(
            error("auto", json!([{"type": "file_search"}]))
                .starts_with("tool_choice.tools.0.type: \"file_search\" tools cannot run")
        );
    }

    #[test]
    fn web_search_alone_is_google_search_and_left_out_next_to_functions() {
        let mut notes = Vec::new();
        assert_eq!(request_tools(Vec::new(), None, &mut notes), Vec::new());
        let search = request_tools(Vec::new(), Some("tools.0"), &mut notes);
        assert_eq!(search.len(), 1);
        assert_eq!(search[0].google_search, Some(json!({})));
        assert!(notes.is_empty());
        let mut names = ToolNameMap::new();
        let tools = request_tools(declared(&mut names, &["f"]), Some("tools.1"), &mut notes);
        assert_eq!(tools.len(), 1);
        assert_eq!(tools[0].google_search, None);
        assert_eq!(tools[0].function_declarations[0].name, "f");
        assert_eq!(
            notes,
            [
                "tools.1: web search was left out: Gemini takes Google Search only in a request \
              without function or custom tools"
            ]
        );
        assert!(is_web_search("web_search_preview_2025_03_11"));
        assert!(!is_web_search("file_search"));
    }

    #[test]
    fn hosted_tools_are_refused_but_ambient_ones_left_out() {
        let mut notes = Vec::new();
        hosted_tool("image_generation", "tools.3.type", &mut notes).unwrap();
        assert_eq!(
            notes,
            [
                "tools.3.type: \"image_generation\" tools cannot run on Google's models and were left out"
            ]
        );
        let err = hosted_tool("code_interpreter", "tools.4.type", &mut notes).unwrap_err();
        assert!(matches!(err, TranslateError::Unsupported { .. }));
        assert_eq!(err.field(), "tools.4.type");
    }

    #[test]
    fn custom_names_must_be_unique() {
        let mut kinds = ToolKinds::default();
        kinds.function("f", "tools.0.name").unwrap();
        kinds.custom("c", "tools.1.name").unwrap();
        assert_eq!(
            kinds.custom("f", "tools.2.name").unwrap_err().field(),
            "tools.2.name"
        );
        assert_eq!(
            kinds.custom("c", "tools.3.name").unwrap_err().field(),
            "tools.3.name"
        );
        assert_eq!(
            kinds.function("c", "tools.4.name").unwrap_err().field(),
            "tools.4.name"
        );
    }

    #[test]
    fn custom_input_reads_the_raw_string() {
        assert_eq!(custom_input(&custom_call_args("*** Begin")), "*** Begin");
        assert_eq!(custom_input(&json!({"input": 3})), "3");
        assert_eq!(custom_input(&json!({"other": 1})), "{\"other\":1}");
        assert_eq!(custom_input(&Value::Null), "");
        assert_eq!(custom_input(&json!({})), "");
    }
}
