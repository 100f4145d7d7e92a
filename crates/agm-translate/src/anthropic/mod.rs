//! Anthropic Messages ⇄ Gemini.
//!
//! - [`request`]: `MessagesRequest` → `GenerateContentRequest` ([`to_gemini`]), and
//!   `count_tokens` → Cloud Code `:countTokens` ([`count_tokens_to_gemini`]).
//! - [`response`]: a complete `GenerateContentResponse` → `MessagesResponse`
//!   ([`from_gemini`]).
//! - [`stream`]: upstream chunks → Anthropic stream events ([`StreamTranscoder`]).
//!
//! [`Messages`] is the whole API as the server's request path takes it
//! ([`ChatApi`]).

pub mod request;
pub mod response;
pub mod stream;

pub use request::{RequestOptions, Translated, count_tokens_to_gemini, to_gemini};
pub use response::{Converted, ResponseContext, assemble, convert, from_gemini};
pub use stream::{StreamTranscoder, to_sse};

use agm_wire::anthropic::{MessagesRequest, MessagesResponse};
use agm_wire::gemini::GenerateContentResponse;

use crate::TranslateError;
use crate::common::ChatApi;
use crate::thinking::SeenSignature;

/// The Anthropic Messages API (`POST /v1/messages`).
#[derive(Debug, Clone, Copy)]
pub struct Messages;

impl ChatApi for Messages {
    type Request = MessagesRequest;
    type Context = ResponseContext;
    type Transcoder = StreamTranscoder;
    type Answer = MessagesResponse;

    fn model(request: &MessagesRequest) -> &str {
        &request.model
    }

    fn is_stream(request: &MessagesRequest) -> bool {
        request.is_stream()
    }

    fn check(request: &MessagesRequest) -> Result<(), TranslateError> {
        if request.messages.is_empty() {
            return Err(TranslateError::invalid(
                "messages",
                "at least one message is required",
            ));
        }
        Ok(())
    }

    fn counts(request: &MessagesRequest) -> (usize, usize) {
        (request.messages.len(), request.tools.len())
    }

    fn to_gemini(
        request: &MessagesRequest,
        upstream_model: &str,
        options: &RequestOptions<'_>,
    ) -> Result<Translated, TranslateError> {
        to_gemini(request, upstream_model, options)
    }

    fn context(
        request: &MessagesRequest,
        translated: &Translated,
        id_seed: String,
        _unix_now: u64,
    ) -> ResponseContext {
        ResponseContext::for_request(&request.model, translated, id_seed)
    }

    fn convert(
        response: &GenerateContentResponse,
        context: &ResponseContext,
    ) -> (MessagesResponse, Vec<SeenSignature>) {
        let converted = convert(response, context);
        (converted.message, converted.signatures)
    }

    fn transcoder(context: ResponseContext) -> StreamTranscoder {
        StreamTranscoder::new(context)
    }
}
