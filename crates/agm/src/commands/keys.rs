//! `agm keys create|set|list|usage|revoke|purge`: the client API keys clients send to
//! the gateway, their limits, and what each used. The store keeps only a hash of each
//! secret, so a secret is shown once, at creation. Each change is recorded in the audit
//! log (id, name, prefix and limits; never a secret).

use std::path::Path;

use agm_server::http::key_policy::{PolicyChange, created, describe};
use agm_store::{AuditKind, ClientKey, KeyPolicy, Store, UsageBucket, UsageGroup, UsageQuery};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use time::OffsetDateTime;

use crate::commands::{Workspace, rfc3339};
use crate::output;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a client API key and print its secret, which is shown only this once
    Create {
        /// A name to tell the key apart, e.g. the client or machine using it
        #[arg(value_name = "NAME", conflicts_with = "name")]
        name_arg: Option<String>,
        /// The name, as an option
        #[arg(long, value_name = "NAME")]
        name: Option<String>,
        #[command(flatten)]
        limits: LimitArgs,
        /// Print JSON, for scripts
        #[arg(long)]
        json: bool,
    },
    /// Change a key's limits: only the ones given (0 or `--expires never` clears one, `--models '*'` allows every model)
    Set {
        #[arg(value_name = "ID")]
        id: String,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// List the client keys: id, name, prefix, limits, created, last used, revoked (never a secret)
    List {
        /// Print JSON, for scripts
        #[arg(long)]
        json: bool,
    },
    /// What each key used, from the request log: requests, errors, tokens in and out
    Usage {
        /// How far back: 7d, 24h, 30d
        #[arg(long, value_name = "DURATION", default_value = "7d")]
        since: String,
        /// Print JSON, for scripts
        #[arg(long)]
        json: bool,
    },
    /// Revoke a client key: a running gateway refuses it within 2 s
    Revoke {
        #[arg(value_name = "ID")]
        id: String,
    },
    /// Delete the revoked keys from the store (with no key left at all, a loopback gateway serves without keys again)
    Purge,
}

/// A key's limits on the command line; each one not given is left as it is.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Model patterns the key may use, comma-separated, `*` a wildcard (gemini-*,claude-sonnet-4-5); `*` for every model
    #[arg(long, value_name = "PATTERNS")]
    models: Option<String>,
    /// Requests per minute (0: no limit)
    #[arg(long, value_name = "N")]
    rpm: Option<u32>,
    /// Requests in flight at once; a stream counts until it ends (0: no limit)
    #[arg(long, value_name = "N")]
    concurrency: Option<u32>,
    /// Tokens in + out per UTC day (0: no limit)
    #[arg(long, value_name = "N")]
    daily_tokens: Option<u64>,
    /// Requests per UTC day (0: no limit)
    #[arg(long, value_name = "N")]
    daily_requests: Option<u64>,
    /// When the key stops working: a duration (30d, 12h), a date (2027-01-01, UTC), an RFC 3339 time, or never
    #[arg(long, value_name = "WHEN")]
    expires: Option<String>,
}

impl LimitArgs {
    fn change(&self) -> PolicyChange {
        PolicyChange {
            models: self.models.clone(),
            rpm: self.rpm,
            concurrency: self.concurrency,
            daily_tokens: self.daily_tokens,
            daily_requests: self.daily_requests,
            expires: self.expires.clone(),
        }
    }

    /// `policy` with the limits given changed (0 clears).
    fn apply(&self, policy: KeyPolicy) -> anyhow::Result<KeyPolicy> {
        self.change()
            .apply(policy, OffsetDateTime::now_utc())
            .map_err(anyhow::Error::msg)
    }
}

pub async fn run(explicit: Option<&Path>, command: KeysCommand) -> anyhow::Result<()> {
    let workspace = Workspace::open(explicit).await?;
    let store = &workspace.store;
    match command {
        KeysCommand::Create {
            name_arg,
            name,
            limits,
            json,
        } => {
            let name = name_arg.or(name).unwrap_or_default();
            let policy = limits.apply(KeyPolicy::default())?;
            create(store, &name, &policy, json).await
        }
        KeysCommand::Set { id, limits } => set(store, id.trim(), &limits).await,
        KeysCommand::List { json } => list(store, json).await,
        KeysCommand::Usage { since, json } => usage(store, &since, json).await,
        KeysCommand::Revoke { id } => revoke(store, id.trim()).await,
        KeysCommand::Purge => purge(store).await,
    }
}

async fn revoke(store: &Store, id: &str) -> anyhow::Result<()> {
    let keys = store.list_client_keys().await?;
    if !store.revoke_client_key(id).await? {
        bail!("no active client key {id:?} (`agm keys list` shows the ids)");
    }
    if let Some(key) = keys.iter().find(|k| k.id == id) {
        audit(store, key, "revoked").await;
    }
    output::line(&format!("revoked {id}"));
    if !keys.iter().any(|k| k.id != id && k.is_active()) {
        output::warn(
            "that was the last active client key: the gateway now refuses every client until you create one with `agm keys create` \
             (once a gateway has had keys it keeps requiring them; `agm keys purge` deletes the revoked ones)",
        );
    }
    Ok(())
}

async fn purge(store: &Store) -> anyhow::Result<()> {
    let keys = store.list_client_keys().await?;
    let purged = store.purge_revoked_client_keys().await?;
    for key in keys.iter().filter(|k| purged.contains(&k.id)) {
        audit(store, key, "purged (a revoked key's row deleted)").await;
    }
    let count = purged.len();
    output::line(&format!(
        "purged {count} revoked key{}",
        if count == 1 { "" } else { "s" }
    ));
    if keys.len() == count {
        output::note(
            "No client key is left: a gateway on a loopback address now serves without keys again \
             (one on any other address still refuses to start without one).",
        );
    }
    Ok(())
}

/// A `key` audit entry: the key's id as the subject, its name and prefix in the detail.
async fn audit(store: &Store, key: &ClientKey, done: &str) {
    let detail = format!("{done}: name {:?}, prefix {}", key.name, key.prefix);
    agm_server::state::audit::append_audit(store, AuditKind::Key, &key.id, &detail).await;
}

#[derive(Serialize)]
struct CreatedKey<'a> {
    id: &'a str,
    name: &'a str,
    prefix: &'a str,
    secret: &'a str,
    created_at: String,
    limits: Limits,
}

async fn set(store: &Store, id: &str, limits: &LimitArgs) -> anyhow::Result<()> {
    if limits.change().is_empty() {
        bail!(
            "nothing to change: give --models, --rpm, --concurrency, --daily-tokens, --daily-requests or --expires"
        );
    }
    let keys = store.list_client_keys().await?;
    let Some(key) = keys.iter().find(|k| k.id == id) else {
        bail!("no client key {id:?} (`agm keys list` shows the ids)");
    };
    let policy = limits.apply(key.policy.clone())?;
    if !store.set_client_key_policy(id, &policy).await? {
        bail!("no client key {id:?} (`agm keys list` shows the ids)");
    }
    let limits = describe(&policy);
    audit(store, key, &format!("limits set to {limits}")).await;
    output::line(&format!("{id}: limits {limits}"));
    output::note("A running gateway applies them within 2 s.");
    Ok(())
}

async fn create(store: &Store, name: &str, policy: &KeyPolicy, json: bool) -> anyhow::Result<()> {
    let (key, secret) = store.create_client_key_with(name, policy).await?;
    let limits = describe(&key.policy);
    audit(store, &key, &created(&key.policy)).await;
    if json {
        output::json(&CreatedKey {
            id: &key.id,
            name: &key.name,
            prefix: &key.prefix,
            secret: &secret,
            created_at: rfc3339(key.created_at),
            limits: Limits::of(&key.policy),
        })?;
    } else {
        output::line(&secret);
    }
    let named = if key.name.is_empty() {
        String::new()
    } else {
        format!(" \"{}\"", key.name)
    };
    output::note(&format!(
        "Created client key {}{named} (limits: {limits}). This is the only time its secret is shown: store it now. \
         Clients send it as x-api-key or Authorization: Bearer; from now on the gateway refuses \
         requests without a valid key.",
        key.id
    ));
    Ok(())
}

/// A key's limits in JSON (`null`: none).
#[derive(Serialize)]
struct Limits {
    models: Vec<String>,
    rpm: Option<u32>,
    concurrency: Option<u32>,
    daily_tokens: Option<u64>,
    daily_requests: Option<u64>,
    expires_at: Option<String>,
}

impl Limits {
    fn of(policy: &KeyPolicy) -> Limits {
        Limits {
            models: policy.models.clone(),
            rpm: policy.rpm,
            concurrency: policy.concurrency,
            daily_tokens: policy.daily_tokens,
            daily_requests: policy.daily_requests,
            expires_at: policy.expires_at.map(rfc3339),
        }
    }
}

#[derive(Serialize)]
struct ListedKey<'a> {
    id: &'a str,
    name: &'a str,
    prefix: &'a str,
    created_at: String,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
    limits: Limits,
}

async fn list(store: &Store, json: bool) -> anyhow::Result<()> {
    let keys = store.list_client_keys().await?;
    if json {
        let listed: Vec<ListedKey<'_>> = keys
            .iter()
            .map(|k| ListedKey {
                id: &k.id,
                name: &k.name,
                prefix: &k.prefix,
                created_at: rfc3339(k.created_at),
                last_used_at: k.last_used_at.map(rfc3339),
                revoked_at: k.revoked_at.map(rfc3339),
                limits: Limits::of(&k.policy),
            })
            .collect();
        return output::json(&listed);
    }
    if keys.is_empty() {
        output::line("no client keys: create one with `agm keys create --name NAME`");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = keys.iter().map(row).collect();
    output::table(
        &[
            "ID",
            "NAME",
            "PREFIX",
            "LIMITS",
            "CREATED",
            "LAST USED",
            "REVOKED",
        ],
        &rows,
    );
    Ok(())
}

fn row(key: &ClientKey) -> Vec<String> {
    vec![
        key.id.clone(),
        key.name.clone(),
        format!("{}...", key.prefix),
        if key.policy.is_expired(OffsetDateTime::now_utc()) {
            format!("{} (expired)", describe(&key.policy))
        } else {
            describe(&key.policy)
        },
        minute(key.created_at),
        key.last_used_at
            .map(minute)
            .unwrap_or_else(|| "never".to_owned()),
        key.revoked_at.map(minute).unwrap_or_default(),
    ]
}

/// `2026-01-02 03:04 UTC`: enough for a table.
fn minute(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!(
        "{}-{:02}-{:02} {:02}:{:02} UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute()
    )
}

#[derive(Serialize)]
struct KeyUsage {
    /// `None`: requests without a store key.
    id: Option<String>,
    name: Option<String>,
    requests: u64,
    errors: u64,
    input_tokens: u64,
    output_tokens: u64,
}

async fn usage(store: &Store, since: &str, json: bool) -> anyhow::Result<()> {
    let span = humantime::parse_duration(since.trim())
        .with_context(|| format!("--since {since:?}: give a duration such as 7d, 24h or 30d"))?;
    let now = OffsetDateTime::now_utc();
    let since = time::Duration::try_from(span)
        .ok()
        .and_then(|span| now.checked_sub(span))
        .with_context(|| format!("--since {since:?} is too far back"))?;
    let rows = store
        .usage(&UsageQuery {
            since,
            until: now + time::Duration::milliseconds(1),
            bucket: UsageBucket::All,
            group: UsageGroup::Key,
        })
        .await?;
    let keys = store.list_client_keys().await?;
    let name_of = |id: &str| keys.iter().find(|k| k.id == id).map(|k| k.name.clone());
    let used: Vec<KeyUsage> = rows
        .iter()
        .map(|r| KeyUsage {
            name: r.group.as_deref().and_then(name_of),
            id: r.group.clone(),
            requests: r.requests,
            errors: r.errors(),
            input_tokens: r.input_tokens,
            output_tokens: r.output_tokens,
        })
        .collect();
    if json {
        return output::json(&used);
    }
    if used.is_empty() {
        output::line(&format!("no requests since {}", minute(since)));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = used
        .iter()
        .map(|u| {
            vec![
                u.id.clone().unwrap_or_else(|| "-".to_owned()),
                match (&u.id, &u.name) {
                    (None, _) => "(no key)".to_owned(),
                    (Some(_), Some(name)) => name.clone(),
                    (Some(_), None) => "(deleted)".to_owned(),
                },
                u.requests.to_string(),
                u.errors.to_string(),
                u.input_tokens.to_string(),
                u.output_tokens.to_string(),
            ]
        })
        .collect();
    output::table(
        &[
            "ID",
            "NAME",
            "REQUESTS",
            "ERRORS",
            "TOKENS IN",
            "TOKENS OUT",
        ],
        &rows,
    );
    output::note(&format!("Since {}.", minute(since)));
    Ok(())
}
