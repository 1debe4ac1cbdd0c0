//! `pipeguard verdict SESSION --category C`: a human's category for a session's failure. It
//! trains the server's learned classifier and counts in its agreement figures.

use crate::cmd::report::{call, Format, ServerUrl};
use anyhow::Result;
use clap::Args;
use reqwest::Method;
use serde_json::json;
use std::process::ExitCode;

#[derive(Args)]
pub struct CmdArgs {
    /// The session's id.
    session: String,
    /// What the failure really was (a category of the taxonomy, e.g. `network`).
    #[arg(long)]
    category: String,
    /// Why, for the session's timeline.
    #[arg(long, default_value = "")]
    note: String,
    #[command(flatten)]
    server: ServerUrl,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub fn run(args: CmdArgs) -> Result<ExitCode> {
    if args.session.is_empty() || args.session.contains('/') {
        anyhow::bail!("{:?} is not a session id", args.session);
    }
    let url = args
        .server
        .join(&format!("/api/v1/sessions/{}/verdict", args.session));
    let v = call(
        Method::POST,
        &url,
        Some(&json!({"category": args.category, "note": args.note})),
    )?;
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&v)?),
        Format::Text => println!(
            "session {}: recorded {} (pipeguard had said {})",
            args.session,
            v["category"].as_str().unwrap_or("?"),
            v["diagnosed_category"].as_str().unwrap_or("nothing")
        ),
    }
    Ok(ExitCode::SUCCESS)
}
