//! `agm`: the command line. Clap structs and dispatch only; each command lives in
//! `commands/`.

mod commands;
mod logging;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A gateway that lets coding agents use Antigravity and Gemini models through a pool
/// of Google accounts and API keys.
#[derive(Debug, Parser)]
#[command(name = "agm", version, about, long_about = None, propagate_version = true)]
struct Cli {
    /// Config file [default: $AGM_CONFIG, else ~/.config/agm/config.toml]
    #[arg(long, global = true, value_name = "PATH")]
    config: Option<PathBuf>,

    /// Make a new sealing key if the one the stored accounts are sealed with is gone
    /// (their tokens stay unreadable: sign them in again). Without it agm refuses.
    #[arg(long, global = true)]
    force_new_key: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway until Ctrl-C or SIGTERM, then drain open streams and exit
    Serve(commands::serve::ServeArgs),
    /// Run the gateway with a simulated Google and two demo accounts: no Google account needed
    Demo(commands::demo::DemoArgs),
    /// Add, import, export, list, enable, disable or remove Google accounts
    #[command(subcommand)]
    Accounts(commands::accounts::AccountsCommand),
    /// Create, list, revoke or purge the client API keys clients send to the gateway
    #[command(subcommand)]
    Keys(commands::keys::KeysCommand),
    /// Show, turn on or off, or reset safe mode (requests to the official Gemini API)
    #[command(subcommand)]
    SafeMode(commands::safe_mode::SafeModeCommand),
    /// Print what a client needs to use this gateway: claude, codex, opencode or gemini
    Env {
        #[arg(value_enum)]
        client: commands::env::Client,
    },
    /// Start claude, codex, opencode or gemini with this gateway configured; ARGS go to the client
    Run(commands::run::RunArgs),
    /// Check whether a newer agm release is out
    #[command(subcommand)]
    Update(commands::update::UpdateCommand),
    /// Show smart warmup's state: the last warmup per account and model group, and what is due
    #[command(subcommand)]
    Warmup(commands::warmup::WarmupCommand),
    /// Sign the local Antigravity IDE into a pool account, or back into its own: status, switch, restore
    #[command(subcommand)]
    Ide(commands::ide::IdeCommand),
    /// Show the audit log: safe mode, account switches, breakers, account, key and settings changes, warmups, alerts
    Audit(commands::audit::AuditArgs),
    /// List the models the pool can serve, the accounts offered each, and the names that resolve to it
    Models(commands::models::ModelsArgs),
    /// Show the request log: route, model, account, status, upstream calls, latency per request
    Logs(commands::logs::LogsArgs),
    /// Run the validation gate: project discovery over time, GO or NO-GO
    #[command(subcommand)]
    Validate(commands::validate::ValidateCommand),
    /// Copy the data dir's store into PostgreSQL for cluster mode (agm store migrate --to postgres://…)
    #[command(subcommand)]
    Store(commands::store::StoreCommand),
    /// Check the config, data dir, secrets, accounts, Google's reachability and the port
    Doctor,
    /// Write, show or locate the config file
    #[command(subcommand)]
    Config(commands::config::ConfigCommand),
    /// Print a fresh sign-in link to the web console (loopback binds)
    Console,
    /// The web console's admin password (non-loopback binds)
    #[command(subcommand)]
    Admin(commands::console::AdminCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.force_new_key {
        commands::force_new_key();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            output::error(&format!("cannot start the async runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let config = cli.config.as_deref();
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => commands::serve::run(config, args).await,
            Command::Demo(args) => commands::demo::run(config, args).await,
            Command::Accounts(cmd) => commands::accounts::run(config, cmd).await,
            Command::Keys(cmd) => commands::keys::run(config, cmd).await,
            Command::Validate(cmd) => commands::validate::run(config, cmd).await,
            Command::SafeMode(cmd) => commands::safe_mode::run(config, cmd).await,
            Command::Ide(cmd) => commands::ide::run(config, cmd).await,
            Command::Audit(args) => commands::audit::run(config, args).await,
            Command::Logs(args) => commands::logs::run(config, args).await,
            Command::Models(args) => commands::models::run(config, args).await,
            Command::Env { client } => commands::env::run(config, client).await,
            Command::Run(args) => commands::run::run(config, args).await,
            Command::Update(cmd) => commands::update::run(config, cmd).await,
            Command::Warmup(cmd) => commands::warmup::run(config, cmd).await,
            Command::Store(cmd) => commands::store::run(config, cmd).await,
            Command::Doctor => commands::doctor::run(config).await,
            Command::Config(cmd) => commands::config::run(config, cmd),
            Command::Console => commands::console::run(config).await,
            Command::Admin(cmd) => commands::console::admin(config, cmd).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output::error(&format!("{e:#}"));
            ExitCode::FAILURE
        }
    }
}
