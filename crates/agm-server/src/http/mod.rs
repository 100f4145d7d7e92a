//! The HTTP edge: the listener, the handlers per client API and what they share.

pub(crate) mod anthropic;
pub(crate) mod body;
pub(crate) mod conversation;
pub(crate) mod edge;
pub mod error;
pub(crate) mod gemini;
pub mod key_policy;
pub(crate) mod listener;
pub(crate) mod models;
pub(crate) mod openai;
pub(crate) mod request_log;
pub(crate) mod scaling;
