//! `agm-sim`: serves the simulated Google on its own, for benchmarks and manual runs.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use agm_sim::{ClientGate, Sim, SimConfig};
use clap::Parser;

/// The simulated Google (OAuth, Cloud Code Assist, Gemini API) that agm's tests use.
#[derive(Debug, Parser)]
#[command(name = "agm-sim", version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Added before every answer, e.g. "5ms".
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    latency: Duration,
    /// SSE chunks per streamed reply.
    #[arg(long, default_value_t = 3)]
    stream_chunks: usize,
    /// Pause between stream chunks, e.g. "10ms".
    #[arg(long, value_parser = humantime::parse_duration, default_value = "0s")]
    chunk_delay: Duration,
    /// Lifetime of issued access tokens, e.g. "1h".
    #[arg(long, value_parser = humantime::parse_duration, default_value = "3599s")]
    token_ttl: Duration,
    /// Most captured requests kept in memory (the oldest are dropped).
    #[arg(long, default_value_t = 1000)]
    capture_limit: usize,
    /// Add the demo accounts (alice@demo.agm, bob@demo.agm) and API key (demo-gemini-key).
    #[arg(long)]
    demo: bool,
    /// Refuse Code Assist generation from an older client, as Google does:
    /// CLIENT=VERSION, e.g. antigravity=1.16.0 or gemini-cli=0.60.0 (repeatable).
    #[arg(long, value_name = "CLIENT=VERSION", value_parser = parse_gate)]
    require_client_version: Vec<ClientGate>,
    /// Retire a Cloud Code model at start: ID or ID=REPLACEMENT (repeatable).
    #[arg(long, value_name = "ID[=REPLACEMENT]")]
    retire_model: Vec<String>,
}

fn parse_gate(text: &str) -> Result<ClientGate, String> {
    match text.split_once('=') {
        Some((client, version)) if !client.is_empty() && !version.is_empty() => {
            Ok(ClientGate::new(client.trim(), version.trim()))
        }
        _ => Err(format!("expected CLIENT=VERSION, got {text:?}")),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = SimConfig {
        latency: args.latency,
        stream_chunks: args.stream_chunks,
        stream_chunk_delay: args.chunk_delay,
        access_token_ttl: args.token_ttl,
        client_gates: args.require_client_version,
        ..SimConfig::default()
    };
    let sim = if args.demo {
        Sim::demo_with(config)
    } else {
        Sim::new(config)
    };
    sim.set_capture_limit(Some(args.capture_limit));
    for retired in &args.retire_model {
        match retired.split_once('=') {
            Some((id, replacement)) => sim.retire_model(id, Some(replacement)),
            None => sim.retire_model(retired, None),
        }
    }
    let running = match sim.start_on(SocketAddr::new(args.bind, args.port)).await {
        Ok(running) => running,
        Err(error) => {
            let _ = writeln!(
                std::io::stderr(),
                "agm-sim: cannot listen on {}:{}: {error}",
                args.bind,
                args.port
            );
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{}", running.base_url());
    let _ = stdout.flush();
    drop(stdout);
    if let Err(error) = tokio::signal::ctrl_c().await {
        let _ = writeln!(
            std::io::stderr(),
            "agm-sim: cannot wait for Ctrl-C: {error}"
        );
    }
    running.shutdown();
    ExitCode::SUCCESS
}
