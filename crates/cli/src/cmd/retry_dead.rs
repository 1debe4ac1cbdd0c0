//! `pipeguard retry-dead SESSION`: send a session's dead letters (work that failed for good)
//! again; `pipeguard retry-dead --list` shows them.

use crate::cmd::report::{call, Format, ServerUrl};
use anyhow::Result;
use clap::Args;
use reqwest::Method;
use serde_json::Value;
use std::process::ExitCode;

#[derive(Args)]
pub struct CmdArgs {
    /// The session whose failed work to send again.
    #[arg(required_unless_present = "list", conflicts_with = "list")]
    session: Option<String>,
    /// List the dead letters instead.
    #[arg(long)]
    list: bool,
    #[command(flatten)]
    server: ServerUrl,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

pub fn run(args: CmdArgs) -> Result<ExitCode> {
    let v = match &args.session {
        Some(s) if s.is_empty() || s.contains('/') => anyhow::bail!("{s:?} is not a session id"),
        Some(s) => call(
            Method::POST,
            &args.server.join(&format!("/api/v1/sessions/{s}/retry")),
            // The API takes state changes only as JSON.
            Some(&serde_json::json!({})),
        )?,
        None => call(Method::GET, &args.server.join("/api/v1/dead-letters"), None)?,
    };
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&v)?),
        Format::Text if args.list => print_list(&v),
        Format::Text => println!(
            "session {}: {} queued again, session {}",
            args.session.as_deref().unwrap_or_default(),
            words(&v["requeued"]),
            v["status"].as_str().unwrap_or("?")
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn words(v: &Value) -> String {
    let items: Vec<&str> = v
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    items.join(", ")
}

fn print_list(v: &Value) {
    let letters = v["dead_letters"].as_array().cloned().unwrap_or_default();
    if letters.is_empty() {
        println!("no dead letters");
        return;
    }
    for l in &letters {
        println!(
            "{}  {:<12} tries {}  {}",
            l["session_id"].as_str().unwrap_or("?"),
            l["kind"].as_str().unwrap_or("?"),
            l["tries"],
            l["error"].as_str().unwrap_or("")
        );
    }
    println!("{} in all", v["total"]);
}
