//! `pipeguard assess -- CMD [ARGS...]`: the safety verdict on one command, without running it.

use anyhow::Result;
use clap::{Args, ValueEnum};
use pipeguard_core::safety::{self, risk_name};
use pipeguard_core::Risk;
use std::process::ExitCode;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Args)]
pub struct CmdArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
    /// The command as argv; a single argument with shell syntax is read as a shell script.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// Exit status for a level: 0 low and medium, 3 high, 4 refused.
pub fn exit_code(level: Risk) -> u8 {
    match level {
        Risk::Low | Risk::Medium => 0,
        Risk::High => 3,
        Risk::Refused => 4,
    }
}

pub fn run(args: CmdArgs) -> Result<ExitCode> {
    let a = safety::assess(&args.command);
    match args.format {
        Format::Json => {
            let out = serde_json::json!({
                "command": args.command,
                "level": a.level,
                "reason": a.reason,
                "findings": a.findings,
            });
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        Format::Text => {
            println!("{}: {}", risk_name(a.level), a.reason);
            if a.findings.len() > 1 {
                for f in &a.findings {
                    println!("  {:<8} {}  ({})", risk_name(f.level), f.command, f.reason);
                }
            }
        }
    }
    Ok(ExitCode::from(exit_code(a.level)))
}
