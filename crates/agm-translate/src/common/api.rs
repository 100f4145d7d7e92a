//! What a caller serving the client APIs needs of the converters, as two traits:
//!
//! - [`Transcoder`]: one upstream stream into the client's stream, frame by frame
//!   (Anthropic's events, Chat Completions chunks, Responses events, and the Gemini
//!   API's chunks passed through, [`crate::gemini_api::Passthrough`]).
//! - [`ChatApi`]: everything one chat-style API (Anthropic Messages, OpenAI Chat
//!   Completions, OpenAI Responses) plugs into the shared request path: reading its
//!   request, translating it, converting a whole answer, and its [`Transcoder`].
//!
//! With them the caller has one generic path for every API, and each API's own rules
//! stay in its module.

use agm_wire::gemini::GenerateContentResponse;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::common::{RequestOptions, Translated};
use crate::error::TranslateError;
use crate::thinking::SeenSignature;

/// Why a stream ends before the upstream finished it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamFault {
    /// The upstream stream broke; the upstream error's message.
    Broken(String),
    /// The request's deadline (the server's `server.request_timeout`) passed.
    Deadline,
}

impl std::fmt::Display for StreamFault {
    /// The message the client's error event carries.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StreamFault::Broken(message) => write!(f, "the upstream stream broke: {message}"),
            StreamFault::Deadline => {
                f.write_str("the request took longer than server.request_timeout")
            }
        }
    }
}

/// One upstream stream turned into the client's stream: each method answers with the
/// frames to send, ready for the wire (SSE frames for every API agm serves).
pub trait Transcoder {
    /// The frames for the next upstream chunk.
    fn on_chunk(&mut self, chunk: &GenerateContentResponse) -> Vec<String>;

    /// The frames that end a complete stream (the upstream stream ended).
    fn on_end(&mut self) -> Vec<String>;

    /// The frames that end a broken stream with the API's own error.
    fn on_fault(&mut self, fault: &StreamFault) -> Vec<String>;

    /// True once the transcoder has ended the answer: by `on_end` or `on_fault`, or
    /// on its own because a stop sequence matched. After that it sends nothing more,
    /// and the caller should drop the upstream stream (Google keeps generating
    /// otherwise).
    fn finished(&self) -> bool;

    /// Every signature the upstream sent so far, for the caller's signature cache.
    fn signatures(&self) -> &[SeenSignature];

    /// What a quiet stream sends to stay open; `None`: it stays quiet.
    fn keepalive(&self) -> Option<String>;
}

/// A chat-style client API and its converters: what the shared request path needs to
/// know of it. Implemented by [`crate::anthropic::Messages`],
/// [`crate::openai_chat::ChatCompletions`] and [`crate::openai_responses::Responses`].
pub trait ChatApi: 'static {
    /// The client's request.
    type Request: DeserializeOwned + Send + Sync;
    /// What converting the answer needs to know of the request.
    type Context: Send;
    /// The stream transcoder; it ends the answer on its own when a stop sequence
    /// matches ([`Transcoder::finished`]).
    type Transcoder: Transcoder + Send + 'static;
    /// A whole answer.
    type Answer: Serialize;

    /// The model the client asked for.
    fn model(request: &Self::Request) -> &str;

    /// Whether the client asked for a stream.
    fn is_stream(request: &Self::Request) -> bool;

    /// The checks to make before anything else (a non-empty list and the like),
    /// naming the field; the translation makes the rest.
    fn check(request: &Self::Request) -> Result<(), TranslateError>;

    /// How many messages (input items) and tools the client sent, for the caller's
    /// limits.
    fn counts(request: &Self::Request) -> (usize, usize);

    /// The request for `upstream_model`.
    fn to_gemini(
        request: &Self::Request,
        upstream_model: &str,
        options: &RequestOptions<'_>,
    ) -> Result<Translated, TranslateError>;

    /// What the answer's conversion needs: `id_seed` is unique per request, `unix_now`
    /// the time in seconds (the `created` of OpenAI's answers).
    fn context(
        request: &Self::Request,
        translated: &Translated,
        id_seed: String,
        unix_now: u64,
    ) -> Self::Context;

    /// A whole upstream answer as the client's answer, with the signatures it carried.
    fn convert(
        response: &GenerateContentResponse,
        context: &Self::Context,
    ) -> (Self::Answer, Vec<SeenSignature>);

    /// The transcoder for a streamed answer.
    fn transcoder(context: Self::Context) -> Self::Transcoder;
}
