//! Checks at the edge, before anything a client sent reaches a header, a URL or an
//! upstream call: model names and header values.
//!
//! A model name ends up in the code-assist `User-Agent` (`GeminiCLI/<v>/<model> (…)`)
//! and in the official API's URL (`/v1beta/models/<model>:generateContent`), so a CR,
//! LF, NUL or `%` in it must be refused with a clear 400 before any upstream call, not
//! discovered by the HTTP client as a request it cannot build.

use thiserror::Error;

/// The longest model name accepted, in characters (all ASCII).
pub const MAX_MODEL_NAME: usize = 128;

/// How much of a refused name an error message shows, in characters.
const SHOWN_CHARS: usize = 64;

/// A model name that [`check_model_name`] refuses. The message names the refused
/// value escaped (`"gemini-2.5-flash\n"`) and cut to its first 64 characters, so it
/// never holds a raw control character and stays short whatever the client sent.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ModelNameError {
    /// Empty.
    #[error("the model name is empty: name a model, e.g. \"gemini-2.5-flash\"")]
    Empty,
    /// Too long, or a character outside the allowed set.
    #[error(
        "the model name \"{shown}\" is not valid: use at most 128 of the characters A-Z a-z 0-9 . _ - : @ / +"
    )]
    Characters {
        /// The name, escaped and cut (see [`shown`]).
        shown: String,
    },
    /// A `/`-separated segment that is empty, `.` or `..`: the name would change the
    /// path of the upstream URL it is put into.
    #[error(
        "the model name \"{shown}\" is not valid: it may not hold an empty, \".\" or \"..\" segment between slashes"
    )]
    Segment {
        /// The name, escaped and cut (see [`shown`]).
        shown: String,
    },
}

/// `name` for an error message: escaped with [`str::escape_debug`] (no raw control
/// characters) and cut to its first 64 characters plus `…`.
pub fn shown(name: &str) -> String {
    let mut chars = name.chars();
    let head: String = chars.by_ref().take(SHOWN_CHARS).collect();
    let mut out = head.escape_debug().to_string();
    if chars.next().is_some() {
        out.push('…');
    }
    out
}

/// Whether `c` may appear in a model name: ASCII letters, digits and `. _ - : @ / +`.
fn is_model_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b':' | b'@' | b'/' | b'+')
}

/// A client's model name (a request body's `model`, or the Gemini path's `{model}`):
/// 1 to 128 ASCII letters, digits and `. _ - : @ / +`, with no empty, `.` or `..`
/// segment between slashes. Returns the name unchanged. Whatever this accepts is
/// [header-safe](is_header_safe), and cannot change the path of a URL it ends.
pub fn check_model_name(name: &str) -> Result<&str, ModelNameError> {
    if name.is_empty() {
        return Err(ModelNameError::Empty);
    }
    if name.len() > MAX_MODEL_NAME || !name.bytes().all(is_model_char) {
        return Err(ModelNameError::Characters { shown: shown(name) });
    }
    if name.split('/').any(|s| matches!(s, "" | "." | "..")) {
        return Err(ModelNameError::Segment { shown: shown(name) });
    }
    Ok(name)
}

/// Whether `value` may be put into an HTTP header value as it is: visible ASCII, space
/// and tab only. CR, LF, NUL, DEL and other control characters are refused, and so is
/// anything outside ASCII (which HTTP allows only as opaque bytes).
pub fn is_header_safe(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const REAL: [&str; 9] = [
        "gemini-2.5-flash",
        "models/gemini-3-pro-preview",
        "claude-sonnet-4-5@20250929",
        "claude-opus-4-5-thinking",
        "gpt-5.1-codex",
        "o3",
        "gemini-2.5-flash-lite-preview-09-2025",
        "accounts/fireworks/models/x",
        "gemini-3-pro-high",
    ];

    /// Both `User-Agent` shapes: gemini-cli's carries the model, Antigravity's a
    /// version (a name is put in its place, as a value of the same kind).
    fn user_agents(model: &str) -> [String; 2] {
        [
            format!("GeminiCLI/0.21.0/{model} (linux; x64)"),
            format!("antigravity/{model} linux/amd64"),
        ]
    }

    #[test]
    fn real_names_pass() {
        for name in REAL {
            assert_eq!(check_model_name(name), Ok(name));
            for agent in user_agents(name) {
                assert!(http::HeaderValue::from_str(&agent).is_ok(), "{agent}");
            }
        }
    }

    #[test]
    fn length_limit() {
        let at = "a".repeat(128);
        assert_eq!(check_model_name(&at), Ok(at.as_str()));
        let over = "a".repeat(129);
        assert!(matches!(
            check_model_name(&over),
            Err(ModelNameError::Characters { .. })
        ));
        assert_eq!(check_model_name(""), Err(ModelNameError::Empty));
    }

    #[test]
    fn hostile_names_are_refused() {
        for name in [
            "gemini-2.5-flash\n",
            "gemini-2.5-flash\r\nX-Evil: 1",
            "gemini-2.5-flash%0D%0AX-Evil: 1",
            "gemini\0",
            "gemini 2.5",
            "gemini\t",
            "gémini",
            "gemini-2.5-flash\u{202e}",
            "x?alt=json",
            "x#y",
            "x\\y",
            "\"x\"",
        ] {
            let err = check_model_name(name).unwrap_err();
            assert!(matches!(err, ModelNameError::Characters { .. }), "{name:?}");
            assert!(!err.to_string().chars().any(char::is_control), "{err}");
        }
        for name in [
            "../x",
            "a/../b",
            "a/./b",
            "/x",
            "x/",
            "a//b",
            "..",
            "models/..",
        ] {
            assert!(
                matches!(check_model_name(name), Err(ModelNameError::Segment { .. })),
                "{name:?}"
            );
        }
        // Dots inside a segment are fine.
        assert!(check_model_name("...x").is_ok());
        assert!(check_model_name("a/..b").is_ok());
    }

    #[test]
    fn messages_escape_and_cut_the_name() {
        assert_eq!(
            check_model_name("gemini-2.5-flash\n")
                .unwrap_err()
                .to_string(),
            r#"the model name "gemini-2.5-flash\n" is not valid: use at most 128 of the characters A-Z a-z 0-9 . _ - : @ / +"#
        );
        let huge = "\r\n".repeat(10_000_000);
        let message = check_model_name(&huge).unwrap_err().to_string();
        assert!(message.len() < 400, "{}", message.len());
        assert!(message.contains(&format!("\"{}…\"", r"\r\n".repeat(32))));
        assert_eq!(shown("x".repeat(64).as_str()), "x".repeat(64));
        assert_eq!(shown(&"x".repeat(65)), format!("{}…", "x".repeat(64)));
    }

    #[test]
    fn header_safety() {
        assert!(is_header_safe(""));
        assert!(is_header_safe(
            "GeminiCLI/0.21.0/gemini-2.5-flash (linux; x64)"
        ));
        assert!(is_header_safe("a\tb ~!"));
        for bad in ["a\rb", "a\nb", "a\0b", "a\x7fb", "a\x1bb", "é", "\u{202e}"] {
            assert!(!is_header_safe(bad), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn accepted_names_are_header_and_url_safe(name in "[A-Za-z0-9._:@/+-]{0,140}") {
            if let Ok(ok) = check_model_name(&name) {
                prop_assert!(ok.len() <= MAX_MODEL_NAME);
                prop_assert!(is_header_safe(ok));
                for agent in user_agents(ok) {
                    prop_assert!(http::HeaderValue::from_str(&agent).is_ok());
                }
                prop_assert!(!ok.split('/').any(|s| s == ".."));
            }
        }

        #[test]
        fn any_string_never_panics_and_messages_stay_clean(name in any::<String>()) {
            match check_model_name(&name) {
                Ok(ok) => prop_assert!(is_header_safe(ok)),
                Err(err) => {
                    let message = err.to_string();
                    prop_assert!(!message.chars().any(char::is_control));
                    prop_assert!(message.chars().count() < 64 * 10 + 200);
                }
            }
        }

        #[test]
        fn header_safe_means_a_valid_header_value(value in any::<String>()) {
            if is_header_safe(&value) {
                prop_assert!(http::HeaderValue::from_str(&value).is_ok());
            }
        }

        #[test]
        fn on_ascii_header_safety_is_http_s_rule(value in "[\\x00-\\x7f]{0,40}") {
            prop_assert_eq!(
                is_header_safe(&value),
                http::HeaderValue::from_str(&value).is_ok()
            );
        }
    }
}
