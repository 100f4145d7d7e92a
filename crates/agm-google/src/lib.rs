//! Google's side: OAuth token calls, the Cloud Code Assist client (discovery,
//! generation, streaming, token counting, endpoint fallback), the official Gemini API
//! with an API key (`GoogleClient::official_*`, the safe-mode path), and the
//! classification of Google's errors that drives rotation and the client-facing error.

mod classify;
mod client;
mod discovery;
mod gemini_api;
pub mod oauth;
mod project_cache;
mod quota;
mod stats;

pub use agm_wire::duration::parse_go_duration;
pub use classify::{ErrorClass, UpstreamError, refusal_in_answer};
pub use client::{
    CallAuth, ChunkStream, CodeAssistStyle, EndpointGate, GoogleClient, GoogleConfig, TokenGrant,
    UserInfo,
};
pub use discovery::{
    DiscoveredProject, DiscoveryError, DiscoveryPolicy, DiscoveryRequest, ProjectDiscovery,
};
pub use gemini_api::OfficialChunkStream;
pub use project_cache::ProjectCache;
pub use quota::{ModelQuota, QuotaSnapshot, QuotaWindow};
pub use stats::{
    AttemptOutcome, DiscoveryAttempt, DiscoveryStats, DiscoverySummary, SetupCall, error_class_name,
};
