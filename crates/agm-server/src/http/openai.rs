//! `POST /v1/chat/completions` (OpenAI Chat Completions) and `POST /v1/responses`
//! (OpenAI Responses, as Codex CLI uses it).

use agm_translate::TranslateError;
use agm_translate::common::{RequestOptions, Translated};
use agm_translate::thinking::SeenSignature;
use agm_translate::{openai_chat as chat, openai_responses as responses};
use agm_wire::gemini::GenerateContentResponse;
use agm_wire::openai::chat::{ChatCompletion, ChatCompletionRequest};
use agm_wire::openai::responses::{Response as ResponsesAnswer, ResponsesRequest};
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::response::Response;

use crate::app::SharedState;
use crate::http::conversation::{self, Conversation};
use crate::http::error::ApiKind;

/// SSE comment lines keep OpenAI streams open; clients ignore them.
const KEEPALIVE: &str = ": keep-alive\n\n";

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(state): State<SharedState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    conversation::serve::<ChatCompletions>(&state, body).await
}

/// `POST /v1/responses`.
pub async fn responses(
    State(state): State<SharedState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    conversation::serve::<Responses>(&state, body).await
}

pub struct ChatCompletions;

impl Conversation for ChatCompletions {
    const API: ApiKind = ApiKind::OpenAi;
    type Request = ChatCompletionRequest;
    type Context = chat::ResponseContext;
    type Transcoder = chat::StreamTranscoder;
    type Answer = ChatCompletion;

    fn model(request: &ChatCompletionRequest) -> &str {
        &request.model
    }

    fn is_stream(request: &ChatCompletionRequest) -> bool {
        request.is_stream()
    }

    fn counts(request: &ChatCompletionRequest) -> (usize, usize) {
        (request.messages.len(), request.tools.len())
    }

    fn check(request: &ChatCompletionRequest) -> Result<(), String> {
        if request.messages.is_empty() {
            return Err("messages: at least one message is required".into());
        }
        Ok(())
    }

    fn translate(
        request: &ChatCompletionRequest,
        upstream_model: &str,
        options: &RequestOptions<'_>,
    ) -> Result<Translated, TranslateError> {
        chat::to_gemini(request, upstream_model, options)
    }

    fn context(
        request: &ChatCompletionRequest,
        translated: &Translated,
        seed: String,
        unix_now: u64,
    ) -> chat::ResponseContext {
        chat::ResponseContext::for_request(request, translated, seed, unix_now)
    }

    fn convert(
        response: &GenerateContentResponse,
        context: &chat::ResponseContext,
    ) -> (ChatCompletion, Vec<SeenSignature>) {
        let converted = chat::convert(response, context);
        (converted.completion, converted.signatures)
    }

    fn transcoder(context: chat::ResponseContext) -> chat::StreamTranscoder {
        chat::StreamTranscoder::new(context)
    }

    fn push(
        transcoder: &mut chat::StreamTranscoder,
        chunk: &GenerateContentResponse,
    ) -> Vec<String> {
        transcoder.push(chunk).iter().map(chat::to_sse).collect()
    }

    fn finish(transcoder: &mut chat::StreamTranscoder) -> Vec<String> {
        transcoder.finish().iter().map(chat::to_sse).collect()
    }

    fn fail(transcoder: &mut chat::StreamTranscoder, message: &str) -> Vec<String> {
        transcoder.fail(message).iter().map(chat::to_sse).collect()
    }

    fn signatures(transcoder: &chat::StreamTranscoder) -> &[SeenSignature] {
        transcoder.signatures()
    }

    fn keepalive() -> String {
        KEEPALIVE.to_owned()
    }
}

pub struct Responses;

impl Conversation for Responses {
    const API: ApiKind = ApiKind::OpenAi;
    type Request = ResponsesRequest;
    type Context = responses::ResponseContext;
    type Transcoder = responses::StreamTranscoder;
    type Answer = ResponsesAnswer;

    fn model(request: &ResponsesRequest) -> &str {
        &request.model
    }

    fn is_stream(request: &ResponsesRequest) -> bool {
        request.is_stream()
    }

    fn counts(request: &ResponsesRequest) -> (usize, usize) {
        let items = match &request.input {
            agm_wire::openai::responses::Input::Text(_) => 1,
            agm_wire::openai::responses::Input::Items(items) => items.len(),
        };
        (items, request.tools.len())
    }

    fn check(_request: &ResponsesRequest) -> Result<(), String> {
        // `input` may be a string or items; the translator names what is wrong with it.
        Ok(())
    }

    fn translate(
        request: &ResponsesRequest,
        upstream_model: &str,
        options: &RequestOptions<'_>,
    ) -> Result<Translated, TranslateError> {
        responses::to_gemini(request, upstream_model, options)
    }

    fn context(
        request: &ResponsesRequest,
        translated: &Translated,
        seed: String,
        unix_now: u64,
    ) -> responses::ResponseContext {
        responses::ResponseContext::for_request(request, translated, seed, unix_now)
    }

    fn convert(
        response: &GenerateContentResponse,
        context: &responses::ResponseContext,
    ) -> (ResponsesAnswer, Vec<SeenSignature>) {
        let converted = responses::convert(response, context);
        (converted.response, converted.signatures)
    }

    fn transcoder(context: responses::ResponseContext) -> responses::StreamTranscoder {
        responses::StreamTranscoder::new(context)
    }

    fn push(
        transcoder: &mut responses::StreamTranscoder,
        chunk: &GenerateContentResponse,
    ) -> Vec<String> {
        transcoder
            .push(chunk)
            .iter()
            .map(responses::to_sse)
            .collect()
    }

    fn finish(transcoder: &mut responses::StreamTranscoder) -> Vec<String> {
        transcoder.finish().iter().map(responses::to_sse).collect()
    }

    fn fail(transcoder: &mut responses::StreamTranscoder, message: &str) -> Vec<String> {
        transcoder
            .fail(message)
            .iter()
            .map(responses::to_sse)
            .collect()
    }

    fn signatures(transcoder: &responses::StreamTranscoder) -> &[SeenSignature] {
        transcoder.signatures()
    }

    fn keepalive() -> String {
        KEEPALIVE.to_owned()
    }
}
