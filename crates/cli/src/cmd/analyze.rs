use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use pipeguard_core::Analyzer;
use std::fs::File;
use std::io::{self, Write};
use std::process::ExitCode;

#[derive(Clone, Copy, ValueEnum, Default)]
pub enum Format {
    #[default]
    Text,
    Json,
}

#[derive(Args)]
pub struct AnalyzeArgs {
    /// Log file to analyze; `-` or nothing reads standard input.
    pub file: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

pub fn run(args: AnalyzeArgs) -> Result<ExitCode> {
    let analyzer = Analyzer::builtin();
    let diag = match args.file.as_deref() {
        None | Some("-") => analyzer.analyze_reader(io::stdin().lock())?,
        Some(path) => {
            let f = File::open(path).with_context(|| format!("cannot open {path}"))?;
            analyzer.analyze_reader(f)?
        }
    };
    let mut out = io::stdout().lock();
    match args.format {
        Format::Json => writeln!(out, "{}", serde_json::to_string(&diag)?)?,
        Format::Text => {
            writeln!(out, "category:    {}", diag.category)?;
            writeln!(out, "confidence:  {:.2}", diag.confidence)?;
            writeln!(out, "transient:   {}", diag.transient)?;
            writeln!(out, "strategy:    {}", diag.strategy.as_str())?;
            writeln!(out, "fingerprint: {}", diag.fingerprint)?;
            for e in &diag.evidence {
                writeln!(out, "{:>7} | {}", e.line, e.text)?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
