//! Model mapping: the model name a client sends → the upstream model id.
//!
//! The table holds exact names and `*` wildcard patterns. Resolution: an exact name
//! first; then the most specific matching pattern (the one with the most literal
//! characters; ties go to the pattern that sorts first); then the name itself
//! (pass-through), so a client can always name an upstream model directly.
//!
//! For the official Gemini API (safe mode), [`official_equivalent`] and
//! [`OfficialEquivalents`] turn an upstream id into the name that API serves.

use std::collections::BTreeMap;

/// The built-in table: current Claude, GPT and Gemini names, and Claude Code's small
/// background model. User entries are merged over it.
pub const DEFAULT_MODEL_MAP: &[(&str, &str)] = &[
    ("claude-opus-*", "claude-opus-4-5-thinking"),
    ("claude-sonnet-*", "claude-sonnet-4-5"),
    ("claude-sonnet-*-thinking", "claude-sonnet-4-5-thinking"),
    ("claude-3-7-sonnet*", "claude-sonnet-4-5"),
    ("claude-3-5-sonnet*", "claude-sonnet-4-5"),
    // Claude Code's background model (titles, summaries): a fast Gemini.
    ("claude-haiku-*", "gemini-3-flash"),
    ("claude-3-5-haiku*", "gemini-3-flash"),
    ("gpt-5*", "gemini-3-pro-high"),
    ("gpt-4*", "gemini-3-pro-high"),
    // Any other GPT name (Codex's default changes with every release: gpt-6.2-sol in
    // 0.171); the more specific `gpt-oss*` still wins for GPT-OSS.
    ("gpt-*", "gemini-3-pro-high"),
    ("o3*", "gemini-3-pro-high"),
    ("o4-mini*", "gemini-3-flash"),
    ("gpt-oss*", "gpt-oss-120b-medium"),
    ("gemini-3-pro", "gemini-3-pro-high"),
    ("gemini-3-pro-preview", "gemini-3-pro-high"),
    ("gemini-3-flash-preview", "gemini-3-flash"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelMap {
    /// The user's own `[models.map]` entries: exact names, then patterns (most
    /// specific first). They win over the living catalogue (`crate::catalogue`).
    user_exact: BTreeMap<String, String>,
    user_patterns: Vec<(String, String)>,
    exact: BTreeMap<String, String>,
    /// Upstream ids Google reports as deprecated → their replacements (from the quota
    /// call's `deprecatedModelIds`), applied after the table.
    deprecated: BTreeMap<String, String>,
    /// (pattern, target), most specific first.
    patterns: Vec<(String, String)>,
}

impl Default for ModelMap {
    fn default() -> Self {
        ModelMap::new(&BTreeMap::new())
    }
}

impl ModelMap {
    /// The built-in table with `overrides` (from `[models.map]`) merged over it.
    pub fn new(overrides: &BTreeMap<String, String>) -> ModelMap {
        let mut all: BTreeMap<String, String> = DEFAULT_MODEL_MAP
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        all.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
        let (patterns, exact): (Vec<_>, Vec<_>) =
            all.into_iter().partition(|(k, _)| k.contains('*'));
        let mut patterns = patterns;
        patterns.sort_by(most_specific_first);
        let (mut user_patterns, user_exact): (Vec<_>, Vec<_>) = overrides
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .partition(|(k, _)| k.contains('*'));
        user_patterns.sort_by(most_specific_first);
        ModelMap {
            user_exact: user_exact.into_iter().collect(),
            user_patterns,
            exact: exact.into_iter().collect(),
            deprecated: BTreeMap::new(),
            patterns,
        }
    }

    /// The same map with the user's `[models.map]` replaced by `overrides` (the
    /// deprecations it forwards are kept).
    pub fn with_user_map(&self, overrides: &BTreeMap<String, String>) -> ModelMap {
        ModelMap::new(overrides).with_deprecations(self.deprecated.clone())
    }

    /// Forwards upstream ids Google has deprecated to their replacements.
    pub fn with_deprecations(mut self, deprecated: BTreeMap<String, String>) -> ModelMap {
        self.deprecated = deprecated;
        self
    }

    /// The user's own `[models.map]` entry for `client_model`, if it decides: an exact
    /// entry, or a pattern of the user's that is the most specific match (a more
    /// specific built-in pattern still beats a user's catch-all, as in [`Self::resolve`]).
    pub fn configured(&self, client_model: &str) -> Option<&str> {
        if let Some(target) = self.user_exact.get(client_model) {
            return Some(target);
        }
        if self.exact.contains_key(client_model) {
            return None;
        }
        let (pattern, target) = self
            .patterns
            .iter()
            .find(|(pattern, _)| wildcard_match(pattern, client_model))?;
        self.user_patterns
            .iter()
            .any(|(p, _)| p == pattern)
            .then_some(target.as_str())
    }

    /// The upstream id for `client_model`.
    pub fn resolve<'a>(&'a self, client_model: &'a str) -> &'a str {
        let mapped = match self.exact.get(client_model) {
            Some(target) => target.as_str(),
            None => self
                .patterns
                .iter()
                .find(|(pattern, _)| wildcard_match(pattern, client_model))
                .map_or(client_model, |(_, target)| target.as_str()),
        };
        // One hop only: a replacement that is itself deprecated is Google's to fix.
        self.deprecated.get(mapped).map_or(mapped, String::as_str)
    }

    /// The exact client names of the table (built-in and the user's).
    pub fn exact_names(&self) -> impl Iterator<Item = &str> {
        self.exact.keys().map(String::as_str)
    }

    /// The model names worth listing to clients: every exact name in the table and every
    /// upstream id it produces, sorted and deduplicated.
    pub fn listed(&self) -> Vec<&str> {
        let mut out = self.targets();
        out.extend(self.exact.keys().map(String::as_str));
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Every upstream id the table can produce, sorted and deduplicated.
    pub fn targets(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .exact
            .values()
            .chain(self.patterns.iter().map(|(_, t)| t))
            .map(String::as_str)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The most output tokens an upstream model takes (what Google's model list reports:
/// Claude 64,000, GPT-OSS 32,768, Gemini 65,535), or `None` for a model agm does not
/// know. Clients ask for more (Claude Code: 128,000), which Google refuses.
pub fn max_output_tokens(upstream_model: &str) -> Option<u32> {
    by_family(upstream_model, 64_000, 32_768, 65_535)
}

/// The figure of an upstream model's family: Claude, GPT-OSS or Gemini.
fn by_family<T>(upstream_model: &str, claude: T, gpt_oss: T, gemini: T) -> Option<T> {
    let model = upstream_model
        .strip_prefix("models/")
        .unwrap_or(upstream_model);
    if model.starts_with("claude-") {
        Some(claude)
    } else if model.starts_with("gpt-oss-") {
        Some(gpt_oss)
    } else if model.starts_with("gemini-") {
        Some(gemini)
    } else {
        None
    }
}

/// The context window of an upstream model in tokens, for a model the catalogue has no
/// figure for (what Google's model lists report: Claude 200,000, GPT-OSS 131,072,
/// Gemini 1,048,576), or `None` for a model agm does not know.
pub fn context_window(upstream_model: &str) -> Option<u64> {
    by_family(upstream_model, 200_000, 131_072, 1_048_576)
}

/// Caps `maxOutputTokens` at what `upstream_model` takes, and a thinking budget at one
/// token less (a budget must stay below the output limit). Returns a note when it
/// changed something.
pub fn cap_output_tokens(
    request: &mut agm_wire::gemini::GenerateContentRequest,
    upstream_model: &str,
) -> Option<String> {
    let limit = max_output_tokens(upstream_model)?;
    let config = request.generation_config.as_mut()?;
    let asked = config.max_output_tokens?;
    if asked <= limit {
        return None;
    }
    config.max_output_tokens = Some(limit);
    if let Some(thinking) = config.thinking_config.as_mut()
        && let Some(budget) = thinking.thinking_budget
        && budget >= i64::from(limit)
    {
        thinking.thinking_budget = Some(i64::from(limit) - 1);
    }
    Some(format!(
        "max output tokens {asked} capped at {limit}, the most {upstream_model} takes"
    ))
}

/// Upstream (Antigravity / Cloud Code) ids → official Gemini API names, for the
/// safe-mode path (docs/PROTOCOL.md §2 "Pools"). Exact names or `*` patterns, most specific
/// first; the first match wins. Claude and GPT-OSS ids are not here: the official API
/// does not serve them, see [`OfficialEquivalents`].
pub const OFFICIAL_GEMINI_MAP: &[(&str, &str)] = &[
    ("gemini-3-pro-high", "gemini-3-pro-preview"),
    ("gemini-3-pro-low", "gemini-3-pro-preview"),
    ("gemini-3-pro", "gemini-3-pro-preview"),
    ("gemini-3-pro-image*", "gemini-3-pro-image-preview"),
    ("gemini-3-flash", "gemini-3-flash-preview"),
    ("gemini-3-flash-*", "gemini-3-flash-preview"),
    ("gemini-3-pro-*", "gemini-3-pro-preview"),
];

/// The Gemini model that answers a Claude model's request on the official Gemini API.
///
/// A Claude (or GPT-OSS) request answered this way is answered by a **different
/// model**: Gemini, not Claude, with its own strengths, style and context limits. The
/// server says so in a response header; callers must not present such an answer as
/// Claude's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfficialEquivalents<'a> {
    /// For the large Claude models: opus (any), sonnet and sonnet thinking.
    /// Default `gemini-2.5-pro`.
    pub claude_large: &'a str,
    /// For every other Claude model (haiku, …) and for GPT-OSS. Default
    /// `gemini-2.5-flash`.
    pub claude_small: &'a str,
}

impl Default for OfficialEquivalents<'_> {
    fn default() -> Self {
        OfficialEquivalents::DEFAULT
    }
}

impl<'a> OfficialEquivalents<'a> {
    /// `gemini-2.5-pro` for opus/sonnet, `gemini-2.5-flash` for the rest.
    pub const DEFAULT: OfficialEquivalents<'static> = OfficialEquivalents {
        claude_large: "gemini-2.5-pro",
        claude_small: "gemini-2.5-flash",
    };

    /// The official Gemini API name for `upstream_model`:
    /// * `gemini-3-pro-high` / `-low` / `gemini-3-pro` → `gemini-3-pro-preview`,
    ///   `gemini-3-flash` → `gemini-3-flash-preview` (see [`OFFICIAL_GEMINI_MAP`]);
    /// * `gemini-2.5-*`, names already official (`*-preview`) and any other `gemini-*`
    ///   unchanged;
    /// * `claude-*` and `gpt-oss-*` → [`Self::claude_large`] for opus and sonnet, else
    ///   [`Self::claude_small`] — a different model (see the type's docs);
    /// * anything else unchanged (a pass-through, as in [`ModelMap::resolve`]).
    ///
    /// A leading `models/` is dropped.
    pub fn resolve<'m>(&self, upstream_model: &'m str) -> &'m str
    where
        'a: 'm,
    {
        let model = upstream_model
            .strip_prefix("models/")
            .unwrap_or(upstream_model);
        if is_claude_like(model) {
            return if model.contains("opus") || model.contains("sonnet") {
                self.claude_large
            } else {
                self.claude_small
            };
        }
        if model.starts_with("gemini-2.5-") || model.ends_with("-preview") {
            return model;
        }
        OFFICIAL_GEMINI_MAP
            .iter()
            .find(|(pattern, _)| wildcard_match(pattern, model))
            .map_or(model, |(_, official)| official)
    }
}

/// Whether the official Gemini API answers `upstream_model` with a different model
/// family (a Claude or GPT-OSS id answered by Gemini): the server reports this in a
/// response header.
pub fn official_is_substitute(upstream_model: &str) -> bool {
    is_claude_like(
        upstream_model
            .strip_prefix("models/")
            .unwrap_or(upstream_model),
    )
}

fn is_claude_like(model: &str) -> bool {
    model.starts_with("claude-") || model.starts_with("gpt-oss")
}

/// [`OfficialEquivalents::resolve`] with the default Claude equivalents
/// ([`OfficialEquivalents::DEFAULT`]).
pub fn official_equivalent(upstream_model: &str) -> &str {
    OfficialEquivalents::DEFAULT.resolve(upstream_model)
}

fn most_specific_first(a: &(String, String), b: &(String, String)) -> std::cmp::Ordering {
    literal_len(&b.0)
        .cmp(&literal_len(&a.0))
        .then_with(|| a.0.cmp(&b.0))
}

fn literal_len(pattern: &str) -> usize {
    pattern.chars().filter(|c| *c != '*').count()
}

/// `*` matches any run of characters (including none); everything else literally.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let mut pieces = pattern.split('*');
    let Some(first) = pieces.next() else {
        return text.is_empty();
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let pieces: Vec<&str> = pieces.collect();
    let Some((last, middle)) = pieces.split_last() else {
        // No `*` at all: an exact comparison.
        return rest.is_empty();
    };
    for piece in middle {
        match rest.find(piece) {
            Some(at) => rest = &rest[at + piece.len()..],
            None => return false,
        }
    }
    rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards() {
        assert!(wildcard_match("claude-*", "claude-x"));
        assert!(wildcard_match("claude-*", "claude-"));
        assert!(!wildcard_match("claude-*", "clau"));
        assert!(wildcard_match("*-thinking", "a-thinking"));
        assert!(wildcard_match("a*b*c", "aXXbYYc"));
        assert!(!wildcard_match("a*b*c", "aXXcYYb"));
        assert!(wildcard_match("exact", "exact"));
        assert!(!wildcard_match("exact", "exactly"));
        assert!(wildcard_match("*", "anything"));
        assert!(!wildcard_match("ab*ba", "aba"));
    }

    #[test]
    fn defaults_cover_current_clients() {
        let m = ModelMap::default();
        assert_eq!(
            m.resolve("claude-opus-4-5-20251101"),
            "claude-opus-4-5-thinking"
        );
        assert_eq!(m.resolve("claude-sonnet-4-5-20250929"), "claude-sonnet-4-5");
        assert_eq!(
            m.resolve("claude-sonnet-4-5-thinking"),
            "claude-sonnet-4-5-thinking"
        );
        assert_eq!(m.resolve("claude-haiku-4-5-20251001"), "gemini-3-flash");
        assert_eq!(m.resolve("claude-sonnet-5"), "claude-sonnet-4-5");
        assert_eq!(m.resolve("claude-opus-5-5"), "claude-opus-4-5-thinking");
        assert_eq!(m.resolve("gpt-4o"), "gemini-3-pro-high");
        assert_eq!(m.resolve("gemini-2.5-flash"), "gemini-2.5-flash");
        assert_eq!(m.resolve("something-new"), "something-new");
    }

    #[test]
    fn official_equivalents() {
        assert_eq!(
            official_equivalent("gemini-3-pro-high"),
            "gemini-3-pro-preview"
        );
        assert_eq!(
            official_equivalent("gemini-3-pro-low"),
            "gemini-3-pro-preview"
        );
        assert_eq!(official_equivalent("gemini-3-pro"), "gemini-3-pro-preview");
        assert_eq!(
            official_equivalent("gemini-3-flash"),
            "gemini-3-flash-preview"
        );
        assert_eq!(
            official_equivalent("models/gemini-3-flash"),
            "gemini-3-flash-preview"
        );
        assert_eq!(
            official_equivalent("gemini-3-pro-preview"),
            "gemini-3-pro-preview"
        );
        for same in [
            "gemini-2.5-flash",
            "gemini-2.5-pro",
            "gemini-2.5-flash-lite",
            "gemini-2.5-flash-thinking",
            "something-else",
        ] {
            assert_eq!(official_equivalent(same), same);
        }
        assert_eq!(
            official_equivalent("claude-opus-4-5-thinking"),
            "gemini-2.5-pro"
        );
        assert_eq!(
            official_equivalent("claude-sonnet-4-5-thinking"),
            "gemini-2.5-pro"
        );
        assert_eq!(official_equivalent("claude-sonnet-4-5"), "gemini-2.5-pro");
        assert_eq!(official_equivalent("claude-haiku-4-5"), "gemini-2.5-flash");
        assert_eq!(
            official_equivalent("gpt-oss-120b-medium"),
            "gemini-2.5-flash"
        );
        assert!(official_is_substitute("claude-sonnet-4-5"));
        assert!(official_is_substitute("gpt-oss-120b-medium"));
        assert!(!official_is_substitute("gemini-3-pro-high"));
        // Every default target of the model map has an official equivalent that
        // looks like an official Gemini name.
        for target in ModelMap::default().targets() {
            let official = official_equivalent(target);
            assert!(
                official.starts_with("gemini-2.5-") || official.ends_with("-preview"),
                "{target} → {official}"
            );
        }
    }

    #[test]
    fn official_claude_equivalent_is_configurable() {
        let mine = OfficialEquivalents {
            claude_large: "gemini-3-pro-preview",
            ..OfficialEquivalents::default()
        };
        assert_eq!(
            mine.resolve("claude-opus-4-5-thinking"),
            "gemini-3-pro-preview"
        );
        assert_eq!(mine.resolve("claude-haiku-4-5"), "gemini-2.5-flash");
        assert_eq!(mine.resolve("gemini-3-flash"), "gemini-3-flash-preview");
        let configured = String::from("gemini-2.5-flash-lite");
        let small = OfficialEquivalents {
            claude_small: &configured,
            ..OfficialEquivalents::DEFAULT
        };
        assert_eq!(
            small.resolve("gpt-oss-120b-medium"),
            "gemini-2.5-flash-lite"
        );
    }

    #[test]
    fn deprecated_ids_are_forwarded() {
        let deprecated: BTreeMap<String, String> = [(
            "claude-sonnet-4-5".to_owned(),
            "claude-sonnet-4-6".to_owned(),
        )]
        .into_iter()
        .collect();
        let m = ModelMap::default().with_deprecations(deprecated);
        assert_eq!(m.resolve("claude-sonnet-5"), "claude-sonnet-4-6");
        assert_eq!(m.resolve("claude-sonnet-4-5"), "claude-sonnet-4-6");
        assert_eq!(m.resolve("gemini-3-flash"), "gemini-3-flash");
    }

    #[test]
    fn user_entries_win_exact_over_pattern() {
        let overrides: BTreeMap<String, String> = [
            (
                "claude-sonnet-4-5-20250929".to_owned(),
                "gemini-2.5-pro".to_owned(),
            ),
            ("claude-*".to_owned(), "gemini-3-flash".to_owned()),
        ]
        .into_iter()
        .collect();
        let m = ModelMap::new(&overrides);
        assert_eq!(m.resolve("claude-sonnet-4-5-20250929"), "gemini-2.5-pro");
        // The more specific built-in pattern still beats the user's catch-all.
        assert_eq!(m.resolve("claude-opus-4-1"), "claude-opus-4-5-thinking");
        let mine: BTreeMap<String, String> =
            [("claude-opus-*".to_owned(), "gemini-2.5-pro".to_owned())]
                .into_iter()
                .collect();
        assert_eq!(
            ModelMap::new(&mine).resolve("claude-opus-5"),
            "gemini-2.5-pro",
            "a user entry replaces the built-in one"
        );
        assert_eq!(m.resolve("claude-instant"), "gemini-3-flash");
    }

    #[test]
    fn output_tokens_are_capped_at_the_model_limit() {
        use agm_wire::gemini::{GenerateContentRequest, GenerationConfig, ThinkingConfig};
        let mut request = GenerateContentRequest {
            generation_config: Some(GenerationConfig {
                max_output_tokens: Some(128_000),
                thinking_config: Some(ThinkingConfig {
                    thinking_budget: Some(100_000),
                    ..ThinkingConfig::default()
                }),
                ..GenerationConfig::default()
            }),
            ..GenerateContentRequest::default()
        };
        assert!(cap_output_tokens(&mut request, "claude-opus-4-5-thinking").is_some());
        let config = request.generation_config.as_ref().unwrap();
        assert_eq!(config.max_output_tokens, Some(64_000));
        assert_eq!(
            config.thinking_config.as_ref().unwrap().thinking_budget,
            Some(63_999)
        );
        assert_eq!(
            cap_output_tokens(&mut request, "claude-opus-4-5-thinking"),
            None
        );
        assert_eq!(cap_output_tokens(&mut request, "some-future-model"), None);
    }
}
