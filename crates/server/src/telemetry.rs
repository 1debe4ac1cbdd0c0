//! Logging setup: `RUST_LOG` filters, `info` by default; logs go to stderr, coloured only when
//! stderr is a terminal (escape codes in a log file or a pipe are noise).

use std::io::IsTerminal;

pub fn init() {
    init_with("info");
}

/// Like [`init`] with another default filter when `RUST_LOG` is not set.
pub fn init_with(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}
