//! `agm serve`: the gateway.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use agm_server::app::{AppState, bind, serve, shutdown_signal};
use agm_server::config::{Config, process_env};
use agm_store::Store;
use anyhow::{Context, bail};
use clap::Args;

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
    let env = process_env();
    let loaded = Config::load(explicit, &env)?;
    let mut config = loaded.config;
    if let Some(bind) = args.bind {
        config.server.bind = bind;
    }
    if let Some(port) = args.port {
        config.server.port = port;
    }
    logging::init(&config.logging);
    if config.storage.backend != "sqlite" {
        bail!(
            "storage.backend = \"{}\" is not available in this version; use \"sqlite\" (the default)",
            config.storage.backend
        );
    }
    let data_dir = config.data_dir(&env);
    let store = Store::open_sqlite(&data_dir)
        .await
        .with_context(|| format!("cannot open the data dir {}", data_dir.display()))?;
    let state = Arc::new(AppState::new(config, store)?);
    let listener = bind(&state).await?;
    let addr = listener.local_addr()?;
    tracing::info!(
        config = %loaded.path.display(),
        data_dir = %data_dir.display(),
        "agm {} listening on http://{addr}",
        env!("CARGO_PKG_VERSION")
    );
    serve(listener, state, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
