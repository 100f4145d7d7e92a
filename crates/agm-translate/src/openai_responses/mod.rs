//! OpenAI Responses (`POST /v1/responses`, what Codex CLI speaks) ⇄ Gemini.
//!
//! - [`request`]: `ResponsesRequest` → `GenerateContentRequest` ([`to_gemini`]).
//! - [`response`]: a complete `GenerateContentResponse` → `Response`
//!   ([`from_gemini`]).
//! - [`stream`]: upstream chunks → `response.*` events ([`StreamTranscoder`],
//!   [`to_sse`]).
//!
//! agm keeps no state between requests: the client sends the whole conversation
//! (`store: false`, as Codex does), and thought signatures travel in the reasoning
//! items' `encrypted_content`.
//!
//! [`Responses`] is the whole API as the server's request path takes it
//! ([`ChatApi`]).

pub mod request;
pub mod response;
pub mod stream;

pub use crate::common::{RequestOptions, Translated};
pub use request::to_gemini;
pub use response::{Converted, ResponseContext, assemble, convert, from_gemini};
pub use stream::{StreamTranscoder, to_sse};

use agm_wire::gemini::GenerateContentResponse;
use agm_wire::openai::responses::{Input, Response, ResponsesRequest};

use crate::TranslateError;
use crate::common::ChatApi;
use crate::thinking::SeenSignature;

/// The OpenAI Responses API (`POST /v1/responses`).
#[derive(Debug, Clone, Copy)]
pub struct Responses;

impl ChatApi for Responses {
    type Request = ResponsesRequest;
    type Context = ResponseContext;
    type Transcoder = StreamTranscoder;
    type Answer = Response;

    fn model(request: &ResponsesRequest) -> &str {
        &request.model
    }

    fn is_stream(request: &ResponsesRequest) -> bool {
        request.is_stream()
    }

    fn check(_request: &ResponsesRequest) -> Result<(), TranslateError> {
        // `input` may be a string or items; the translation names what is wrong with it.
        Ok(())
    }

    fn counts(request: &ResponsesRequest) -> (usize, usize) {
        let items = match &request.input {
            Input::Text(_) => 1,
            Input::Items(items) => items.len(),
        };
        (items, request.tools.len())
    }

    fn to_gemini(
        request: &ResponsesRequest,
        upstream_model: &str,
        options: &RequestOptions<'_>,
    ) -> Result<Translated, TranslateError> {
        to_gemini(request, upstream_model, options)
    }

    fn context(
        request: &ResponsesRequest,
        translated: &Translated,
        id_seed: String,
        unix_now: u64,
    ) -> ResponseContext {
        ResponseContext::for_request(request, translated, id_seed, unix_now)
    }

    fn convert(
        response: &GenerateContentResponse,
        context: &ResponseContext,
    ) -> (Response, Vec<SeenSignature>) {
        let converted = convert(response, context);
        (converted.response, converted.signatures)
    }

    fn transcoder(context: ResponseContext) -> StreamTranscoder {
        StreamTranscoder::new(context)
    }
}
