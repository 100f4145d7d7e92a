//! `agm demo`: the gateway, a simulated Google and two demo accounts in one process.
//! Nothing touches the user's data dir or a real Google account.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;

use agm_server::app::{AppState, bind, serve, shutdown_signal};
use agm_server::config::{Config, process_env};
use agm_sim::Sim;
use agm_store::{NewAccount, Store};
use anyhow::Context;
use clap::Args;

use crate::{logging, output};

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Port for the gateway (0 picks a free one)
    #[arg(long, value_name = "N", default_value_t = 8045)]
    port: u16,
}

pub async fn run(explicit: Option<&Path>, args: DemoArgs) -> anyhow::Result<()> {
    // The user's config still decides logging and the model map; everything that
    // reaches Google or the disk is replaced by the demo's own.
    let mut config = Config::load(explicit, &process_env())?.config;
    logging::init(&config.logging);

    let sim = Sim::demo()
        .start()
        .await
        .context("cannot start the simulated Google")?;
    let upstream = sim.base_url();
    config.google.all_at(&upstream);
    config.server.bind = IpAddr::V4(Ipv4Addr::LOCALHOST);
    config.server.port = args.port;
    config.server.api_keys.clear();

    let store = Store::open_in_memory().await?;
    let mut emails = Vec::new();
    for account in sim.accounts() {
        store
            .upsert_account(NewAccount::antigravity(
                account.email.clone(),
                account.refresh_token.clone(),
            ))
            .await?;
        emails.push(account.email);
    }

    let state = Arc::new(AppState::new(config, store)?);
    let listener = bind(&state).await?;
    let url = format!("http://{}", listener.local_addr()?);
    for line in instructions(&url, &upstream, &emails) {
        output::line(&line);
    }
    if let Some(link) = state.console.startup_link(listener.local_addr()?) {
        output::line(&format!("Web console (this link signs in once): {link}"));
    }
    serve(listener, state, shutdown_signal()).await?;
    Ok(())
}

fn instructions(url: &str, upstream: &str, emails: &[String]) -> Vec<String> {
    vec![
        format!("agm demo is running on {url}"),
        format!(
            "  upstream: a simulated Google at {upstream}, demo accounts {} (no real Google account is used)",
            emails.join(", ")
        ),
        "  the demo's accounts live in this process only: `agm accounts list` (your data dir) does not show them".into(),
        String::new(),
        "Point a client at it (the demo takes any API key; `agm` is used here):".into(),
        format!("  Claude Code:   ANTHROPIC_BASE_URL={url} ANTHROPIC_API_KEY=agm claude"),
        "  Codex CLI:     agm run codex   (its config for this gateway: `agm env codex`)".into(),
        format!("  anthropic SDK: anthropic.Anthropic(base_url=\"{url}\", api_key=\"agm\")"),
        format!("  openai SDK:    openai.OpenAI(base_url=\"{url}/v1\", api_key=\"agm\")"),
        format!(
            "  google-genai:  genai.Client(api_key=\"agm\", http_options={{\"base_url\": \"{url}\"}})"
        ),
        format!(
            "  curl:          curl -N {url}/v1/messages -H 'content-type: application/json' \\\n                   -d '{{\"model\":\"claude-sonnet-4-5\",\"max_tokens\":256,\"stream\":true,\"messages\":[{{\"role\":\"user\",\"content\":\"Hello\"}}]}}'"
        ),
        String::new(),
        "The simulated model answers \"Simulated <model> reply to: <your text>\". To see a tool call, declare".into(),
        "the tool and end your prompt with a line `agm-sim:call <tool name> {\"arg\": \"value\"}`.".into(),
        "Ctrl-C stops it.".into(),
    ]
}
