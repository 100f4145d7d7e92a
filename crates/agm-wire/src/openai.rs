//! The OpenAI APIs agm speaks: Chat Completions (`POST /v1/chat/completions`, what the
//! OpenAI SDKs and most agents use) in [`chat`], and Responses (`POST /v1/responses`,
//! what Codex CLI uses) in [`responses`]. Both share the error body [`ErrorBody`].
//!
//! Readers are tolerant: unknown fields are ignored, an unknown content part, item or
//! tool type is kept as an `Other` variant, and an unknown role as `Unknown`, so the
//! translator can reject it with a message naming the field instead of a bare parse
//! error. Writers follow OpenAI's shapes, `null`s included where OpenAI sends them.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

/// An error answer: `{"error": {"message", "type", "param", "code"}}`. Also the payload
/// of a Chat Completions stream that breaks off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

impl ErrorBody {
    /// An error body with no `param` or `code`.
    pub fn new(kind: impl Into<String>, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                message: message.into(),
                kind: kind.into(),
                param: None,
                code: None,
            },
        }
    }
}

/// The inner `error` object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `rate_limit_error`,
    /// `server_error`, …
    #[serde(rename = "type")]
    pub kind: String,
    /// The request field at fault, when there is one.
    #[serde(default)]
    pub param: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
}

/// Reads a function call's `arguments`: a JSON string as OpenAI defines it, or (from
/// lenient clients) the JSON value itself, which is kept as its text.
fn string_or_json<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::String(text) => text,
        Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// Chat Completions.
pub mod chat {
    use serde::{Deserialize, Deserializer, Serialize};
    use serde_json::Value;

    use super::string_or_json;

    /// `POST /v1/chat/completions` body.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct ChatCompletionRequest {
        pub model: String,
        pub messages: Vec<ChatMessage>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub tools: Vec<ChatTool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub tool_choice: Option<ToolChoice>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub parallel_tool_calls: Option<bool>,
        /// Legacy function calling: the tools as bare functions.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub functions: Vec<FunctionDef>,
        /// Legacy function calling: `"none"`, `"auto"` or `{"name": ...}`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub function_call: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub response_format: Option<ResponseFormat>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub max_tokens: Option<u32>,
        /// Wins over `max_tokens` (which OpenAI deprecated for it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub max_completion_tokens: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub temperature: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub top_p: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub stop: Option<Stop>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub n: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub seed: Option<i64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub presence_penalty: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub frequency_penalty: Option<f64>,
        /// `none`, `minimal`, `low`, `medium`, `high` (or `xhigh`); checked by the
        /// translator so that a bad value is named.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub reasoning_effort: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub stream: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub stream_options: Option<StreamOptions>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub user: Option<String>,
        /// A stable key per conversation for OpenAI's prompt cache.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub prompt_cache_key: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub metadata: Option<Value>,
    }

    impl ChatCompletionRequest {
        /// True when the client asked for a stream (`"stream": true`).
        pub fn is_stream(&self) -> bool {
            self.stream == Some(true)
        }

        /// True when a stream should end with a usage chunk
        /// (`stream_options.include_usage`).
        pub fn include_usage(&self) -> bool {
            self.stream_options
                .as_ref()
                .and_then(|o| o.include_usage)
                .unwrap_or(false)
        }
    }

    /// `stream_options`.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct StreamOptions {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub include_usage: Option<bool>,
    }

    /// Who wrote a message.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "lowercase")]
    pub enum ChatRole {
        System,
        Developer,
        #[default]
        User,
        Assistant,
        Tool,
        /// Legacy function calling: a function's result.
        Function,
        /// Anything else; the translator rejects it naming the field.
        #[serde(other)]
        Unknown,
    }

    /// One message. A flat struct rather than one type per role, so that a message
    /// with an odd mix of fields is still read and judged by the translator.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct ChatMessage {
        pub role: ChatRole,
        /// `null` for an assistant message that only calls tools.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub content: Option<ChatContent>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        /// Assistant: the tools it called.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub tool_calls: Vec<ToolCall>,
        /// Tool: the call this message answers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub tool_call_id: Option<String>,
        /// Assistant, legacy: the function it called.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub function_call: Option<FunctionCall>,
        /// Assistant: reasoning text some clients send back (an extension).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub reasoning_content: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub refusal: Option<String>,
    }

    /// A message's content: a string or a list of parts.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    pub enum ChatContent {
        Text(String),
        Parts(Vec<ContentPart>),
    }

    /// A content part, tagged by `type`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum ContentPart {
        Text {
            text: String,
        },
        ImageUrl {
            image_url: ImageUrl,
        },
        /// `{"data": <base64>, "format": "wav"|"mp3"}`.
        InputAudio {
            input_audio: Value,
        },
        /// `{"file_data": <data URL or base64>, "filename", "file_id"}`.
        File {
            file: Value,
        },
        Refusal {
            refusal: String,
        },
        /// Any part this crate does not know, or a known type with missing fields.
        #[serde(untagged)]
        Other(Value),
    }

    impl ContentPart {
        /// The `type` of the part as the client spelled it (`"?"` when absent).
        pub fn type_name(&self) -> &str {
            match self {
                ContentPart::Text { .. } => "text",
                ContentPart::ImageUrl { .. } => "image_url",
                ContentPart::InputAudio { .. } => "input_audio",
                ContentPart::File { .. } => "file",
                ContentPart::Refusal { .. } => "refusal",
                ContentPart::Other(v) => v.get("type").and_then(Value::as_str).unwrap_or("?"),
            }
        }
    }

    /// An image: an `http(s)` URL or a `data:` URL.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ImageUrl {
        pub url: String,
        /// `auto`, `low` or `high`; Gemini has no equivalent and ignores it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub detail: Option<String>,
    }

    /// A tool call of an assistant message (request history and complete answers): a
    /// function call, or (`type: "custom"`) a call of a custom tool with its raw input.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct ToolCall {
        #[serde(default)]
        pub id: String,
        /// `function` or `custom`.
        #[serde(rename = "type", default = "function_type")]
        pub kind: String,
        /// The function called (`type: "function"`); the translator names a call with
        /// neither this nor `custom`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub function: Option<FunctionCall>,
        /// The custom tool called (`type: "custom"`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub custom: Option<CustomToolCall>,
        /// Google's OpenAI-compatible extension, which agm also speaks:
        /// `{"google": {"thought_signature": ...}}` on the first call of a turn.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub extra_content: Option<Value>,
    }

    pub(super) fn function_type() -> String {
        "function".to_owned()
    }

    /// A function's name and its arguments as a JSON string.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct FunctionCall {
        #[serde(default)]
        pub name: String,
        /// The namespace of a tool declared in a `namespace` tool; `name` is then the
        /// tool's name within it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub namespace: Option<String>,
        #[serde(default, deserialize_with = "string_or_json")]
        pub arguments: String,
    }

    /// A custom tool's name and the raw input the model wrote for it.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct CustomToolCall {
        #[serde(default)]
        pub name: String,
        /// The namespace of a tool declared in a `namespace` tool; `name` is then the
        /// tool's name within it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub namespace: Option<String>,
        #[serde(default)]
        pub input: String,
    }

    /// A tool the model may call.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct ChatTool {
        /// `function`, `custom`, `namespace`, or one of OpenAI's hosted tools
        /// (`web_search`, …), which the translator judges.
        #[serde(rename = "type", default = "function_type")]
        pub kind: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub function: Option<FunctionDef>,
        /// A custom (freeform) tool (`type: "custom"`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub custom: Option<CustomToolDef>,
        /// A namespace's name (`type: "namespace"`, the Responses API's shape).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        /// A namespace's description.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
        /// A namespace's tools (function or custom tools, in either API's shape),
        /// judged by the translator.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub tools: Vec<Value>,
    }

    /// A custom (freeform) tool: the model calls it with raw text, optionally
    /// constrained by a grammar.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct CustomToolDef {
        pub name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
        /// Unconstrained text when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub format: Option<CustomToolFormat>,
    }

    /// A custom tool's input `format` in Chat Completions (the grammar nested under
    /// `grammar`, unlike the Responses API's flat form).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum CustomToolFormat {
        /// Unconstrained text.
        Text,
        /// Input that follows a grammar.
        Grammar { grammar: Grammar },
        #[serde(untagged)]
        Other(Value),
    }

    /// A grammar a custom tool's input must follow.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Grammar {
        /// `lark` or `regex`.
        #[serde(default)]
        pub syntax: String,
        pub definition: String,
    }

    /// A function declaration.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct FunctionDef {
        pub name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
        /// A JSON Schema of the arguments.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub parameters: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub strict: Option<bool>,
    }

    /// `tool_choice`: `none` | `auto` | `required`, one named function or custom tool,
    /// or a set of allowed tools.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    pub enum ToolChoice {
        Mode(String),
        Named(NamedToolChoice),
        Custom(NamedCustomChoice),
        AllowedTools(AllowedToolsChoice),
        /// Anything else.
        Other(Value),
    }

    /// `{"type": "function", "function": {"name": ...}}`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct NamedToolChoice {
        #[serde(rename = "type", default = "function_type")]
        pub kind: String,
        pub function: FunctionName,
    }

    /// `{"type": "custom", "custom": {"name": ...}}`.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct NamedCustomChoice {
        /// `custom`.
        #[serde(rename = "type")]
        pub kind: String,
        pub custom: FunctionName,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct FunctionName {
        pub name: String,
    }

    /// `{"type": "allowed_tools", "allowed_tools": {"mode", "tools"}}`: the model may
    /// only use these of the request's tools.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct AllowedToolsChoice {
        /// `allowed_tools`.
        #[serde(rename = "type")]
        pub kind: String,
        pub allowed_tools: AllowedTools,
    }

    /// The `allowed_tools` of an [`AllowedToolsChoice`].
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct AllowedTools {
        /// `auto` or `required`.
        pub mode: String,
        /// Tool references: `{"type": "function", "function": {"name"}}`,
        /// `{"type": "custom", "custom": {"name"}}`; judged by the translator.
        #[serde(default)]
        pub tools: Vec<Value>,
    }

    /// `response_format`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum ResponseFormat {
        Text,
        JsonObject,
        JsonSchema {
            json_schema: JsonSchemaFormat,
        },
        #[serde(untagged)]
        Other(Value),
    }

    /// The `json_schema` of a `json_schema` response format.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct JsonSchemaFormat {
        #[serde(default)]
        pub name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub description: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub schema: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub strict: Option<bool>,
    }

    /// `stop`: one sequence or several.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(untagged)]
    pub enum Stop {
        One(String),
        Many(Vec<String>),
    }

    impl Stop {
        /// The sequences, in order.
        pub fn sequences(&self) -> Vec<&str> {
            match self {
                Stop::One(s) => vec![s.as_str()],
                Stop::Many(many) => many.iter().map(String::as_str).collect(),
            }
        }
    }

    /// Why the model stopped.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum FinishReason {
        Stop,
        Length,
        ToolCalls,
        ContentFilter,
        FunctionCall,
    }

    /// A complete answer (`object: "chat.completion"`).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ChatCompletion {
        pub id: String,
        /// Always `chat.completion`.
        pub object: String,
        /// Unix seconds.
        pub created: u64,
        pub model: String,
        pub choices: Vec<Choice>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub usage: Option<Usage>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub system_fingerprint: Option<String>,
    }

    /// One choice of a complete answer (agm always answers with one).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Choice {
        pub index: u32,
        pub message: AssistantMessage,
        #[serde(default)]
        pub logprobs: Option<Value>,
        pub finish_reason: Option<FinishReason>,
    }

    /// The assistant message of a complete answer.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct AssistantMessage {
        /// Always [`ChatRole::Assistant`].
        pub role: ChatRole,
        /// `null` when the model only called tools.
        pub content: Option<String>,
        #[serde(default)]
        pub refusal: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub tool_calls: Vec<ToolCall>,
        /// The model's thoughts (an extension many clients read), when asked for.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub reasoning_content: Option<String>,
    }

    impl Default for AssistantMessage {
        fn default() -> Self {
            AssistantMessage {
                role: ChatRole::Assistant,
                content: None,
                refusal: None,
                tool_calls: Vec::new(),
                reasoning_content: None,
            }
        }
    }

    /// Token counts. `prompt_tokens` includes the cached ones and `completion_tokens`
    /// the reasoning ones, as OpenAI counts them.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Usage {
        pub prompt_tokens: u64,
        pub completion_tokens: u64,
        pub total_tokens: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub prompt_tokens_details: Option<PromptTokensDetails>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub completion_tokens_details: Option<CompletionTokensDetails>,
    }

    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct PromptTokensDetails {
        pub cached_tokens: u64,
    }

    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct CompletionTokensDetails {
        pub reasoning_tokens: u64,
    }

    /// What a streamed answer sends, one SSE `data:` line each: chunks, then the
    /// `[DONE]` sentinel, or an error body when the stream breaks off (with no
    /// `[DONE]` after it).
    #[derive(Debug, Clone, PartialEq)]
    pub enum StreamEvent {
        Chunk(ChatCompletionChunk),
        Error(super::ErrorBody),
        /// `data: [DONE]`.
        Done,
    }

    /// One streamed chunk (`object: "chat.completion.chunk"`).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct ChatCompletionChunk {
        pub id: String,
        /// Always `chat.completion.chunk`.
        pub object: String,
        pub created: u64,
        pub model: String,
        /// Empty only in the final usage chunk.
        pub choices: Vec<ChunkChoice>,
        /// Absent unless the client asked for usage; then `null` in every chunk but
        /// the last one (`Some(None)` is `null`).
        #[serde(
            default,
            skip_serializing_if = "Option::is_none",
            deserialize_with = "present"
        )]
        pub usage: Option<Option<Usage>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub system_fingerprint: Option<String>,
    }

    /// A present field, `null` included (for `Option<Option<T>>`).
    fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(deserializer).map(Some)
    }

    /// The one choice of a chunk.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct ChunkChoice {
        pub index: u32,
        pub delta: ChunkDelta,
        #[serde(default)]
        pub logprobs: Option<Value>,
        pub finish_reason: Option<FinishReason>,
    }

    /// What a chunk adds to the message.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct ChunkDelta {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub role: Option<ChatRole>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub content: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub reasoning_content: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub tool_calls: Vec<ToolCallDelta>,
    }

    /// A piece of a tool call; `index` says which call of the message it belongs to,
    /// the first piece of a call carries its `id`, `type` and name.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct ToolCallDelta {
        pub index: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub id: Option<String>,
        #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
        pub kind: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub function: Option<FunctionCallDelta>,
        /// A custom tool call (`type: "custom"`): its name and raw input.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub custom: Option<CustomToolCallDelta>,
        /// See [`ToolCall::extra_content`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub extra_content: Option<Value>,
    }

    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct FunctionCallDelta {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        /// See [`FunctionCall::namespace`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub namespace: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub arguments: Option<String>,
    }

    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct CustomToolCallDelta {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub name: Option<String>,
        /// See [`FunctionCall::namespace`].
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub namespace: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub input: Option<String>,
    }
}

/// The Responses API.
pub mod responses {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serialize};
    use serde_json::Value;

    use super::string_or_json;

    /// `POST /v1/responses` body.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct ResponsesRequest {
        pub model: String,
        #[serde(default)]
        pub input: Input,
        /// The system prompt.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub instructions: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub tools: Vec<Tool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub tool_choice: Option<ToolChoice>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub parallel_tool_calls: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub max_output_tokens: Option<u32>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub temperature: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub top_p: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub reasoning: Option<Reasoning>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub text: Option<TextConfig>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub stream: Option<bool>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub store: Option<bool>,
        /// Server-side conversation state, which agm does not keep.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub previous_response_id: Option<String>,
        /// E.g. `reasoning.encrypted_content`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pub include: Vec<String>,
        /// A stable key per conversation (Codex sends its conversation id).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub prompt_cache_key: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub user: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub metadata: Option<Value>,
    }

    impl ResponsesRequest {
        /// True when the client asked for a stream (`"stream": true`).
        pub fn is_stream(&self) -> bool {
            self.stream == Some(true)
        }
    }

    /// `input`: a string (one user message) or a list of items.
    #[derive(Debug, Clone, PartialEq, Serialize)]
    #[serde(untagged)]
    pub enum Input {
        Text(String),
        Items(Vec<InputItem>),
    }

    impl Default for Input {
        fn default() -> Self {
            Input::Items(Vec::new())
        }
    }

    impl<'de> Deserialize<'de> for Input {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            match Value::deserialize(deserializer)? {
                Value::String(text) => Ok(Input::Text(text)),
                Value::Null => Ok(Input::default()),
                Value::Array(items) => items
                    .into_iter()
                    .map(|mut item| {
                        // An "easy" message has a role and no type.
                        if let Value::Object(map) = &mut item
                            && !map.contains_key("type")
                            && map.contains_key("role")
                        {
                            map.insert("type".into(), Value::from("message"));
                        }
                        serde_json::from_value(item).map_err(D::Error::custom)
                    })
                    .collect::<Result<Vec<InputItem>, _>>()
                    .map(Input::Items),
                _ => Err(D::Error::custom(
                    "input must be a string or an array of items",
                )),
            }
        }
    }

    /// One item of the conversation, tagged by `type` (a message without `type` is
    /// read as a message).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum InputItem {
        Message(InputMessage),
        FunctionCall {
            call_id: String,
            name: String,
            /// The namespace of a tool declared in a `namespace` tool (Codex sends it
            /// back as it got it); `name` is then the tool's name within it.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            namespace: Option<String>,
            #[serde(default, deserialize_with = "string_or_json")]
            arguments: String,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            id: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            status: Option<String>,
        },
        FunctionCallOutput {
            call_id: String,
            output: FunctionOutput,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            id: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            status: Option<String>,
        },
        /// An earlier call of a custom (freeform) tool: its raw `input` text.
        CustomToolCall {
            call_id: String,
            name: String,
            /// The namespace of a tool declared in a `namespace` tool (Codex sends it
            /// back as it got it); `name` is then the tool's name within it.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            namespace: Option<String>,
            #[serde(default)]
            input: String,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            id: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            status: Option<String>,
        },
        /// The result of a custom tool call (a string, or content parts).
        CustomToolCallOutput {
            call_id: String,
            output: FunctionOutput,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            id: Option<String>,
        },
        Reasoning {
            /// Codex leaves it out when it sends the item back.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            id: Option<String>,
            #[serde(default)]
            summary: Vec<SummaryText>,
            /// Full reasoning text, when a client kept it.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            content: Option<Vec<Value>>,
            /// For agm: the upstream thought signature.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            encrypted_content: Option<String>,
        },
        /// Tools declared in the conversation instead of in `tools` (Codex 0.171 with
        /// its default model: `{"type": "additional_tools", "id", "role":
        /// "developer", "tools": [...]}`, the tools in `tools`' shape, namespaces
        /// included). They count as if they were in `tools`; the item is no message.
        /// Fields this crate does not know are ignored.
        AdditionalTools {
            #[serde(default)]
            tools: Vec<Tool>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            role: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            id: Option<String>,
        },
        /// Any item this crate does not know, or a known type with missing fields.
        #[serde(untagged)]
        Other(Value),
    }

    impl InputItem {
        /// The `type` of the item as the client spelled it (`"?"` when absent).
        pub fn type_name(&self) -> &str {
            match self {
                InputItem::Message(_) => "message",
                InputItem::FunctionCall { .. } => "function_call",
                InputItem::FunctionCallOutput { .. } => "function_call_output",
                InputItem::CustomToolCall { .. } => "custom_tool_call",
                InputItem::CustomToolCallOutput { .. } => "custom_tool_call_output",
                InputItem::Reasoning { .. } => "reasoning",
                InputItem::AdditionalTools { .. } => "additional_tools",
                InputItem::Other(v) => v.get("type").and_then(Value::as_str).unwrap_or("?"),
            }
        }
    }

    /// A message item.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct InputMessage {
        /// `user`, `assistant`, `system` or `developer`.
        pub role: String,
        pub content: MessageContent,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub status: Option<String>,
    }

    /// A message's content: a string or a list of parts.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    pub enum MessageContent {
        Text(String),
        Parts(Vec<ContentPart>),
    }

    impl Default for MessageContent {
        fn default() -> Self {
            MessageContent::Parts(Vec::new())
        }
    }

    /// A content part of an input message or a function's output.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum ContentPart {
        InputText {
            text: String,
        },
        /// Text of an earlier assistant message.
        OutputText {
            text: String,
        },
        InputImage {
            /// An `http(s)` or `data:` URL.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            image_url: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            file_id: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            detail: Option<String>,
        },
        InputFile {
            #[serde(default, skip_serializing_if = "Option::is_none")]
            file_data: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            file_url: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            filename: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            file_id: Option<String>,
        },
        Refusal {
            refusal: String,
        },
        #[serde(untagged)]
        Other(Value),
    }

    impl ContentPart {
        /// The `type` of the part as the client spelled it (`"?"` when absent).
        pub fn type_name(&self) -> &str {
            match self {
                ContentPart::InputText { .. } => "input_text",
                ContentPart::OutputText { .. } => "output_text",
                ContentPart::InputImage { .. } => "input_image",
                ContentPart::InputFile { .. } => "input_file",
                ContentPart::Refusal { .. } => "refusal",
                ContentPart::Other(v) => v.get("type").and_then(Value::as_str).unwrap_or("?"),
            }
        }
    }

    /// A `function_call_output`'s `output`: a string or content parts (or, from some
    /// older clients, an object such as `{"content": ..., "success": ...}`).
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    pub enum FunctionOutput {
        Text(String),
        Parts(Vec<ContentPart>),
        Other(Value),
    }

    /// One part of a reasoning summary.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct SummaryText {
        /// Always `summary_text`.
        #[serde(rename = "type", default = "summary_text_type")]
        pub kind: String,
        #[serde(default)]
        pub text: String,
    }

    impl SummaryText {
        pub fn new(text: impl Into<String>) -> SummaryText {
            SummaryText {
                kind: summary_text_type(),
                text: text.into(),
            }
        }
    }

    fn summary_text_type() -> String {
        "summary_text".to_owned()
    }

    /// A tool the model may call. Function and custom tools reach the model; the
    /// others (`web_search`, `local_shell`, …) are kept as sent.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum Tool {
        Function {
            name: String,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            description: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            parameters: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            strict: Option<bool>,
        },
        /// A custom (freeform) tool: the model calls it with raw text, optionally
        /// constrained by a grammar (Codex's `apply_patch`).
        Custom {
            name: String,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            description: Option<String>,
            /// Unconstrained text when absent.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            format: Option<CustomToolFormat>,
        },
        /// A named group of tools (Codex's `multi_agent_v1`, its MCP servers): their
        /// calls name the tool and its namespace.
        Namespace {
            name: String,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            description: Option<String>,
            /// Function and custom tools in this API's shape, judged by the
            /// translator.
            #[serde(default)]
            tools: Vec<Value>,
        },
        #[serde(untagged)]
        Other(Value),
    }

    impl Tool {
        /// The `type` of the tool as the client spelled it (`"?"` when absent).
        pub fn type_name(&self) -> &str {
            match self {
                Tool::Function { .. } => "function",
                Tool::Custom { .. } => "custom",
                Tool::Namespace { .. } => "namespace",
                Tool::Other(v) => v.get("type").and_then(Value::as_str).unwrap_or("?"),
            }
        }
    }

    /// A custom tool's input `format`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum CustomToolFormat {
        /// Unconstrained text.
        Text,
        /// Input that follows a grammar.
        Grammar {
            /// `lark` or `regex`.
            #[serde(default)]
            syntax: String,
            definition: String,
        },
        #[serde(untagged)]
        Other(Value),
    }

    /// `tool_choice`: `none` | `auto` | `required`, `{"type": "function", "name"}`
    /// (or `{"type": "custom", "name"}`), or `{"type": "allowed_tools", "mode",
    /// "tools"}`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(untagged)]
    pub enum ToolChoice {
        Mode(String),
        Function(FunctionChoice),
        AllowedTools(AllowedToolsChoice),
        /// Hosted tools, …
        Other(Value),
    }

    /// `{"type": "allowed_tools", "mode": "auto"|"required", "tools": [...]}`: the
    /// model may only use these of the request's tools.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct AllowedToolsChoice {
        /// `allowed_tools`.
        #[serde(rename = "type")]
        pub kind: String,
        pub mode: String,
        /// Tool references: `{"type": "function", "name"}`, `{"type": "custom",
        /// "name"}`, hosted tools; judged by the translator.
        #[serde(default)]
        pub tools: Vec<Value>,
    }

    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct FunctionChoice {
        /// `function`.
        #[serde(rename = "type")]
        pub kind: String,
        pub name: String,
    }

    /// `reasoning`.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Reasoning {
        /// `none`, `minimal`, `low`, `medium`, `high` (or `xhigh`).
        #[serde(default)]
        pub effort: Option<String>,
        /// `auto`, `concise` or `detailed`.
        #[serde(default)]
        pub summary: Option<String>,
    }

    /// `text`.
    #[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
    pub struct TextConfig {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub format: Option<TextFormat>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub verbosity: Option<String>,
    }

    /// `text.format`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum TextFormat {
        Text,
        JsonObject,
        JsonSchema {
            #[serde(default)]
            name: String,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            schema: Option<Value>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            description: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            strict: Option<bool>,
        },
        #[serde(untagged)]
        Other(Value),
    }

    /// The response object, complete or (in stream events) in progress.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct Response {
        pub id: String,
        /// Always `response`.
        pub object: String,
        /// Unix seconds.
        pub created_at: u64,
        pub status: Status,
        #[serde(default)]
        pub error: Option<ResponseError>,
        #[serde(default)]
        pub incomplete_details: Option<IncompleteDetails>,
        #[serde(default)]
        pub instructions: Option<String>,
        #[serde(default)]
        pub max_output_tokens: Option<u32>,
        pub model: String,
        pub output: Vec<OutputItem>,
        #[serde(default)]
        pub parallel_tool_calls: bool,
        #[serde(default)]
        pub previous_response_id: Option<String>,
        #[serde(default)]
        pub reasoning: Option<Reasoning>,
        #[serde(default)]
        pub store: bool,
        #[serde(default)]
        pub temperature: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub text: Option<TextConfig>,
        #[serde(default)]
        pub tool_choice: Value,
        #[serde(default)]
        pub tools: Vec<Value>,
        #[serde(default)]
        pub top_p: Option<f64>,
        /// Always `disabled`.
        #[serde(default)]
        pub truncation: Option<String>,
        #[serde(default)]
        pub usage: Option<Usage>,
        #[serde(default)]
        pub user: Option<String>,
        #[serde(default)]
        pub metadata: Value,
    }

    impl Response {
        /// An in-progress response with no output and OpenAI's defaults.
        pub fn new(id: impl Into<String>, model: impl Into<String>, created_at: u64) -> Response {
            Response {
                id: id.into(),
                object: "response".to_owned(),
                created_at,
                status: Status::InProgress,
                error: None,
                incomplete_details: None,
                instructions: None,
                max_output_tokens: None,
                model: model.into(),
                output: Vec::new(),
                parallel_tool_calls: true,
                previous_response_id: None,
                reasoning: None,
                store: false,
                temperature: None,
                text: None,
                tool_choice: Value::from("auto"),
                tools: Vec::new(),
                top_p: None,
                truncation: Some("disabled".to_owned()),
                usage: None,
                user: None,
                metadata: Value::Object(serde_json::Map::new()),
            }
        }
    }

    /// A response's status.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum Status {
        InProgress,
        Completed,
        Incomplete,
        Failed,
    }

    /// Why a response failed.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct ResponseError {
        /// `server_error`, `rate_limit_exceeded`, …
        pub code: String,
        pub message: String,
    }

    /// Why a response is incomplete.
    #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
    pub struct IncompleteDetails {
        /// `max_output_tokens` or `content_filter`.
        pub reason: String,
    }

    /// An item the model produced.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum OutputItem {
        Message {
            id: String,
            /// Always `assistant`.
            role: String,
            status: ItemStatus,
            content: Vec<OutputContent>,
        },
        FunctionCall {
            id: String,
            call_id: String,
            name: String,
            /// See [`InputItem::FunctionCall`]'s `namespace`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            namespace: Option<String>,
            arguments: String,
            status: ItemStatus,
        },
        /// A call of a custom (freeform) tool, with its raw input text.
        CustomToolCall {
            id: String,
            call_id: String,
            name: String,
            /// See [`InputItem::FunctionCall`]'s `namespace`.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            namespace: Option<String>,
            input: String,
            status: ItemStatus,
        },
        Reasoning {
            id: String,
            summary: Vec<SummaryText>,
            /// For agm: the upstream thought signature, to be sent back as is.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            encrypted_content: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            status: Option<ItemStatus>,
        },
    }

    impl OutputItem {
        /// The item's id.
        pub fn id(&self) -> &str {
            match self {
                OutputItem::Message { id, .. }
                | OutputItem::FunctionCall { id, .. }
                | OutputItem::CustomToolCall { id, .. }
                | OutputItem::Reasoning { id, .. } => id,
            }
        }
    }

    /// An output item's status.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
    #[serde(rename_all = "snake_case")]
    pub enum ItemStatus {
        InProgress,
        Completed,
        Incomplete,
    }

    /// A content part of an output message.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    pub enum OutputContent {
        OutputText {
            text: String,
            #[serde(default)]
            annotations: Vec<Value>,
        },
        Refusal {
            refusal: String,
        },
    }

    impl OutputContent {
        /// An `output_text` part.
        pub fn text(text: impl Into<String>) -> OutputContent {
            OutputContent::OutputText {
                text: text.into(),
                annotations: Vec::new(),
            }
        }
    }

    /// Token counts. `input_tokens` includes the cached ones and `output_tokens` the
    /// reasoning ones, as OpenAI counts them.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Usage {
        pub input_tokens: u64,
        pub input_tokens_details: InputTokensDetails,
        pub output_tokens: u64,
        pub output_tokens_details: OutputTokensDetails,
        pub total_tokens: u64,
    }

    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct InputTokensDetails {
        pub cached_tokens: u64,
    }

    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct OutputTokensDetails {
        pub reasoning_tokens: u64,
    }

    /// One server-sent event of a streamed response. The JSON is the event's fields
    /// and its `type` (also the SSE `event:` name) and `sequence_number`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    pub struct StreamEvent {
        /// First, so that `type` leads the JSON as in OpenAI's events.
        #[serde(flatten)]
        pub kind: EventKind,
        /// Counts the events of a stream from 0.
        pub sequence_number: u64,
    }

    impl StreamEvent {
        /// The event's `type`, used as the SSE `event:` name.
        pub fn event_type(&self) -> &'static str {
            self.kind.event_type()
        }
    }

    /// The events, tagged by `type`.
    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(tag = "type")]
    pub enum EventKind {
        #[serde(rename = "response.created")]
        Created { response: Response },
        #[serde(rename = "response.in_progress")]
        InProgress { response: Response },
        #[serde(rename = "response.output_item.added")]
        OutputItemAdded {
            output_index: usize,
            item: OutputItem,
        },
        #[serde(rename = "response.content_part.added")]
        ContentPartAdded {
            item_id: String,
            output_index: usize,
            content_index: usize,
            part: OutputContent,
        },
        #[serde(rename = "response.output_text.delta")]
        OutputTextDelta {
            item_id: String,
            output_index: usize,
            content_index: usize,
            delta: String,
            #[serde(default)]
            logprobs: Vec<Value>,
        },
        #[serde(rename = "response.output_text.done")]
        OutputTextDone {
            item_id: String,
            output_index: usize,
            content_index: usize,
            text: String,
            #[serde(default)]
            logprobs: Vec<Value>,
        },
        #[serde(rename = "response.content_part.done")]
        ContentPartDone {
            item_id: String,
            output_index: usize,
            content_index: usize,
            part: OutputContent,
        },
        #[serde(rename = "response.function_call_arguments.delta")]
        FunctionCallArgumentsDelta {
            item_id: String,
            output_index: usize,
            delta: String,
        },
        #[serde(rename = "response.function_call_arguments.done")]
        FunctionCallArgumentsDone {
            item_id: String,
            output_index: usize,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            name: Option<String>,
            arguments: String,
        },
        #[serde(rename = "response.custom_tool_call_input.delta")]
        CustomToolCallInputDelta {
            item_id: String,
            output_index: usize,
            delta: String,
        },
        #[serde(rename = "response.custom_tool_call_input.done")]
        CustomToolCallInputDone {
            item_id: String,
            output_index: usize,
            input: String,
        },
        #[serde(rename = "response.reasoning_summary_part.added")]
        ReasoningSummaryPartAdded {
            item_id: String,
            output_index: usize,
            summary_index: usize,
            part: SummaryText,
        },
        #[serde(rename = "response.reasoning_summary_text.delta")]
        ReasoningSummaryTextDelta {
            item_id: String,
            output_index: usize,
            summary_index: usize,
            delta: String,
        },
        #[serde(rename = "response.reasoning_summary_text.done")]
        ReasoningSummaryTextDone {
            item_id: String,
            output_index: usize,
            summary_index: usize,
            text: String,
        },
        #[serde(rename = "response.reasoning_summary_part.done")]
        ReasoningSummaryPartDone {
            item_id: String,
            output_index: usize,
            summary_index: usize,
            part: SummaryText,
        },
        #[serde(rename = "response.output_item.done")]
        OutputItemDone {
            output_index: usize,
            item: OutputItem,
        },
        #[serde(rename = "response.completed")]
        Completed { response: Response },
        #[serde(rename = "response.incomplete")]
        Incomplete { response: Response },
        #[serde(rename = "response.failed")]
        Failed { response: Response },
        #[serde(rename = "error")]
        Error {
            #[serde(default)]
            code: Option<String>,
            message: String,
            #[serde(default)]
            param: Option<String>,
        },
    }

    impl EventKind {
        /// The event's `type`.
        pub fn event_type(&self) -> &'static str {
            match self {
                EventKind::Created { .. } => "response.created",
                EventKind::InProgress { .. } => "response.in_progress",
                EventKind::OutputItemAdded { .. } => "response.output_item.added",
                EventKind::ContentPartAdded { .. } => "response.content_part.added",
                EventKind::OutputTextDelta { .. } => "response.output_text.delta",
                EventKind::OutputTextDone { .. } => "response.output_text.done",
                EventKind::ContentPartDone { .. } => "response.content_part.done",
                EventKind::FunctionCallArgumentsDelta { .. } => {
                    "response.function_call_arguments.delta"
                }
                EventKind::FunctionCallArgumentsDone { .. } => {
                    "response.function_call_arguments.done"
                }
                EventKind::CustomToolCallInputDelta { .. } => {
                    "response.custom_tool_call_input.delta"
                }
                EventKind::CustomToolCallInputDone { .. } => "response.custom_tool_call_input.done",
                EventKind::ReasoningSummaryPartAdded { .. } => {
                    "response.reasoning_summary_part.added"
                }
                EventKind::ReasoningSummaryTextDelta { .. } => {
                    "response.reasoning_summary_text.delta"
                }
                EventKind::ReasoningSummaryTextDone { .. } => {
                    "response.reasoning_summary_text.done"
                }
                EventKind::ReasoningSummaryPartDone { .. } => {
                    "response.reasoning_summary_part.done"
                }
                EventKind::OutputItemDone { .. } => "response.output_item.done",
                EventKind::Completed { .. } => "response.completed",
                EventKind::Incomplete { .. } => "response.incomplete",
                EventKind::Failed { .. } => "response.failed",
                EventKind::Error { .. } => "error",
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::chat::*;
    use super::responses::{self, EventKind, Input, InputItem, OutputItem, StreamEvent};
    use super::*;
    use pretty_assertions::assert_eq;
    use serde_json::json;

    #[test]
    fn parses_an_openai_sdk_chat_request() {
        let req: ChatCompletionRequest = serde_json::from_value(json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}},
                    {"type": "input_audio", "input_audio": {"data": "UklG", "format": "wav"}},
                    {"type": "mystery"}
                ]},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": {"b": 2}}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
                {"role": "critic", "content": "?"}
            ],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "strict": true}}],
            "tool_choice": {"type": "function", "function": {"name": "f"}},
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}, "strict": true}},
            "stop": "END",
            "max_completion_tokens": 100,
            "reasoning_effort": "low",
            "stream": true,
            "stream_options": {"include_usage": true},
            "logit_bias": {"1": 2}
        }))
        .unwrap();
        assert!(req.is_stream() && req.include_usage());
        assert_eq!(req.messages[0].role, ChatRole::Developer);
        assert_eq!(req.messages[4].role, ChatRole::Unknown);
        let Some(ChatContent::Parts(parts)) = &req.messages[1].content else {
            panic!("parts expected");
        };
        assert_eq!(
            parts[1],
            ContentPart::ImageUrl {
                image_url: ImageUrl {
                    url: "data:image/png;base64,AAAA".into(),
                    detail: Some("low".into())
                }
            }
        );
        assert_eq!(parts[2].type_name(), "input_audio");
        assert!(matches!(&parts[3], ContentPart::Other(_)));
        assert_eq!(parts[3].type_name(), "mystery");
        assert_eq!(req.messages[2].content, None);
        assert_eq!(
            req.messages[2].tool_calls[1]
                .function
                .as_ref()
                .map(|f| f.arguments.as_str()),
            Some(r#"{"b":2}"#)
        );
        assert_eq!(
            req.tool_choice,
            Some(ToolChoice::Named(NamedToolChoice {
                kind: "function".into(),
                function: FunctionName { name: "f".into() }
            }))
        );
        assert!(matches!(
            req.response_format,
            Some(ResponseFormat::JsonSchema { .. })
        ));
        assert_eq!(req.stop.unwrap().sequences(), ["END"]);
        let auto: ToolChoice = serde_json::from_value(json!("required")).unwrap();
        assert_eq!(auto, ToolChoice::Mode("required".into()));
    }

    #[test]
    fn chat_custom_tools_calls_and_tool_choices() {
        let req: ChatCompletionRequest = serde_json::from_value(json!({
            "model": "gpt-5",
            "messages": [
                {"role": "user", "content": "patch it"},
                {"role": "assistant", "tool_calls": [
                    {"id": "call_1", "type": "custom", "custom": {"name": "apply_patch", "input": "*** Begin Patch"}}]},
                {"role": "tool", "tool_call_id": "call_1", "content": "done"}
            ],
            "tools": [
                {"type": "custom", "custom": {"name": "apply_patch", "description": "Edit files.",
                  "format": {"type": "grammar", "grammar": {"syntax": "lark", "definition": "start: x"}}}},
                {"type": "custom", "custom": {"name": "notes", "format": {"type": "text"}}},
                {"type": "web_search"}
            ],
            "tool_choice": {"type": "custom", "custom": {"name": "apply_patch"}}
        }))
        .unwrap();
        let call = &req.messages[1].tool_calls[0];
        assert_eq!(
            (call.kind.as_str(), call.function.as_ref()),
            ("custom", None)
        );
        assert_eq!(
            call.custom,
            Some(CustomToolCall {
                name: "apply_patch".into(),
                namespace: None,
                input: "*** Begin Patch".into()
            })
        );
        let custom = req.tools[0].custom.as_ref().unwrap();
        assert_eq!(
            custom.format,
            Some(CustomToolFormat::Grammar {
                grammar: Grammar {
                    syntax: "lark".into(),
                    definition: "start: x".into()
                }
            })
        );
        assert_eq!(
            req.tools[1].custom.as_ref().unwrap().format,
            Some(CustomToolFormat::Text)
        );
        assert_eq!(
            (req.tools[2].kind.as_str(), &req.tools[2].custom),
            ("web_search", &None)
        );
        assert_eq!(
            req.tool_choice,
            Some(ToolChoice::Custom(NamedCustomChoice {
                kind: "custom".into(),
                custom: FunctionName {
                    name: "apply_patch".into()
                }
            }))
        );
        // A custom call is written back without a `function`.
        assert_eq!(
            serde_json::to_value(call).unwrap(),
            json!({"id": "call_1", "type": "custom", "custom": {"name": "apply_patch", "input": "*** Begin Patch"}})
        );
        let allowed: ToolChoice = serde_json::from_value(json!({"type": "allowed_tools",
            "allowed_tools": {"mode": "required", "tools": [{"type": "function", "function": {"name": "f"}}]}}))
        .unwrap();
        let ToolChoice::AllowedTools(allowed) = allowed else {
            panic!("allowed_tools expected");
        };
        assert_eq!(allowed.allowed_tools.mode, "required");
        assert_eq!(allowed.allowed_tools.tools.len(), 1);
        let flat: responses::ToolChoice = serde_json::from_value(json!({"type": "allowed_tools",
            "mode": "auto", "tools": [{"type": "function", "name": "f"}]}))
        .unwrap();
        let responses::ToolChoice::AllowedTools(flat) = flat else {
            panic!("allowed_tools expected");
        };
        assert_eq!(
            (flat.kind.as_str(), flat.mode.as_str()),
            ("allowed_tools", "auto")
        );
        assert_eq!(
            serde_json::to_value(responses::ToolChoice::AllowedTools(flat)).unwrap(),
            json!({"type": "allowed_tools", "mode": "auto", "tools": [{"type": "function", "name": "f"}]})
        );
    }

    #[test]
    fn chunks_have_null_usage_only_when_asked() {
        let mut chunk = ChatCompletionChunk {
            id: "chatcmpl-1".into(),
            object: "chat.completion.chunk".into(),
            created: 7,
            model: "gpt-4o".into(),
            choices: vec![ChunkChoice {
                index: 0,
                delta: ChunkDelta {
                    tool_calls: vec![ToolCallDelta {
                        index: 1,
                        id: Some("call_1".into()),
                        kind: Some("function".into()),
                        function: Some(FunctionCallDelta {
                            name: Some("f".into()),
                            namespace: None,
                            arguments: Some("{}".into()),
                        }),
                        custom: None,
                        extra_content: None,
                    }],
                    ..ChunkDelta::default()
                },
                logprobs: None,
                finish_reason: None,
            }],
            usage: None,
            system_fingerprint: None,
        };
        assert_eq!(
            serde_json::to_value(&chunk).unwrap(),
            json!({"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 7, "model": "gpt-4o",
                   "choices": [{"index": 0, "logprobs": null, "finish_reason": null, "delta": {"tool_calls": [
                       {"index": 1, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}]})
        );
        chunk.usage = Some(None);
        let value = serde_json::to_value(&chunk).unwrap();
        assert_eq!(value["usage"], Value::Null);
        let back: ChatCompletionChunk = serde_json::from_value(value).unwrap();
        assert_eq!(back.usage, Some(None));
    }

    #[test]
    fn a_complete_answer_has_openais_nulls() {
        let completion = ChatCompletion {
            id: "chatcmpl-1".into(),
            object: "chat.completion".into(),
            created: 1,
            model: "m".into(),
            choices: vec![Choice {
                index: 0,
                message: AssistantMessage {
                    content: Some("hi".into()),
                    ..AssistantMessage::default()
                },
                logprobs: None,
                finish_reason: Some(FinishReason::Stop),
            }],
            usage: Some(Usage {
                prompt_tokens: 3,
                completion_tokens: 2,
                total_tokens: 5,
                prompt_tokens_details: Some(PromptTokensDetails { cached_tokens: 1 }),
                completion_tokens_details: None,
            }),
            system_fingerprint: None,
        };
        assert_eq!(
            serde_json::to_value(&completion).unwrap(),
            json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": "m",
                   "choices": [{"index": 0, "logprobs": null, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": "hi", "refusal": null}}],
                   "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5,
                             "prompt_tokens_details": {"cached_tokens": 1}}})
        );
    }

    #[test]
    fn error_body_shape() {
        assert_eq!(
            serde_json::to_value(ErrorBody::new("invalid_request_error", "n: too many")).unwrap(),
            json!({"error": {"message": "n: too many", "type": "invalid_request_error", "param": null, "code": null}})
        );
    }

    #[test]
    fn parses_a_codex_responses_request() {
        let req: responses::ResponsesRequest = serde_json::from_value(json!({
            "model": "gpt-5-codex",
            "instructions": "You are Codex.",
            "input": [
                {"type": "message", "role": "developer", "content": [{"type": "input_text", "text": "sandbox"}]},
                {"role": "user", "content": "fix it"},
                {"type": "reasoning", "summary": [{"type": "summary_text", "text": "plan"}], "encrypted_content": "c2ln"},
                {"type": "function_call", "call_id": "call_1", "name": "shell", "arguments": "{\"command\":[\"ls\"]}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"},
                {"type": "function_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "x"}]},
                {"type": "local_shell_call", "call_id": "c", "action": {}},
                {"type": "function_call", "name": "no call id"}
            ],
            "tools": [
                {"type": "function", "name": "shell", "description": "run", "parameters": {"type": "object"}, "strict": false},
                {"type": "web_search"}
            ],
            "tool_choice": "auto",
            "parallel_tool_calls": false,
            "reasoning": {"effort": "high", "summary": "auto"},
            "store": false,
            "stream": true,
            "include": ["reasoning.encrypted_content"],
            "prompt_cache_key": "conv-1"
        }))
        .unwrap();
        assert!(req.is_stream());
        let Input::Items(items) = &req.input else {
            panic!("items expected");
        };
        let types: Vec<&str> = items.iter().map(InputItem::type_name).collect();
        assert_eq!(
            types,
            [
                "message",
                "message",
                "reasoning",
                "function_call",
                "function_call_output",
                "function_call_output",
                "local_shell_call",
                "function_call"
            ]
        );
        assert!(matches!(items[7], InputItem::Other(_)));
        let InputItem::Reasoning {
            encrypted_content, ..
        } = &items[2]
        else {
            panic!("reasoning expected");
        };
        assert_eq!(encrypted_content.as_deref(), Some("c2ln"));
        assert_eq!(req.tools[1].type_name(), "web_search");
        let text: responses::ResponsesRequest =
            serde_json::from_value(json!({"model": "m", "input": "hi"})).unwrap();
        assert_eq!(text.input, Input::Text("hi".into()));
        assert!(
            serde_json::from_value::<responses::ResponsesRequest>(
                json!({"model": "m", "input": 3})
            )
            .is_err()
        );
    }

    #[test]
    fn stream_events_serialise_with_type_and_sequence_number() {
        let event = StreamEvent {
            sequence_number: 4,
            kind: EventKind::OutputItemAdded {
                output_index: 1,
                item: OutputItem::FunctionCall {
                    id: "fc_1".into(),
                    call_id: "call_1".into(),
                    name: "shell".into(),
                    namespace: None,
                    arguments: String::new(),
                    status: responses::ItemStatus::InProgress,
                },
            },
        };
        assert_eq!(event.event_type(), "response.output_item.added");
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(
            value,
            json!({"type": "response.output_item.added", "sequence_number": 4, "output_index": 1,
                   "item": {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "shell",
                            "arguments": "", "status": "in_progress"}})
        );
        let back: StreamEvent = serde_json::from_value(value).unwrap();
        assert_eq!(back, event);
        let error = StreamEvent {
            sequence_number: 0,
            kind: EventKind::Error {
                code: None,
                message: "boom".into(),
                param: None,
            },
        };
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            json!({"type": "error", "sequence_number": 0, "code": null, "message": "boom", "param": null})
        );
    }

    #[test]
    fn namespace_tools_and_namespaced_calls() {
        let req: responses::ResponsesRequest = serde_json::from_value(json!({
            "model": "gpt-5-codex",
            "input": [
                {"type": "function_call", "call_id": "call_1", "name": "spawn_agent",
                 "namespace": "multi_agent_v1", "arguments": "{}"},
                {"type": "function_call", "call_id": "call_2", "name": "shell", "arguments": "{}"}
            ],
            "tools": [
                {"type": "namespace", "name": "multi_agent_v1", "description": "Sub-agents.",
                 "tools": [{"type": "function", "name": "spawn_agent", "parameters": {}}]},
                {"type": "namespace", "tools": []}
            ]
        }))
        .unwrap();
        let Input::Items(items) = &req.input else {
            panic!("items expected");
        };
        assert!(
            matches!(&items[0], InputItem::FunctionCall { namespace: Some(ns), name, .. }
            if ns == "multi_agent_v1" && name == "spawn_agent")
        );
        assert!(matches!(
            &items[1],
            InputItem::FunctionCall {
                namespace: None,
                ..
            }
        ));
        assert_eq!(req.tools[0].type_name(), "namespace");
        assert!(
            matches!(&req.tools[0], responses::Tool::Namespace { tools, .. } if tools.len() == 1)
        );
        // Without its name, a namespace is kept as sent for the translator to refuse.
        assert!(matches!(req.tools[1], responses::Tool::Other(_)));
        assert_eq!(req.tools[1].type_name(), "namespace");

        let item = OutputItem::FunctionCall {
            id: "fc_1".into(),
            call_id: "call_1".into(),
            name: "spawn_agent".into(),
            namespace: Some("multi_agent_v1".into()),
            arguments: "{}".into(),
            status: responses::ItemStatus::Completed,
        };
        assert_eq!(
            serde_json::to_value(&item).unwrap(),
            json!({"type": "function_call", "id": "fc_1", "call_id": "call_1",
                   "name": "spawn_agent", "namespace": "multi_agent_v1", "arguments": "{}",
                   "status": "completed"})
        );
        let chat: ChatTool = serde_json::from_value(json!({"type": "namespace", "name": "ns",
            "tools": [{"type": "function", "function": {"name": "f"}}]}))
        .unwrap();
        assert_eq!(
            (chat.kind.as_str(), chat.name.as_deref(), chat.tools.len()),
            ("namespace", Some("ns"), 1)
        );
    }

    #[test]
    fn custom_tools_their_calls_and_events() {
        let req: responses::ResponsesRequest = serde_json::from_value(json!({
            "model": "gpt-5-codex",
            "input": [
                {"type": "custom_tool_call", "id": "ctc_1", "status": "completed", "call_id": "call_1",
                 "name": "apply_patch", "input": "*** Begin Patch\n*** End Patch"},
                {"type": "custom_tool_call_output", "call_id": "call_1", "output": "Done!"},
                {"type": "custom_tool_call_output", "call_id": "call_2", "output": [{"type": "input_text", "text": "x"}]},
                {"type": "custom_tool_call", "input": "no name"}
            ],
            "tools": [
                {"type": "custom", "name": "apply_patch", "description": "edit files",
                 "format": {"type": "grammar", "syntax": "lark", "definition": "start: x"}},
                {"type": "custom", "name": "free", "format": {"type": "text"}},
                {"type": "custom", "name": "bare"},
                {"type": "custom", "name": "odd", "format": {"type": "regex_someday"}},
                {"type": "custom"}
            ]
        }))
        .unwrap();
        let Input::Items(items) = &req.input else {
            panic!("items expected");
        };
        assert_eq!(
            items[0],
            InputItem::CustomToolCall {
                call_id: "call_1".into(),
                name: "apply_patch".into(),
                namespace: None,
                input: "*** Begin Patch\n*** End Patch".into(),
                id: Some("ctc_1".into()),
                status: Some("completed".into()),
            }
        );
        assert_eq!(items[1].type_name(), "custom_tool_call_output");
        assert!(matches!(
            &items[2],
            InputItem::CustomToolCallOutput {
                output: responses::FunctionOutput::Parts(_),
                ..
            }
        ));
        assert!(matches!(items[3], InputItem::Other(_)));
        assert_eq!(items[3].type_name(), "custom_tool_call");
        assert_eq!(
            req.tools[0],
            responses::Tool::Custom {
                name: "apply_patch".into(),
                description: Some("edit files".into()),
                format: Some(responses::CustomToolFormat::Grammar {
                    syntax: "lark".into(),
                    definition: "start: x".into()
                }),
            }
        );
        assert!(matches!(
            req.tools[1],
            responses::Tool::Custom {
                format: Some(responses::CustomToolFormat::Text),
                ..
            }
        ));
        assert!(matches!(
            req.tools[2],
            responses::Tool::Custom { format: None, .. }
        ));
        assert!(matches!(
            req.tools[3],
            responses::Tool::Custom {
                format: Some(responses::CustomToolFormat::Other(_)),
                ..
            }
        ));
        assert!(matches!(req.tools[4], responses::Tool::Other(_)));
        assert_eq!(req.tools[4].type_name(), "custom");

        let item = OutputItem::CustomToolCall {
            id: "ctc_1".into(),
            call_id: "call_1".into(),
            name: "apply_patch".into(),
            namespace: None,
            input: "patch".into(),
            status: responses::ItemStatus::Completed,
        };
        assert_eq!(
            serde_json::to_value(&item).unwrap(),
            json!({"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_1",
                   "name": "apply_patch", "input": "patch", "status": "completed"})
        );
        for (kind, value) in [
            (
                EventKind::CustomToolCallInputDelta {
                    item_id: "ctc_1".into(),
                    output_index: 2,
                    delta: "pa".into(),
                },
                json!({"type": "response.custom_tool_call_input.delta", "sequence_number": 7,
                       "item_id": "ctc_1", "output_index": 2, "delta": "pa"}),
            ),
            (
                EventKind::CustomToolCallInputDone {
                    item_id: "ctc_1".into(),
                    output_index: 2,
                    input: "patch".into(),
                },
                json!({"type": "response.custom_tool_call_input.done", "sequence_number": 7,
                       "item_id": "ctc_1", "output_index": 2, "input": "patch"}),
            ),
        ] {
            let event = StreamEvent {
                sequence_number: 7,
                kind,
            };
            assert_eq!(event.event_type(), value["type"]);
            assert_eq!(serde_json::to_value(&event).unwrap(), value);
            let back: StreamEvent = serde_json::from_value(value).unwrap();
            assert_eq!(back, event);
        }
    }
}
