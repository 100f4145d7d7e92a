//! Thinking signatures: which model family made them, what to do with them across
//! turns and model switches, and how the caller's signature cache plugs in.
//!
//! A signature is only valid for the model family (and conversation) that made it.
//! The translator asks a [`SignatureStore`] (the pool's TTL'd cache, kept by the
//! caller) whether a signature a client sends back was made by the family it is about
//! to call; when it was not, the thinking goes upstream as plain text (Claude) or is
//! left out (Gemini, which does not read old thoughts). Every signature the upstream
//! hands out is reported back as a [`SeenSignature`] for the caller to store.
//!
//! Also here: the replay rules every converter applies to the thinking a client sends
//! back (`SignaturePolicy`), Gemini 3's signed function calls, thinking budgets, and
//! OpenAI's reasoning efforts ([`Effort`]).

use agm_wire::gemini::{Content, GenerationConfig, ThinkingConfig};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};

use crate::common::RequestOptions;

/// The signature Gemini accepts on a function call whose real signature is lost
/// (documented by Google for histories built without one).
pub const SKIP_SIGNATURE_VALIDATOR: &str = "skip_thought_signature_validator";

/// A family of upstream models that share a signature format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelFamily {
    /// Anthropic models served by Cloud Code (`claude-*`).
    Claude,
    /// Google's models (`gemini-*`).
    Gemini,
    /// Anything else (`gpt-oss-*`, …).
    Other,
}

impl ModelFamily {
    /// The family of an upstream model id.
    pub fn of(upstream_model: &str) -> ModelFamily {
        let model = upstream_model
            .strip_prefix("models/")
            .unwrap_or(upstream_model)
            .to_ascii_lowercase();
        if model.contains("claude") {
            ModelFamily::Claude
        } else if model.contains("gemini") {
            ModelFamily::Gemini
        } else {
            ModelFamily::Other
        }
    }
}

/// What the caller's signature cache knows. Keys are the session id of the request
/// and the signature as the client sent it; implementations should compare
/// signatures by [`signature_bytes`], as clients re-encode them.
pub trait SignatureStore {
    /// The family of the model that produced `signature` in this conversation, when
    /// known.
    fn family_of(&self, session_id: &str, signature: &str) -> Option<ModelFamily>;

    /// The signature that came with tool call `tool_use_id`, for clients that dropped
    /// it (Gemini needs it back on the function call).
    fn for_tool_use(&self, session_id: &str, tool_use_id: &str) -> Option<String>;
}

/// A signature the upstream produced, to be remembered by the caller (keyed by the
/// request's session id and the upstream model's family).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenSignature {
    /// The signature as sent to the client.
    pub signature: String,
    /// The tool call it came with, when it came on a function call.
    pub tool_use_id: Option<String>,
}

/// The bytes a signature encodes, whether the client sent it in standard or URL-safe
/// base64, padded or not; `None` when it is not base64 at all.
pub fn signature_bytes(signature: &str) -> Option<Vec<u8>> {
    let trimmed = signature.trim().trim_end_matches('=');
    if trimmed.contains(['-', '_']) {
        URL_SAFE_NO_PAD.decode(trimmed).ok()
    } else {
        STANDARD_NO_PAD.decode(trimmed).ok()
    }
}

/// The signature in standard base64 for the upstream: URL-safe input is re-encoded,
/// anything else is passed on unchanged.
pub fn upstream_signature(signature: &str) -> String {
    if signature.contains(['-', '_'])
        && let Some(bytes) = signature_bytes(signature)
    {
        return STANDARD.encode(bytes);
    }
    signature.to_owned()
}

/// The largest thinking budget sent to a Gemini model.
pub const GEMINI_MAX_THINKING_BUDGET: u32 = 32_768;
/// The largest thinking budget of Gemini Flash models.
pub const GEMINI_FLASH_MAX_THINKING_BUDGET: u32 = 24_576;
/// The smallest thinking budget of Gemini Pro models (they cannot stop thinking).
pub const GEMINI_PRO_MIN_THINKING_BUDGET: u32 = 128;
/// Anthropic's smallest thinking budget.
pub const CLAUDE_MIN_THINKING_BUDGET: u32 = 1_024;

/// A thinking budget the upstream model accepts: Gemini's capped at its maximum,
/// Claude's raised to Anthropic's minimum.
pub(crate) fn clamp_budget(family: ModelFamily, upstream_model: &str, budget: u32) -> u32 {
    match family {
        ModelFamily::Gemini if upstream_model.contains("flash") => {
            budget.min(GEMINI_FLASH_MAX_THINKING_BUDGET)
        }
        ModelFamily::Gemini => budget.min(GEMINI_MAX_THINKING_BUDGET),
        ModelFamily::Claude => budget.max(CLAUDE_MIN_THINKING_BUDGET),
        ModelFamily::Other => budget,
    }
}

/// OpenAI's `reasoning_effort` / `reasoning.effort`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    /// No reasoning asked for: the model's default, thoughts not shown.
    None,
    Minimal,
    Low,
    Medium,
    /// `high`, and `xhigh`.
    High,
}

impl Effort {
    /// The accepted spellings, for error messages.
    pub const ACCEPTED: &str = "none, minimal, low, medium, high or xhigh";

    /// Reads an effort; `None` for a value OpenAI does not define.
    pub fn parse(effort: &str) -> Option<Effort> {
        Some(match effort.trim().to_ascii_lowercase().as_str() {
            "none" => Effort::None,
            "minimal" => Effort::Minimal,
            "low" => Effort::Low,
            "medium" => Effort::Medium,
            "high" | "xhigh" => Effort::High,
            _ => return None,
        })
    }

    /// The thinking budget this effort stands for (before [`clamp_budget`]).
    fn budget(self, family: ModelFamily, upstream_model: &str) -> u32 {
        match self {
            Effort::None => 0,
            Effort::Minimal => match family {
                ModelFamily::Claude => CLAUDE_MIN_THINKING_BUDGET,
                ModelFamily::Gemini if !upstream_model.contains("flash") => {
                    GEMINI_PRO_MIN_THINKING_BUDGET
                }
                _ => 0,
            },
            Effort::Low => 1_024,
            Effort::Medium => 8_192,
            Effort::High => 24_576,
        }
    }

    /// The thinking configuration for this effort on `upstream_model`, and the budget
    /// it sets (`None` for Gemini 3's levels); `None` for [`Effort::None`]. Gemini 3
    /// takes a level (`low` for minimal and low, `high` above), the others a budget.
    pub(crate) fn thinking_config(
        self,
        family: ModelFamily,
        upstream_model: &str,
    ) -> Option<(ThinkingConfig, Option<u32>)> {
        if self == Effort::None {
            return None;
        }
        if family == ModelFamily::Gemini && needs_function_call_signatures(upstream_model) {
            let level = match self {
                Effort::Minimal | Effort::Low => "low",
                _ => "high",
            };
            return Some((
                ThinkingConfig {
                    include_thoughts: Some(true),
                    thinking_budget: None,
                    thinking_level: Some(level.to_owned()),
                },
                None,
            ));
        }
        let budget = clamp_budget(family, upstream_model, self.budget(family, upstream_model));
        Some((
            ThinkingConfig {
                include_thoughts: Some(budget > 0),
                thinking_budget: Some(i64::from(budget)),
                thinking_level: None,
            },
            Some(budget),
        ))
    }
}

/// Anthropic takes only the default sampling with thinking on: drop what it refuses.
pub(crate) fn claude_thinking_sampling(config: &mut GenerationConfig) {
    config.temperature = config.temperature.filter(|t| (*t - 1.0).abs() < 1e-9);
    config.top_k = None;
    config.top_p = config.top_p.filter(|p| *p >= 0.95);
}

/// `maxOutputTokens` counts the thinking too: when it does not exceed the budget,
/// raise it to leave room for the answer.
pub(crate) fn leave_room_for_answer(config: &mut GenerationConfig, budget: u32) {
    if let Some(max) = config.max_output_tokens
        && max <= budget
    {
        config.max_output_tokens = Some(budget.saturating_add(max.max(1024)));
    }
}

/// True for Gemini 3 and later, which refuse a history whose function calls lack
/// their thought signature.
pub(crate) fn needs_function_call_signatures(upstream_model: &str) -> bool {
    let model = upstream_model
        .strip_prefix("models/")
        .unwrap_or(upstream_model);
    let Some(version) = model.strip_prefix("gemini-") else {
        return false;
    };
    let major: String = version.chars().take_while(char::is_ascii_digit).collect();
    major.parse::<u32>().is_ok_and(|v| v >= 3)
}

/// Gemini 3 wants a signature on the first function call of every model turn; give
/// the documented stand-in to those that have none.
pub(crate) fn sign_first_function_calls(contents: &mut [Content]) {
    for content in contents
        .iter_mut()
        .filter(|c| c.role.as_deref() == Some("model"))
    {
        if let Some(call) = content.parts.iter_mut().find(|p| p.function_call.is_some())
            && call.thought_signature.is_none()
        {
            call.thought_signature = Some(SKIP_SIGNATURE_VALIDATOR.to_owned());
        }
    }
}

/// Why a request goes upstream without the thinking the client asked for (Claude
/// only: Anthropic refuses thinking in these cases). The server says so in
/// `x-agm-thinking: off`; its `Display` is the note for the server's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThinkingOff {
    /// The tool choice forces a call (`any`, a named tool, `required`).
    ForcedToolChoice,
    /// The request continues a tool loop whose assistant turn carries no thinking
    /// signature agm knows (the client dropped it, or another model made it).
    UnsignedToolLoop,
}

impl std::fmt::Display for ThinkingOff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("thinking turned off: ")?;
        f.write_str(match self {
            ThinkingOff::ForcedToolChoice => "Claude refuses thinking with a forced tool choice",
            ThinkingOff::UnsignedToolLoop => {
                "the tool loop's assistant turn carries no thinking signature agm knows (dropped, or from another model)"
            }
        })
    }
}

/// False when the request continues a tool loop (it ends with function responses)
/// whose model turn does not start with a signed thought: Anthropic refuses thinking
/// then.
pub(crate) fn last_tool_turn_has_signed_thinking(contents: &[Content]) -> bool {
    let [.., last_model, last] = contents else {
        return true;
    };
    let continues_tool_loop = last.role.as_deref() == Some("user")
        && last.parts.iter().any(|p| p.function_response.is_some());
    if !continues_tool_loop || last_model.role.as_deref() != Some("model") {
        return true;
    }
    if !last_model.parts.iter().any(|p| p.function_call.is_some()) {
        return true;
    }
    last_model
        .parts
        .first()
        .is_some_and(|p| p.is_thought() && p.thought_signature.is_some())
}

/// What becomes of a thinking block (Anthropic) or reasoning item (Responses) of the
/// history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Replay {
    /// A `thought: true` part with its signature.
    Thought(String),
    /// A plain text part.
    Text,
    /// Left out; a signature still good for the next function call (Gemini).
    Drop(Option<String>),
}

/// The signature rules for the history of one request.
pub(crate) struct SignaturePolicy<'a> {
    pub family: ModelFamily,
    pub options: &'a RequestOptions<'a>,
    pub session_id: &'a str,
}

impl SignaturePolicy<'_> {
    /// What to send upstream for a thinking block the client sent back with
    /// `signature` (empty when it had none).
    pub fn replay(&self, signature: &str) -> Replay {
        if self.options.thinking_as_text || signature.is_empty() {
            return match self.family {
                ModelFamily::Gemini | ModelFamily::Other if signature.is_empty() => {
                    Replay::Drop(None)
                }
                _ => Replay::Text,
            };
        }
        let trusted = match self.options.signatures {
            None => true,
            Some(store) => store.family_of(self.session_id, signature) == Some(self.family),
        };
        match (self.family, trusted) {
            (ModelFamily::Claude, true) => Replay::Thought(upstream_signature(signature)),
            (ModelFamily::Claude, false) => Replay::Text,
            (ModelFamily::Gemini, true) => Replay::Drop(Some(upstream_signature(signature))),
            (ModelFamily::Gemini | ModelFamily::Other, _) => Replay::Drop(None),
        }
    }

    /// The cached signature of tool call `tool_use_id`, for Gemini.
    pub fn cached_tool_signature(&self, tool_use_id: &str) -> Option<String> {
        if self.family != ModelFamily::Gemini || self.options.thinking_as_text {
            return None;
        }
        self.options
            .signatures?
            .for_tool_use(self.session_id, tool_use_id)
            .map(|s| upstream_signature(&s))
    }

    /// The signature for a function call of the history: the cached one, else the
    /// one the client sent with it (when it passes [`SignaturePolicy::replay`]).
    pub fn call_signature(&self, tool_use_id: &str, sent: Option<&str>) -> Option<String> {
        self.cached_tool_signature(tool_use_id).or_else(|| {
            match self.replay(sent.unwrap_or_default()) {
                Replay::Drop(signature) => signature,
                Replay::Thought(_) | Replay::Text => None,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn efforts_become_levels_on_gemini_3_and_budgets_elsewhere() {
        assert_eq!(Effort::parse("XHIGH"), Some(Effort::High));
        assert_eq!(Effort::parse("extreme"), None);
        assert_eq!(
            Effort::None.thinking_config(ModelFamily::Gemini, "gemini-3-pro-high"),
            None
        );
        let level = |e: Effort| {
            e.thinking_config(ModelFamily::Gemini, "gemini-3-flash")
                .and_then(|(c, _)| c.thinking_level)
        };
        assert_eq!(level(Effort::Minimal).as_deref(), Some("low"));
        assert_eq!(level(Effort::Medium).as_deref(), Some("high"));
        let budget =
            |e: Effort, family, model| e.thinking_config(family, model).and_then(|(_, b)| b);
        assert_eq!(
            budget(Effort::Minimal, ModelFamily::Gemini, "gemini-2.5-flash"),
            Some(0)
        );
        assert_eq!(
            budget(Effort::Minimal, ModelFamily::Gemini, "gemini-2.5-pro"),
            Some(128)
        );
        assert_eq!(
            budget(
                Effort::Minimal,
                ModelFamily::Claude,
                "claude-opus-4-5-thinking"
            ),
            Some(1024)
        );
        assert_eq!(
            budget(Effort::Medium, ModelFamily::Gemini, "gemini-2.5-pro"),
            Some(8192)
        );
        assert_eq!(
            budget(
                Effort::High,
                ModelFamily::Claude,
                "claude-opus-4-5-thinking"
            ),
            Some(24_576)
        );
        let (config, _) = Effort::Minimal
            .thinking_config(ModelFamily::Gemini, "gemini-2.5-flash")
            .unwrap();
        assert_eq!(config.include_thoughts, Some(false));
    }

    #[test]
    fn families() {
        assert_eq!(
            ModelFamily::of("claude-sonnet-4-5-thinking"),
            ModelFamily::Claude
        );
        assert_eq!(
            ModelFamily::of("models/gemini-3-flash"),
            ModelFamily::Gemini
        );
        assert_eq!(ModelFamily::of("gpt-oss-120b-medium"), ModelFamily::Other);
    }

    #[test]
    fn signatures_compare_by_bytes() {
        let standard = STANDARD.encode([0xfb, 0xff, 0x01]);
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xfb, 0xff, 0x01]);
        assert_ne!(standard, url_safe);
        assert_eq!(signature_bytes(&standard), signature_bytes(&url_safe));
        assert_eq!(upstream_signature(&url_safe), standard);
        assert_eq!(upstream_signature(&standard), standard);
        assert_eq!(signature_bytes("not base64!"), None);
        assert_eq!(upstream_signature("not_base64!"), "not_base64!");
    }
}
