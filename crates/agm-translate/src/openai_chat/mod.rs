//! OpenAI Chat Completions ⇄ Gemini.
//!
//! - [`request`]: `ChatCompletionRequest` → `GenerateContentRequest` ([`to_gemini`]).
//! - [`response`]: a complete `GenerateContentResponse` → `ChatCompletion`
//!   ([`from_gemini`]).
//! - [`stream`]: upstream chunks → `chat.completion.chunk`s and `[DONE]`
//!   ([`StreamTranscoder`], [`to_sse`]).

pub mod request;
pub mod response;
pub mod stream;

pub use crate::common::{RequestOptions, Translated};
pub use request::to_gemini;
pub use response::{Converted, ResponseContext, assemble, convert, from_gemini};
pub use stream::{StreamTranscoder, to_sse};
