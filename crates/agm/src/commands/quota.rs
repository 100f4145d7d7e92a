//! `agm accounts quota [ID_OR_EMAIL] [--json]`: asks Google for each account's per-model
//! quota, stores it with its timestamp, and prints it.

use std::io::IsTerminal;

use agm_google::{DiscoveryRequest, DiscoveryStats, GoogleClient, ProjectDiscovery, QuotaSnapshot};
use agm_store::{Account, AccountState, Store};
use anyhow::{Context, bail};
use serde::Serialize;
use time::OffsetDateTime;

use super::{Workspace, rfc3339};
use crate::output;

#[derive(Serialize)]
struct AccountQuota {
    account: String,
    email: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    quota: Option<QuotaSnapshot>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub async fn run(workspace: &Workspace, account: Option<&str>, json: bool) -> anyhow::Result<()> {
    let accounts = match account {
        Some(wanted) => match workspace.store.get_account(wanted).await? {
            Some(a) => vec![a],
            None => bail!("no account {wanted:?} (`agm accounts list` shows the ids and e-mails)"),
        },
        None => workspace
            .store
            .list_accounts()
            .await?
            .into_iter()
            .filter(|a| matches!(a.state, AccountState::Active))
            .collect(),
    };
    if accounts.is_empty() {
        bail!("no active account to ask: add one with `agm accounts add`");
    }
    let google = workspace.google()?;
    let mut results = Vec::new();
    for a in accounts {
        let outcome = fetch(&google, &workspace.store, &a).await;
        let (quota, error) = match outcome {
            Ok(snapshot) => {
                agm_server::state::quota::save(&workspace.shared, &a.id, &snapshot).await?;
                (Some(snapshot), None)
            }
            Err(e) => (None, Some(format!("{e:#}"))),
        };
        results.push(AccountQuota {
            account: a.id,
            email: a.email,
            quota,
            error,
        });
    }
    if json {
        return output::json(&results);
    }
    let bars = std::io::stdout().is_terminal();
    let mut rows = Vec::new();
    for r in &results {
        match (&r.quota, &r.error) {
            (Some(q), _) => {
                for m in &q.models {
                    rows.push(vec![
                        r.email.clone(),
                        m.model.clone(),
                        m.remaining_fraction
                            .map_or_else(String::new, |f| left(f, bars)),
                        m.reset_time.map(rfc3339).unwrap_or_default(),
                    ]);
                }
            }
            (None, Some(e)) => rows.push(vec![
                r.email.clone(),
                String::new(),
                format!("error: {e}"),
                String::new(),
            ]),
            (None, None) => {}
        }
    }
    output::table(&["ACCOUNT", "MODEL", "LEFT", "RESETS"], &rows);
    if results.iter().any(|r| r.error.is_some()) {
        bail!("some accounts could not be asked (see the table)");
    }
    Ok(())
}

/// `0.8` → `80% ████████░░` on a terminal, `80%` elsewhere.
fn left(fraction: f64, bars: bool) -> String {
    let fraction = fraction.clamp(0.0, 1.0);
    let percent = format!("{:>3.0}%", fraction * 100.0);
    if !bars {
        return percent.trim_start().to_owned();
    }
    let filled = (fraction * 10.0).round() as usize;
    format!(
        "{percent} {}{}",
        "█".repeat(filled),
        "░".repeat(10 - filled)
    )
}

async fn fetch(
    google: &GoogleClient,
    store: &Store,
    account: &Account,
) -> anyhow::Result<QuotaSnapshot> {
    let tokens = super::tokens::fresh_tokens(google, store, account).await?;
    let access_token = tokens.access.expose().to_owned();
    let (project, tier) = match &account.project_id {
        Some(p) => (p.clone(), account.tier.clone()),
        None => {
            let request = DiscoveryRequest {
                account: &account.email,
                access_token: &access_token,
                duet_project: None,
            };
            let found = ProjectDiscovery::default()
                .discover(
                    google,
                    request,
                    &DiscoveryStats::default(),
                    tokio::time::sleep,
                )
                .await
                .context("finding the account's Cloud Code project")?;
            store
                .set_project(
                    &account.id,
                    Some(&found.project_id),
                    found.tier_id.as_deref(),
                )
                .await?;
            (found.project_id, found.tier_id)
        }
    };
    let snapshot = google
        .quota_snapshot(&access_token, &project, OffsetDateTime::now_utc())
        .await
        .context("asking Google for the quota")?;
    Ok(snapshot.with_tier(tier))
}
