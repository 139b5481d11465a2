//! Logging setup: tracing to stderr, text or JSON, filter from `RUST_LOG` or the config.

use tracing_subscriber::EnvFilter;

use crate::config::LogSection;

/// Installs the global subscriber. Safe to call once per process.
pub fn init(log: &LogSection) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.level));
    // Colours only on a terminal: log files stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stderr);
    let res = if log.format == "json" { builder.json().try_init() } else { builder.try_init() };
    if let Err(e) = res {
        eprintln!("cairn-node: logging already initialised: {e}");
    }
}
