//! `pipeguard signatures`: list the knowledge base, or show which signature fires on which line
//! of a log and what it means.

use super::analyze::load_analyzer;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::fs::File;
use std::io::{self, Write};
use std::process::ExitCode;

#[derive(Args)]
pub struct CmdArgs {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Subcommand)]
pub enum Action {
    /// List every signature (user ones first).
    List {
        /// TOML file with `[[signatures]]` tables to include.
        #[arg(long)]
        config: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show which signature fired on which line of a log, and why.
    Test {
        /// Log file (`-` for stdin).
        file: String,
        /// TOML file with `[[signatures]]` tables to include.
        #[arg(long)]
        config: Option<String>,
    },
}

pub fn run(args: CmdArgs) -> Result<ExitCode> {
    let mut out = io::stdout().lock();
    match args.action {
        Action::List { config, json } => {
            let a = load_analyzer(config.as_deref())?;
            if json {
                writeln!(out, "{}", serde_json::to_string_pretty(a.signatures())?)?;
                return Ok(ExitCode::SUCCESS);
            }
            writeln!(
                out,
                "{:<28} {:<20} {:<6} {:<6} {:<11} description",
                "id", "category", "kind", "weight", "ecosystem"
            )?;
            for s in a.signatures() {
                writeln!(
                    out,
                    "{:<28} {:<20} {:<6} {:<6.2} {:<11} {}",
                    s.id,
                    s.category.as_str(),
                    format!("{:?}", s.kind).to_lowercase(),
                    s.weight,
                    s.ecosystem,
                    s.description
                )?;
            }
            writeln!(out, "{} signatures", a.signatures().len())?;
        }
        Action::Test { file, config } => {
            let a = load_analyzer(config.as_deref())?;
            let hits = if file == "-" {
                a.explain(io::stdin().lock())?
            } else {
                a.explain(File::open(&file).with_context(|| format!("cannot open {file}"))?)?
            };
            let by_id: std::collections::HashMap<&str, &str> = a
                .signatures()
                .iter()
                .map(|s| (s.id.as_str(), s.description.as_str()))
                .collect();
            for h in &hits {
                writeln!(
                    out,
                    "{:>7} | {:<26} {:<20} w={:.2} {:?}: {}",
                    h.line,
                    h.signature,
                    h.category.as_str(),
                    h.weight,
                    h.kind,
                    by_id.get(h.signature.as_str()).copied().unwrap_or("")
                )?;
                writeln!(out, "        | {}", h.text)?;
            }
            let d = if file == "-" {
                None
            } else {
                Some(a.analyze_reader(File::open(&file)?)?)
            };
            writeln!(out, "{} matching lines", hits.len())?;
            if let Some(d) = d {
                writeln!(
                    out,
                    "decision: {} (confidence {:.2}, signature {})",
                    d.category,
                    d.confidence,
                    d.signature.as_deref().unwrap_or("none")
                )?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
