//! `pipeguard simulate`: replay a trace of failed runs through pipeguard and two baselines, or
//! generate such a trace. See docs/simulate.md.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use pipeguard_core::simulate::{self, Arm, Report, SimConfig};
use pipeguard_core::Analyzer;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

#[derive(Args)]
pub struct CmdArgs {
    /// JSONL trace to replay, one failed run a line (`-` for stdin).
    #[arg(long, conflicts_with = "generate")]
    trace: Option<PathBuf>,
    /// Write a generated trace of N runs instead of replaying one.
    #[arg(long, value_name = "N")]
    generate: Option<usize>,
    /// Seed of the generator (default 1): the same seed gives the same bytes.
    #[arg(long)]
    seed: Option<u64>,
    /// Where the generated trace goes (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Candidate policy (TOML, as the server's `[healing]` section); default: built-in policy.
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Runs per window of the learning curve.
    #[arg(long, default_value_t = 200)]
    window: usize,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
}

pub fn run(args: CmdArgs) -> Result<ExitCode> {
    if args.generate.is_none() && (args.seed.is_some() || args.out.is_some()) {
        bail!("--seed and --out go with --generate");
    }
    if let Some(n) = args.generate {
        if n == 0 {
            bail!("--generate needs at least one run");
        }
        let text = simulate::to_jsonl(&simulate::generate(n, args.seed.unwrap_or(1)));
        match &args.out {
            Some(p) => {
                std::fs::write(p, text).with_context(|| format!("writing {}", p.display()))?
            }
            None => std::io::stdout().lock().write_all(text.as_bytes())?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    let Some(path) = args.trace else {
        bail!(
            "simulate replays a trace: pass --trace FILE (one failed run a line), or write one \
             first with --generate N [--seed S] [--out FILE] (docs/simulate.md)"
        );
    };
    let text = if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the trace from stdin")?
    } else {
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?
    };
    let runs =
        simulate::parse_trace(&text).with_context(|| format!("in trace {}", path.display()))?;
    if args.window == 0 {
        bail!("--window must be at least 1");
    }
    let mut cfg = SimConfig {
        window: args.window,
        ..Default::default()
    };
    if let Some(p) = &args.policy {
        cfg.policy = super::backtest::load_policy(p)?;
    }
    let progress = super::progress::Progress::new();
    progress.note(&format!(
        "replaying {} failed runs through pipeguard and the baselines …",
        runs.len()
    ));
    let report = simulate::simulate(&runs, &Analyzer::builtin(), &cfg);
    progress.note("done");
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Table => print!("{}", render(&report)),
    }
    Ok(ExitCode::SUCCESS)
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

fn render(r: &Report) -> String {
    let mut out = format!(
        "{} failed runs ({} genuine, {} deploy jobs)\n\n",
        r.runs, r.genuine_runs, r.deploy_runs
    );
    out += &format!("{:<34}", "");
    for a in Arm::ALL {
        out += &format!("{:>17}", a.as_str());
    }
    out.push('\n');
    type Cell = fn(&simulate::ArmReport) -> String;
    let rows: [(&str, Cell); 12] = [
        ("success rate (green, no human)", |a| pct(a.success_rate)),
        ("mean time to green (min)", |a| {
            format!("{:.1}", a.mean_time_to_green_minutes)
        }),
        ("median time to green (min)", |a| {
            format!("{:.1}", a.median_time_to_green_minutes)
        }),
        ("re-runs", |a| a.reruns.to_string()),
        ("re-run compute (min)", |a| {
            format!("{:.0}", a.rerun_minutes)
        }),
        ("wasted compute (min)", |a| {
            format!("{:.0}", a.wasted_minutes)
        }),
        ("false heals", |a| a.false_heals.to_string()),
        ("human interventions", |a| a.human_interventions.to_string()),
        ("escalations", |a| a.escalations.to_string()),
        ("  of which learned", |a| a.learned_escalations.to_string()),
        ("deploys awaiting approval", |a| {
            a.awaiting_approval.to_string()
        }),
        ("deploys re-run unapproved", |a| {
            a.unapproved_deploy_reruns.to_string()
        }),
    ];
    for (name, cell) in rows {
        out += &format!("{name:<34}");
        for a in Arm::ALL {
            out += &format!("{:>17}", cell(r.arm(a)));
        }
        out.push('\n');
    }
    let d = &r.diagnosis;
    out += &format!(
        "\nanalyzer on {} logs: transient precision {}, recall {}; {} unknown; category right on {}\n",
        d.analyzed_runs,
        pct(d.transient_precision),
        pct(d.transient_recall),
        d.unknown,
        d.category_matches
    );
    out += &format!(
        "\nlearning curve (windows of {} runs)\n{:<14}{:>12}{:>12}{:>10}{:>12}{:>12}\n",
        r.window, "runs", "success", "wasted min", "learned", "static succ", "static wst"
    );
    for w in &r.learning_curve {
        out += &format!(
            "{:<14}{:>12}{:>12.0}{:>10}{:>12}{:>12.0}\n",
            format!("{}-{}", w.first_run, w.last_run),
            pct(w.pipeguard_success_rate),
            w.pipeguard_wasted_minutes,
            w.pipeguard_learned_escalations,
            pct(w.static_success_rate),
            w.static_wasted_minutes
        );
    }
    out
}
