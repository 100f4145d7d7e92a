//! Gemini `GenerateContentResponse` → Anthropic `MessagesResponse`.
//!
//! A complete answer is converted by running it through the same
//! [`StreamTranscoder`] as a stream and assembling the events, so both paths agree on
//! every rule (block merging, tool ids, names, stop reasons, usage).

use agm_wire::anthropic::{ContentBlock, Delta, MessagesResponse, StreamEvent};
use agm_wire::gemini::GenerateContentResponse;
use serde_json::Value;

use crate::anthropic::request::Translated;
use crate::anthropic::stream::StreamTranscoder;
use crate::thinking::SeenSignature;
use crate::tools::ToolNameMap;

/// What converting an answer needs to know about its request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResponseContext {
    /// The model name the client asked for (echoed back in `model`).
    pub model: String,
    /// The request's tool-name map, to restore the client's names.
    pub tool_names: ToolNameMap,
    /// Whether thoughts go to the client as `thinking` blocks: set it from
    /// [`Translated::thinking`].
    pub thinking: bool,
    /// Seeds minted tool-use and message ids, together with the upstream
    /// `responseId`: something unique per request (the server's request id).
    pub id_seed: String,
    /// The request's stop sequences, which the transcoder enforces on the answer
    /// text: set it from [`Translated::stop_sequences`].
    pub stop_sequences: Vec<String>,
    /// The local estimate of the request's input tokens ([`crate::tokens::estimate`]
    /// of the translated request; 0 when unknown): the input count of a stream whose
    /// first chunk comes without Google's (`message_start` carries one, and Claude
    /// Code tracks its context from it), and of an answer Google never counted.
    pub estimated_input_tokens: u64,
}

impl ResponseContext {
    /// A context with thinking blocks passed through, an empty id seed and no stop
    /// sequences; set the fields when the request says otherwise.
    pub fn new(client_model: impl Into<String>, tool_names: ToolNameMap) -> ResponseContext {
        ResponseContext {
            model: client_model.into(),
            tool_names,
            thinking: true,
            id_seed: String::new(),
            stop_sequences: Vec::new(),
            estimated_input_tokens: 0,
        }
    }

    /// The context for the answer to a translated request.
    pub fn for_request(
        client_model: impl Into<String>,
        translated: &Translated,
        id_seed: impl Into<String>,
    ) -> ResponseContext {
        ResponseContext {
            model: client_model.into(),
            tool_names: translated.tool_names.clone(),
            thinking: translated.thinking,
            id_seed: id_seed.into(),
            stop_sequences: translated.stop_sequences.clone(),
            estimated_input_tokens: crate::tokens::estimate(&translated.request),
        }
    }
}

/// A converted answer and the signatures it carried (for the signature cache).
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    pub message: MessagesResponse,
    pub signatures: Vec<SeenSignature>,
}

/// Converts a complete upstream answer.
pub fn from_gemini(resp: &GenerateContentResponse, ctx: &ResponseContext) -> MessagesResponse {
    convert(resp, ctx).message
}

/// Converts a complete upstream answer, keeping the signatures it carried.
pub fn convert(resp: &GenerateContentResponse, ctx: &ResponseContext) -> Converted {
    let mut transcoder = StreamTranscoder::new(ctx.clone());
    let mut events = transcoder.push(resp);
    events.extend(transcoder.finish());
    Converted {
        message: assemble(&events),
        signatures: transcoder.signatures().to_vec(),
    }
}

/// Builds the complete message a client would assemble from stream events (for a
/// non-streaming client served from an upstream stream).
pub fn assemble(events: &[StreamEvent]) -> MessagesResponse {
    let mut message = MessagesResponse::new("", "");
    // Tool input arrives as JSON text; parse it when its block stops.
    let mut partial_json: Vec<(usize, String)> = Vec::new();
    for event in events {
        match event {
            StreamEvent::MessageStart { message: start } => message = start.clone(),
            StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => {
                if *index == message.content.len() {
                    message.content.push(content_block.clone());
                }
            }
            StreamEvent::ContentBlockDelta { index, delta } => {
                let Some(block) = message.content.get_mut(*index) else {
                    continue;
                };
                match (block, delta) {
                    (ContentBlock::Text { text, .. }, Delta::TextDelta { text: more }) => {
                        text.push_str(more);
                    }
                    (
                        ContentBlock::Thinking { thinking, .. },
                        Delta::ThinkingDelta { thinking: more },
                    ) => {
                        thinking.push_str(more);
                    }
                    (
                        ContentBlock::Thinking { signature, .. },
                        Delta::SignatureDelta { signature: sig },
                    ) => {
                        signature.clone_from(sig);
                    }
                    (
                        ContentBlock::ToolUse { .. },
                        Delta::InputJsonDelta { partial_json: more },
                    ) => match partial_json.iter_mut().find(|(i, _)| i == index) {
                        Some((_, json)) => json.push_str(more),
                        None => partial_json.push((*index, more.clone())),
                    },
                    _ => {}
                }
            }
            StreamEvent::ContentBlockStop { index } => {
                if let Some(at) = partial_json.iter().position(|(i, _)| i == index) {
                    let (_, json) = partial_json.swap_remove(at);
                    if let Some(ContentBlock::ToolUse { input, .. }) =
                        message.content.get_mut(*index)
                    {
                        *input = serde_json::from_str(&json).unwrap_or(Value::String(json));
                    }
                }
            }
            StreamEvent::MessageDelta { delta, usage } => {
                message.stop_reason = delta.stop_reason;
                message.stop_sequence.clone_from(&delta.stop_sequence);
                message.usage.output_tokens = usage.output_tokens;
                if let Some(input) = usage.input_tokens {
                    message.usage.input_tokens = input;
                }
                if usage.cache_read_input_tokens.is_some() {
                    message.usage.cache_read_input_tokens = usage.cache_read_input_tokens;
                }
                if usage.cache_creation_input_tokens.is_some() {
                    message.usage.cache_creation_input_tokens = usage.cache_creation_input_tokens;
                }
            }
            StreamEvent::MessageStop | StreamEvent::Ping | StreamEvent::Error { .. } => {}
        }
    }
    message
}
