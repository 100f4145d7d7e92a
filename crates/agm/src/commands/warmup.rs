//! `agm warmup status`: what smart warmup (`[warmup]`) did and would do — for each
//! active account and model group, the quota left, the last warmup and when the window
//! it started ends, and whether a round now would warm it. Read from the store; no
//! server needed. The warmups themselves are sent by `agm serve`.

use std::path::Path;

use clap::Subcommand;

use crate::commands::{Workspace, rfc3339};
use crate::output;

#[derive(Debug, Subcommand)]
pub enum WarmupCommand {
    /// Show each account's warmups: last one, window end, and what is due now
    Status {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(explicit: Option<&Path>, command: WarmupCommand) -> anyhow::Result<()> {
    let WarmupCommand::Status { json } = command;
    let workspace = Workspace::open(explicit).await?;
    let section = &workspace.config.warmup;
    let rows = agm_server::ops::warmup::status(
        &workspace.store,
        &workspace.shared,
        section,
        time::OffsetDateTime::now_utc(),
    )
    .await?;
    if json {
        return output::json(&rows);
    }
    output::line(&if section.enabled {
        format!(
            "warmup is on: every {}, groups {}{}",
            humantime::format_duration(section.interval),
            section.groups.join(", "),
            match String::from(section.quiet_hours) {
                hours if hours.is_empty() => String::new(),
                hours => format!(", quiet {hours} UTC"),
            }
        )
    } else {
        "warmup is off ([warmup] enabled = false): nothing is sent".to_owned()
    });
    if rows.is_empty() {
        output::line(
            "no active account has a quota snapshot yet (`agm accounts quota` fetches one)",
        );
        return Ok(());
    }
    let table: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.email.clone(),
                r.group.clone(),
                r.model.clone().unwrap_or_else(|| "-".into()),
                r.remaining
                    .map_or_else(|| "-".into(), |f| format!("{:.0}%", f * 100.0)),
                r.warmed_at.map_or_else(|| "-".into(), rfc3339),
                r.window_ends.map_or_else(|| "-".into(), rfc3339),
                if r.due { "due" } else { "" }.to_owned(),
            ]
        })
        .collect();
    output::table(
        &[
            "ACCOUNT",
            "GROUP",
            "MODEL",
            "LEFT",
            "WARMED",
            "WINDOW ENDS",
            "NOW",
        ],
        &table,
    );
    Ok(())
}
