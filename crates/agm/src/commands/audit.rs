//! `agm audit`: what the gateway decided and why — safe mode, account switches,
//! circuit breakers, account and key changes, alerts — newest first.

use std::path::Path;
use std::time::Duration;

use agm_store::AuditKind;
use clap::Args;
use serde::Serialize;

use crate::commands::{Workspace, rfc3339};
use crate::output;

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only events this recent, e.g. 1h, 24h, 7d
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    since: Option<Duration>,
    /// Only events of this kind: safe-mode, account-switch, breaker, account, alert, key, settings
    #[arg(long, value_name = "KIND")]
    kind: Option<String>,
    /// At most this many events
    #[arg(long, value_name = "N", default_value_t = 50)]
    limit: usize,
    /// Print JSON, for scripts
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Row {
    id: i64,
    at: String,
    kind: String,
    subject: String,
    detail: String,
}

pub async fn run(explicit: Option<&Path>, args: AuditArgs) -> anyhow::Result<()> {
    let kind = match &args.kind {
        Some(name) => Some(name.parse::<AuditKind>().map_err(|e| {
            anyhow::anyhow!(
                "{e}: use safe-mode, account-switch, breaker, account, alert, key or settings"
            )
        })?),
        None => None,
    };
    let workspace = Workspace::open(explicit).await?;
    let since = match args.since {
        Some(d) => Some(time::OffsetDateTime::now_utc() - time::Duration::try_from(d)?),
        None => None,
    };
    // Filtering by kind happens here: read enough to fill the limit after it.
    let fetch = if kind.is_some() {
        args.limit.saturating_mul(20).max(1000)
    } else {
        args.limit
    };
    let rows: Vec<Row> = workspace
        .store
        .list_audit(since, fetch)
        .await?
        .into_iter()
        .filter(|r| kind.is_none_or(|k| r.event.kind == k))
        .take(args.limit)
        .map(|r| Row {
            id: r.id,
            at: rfc3339(r.event.at),
            kind: r.event.kind.to_string(),
            subject: r.event.subject,
            detail: r.event.detail,
        })
        .collect();
    if args.json {
        return output::json(&rows);
    }
    if rows.is_empty() {
        output::note(
            "no audit events (yet): safe mode, account switches, breakers, account and key changes and alerts are recorded as they happen",
        );
        return Ok(());
    }
    let table: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| vec![r.at, r.kind, r.subject, r.detail])
        .collect();
    output::table(&["TIME", "KIND", "SUBJECT", "WHAT HAPPENED"], &table);
    Ok(())
}
