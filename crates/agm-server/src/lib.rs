//! The agm server: configuration, the axum app with its client routes, the account
//! pool and the upstream caller. See docs/ARCHITECTURE.md.

mod anthropic;
mod body;
mod breaker;
pub mod catalogue;
mod conversation;
mod edge;
mod gemini;
mod listener;
mod models;
mod official;
mod openai;
mod request_log;
mod telemetry;
mod upstream;

pub mod accounts;
pub mod app;
pub mod config;
pub mod console;
pub mod cooldown_sync;
pub mod doctor;
pub mod drift;
mod effects;
pub mod error;
pub mod jobs;
pub mod quota;
pub mod safe_mode;
pub mod updates;
pub mod validate;
