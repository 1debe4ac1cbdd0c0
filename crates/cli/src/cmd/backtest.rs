//! `pipeguard backtest`: re-decide the stored sessions with a candidate policy through the
//! worker's planner (`planner::replay`, from the facts each session recorded) and show what
//! would change, so a policy can be tried before it is enabled.

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use pipeguard_core::heal::StoredPlan;
use pipeguard_core::learning::{ArmStats, Learned};
use pipeguard_core::planner::{self, Known};
use pipeguard_core::policy::{Capabilities, Strategy};
use pipeguard_core::Policy;
use pipeguard_store::{SessionRecord, SessionStatus, Store};
use serde::Serialize;
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

/// Heal attempts already made when the stored plan was made, for sessions stored before plans
/// recorded it: a session that executed its plan counts that attempt in `heal_attempts`.
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

/// Outcomes of each (fingerprint, strategy) among the sessions before.
type Stats = HashMap<(String, String), ArmStats>;

/// The facts the worker planned with. Sessions stored before plans recorded them get what
/// the stored plan implies: a session that acted with a strategy could do it; one escalated
/// for lack of any means could not re-run; learning from the sessions before it.
fn known(s: &SessionRecord, old: &StoredPlan, fingerprint: &str, stats: &Stats) -> Known {
    if let Some(k) = &old.facts {
        return k.clone();
    }
    let mut caps = Capabilities {
        retry: !old.plan.reason.contains("which this source cannot do"),
        ..Default::default()
    };
    match old.plan.strategy {
        Strategy::ScaleResources => caps.scale_resources = true,
        Strategy::ClearCache => caps.clear_cache = true,
        Strategy::ResetEnvironment => caps.reset_environment = true,
        Strategy::HealHost => caps.heal_host = true,
        _ => {}
    }
    let learned = [
        Strategy::Retry,
        Strategy::ScaleResources,
        Strategy::ClearCache,
    ]
    .into_iter()
    .chain([Strategy::ResetEnvironment, Strategy::HealHost])
    .filter_map(|st| {
        let key = (fingerprint.to_string(), st.as_str().to_string());
        let fp = stats.get(&key).copied()?;
        Some((
            st,
            Learned {
                fingerprint: fp,
                ..Default::default()
            },
        ))
    })
    .collect();
    Known {
        capabilities: caps,
        learned,
        attempts_done: attempts_at_plan(s),
        ..Default::default()
    }
}

fn backtest(mut sessions: Vec<SessionRecord>, policy: &Policy) -> Backtest {
    // Oldest first, so learning only sees outcomes that came before each session.
    sessions.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
    let mut stats = Stats::new();
    let mut changes = Vec::new();
    let mut decided = 0;
    for s in &sessions {
        let Some(old) = &s.plan else { continue };
        let jobs = s.diagnosed_jobs();
        let Some(choice) = planner::choose(&jobs) else {
            continue;
        };
        let (category, fingerprint) = (choice.heal.category, choice.heal.fingerprint.clone());
        let k = known(s, old, &fingerprint, &stats);
        let Some(new) = planner::replay(&jobs, &s.event, &k, policy) else {
            continue;
        };
        decided += 1;
        let (old, new) = (&old.plan, &new.plan);
        let new_decision = name(&new.decision);
        if new_decision != name(&old.decision) || new.strategy != old.strategy {
            changes.push(Change {
                session_id: s.id.clone(),
                repository: s.repository.clone(),
                run_id: s.run_id.clone(),
                status: s.status.as_str().to_string(),
                category: category.to_string(),
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
                SessionStatus::Escalated if s.heal_attempts > 0 => e.failed += 1,
                _ => {}
            }
        }
    }
    Backtest {
        sessions: sessions.len(),
        decided,
        changed: changes.len(),
        totals: totals(&changes),
        changes,
    }
}

/// Changes counted by (old decision, new decision), most frequent first.
fn totals(changes: &[Change]) -> Vec<Total> {
    let mut totals: BTreeMap<(String, String), Total> = BTreeMap::new();
    for c in changes {
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
    totals
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
