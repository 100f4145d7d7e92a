//! `agm env claude|codex|opencode|gemini`: what a client needs to use this gateway —
//! shell variables to `eval`, or the config snippet the client reads — built from the
//! effective config (address, port, whether a client key is required).

use std::path::Path;

use clap::ValueEnum;

use crate::commands::Workspace;
use crate::output;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Client {
    /// Claude Code: ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY
    Claude,
    /// Codex CLI: a model provider for ~/.codex/config.toml (Responses API)
    Codex,
    /// OpenCode: a provider for opencode.json (OpenAI-compatible)
    Opencode,
    /// Gemini CLI and the google-genai SDKs: GOOGLE_GEMINI_BASE_URL and GEMINI_API_KEY
    Gemini,
}

pub async fn run(explicit: Option<&Path>, client: Client) -> anyhow::Result<()> {
    let workspace = Workspace::open(explicit).await?;
    let config = &workspace.config;
    let host = if config.server.bind.is_unspecified() {
        "127.0.0.1".to_owned()
    } else if config.server.bind.is_ipv6() {
        format!("[{}]", config.server.bind)
    } else {
        config.server.bind.to_string()
    };
    let base = format!("http://{host}:{}", config.server.port);
    let store_keys = workspace
        .store
        .list_client_keys()
        .await?
        .iter()
        .any(|k| k.revoked_at.is_none());
    let keyed = store_keys || !config.server.api_keys.is_empty();
    // Secrets are not stored in the clear: with keys required, the user fills in theirs.
    let key = if keyed {
        "<your agm client key>"
    } else {
        "agm"
    };
    for line in snippet(client, &base, key) {
        output::line(&line);
    }
    if keyed {
        output::note(
            "this gateway requires a client key: put yours in place of <your agm client key> (`agm keys create` makes one; it is shown only once)",
        );
    }
    Ok(())
}

fn snippet(client: Client, base: &str, key: &str) -> Vec<String> {
    match client {
        Client::Claude => vec![
            format!("export ANTHROPIC_BASE_URL={base}"),
            format!("export ANTHROPIC_API_KEY={key}"),
        ],
        Client::Gemini => vec![
            format!("export GOOGLE_GEMINI_BASE_URL={base}"),
            format!("export GEMINI_API_KEY={key}"),
        ],
        Client::Codex => vec![
            "# ~/.codex/config.toml".to_owned(),
            "model = \"gpt-5\"".to_owned(),
            "model_provider = \"agm\"".to_owned(),
            String::new(),
            "[model_providers.agm]".to_owned(),
            "name = \"agm\"".to_owned(),
            format!("base_url = \"{base}/v1\""),
            "env_key = \"AGM_API_KEY\"".to_owned(),
            "wire_api = \"responses\"".to_owned(),
            String::new(),
            "# and in the shell:".to_owned(),
            format!("# export AGM_API_KEY={key}"),
        ],
        Client::Opencode => {
            let config = serde_json::json!({
                "$schema": "https://opencode.ai/config.json",
                "provider": {
                    "agm": {
                        "npm": "@ai-sdk/openai-compatible",
                        "name": "agm",
                        "options": {"baseURL": format!("{base}/v1"), "apiKey": key},
                        "models": {
                            "claude-sonnet-4-5": {"name": "Claude Sonnet 4.5 (agm)"},
                            "gemini-3-pro-high": {"name": "Gemini 3 Pro (agm)"},
                            "gemini-3-flash": {"name": "Gemini 3 Flash (agm)"}
                        }
                    }
                }
            });
            let mut lines =
                vec!["// opencode.json (in the project, or ~/.config/opencode/)".to_owned()];
            lines.extend(
                serde_json::to_string_pretty(&config)
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_owned),
            );
            lines
        }
    }
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
        }
        assert_eq!(
            snippet(Client::Claude, "http://h:1", "k"),
            [
                "export ANTHROPIC_BASE_URL=http://h:1",
                "export ANTHROPIC_API_KEY=k"
            ]
        );
        let codex = snippet(Client::Codex, "http://h:1", "k").join("\n");
        assert!(codex.contains("base_url = \"http://h:1/v1\""));
        assert!(codex.contains("wire_api = \"responses\""));
        let opencode = snippet(Client::Opencode, "http://h:1", "k");
        let json: serde_json::Value = serde_json::from_str(&opencode[1..].join("\n")).unwrap();
        assert_eq!(
            json["provider"]["agm"]["options"]["baseURL"],
            "http://h:1/v1"
        );
    }
}
