//! The console's languages: one JSON catalogue per locale in `i18n/`, embedded in the
//! binary. A key missing from a catalogue falls back to English; a test keeps every
//! catalogue complete, with the same `{placeholders}`, and the templates and script
//! using only keys that exist. Adding a language is adding one file and one line in
//! [`CATALOGUES`].

use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Every locale, as `(tag, its own name, catalogue)`; English first (the fallback).
pub const CATALOGUES: &[(&str, &str, &str)] = &[
    ("en", "English", include_str!("i18n/en.json")),
    ("zh-CN", "简体中文", include_str!("i18n/zh-CN.json")),
    ("zh-TW", "繁體中文", include_str!("i18n/zh-TW.json")),
    ("vi", "Tiếng Việt", include_str!("i18n/vi.json")),
];

pub type Catalogue = BTreeMap<String, String>;

fn parsed() -> &'static Vec<(&'static str, Catalogue)> {
    static PARSED: OnceLock<Vec<(&'static str, Catalogue)>> = OnceLock::new();
    PARSED.get_or_init(|| {
        CATALOGUES
            .iter()
            .map(|(tag, _, text)| {
                let catalogue = serde_json::from_str(text).unwrap_or_else(|e| {
                    tracing::error!(locale = tag, error = %e, "a console catalogue is unreadable");
                    Catalogue::new()
                });
                (*tag, catalogue)
            })
            .collect()
    })
}

/// The catalogue of `tag`, with English filling any gap.
pub fn catalogue(tag: &str) -> Catalogue {
    let all = parsed();
    let mut out = all.first().map(|(_, c)| c.clone()).unwrap_or_default();
    if let Some((_, own)) = all.iter().find(|(t, _)| *t == tag) {
        out.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    out
}

/// The supported locale a language tag means (`zh-Hant`, `zh-HK` → `zh-TW`; other
/// `zh` → `zh-CN`; `vi-VN` → `vi`), if any.
pub fn supported(tag: &str) -> Option<&'static str> {
    let tag = tag.trim().to_ascii_lowercase().replace('_', "-");
    let primary = tag.split('-').next().unwrap_or("");
    match primary {
        "en" => Some("en"),
        "vi" => Some("vi"),
        "zh" => {
            let traditional = ["-tw", "-hk", "-mo", "-hant"]
                .iter()
                .any(|s| tag.contains(s));
            Some(if traditional { "zh-TW" } else { "zh-CN" })
        }
        _ => None,
    }
}

/// The language of a page: `?lang=`, then the language cookie, then `Accept-Language`
/// (by its order and q-values), then `[server] language`, then English.
pub fn choose(
    query: Option<&str>,
    cookie: Option<&str>,
    accept_language: Option<&str>,
    configured: &str,
) -> &'static str {
    if let Some(tag) = query
        .and_then(supported)
        .or_else(|| cookie.and_then(supported))
    {
        return tag;
    }
    if let Some(header) = accept_language {
        let mut ranked: Vec<(f32, usize, &str)> = header
            .split(',')
            .enumerate()
            .filter_map(|(i, part)| {
                let mut pieces = part.split(';');
                let tag = pieces.next()?.trim();
                let q = pieces
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .and_then(|q| q.parse::<f32>().ok())
                    .unwrap_or(1.0);
                (q > 0.0).then_some((q, i, tag))
            })
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        if let Some(tag) = ranked.iter().find_map(|(_, _, tag)| supported(tag)) {
            return tag;
        }
    }
    supported(configured).unwrap_or("en")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn placeholders(text: &str) -> Vec<String> {
        let mut out: Vec<String> = text
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
            .filter(|name| name.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn every_locale_has_every_key_with_the_same_placeholders() {
        let all = parsed();
        let (_, english) = &all[0];
        assert!(english.len() > 50, "the English catalogue parsed");
        for (tag, catalogue) in all {
            assert_eq!(
                catalogue.keys().collect::<Vec<_>>(),
                english.keys().collect::<Vec<_>>(),
                "{tag} has other keys than en"
            );
            for (key, text) in catalogue {
                assert!(!text.trim().is_empty(), "{tag}: {key} is empty");
                assert_eq!(
                    placeholders(text),
                    placeholders(&english[key]),
                    "{tag}: {key} has other placeholders than en"
                );
            }
        }
    }

    /// Every `{{ t.key }}` in the templates and every `T("key")` in the script is a key of
    /// the catalogue.
    #[test]
    fn templates_and_script_use_only_keys_that_exist() {
        let english = catalogue("en");
        let mut used = Vec::new();
        for (_, text) in crate::console::pages::TEMPLATES {
            for piece in text.split("{{ t.").skip(1) {
                let key: String = piece
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if !key.is_empty() {
                    used.push(key);
                }
            }
        }
        for piece in crate::console::pages::SCRIPT.split("T(\"").skip(1) {
            // `T("state_" + name)` is built at run time: only whole keys count.
            if let Some((key, rest)) = piece.split_once('"')
                && (rest.starts_with(')') || rest.starts_with(','))
            {
                used.push(key.to_owned());
            }
        }
        assert!(used.len() > 40, "found the uses: {used:?}");
        for key in &used {
            assert!(
                english.contains_key(key),
                "{key} is used but not in en.json"
            );
        }
    }

    #[test]
    fn languages_by_query_cookie_header_and_config() {
        assert_eq!(choose(Some("vi"), Some("zh-CN"), None, "en"), "vi");
        assert_eq!(choose(Some("xx"), Some("zh-TW"), None, "en"), "zh-TW");
        assert_eq!(
            choose(
                None,
                None,
                Some("fr;q=0.9, zh-Hant-TW;q=0.8, en;q=0.5"),
                "en"
            ),
            "zh-TW"
        );
        assert_eq!(choose(None, None, Some("zh"), "en"), "zh-CN");
        assert_eq!(choose(None, None, Some("fr"), "vi"), "vi");
        assert_eq!(choose(None, None, None, "de"), "en");
        assert_eq!(catalogue("vi")["btn_retry"], "Thử lại ngay");
        assert_eq!(catalogue("nope")["btn_retry"], "Retry Now");
    }
}
