//! Log setup: `RUST_LOG` wins over `[logging] level`; text or JSON lines on stderr.

use agm_server::config::LoggingSection;
use tracing_subscriber::EnvFilter;

pub fn init(config: &LoggingSection) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    // A second init (tests, or demo after serve) is harmless: keep the first.
    let _ = if config.format == agm_server::config::LogFormat::Json {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
