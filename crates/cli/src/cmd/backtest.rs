//! `pipeguard backtest`: re-decide the stored sessions with a candidate policy and show what
//! would change, so a policy can be tried before it is enabled.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use pipeguard_core::learning::{self, ArmStats, Learned};
use pipeguard_core::policy::{Capabilities, HealPlan, Strategy};
use pipeguard_core::{Diagnosis, FailureEvent, Policy};
use pipeguard_store::{SessionRecord, SessionStatus, Store};
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Args)]
pub struct CmdArgs {
    /// Candidate policy: TOML with the keys of the server's `[healing]` section, at the top
    /// level or under `[healing]`.
    #[arg(long)]
    policy: PathBuf,
    /// Database whose sessions are re-decided (the same as `serve` uses).
    #[arg(
        long,
        env = "PIPEGUARD_DATABASE_URL",
        default_value = "sqlite://pipeguard.db"
    )]
    database_url: String,
    #[arg(long, value_enum, default_value = "text")]
    format: Format,
}

/// Reads a candidate policy; keys the policy does not know are an error, not silently ignored.
pub fn load_policy(path: &Path) -> Result<Policy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading policy {}", path.display()))?;
    let doc: toml::Table = toml::from_str(&text)
        .with_context(|| format!("policy {} is not valid TOML", path.display()))?;
    let table = match doc.get("healing") {
        Some(toml::Value::Table(t)) => {
            if let Some(k) = doc.keys().find(|k| *k != "healing") {
                bail!(
                    "policy {}: unknown key {k:?} beside [healing]",
                    path.display()
                );
            }
            t.clone()
        }
        Some(_) => bail!("policy {}: `healing` must be a table", path.display()),
        None => doc,
    };
    let known = toml::Table::try_from(Policy::default())?;
    if let Some(k) = table.keys().find(|k| !known.contains_key(*k)) {
        let names: Vec<&str> = known.keys().map(String::as_str).collect();
        bail!(
            "policy {}: unknown key {k:?} (known: {})",
            path.display(),
            names.join(", ")
        );
    }
    let policy: Policy = table
        .try_into()
        .with_context(|| format!("policy {}", path.display()))?;
    if !(0.0..=1.0).contains(&policy.min_confidence) {
        bail!(
            "policy {}: min_confidence must be between 0 and 1",
            path.display()
        );
    }
    Ok(policy)
}

#[derive(Debug, Serialize)]
struct Change {
    session_id: String,
    repository: String,
    run_id: String,
    status: String,
    category: String,
    old_decision: String,
    old_strategy: String,
    new_decision: String,
    new_strategy: String,
    reason: String,
}

#[derive(Debug, Serialize)]
struct Total {
    from: String,
    to: String,
    sessions: usize,
    /// Of them, sessions that had healed under the old decision.
    healed: usize,
}

#[derive(Debug, Serialize)]
struct Backtest {
    sessions: usize,
    /// Sessions with a stored diagnosis and plan.
    decided: usize,
    changed: usize,
    changes: Vec<Change>,
    totals: Vec<Total>,
}

fn name<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default()
}

/// What the worker planned from: the session's diagnosis, or the first transient job's when
/// some jobs are genuine and others transient, with only the transient jobs in the event.
fn planning_input(s: &SessionRecord, diagnosis: &Value) -> Option<(Diagnosis, FailureEvent)> {
    let session_diag: Diagnosis = serde_json::from_value(diagnosis.clone()).ok()?;
    let jobs: Vec<(pipeguard_core::event::FailedJob, Diagnosis)> = diagnosis["jobs"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|j| {
                    Some((
                        serde_json::from_value(j["job"].clone()).ok()?,
                        serde_json::from_value(j["diagnosis"].clone()).ok()?,
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    let mut event = s.event.clone();
    if jobs.is_empty() {
        return Some((session_diag, event));
    }
    let transient: Vec<&(pipeguard_core::event::FailedJob, Diagnosis)> =
        jobs.iter().filter(|(_, d)| d.transient).collect();
    let mixed = !transient.is_empty() && transient.len() < jobs.len();
    let diag = if mixed {
        transient[0].1.clone()
    } else {
        session_diag
    };
    event.jobs = if transient.is_empty() {
        jobs.iter().map(|(j, _)| j.clone()).collect()
    } else {
        transient.iter().map(|(j, _)| j.clone()).collect()
    };
    Some((diag, event))
}

/// Heal attempts already made when the stored plan was made: a session that executed its plan
/// counts that attempt in `heal_attempts`.
fn attempts_at_plan(s: &SessionRecord) -> u32 {
    let executed = matches!(
        s.status,
        SessionStatus::Executing
            | SessionStatus::Verifying
            | SessionStatus::Healed
            | SessionStatus::Failed
    );
    let n = s.heal_attempts.max(0) as u32;
    if executed {
        n.saturating_sub(1)
    } else {
        n
    }
}

fn backtest(mut sessions: Vec<SessionRecord>, policy: &Policy) -> Backtest {
    // Oldest first, so learning only sees outcomes that came before each session.
    sessions.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let mut stats: HashMap<(String, String), ArmStats> = HashMap::new();
    let mut changes = Vec::new();
    let mut decided = 0;
    for s in &sessions {
        let (Some(diagnosis), Some(plan)) = (&s.diagnosis, &s.plan) else {
            continue;
        };
        let old: HealPlan = plan.plan.clone();
        let Some((diag, event)) = planning_input(s, diagnosis) else {
            continue;
        };
        decided += 1;
        // Stored sessions do not record what the platform could do: a session that acted
        // with a strategy could do it; one escalated for lack of any means could not re-run.
        let mut caps = Capabilities {
            retry: !old.reason.contains("which this source cannot do"),
            ..Default::default()
        };
        match old.strategy {
            Strategy::ScaleResources => caps.scale_resources = true,
            Strategy::ClearCache => caps.clear_cache = true,
            Strategy::ResetEnvironment => caps.reset_environment = true,
            Strategy::HealHost => caps.heal_host = true,
            _ => {}
        }
        let mut new = policy.plan(&diag, &event, &caps, attempts_at_plan(s));
        if new.strategy.acts() {
            let key = (diag.fingerprint.clone(), new.strategy.as_str().to_string());
            let learned = Learned {
                fingerprint: stats.get(&key).copied().unwrap_or_default(),
                ..Default::default()
            };
            new = learning::apply(new, &learned);
        }
        let new_decision = name(&new.decision);
        if new_decision != name(&old.decision) || new.strategy != old.strategy {
            changes.push(Change {
                session_id: s.id.clone(),
                repository: s.repository.clone(),
                run_id: s.run_id.clone(),
                status: s.status.as_str().to_string(),
                category: diag.category.to_string(),
                old_decision: name(&old.decision),
                old_strategy: old.strategy.as_str().to_string(),
                new_decision,
                new_strategy: new.strategy.as_str().to_string(),
                reason: new.reason.clone(),
            });
        }
        if let (Some(fp), Some(st)) = (&s.fingerprint, &s.strategy) {
            let e = stats.entry((fp.clone(), st.clone())).or_default();
            match s.status {
                SessionStatus::Healed => e.healed += 1,
                SessionStatus::Failed => e.failed += 1,
                _ => {}
            }
        }
    }
    let mut totals: BTreeMap<(String, String), Total> = BTreeMap::new();
    for c in &changes {
        let t = totals
            .entry((c.old_decision.clone(), c.new_decision.clone()))
            .or_insert_with(|| Total {
                from: c.old_decision.clone(),
                to: c.new_decision.clone(),
                sessions: 0,
                healed: 0,
            });
        t.sessions += 1;
        t.healed += (c.status == "healed") as usize;
    }
    let mut totals: Vec<Total> = totals.into_values().collect();
    totals.sort_by_key(|t| std::cmp::Reverse(t.sessions));
    Backtest {
        sessions: sessions.len(),
        decided,
        changed: changes.len(),
        changes,
        totals,
    }
}

fn render(b: &Backtest) -> String {
    let mut out = String::new();
    if b.changes.is_empty() {
        out += &format!(
            "{} of {} decided sessions would change ({} sessions stored)\n",
            0, b.decided, b.sessions
        );
        return out;
    }
    out += &format!(
        "{:<38} {:<26} {:<10} {:<20} {:<26} {:<26} REASON\n",
        "SESSION", "REPOSITORY", "STATUS", "CATEGORY", "OLD", "NEW"
    );
    for c in &b.changes {
        out += &format!(
            "{:<38} {:<26} {:<10} {:<20} {:<26} {:<26} {}\n",
            c.session_id,
            c.repository,
            c.status,
            c.category,
            format!("{}/{}", c.old_decision, c.old_strategy),
            format!("{}/{}", c.new_decision, c.new_strategy),
            c.reason
        );
    }
    let parts: Vec<String> = b
        .totals
        .iter()
        .map(|t| {
            let healed = if t.healed > 0 {
                format!(" ({} of them had healed)", t.healed)
            } else {
                String::new()
            };
            format!("{} {}→{}{healed}", t.sessions, t.from, t.to)
        })
        .collect();
    out += &format!(
        "\n{} of {} decided sessions would change: {}\n",
        b.changed,
        b.decided,
        parts.join(", ")
    );
    out
}

pub fn run(args: CmdArgs) -> Result<ExitCode> {
    let policy = load_policy(&args.policy)?;
    // A SQLite file that does not exist would be created empty by `connect`: refuse instead.
    let url = super::db::existing_only(&args.database_url)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let sessions = rt.block_on(async {
        let store = Store::connect(&url).await?;
        let mut all = Vec::new();
        loop {
            let page = store.list_sessions(500, all.len() as i64).await?;
            let done = page.len() < 500;
            all.extend(page);
            if done {
                break;
            }
        }
        store.close().await;
        anyhow::Ok(all)
    })?;
    let b = backtest(sessions, &policy);
    match args.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&b)?),
        Format::Text => print!("{}", render(&b)),
    }
    Ok(ExitCode::SUCCESS)
}
