//! The request log: one row per client request, for the console and usage figures.

use time::OffsetDateTime;

use crate::names::named_enum;

named_enum! {
    /// The client API a request came in on.
    pub enum ApiKind ("API") {
        Anthropic = "anthropic",
        OpenAiChat = "openai-chat",
        OpenAiResponses = "openai-responses",
        Gemini = "gemini",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLogEntry {
    pub at: OffsetDateTime,
    pub api: ApiKind,
    /// The model the client asked for.
    pub client_model: String,
    /// The model sent upstream.
    pub upstream_model: String,
    /// The account that served it; `None` if none did (or the official API pool).
    pub account_id: Option<String>,
    /// The HTTP status sent to the client.
    pub status: u16,
    pub latency_ms: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// A short error classification (`rate-limited`, `upstream-5xx`...), `None` on success.
    pub error_class: Option<String>,
    /// The route it came in on (`/v1/messages`, `/v1beta/models/{*rest}`, …).
    pub route: String,
    /// Upstream calls made for it (retries and fallbacks included).
    pub attempts: u32,
    /// agm's own share of the latency (Google's time excluded), in microseconds; `None`
    /// when no upstream call was made.
    pub overhead_us: Option<u64>,
    /// How context scaling shrank the upstream request (`standard; cut=12345 tokens`);
    /// `None` when it went as translated.
    pub context_scaled: Option<String>,
    /// The client key that sent it (its id); `None` without a store key (keyless
    /// loopback, or a key from `server.api_keys`).
    pub key_id: Option<String>,
}

/// A recorded request (`at` truncated to the millisecond).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestLogRecord {
    pub id: i64,
    pub entry: RequestLogEntry,
}
