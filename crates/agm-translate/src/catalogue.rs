//! The living model catalogue: which upstream models the pool's accounts are offered
//! (Google's `fetchAvailableModels`, per account), and how a client's model name
//! resolves against it.
//!
//! Google adds and retires models every few weeks, and clients invent names
//! (`gemini-3.8-flash` when the pool has `gemini-3-flash`). So a name resolves by what
//! the pool serves now, not by a table frozen at build time:
//!
//! 1. an exact `[models.map]` entry of the user's wins;
//! 2. a model the pool offers, by its own name;
//! 3. a retired model, to the replacement Google names;
//! 4. the same **family and tier** (Claude opus / sonnet / haiku, Gemini pro / flash /
//!    flash-lite, GPT-OSS), newest generation first, honouring `-thinking`; dated and
//!    `-preview` suffixes and made-up versions don't matter;
//! 5. the built-in table ([`ModelMap`]), then the family of its target (GPT and `o*`
//!    names go to a Gemini model this way);
//! 6. otherwise the model is unavailable, and the answer names the closest ones.
//!
//! Before the first catalogue fetch (an empty catalogue) the built-in table alone
//! decides, as it always did. Pure: no I/O, no clock.

use std::collections::{BTreeMap, BTreeSet};

use crate::models::ModelMap;

/// What one account is offered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountModels {
    /// Model id → display name.
    pub models: BTreeMap<String, Option<String>>,
    /// Retired id → its replacement.
    pub deprecated: BTreeMap<String, String>,
    /// Model id → its context window in tokens, where Google reports one.
    pub windows: BTreeMap<String, u64>,
}

/// Every account's models.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Catalogue {
    accounts: BTreeMap<String, AccountModels>,
}

/// One model the pool offers, with the accounts that may use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offer {
    pub id: String,
    pub display_name: Option<String>,
    pub accounts: BTreeSet<String>,
}

impl Catalogue {
    /// Sets what `account_id` is offered (from a fresh `fetchAvailableModels`).
    pub fn set_account(&mut self, account_id: &str, models: AccountModels) {
        self.accounts.insert(account_id.to_owned(), models);
    }

    /// Each account's models.
    pub fn accounts(&self) -> impl Iterator<Item = (&str, &AccountModels)> {
        self.accounts.iter().map(|(id, m)| (id.as_str(), m))
    }

    /// Forgets an account (removed or disabled).
    pub fn remove_account(&mut self, account_id: &str) {
        self.accounts.remove(account_id);
    }

    /// Keeps only these accounts.
    pub fn retain_accounts(&mut self, keep: &BTreeSet<String>) {
        self.accounts.retain(|id, _| keep.contains(id));
    }

    /// No account's models are known yet: the built-in table decides. (An account
    /// reported with no model at all counts as not known: Google offers every account
    /// something, so an empty list is a partial answer.)
    pub fn is_empty(&self) -> bool {
        !self.accounts.values().any(|a| !a.models.is_empty())
    }

    /// Whether the catalogue knows what this account is offered.
    pub fn knows(&self, account_id: &str) -> bool {
        self.accounts
            .get(account_id)
            .is_some_and(|a| !a.models.is_empty())
    }

    /// Whether `account_id` may use `model`: `None` when its models are not known yet
    /// (then it is tried; Google has the last word).
    pub fn entitled(&self, account_id: &str, model: &str) -> Option<bool> {
        let known = self
            .accounts
            .get(account_id)
            .filter(|a| !a.models.is_empty())?;
        Some(known.models.contains_key(bare(model)))
    }

    /// Whether any account is offered `model`.
    pub fn offers(&self, model: &str) -> bool {
        let model = bare(model);
        self.accounts.values().any(|a| a.models.contains_key(model))
    }

    /// Every model offered, by id, with the accounts that may use it.
    pub fn offered(&self) -> BTreeMap<String, Offer> {
        let mut out: BTreeMap<String, Offer> = BTreeMap::new();
        for (account, known) in &self.accounts {
            for (id, name) in &known.models {
                let offer = out.entry(id.clone()).or_insert_with(|| Offer {
                    id: id.clone(),
                    display_name: None,
                    accounts: BTreeSet::new(),
                });
                if offer.display_name.is_none() {
                    offer.display_name.clone_from(name);
                }
                offer.accounts.insert(account.clone());
            }
        }
        out
    }

    /// The replacement Google names for a retired model, if any account reports one.
    pub fn replacement(&self, model: &str) -> Option<&str> {
        let model = bare(model);
        self.accounts
            .values()
            .find_map(|a| a.deprecated.get(model))
            .map(String::as_str)
    }

    /// The context window of `model` in tokens: the smallest any account reports, or
    /// the built-in figure ([`crate::models::context_window`]) when none does.
    pub fn window(&self, model: &str) -> Option<u64> {
        let model = bare(model);
        self.accounts
            .values()
            .filter_map(|a| a.windows.get(model).copied())
            .filter(|&w| w > 0)
            .min()
            .or_else(|| crate::models::context_window(model))
    }

    /// Retired id → replacement, over every account.
    pub fn retired(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for known in self.accounts.values() {
            for (old, new) in &known.deprecated {
                out.entry(old.clone()).or_insert_with(|| new.clone());
            }
        }
        out
    }

    /// The best offered model of `family`: the generation asked for when the pool has
    /// it (`claude-sonnet-4-5-20250929` → `claude-sonnet-4-5`), else the newest;
    /// `thinking` prefers a `-thinking` variant (and otherwise one without it).
    fn best_of(&self, family: Family, thinking: bool, version: Option<[u32; 3]>) -> Option<String> {
        let offered = self.offered();
        let in_family: Vec<(&String, Parsed)> = offered
            .keys()
            .filter_map(|id| parse(id).filter(|p| p.family == family).map(|p| (id, p)))
            .collect();
        let same_generation =
            version.is_some_and(|v| in_family.iter().any(|(_, p)| p.version == v));
        in_family
            .into_iter()
            .filter(|(_, p)| !same_generation || Some(p.version) == version)
            .max_by(|(a_id, a), (b_id, b)| {
                a.version
                    .cmp(&b.version)
                    .then_with(|| (a.thinking == thinking).cmp(&(b.thinking == thinking)))
                    .then_with(|| variant_rank(a_id).cmp(&variant_rank(b_id)))
                    // Stable among equals: the shorter, then the alphabetically first id.
                    .then_with(|| b_id.len().cmp(&a_id.len()))
                    .then_with(|| b_id.cmp(a_id))
            })
            .map(|(id, _)| id.clone())
    }

    /// The offered models closest to `model`: its family first (newest first), then
    /// those sharing the longest prefix with it. At most `n`.
    pub fn closest(&self, model: &str, n: usize) -> Vec<String> {
        let model = bare(model);
        let family = parse(model).map(|p| p.family);
        let mut ids: Vec<(bool, usize, String)> = self
            .offered()
            .into_keys()
            .map(|id| {
                let same = family.is_some() && parse(&id).map(|p| p.family) == family;
                let shared = id
                    .bytes()
                    .zip(model.bytes())
                    .take_while(|(a, b)| a == b)
                    .count();
                (same, shared, id)
            })
            .collect();
        ids.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(&b.2)));
        ids.into_iter().take(n).map(|(_, _, id)| id).collect()
    }
}

/// How a client's model name became an upstream id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum How {
    /// A `[models.map]` entry of the user's.
    Configured,
    /// The pool offers it by that name.
    Offered,
    /// Retired by Google; this is the replacement it named.
    Replaced { retired: String },
    /// The same family and tier, newest generation the pool offers.
    Family,
    /// The built-in table (the catalogue is not known yet, or had nothing better).
    Table,
    /// Neither the pool nor the table knows it: sent as it is (catalogue unknown).
    PassThrough,
}

/// The outcome of [`resolve`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    Upstream {
        model: String,
        how: How,
    },
    /// The pool offers nothing like it; the closest offered models.
    Unavailable {
        closest: Vec<String>,
    },
}

/// Resolves `client_model`; see the module docs for the order.
pub fn resolve(client_model: &str, map: &ModelMap, catalogue: &Catalogue) -> Resolution {
    let upstream = |model: &str, how: How| Resolution::Upstream {
        model: model.to_owned(),
        how,
    };
    if let Some(target) = map.configured(client_model) {
        return upstream(target, How::Configured);
    }
    if catalogue.is_empty() {
        let target = map.resolve(client_model);
        let how = if target == client_model {
            How::PassThrough
        } else {
            How::Table
        };
        return upstream(target, how);
    }
    let name = bare(client_model);
    if catalogue.offers(name) {
        return upstream(name, How::Offered);
    }
    if let Some(replacement) = catalogue.replacement(name) {
        let how = How::Replaced {
            retired: name.to_owned(),
        };
        if catalogue.offers(replacement) {
            return upstream(replacement, how);
        }
        if let Some(p) = parse(replacement)
            && let Some(best) = catalogue.best_of(p.family, p.thinking, None)
        {
            return upstream(&best, how);
        }
    }
    if let Some(p) = parse(name) {
        // The family, else the next tier up where that is a safe stand-in (a lite
        // model's work is a flash model's; an opus request is better served by the
        // newest sonnet than refused).
        let fallback = match p.family {
            Family::GeminiFlashLite => Some(Family::GeminiFlash),
            Family::ClaudeOpus => Some(Family::ClaudeSonnet),
            _ => None,
        };
        if let Some(best) = catalogue
            .best_of(p.family, p.thinking, Some(p.version))
            .or_else(|| catalogue.best_of(fallback?, p.thinking, None))
        {
            return upstream(&best, How::Family);
        }
    }
    let target = map.resolve(client_model);
    if target != client_model {
        if catalogue.offers(target) {
            return upstream(target, How::Table);
        }
        if let Some(p) = parse(target)
            && let Some(best) = catalogue.best_of(
                p.family,
                p.thinking || wants_thinking(name),
                Some(p.version),
            )
        {
            return upstream(&best, How::Table);
        }
    }
    Resolution::Unavailable {
        closest: catalogue.closest(name, 5),
    }
}

/// A model family and tier agm can substitute within.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Family {
    ClaudeOpus,
    ClaudeSonnet,
    ClaudeHaiku,
    GeminiPro,
    GeminiFlash,
    GeminiFlashLite,
    GptOss,
}

/// What a model id says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    pub family: Family,
    /// `claude-sonnet-4-5` → [4, 5]; `gemini-3.1-pro-preview` → [3, 1]; missing parts
    /// are zero, so [3] and [3, 0] compare equal.
    pub version: [u32; 3],
    pub thinking: bool,
}

/// Parses a model id into family, version and thinking; `None` for ids outside the
/// families (image models, embeddings, anything unknown).
pub fn parse(id: &str) -> Option<Parsed> {
    let id = bare(id).to_ascii_lowercase();
    let thinking = wants_thinking(&id);
    let tokens: Vec<&str> = id.split(['-', '_']).collect();
    match tokens.first().copied()? {
        "claude" => {
            let family = tokens.iter().find_map(|t| match *t {
                "opus" => Some(Family::ClaudeOpus),
                "sonnet" => Some(Family::ClaudeSonnet),
                "haiku" => Some(Family::ClaudeHaiku),
                _ => None,
            })?;
            // claude-sonnet-4-5-20250929 or claude-3-5-sonnet-20241022: the short
            // numbers, wherever they stand; a date (8 digits) is not a version.
            let numbers: Vec<u32> = tokens[1..]
                .iter()
                .filter(|t| !t.is_empty() && t.len() <= 2)
                .filter_map(|t| t.parse().ok())
                .collect();
            Some(Parsed {
                family,
                version: version_of(&numbers),
                thinking,
            })
        }
        "gemini" => {
            let version: Vec<u32> = tokens
                .get(1)?
                .split('.')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            let rest = &tokens[2..];
            // Image, audio, embedding and other special models are not substitutes.
            if rest.iter().any(|t| {
                matches!(
                    *t,
                    "image"
                        | "tts"
                        | "audio"
                        | "live"
                        | "embedding"
                        | "exp"
                        | "computer"
                        | "robotics"
                )
            }) {
                return None;
            }
            let family = match rest {
                ["pro", ..] => Family::GeminiPro,
                ["flash", "lite", ..] => Family::GeminiFlashLite,
                ["flash", ..] => Family::GeminiFlash,
                _ => return None,
            };
            Some(Parsed {
                family,
                version: version_of(&version),
                thinking,
            })
        }
        "gpt" if tokens.get(1) == Some(&"oss") => Some(Parsed {
            family: Family::GptOss,
            version: [0; 3],
            thinking,
        }),
        _ => None,
    }
}

fn version_of(numbers: &[u32]) -> [u32; 3] {
    let mut v = [0; 3];
    for (slot, n) in v.iter_mut().zip(numbers) {
        *slot = *n;
    }
    v
}

fn wants_thinking(id: &str) -> bool {
    id.ends_with("-thinking") || id.contains("-thinking-")
}

/// Among one family's models of one generation, the better variant: Antigravity's
/// `-high` over `-low`, and a plain id over a `-preview` one.
fn variant_rank(id: &str) -> u8 {
    if id.contains("-high") {
        3
    } else if id.contains("-low") {
        1
    } else if id.contains("-preview") {
        0
    } else {
        2
    }
}

/// `models/x` → `x`.
fn bare(model: &str) -> &str {
    model.strip_prefix("models/").unwrap_or(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(models: &[&str]) -> AccountModels {
        AccountModels {
            models: models.iter().map(|m| ((*m).to_owned(), None)).collect(),
            deprecated: BTreeMap::new(),
            windows: BTreeMap::new(),
        }
    }

    /// The sim's (and, late 2026, Antigravity's) usual offer.
    fn pool() -> Catalogue {
        let mut c = Catalogue::default();
        c.set_account(
            "a1",
            account(&[
                "gemini-3-pro-high",
                "gemini-3-pro-low",
                "gemini-3-flash",
                "gemini-2.5-flash",
                "gemini-2.5-pro",
                "claude-sonnet-4-5",
                "claude-sonnet-4-5-thinking",
                "claude-opus-4-5-thinking",
                "gpt-oss-120b-medium",
            ]),
        );
        c
    }

    fn up(client: &str, catalogue: &Catalogue) -> String {
        match resolve(client, &ModelMap::default(), catalogue) {
            Resolution::Upstream { model, .. } => model,
            Resolution::Unavailable { closest } => format!("unavailable: {closest:?}"),
        }
    }

    #[test]
    fn families_and_versions_parse() {
        let p = |id| parse(id).map(|p| (p.family, p.version, p.thinking));
        assert_eq!(
            p("claude-sonnet-4-5-20250929"),
            Some((Family::ClaudeSonnet, [4, 5, 0], false))
        );
        assert_eq!(
            p("claude-3-5-sonnet-20241022"),
            Some((Family::ClaudeSonnet, [3, 5, 0], false))
        );
        assert_eq!(
            p("claude-opus-4-5-thinking"),
            Some((Family::ClaudeOpus, [4, 5, 0], true))
        );
        assert_eq!(
            p("models/gemini-3.1-pro-preview"),
            Some((Family::GeminiPro, [3, 1, 0], false))
        );
        assert_eq!(
            p("gemini-2.5-flash-lite-preview-09-2025"),
            Some((Family::GeminiFlashLite, [2, 5, 0], false))
        );
        assert_eq!(
            p("gemini-3.8-flash"),
            Some((Family::GeminiFlash, [3, 8, 0], false))
        );
        assert_eq!(p("gemini-3-pro-image-preview"), None);
        assert_eq!(p("gemini-embedding-001"), None);
        assert_eq!(p("gpt-5.1-codex"), None);
        assert_eq!(p("o3"), None);
        assert_eq!(p("gpt-oss-120b-medium").map(|x| x.0), Some(Family::GptOss));
    }

    #[test]
    fn an_empty_catalogue_leaves_the_table_in_charge() {
        let empty = Catalogue::default();
        assert_eq!(up("claude-opus-4-1", &empty), "claude-opus-4-5-thinking");
        assert_eq!(up("something-new", &empty), "something-new");
        assert_eq!(
            resolve("something-new", &ModelMap::default(), &empty),
            Resolution::Upstream {
                model: "something-new".into(),
                how: How::PassThrough
            }
        );
    }

    #[test]
    fn client_names_resolve_by_family_and_tier() {
        let c = pool();
        // Gemini CLI's defaults and inventions (issue 11).
        assert_eq!(up("gemini-3.1-pro-preview", &c), "gemini-3-pro-high");
        assert_eq!(up("gemini-3.8-flash", &c), "gemini-3-flash");
        assert_eq!(up("models/gemini-3-flash", &c), "gemini-3-flash");
        assert_eq!(
            up("gemini-2.5-flash", &c),
            "gemini-2.5-flash",
            "offered as is"
        );
        // No flash-lite in this pool: the next tier up (Gemini CLI's classifier model).
        assert_eq!(up("gemini-3.5-flash-lite", &c), "gemini-3-flash");
        // Nothing like it: refused, with the closest.
        let unknown = up("text-bison-001", &c);
        assert!(unknown.starts_with("unavailable"), "{unknown}");
        // Claude: newest generation, thinking honoured.
        assert_eq!(up("claude-sonnet-4-6-20260101", &c), "claude-sonnet-4-5");
        assert_eq!(
            up("claude-sonnet-5-thinking", &c),
            "claude-sonnet-4-5-thinking"
        );
        assert_eq!(up("claude-opus-4-1", &c), "claude-opus-4-5-thinking");
        assert_eq!(up("claude-3-5-sonnet-20241022", &c), "claude-sonnet-4-5");
        // No haiku offered: the table's choice (a fast Gemini).
        assert_eq!(up("claude-haiku-4-5", &c), "gemini-3-flash");
        // GPT and o-series: the table, then what the pool has.
        assert_eq!(up("gpt-5.1-codex", &c), "gemini-3-pro-high");
        assert_eq!(
            up("gpt-6.2-sol", &c),
            "gemini-3-pro-high",
            "Codex 0.171's default"
        );
        assert_eq!(up("o4-mini", &c), "gemini-3-flash");
        assert_eq!(up("gpt-oss-20b", &c), "gpt-oss-120b-medium");
    }

    #[test]
    fn a_new_generation_is_picked_up_without_a_table_change() {
        let mut c = pool();
        c.set_account(
            "a2",
            account(&["gemini-3.5-pro-high", "claude-sonnet-5", "claude-haiku-5"]),
        );
        assert_eq!(up("gemini-3.1-pro-preview", &c), "gemini-3.5-pro-high");
        assert_eq!(
            up("claude-sonnet-4-5-20250929", &c),
            "claude-sonnet-4-5",
            "offered"
        );
        assert_eq!(up("claude-sonnet-4-6", &c), "claude-sonnet-5");
        assert_eq!(up("claude-haiku-4-5", &c), "claude-haiku-5");
        let offers = c.offered();
        assert_eq!(
            offers["gemini-3.5-pro-high"].accounts,
            BTreeSet::from(["a2".to_owned()])
        );
        assert_eq!(c.entitled("a1", "gemini-3.5-pro-high"), Some(false));
        assert_eq!(c.entitled("a2", "models/gemini-3.5-pro-high"), Some(true));
        assert_eq!(c.entitled("a3", "gemini-3-flash"), None);
    }

    #[test]
    fn retired_models_go_to_their_replacement_or_are_refused_with_the_closest() {
        let mut c = Catalogue::default();
        let mut a = account(&["gemini-3-pro-high", "gemini-3-flash"]);
        a.deprecated
            .insert("gemini-2.5-pro".into(), "gemini-3-pro-high".into());
        c.set_account("a1", a);
        assert_eq!(
            resolve("gemini-2.5-pro", &ModelMap::default(), &c),
            Resolution::Upstream {
                model: "gemini-3-pro-high".into(),
                how: How::Replaced {
                    retired: "gemini-2.5-pro".into()
                }
            }
        );
        match resolve("text-bison", &ModelMap::default(), &c) {
            Resolution::Unavailable { closest } => {
                assert_eq!(closest.len(), 2);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            c.closest("gemini-3-flash-lite", 2),
            vec!["gemini-3-flash".to_owned(), "gemini-3-pro-high".to_owned()]
        );
    }

    #[test]
    fn configured_entries_always_win() {
        let mine: BTreeMap<String, String> = [
            (
                "gemini-3.1-pro-preview".to_owned(),
                "gemini-2.5-pro".to_owned(),
            ),
            ("my-*".to_owned(), "gemini-3-flash".to_owned()),
        ]
        .into_iter()
        .collect();
        let map = ModelMap::new(&mine);
        assert_eq!(
            resolve("gemini-3.1-pro-preview", &map, &pool()),
            Resolution::Upstream {
                model: "gemini-2.5-pro".into(),
                how: How::Configured
            }
        );
        assert_eq!(
            resolve("my-model", &map, &pool()),
            Resolution::Upstream {
                model: "gemini-3-flash".into(),
                how: How::Configured
            }
        );
    }

    #[test]
    fn windows_come_from_the_accounts_else_the_built_in_figures() {
        let mut c = pool();
        assert_eq!(c.window("claude-sonnet-4-5"), Some(200_000));
        assert_eq!(c.window("models/gemini-3-flash"), Some(1_048_576));
        assert_eq!(c.window("mystery"), None);
        let mut small = account(&["gemini-3-flash"]);
        small.windows.insert("gemini-3-flash".into(), 500_000);
        c.set_account("a2", small);
        let mut smaller = account(&["gemini-3-flash"]);
        smaller.windows.insert("gemini-3-flash".into(), 400_000);
        c.set_account("a3", smaller);
        assert_eq!(c.window("gemini-3-flash"), Some(400_000), "the smallest");
    }
}
