//! The bodies of agm's fuzz targets, one per parser: plain functions of the input
//! bytes, so that the cargo-fuzz targets in `fuzz_targets/` and a stable test
//! (`crates/agm-translate/tests/fuzz_seeds.rs`, which includes this file) run the same
//! code. Each body panics when it finds a bug: a panic inside agm, or an answer that
//! breaks one of the invariants checked here. It returns whether the input got past
//! the first parse (the seed test checks that every target's seeds reach the
//! translation, so that the corpus cannot silently rot).
//!
//! | target | input | checks |
//! | --- | --- | --- |
//! | `sse` | an event stream | the events do not depend on how the bytes are chunked |
//! | `schema` | a JSON Schema | the cleaned schema is in Gemini's subset (keys, types, `required`, non-empty objects) and cleaning it again changes nothing |
//! | `anthropic_request`, `openai_chat_request`, `openai_responses_request` | a client request body | translating it for a Claude and a Gemini upstream never panics, the result serializes, and every function name is one Gemini takes |
//! | `anthropic_stream`, `openai_chat_stream`, `openai_responses_stream` | an upstream SSE stream | the client events are well formed: one end, in last place; for Anthropic, `message_start` first and content blocks opened, filled and closed in order; for Responses, sequence numbers from 0 |
//! | `model_name` | a client's model name | `check_model_name` accepts exactly the names of the rule (1–128 of `A-Z a-z 0-9 . _ - : @ / +`, no empty, `.` or `..` segment); what it accepts is header-safe and a valid `http::HeaderValue` in both `User-Agent` shapes; its error message holds no raw control character and is short |
//! | `gemini_path` | the path after `/v1beta/models/`, as sent and percent-decoded | `parse_model_path` accepts a valid model and a served action only, agrees with `split_model_action`, and its errors are clean and short |
//! | `header_value` | a header value | `is_header_safe` implies `http::HeaderValue::from_str` succeeds, and on ASCII the two agree |

use std::sync::OnceLock;

use agm_translate::common::{RequestOptions, Translated};
use agm_translate::edge::{MAX_MODEL_NAME, check_model_name, is_header_safe};
use agm_translate::gemini_api::{ACTIONS, PathError, parse_model_path, split_model_action};
use agm_translate::schema::{ALLOWED_KEYS, clean_parameters, clean_schema};
use agm_translate::sse::{SseEvent, SseParser};
use agm_translate::upstream::{UpstreamChunk, parse_chunk};
use agm_translate::{anthropic, openai_chat, openai_responses};
use agm_wire::gemini::GenerateContentResponse;
use serde_json::{Map, Value};

/// A fuzz body: it panics on a bug and says whether the input got past the first parse.
pub type Body = fn(&[u8]) -> bool;

/// Every target: its name (the directory of its seeds in `fuzz/corpus/`) and body.
pub const TARGETS: [(&str, Body); 11] = [
    ("sse", sse),
    ("schema", schema),
    ("anthropic_request", anthropic_request),
    ("openai_chat_request", openai_chat_request),
    ("openai_responses_request", openai_responses_request),
    ("anthropic_stream", anthropic_stream),
    ("openai_chat_stream", openai_chat_stream),
    ("openai_responses_stream", openai_responses_stream),
    ("model_name", model_name),
    ("gemini_path", gemini_path),
    ("header_value", header_value),
];

/// The upstream models each request is translated for: one per model family.
const UPSTREAMS: [&str; 2] = ["claude-sonnet-4-5-thinking", "gemini-3-pro-high"];

/// What `to_sse` writes when an event cannot be encoded (a bug).
const ENCODING_FAILED: &str = "agm could not encode an event";

// ------------------------------------------------------------------------ sse

fn parse_sse<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    for chunk in chunks {
        events.extend(parser.push(chunk));
    }
    events.extend(parser.finish());
    events
}

/// The incremental SSE parser: whole, cut in two (where the first byte says) and, for
/// inputs up to 4 KiB, byte by byte, the stream gives the same events.
pub fn sse(data: &[u8]) -> bool {
    let whole = parse_sse([data]);
    let cut = usize::from(data.first().copied().unwrap_or_default()) % (data.len() + 1);
    let (head, tail) = data.split_at(cut);
    assert_eq!(
        whole,
        parse_sse([head, tail]),
        "cut at {cut}: the events depend on how the stream is chunked"
    );
    if data.len() <= 4096 {
        assert_eq!(
            whole,
            parse_sse(data.chunks(1)),
            "byte by byte: the events depend on how the stream is chunked"
        );
    }
    !whole.is_empty()
}

// --------------------------------------------------------------------- schema

/// Whether `name` is a function name Gemini takes: `^[A-Za-z_][A-Za-z0-9_.:-]{0,63}$`.
fn gemini_function_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'))
}

/// Asserts that `schema` is in Gemini's subset, as the cleaner promises.
fn check_gemini_schema(schema: &Value, path: &str) {
    let Some(schema) = schema.as_object() else {
        panic!("{path}: a schema must be an object, got {schema}");
    };
    for key in schema.keys() {
        assert!(
            ALLOWED_KEYS.contains(&key.as_str()),
            "{path}: key {key:?} is not in Gemini's subset"
        );
    }
    let kind = schema.get("type").and_then(Value::as_str);
    assert!(
        matches!(
            kind,
            Some("string" | "number" | "integer" | "boolean" | "array" | "object")
        ),
        "{path}: type {:?}",
        schema.get("type")
    );
    if let Some(nullable) = schema.get("nullable") {
        assert!(nullable.is_boolean(), "{path}.nullable: {nullable}");
    }
    if let Some(values) = schema.get("enum") {
        let all_strings = values
            .as_array()
            .is_some_and(|v| v.iter().all(Value::is_string));
        assert!(all_strings, "{path}.enum: {values}");
    }
    let empty = Map::new();
    let properties = match schema.get("properties") {
        Some(properties) => properties
            .as_object()
            .unwrap_or_else(|| panic!("{path}.properties: {properties}")),
        None => &empty,
    };
    if kind == Some("object") {
        assert!(
            !properties.is_empty(),
            "{path}: an object without properties"
        );
    }
    for (name, property) in properties {
        check_gemini_schema(property, &format!("{path}.properties.{name}"));
    }
    if let Some(required) = schema.get("required") {
        let defined = required.as_array().is_some_and(|names| {
            names
                .iter()
                .all(|n| n.as_str().is_some_and(|n| properties.contains_key(n)))
        });
        assert!(
            defined,
            "{path}.required names undefined properties: {required}"
        );
    }
    match schema.get("items") {
        Some(items) => check_gemini_schema(items, &format!("{path}.items")),
        None => assert!(kind != Some("array"), "{path}: an array without items"),
    }
}

/// The schema cleaner: any JSON value, as tool parameters and as a schema.
pub fn schema(data: &[u8]) -> bool {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return false;
    };
    let parameters = clean_parameters(&value);
    check_gemini_schema(&parameters, "parameters");
    assert_eq!(
        parameters.get("type").and_then(Value::as_str),
        Some("object"),
        "parameters must be an object"
    );
    assert_eq!(
        clean_parameters(&parameters),
        parameters,
        "cleaning is idempotent"
    );
    let cleaned = clean_schema(&value);
    check_gemini_schema(&cleaned, "schema");
    assert_eq!(clean_schema(&cleaned), cleaned, "cleaning is idempotent");
    true
}

// ------------------------------------------------------------------- requests

/// Checks a translated request: it serializes, and its function names and parameter
/// schemas are ones Gemini takes.
fn check_translated(translated: &Translated) {
    let request = match serde_json::to_value(&translated.request) {
        Ok(request) => request,
        Err(error) => panic!("the Gemini request does not serialize: {error}"),
    };
    let declarations = request
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|tool| tool.get("functionDeclarations"))
        .filter_map(Value::as_array)
        .flatten();
    for declaration in declarations {
        let name = declaration
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        assert!(
            gemini_function_name(name),
            "function name {name:?} is not one Gemini takes"
        );
        if let Some(parameters) = declaration.get("parameters") {
            check_gemini_schema(parameters, &format!("{name}.parameters"));
        }
    }
}

/// Every option combination a request is translated with.
fn options() -> [RequestOptions<'static>; 2] {
    [
        RequestOptions::default(),
        RequestOptions {
            thinking_as_text: true,
            ..RequestOptions::default()
        },
    ]
}

/// An Anthropic Messages request body → Gemini (and its count-tokens request).
pub fn anthropic_request(data: &[u8]) -> bool {
    let Ok(request) = serde_json::from_slice::<agm_wire::anthropic::MessagesRequest>(data) else {
        return false;
    };
    for upstream in UPSTREAMS {
        for options in options() {
            if let Ok(translated) = anthropic::to_gemini(&request, upstream, &options) {
                check_translated(&translated);
                let context = anthropic::ResponseContext::for_request(
                    request.model.clone(),
                    &translated,
                    "fuzz",
                );
                assert_eq!(context.model, request.model);
            }
        }
    }
    true
}

/// An OpenAI Chat Completions request body → Gemini.
pub fn openai_chat_request(data: &[u8]) -> bool {
    let Ok(request) = serde_json::from_slice::<agm_wire::openai::chat::ChatCompletionRequest>(data)
    else {
        return false;
    };
    for upstream in UPSTREAMS {
        for options in options() {
            if let Ok(translated) = openai_chat::to_gemini(&request, upstream, &options) {
                check_translated(&translated);
                let context =
                    openai_chat::ResponseContext::for_request(&request, &translated, "fuzz", 0);
                assert_eq!(context.model, request.model);
            }
        }
    }
    true
}

/// An OpenAI Responses request body → Gemini.
pub fn openai_responses_request(data: &[u8]) -> bool {
    let Ok(request) = serde_json::from_slice::<agm_wire::openai::responses::ResponsesRequest>(data)
    else {
        return false;
    };
    for upstream in UPSTREAMS {
        for options in options() {
            if let Ok(translated) = openai_responses::to_gemini(&request, upstream, &options) {
                check_translated(&translated);
                let context = openai_responses::ResponseContext::for_request(
                    &request,
                    &translated,
                    "fuzz",
                    0,
                );
                assert_eq!(context.template.model, request.model);
            }
        }
    }
    true
}

// -------------------------------------------------------------------- streams

/// What the server does with each upstream payload.
enum Upstream {
    Response(Box<GenerateContentResponse>),
    Error(String),
}

/// The upstream payloads of an SSE stream (payloads that do not parse are skipped).
fn upstream(data: &[u8]) -> Vec<Upstream> {
    parse_sse([data])
        .iter()
        .filter_map(|event| match parse_chunk(&event.data) {
            Ok(UpstreamChunk::Response(response)) => Some(Upstream::Response(Box::new(response))),
            Ok(UpstreamChunk::Error(error)) => Some(Upstream::Error(error.message)),
            Ok(UpstreamChunk::Empty) | Err(_) => None,
        })
        .collect()
}

/// The request whose answer the stream targets transcode: tools (one renamed for
/// Gemini), thinking and stop sequences, so that every path of the transcoders is
/// reachable.
const ANTHROPIC_REQUEST: &str = r#"{
    "model": "claude-sonnet-4-5",
    "max_tokens": 4096,
    "stop_sequences": ["END", "\n\nHuman:"],
    "thinking": {"type": "enabled", "budget_tokens": 2048},
    "tools": [
        {"name": "Read", "description": "Reads a file",
         "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}},
                          "required": ["file_path"]}},
        {"name": "mcp__files server__read file", "description": "An MCP tool",
         "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}
    ],
    "messages": [{"role": "user", "content": "Read a.txt"}]
}"#;

const OPENAI_CHAT_REQUEST: &str = r#"{
    "model": "gpt-5",
    "stream": true,
    "stream_options": {"include_usage": true},
    "stop": ["END"],
    "reasoning_effort": "high",
    "tools": [
        {"type": "function", "function": {"name": "read_file", "description": "Reads a file",
         "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}},
        {"type": "function", "function": {"name": "mcp__files server__read file",
         "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}}
    ],
    "messages": [{"role": "user", "content": "Read a.txt"}]
}"#;

const OPENAI_RESPONSES_REQUEST: &str = r#"{
    "model": "gpt-5-codex",
    "stream": true,
    "store": false,
    "reasoning": {"effort": "high", "summary": "auto"},
    "tools": [
        {"type": "function", "name": "shell", "description": "Runs a command",
         "parameters": {"type": "object", "properties": {"command": {"type": "array", "items": {"type": "string"}}}}},
        {"type": "function", "name": "mcp__files server__read file",
         "parameters": {"type": "object", "properties": {"path": {"type": "string"}}}}
    ],
    "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Read a.txt"}]}]
}"#;

/// The Anthropic answer context of [`ANTHROPIC_REQUEST`] (`None`: it no longer
/// translates, which the seed test reports).
pub fn anthropic_context() -> Option<anthropic::ResponseContext> {
    static CONTEXT: OnceLock<Option<anthropic::ResponseContext>> = OnceLock::new();
    CONTEXT
        .get_or_init(|| {
            let request: agm_wire::anthropic::MessagesRequest =
                serde_json::from_str(ANTHROPIC_REQUEST).ok()?;
            let translated =
                anthropic::to_gemini(&request, UPSTREAMS[0], &RequestOptions::default()).ok()?;
            Some(anthropic::ResponseContext::for_request(
                request.model,
                &translated,
                "fuzz",
            ))
        })
        .clone()
}

/// The Chat Completions answer context of [`OPENAI_CHAT_REQUEST`].
pub fn openai_chat_context() -> Option<openai_chat::ResponseContext> {
    static CONTEXT: OnceLock<Option<openai_chat::ResponseContext>> = OnceLock::new();
    CONTEXT
        .get_or_init(|| {
            let request: agm_wire::openai::chat::ChatCompletionRequest =
                serde_json::from_str(OPENAI_CHAT_REQUEST).ok()?;
            let translated =
                openai_chat::to_gemini(&request, UPSTREAMS[1], &RequestOptions::default()).ok()?;
            Some(openai_chat::ResponseContext::for_request(
                &request,
                &translated,
                "fuzz",
                0,
            ))
        })
        .clone()
}

/// The Responses answer context of [`OPENAI_RESPONSES_REQUEST`].
pub fn openai_responses_context() -> Option<openai_responses::ResponseContext> {
    static CONTEXT: OnceLock<Option<openai_responses::ResponseContext>> = OnceLock::new();
    CONTEXT
        .get_or_init(|| {
            let request: agm_wire::openai::responses::ResponsesRequest =
                serde_json::from_str(OPENAI_RESPONSES_REQUEST).ok()?;
            let translated =
                openai_responses::to_gemini(&request, UPSTREAMS[1], &RequestOptions::default())
                    .ok()?;
            Some(openai_responses::ResponseContext::for_request(
                &request,
                &translated,
                "fuzz",
                0,
            ))
        })
        .clone()
}

/// An upstream stream through the Anthropic transcoder.
pub fn anthropic_stream(data: &[u8]) -> bool {
    use agm_wire::anthropic::StreamEvent;

    let Some(context) = anthropic_context() else {
        return false;
    };
    let payloads = upstream(data);
    let mut transcoder = anthropic::StreamTranscoder::new(context);
    let mut events = Vec::new();
    for payload in &payloads {
        match payload {
            Upstream::Response(response) => events.extend(transcoder.push(response)),
            Upstream::Error(message) => events.extend(transcoder.fail(message.as_str())),
        }
    }
    let _ = transcoder.is_empty_answer();
    events.extend(transcoder.finish());
    assert!(
        transcoder.finish().is_empty(),
        "a second finish sends nothing"
    );
    let _ = transcoder.usage();
    let _ = transcoder.signatures();
    for event in &events {
        let frame = anthropic::to_sse(event);
        assert!(!frame.contains(ENCODING_FAILED), "{frame}");
    }
    let _ = anthropic::assemble(&events);

    // One end (message_stop or error), in last place.
    let ends = events
        .iter()
        .filter(|e| matches!(e, StreamEvent::MessageStop | StreamEvent::Error { .. }))
        .count();
    assert_eq!(ends, 1, "{events:?}");
    assert!(
        matches!(
            events.last(),
            Some(StreamEvent::MessageStop | StreamEvent::Error { .. })
        ),
        "{events:?}"
    );
    // Unless the stream failed before it began: message_start first, once.
    let starts = events
        .iter()
        .filter(|e| matches!(e, StreamEvent::MessageStart { .. }))
        .count();
    if !matches!(events.as_slice(), [StreamEvent::Error { .. }]) {
        assert!(
            matches!(events.first(), Some(StreamEvent::MessageStart { .. })),
            "{events:?}"
        );
        assert_eq!(starts, 1, "{events:?}");
    }
    // Blocks 0, 1, 2, ... one at a time: opened, filled, closed; none open at the end
    // of a message (a failed stream may leave one open: that is how Anthropic breaks off).
    let mut open: Option<usize> = None;
    let mut next = 0;
    for event in &events {
        match event {
            StreamEvent::ContentBlockStart { index, .. } => {
                assert_eq!(open, None, "block {index} opened inside another");
                assert_eq!(*index, next, "blocks are numbered in order");
                open = Some(*index);
                next += 1;
            }
            StreamEvent::ContentBlockDelta { index, .. } => {
                assert_eq!(open, Some(*index), "a delta for a block that is not open");
            }
            StreamEvent::ContentBlockStop { index } => {
                assert_eq!(open, Some(*index), "a stop for a block that is not open");
                open = None;
            }
            StreamEvent::MessageDelta { .. } | StreamEvent::MessageStop => {
                assert_eq!(open, None, "the message ended with a block open");
            }
            _ => {}
        }
    }
    !payloads.is_empty()
}

/// An upstream stream through the Chat Completions transcoder.
pub fn openai_chat_stream(data: &[u8]) -> bool {
    use agm_wire::openai::chat::StreamEvent;

    let Some(context) = openai_chat_context() else {
        return false;
    };
    let payloads = upstream(data);
    let mut transcoder = openai_chat::StreamTranscoder::new(context);
    let mut events = Vec::new();
    for payload in &payloads {
        match payload {
            Upstream::Response(response) => events.extend(transcoder.push(response)),
            Upstream::Error(message) => events.extend(transcoder.fail(message.as_str())),
        }
    }
    let _ = transcoder.is_empty_answer();
    events.extend(transcoder.finish());
    assert!(
        transcoder.finish().is_empty(),
        "a second finish sends nothing"
    );
    let _ = transcoder.usage();
    let _ = transcoder.signatures();
    for event in &events {
        let frame = openai_chat::to_sse(event);
        assert!(!frame.contains(ENCODING_FAILED), "{frame}");
    }
    let _ = openai_chat::assemble(&events);

    // One end ([DONE] or an error), in last place; a finished answer says why once.
    let ends = events
        .iter()
        .filter(|e| matches!(e, StreamEvent::Done | StreamEvent::Error(_)))
        .count();
    assert_eq!(ends, 1, "{events:?}");
    assert!(
        matches!(
            events.last(),
            Some(StreamEvent::Done | StreamEvent::Error(_))
        ),
        "{events:?}"
    );
    if events.last() == Some(&StreamEvent::Done) {
        let finishes = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Chunk(chunk) => Some(chunk),
                _ => None,
            })
            .flat_map(|chunk| &chunk.choices)
            .filter(|choice| choice.finish_reason.is_some())
            .count();
        assert_eq!(finishes, 1, "{events:?}");
    }
    !payloads.is_empty()
}

/// An upstream stream through the Responses transcoder.
pub fn openai_responses_stream(data: &[u8]) -> bool {
    let Some(context) = openai_responses_context() else {
        return false;
    };
    let payloads = upstream(data);
    let mut transcoder = openai_responses::StreamTranscoder::new(context);
    let mut events = Vec::new();
    for payload in &payloads {
        match payload {
            Upstream::Response(response) => events.extend(transcoder.push(response)),
            Upstream::Error(message) => events.extend(transcoder.fail(message.as_str())),
        }
    }
    let _ = transcoder.is_empty_answer();
    events.extend(transcoder.finish());
    assert!(
        transcoder.finish().is_empty(),
        "a second finish sends nothing"
    );
    let _ = transcoder.usage();
    let _ = transcoder.signatures();
    for event in &events {
        let frame = openai_responses::to_sse(event);
        assert!(!frame.contains(ENCODING_FAILED), "{frame}");
    }
    let _ = openai_responses::assemble(&events);

    // Sequence numbers count the events from 0; one end, in last place.
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event.sequence_number, index as u64, "{events:?}");
    }
    let is_end = |kind: &str| {
        matches!(
            kind,
            "response.completed" | "response.incomplete" | "response.failed"
        )
    };
    let ends = events.iter().filter(|e| is_end(e.event_type())).count();
    assert_eq!(ends, 1, "{events:?}");
    assert!(
        events.last().is_some_and(|e| is_end(e.event_type())),
        "{events:?}"
    );
    !payloads.is_empty()
}

// ----------------------------------------------------------------------- edge

/// The longest error message an edge check may give: the value is shown cut to 64
/// characters, each escaped to at most 10 (`\u{10ffff}`), plus the sentence.
const MAX_EDGE_MESSAGE: usize = 64 * 10 + 300;

/// An edge check's error message: no raw control character, and short whatever the
/// input's length.
fn assert_clean_message(message: &str) {
    assert!(
        !message.chars().any(char::is_control),
        "a raw control character in {message:?}"
    );
    assert!(
        message.len() <= MAX_EDGE_MESSAGE,
        "a message of {} bytes: {message:?}",
        message.len()
    );
}

/// The model-name rule, written out again as the oracle for `check_model_name`.
fn is_valid_model_name(name: &str) -> bool {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-:@/+".contains(c);
    (1..=MAX_MODEL_NAME).contains(&name.len())
        && name.chars().all(allowed)
        && name.split('/').all(|s| !matches!(s, "" | "." | ".."))
}

/// Model names: `check_model_name` accepts exactly the names of the rule, returns them
/// unchanged, and every accepted name fits both `User-Agent` shapes; a refusal's
/// message is clean and short.
pub fn model_name(data: &[u8]) -> bool {
    let name = String::from_utf8_lossy(data);
    match check_model_name(&name) {
        Ok(accepted) => {
            assert_eq!(accepted, name, "the name came back changed");
            assert!(is_valid_model_name(accepted), "accepted {accepted:?}");
            assert!(is_header_safe(accepted), "{accepted:?} is not header-safe");
            for agent in [
                format!("GeminiCLI/0.21.0/{accepted} (linux; x64)"),
                format!("antigravity/{accepted} linux/amd64"),
            ] {
                assert!(
                    http::HeaderValue::from_str(&agent).is_ok(),
                    "{agent:?} is not a valid header value"
                );
            }
        }
        Err(err) => {
            assert!(!is_valid_model_name(&name), "refused {name:?}: {err}");
            assert_clean_message(&err.to_string());
        }
    }
    std::str::from_utf8(data).is_ok()
}

/// `%XX` escapes decoded, as the server's path extractor does (invalid ones kept).
fn percent_decode(data: &[u8]) -> Vec<u8> {
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(data.len());
    let mut i = 0;
    while i < data.len() {
        if data[i] == b'%'
            && let Some(&[hi, lo]) = data.get(i + 1..i + 3)
            && let (Some(hi), Some(lo)) = (hex(hi), hex(lo))
        {
            out.push(u8::try_from(hi * 16 + lo).unwrap_or_default());
            i += 3;
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    out
}

fn check_gemini_path(path: &str) {
    let parsed = parse_model_path(path);
    assert_eq!(
        split_model_action(path),
        parsed.as_ref().ok().copied(),
        "split_model_action and parse_model_path disagree on {path:?}"
    );
    match parsed {
        Ok((model, action)) => {
            assert_eq!(check_model_name(model), Ok(model), "{path:?}");
            assert!(ACTIONS.contains(&action), "{path:?}: action {action:?}");
            let bare = path.strip_prefix("models/").unwrap_or(path);
            assert_eq!(bare, format!("{model}:{action}"), "{path:?}");
        }
        Err(err) => {
            assert_eq!(
                err.is_not_found(),
                !matches!(err, PathError::InvalidModel(_)),
                "{err:?}"
            );
            assert_clean_message(&err.to_string());
        }
    }
}

/// The Gemini path after `/v1beta/models/`, as sent and percent-decoded: only a valid
/// model and a served action get through, and errors are clean and short.
pub fn gemini_path(data: &[u8]) -> bool {
    check_gemini_path(&String::from_utf8_lossy(data));
    check_gemini_path(&String::from_utf8_lossy(&percent_decode(data)));
    std::str::from_utf8(data).is_ok()
}

/// Header values: whatever `is_header_safe` passes, `http` takes; on ASCII, the two
/// agree (outside ASCII `http` takes opaque bytes, which agm refuses).
pub fn header_value(data: &[u8]) -> bool {
    let value = String::from_utf8_lossy(data);
    let safe = is_header_safe(&value);
    let valid = http::HeaderValue::from_str(&value).is_ok();
    if safe {
        assert!(
            valid,
            "{value:?} is header-safe but not a valid header value"
        );
    }
    if value.is_ascii() {
        assert_eq!(safe, valid, "{value:?}");
    }
    std::str::from_utf8(data).is_ok()
}
