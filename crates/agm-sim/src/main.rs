//! `agm-sim`: serves the simulated Google on its own, for benchmarks and manual runs.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use agm_sim::{Sim, SimConfig};
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
        ..SimConfig::default()
    };
    let sim = if args.demo {
        Sim::demo_with(config)
    } else {
        Sim::new(config)
    };
    sim.set_capture_limit(Some(args.capture_limit));
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
