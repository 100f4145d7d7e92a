//! Client API ⇄ Gemini translation: pure functions and small state machines, no I/O,
//! no async runtime, no clock.
//!
//! - [`anthropic`]: Anthropic Messages ⇄ Gemini (request, response, stream).
//! - [`sse`]: incremental server-sent-event parsing and framing.
//! - [`upstream`]: reading Google's answers and stream chunks (either envelope).
//! - [`schema`]: JSON Schema → Gemini's schema subset.
//! - [`tools`]: tool-name mapping and tool-id minting.
//! - [`thinking`]: thinking-signature policy and the signature-cache hook.
//! - [`session`]: stable per-conversation session ids.
//! - [`models`]: client model name → upstream model id.

pub mod anthropic;
pub mod error;
pub mod models;
pub mod schema;
pub mod session;
pub mod sse;
pub mod thinking;
pub mod tools;
pub mod upstream;

pub use error::TranslateError;
