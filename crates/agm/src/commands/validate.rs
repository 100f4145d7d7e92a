//! `agm validate project-id`: the validation gate for project discovery.

use std::path::{Path, PathBuf};
use std::time::Duration;

use agm_server::ops::discovery_gate::{GateAccount, GateSettings, Verdict, run_gate};
use agm_store::AccountState;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::Workspace;
use crate::output;

#[derive(Debug, Subcommand)]
pub enum ValidateCommand {
    /// Run project discovery on N accounts every interval for a duration; GO above 90 % success
    ProjectId(GateArgs),
}

#[derive(Debug, Args)]
pub struct GateArgs {
    /// How many active accounts to run on
    #[arg(long, default_value_t = 3)]
    accounts: usize,
    /// How long to run (Ctrl-C stops early with a partial report)
    #[arg(long, default_value = "48h", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Time between rounds
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    interval: Duration,
    /// Write a report: HTML with a latency chart when the name ends in .html, else Markdown
    #[arg(long, value_name = "PATH")]
    report: Option<PathBuf>,
}

pub async fn run(
    explicit: Option<&Path>,
    ValidateCommand::ProjectId(args): ValidateCommand,
) -> anyhow::Result<()> {
    if args.accounts == 0 {
        bail!("--accounts must be at least 1");
    }
    let workspace = Workspace::open(explicit).await?;
    let active: Vec<_> = workspace
        .store
        .list_accounts()
        .await?
        .into_iter()
        .filter(|a| matches!(a.state, AccountState::Active))
        .collect();
    if active.is_empty() {
        bail!("no active account to validate with: add one with `agm accounts add`");
    }
    if active.len() < args.accounts {
        output::warn(&format!(
            "only {} active account(s); running on those instead of {}",
            active.len(),
            args.accounts
        ));
    }
    let accounts: Vec<GateAccount> = active
        .into_iter()
        .take(args.accounts)
        .map(|a| GateAccount {
            email: a.email,
            refresh_token: a.refresh_token.expose().to_owned(),
        })
        .collect();
    let settings = GateSettings {
        accounts: accounts.len(),
        duration: args.duration,
        interval: args.interval,
    };
    let google = workspace.google()?;
    output::progress(&format!(
        "validating project discovery on {} account(s), every {} for {} (Ctrl-C stops with a partial report)",
        settings.accounts,
        humantime::format_duration(settings.interval),
        humantime::format_duration(settings.duration)
    ));
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let report = run_gate(&google, accounts, settings, stop, |p| {
        output::progress(&format!(
            "round {}: {}/{} succeeded, {} of {} elapsed",
            p.round,
            p.successes,
            p.attempts,
            humantime::format_duration(Duration::from_secs(p.elapsed.as_secs())),
            humantime::format_duration(p.duration)
        ));
    })
    .await;
    for line in report.summary_lines() {
        output::line(&line);
    }
    if let Some(path) = &args.report {
        let html = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("html"));
        let text = if html {
            report.to_html()
        } else {
            report.to_markdown()
        };
        std::fs::write(path, text)
            .with_context(|| format!("cannot write the report to {}", path.display()))?;
        output::line(&format!("report: {}", path.display()));
    }
    if report.verdict == Verdict::NoGo {
        bail!(
            "NO-GO: project discovery succeeded {:.1} % of the time (GO needs more than 90 %)",
            report.summary.success_rate * 100.0
        );
    }
    Ok(())
}
