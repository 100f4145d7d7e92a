//! Serde types of every API agm speaks.
//!
//! - [`gemini`]: the public Gemini `GenerateContentRequest` / response, used inside the
//!   Cloud Code envelope and by the official Gemini API.
//! - [`cloudcode`]: Google's Cloud Code Assist ("v1internal") envelope, discovery and
//!   quota messages, and Google's error shape.
//! - [`anthropic`]: the Anthropic Messages API as Claude Code and the SDKs speak it.
//! - [`openai`]: OpenAI Chat Completions and the Responses API (Codex CLI).
//! - [`duration`]: Go-style durations as Google writes them in errors and delays.
//!
//! Types are tolerant readers: unknown fields sent by a client or by Google are ignored
//! on input, and `None` fields are omitted on output.

pub mod anthropic;
pub mod cloudcode;
pub mod duration;
pub mod gemini;
pub mod openai;
