//! `agm serve`: the gateway.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use agm_server::app::{AppState, bind, serve, shutdown_signal};
use agm_store::DataDirLock;
use clap::Args;

use crate::commands::{load_config, open_store};
use crate::logging;

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: server.bind, 127.0.0.1]
    #[arg(long, value_name = "ADDR")]
    bind: Option<IpAddr>,
    /// Port to listen on [default: server.port, 8045]
    #[arg(long, value_name = "N")]
    port: Option<u16>,
}

pub async fn run(explicit: Option<&Path>, args: ServeArgs) -> anyhow::Result<()> {
    let (loaded, env) = load_config(explicit)?;
    let mut config = loaded.config;
    if let Some(bind) = args.bind {
        config.server.bind = bind;
    }
    if let Some(port) = args.port {
        config.server.port = port;
    }
    logging::init(&config.logging);
    // One server per data dir, for as long as this one runs: two would overwrite each
    // other's writes. The other commands never take the lock.
    let _lock = DataDirLock::acquire(&config.data_dir(&env))?;
    let (data_dir, store) = open_store(&config, &env).await?;
    let state = AppState::new(config, store)?
        .with_config_file(loaded.path.clone())
        .with_cluster()?;
    let deprecated = agm_server::state::quota::deprecations(&state.store, &state.shared).await?;
    let state = Arc::new(state.with_model_deprecations(deprecated));
    let listener = bind(&state).await?;
    let addr = listener.local_addr()?;
    tracing::info!(
        config = %loaded.path.display(),
        data_dir = %data_dir.display(),
        "agm {} listening on http://{addr}",
        env!("CARGO_PKG_VERSION")
    );
    match state.console.startup_link(addr) {
        Some(link) => crate::output::line(&format!("web console: {link}")),
        None => crate::output::line(&format!(
            "web console: http://{addr}/ui/ (sign in with the admin password: `agm admin set-password`)"
        )),
    }
    serve(listener, state, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
