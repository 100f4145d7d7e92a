//! `agm store migrate --to postgres://…`: copies the data dir's SQLite store into the
//! PostgreSQL database of cluster mode, checked and resumable (the work is
//! [`agm_store::Store::copy_into`]'s).

use std::path::{Path, PathBuf};

use agm_store::{CopyOptions, DB_FILE, DataDirLock, KeySource, PostgresOptions, SEAL_KEY_ENV};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::commands::{load_config, open_store};
use crate::{logging, output};

#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy the data dir's store (agm.db) into PostgreSQL for cluster mode: checked, and
    /// safe to run again after an interruption
    Migrate(MigrateArgs),
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The PostgreSQL database: postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE, with
    /// ?sslmode=require (or verify-ca, verify-full) for TLS
    #[arg(long, value_name = "URL")]
    to: String,
    /// Also write the seal key to this file (mode 0600) for the replicas:
    /// [storage] key_file = PATH, or AGM_SEAL_KEY set to its contents
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
    /// Log rows per batch (each batch one transaction)
    #[arg(long, value_name = "N", default_value_t = CopyOptions::default().batch_size)]
    batch_size: usize,
}

pub async fn run(explicit: Option<&Path>, command: StoreCommand) -> anyhow::Result<()> {
    match command {
        StoreCommand::Migrate(args) => migrate(explicit, args).await,
    }
}

async fn migrate(explicit: Option<&Path>, args: MigrateArgs) -> anyhow::Result<()> {
    let (loaded, env) = load_config(explicit)?;
    logging::init(&agm_server::config::LoggingSection {
        level: "warn".to_owned(),
        ..loaded.config.logging.clone()
    });
    let data_dir = loaded.config.data_dir(&env);
    if !data_dir.join(DB_FILE).is_file() {
        bail!(
            "there is no store to migrate: {} does not exist (AGM_DATA_DIR or [storage] data_dir names the data dir)",
            data_dir.join(DB_FILE).display()
        );
    }
    // No `agm serve` may change the store under the copy.
    let _lock = DataDirLock::acquire(&data_dir)?;
    let (_, source) = open_store(&loaded.config, &env).await?;
    if let Some(path) = &args.key_file {
        if source.write_key_file(path).await? {
            output::note(&format!("wrote the seal key to {}", path.display()));
        } else {
            output::note(&format!("{} already holds the seal key", path.display()));
        }
    }
    let options = PostgresOptions {
        max_connections: 4,
        ..PostgresOptions::default()
    };
    let target = source
        .open_postgres_with_key_of(&args.to, options)
        .await
        .context("cannot open the target")?;
    output::note(&format!(
        "copying {} into {}",
        source.location(),
        target.location()
    ));
    let copy = CopyOptions {
        batch_size: args.batch_size.max(1),
    };
    let report = source
        .copy_into(&target, copy, |step| {
            output::progress(&format!("  {}: {} rows", step.table, step.rows));
        })
        .await
        .context("the migration stopped (run the same command again to go on)")?;
    for table in &report.tables {
        output::line(&format!("{table}: the same in both"));
    }
    let done = if report.already_done {
        "already migrated earlier: the target still holds exactly the same"
    } else if report.resumed {
        "migrated (went on from an earlier run)"
    } else {
        "migrated"
    };
    output::line(&format!(
        "{done}; {} accounts' tokens open with the seal key",
        report.accounts_open
    ));
    if !report.unreadable_accounts.is_empty() {
        output::warn(&format!(
            "accounts {} were already unreadable in the source (sealed with an older key): copied as they are; sign them in again",
            report.unreadable_accounts.join(", ")
        ));
    }
    share_the_key(args.key_file.as_deref(), &source.key_source());
    Ok(())
}

/// Says how the replicas get the seal key, which the database does not hold.
fn share_the_key(written: Option<&Path>, key: &KeySource) {
    let file = match (written, key) {
        (Some(path), _) => path,
        (None, KeySource::KeyFile(path)) => path.as_path(),
        _ => {
            output::note(
                "every agm sharing the database needs this store's seal key, which is not in the database: \
                 run again with --key-file PATH to write it to a file for them",
            );
            return;
        }
    };
    output::note(&format!(
        "every agm sharing the database needs the seal key, which is not in the database: copy {} to each (mode 0600) \
         and set [storage] key_file to it, or set {SEAL_KEY_ENV} to its contents",
        file.display()
    ));
}
