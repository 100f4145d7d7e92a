//! OpenAI Chat Completions ⇄ Gemini.
//!
//! - [`request`]: `ChatCompletionRequest` → `GenerateContentRequest` ([`to_gemini`]).
//! - [`response`]: a complete `GenerateContentResponse` → `ChatCompletion`
//!   ([`from_gemini`]).
//! - [`stream`]: upstream chunks → `chat.completion.chunk`s and `[DONE]`
//!   ([`StreamTranscoder`], [`to_sse`]).
//!
//! [`ChatCompletions`] is the whole API as the server's request path takes it
//! ([`ChatApi`]).

pub mod request;
pub mod response;
pub mod stream;

pub use crate::common::{RequestOptions, Translated};
pub use request::to_gemini;
pub use response::{Converted, ResponseContext, assemble, convert, from_gemini};
pub use stream::{StreamTranscoder, to_sse};

use agm_wire::gemini::GenerateContentResponse;
use agm_wire::openai::chat::{ChatCompletion, ChatCompletionRequest};

use crate::TranslateError;
use crate::common::ChatApi;
use crate::thinking::SeenSignature;

/// The OpenAI Chat Completions API (`POST /v1/chat/completions`).
#[derive(Debug, Clone, Copy)]
pub struct ChatCompletions;

impl ChatApi for ChatCompletions {
    type Request = ChatCompletionRequest;
    type Context = ResponseContext;
    type Transcoder = StreamTranscoder;
    type Answer = ChatCompletion;

    fn model(request: &ChatCompletionRequest) -> &str {
        &request.model
    }

    fn is_stream(request: &ChatCompletionRequest) -> bool {
        request.is_stream()
    }

    fn check(request: &ChatCompletionRequest) -> Result<(), TranslateError> {
        if request.messages.is_empty() {
            return Err(TranslateError::invalid(
                "messages",
                "at least one message is required",
            ));
        }
        Ok(())
    }

    fn counts(request: &ChatCompletionRequest) -> (usize, usize) {
        (request.messages.len(), request.tools.len())
    }

    fn to_gemini(
        request: &ChatCompletionRequest,
        upstream_model: &str,
        options: &RequestOptions<'_>,
    ) -> Result<Translated, TranslateError> {
        to_gemini(request, upstream_model, options)
    }

    fn context(
        request: &ChatCompletionRequest,
        translated: &Translated,
        id_seed: String,
        unix_now: u64,
    ) -> ResponseContext {
        ResponseContext::for_request(request, translated, id_seed, unix_now)
    }

    fn convert(
        response: &GenerateContentResponse,
        context: &ResponseContext,
    ) -> (ChatCompletion, Vec<SeenSignature>) {
        let converted = convert(response, context);
        (converted.completion, converted.signatures)
    }

    fn transcoder(context: ResponseContext) -> StreamTranscoder {
        StreamTranscoder::new(context)
    }
}
