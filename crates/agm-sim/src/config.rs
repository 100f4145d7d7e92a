//! The sim's settings, accounts and model catalogs.

use std::time::Duration;

/// How the sim behaves on the wire. Immutable once the [`Sim`](crate::Sim) is built.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Added before every answer (default 0).
    pub latency: Duration,
    /// How many SSE chunks a default (unscripted) reply text is split into (default 3).
    pub stream_chunks: usize,
    /// Pause between two stream chunks (default 0).
    pub stream_chunk_delay: Duration,
    /// Lifetime of issued access tokens, also sent as `expires_in` (default 3599 s).
    pub access_token_ttl: Duration,
    /// Seed of the random source behind `Fault::sometimes` (default 1).
    pub seed: u64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            latency: Duration::ZERO,
            stream_chunks: 3,
            stream_chunk_delay: Duration::ZERO,
            access_token_ttl: Duration::from_secs(3599),
            seed: 1,
        }
    }
}

/// A Google account the sim knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimAccount {
    /// The account's e-mail (what userinfo answers, and the key for faults).
    pub email: String,
    /// The refresh token that `POST /token` accepts for it.
    pub refresh_token: String,
    /// Its Cloud Code project; `None` until onboarded (`loadCodeAssist` then
    /// omits `cloudaicompanionProject` and `onboardUser` assigns one).
    pub project: Option<String>,
    /// Tier id: `free-tier`, `legacy-tier`, `standard-tier`, `g1-pro-tier`, `g1-ultra-tier`.
    pub tier: String,
}

impl SimAccount {
    /// An account with the given e-mail, refresh token, project and tier.
    pub fn new(email: &str, refresh_token: &str, project: Option<&str>, tier: &str) -> Self {
        SimAccount {
            email: email.to_owned(),
            refresh_token: refresh_token.to_owned(),
            project: project.map(str::to_owned),
            tier: tier.to_owned(),
        }
    }
}

/// A model in one of the sim's catalogs (Cloud Code's `fetchAvailableModels`
/// or the official API's `models.list`).
#[derive(Clone, Debug, PartialEq)]
pub struct SimModel {
    /// The model id, e.g. `gemini-3-flash` (Cloud Code) or `gemini-2.5-flash` (official).
    pub id: String,
    /// Human-readable name.
    pub display_name: String,
    /// Context window in tokens; a prompt estimated above it is refused with a 400.
    pub max_tokens: u64,
    /// Largest accepted `maxOutputTokens`; above it the request is refused with a 400.
    pub max_output_tokens: u64,
    /// Whether it reports `supportsThinking`.
    pub supports_thinking: bool,
    /// Whether it reports `supportsImages`.
    pub supports_images: bool,
}

impl SimModel {
    /// A model with the given limits, thinking and images supported.
    pub fn new(id: &str, display_name: &str, max_tokens: u64, max_output_tokens: u64) -> Self {
        SimModel {
            id: id.to_owned(),
            display_name: display_name.to_owned(),
            max_tokens,
            max_output_tokens,
            supports_thinking: true,
            supports_images: true,
        }
    }

    /// The Cloud Code catalog the sim starts with: `gemini-3-pro-high`,
    /// `gemini-3-pro-low`, `gemini-3-flash`, `gemini-2.5-flash`, `gemini-2.5-pro`,
    /// `claude-sonnet-4-5`, `claude-sonnet-4-5-thinking`, `claude-opus-4-5-thinking`,
    /// `gpt-oss-120b-medium`.
    pub fn code_assist_defaults() -> Vec<SimModel> {
        let mut sonnet = SimModel::new("claude-sonnet-4-5", "Claude Sonnet 4.5", 200_000, 64_000);
        sonnet.supports_thinking = false;
        let mut gpt = SimModel::new(
            "gpt-oss-120b-medium",
            "GPT-OSS 120B (Medium)",
            131_072,
            32_768,
        );
        gpt.supports_images = false;
        vec![
            SimModel::new(
                "gemini-3-pro-high",
                "Gemini 3 Pro (High)",
                1_048_576,
                65_535,
            ),
            SimModel::new("gemini-3-pro-low", "Gemini 3 Pro (Low)", 1_048_576, 65_535),
            SimModel::new("gemini-3-flash", "Gemini 3 Flash", 1_048_576, 65_536),
            SimModel::new("gemini-2.5-flash", "Gemini 2.5 Flash", 1_048_576, 65_535),
            SimModel::new("gemini-2.5-pro", "Gemini 2.5 Pro", 1_048_576, 65_535),
            sonnet,
            SimModel::new(
                "claude-sonnet-4-5-thinking",
                "Claude Sonnet 4.5 (Thinking)",
                200_000,
                64_000,
            ),
            SimModel::new(
                "claude-opus-4-5-thinking",
                "Claude Opus 4.5 (Thinking)",
                200_000,
                64_000,
            ),
            gpt,
        ]
    }

    /// The official Gemini API catalog the sim starts with: `gemini-2.5-flash`,
    /// `gemini-2.5-pro`, `gemini-2.5-flash-lite`, `gemini-3-pro-preview`, `gemini-3-flash-preview`.
    pub fn gemini_api_defaults() -> Vec<SimModel> {
        vec![
            SimModel::new("gemini-2.5-flash", "Gemini 2.5 Flash", 1_048_576, 65_536),
            SimModel::new("gemini-2.5-pro", "Gemini 2.5 Pro", 1_048_576, 65_536),
            SimModel::new(
                "gemini-2.5-flash-lite",
                "Gemini 2.5 Flash-Lite",
                1_048_576,
                65_536,
            ),
            SimModel::new(
                "gemini-3-pro-preview",
                "Gemini 3 Pro Preview",
                1_048_576,
                65_536,
            ),
            SimModel::new(
                "gemini-3-flash-preview",
                "Gemini 3 Flash Preview",
                1_048_576,
                65_536,
            ),
        ]
    }
}

/// The display name Google gives a tier id.
pub(crate) fn tier_name(tier: &str) -> String {
    match tier {
        "free-tier" => "Gemini Code Assist for individuals".to_owned(),
        "legacy-tier" => "Gemini Code Assist (legacy)".to_owned(),
        "standard-tier" => "Gemini Code Assist Standard".to_owned(),
        "g1-pro-tier" => "Google AI Pro".to_owned(),
        "g1-ultra-tier" => "Google AI Ultra".to_owned(),
        other => other.to_owned(),
    }
}
