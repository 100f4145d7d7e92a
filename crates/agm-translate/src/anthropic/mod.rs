//! Anthropic Messages ⇄ Gemini.
//!
//! - [`request`]: `MessagesRequest` → `GenerateContentRequest` ([`to_gemini`]), and
//!   `count_tokens` → Cloud Code `:countTokens` ([`count_tokens_to_gemini`]).
//! - [`response`]: a complete `GenerateContentResponse` → `MessagesResponse`
//!   ([`from_gemini`]).
//! - [`stream`]: upstream chunks → Anthropic stream events ([`StreamTranscoder`]).

pub mod request;
pub mod response;
pub mod stream;

pub use request::{RequestOptions, Translated, count_tokens_to_gemini, to_gemini};
pub use response::{Converted, ResponseContext, assemble, convert, from_gemini};
pub use stream::{StreamTranscoder, to_sse};
