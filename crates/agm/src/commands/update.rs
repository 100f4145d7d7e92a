//! `agm update check`: compares this version with the newest release and says how to
//! update. It only reads `[updates] url` (GitHub's releases API by default); nothing is
//! downloaded or installed. The same code as `agm serve`'s background check
//! (`agm_server::ops::updates`), and the same cache in the store.

use std::path::Path;

use clap::Subcommand;

use crate::commands::Workspace;
use crate::output;

#[derive(Debug, Subcommand)]
pub enum UpdateCommand {
    /// Compare this version with the newest release
    Check,
}

pub async fn run(explicit: Option<&Path>, command: UpdateCommand) -> anyhow::Result<()> {
    let UpdateCommand::Check = command;
    let workspace = Workspace::open(explicit).await?;
    let release =
        agm_server::ops::updates::check_and_store(&workspace.shared, &workspace.config.updates.url)
            .await?;
    output::line(&release.verdict(&agm_server::ops::updates::current()));
    Ok(())
}
