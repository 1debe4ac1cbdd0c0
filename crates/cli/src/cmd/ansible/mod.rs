//! `pipeguard ansible PLAYBOOK`: run a playbook, heal the hosts it fails on, retry them.
//!
//! Each run of `ansible-playbook` reports through the pipeguard callback plugin into the
//! session directory (`.pipeguard/sessions/<id>/`). Failures are classified per host; the
//! healable ones get a generated healing playbook (saved as `heal-N.yml` before it runs,
//! with its plan, assessments and rollbacks in `heal-N.json`), then the original playbook
//! is retried with `--limit` on those hosts. Everything else is escalated with evidence.

mod hostloop;
mod report;

use anyhow::{bail, Context, Result};
use clap::Args;
use pipeguard_ansible::plan::{Action, Decision, Phase};
use pipeguard_ansible::{classify, playbook, HostFacts, RunEvents, TaskFailure, CALLBACK_PLUGIN};
use pipeguard_core::backoff::Backoff;
use pipeguard_core::safety::risk_name;
use pipeguard_core::{Analyzer, Risk};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// Failure kinds whose fix commands (or whether to heal at all: free disk and memory)
/// depend on the host's facts.
const NEEDS_FACTS: [&str; 5] = [
    "missing_package",
    "stale_package_cache",
    "service_stopped",
    "disk_full",
    "out_of_memory",
];

/// How much of ansible-playbook's stderr is kept to explain failures outside any task.
const STDERR_TAIL: usize = 64 * 1024;

#[derive(Args)]
pub struct CmdArgs {
    /// The playbook to run.
    playbook: PathBuf,
    /// Inventory file or host list, passed to ansible-playbook as `-i`.
    #[arg(short = 'i', long)]
    inventory: Option<String>,
    /// Times the playbook is retried on the failed hosts after healing.
    #[arg(long, default_value_t = 2)]
    max_retries: u32,
    /// Run the playbook once, then print the healing plan and playbook without running them.
    #[arg(long)]
    dry_run: bool,
    /// Allow fix steps assessed as high risk without asking.
    #[arg(long)]
    approve_high_risk: bool,
    /// Seconds to wait before retrying a transient failure.
    #[arg(long, env = "PIPEGUARD_HEALING_BACKOFF_SECONDS", default_value_t = 2.0)]
    backoff_seconds: f64,
    /// Where sessions are kept.
    #[arg(long, env = "PIPEGUARD_STATE_DIR", default_value = ".pipeguard")]
    state_dir: PathBuf,
    /// Database for host facts.
    #[arg(
        long,
        env = "PIPEGUARD_DATABASE_URL",
        default_value = "sqlite://pipeguard.db"
    )]
    database_url: String,
    /// Do not store host facts in the database.
    #[arg(long)]
    no_database: bool,
    /// `ansible_python_interpreter` for the hosts (default: the Python running Ansible,
    /// unless ANSIBLE_PYTHON_INTERPRETER is set).
    #[arg(long)]
    python_interpreter: Option<String>,
    /// Run fix, verification and rollback commands assessed medium without asking.
    #[arg(long)]
    approve_medium: bool,
    /// Hosts with the same failure healed at once after the canary (default 25 %, at least 1).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    batch: Option<u32>,
    /// Write the per-host report (facts, diagnosis, commands run, outcome) as JSON.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Config file whose `[llm]` table names the analyst (default ./pipeguard.toml).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Extra arguments for ansible-playbook, after `--`.
    #[arg(last = true, allow_hyphen_values = true)]
    extra: Vec<String>,
}

/// One run of ansible-playbook (the original or a healing one).
#[derive(Serialize)]
struct RunRecord {
    kind: &'static str,
    playbook: String,
    limit: Option<String>,
    exit_code: i32,
    duration_ms: u64,
    events: String,
    failed_hosts: Vec<String>,
}

impl RunRecord {
    fn of(
        kind: &'static str,
        playbook: &Path,
        limit: &str,
        out: &RunOutput,
        t0: Instant,
        events: &Path,
    ) -> RunRecord {
        RunRecord {
            kind,
            playbook: playbook.display().to_string(),
            limit: Some(limit.to_string()),
            exit_code: out.code,
            duration_ms: t0.elapsed().as_millis() as u64,
            events: events.display().to_string(),
            failed_hosts: out.events.failures().into_iter().map(|f| f.host).collect(),
        }
    }
}

#[derive(Serialize)]
struct StepOutcome {
    phase: Phase,
    name: String,
    argv: Vec<String>,
    risk: Risk,
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rollback: Option<serde_json::Value>,
}

#[derive(Serialize)]
struct Escalation {
    host: String,
    task: String,
    kind: String,
    reason: String,
    evidence: Vec<String>,
}

#[derive(Serialize)]
struct Session {
    id: String,
    playbook: String,
    runs: Vec<RunRecord>,
    heals: Vec<serde_json::Value>,
    escalations: Vec<Escalation>,
    outcome: String,
    exit_code: i32,
}

struct Ansible {
    bin: PathBuf,
    python: Option<String>,
    plugin_dir: PathBuf,
    inventory: Option<String>,
    connection_args: Vec<String>,
}

struct RunOutput {
    code: i32,
    stderr_tail: String,
    events: RunEvents,
}

impl Ansible {
    fn run(
        &self,
        playbook: &Path,
        limit: Option<&str>,
        extra: &[String],
        events_path: &Path,
    ) -> Result<RunOutput> {
        let mut cmd = Command::new(&self.bin);
        cmd.arg(playbook);
        if let Some(i) = &self.inventory {
            cmd.arg("-i").arg(i);
        }
        cmd.args(extra);
        // Given last so it narrows whatever the extra arguments limited to.
        if let Some(l) = limit {
            cmd.arg("--limit").arg(l);
        }
        let plugins = match std::env::var("ANSIBLE_CALLBACK_PLUGINS") {
            Ok(v) if !v.is_empty() => format!("{}:{v}", self.plugin_dir.display()),
            _ => self.plugin_dir.display().to_string(),
        };
        let enabled = match std::env::var("ANSIBLE_CALLBACKS_ENABLED") {
            Ok(v) if !v.is_empty() => format!("{v},pipeguard"),
            _ => "pipeguard".to_string(),
        };
        cmd.env("ANSIBLE_CALLBACK_PLUGINS", plugins)
            .env("ANSIBLE_CALLBACKS_ENABLED", enabled)
            .env("ANSIBLE_RETRY_FILES_ENABLED", "false")
            .env("PIPEGUARD_EVENTS_FILE", events_path);
        if let Some(py) = &self.python {
            cmd.env("ANSIBLE_PYTHON_INTERPRETER", py);
        }
        cmd.stdin(Stdio::inherit())
            .stdout(Stdio::inherit())
            .stderr(Stdio::piped());
        let _ = std::fs::remove_file(events_path);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("running {}", self.bin.display()))?;
        let mut err = child.stderr.take().context("stderr pipe")?;
        // Pass stderr through while keeping its tail: syntax errors only appear there.
        let pump = std::thread::spawn(move || {
            let mut tail: Vec<u8> = vec![];
            let mut buf = [0u8; 8192];
            let mut out = std::io::stderr();
            loop {
                match err.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let _ = out.write_all(&buf[..n]);
                        tail.extend_from_slice(&buf[..n]);
                        if tail.len() > 2 * STDERR_TAIL {
                            tail.drain(..tail.len() - STDERR_TAIL);
                        }
                    }
                }
            }
            tail
        });
        let status = child.wait()?;
        let tail = pump.join().unwrap_or_default();
        use std::os::unix::process::ExitStatusExt;
        let code = status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
        let text = std::fs::read_to_string(events_path).unwrap_or_default();
        let events = RunEvents::parse(&text);
        if events.bad_lines > 0 {
            eprintln!(
                "pipeguard: {} unreadable event line(s) in {}",
                events.bad_lines,
                events_path.display()
            );
        }
        Ok(RunOutput {
            code,
            stderr_tail: String::from_utf8_lossy(&tail).into_owned(),
            events,
        })
    }
}

fn locate_playbook_bin() -> Result<PathBuf> {
    if let Ok(p) = std::env::var("PIPEGUARD_ANSIBLE_PLAYBOOK") {
        if !p.is_empty() {
            let p = PathBuf::from(p);
            if p.is_file() {
                return Ok(p);
            }
            bail!("PIPEGUARD_ANSIBLE_PLAYBOOK={} does not exist", p.display());
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("ansible-playbook");
            if p.is_file() {
                return Ok(p);
            }
        }
    }
    bail!("ansible-playbook not found: install ansible-core or set PIPEGUARD_ANSIBLE_PLAYBOOK")
}

/// The Python that runs Ansible, read from the script's shebang: the one interpreter that
/// certainly works for `connection: local` hosts (discovery can pick a broken shim).
fn ansible_python(bin: &Path) -> Option<String> {
    let f = std::fs::File::open(bin).ok()?;
    let mut line = String::new();
    std::io::BufReader::new(f).read_line(&mut line).ok()?;
    let rest = line.strip_prefix("#!")?.trim();
    let mut parts = rest.split_whitespace();
    let first = parts.next()?;
    let py = if first.ends_with("/env") {
        parts.next()?.to_string()
    } else {
        first.to_string()
    };
    py.contains("python").then_some(py)
}

/// Of the user's extra arguments, those a healing run needs too (connection, privileges,
/// variables), but not those that would skip its tasks (`--tags`, `--check`…).
fn connection_args(extra: &[String]) -> Vec<String> {
    const WITH_VALUE: [&str; 16] = [
        "-e",
        "--extra-vars",
        "-u",
        "--user",
        "--become-user",
        "--become-method",
        "--private-key",
        "--key-file",
        "-c",
        "--connection",
        "--vault-id",
        "--vault-password-file",
        "-f",
        "--forks",
        "-T",
        "--timeout",
    ];
    const FLAGS: [&str; 7] = [
        "-b",
        "--become",
        "-K",
        "--ask-become-pass",
        "-k",
        "--ask-pass",
        "--ask-vault-pass",
    ];
    let mut out = vec![];
    let mut i = 0;
    while i < extra.len() {
        let a = &extra[i];
        if WITH_VALUE.contains(&a.as_str()) {
            out.push(a.clone());
            if let Some(v) = extra.get(i + 1) {
                out.push(v.clone());
            }
            i += 2;
            continue;
        }
        let keep = FLAGS.contains(&a.as_str())
            || WITH_VALUE
                .iter()
                .any(|w| w.starts_with("--") && a.starts_with(&format!("{w}=")))
            || (a.starts_with("-e") && a.len() > 2)
            || a.starts_with("--ssh-common-args")
            || a.starts_with("--ssh-extra-args");
        if keep {
            out.push(a.clone());
        }
        i += 1;
    }
    out
}

fn session_id() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    format!("ansible-{ms}-{}", std::process::id())
}

/// Ansible's "nothing ran" errors: the playbook could not be loaded.
fn load_error(stderr: &str) -> Option<(&'static str, Vec<String>)> {
    let lines: Vec<String> = stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.trim_end().to_string())
        .collect();
    let kind = if stderr.contains("Syntax Error while loading YAML")
        || stderr.contains("could not find expected")
        || stderr.contains("mapping values are not allowed")
        || stderr.contains("YAML")
    {
        "syntax_error"
    } else if stderr.contains("is undefined") {
        "undefined_variable"
    } else if stderr.contains("ERROR") || stderr.contains("[ERROR]") {
        "configuration_error"
    } else {
        return None;
    };
    let start = lines.iter().position(|l| l.contains("ERROR")).unwrap_or(0);
    Some((kind, lines.into_iter().skip(start).take(8).collect()))
}

fn confirm(prompt: &str) -> bool {
    if !std::io::stdin().is_terminal() {
        return false;
    }
    eprint!("{prompt} [y/N] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim(), "y" | "Y" | "yes" | "YES")
}

pub fn run(args: CmdArgs) -> Result<ExitCode> {
    if !args.playbook.is_file() {
        bail!("playbook {} does not exist", args.playbook.display());
    }
    if !args.backoff_seconds.is_finite() || args.backoff_seconds < 0.0 {
        bail!("--backoff-seconds must be a non-negative number");
    }
    let bin = locate_playbook_bin()?;
    let id = session_id();
    let dir = args.state_dir.join("sessions").join(&id);
    let plugin_dir = dir.join("callback_plugins");
    std::fs::create_dir_all(&plugin_dir)
        .with_context(|| format!("creating {}", plugin_dir.display()))?;
    std::fs::write(plugin_dir.join("pipeguard.py"), CALLBACK_PLUGIN)?;
    let python = match &args.python_interpreter {
        Some(p) => Some(p.clone()),
        None if std::env::var_os("ANSIBLE_PYTHON_INTERPRETER").is_some() => None,
        None => ansible_python(&bin),
    };
    let ansible = Ansible {
        bin,
        python,
        plugin_dir,
        inventory: args.inventory.clone(),
        connection_args: connection_args(&args.extra),
    };
    eprintln!("pipeguard: session {id} ({})", dir.display());

    let analyzer = Analyzer::builtin();
    let mut host_loop = hostloop::HostLoop::new(
        &ansible,
        hostloop::analyst(args.config.as_deref())?,
        args.approve_medium,
        args.batch.map(|b| b as usize),
        &dir,
        (!args.no_database).then_some(args.database_url.as_str()),
    )?;
    let mut first_failures: Vec<Decision> = vec![];
    let mut session = Session {
        id: id.clone(),
        playbook: args.playbook.display().to_string(),
        runs: vec![],
        heals: vec![],
        escalations: vec![],
        outcome: String::new(),
        exit_code: 0,
    };
    let mut facts: BTreeMap<String, HostFacts> = BTreeMap::new();
    let mut limit: Option<String> = None;
    // Exit status of the run in which hosts were escalated (they are not retried).
    let mut escalated_code: Option<i32> = None;
    let mut round = 0u32;
    let final_code = loop {
        let events_path = dir.join(format!("run-{round}.jsonl"));
        let t0 = Instant::now();
        let out = ansible.run(&args.playbook, limit.as_deref(), &args.extra, &events_path)?;
        for (h, m) in out.events.facts() {
            facts.insert(h, HostFacts::from_map(&m));
        }
        let failures = out.events.failures();
        session.runs.push(RunRecord {
            kind: "playbook",
            playbook: args.playbook.display().to_string(),
            limit: limit.clone(),
            exit_code: out.code,
            duration_ms: t0.elapsed().as_millis() as u64,
            events: events_path.display().to_string(),
            failed_hosts: failures.iter().map(|f| f.host.clone()).collect(),
        });
        if out.code == 0 {
            break 0;
        }
        if failures.is_empty() {
            // Nothing ran far enough to fail a task: a load or syntax error, or a crash.
            let (kind, evidence) = load_error(&out.stderr_tail).unwrap_or((
                "unknown",
                out.stderr_tail
                    .lines()
                    .rev()
                    .take(5)
                    .map(String::from)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect(),
            ));
            session.escalations.push(Escalation {
                host: "*".into(),
                task: String::new(),
                kind: kind.into(),
                reason: format!(
                    "ansible-playbook exited {} before any task failed ({kind}); nothing was changed",
                    out.code
                ),
                evidence,
            });
            break out.code;
        }
        // Facts are gathered only where the fix depends on the host (package or service
        // manager); a plain retry or an escalation needs none.
        let need_facts: Vec<TaskFailure> = failures
            .iter()
            .filter(|f| {
                let d = classify(f, None, &analyzer);
                !facts.contains_key(&f.host)
                    && (NEEDS_FACTS.contains(&d.kind.as_str())
                        || (hostloop::unsure(&d)
                            && host_loop.as_ref().is_some_and(|l| l.may_handle(f, &d))))
            })
            .cloned()
            .collect();
        gather_missing_facts(&ansible, &dir, round, &need_facts, &mut facts, &mut session)?;
        store_facts(&args, &facts);

        let decisions: Vec<Decision> = failures
            .iter()
            .map(|f| classify(f, facts.get(&f.host), &analyzer))
            .collect();
        if round == 0 {
            first_failures = decisions.clone();
        }
        let mut retry_hosts: BTreeSet<String> = BTreeSet::new();
        let mut heals: Vec<&Decision> = vec![];
        let mut for_loop: Vec<(TaskFailure, Decision)> = vec![];
        for (d, f) in decisions.iter().zip(&failures) {
            let looped = host_loop
                .as_ref()
                .map(|l| l.report.hosts.contains_key(&d.host) || !l.may_handle(f, d));
            match &d.action {
                Action::Escalate if looped == Some(false) && hostloop::unsure(d) => {
                    for_loop.push((f.clone(), d.clone()));
                }
                Action::Escalate => escalate(&mut session, d, d.reason.clone()),
                Action::Retry => {
                    retry_hosts.insert(d.host.clone());
                }
                Action::Heal { steps } => {
                    if let Some(bad) = steps.iter().find(|s| s.risk == Risk::Refused) {
                        escalate(
                            &mut session,
                            d,
                            format!(
                                "the fix `{}` is refused: {}",
                                bad.argv.join(" "),
                                bad.risk_reason
                            ),
                        );
                        continue;
                    }
                    let high: Vec<_> = steps
                        .iter()
                        .filter(|s| s.phase == Phase::Fix && s.risk == Risk::High)
                        .collect();
                    if !high.is_empty() && !args.approve_high_risk && !args.dry_run {
                        let prompt = format!(
                            "pipeguard: {}: run high-risk fix(es) {}?",
                            d.host,
                            high.iter()
                                .map(|s| format!("`{}` ({})", s.argv.join(" "), s.risk_reason))
                                .collect::<Vec<_>>()
                                .join(", ")
                        );
                        if !confirm(&prompt) {
                            escalate(
                                &mut session,
                                d,
                                format!(
                                    "{}; the fix is high risk and was not approved (use --approve-high-risk)",
                                    d.reason
                                ),
                            );
                            continue;
                        }
                    }
                    heals.push(d);
                }
            }
        }
        let mut loop_healed = BTreeSet::new();
        if let Some(l) = host_loop
            .as_mut()
            .filter(|_| !for_loop.is_empty() && !args.dry_run)
        {
            loop_healed = l.handle(&for_loop, &facts, &args.playbook, &args.extra, &mut session)?;
        } else {
            for (_, d) in &for_loop {
                escalate(&mut session, d, d.reason.clone());
            }
        }
        if session
            .escalations
            .iter()
            .any(|e| failures.iter().any(|f| f.host == e.host))
        {
            escalated_code.get_or_insert(out.code);
        }
        let heal_hosts: BTreeSet<String> = heals.iter().map(|d| d.host.clone()).collect();
        if heals.is_empty() && retry_hosts.is_empty() {
            let all_healed = failures.iter().all(|f| loop_healed.contains(&f.host));
            break if all_healed { 0 } else { out.code };
        }
        if round >= args.max_retries {
            for d in heals.iter() {
                escalate(
                    &mut session,
                    d,
                    format!("{}; still failing after {round} retries", d.reason),
                );
            }
            for h in &retry_hosts {
                if let Some(d) = decisions.iter().find(|d| &d.host == h) {
                    escalate(
                        &mut session,
                        d,
                        format!("{}; still failing after {round} retries", d.reason),
                    );
                }
            }
            break out.code;
        }
        round += 1;
        let mut next_hosts = retry_hosts.clone();
        if !heals.is_empty() {
            let connection = play_connections(&args.playbook);
            let pairs: Vec<(&Decision, Option<String>)> =
                heals.iter().map(|d| (*d, connection.clone())).collect();
            let yml = dir.join(format!("heal-{round}.yml"));
            let text = playbook::render(&id, round, &pairs);
            std::fs::write(&yml, &text)?;
            print_plan(&heals, &retry_hosts, &yml);
            if args.dry_run {
                eprintln!(
                    "pipeguard: dry run: the healing playbook above was written to {} and not run",
                    yml.display()
                );
                println!("{text}");
                write_plan_json(&dir, round, &heals, None)?;
                break out.code;
            }
            let heal_events = dir.join(format!("heal-{round}.jsonl"));
            let limit_heal = heal_hosts.iter().cloned().collect::<Vec<_>>().join(",");
            let t0 = Instant::now();
            let h = ansible.run(
                &yml,
                Some(&limit_heal),
                &ansible.connection_args,
                &heal_events,
            )?;
            let failed_heal: BTreeSet<String> =
                h.events.failures().into_iter().map(|f| f.host).collect();
            session.runs.push(RunRecord::of(
                "heal",
                &yml,
                &limit_heal,
                &h,
                t0,
                &heal_events,
            ));
            let record = write_plan_json(&dir, round, &heals, Some(&h.events))?;
            session.heals.push(record);
            for d in &heals {
                let ran = h
                    .events
                    .oks()
                    .any(|o| o.host == d.host && o.task.starts_with("pipeguard "));
                if failed_heal.contains(&d.host) || !ran {
                    let why = h
                        .events
                        .failures()
                        .into_iter()
                        .find(|f| f.host == d.host)
                        .map(|f| format!("{}: {}", f.task, f.text().lines().next().unwrap_or("")))
                        .unwrap_or_else(|| "the healing playbook did not run".into());
                    escalate(
                        &mut session,
                        d,
                        format!("{}; the heal did not verify ({why})", d.reason),
                    );
                    escalated_code.get_or_insert(out.code);
                } else {
                    eprintln!("pipeguard: {}: {} healed and verified", d.host, d.kind);
                    next_hosts.insert(d.host.clone());
                }
            }
        } else {
            print_plan(&heals, &retry_hosts, Path::new(""));
            if args.dry_run {
                break out.code;
            }
        }
        if next_hosts.is_empty() {
            break out.code;
        }
        if !retry_hosts.is_empty() && args.backoff_seconds > 0.0 {
            let base = Duration::from_secs_f64(args.backoff_seconds);
            let d = Backoff {
                base,
                cap: base * 1024,
            }
            .bound(round - 1);
            eprintln!("pipeguard: waiting {:.1}s before retrying", d.as_secs_f64());
            std::thread::sleep(d);
        }
        let l = next_hosts.into_iter().collect::<Vec<_>>().join(",");
        eprintln!(
            "pipeguard: retry {round} of {}: --limit {l}",
            args.max_retries
        );
        limit = Some(l);
    };

    let exit = if final_code != 0 {
        final_code
    } else {
        escalated_code.unwrap_or(0)
    };
    // Ahead of the next failure: hosts about to fill up, with the cleanup offered (not run).
    super::hosts::offer_cleanup(&facts, Some(&dir.join("prevent.yml")))?;
    session.exit_code = exit;
    session.outcome = if exit == 0 && session.escalations.is_empty() {
        if session.runs.len() > 1 {
            "healed".into()
        } else {
            "passed".into()
        }
    } else if !session.escalations.is_empty() {
        "escalated".into()
    } else {
        "failed".into()
    };
    if let Some(path) = &args.report {
        let r = report::build(
            &args.playbook,
            host_loop.map(|l| l.report).unwrap_or_default(),
            &first_failures,
            &facts,
            &session,
        );
        std::fs::write(path, serde_json::to_string_pretty(&r)? + "\n")
            .with_context(|| format!("writing the report {}", path.display()))?;
    }
    std::fs::write(
        dir.join("session.json"),
        serde_json::to_string_pretty(&session)? + "\n",
    )?;
    for e in &session.escalations {
        eprintln!(
            "pipeguard: ESCALATED {}{}: {}: {}",
            e.host,
            if e.task.is_empty() {
                String::new()
            } else {
                format!(" task {:?}", e.task)
            },
            e.kind,
            e.reason
        );
        for l in e.evidence.iter().take(5) {
            eprintln!("pipeguard:   | {l}");
        }
    }
    eprintln!(
        "pipeguard: session {id}: {} (exit {exit}); record in {}",
        session.outcome,
        dir.join("session.json").display()
    );
    Ok(ExitCode::from(exit.clamp(0, 255) as u8))
}

fn escalate(session: &mut Session, d: &Decision, reason: String) {
    session.escalations.retain(|e| e.host != d.host);
    session.escalations.push(Escalation {
        host: d.host.clone(),
        task: d.task.clone(),
        kind: d.kind.clone(),
        reason,
        evidence: d.evidence.clone(),
    });
}

fn print_plan(heals: &[&Decision], retry: &BTreeSet<String>, yml: &Path) {
    for d in heals {
        eprintln!(
            "pipeguard: {}: task {:?} failed: {}: {}",
            d.host, d.task, d.kind, d.reason
        );
        for s in d.steps() {
            eprintln!(
                "pipeguard:   {:<8} {:<7} {}",
                format!("{:?}", s.phase).to_lowercase(),
                risk_name(s.risk),
                pipeguard_core::safety::shell::join(&s.argv)
            );
        }
    }
    for h in retry {
        eprintln!("pipeguard: {h}: transient failure, retrying");
    }
    if !heals.is_empty() {
        eprintln!("pipeguard: healing playbook: {}", yml.display());
    }
}

/// The plan as run, with each step's outcome and the rollback filled from the diagnosis.
fn write_plan_json(
    dir: &Path,
    round: u32,
    heals: &[&Decision],
    events: Option<&RunEvents>,
) -> Result<serde_json::Value> {
    let mut hosts = vec![];
    for d in heals {
        let mut steps = vec![];
        for (i, s) in d.steps().iter().enumerate() {
            let phase = format!("{:?}", s.phase).to_lowercase();
            let name = playbook::task_name(&d.host, i, &phase, &s.name);
            let ok = events.and_then(|e| e.oks().find(|o| o.host == d.host && o.task == name));
            let failed = events.and_then(|e| {
                e.events.iter().find_map(|ev| match ev {
                    pipeguard_ansible::Event::Failed(f) if f.host == d.host && f.task == name => {
                        Some(f.clone())
                    }
                    _ => None,
                })
            });
            let status = match (events, ok, &failed) {
                (None, _, _) => "planned",
                (_, Some(o), _) if o.changed || s.phase != Phase::Fix => "ok",
                (_, Some(_), _) => "ok",
                (_, None, Some(_)) => "failed",
                (_, None, None) => "skipped",
            };
            let rollback = s.rollback.as_ref().map(|rb| {
                let diag_out = rb.from_step.as_ref().and_then(|from| {
                    let idx = d.steps().iter().position(|x| &x.name == from)?;
                    let n = playbook::task_name(&d.host, idx, "diagnose", from);
                    events?
                        .oks()
                        .find(|o| o.host == d.host && o.task == n)
                        .and_then(|o| o.stdout.clone())
                });
                let argv = rb.argv.as_ref().map(|a| {
                    a.iter()
                        .map(|x| {
                            x.replace("{diagnosis}", diag_out.as_deref().unwrap_or("?").trim())
                        })
                        .collect::<Vec<_>>()
                });
                serde_json::json!({
                    "description": rb.description,
                    "argv": argv,
                    "recorded": diag_out,
                })
            });
            steps.push(StepOutcome {
                phase: s.phase,
                name: s.name.clone(),
                argv: s.argv.clone(),
                risk: s.risk,
                status: status.into(),
                output: ok
                    .and_then(|o| o.stdout.clone())
                    .or_else(|| failed.as_ref().map(|f| f.text())),
                rollback,
            });
        }
        hosts.push(serde_json::json!({
            "host": d.host,
            "task": d.task,
            "kind": d.kind,
            "reason": d.reason,
            "evidence": d.evidence,
            "steps": steps,
        }));
    }
    let v = serde_json::json!({ "round": round, "playbook": format!("heal-{round}.yml"), "hosts": hosts });
    std::fs::write(
        dir.join(format!("heal-{round}.json")),
        serde_json::to_string_pretty(&v)? + "\n",
    )?;
    Ok(v)
}

/// `connection:` of the original playbook's plays, when they all agree on one.
fn play_connections(playbook: &Path) -> Option<String> {
    let text = std::fs::read_to_string(playbook).ok()?;
    let values: BTreeSet<String> = text
        .lines()
        .filter_map(|l| {
            let t = l.trim_start();
            let indent = l.len() - t.len();
            let t = t.strip_prefix("- ").unwrap_or(t);
            (indent <= 2)
                .then(|| t.strip_prefix("connection:"))
                .flatten()
                .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
        })
        .collect();
    (values.len() == 1)
        .then(|| values.into_iter().next())
        .flatten()
}

/// Gather facts for failed hosts the playbook did not gather them for (gather_facts: false).
fn gather_missing_facts(
    ansible: &Ansible,
    dir: &Path,
    round: u32,
    failures: &[TaskFailure],
    facts: &mut BTreeMap<String, HostFacts>,
    session: &mut Session,
) -> Result<()> {
    let missing: Vec<String> = failures
        .iter()
        .filter(|f| !f.unreachable && !facts.contains_key(&f.host))
        .map(|f| f.host.clone())
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let yml = dir.join(format!("facts-{round}.yml"));
    std::fs::write(
        &yml,
        "# Generated by pipeguard: gathers host facts (read only) to choose fix commands.\n\
         - name: pipeguard gathers facts\n  hosts: all\n  gather_facts: true\n  tasks: []\n",
    )?;
    let events = dir.join(format!("facts-{round}.jsonl"));
    let l = missing.join(",");
    let t0 = Instant::now();
    let out = ansible.run(&yml, Some(&l), &ansible.connection_args, &events)?;
    for (h, m) in out.events.facts() {
        facts.insert(h, HostFacts::from_map(&m));
    }
    session
        .runs
        .push(RunRecord::of("facts", &yml, &l, &out, t0, &events));
    Ok(())
}

/// Keep host facts for `pipeguard hosts`; a database problem never stops a heal.
fn store_facts(args: &CmdArgs, facts: &BTreeMap<String, HostFacts>) {
    if args.no_database || facts.is_empty() {
        return;
    }
    let result: Result<()> = (|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            let store = pipeguard_store::Store::connect(&args.database_url).await?;
            for (name, f) in facts {
                store.upsert_host(&super::hosts::record(name, f)).await?;
            }
            store.close().await;
            Ok(())
        })
    })();
    if let Err(e) = result {
        eprintln!(
            "pipeguard: warning: host facts not stored in {}: {e:#}",
            args.database_url
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn healing_runs_keep_connection_arguments_only() {
        let extra = v(&[
            "-e",
            "x=1",
            "--tags",
            "deploy",
            "-b",
            "--check",
            "--user=ops",
            "-evar=2",
            "-c",
            "local",
        ]);
        assert_eq!(
            connection_args(&extra),
            v(&["-e", "x=1", "-b", "--user=ops", "-evar=2", "-c", "local"])
        );
    }

    #[test]
    fn load_errors_are_recognised() {
        let e = "[ERROR]: Syntax Error while loading YAML.\n  did not find expected key\n";
        assert_eq!(load_error(e).unwrap().0, "syntax_error");
        assert_eq!(load_error("").map(|x| x.0), None);
    }
}
