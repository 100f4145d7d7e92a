//! Pieces every converter (Anthropic, OpenAI Chat, OpenAI Responses) shares, so that
//! the three agree on every rule that is not about their own wire format.
//!
//! - [`request`]: the caller's options, the translated request, turn merging,
//!   function declarations, calls and responses, stop sequences.
//! - [`media`]: images and files given as URLs, `data:` URLs or base64.
//! - [`response`]: what a transcoder tracks of the upstream stream (finish reason,
//!   blocks, usage, ids), token counts, and the notes telling the client why Google
//!   cut an answer short.

pub mod media;
pub mod request;
pub mod response;

pub use request::{MAX_STOP_SEQUENCES, RequestOptions, Translated};
pub use response::{Finish, TokenCounts};
