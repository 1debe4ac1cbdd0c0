//! Helpers of the CLI tests that run the binary.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// The binary, run in `dir` (so no ./pipeguard.toml leaks in), without the caller's
/// `PIPEGUARD_*` and `RUST_LOG` settings.
pub fn bin(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_pipeguard"));
    c.current_dir(dir);
    for (k, _) in std::env::vars() {
        if k.starts_with("PIPEGUARD_") || k == "RUST_LOG" {
            c.env_remove(k);
        }
    }
    c
}

/// Standard output then standard error.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
