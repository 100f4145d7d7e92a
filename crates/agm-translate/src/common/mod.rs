//! Pieces every converter (Anthropic, OpenAI Chat, OpenAI Responses) shares, so that
//! the three agree on every rule that is not about their own wire format.
//!
//! - [`request`]: the caller's options, the translated request, turn merging,
//!   function declarations, calls and responses.
//! - [`media`]: images and files given as URLs, `data:` URLs or base64.
//! - [`response`]: what a transcoder tracks of the upstream stream (finish reason,
//!   blocks, usage, ids), token counts, and the notes telling the client why Google
//!   cut an answer short.
//! - [`stop`]: stop sequences, enforced on the answer text by agm.
//! - [`openai_tools`]: custom tools, hosted tools and `allowed_tools`, as both OpenAI
//!   APIs declare them.

pub mod media;
pub mod openai_tools;
pub mod request;
pub mod response;
pub mod stop;

pub use request::{RequestOptions, THINKING_OFF_NOTE, Translated};
pub use response::{Finish, TokenCounts};

/// What a caller streaming an answer asks of every stream transcoder (Anthropic, Chat
/// Completions, Responses).
pub trait StreamEnd {
    /// True once the transcoder has ended the answer: by `finish` or `fail`, or on its
    /// own because a stop sequence matched. After that it sends nothing more, and the
    /// caller should drop the upstream stream (Google keeps generating otherwise).
    fn finished(&self) -> bool;
}
