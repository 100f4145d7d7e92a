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

pub mod request;
pub mod response;
pub mod stream;

pub use crate::common::{RequestOptions, Translated};
pub use request::to_gemini;
pub use response::{Converted, ResponseContext, assemble, convert, from_gemini};
pub use stream::{StreamTranscoder, to_sse};
