//! Gemini `GenerateContentResponse` → Responses API `Response`.
//!
//! A complete answer is converted by running it through the same
//! [`StreamTranscoder`] as a stream and taking the response of its last event, so
//! both paths agree on every rule (items, ids, signatures, status, usage).

use std::collections::BTreeSet;

use agm_wire::gemini::GenerateContentResponse;
use agm_wire::openai::responses::{EventKind, Response, ResponsesRequest, StreamEvent};
use serde_json::Value;

use crate::common::Translated;
use crate::openai_responses::request::custom_tool_names;
use crate::openai_responses::stream::StreamTranscoder;
use crate::thinking::SeenSignature;
use crate::tools::ToolNameMap;

/// What converting an answer needs to know about its request.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponseContext {
    /// The response object as the request shapes it (model, instructions, tools,
    /// settings echoed back); id, time, status, output and usage are filled in.
    pub template: Response,
    /// The request's tool-name map, to restore the client's names.
    pub tool_names: ToolNameMap,
    /// The upstream names of the request's custom (freeform) tools: their calls go
    /// to the client as `custom_tool_call` items, with the `input` argument as the
    /// raw input.
    pub custom_tools: BTreeSet<String>,
    /// Whether thoughts go to the client as reasoning summaries: set it from
    /// [`Translated::thinking`]. Signatures go out as `encrypted_content` either way.
    pub thinking: bool,
    /// Seeds minted ids (response, items, call ids), together with the upstream
    /// `responseId`: something unique per request (the server's request id).
    pub id_seed: String,
    /// `created_at` (Unix seconds); the caller reads the clock.
    pub created_at: u64,
}

impl ResponseContext {
    /// A context with a bare template (no echoed settings), thoughts shown and an
    /// empty id seed; set the fields when the request says otherwise.
    pub fn new(client_model: impl Into<String>, tool_names: ToolNameMap) -> ResponseContext {
        ResponseContext {
            template: Response::new("", client_model, 0),
            tool_names,
            custom_tools: BTreeSet::new(),
            thinking: true,
            id_seed: String::new(),
            created_at: 0,
        }
    }

    /// The context for the answer to a translated request.
    pub fn for_request(
        req: &ResponsesRequest,
        translated: &Translated,
        id_seed: impl Into<String>,
        created_at: u64,
    ) -> ResponseContext {
        ResponseContext {
            template: template(req, created_at),
            tool_names: translated.tool_names.clone(),
            custom_tools: custom_tool_names(req, &translated.tool_names),
            thinking: translated.thinking,
            id_seed: id_seed.into(),
            created_at,
        }
    }
}

/// The response object echoing the request's settings, as OpenAI's does.
fn template(req: &ResponsesRequest, created_at: u64) -> Response {
    let mut response = Response::new("", req.model.clone(), created_at);
    response.instructions.clone_from(&req.instructions);
    response.max_output_tokens = req.max_output_tokens;
    response.parallel_tool_calls = req.parallel_tool_calls.unwrap_or(true);
    response.reasoning.clone_from(&req.reasoning);
    response.temperature = req.temperature;
    response.top_p = req.top_p;
    response.text.clone_from(&req.text);
    if let Some(choice) = &req.tool_choice {
        response.tool_choice = serde_json::to_value(choice).unwrap_or(Value::Null);
    }
    response.tools = req
        .tools
        .iter()
        .filter_map(|t| serde_json::to_value(t).ok())
        .collect();
    response.user.clone_from(&req.user);
    if let Some(metadata) = &req.metadata {
        response.metadata = metadata.clone();
    }
    response
}

/// A converted answer and the signatures it carried (for the signature cache).
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    pub response: Response,
    pub signatures: Vec<SeenSignature>,
}

/// Converts a complete upstream answer.
pub fn from_gemini(resp: &GenerateContentResponse, ctx: &ResponseContext) -> Response {
    convert(resp, ctx).response
}

/// Converts a complete upstream answer, keeping the signatures it carried.
pub fn convert(resp: &GenerateContentResponse, ctx: &ResponseContext) -> Converted {
    let mut transcoder = StreamTranscoder::new(ctx.clone());
    let mut events = transcoder.push(resp);
    events.extend(transcoder.finish());
    Converted {
        response: assemble(&events).unwrap_or_else(|| ctx.template.clone()),
        signatures: transcoder.signatures().to_vec(),
    }
}

/// The response of the stream's last `response.*` event (the complete response
/// after `response.completed`); `None` when there was none.
pub fn assemble(events: &[StreamEvent]) -> Option<Response> {
    events.iter().rev().find_map(|event| match &event.kind {
        EventKind::Completed { response }
        | EventKind::Incomplete { response }
        | EventKind::Failed { response }
        | EventKind::InProgress { response }
        | EventKind::Created { response } => Some(response.clone()),
        _ => None,
    })
}
