//! `pipeguard ansible PLAYBOOK`: run a playbook, heal the hosts it fails on, retry them.
//!
//! Each run of `ansible-playbook` reports through the pipeguard callback plugin into the
//! session directory (`.pipeguard/sessions/<id>/`). Failures are classified per host; the
//! healable ones get a generated healing playbook (saved as `heal-N.yml` before it runs,
//! with its plan, assessments and rollbacks in `heal-N.json`), then the original playbook
//! is retried with `--limit` on those hosts. Everything else is escalated with evidence.

mod hostloop;
mod report;
mod rounds;
mod rules;

use anyhow::{bail, Context, Result};
use clap::Args;
use pipeguard_ansible::hostloop::Ran;
use pipeguard_ansible::plan::{Decision, Phase};
use pipeguard_ansible::{playbook, HostFacts, RunEvents, TaskFailure, CALLBACK_PLUGIN};
use pipeguard_core::safety::risk_name;
use pipeguard_core::Risk;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

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
    #[serde(flatten)]
    seen: Seen,
    #[serde(skip_serializing_if = "Option::is_none")]
    rollback: Option<serde_json::Value>,
}

/// How a step went.
#[derive(Serialize, Default)]
struct Seen {
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<String>,
    /// Of a diagnostic run ad hoc.
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    /// Why a diagnostic was not run.
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
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
        let err = child.stderr.take().context("stderr pipe")?;
        let pump = std::thread::spawn(move || pass_stderr(err));
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

/// Pass ansible-playbook's stderr through while keeping its tail: syntax errors only appear
/// there.
fn pass_stderr(mut err: impl Read) -> Vec<u8> {
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
    let id = session_id();
    let dir = args.state_dir.join("sessions").join(&id);
    let ansible = Ansible::prepare(&args, &dir)?;
    eprintln!("pipeguard: session {id} ({})", dir.display());
    let mut run = rounds::Run::new(&args, &ansible, id, dir)?;
    let final_code = run.rounds()?;
    run.finish(final_code)
}

impl Ansible {
    /// ansible-playbook, with pipeguard's callback plugin written into the session dir.
    fn prepare(args: &CmdArgs, dir: &Path) -> Result<Ansible> {
        let bin = locate_playbook_bin()?;
        let plugin_dir = dir.join("callback_plugins");
        std::fs::create_dir_all(&plugin_dir)
            .with_context(|| format!("creating {}", plugin_dir.display()))?;
        std::fs::write(plugin_dir.join("pipeguard.py"), CALLBACK_PLUGIN)?;
        let python = match &args.python_interpreter {
            Some(p) => Some(p.clone()),
            None if std::env::var_os("ANSIBLE_PYTHON_INTERPRETER").is_some() => None,
            None => ansible_python(&bin),
        };
        Ok(Ansible {
            bin,
            python,
            plugin_dir,
            inventory: args.inventory.clone(),
            connection_args: connection_args(&args.extra),
        })
    }
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
    diagnosed: &rules::Diagnosed,
) -> Result<serde_json::Value> {
    let mut hosts = vec![];
    for d in heals {
        let adhoc = diagnosed.get(&d.host).map_or(&[][..], |v| v.as_slice());
        let steps: Vec<StepOutcome> = (0..d.steps().len())
            .map(|i| step_outcome(d, i, events, adhoc))
            .collect();
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

/// Step `i` of a heal as it went: run ad hoc (a diagnostic), or in the healing playbook
/// (`events`; none yet in a dry run).
fn step_outcome(
    d: &Decision,
    i: usize,
    events: Option<&RunEvents>,
    adhoc: &[(usize, Ran)],
) -> StepOutcome {
    let s = &d.steps()[i];
    let ran = adhoc.iter().find(|(j, _)| *j == i).map(|(_, r)| r);
    let seen = match ran {
        Some(r) => adhoc_outcome(r),
        None => playbook_outcome(d, i, events),
    };
    let rollback = s.rollback.as_ref().map(|rb| {
        let diag_out = rb
            .from_step
            .as_ref()
            .and_then(|from| diagnosis(d, from, events, adhoc));
        let argv = rb.argv.as_ref().map(|a| {
            a.iter()
                .map(|x| x.replace("{diagnosis}", diag_out.as_deref().unwrap_or("?").trim()))
                .collect::<Vec<_>>()
        });
        serde_json::json!({
            "description": rb.description,
            "argv": argv,
            "recorded": diag_out,
        })
    });
    StepOutcome {
        phase: s.phase,
        name: s.name.clone(),
        argv: s.argv.clone(),
        risk: s.risk,
        seen,
        rollback,
    }
}

/// A diagnostic run ad hoc: "ok" whatever its exit code (a diagnostic only informs), or
/// "refused" by the gate.
fn adhoc_outcome(r: &Ran) -> Seen {
    Seen {
        status: if r.ran { "ok" } else { "refused" }.into(),
        output: r.ran.then(|| r.output.clone()),
        exit_code: r.exit_code,
        note: (!r.note.is_empty()).then(|| r.note.clone()),
    }
}

/// A step of the healing playbook, found in its events by task name.
fn playbook_outcome(d: &Decision, i: usize, events: Option<&RunEvents>) -> Seen {
    let s = &d.steps()[i];
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
        (_, Some(_), _) => "ok",
        (_, None, Some(_)) => "failed",
        (_, None, None) => "skipped",
    };
    Seen {
        status: status.into(),
        output: ok
            .and_then(|o| o.stdout.clone())
            .or_else(|| failed.as_ref().map(|f| f.text())),
        ..Seen::default()
    }
}

/// The output of the diagnose step named `from`, for a rollback to restore what it saw.
fn diagnosis(
    d: &Decision,
    from: &str,
    events: Option<&RunEvents>,
    adhoc: &[(usize, Ran)],
) -> Option<String> {
    let idx = d.steps().iter().position(|x| x.name == from)?;
    if let Some((_, r)) = adhoc.iter().find(|(j, _)| *j == idx) {
        // What a failed or refused diagnostic printed is no state to restore.
        return r.ok().then(|| r.output.clone());
    }
    let n = playbook::task_name(&d.host, idx, "diagnose", from);
    events?
        .oks()
        .find(|o| o.host == d.host && o.task == n)
        .and_then(|o| o.stdout.clone())
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
