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
    /// Client versions refused from the start (default none); more can be added
    /// while the sim runs with [`Sim::require_client_version`](crate::Sim::require_client_version).
    pub client_gates: Vec<ClientGate>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            latency: Duration::ZERO,
            stream_chunks: 3,
            stream_chunk_delay: Duration::ZERO,
            access_token_ttl: Duration::from_secs(3599),
            seed: 1,
            client_gates: Vec::new(),
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
/// or the official API's `models.list`). Build one with [`SimModel::new`] and the
/// `only_for` / `requires_client_version` / `without_*` builders.
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
    /// Who may use it (Cloud Code only): tier ids (`free-tier`, `g1-ultra-tier`, …)
    /// or account e-mails; `None`: everyone. Others do not see it in
    /// `fetchAvailableModels` and get Google's 404 `NOT_FOUND` when they ask for it.
    pub only_for: Option<Vec<String>>,
    /// The oldest Antigravity version (`antigravity/<version>` User-Agent) that may
    /// use it (Cloud Code only); an older one gets Google's `<display name> is not
    /// available on this version…` answer. `None`: any version.
    pub min_client_version: Option<String>,
}

/// Another name for [`SimModel`]: the description of a model added to a running sim.
pub type ModelSpec = SimModel;

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
            only_for: None,
            min_client_version: None,
        }
    }

    /// Only these tier ids or account e-mails may use it (see [`SimModel::only_for`](SimModel#structfield.only_for)).
    pub fn only_for<S: AsRef<str>>(mut self, tiers_or_emails: &[S]) -> Self {
        self.only_for = Some(
            tiers_or_emails
                .iter()
                .map(|s| s.as_ref().to_owned())
                .collect(),
        );
        self
    }

    /// Antigravity clients older than `version` are refused it (see
    /// [`SimModel::min_client_version`](SimModel#structfield.min_client_version)).
    pub fn requires_client_version(mut self, version: &str) -> Self {
        self.min_client_version = Some(version.to_owned());
        self
    }

    /// Reports `supportsThinking: false`.
    pub fn without_thinking(mut self) -> Self {
        self.supports_thinking = false;
        self
    }

    /// Reports `supportsImages: false`.
    pub fn without_images(mut self) -> Self {
        self.supports_images = false;
        self
    }

    /// Whether this account (its e-mail and tier) may use the model.
    pub fn is_for(&self, email: &str, tier: &str) -> bool {
        self.only_for
            .as_ref()
            .is_none_or(|who| who.iter().any(|w| w == email || w == tier))
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

/// How a refused client version is answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GateForm {
    /// What Google does for Antigravity: HTTP 200 whose only candidate's text is the
    /// message (no role, no finish reason, no usage), streamed as one chunk.
    Answer,
    /// An error in Google's shape with this HTTP status (400 `FAILED_PRECONDITION`,
    /// 403 `PERMISSION_DENIED`, 404 `NOT_FOUND`, 426 `FAILED_PRECONDITION`), for
    /// testing a gateway against a version gate that answers with an error instead.
    Error(u16),
}

/// A minimum client version: Code Assist generation requests whose `User-Agent`
/// reports `client` at an older version are refused with `message`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientGate {
    /// The client, as its `User-Agent` names it: `antigravity` (`antigravity/1.15.8
    /// darwin/arm64`) or `gemini-cli` (`GeminiCLI/0.61.0/<model> (linux; x64)`).
    /// Compared without case and without `-`/`_`, against the first product token.
    pub client: String,
    /// The oldest accepted version, dotted numbers (`1.16.0`).
    pub min_version: String,
    /// What a refused request is told.
    pub message: String,
    /// How it is told.
    pub form: GateForm,
}

/// Google's text for an Antigravity client it no longer serves (January 2026 on).
pub const ANTIGRAVITY_UNSUPPORTED: &str = "This version of Antigravity is no longer supported. Please update to receive the latest features!";

/// The sim's text for a refused gemini-cli (no real version gate seen for it; see docs/TESTING.md).
pub const GEMINI_CLI_UNSUPPORTED: &str = "This version of Gemini CLI is no longer supported. Please update to receive the latest features!";

impl ClientGate {
    /// Refuses `client` below `min_version` the way Google refuses an old
    /// Antigravity: a 200 answer with Google's text for Antigravity, the sim's
    /// look-alike for gemini-cli and any other client.
    pub fn new(client: &str, min_version: &str) -> Self {
        let message = if client_key(client) == "antigravity" {
            ANTIGRAVITY_UNSUPPORTED
        } else {
            GEMINI_CLI_UNSUPPORTED
        };
        ClientGate {
            client: client.to_owned(),
            min_version: min_version.to_owned(),
            message: message.to_owned(),
            form: GateForm::Answer,
        }
    }

    /// The same gate with another message.
    pub fn with_message(mut self, message: &str) -> Self {
        message.clone_into(&mut self.message);
        self
    }

    /// The same gate answering in another form.
    pub fn with_form(mut self, form: GateForm) -> Self {
        self.form = form;
        self
    }

    /// Whether a request with this `User-Agent` is refused.
    pub fn refuses(&self, user_agent: &str) -> bool {
        client_version(user_agent).is_some_and(|(client, version)| {
            client == client_key(&self.client) && version_less(&version, &self.min_version)
        })
    }
}

/// A client name compared loosely: lower case, without `-` and `_`.
pub(crate) fn client_key(name: &str) -> String {
    name.chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The client ([`client_key`]) and version the first product token of a `User-Agent`
/// reports: `antigravity/1.15.8 darwin/arm64` → (`antigravity`, `1.15.8`),
/// `GeminiCLI/0.61.0/gemini-3-flash (linux; x64)` → (`geminicli`, `0.61.0`).
pub(crate) fn client_version(user_agent: &str) -> Option<(String, String)> {
    let token = user_agent.split_whitespace().next()?;
    let mut pieces = token.split('/');
    let client = pieces.next()?;
    let version = pieces.next()?;
    if client.is_empty() || !version.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    Some((client_key(client), version.to_owned()))
}

/// `a < b` for dotted versions, numerically per part (`1.9.0 < 1.15.8`); a part's
/// leading digits count (`1.16.0-rc1` is `1.16.0`), missing parts are 0.
pub(crate) fn version_less(a: &str, b: &str) -> bool {
    fn parts(v: &str) -> Vec<u64> {
        v.split('.')
            .map(|p| {
                let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
                digits.parse().unwrap_or(0)
            })
            .collect()
    }
    let (a, b) = (parts(a), parts(b));
    let len = a.len().max(b.len());
    for i in 0..len {
        let (x, y) = (
            a.get(i).copied().unwrap_or(0),
            b.get(i).copied().unwrap_or(0),
        );
        if x != y {
            return x < y;
        }
    }
    false
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(version_less("1.9.0", "1.15.8"));
        assert!(version_less("1.15.8", "1.16"));
        assert!(!version_less("1.16.0", "1.16"));
        assert!(!version_less("1.18.3", "1.16.0"));
        assert!(version_less("1.16.0-rc1", "1.16.1"));
    }

    #[test]
    fn user_agents_name_client_and_version() {
        assert_eq!(
            client_version("antigravity/1.15.8 darwin/arm64"),
            Some(("antigravity".to_owned(), "1.15.8".to_owned()))
        );
        assert_eq!(
            client_version("GeminiCLI/0.61.0/gemini-3-flash (linux; x64)"),
            Some(("geminicli".to_owned(), "0.61.0".to_owned()))
        );
        assert_eq!(
            client_version("reqwest/0.12"),
            Some(("reqwest".to_owned(), "0.12".to_owned()))
        );
        assert_eq!(client_version("curl"), None);
        let gate = ClientGate::new("gemini-cli", "0.60.0");
        assert!(gate.refuses("GeminiCLI/0.59.9/gemini-3-flash (linux; x64)"));
        assert!(!gate.refuses("GeminiCLI/0.60.0/gemini-3-flash (linux; x64)"));
        assert!(!gate.refuses("antigravity/0.1.0 linux/amd64"));
        assert!(!gate.refuses(""));
    }
}
