//! `agm config init|show|path`.

use std::path::Path;

use agm_server::config::{Config, DEFAULT_CONFIG_TOML, config_path, process_env};
use anyhow::{Context, bail};
use clap::Subcommand;

use crate::output;

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Write a commented default config file (refuses to overwrite without --force)
    Init {
        /// Overwrite an existing file
        #[arg(long)]
        force: bool,
    },
    /// Print the effective config: file, then environment overrides (secrets masked)
    Show,
    /// Print the config file's path
    Path,
}

pub fn run(explicit: Option<&Path>, command: ConfigCommand) -> anyhow::Result<()> {
    let env = process_env();
    match command {
        ConfigCommand::Path => {
            output::line(&config_path(explicit, &env).display().to_string());
        }
        ConfigCommand::Show => {
            let loaded = Config::load(explicit, &env)?;
            let source = if loaded.file_exists {
                format!("# from {} and the environment", loaded.path.display())
            } else {
                format!(
                    "# {} does not exist: defaults and the environment",
                    loaded.path.display()
                )
            };
            output::line(&source);
            output::line(&loaded.config.to_masked_toml());
        }
        ConfigCommand::Init { force } => {
            let path = config_path(explicit, &env);
            if path.exists() && !force {
                bail!(
                    "{} already exists; keep it, or overwrite it with `agm config init --force`",
                    path.display()
                );
            }
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
            }
            std::fs::write(&path, DEFAULT_CONFIG_TOML)
                .with_context(|| format!("cannot write {}", path.display()))?;
            output::line(&format!("wrote {}", path.display()));
        }
    }
    Ok(())
}
