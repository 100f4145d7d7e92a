//! Model mapping: the model name a client sends → the upstream model id.
//!
//! The table holds exact names and `*` wildcard patterns. Resolution: an exact name
//! first; then the most specific matching pattern (the one with the most literal
//! characters; ties go to the pattern that sorts first); then the name itself
//! (pass-through), so a client can always name an upstream model directly.

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
    ("o3*", "gemini-3-pro-high"),
    ("o4-mini*", "gemini-3-flash"),
    ("gpt-oss*", "gpt-oss-120b-medium"),
    ("gemini-3-pro", "gemini-3-pro-high"),
    ("gemini-3-pro-preview", "gemini-3-pro-high"),
    ("gemini-3-flash-preview", "gemini-3-flash"),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelMap {
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
        patterns
            .sort_by(|(a, _), (b, _)| literal_len(b).cmp(&literal_len(a)).then_with(|| a.cmp(b)));
        ModelMap {
            exact: exact.into_iter().collect(),
            deprecated: BTreeMap::new(),
            patterns,
        }
    }

    /// Forwards upstream ids Google has deprecated to their replacements.
    pub fn with_deprecations(mut self, deprecated: BTreeMap<String, String>) -> ModelMap {
        self.deprecated = deprecated;
        self
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
}
