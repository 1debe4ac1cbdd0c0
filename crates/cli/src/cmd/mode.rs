//! `pipeguard mode set --repository R act|observe`: switches a repository of a running server
//! between acting on its failures and only recording what it would do (admins; audited).

use crate::cmd::report::{call, Format, ServerUrl};
use anyhow::Result;
use clap::{Args, Subcommand, ValueEnum};
use reqwest::Method;
use serde_json::json;
use std::process::ExitCode;

#[derive(Args)]
pub struct CmdArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Subcommand)]
enum Action {
    /// Set a repository's mode; it overrides the configuration file's from the next failure.
    Set {
        /// The repository as its platform names it (`owner/repo`, a GitLab project path…).
        #[arg(long)]
        repository: String,
        #[arg(value_enum)]
        mode: Mode,
        #[command(flatten)]
        server: ServerUrl,
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Mode {
    /// Re-run transient failures (what the plan says).
    Act,
    /// Plan, record what would have happened, touch nothing.
    Observe,
}

pub fn run(args: CmdArgs) -> Result<ExitCode> {
    let Action::Set {
        repository,
        mode,
        server,
        format,
    } = args.action;
    let mode = match mode {
        Mode::Act => "act",
        Mode::Observe => "observe",
    };
    let body = json!({"repository": repository, "mode": mode});
    let v = call(Method::POST, &server.join("/api/v1/mode"), Some(&body))?;
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&v)?),
        Format::Text => println!(
            "{}: {} (was {})",
            v["repository"].as_str().unwrap_or("?"),
            v["mode"].as_str().unwrap_or("?"),
            v["before"]
                .as_str()
                .unwrap_or("the configuration file's mode")
        ),
    }
    Ok(ExitCode::SUCCESS)
}
