//! The agm server: configuration, the axum app with its client routes, the account
//! pool and the upstream caller. See docs/ARCHITECTURE.md.

mod anthropic;
mod body;
mod conversation;
mod gemini;
mod models;
mod openai;
mod telemetry;
mod upstream;

pub mod accounts;
pub mod app;
pub mod config;
pub mod doctor;
pub mod error;
pub mod quota;
pub mod validate;
