//! `agm keys create|list|revoke|purge`: the client API keys clients send to the
//! gateway. The store keeps only a hash of each secret, so a secret is shown once, at
//! creation. Each change is recorded in the audit log (id, name and prefix; never a
//! secret).

use std::path::Path;

use agm_store::{AuditKind, ClientKey, Store};
use anyhow::bail;
use clap::Subcommand;
use serde::Serialize;
use time::OffsetDateTime;

use crate::commands::{Workspace, rfc3339};
use crate::output;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a client API key and print its secret, which is shown only this once
    Create {
        /// A name to tell the key apart, e.g. the client or machine using it
        #[arg(long, value_name = "NAME", default_value = "")]
        name: String,
        /// Print JSON, for scripts
        #[arg(long)]
        json: bool,
    },
    /// List the client keys: id, name, prefix, created, last used, revoked (never a secret)
    List {
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

pub async fn run(explicit: Option<&Path>, command: KeysCommand) -> anyhow::Result<()> {
    let workspace = Workspace::open(explicit).await?;
    let store = &workspace.store;
    match command {
        KeysCommand::Create { name, json } => create(store, &name, json).await,
        KeysCommand::List { json } => list(store, json).await,
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
}

async fn create(store: &Store, name: &str, json: bool) -> anyhow::Result<()> {
    let (key, secret) = store.create_client_key(name).await?;
    audit(store, &key, "created").await;
    if json {
        output::json(&CreatedKey {
            id: &key.id,
            name: &key.name,
            prefix: &key.prefix,
            secret: &secret,
            created_at: rfc3339(key.created_at),
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
        "Created client key {}{named}. This is the only time its secret is shown: store it now. \
         Clients send it as x-api-key or Authorization: Bearer; from now on the gateway refuses \
         requests without a valid key.",
        key.id
    ));
    Ok(())
}

#[derive(Serialize)]
struct ListedKey<'a> {
    id: &'a str,
    name: &'a str,
    prefix: &'a str,
    created_at: String,
    last_used_at: Option<String>,
    revoked_at: Option<String>,
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
        &["ID", "NAME", "PREFIX", "CREATED", "LAST USED", "REVOKED"],
        &rows,
    );
    Ok(())
}

fn row(key: &ClientKey) -> Vec<String> {
    vec![
        key.id.clone(),
        key.name.clone(),
        format!("{}...", key.prefix),
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
