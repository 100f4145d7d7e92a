//! Google's side: OAuth token calls, the Cloud Code Assist client (discovery,
//! generation, streaming, token counting, endpoint fallback), and the classification of
//! Google's errors that drives rotation and the client-facing error.

mod classify;
mod client;
mod duration;

pub use classify::{ErrorClass, UpstreamError};
pub use client::{ChunkStream, GoogleClient, GoogleConfig, TokenGrant, UserInfo};
pub use duration::parse_go_duration;
