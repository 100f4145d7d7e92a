//! `agm env claude|codex|opencode|gemini`: what a client needs to use this gateway —
//! shell variables to `eval`, or the config snippet the client reads — built from the
//! effective config (address, port, whether a client key is required). `agm run`
//! (`run.rs`) starts a client with the same settings; both take them from here.

use std::path::Path;

use clap::ValueEnum;
use serde_json::{Value, json};

use crate::commands::Workspace;
use crate::output;

/// The client key printed and passed when the gateway needs none: a keyless loopback
/// gateway accepts any key, and some clients refuse to start without one.
pub const PLACEHOLDER_KEY: &str = "agm";

/// What a keyed gateway's snippets show in place of the key, which is not stored in
/// the clear.
const YOUR_KEY: &str = "<your agm client key>";

/// The variable Codex and OpenCode read the key from (`env_key`, `{env:...}`), and
/// the one `agm run` takes it from.
pub const KEY_VAR: &str = "AGM_API_KEY";

/// Gemini CLI's auth type for an API key. With `GOOGLE_GEMINI_BASE_URL` set and no
/// type chosen in its settings, Gemini CLI picks its `gateway` type, which its
/// non-interactive check refuses ("Invalid auth method selected."); with this one it
/// still sends every request to `GOOGLE_GEMINI_BASE_URL`.
pub const GEMINI_AUTH_TYPE: &str = "gemini-api-key";

/// The models the OpenCode snippet lists for each of its three providers.
const OPENCODE_MODELS: [(&str, &str); 3] = [
    ("claude-sonnet-4-5", "Claude Sonnet 4.5"),
    ("gemini-3-pro-high", "Gemini 3 Pro"),
    ("gemini-3-flash", "Gemini 3 Flash"),
];

/// OpenCode's default model in its snippet: `<provider>/<model>`.
pub const OPENCODE_DEFAULT_MODEL: &str = "agm/claude-sonnet-4-5";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Client {
    /// Claude Code: ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY
    Claude,
    /// Codex CLI: a model provider for ~/.codex/config.toml (Responses API)
    Codex,
    /// OpenCode: providers for opencode.json (Chat Completions, Responses, Anthropic)
    Opencode,
    /// Gemini CLI and the google-genai SDKs: GOOGLE_GEMINI_BASE_URL, GEMINI_API_KEY and
    /// Gemini CLI's auth type in settings.json
    Gemini,
}

/// Where clients reach the gateway, and whether it wants a client key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    /// `http://host:port`, without a trailing slash.
    pub base: String,
    /// Whether requests need a client key (keys configured or created, or a bind that
    /// is not loopback): then the placeholder key is refused.
    pub keyed: bool,
}

impl Gateway {
    /// The gateway the effective config describes.
    pub async fn of(workspace: &Workspace) -> anyhow::Result<Gateway> {
        let config = &workspace.config;
        let bind = config.server.bind;
        let host = if bind.is_unspecified() {
            "127.0.0.1".to_owned()
        } else if bind.is_ipv6() {
            format!("[{bind}]")
        } else {
            bind.to_string()
        };
        // As the server decides (`keys_required`): revoked keys count too.
        let store_keys = !workspace.store.list_client_keys().await?.is_empty();
        Ok(Gateway {
            base: format!("http://{host}:{}", config.server.port),
            keyed: store_keys || !config.server.api_keys.is_empty() || !bind.is_loopback(),
        })
    }
}

pub async fn run(explicit: Option<&Path>, client: Client) -> anyhow::Result<()> {
    let workspace = Workspace::open(explicit).await?;
    let gateway = Gateway::of(&workspace).await?;
    // Secrets are not stored in the clear: with keys required, the user fills in theirs.
    let key = if gateway.keyed {
        YOUR_KEY
    } else {
        PLACEHOLDER_KEY
    };
    for line in snippet(client, &gateway.base, key) {
        output::line(&line);
    }
    if gateway.keyed {
        output::note(&format!(
            "this gateway requires a client key: put yours in place of {YOUR_KEY} (`agm keys create` makes one; it is shown only once)"
        ));
    }
    Ok(())
}

fn snippet(client: Client, base: &str, key: &str) -> Vec<String> {
    let run_hint =
        format!("# or let agm start it with this configuration: agm run {client:?}").to_lowercase();
    match client {
        Client::Claude => vec![
            format!("export ANTHROPIC_BASE_URL={base}"),
            format!("export ANTHROPIC_API_KEY={key}"),
            run_hint,
        ],
        Client::Gemini => {
            let mut lines = vec![
                format!("export GOOGLE_GEMINI_BASE_URL={base}"),
                format!("export GEMINI_API_KEY={key}"),
                "# Gemini CLI also needs its auth type in ~/.gemini/settings.json (merge it into"
                    .to_owned(),
                "# what is there): without it, GOOGLE_GEMINI_BASE_URL makes it pick an auth type"
                    .to_owned(),
                "# that `gemini -p` refuses (\"Invalid auth method selected.\").".to_owned(),
            ];
            lines.extend(
                pretty(&gemini_settings())
                    .into_iter()
                    .map(|l| format!("# {l}")),
            );
            lines.push(run_hint);
            lines
        }
        Client::Codex => {
            let mut lines = vec![
                "# ~/.codex/config.toml: the two top-level keys go above any [table] in the file"
                    .to_owned(),
                "model_provider = \"agm\"".to_owned(),
                "model = \"gpt-5.5\"".to_owned(),
                String::new(),
            ];
            lines.extend(codex_provider_toml(base));
            lines.extend([
                String::new(),
                "# and in the shell:".to_owned(),
                format!("# export {KEY_VAR}={key}"),
                run_hint,
            ]);
            lines
        }
        Client::Opencode => {
            let mut lines = vec![
                "// opencode.json (in the project, or ~/.config/opencode/): three providers, one per API agm serves"
                    .to_owned(),
            ];
            lines.extend(pretty(&opencode_config(base, &Value::from(key))));
            lines.push(format!("// {}", &run_hint[2..]));
            lines
        }
    }
}

fn pretty(value: &Value) -> Vec<String> {
    serde_json::to_string_pretty(value)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The `[model_providers.agm]` table of Codex's config.toml: the Responses API at
/// agm's `/v1`, with the key read from `$AGM_API_KEY`.
pub fn codex_provider_toml(base: &str) -> Vec<String> {
    vec![
        "[model_providers.agm]".to_owned(),
        "name = \"agm\"".to_owned(),
        format!("base_url = \"{base}/v1\""),
        format!("env_key = \"{KEY_VAR}\""),
        "wire_api = \"responses\"".to_owned(),
    ]
}

/// The same provider as `-c` overrides for Codex's command line (`agm run codex`):
/// each `key=value` with a TOML value, applied over the user's own config.toml.
pub fn codex_overrides(base: &str) -> Vec<String> {
    vec![
        "model_provider=\"agm\"".to_owned(),
        format!(
            "model_providers.agm={{ name = \"agm\", base_url = \"{base}/v1\", env_key = \"{KEY_VAR}\", wire_api = \"responses\" }}"
        ),
    ]
}

/// The entry Gemini CLI needs in a settings.json.
pub fn gemini_settings() -> Value {
    json!({"security": {"auth": {"selectedType": GEMINI_AUTH_TYPE}}})
}

/// An opencode.json with agm as three providers: `agm` (OpenAI Chat Completions),
/// `agm-responses` (OpenAI Responses) and `agm-anthropic` (Anthropic Messages), all at
/// `base`, with `key` as the API key (a literal, or `{env:AGM_API_KEY}`).
pub fn opencode_config(base: &str, key: &Value) -> Value {
    let models = |suffix: &str| -> Value {
        OPENCODE_MODELS
            .iter()
            .map(|(id, name)| {
                (
                    (*id).to_owned(),
                    json!({"name": format!("{name} ({suffix})")}),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let provider = |npm: &str, name: &str, suffix: &str| {
        json!({
            "npm": npm,
            "name": name,
            "options": {"baseURL": format!("{base}/v1"), "apiKey": key},
            "models": models(suffix),
        })
    };
    json!({
        "$schema": "https://opencode.ai/config.json",
        "model": OPENCODE_DEFAULT_MODEL,
        "provider": {
            "agm": provider("@ai-sdk/openai-compatible", "agm (OpenAI Chat Completions)", "agm"),
            "agm-responses": provider("@ai-sdk/openai", "agm (OpenAI Responses)", "agm, Responses"),
            "agm-anthropic": provider("@ai-sdk/anthropic", "agm (Anthropic Messages)", "agm, Anthropic"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_gets_the_gateway_address() {
        for client in [
            Client::Claude,
            Client::Codex,
            Client::Opencode,
            Client::Gemini,
        ] {
            let text = snippet(client, "http://127.0.0.1:9000", "k").join("\n");
            assert!(text.contains("http://127.0.0.1:9000"), "{client:?}: {text}");
            assert!(text.contains(&format!("agm run {client:?}").to_lowercase()));
        }
        assert_eq!(
            snippet(Client::Claude, "http://h:1", "k")[..2],
            [
                "export ANTHROPIC_BASE_URL=http://h:1",
                "export ANTHROPIC_API_KEY=k"
            ]
        );
    }

    #[test]
    fn codex_gets_a_responses_provider_that_parses() {
        let codex = snippet(Client::Codex, "http://h:1", "k").join("\n");
        let toml: toml::Table = toml::from_str(&codex).unwrap();
        assert_eq!(toml["model_provider"].as_str(), Some("agm"));
        let provider = &toml["model_providers"]["agm"];
        assert_eq!(provider["base_url"].as_str(), Some("http://h:1/v1"));
        assert_eq!(provider["wire_api"].as_str(), Some("responses"));
        assert_eq!(provider["env_key"].as_str(), Some("AGM_API_KEY"));
        assert!(codex.contains("# export AGM_API_KEY=k"));
        // The -c overrides say the same.
        let overrides = codex_overrides("http://h:1").join("\n");
        let parsed: toml::Table = toml::from_str(&overrides).unwrap();
        assert_eq!(parsed["model_providers"]["agm"], *provider);
    }

    #[test]
    fn gemini_gets_its_auth_type_as_well_as_the_variables() {
        let lines = snippet(Client::Gemini, "http://h:1", "k");
        assert_eq!(lines[0], "export GOOGLE_GEMINI_BASE_URL=http://h:1");
        assert_eq!(lines[1], "export GEMINI_API_KEY=k");
        // Everything else is a shell comment, so the output can be eval'd.
        assert!(lines[2..].iter().all(|l| l.starts_with('#')), "{lines:?}");
        let start = lines.iter().position(|l| l == "# {").unwrap();
        let end = lines.iter().position(|l| l == "# }").unwrap();
        let json: String = lines[start..=end].iter().map(|l| &l[1..]).collect();
        let value: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["security"]["auth"]["selectedType"], "gemini-api-key");
    }

    #[test]
    fn opencode_gets_three_providers() {
        let lines = snippet(Client::Opencode, "http://h:1", "k");
        let json: Value = serde_json::from_str(&lines[1..lines.len() - 1].join("\n")).unwrap();
        for (id, npm) in [
            ("agm", "@ai-sdk/openai-compatible"),
            ("agm-responses", "@ai-sdk/openai"),
            ("agm-anthropic", "@ai-sdk/anthropic"),
        ] {
            let provider = &json["provider"][id];
            assert_eq!(provider["npm"], npm);
            assert_eq!(provider["options"]["baseURL"], "http://h:1/v1");
            assert_eq!(provider["options"]["apiKey"], "k");
            assert!(provider["models"]["gemini-3-flash"].is_object());
        }
        assert_eq!(json["model"], OPENCODE_DEFAULT_MODEL);
    }
}
