//! `agm logs`: the request log — one row per client request (route, model, account,
//! client key, status, upstream calls, tokens Google counted, latency, agm's own
//! overhead; never a prompt or a secret), newest first.

use std::path::Path;
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use crate::commands::{Workspace, rfc3339};
use crate::output;

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Only requests this recent, e.g. 10m, 1h, 24h
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    since: Option<Duration>,
    /// At most this many requests
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
    api: String,
    route: String,
    client_model: String,
    upstream_model: String,
    account_id: Option<String>,
    /// The client key (its id) that sent it.
    key_id: Option<String>,
    status: u16,
    attempts: u32,
    input_tokens: u64,
    output_tokens: u64,
    latency_ms: u64,
    overhead_ms: Option<f64>,
    error_class: Option<String>,
    /// How context scaling shrank the upstream request (`standard; cut=N tokens`).
    context_scaled: Option<String>,
}

pub async fn run(explicit: Option<&Path>, args: LogsArgs) -> anyhow::Result<()> {
    let workspace = Workspace::open(explicit).await?;
    let since = match args.since {
        Some(d) => Some(time::OffsetDateTime::now_utc() - time::Duration::try_from(d)?),
        None => None,
    };
    let rows: Vec<Row> = workspace
        .store
        .list_request_log(since, args.limit)
        .await?
        .into_iter()
        .map(|r| {
            let e = r.entry;
            Row {
                id: r.id,
                at: rfc3339(e.at),
                api: e.api.to_string(),
                route: e.route,
                client_model: e.client_model,
                upstream_model: e.upstream_model,
                account_id: e.account_id,
                key_id: e.key_id,
                status: e.status,
                attempts: e.attempts,
                input_tokens: e.input_tokens,
                output_tokens: e.output_tokens,
                latency_ms: e.latency_ms,
                overhead_ms: e.overhead_us.map(|us| us as f64 / 1000.0),
                error_class: e.error_class,
                context_scaled: e.context_scaled,
            }
        })
        .collect();
    if args.json {
        return output::json(&rows);
    }
    if rows.is_empty() {
        output::note(
            "no requests logged (yet): `agm serve` records each client request within a second; entries older than [logging] request_log_retention are deleted",
        );
        return Ok(());
    }
    let table: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| {
            vec![
                r.at,
                r.route,
                if r.client_model == r.upstream_model || r.upstream_model.is_empty() {
                    r.client_model
                } else {
                    format!("{} → {}", r.client_model, r.upstream_model)
                },
                r.account_id.unwrap_or_else(|| "-".into()),
                r.key_id.unwrap_or_else(|| "-".into()),
                match r.error_class {
                    Some(class) => format!("{} {class}", r.status),
                    None => r.status.to_string(),
                },
                r.attempts.to_string(),
                format!("{}/{}", r.input_tokens, r.output_tokens),
                r.latency_ms.to_string(),
                r.overhead_ms
                    .map_or_else(|| "-".into(), |ms| format!("{ms:.2}")),
                r.context_scaled.unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    output::table(
        &[
            "TIME",
            "ROUTE",
            "MODEL",
            "ACCOUNT",
            "KEY",
            "STATUS",
            "CALLS",
            "TOKENS IN/OUT",
            "MS",
            "AGM MS",
            "SCALED",
        ],
        &table,
    );
    Ok(())
}
