//! `agm safe-mode status|enable|disable|reset-all`: reads or changes the stored
//! safe-mode state. Works with or without a running server; a running server follows
//! within 2 s.

use std::path::Path;

use agm_pool::safe_mode::SafeModeStatus;
use agm_server::routing::safe_mode::{Command, Origin, apply, config_of};
use clap::Subcommand;

use crate::commands::{Workspace, rfc3339};
use crate::output;

#[derive(Debug, Subcommand)]
pub enum SafeModeCommand {
    /// Whether safe mode is on, why, since when, and when Antigravity is retried
    Status {
        /// Print JSON, for scripts
        #[arg(long)]
        json: bool,
    },
    /// Turn safe mode on: requests go to the official Gemini API until `disable`
    Enable {
        /// Why, for the audit log
        #[arg(long, value_name = "TEXT")]
        note: Option<String>,
    },
    /// Turn safe mode off: requests go the Antigravity way again
    Disable,
    /// Turn safe mode off and clear every project-id failure count, circuit breaker and cooldown
    ResetAll,
}

pub async fn run(explicit: Option<&Path>, command: SafeModeCommand) -> anyhow::Result<()> {
    let workspace = Workspace::open(explicit).await?;
    let config = config_of(&workspace.config);
    let (command, json) = match command {
        SafeModeCommand::Status { json } => (Command::Status, json),
        SafeModeCommand::Enable { note } => (Command::Enable { note }, false),
        SafeModeCommand::Disable => (Command::Disable, false),
        SafeModeCommand::ResetAll => (Command::ResetAll, false),
    };
    let status = apply(
        config,
        &workspace.store,
        &workspace.shared,
        command,
        Origin::Cli,
    )
    .await?;
    if json {
        return output::json(&status);
    }
    print_status(
        &status,
        !workspace.config.safe_mode.gemini_api_keys.is_empty(),
    );
    Ok(())
}

fn print_status(status: &SafeModeStatus, has_keys: bool) {
    if !status.active {
        output::line("safe mode: off (requests go the Antigravity way)");
        return;
    }
    output::line(&format!(
        "safe mode: ON: {}",
        status.reason.as_deref().unwrap_or("no reason recorded")
    ));
    if let Some(since) = status.since {
        output::line(&format!("  since:      {}", rfc3339(since)));
    }
    match status.next_retry {
        Some(at) => output::line(&format!(
            "  next retry: {} (Antigravity is tried again then)",
            rfc3339(at)
        )),
        None => output::line(
            "  next retry: none (turned on by hand: `agm safe-mode disable` turns it off)",
        ),
    }
    if !has_keys {
        output::warn(
            "no Gemini API key is configured, so requests get a 503: add one with GEMINI_API_KEY=<key> or [safe_mode] gemini_api_keys",
        );
    }
}
