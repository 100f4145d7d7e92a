//! `agm keys create|list|revoke`: the client API keys clients send to the gateway.
//! The store keeps only a hash of each secret, so a secret is shown once, at creation.

use std::path::Path;

use agm_store::{ClientKey, Store};
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
}

pub async fn run(explicit: Option<&Path>, command: KeysCommand) -> anyhow::Result<()> {
    let workspace = Workspace::open(explicit).await?;
    let store = &workspace.store;
    match command {
        KeysCommand::Create { name, json } => create(store, &name, json).await,
        KeysCommand::List { json } => list(store, json).await,
        KeysCommand::Revoke { id } => {
            if !store.revoke_client_key(&id).await? {
                bail!("no active client key {id:?} (`agm keys list` shows the ids)");
            }
            output::line(&format!("revoked {}", id.trim()));
            Ok(())
        }
    }
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
         Clients send it as x-api-key or Authorization: Bearer; while any key is active, the gateway \
         refuses requests without one.",
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
