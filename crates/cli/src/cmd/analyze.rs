//! `pipeguard analyze`: diagnose one log file (or stdin) and print the diagnosis.

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use pipeguard_core::analysis::{tests_names, Diagnosis, Hints};
use pipeguard_core::Analyzer;
use std::fs::File;
use std::io::{self, IsTerminal, Read, Write};
use std::process::ExitCode;
use std::time::Instant;

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
    /// JUnit XML report whose failed test cases are added to the failing tests.
    #[arg(long)]
    pub junit: Option<String>,
    /// The job's exit code, when known (137 suggests the OOM killer, 124 a timeout).
    #[arg(long)]
    pub exit_code: Option<i32>,
    /// The CI platform's failure reason (e.g. GitLab's `runner_system_failure`).
    #[arg(long)]
    pub platform_reason: Option<String>,
    /// TOML file with `[[signatures]]` tables that take precedence over the built-ins.
    #[arg(long)]
    pub config: Option<String>,
}

/// Progress on stderr for big files, only when stderr is a terminal.
pub struct Progress {
    total: u64,
    start: Instant,
    last: Instant,
    on: bool,
}

impl Progress {
    pub fn new(total: u64) -> Progress {
        let now = Instant::now();
        Progress {
            total,
            start: now,
            last: now,
            on: total > 100 * 1024 * 1024 && io::stderr().is_terminal(),
        }
    }

    pub fn update(&mut self, done: u64) {
        if !self.on || self.last.elapsed().as_millis() < 100 {
            return;
        }
        self.last = Instant::now();
        let frac = done as f64 / self.total.max(1) as f64;
        let width = 40;
        let filled = ((frac * width as f64) as usize).min(width);
        let secs = self.start.elapsed().as_secs_f64().max(1e-9);
        eprint!(
            "\r[{}{}] {:>5.1}%  {:.0} MB/s ",
            "#".repeat(filled),
            "-".repeat(width - filled),
            frac * 100.0,
            done as f64 / 1e6 / secs
        );
    }

    pub fn finish(&self) {
        if self.on {
            eprintln!();
        }
    }
}

/// Load user signatures from a TOML file's `[[signatures]]` tables.
pub fn load_analyzer(config: Option<&str>) -> Result<Analyzer> {
    let Some(path) = config else {
        return Ok(Analyzer::builtin());
    };
    #[derive(serde::Deserialize)]
    struct Cfg {
        #[serde(default)]
        signatures: Vec<pipeguard_core::analysis::UserSignature>,
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
    let cfg: Cfg = toml::from_str(&text).with_context(|| format!("{path} is not valid"))?;
    Analyzer::with_user_signatures(cfg.signatures).with_context(|| format!("signatures in {path}"))
}

pub fn run(args: AnalyzeArgs) -> Result<ExitCode> {
    let analyzer = load_analyzer(args.config.as_deref())?;
    let hints = Hints {
        exit_code: args.exit_code,
        platform_reason: args.platform_reason.clone(),
    };
    let mut diag = match args.file.as_deref() {
        None | Some("-") => analyzer.analyze_reader_with(io::stdin().lock(), &hints)?,
        Some(path) => {
            let f = File::open(path).with_context(|| format!("cannot open {path}"))?;
            let size = f.metadata().map(|m| m.len()).unwrap_or(0);
            let mut progress = Progress::new(size);
            let d = analyzer.analyze_reader_progress(
                io::BufReader::with_capacity(1 << 16, f),
                &hints,
                |n| progress.update(n),
            )?;
            progress.finish();
            d
        }
    };
    if let Some(path) = &args.junit {
        let mut xml = String::new();
        File::open(path)
            .with_context(|| format!("cannot open {path}"))?
            .read_to_string(&mut xml)
            .with_context(|| format!("cannot read {path}"))?;
        for t in tests_names::junit_failures(&xml) {
            if !diag.failing_tests.contains(&t) {
                diag.failing_tests.push(t);
            }
        }
    }
    let mut out = io::stdout().lock();
    match args.format {
        Format::Json => writeln!(out, "{}", serde_json::to_string(&diag)?)?,
        Format::Text => print_text(&mut out, &diag, color_enabled())?,
    }
    Ok(ExitCode::SUCCESS)
}

pub fn color_enabled() -> bool {
    io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn paint(on: bool, code: &str, s: &str) -> String {
    if on {
        format!("\x1b[{code}m{s}\x1b[0m")
    } else {
        s.to_string()
    }
}

pub fn print_text(out: &mut impl Write, d: &Diagnosis, color: bool) -> io::Result<()> {
    let cat_color = if d.transient {
        "1;33"
    } else if d.category.needs_human() {
        "1;31"
    } else {
        "1"
    };
    writeln!(
        out,
        "category:    {}",
        paint(color, cat_color, d.category.as_str())
    )?;
    writeln!(out, "confidence:  {:.2}", d.confidence)?;
    writeln!(
        out,
        "transient:   {}",
        if d.transient {
            "yes (retry/heal)"
        } else {
            "no (escalate)"
        }
    )?;
    writeln!(out, "strategy:    {}", d.strategy.as_str())?;
    if let Some(s) = &d.signature {
        writeln!(out, "signature:   {s}")?;
    }
    writeln!(out, "fingerprint: {}", d.fingerprint)?;
    if !d.summary.is_empty() {
        writeln!(out, "summary:     {}", d.summary)?;
    }
    if !d.failing_tests.is_empty() {
        writeln!(out, "failing tests ({}):", d.failing_tests.len())?;
        for t in d.failing_tests.iter().take(50) {
            writeln!(out, "  - {t}")?;
        }
        if d.failing_tests.len() > 50 {
            writeln!(out, "  … {} more", d.failing_tests.len() - 50)?;
        }
    }
    writeln!(out, "evidence:")?;
    let mut prev: Option<usize> = None;
    for e in &d.evidence {
        if prev.is_some_and(|p| e.line > p + 1) {
            writeln!(out, "{}", paint(color, "2", "    ···"))?;
        }
        writeln!(
            out,
            "{} {}",
            paint(color, "2;36", &format!("{:>7} |", e.line)),
            e.text
        )?;
        prev = Some(e.line);
    }
    Ok(())
}
