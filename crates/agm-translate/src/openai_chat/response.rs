//! Gemini `GenerateContentResponse` → Chat Completions `ChatCompletion`.
//!
//! A complete answer is converted by running it through the same
//! [`StreamTranscoder`] as a stream and assembling the chunks, so both paths agree on
//! every rule (tool ids, names, finish reasons, usage).

use std::collections::BTreeSet;

use agm_wire::gemini::GenerateContentResponse;
use agm_wire::openai::chat::{
    AssistantMessage, ChatCompletion, ChatCompletionRequest, Choice, CustomToolCall, FunctionCall,
    StreamEvent, ToolCall,
};

use crate::common::Translated;
use crate::openai_chat::request::custom_tool_names;
use crate::openai_chat::stream::StreamTranscoder;
use crate::thinking::SeenSignature;
use crate::tools::ToolNameMap;

/// What converting an answer needs to know about its request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResponseContext {
    /// The model name the client asked for (echoed back in `model`).
    pub model: String,
    /// The request's tool-name map, to restore the client's names.
    pub tool_names: ToolNameMap,
    /// Whether thoughts go to the client as `reasoning_content`: set it from
    /// [`Translated::thinking`].
    pub thinking: bool,
    /// Seeds minted tool-call and completion ids, together with the upstream
    /// `responseId`: something unique per request (the server's request id).
    pub id_seed: String,
    /// The `created` timestamp (Unix seconds) of every chunk; the caller reads the
    /// clock.
    pub created: u64,
    /// Whether a stream ends with a usage chunk (`stream_options.include_usage`);
    /// complete answers always carry usage.
    pub include_usage: bool,
    /// The upstream names of the request's custom tools: their calls go to the
    /// client as `type: "custom"` tool calls, with the `input` argument as the raw
    /// input.
    pub custom_tools: BTreeSet<String>,
    /// The request's `stop` sequences, which the transcoder enforces on the answer
    /// text: set it from [`Translated::stop_sequences`].
    pub stop_sequences: Vec<String>,
}

impl ResponseContext {
    /// The context for the answer to a translated request.
    pub fn for_request(
        req: &ChatCompletionRequest,
        translated: &Translated,
        id_seed: impl Into<String>,
        created: u64,
    ) -> ResponseContext {
        ResponseContext {
            model: req.model.clone(),
            tool_names: translated.tool_names.clone(),
            thinking: translated.thinking,
            id_seed: id_seed.into(),
            created,
            include_usage: !req.is_stream() || req.include_usage(),
            custom_tools: custom_tool_names(req, &translated.tool_names),
            stop_sequences: translated.stop_sequences.clone(),
        }
    }
}

/// A converted answer and the signatures it carried (for the signature cache).
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    pub completion: ChatCompletion,
    pub signatures: Vec<SeenSignature>,
}

/// Converts a complete upstream answer.
pub fn from_gemini(resp: &GenerateContentResponse, ctx: &ResponseContext) -> ChatCompletion {
    convert(resp, ctx).completion
}

/// Converts a complete upstream answer, keeping the signatures it carried.
pub fn convert(resp: &GenerateContentResponse, ctx: &ResponseContext) -> Converted {
    let mut ctx = ctx.clone();
    ctx.include_usage = true;
    let mut transcoder = StreamTranscoder::new(ctx);
    let mut events = transcoder.push(resp);
    events.extend(transcoder.finish());
    Converted {
        completion: assemble(&events),
        signatures: transcoder.signatures().to_vec(),
    }
}

/// Builds the complete answer a client would assemble from the chunks (for a
/// non-streaming client served from an upstream stream: give that transcoder
/// `include_usage`, or the answer has no usage).
pub fn assemble(events: &[StreamEvent]) -> ChatCompletion {
    let mut completion = ChatCompletion {
        id: String::new(),
        object: "chat.completion".to_owned(),
        created: 0,
        model: String::new(),
        choices: Vec::new(),
        usage: None,
        system_fingerprint: None,
    };
    let mut content = String::new();
    let mut reasoning = String::new();
    let mut calls: Vec<(u32, ToolCall)> = Vec::new();
    let mut finish_reason = None;
    for event in events {
        let StreamEvent::Chunk(chunk) = event else {
            continue;
        };
        if completion.id.is_empty() {
            completion.id.clone_from(&chunk.id);
            completion.created = chunk.created;
            completion.model.clone_from(&chunk.model);
        }
        if let Some(Some(usage)) = chunk.usage {
            completion.usage = Some(usage);
        }
        for choice in &chunk.choices {
            let delta = &choice.delta;
            if let Some(text) = &delta.content {
                content.push_str(text);
            }
            if let Some(text) = &delta.reasoning_content {
                reasoning.push_str(text);
            }
            for piece in &delta.tool_calls {
                let at = match calls.iter().position(|(i, _)| *i == piece.index) {
                    Some(at) => at,
                    None => {
                        calls.push((piece.index, ToolCall::default()));
                        calls.len() - 1
                    }
                };
                let call = &mut calls[at].1;
                if let Some(id) = &piece.id {
                    call.id.clone_from(id);
                }
                if let Some(kind) = &piece.kind {
                    call.kind.clone_from(kind);
                }
                if let Some(delta) = &piece.function {
                    let function = call.function.get_or_insert_with(FunctionCall::default);
                    if let Some(name) = &delta.name {
                        function.name.clone_from(name);
                    }
                    if delta.namespace.is_some() {
                        function.namespace.clone_from(&delta.namespace);
                    }
                    if let Some(arguments) = &delta.arguments {
                        function.arguments.push_str(arguments);
                    }
                }
                if let Some(delta) = &piece.custom {
                    let custom = call.custom.get_or_insert_with(CustomToolCall::default);
                    if let Some(name) = &delta.name {
                        custom.name.clone_from(name);
                    }
                    if delta.namespace.is_some() {
                        custom.namespace.clone_from(&delta.namespace);
                    }
                    if let Some(input) = &delta.input {
                        custom.input.push_str(input);
                    }
                }
                if piece.extra_content.is_some() {
                    call.extra_content.clone_from(&piece.extra_content);
                }
            }
            if choice.finish_reason.is_some() {
                finish_reason = choice.finish_reason;
            }
        }
    }
    let tool_calls: Vec<ToolCall> = calls.into_iter().map(|(_, call)| call).collect();
    completion.choices.push(Choice {
        index: 0,
        message: AssistantMessage {
            content: (!content.is_empty() || tool_calls.is_empty()).then_some(content),
            tool_calls,
            reasoning_content: (!reasoning.is_empty()).then_some(reasoning),
            ..AssistantMessage::default()
        },
        logprobs: None,
        finish_reason,
    });
    completion
}
