//! The `pipeguard` command line: the server and the local tools share one binary.

mod cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "pipeguard",
    version,
    about = "Self-healing CI/CD: diagnose failed pipelines, fix what is safe to fix, escalate the rest"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service: webhooks, the healing worker and the API.
    Serve(cmd::serve::ServeArgs),
    /// Diagnose one log file (or `-` for stdin).
    Analyze(cmd::analyze::AnalyzeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(a) => cmd::serve::run(a),
        Command::Analyze(a) => cmd::analyze::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pipeguard: error: {e:#}");
            ExitCode::from(2)
        }
    }
}
