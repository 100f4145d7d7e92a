//! Client API ⇄ Gemini translation: pure functions and small state machines, no I/O,
//! no async runtime, no clock.
//!
//! - [`anthropic`]: Anthropic Messages ⇄ Gemini (request, response, stream).
//! - [`common`]: the pieces the converters share (parts, media, tool calls, usage,
//!   finish reasons, the upstream state of a stream).
//! - [`openai_chat`]: OpenAI Chat Completions ⇄ Gemini (request, response, stream).
//! - [`openai_responses`]: OpenAI Responses (Codex CLI) ⇄ Gemini (request, response,
//!   stream).
//! - [`sse`]: incremental server-sent-event parsing and framing.
//! - [`upstream`]: reading Google's answers and stream chunks (either envelope).
//! - [`schema`]: JSON Schema → Gemini's schema subset.
//! - [`tools`]: tool-name mapping and tool-id minting.
//! - [`thinking`]: thinking-signature policy and the signature-cache hook.
//! - [`session`]: stable per-conversation session ids.
//! - [`models`]: client model name → upstream model id.
//! - [`tokens`]: a local estimate of a request's input tokens.
//! - [`context`]: context scaling, shrinking the upstream request of a long
//!   conversation that nears the model's window.
//! - [`edge`]: checks of client values before they reach a header or a URL (model
//!   names, header values).

pub mod anthropic;
pub mod catalogue;
pub mod common;
pub mod context;
pub mod edge;
pub mod error;
pub mod gemini_api;
pub mod models;
pub mod openai_chat;
pub mod openai_responses;
pub mod schema;
pub mod session;
pub mod sse;
pub mod thinking;
pub mod tokens;
pub mod tools;
pub mod upstream;

pub use error::TranslateError;
