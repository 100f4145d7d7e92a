//! `agm console`: prints a fresh sign-in link to the web console, and `agm admin
//! set-password`: the console's password for a non-loopback bind. Both work on the
//! store, so they work with the server running (it reads the tokens and the password
//! from the store's settings).

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::Path;

use agm_store::AuditKind;
use anyhow::{Context, bail};
use clap::Subcommand;

use crate::commands::Workspace;
use crate::output;

pub async fn run(explicit: Option<&Path>) -> anyhow::Result<()> {
    let workspace = Workspace::open(explicit).await?;
    let server = &workspace.config.server;
    if !server.bind.is_loopback() {
        bail!(
            "agm listens on {} (not loopback), where the console takes the admin password, not a link: set it with `agm admin set-password`, then open http://<this host>:{}/ui/",
            server.bind,
            server.port
        );
    }
    let token = agm_server::console::auth::mint_login_token(&workspace.shared).await?;
    output::line(&agm_server::console::login_link(
        SocketAddr::new(server.bind, server.port),
        &token,
    ));
    output::note(&format!(
        "This link signs in once, within {} minutes, on the `agm serve` of this data dir.",
        agm_server::console::auth::LOGIN_TOKEN_TTL.as_secs() / 60
    ));
    Ok(())
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Set the web console's admin password (read from stdin; stored as an argon2 hash; wins over [server] admin_password)
    SetPassword,
}

pub async fn admin(explicit: Option<&Path>, command: AdminCommand) -> anyhow::Result<()> {
    match command {
        AdminCommand::SetPassword => {
            let workspace = Workspace::open(explicit).await?;
            if std::io::stdin().is_terminal() {
                output::prompt(&format!(
                    "New admin password (at least {} characters; it shows as you type, or pipe it in): ",
                    agm_server::console::auth::MIN_PASSWORD_CHARS
                ));
            }
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .context("cannot read the password from stdin")?;
            let password = line.trim_end_matches(['\r', '\n']);
            agm_server::console::auth::set_admin_password(&workspace.shared, password).await?;
            agm_server::state::audit::append_audit(
                &workspace.store,
                AuditKind::Key,
                "console",
                "admin password set with `agm admin set-password`",
            )
            .await;
            output::line("admin password set: the console's sign-in page takes it from now on");
            Ok(())
        }
    }
}
