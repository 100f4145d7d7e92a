//! Pieces every converter (Anthropic, OpenAI Chat, OpenAI Responses) shares, so that
//! the three agree on every rule that is not about their own wire format.
//!
//! - [`request`]: the caller's options, the translated request, turn merging,
//!   function declarations, calls and responses.
//! - `pipeline`: the steps every translation ends with (thinking off, Gemini 3's
//!   call signatures, sampling, the thinking budget, the request itself).
//! - [`api`]: what the caller serving the APIs uses: the [`Transcoder`] of a stream
//!   and the [`ChatApi`] of each chat-style API.
//! - [`media`]: images and files given as URLs, `data:` URLs or base64.
//! - [`response`]: what a transcoder tracks of the upstream stream (finish reason,
//!   blocks, usage, ids), token counts, and the notes telling the client why Google
//!   cut an answer short.
//! - [`stop`]: stop sequences, enforced on the answer text by agm.
//! - [`openai_tools`]: custom tools, hosted tools and `allowed_tools`, as both OpenAI
//!   APIs declare them.

pub mod api;
pub mod media;
pub mod openai_tools;
pub(crate) mod pipeline;
pub mod request;
pub mod response;
pub mod stop;

pub use crate::thinking::ThinkingOff;
pub use api::{ChatApi, StreamFault, Transcoder};
pub use request::{RequestOptions, Translated};
pub use response::{Finish, TokenCounts};
