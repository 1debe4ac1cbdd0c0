//! `pipeguard simulate`: replay a trace of failed runs through pipeguard and two baselines, or
//! generate such a trace. See docs/simulate.md.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use pipeguard_core::simulate::{
    self, Arm, BadRunnerArm, BadRunnerReport, Report, SimConfig, StormArmReport, StormConfig,
    StormReport, TransientArm, NOTICE_MINUTES,
};
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
    /// JSONL trace to replay, one failed run a line (`-` for stdin); default: the built-in
    /// traces/default.jsonl.
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
    /// Minutes from a failed run's end until a person notices it and re-runs it, for the
    /// transient-failure baseline (docs/simulate.md gives the source of the default).
    #[arg(long, default_value_t = NOTICE_MINUTES)]
    notice_minutes: f64,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Replay the trace as a storm: an outage in which a share of the failures share one
    /// registry's cause; compares re-runs spent, time to green after the outage and the
    /// budget left for unrelated failures against a per-failure healer and retry-everything.
    #[arg(long)]
    incident: bool,
    /// With --incident: minutes the outage lasts.
    #[arg(long, default_value_t = 90.0, requires = "incident")]
    outage_minutes: f64,
    /// With --incident: share (0..1] of the failures arriving during the outage that are its.
    #[arg(long, default_value_t = 0.6, requires = "incident")]
    outage_share: f64,
    /// With --incident: failures arriving per minute.
    #[arg(long, default_value_t = 2.0, requires = "incident")]
    failures_per_minute: f64,
    /// With --incident: share of the hourly budget the released wave leaves for unrelated
    /// failures (`[incidents] reserve_share`).
    #[arg(long, default_value_t = 0.25, requires = "incident")]
    reserve_share: f64,
}

/// The trace docs/simulate.md describes, built in so that `simulate` works from any directory.
const DEFAULT_TRACE: &str = include_str!("../../../../traces/default.jsonl");
const DEFAULT_TRACE_PATH: &str = "traces/default.jsonl";

/// The trace's text and how to name it: a file, stdin, or the built-in default when no file
/// is given (or the documented `traces/default.jsonl` is asked for outside the repository).
fn read_trace(path: Option<&std::path::Path>) -> Result<(std::borrow::Cow<'static, str>, String)> {
    let builtin = || {
        eprintln!(
            "replaying the built-in {DEFAULT_TRACE_PATH}; --trace FILE replays yours, \
             --generate N [--seed S] [--out FILE] writes one (docs/simulate.md)"
        );
        (
            DEFAULT_TRACE.into(),
            format!("{DEFAULT_TRACE_PATH} (built in)"),
        )
    };
    let Some(path) = path else {
        return Ok(builtin());
    };
    if path.as_os_str() == "-" {
        let text =
            std::io::read_to_string(std::io::stdin()).context("reading the trace from stdin")?;
        return Ok((text.into(), "stdin".into()));
    }
    if path == std::path::Path::new(DEFAULT_TRACE_PATH) && !path.exists() {
        return Ok(builtin());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok((text.into(), path.display().to_string()))
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
    let (text, source) = read_trace(args.trace.as_deref())?;
    let runs = simulate::parse_trace(&text).with_context(|| format!("in trace {source}"))?;
    if args.window == 0 {
        bail!("--window must be at least 1");
    }
    if !(args.notice_minutes.is_finite() && args.notice_minutes >= 0.0) {
        bail!("--notice-minutes must be zero or more");
    }
    if args.incident {
        return storm(&args, &runs);
    }
    let mut cfg = SimConfig {
        window: args.window,
        notice_minutes: args.notice_minutes,
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

/// `--incident`: the storm replay.
fn storm(args: &CmdArgs, runs: &[simulate::TraceRun]) -> Result<ExitCode> {
    let positive = |x: f64| x.is_finite() && x > 0.0;
    if !positive(args.outage_minutes) || !positive(args.failures_per_minute) {
        bail!("--outage-minutes and --failures-per-minute must be more than zero");
    }
    if !(positive(args.outage_share) && args.outage_share <= 1.0) {
        bail!("--outage-share must be more than 0 and at most 1");
    }
    if !(0.0..=1.0).contains(&args.reserve_share) {
        bail!("--reserve-share must be from 0 to 1");
    }
    let mut cfg = StormConfig {
        outage_minutes: args.outage_minutes,
        outage_share: args.outage_share,
        failures_per_minute: args.failures_per_minute,
        ..Default::default()
    };
    cfg.incidents.reserve_share = args.reserve_share;
    if let Some(p) = &args.policy {
        cfg.policy = super::backtest::load_policy(p)?;
    }
    let report = simulate::simulate_storm(runs, &Analyzer::builtin(), &cfg);
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        Format::Table => print!("{}", render_storm(&report)),
    }
    Ok(ExitCode::SUCCESS)
}

fn render_storm(r: &StormReport) -> String {
    let mut out = format!(
        "{} failures; an outage from minute {:.0} for {:.0} min: {} of them share its cause\n\n{:<40}",
        r.failures, r.outage_start_minutes, r.outage_minutes, r.outage_failures, ""
    );
    for a in &r.arms {
        out += &format!("{:>18}", a.arm.as_str());
    }
    out.push('\n');
    type Cell = fn(&StormArmReport) -> String;
    let rows: [(&str, Cell); 9] = [
        ("re-runs", |a| a.reruns.to_string()),
        ("re-runs into the outage", |a| {
            a.reruns_into_outage.to_string()
        }),
        ("canary re-runs", |a| a.canaries.to_string()),
        ("outage failures healed", |a| a.outage_healed.to_string()),
        ("outage failures to people", |a| {
            a.outage_to_people.to_string()
        }),
        ("min to green after the outage", |a| {
            format!("{:.0}", a.minutes_to_green_after_outage)
        }),
        ("budget left when it ended (per hour)", |a| {
            a.budget_left_at_outage_end.to_string()
        }),
        ("unrelated transient healed", |a| {
            format!("{} of {}", a.unrelated_healed, a.unrelated_transient)
        }),
        ("unrelated stopped by the budget", |a| {
            a.unrelated_stopped_by_budget.to_string()
        }),
    ];
    for (name, cell) in rows {
        out += &format!("{name:<40}");
        for a in &r.arms {
            out += &format!("{:>18}", cell(a));
        }
        out.push('\n');
    }
    out + &render_bad_runner(&r.bad_runner)
}

fn render_bad_runner(b: &BadRunnerReport) -> String {
    let mut out = format!(
        "\nA bad runner: 1 of {} failing its jobs from minute {:.0}\n{:<40}",
        b.pool, b.bad_from_minutes, ""
    );
    for a in &b.arms {
        out += &format!("{:>18}", a.arm.as_str());
    }
    out.push('\n');
    type Cell = fn(&BadRunnerArm) -> u32;
    let rows: [(&str, Cell); 3] = [
        ("its failures", |a| a.failures),
        ("re-runs of them", |a| a.reruns),
        ("  failed again on it", |a| a.failed_again),
    ];
    for (name, cell) in rows {
        out += &format!("{name:<40}");
        for a in &b.arms {
            out += &format!("{:>18}", cell(a));
        }
        out.push('\n');
    }
    match b.flagged_after_minutes {
        Some(m) => {
            out += &format!(
                "pipeguard flagged it {m:.0} min after it went bad, at its {}th failure \
                 (p = {:.1e}), and took it out; re-runs saved against the per-failure healer: {}\n",
                b.flagged_at_failures, b.p_value, b.reruns_saved
            )
        }
        None => out += "pipeguard did not flag it\n",
    }
    out
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
    out += &render_transient(r);
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

/// The transient failures alone, against a person who notices and re-runs them.
fn render_transient(r: &Report) -> String {
    let t = &r.transient;
    let mut out = format!(
        "\ntransient failures ({} runs): a person notices {:.0} min after the run ends and re-runs up to {} times\n",
        t.runs, t.notice_minutes, t.manual_reruns
    );
    out += &format!(
        "{:<22}{:>26}{:>28}{:>10}{:>12}{:>11}\n",
        "",
        "time to green mean/p50/p90",
        "failure→retry mean/p50/p90",
        "by pg",
        "before end",
        "shorter"
    );
    for arm in TransientArm::ALL {
        let a = t.arm(arm);
        let own = &a.pipeguard_retry_minutes;
        let (g, c) = (&a.time_to_green_minutes, &a.failure_to_retry_minutes);
        out += &format!(
            "{:<22}{:>26}{:>28}{:>10}{:>12}{:>11}\n",
            arm.as_str(),
            format!("{:.1} / {:.1} / {:.1}", g.mean, g.p50, g.p90),
            format!("{:.1} / {:.1} / {:.1}", c.mean, c.p50, c.p90),
            a.retried_by_pipeguard,
            a.retried_before_run_end,
            if arm == TransientArm::ManualRerun {
                "-".to_string()
            } else {
                pct(a.mean_reduction)
            }
        );
        if a.retried_by_pipeguard > 0 {
            out += &format!(
                "{:<22}{:>26}{:>28}\n",
                "  its own calls",
                "",
                format!("{:.1} / {:.1} / {:.1}", own.mean, own.p50, own.p90)
            );
        }
    }
    out
}
