//! The host loop on the server (`[ansible] host_loop`): a report from the callback plugin
//! about a host the server may reach runs the model's proposal on that host through Ansible
//! ad-hoc. What runs next comes from `pipeguard_ansible::hostloop::next` (pure); this module
//! performs it, moves the session, and puts every command on the timeline and in the audit
//! trail. Medium fixes wait in `awaiting_approval`; the approval's execute job resumes here.

use super::{load, JobError};
use crate::adhoc::{tail, Adhoc};
use crate::Shared;
use pipeguard_ansible::hostloop::{
    fingerprint, next, Diagnosis, HostReport, LearnedFix, Next, Outcome, Proposal, Purpose, Ran,
};
use pipeguard_ansible::HostFacts;
use pipeguard_core::heal::JobDiagnosis;
use pipeguard_core::lifecycle::Event;
use pipeguard_core::safety::{assess_script, risk_name};
use pipeguard_llm::Explanation;
use pipeguard_store::{
    now_ms, AuditEntry, SessionRecord, SessionStatus as S, SessionUpdate, Transition,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::PathBuf;

/// What the session keeps of the loop, under `diagnosis.host_loop`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct State {
    host: String,
    fingerprint: String,
    proposal: Proposal,
    report: HostReport,
    /// A person approved the medium-risk fixes.
    pub(super) approved: bool,
}

/// The loop's state for a session the loop may handle: an Ansible report about a host the
/// configuration lets the server reach, and a model that proposed commands.
pub(super) fn proposal(
    st: &Shared,
    s: &SessionRecord,
    jobs: &[JobDiagnosis],
    e: Option<&Explanation>,
) -> Option<State> {
    let host = s.event.target_hosts.first()?;
    if s.platform != "ansible" || !st.config.ansible.reaches(host) {
        return None;
    }
    let (e, job) = (e.filter(|e| e.is_usable())?, jobs.first()?);
    let a = e.answer.as_ref()?;
    let of = |p| -> Vec<String> {
        e.commands
            .iter()
            .filter(|c| c.purpose == p)
            .map(|c| c.command.clone())
            .collect()
    };
    use pipeguard_llm::Purpose as P;
    let fp = fingerprint(
        &job.job.name,
        job.job.stage.as_deref().unwrap_or(""),
        &job.diagnosis.category.to_string(),
    );
    let report = HostReport {
        task: job.job.name.clone(),
        diagnosis: Diagnosis {
            category: a.category.to_string(),
            source: "model".into(),
            reason: a.root_cause.clone(),
            fingerprint: fp.clone(),
        },
        ..HostReport::default()
    };
    Some(State {
        host: host.clone(),
        fingerprint: fp,
        proposal: Proposal {
            diagnostics: of(P::Diagnostic),
            fixes: of(P::Fix),
            verification: of(P::Verify),
            rollback: of(P::Rollback),
        },
        report,
        approved: false,
    })
}

/// The loop's state stored in a session, when it has one.
pub(super) fn stored(s: &SessionRecord) -> Option<State> {
    let v = s.diagnosis.as_ref()?.get("host_loop")?;
    serde_json::from_value(v.clone()).ok()
}

/// Starts the loop on an analyzed session: stores the diagnosis with the loop's state.
pub(super) async fn begin(
    st: &Shared,
    s: &SessionRecord,
    mut diagnosis: Value,
    state: State,
) -> Result<(), JobError> {
    diagnosis["host_loop"] = json!(state);
    let why = format!(
        "host loop on {}: {}",
        state.host, state.report.diagnosis.reason
    );
    let u = SessionUpdate {
        category: Some(state.report.diagnosis.category.clone()),
        fingerprint: Some(state.fingerprint.clone()),
        diagnosis: Some(diagnosis),
        ..Default::default()
    };
    st.store
        .update_session(&s.id, Transition::new(Event::Amend(S::Analyzing), &why), u)
        .await?;
    drive(st, &s.id, state).await
}

/// Performs the loop's steps until it heals, escalates or waits for people.
pub(super) async fn drive(st: &Shared, id: &str, mut state: State) -> Result<(), JobError> {
    let facts = HostFacts::default();
    loop {
        let s = load(st, id).await?;
        match next(&state.proposal, &facts, &state.report, state.approved) {
            Next::Run(p, c) => {
                let s = enter(st, s, p).await?;
                let ran = run(st, &state.host, &c).await;
                record(st, &s, &mut state, p, ran).await?;
            }
            Next::Skip(p, c, note) => {
                let ran = Ran {
                    risk: risk_name(assess_script(&c).level).into(),
                    command: c,
                    note,
                    ..Ran::default()
                };
                record(st, &s, &mut state, p, ran).await?;
            }
            Next::AskApproval(medium) => {
                let why = format!(
                    "medium-risk fix on {} waits for approval: {}",
                    state.host,
                    medium.join("; ")
                );
                return finish(st, &s, Event::AskApproval, &why, state, false).await;
            }
            Next::Healed => {
                state.report.outcome = Outcome::Healed;
                learn(st, &state).await;
                let why = format!("{} healed: fixed and verified on the host", state.host);
                return finish(st, &s, Event::Heal, &why, state, true).await;
            }
            Next::Escalate(why) => {
                state.report.outcome = Outcome::Escalated;
                state.report.reason = why.clone();
                let event = match s.status {
                    S::Analyzing => Event::EscalatePlan,
                    _ => Event::EscalateCall,
                };
                let why = format!("{}: {why}", state.host);
                return finish(st, &s, event, &why, state, true).await;
            }
        }
    }
}

/// Moves the session to where a command of `p` runs: fixes while executing, the
/// verification while verifying.
async fn enter(st: &Shared, s: SessionRecord, p: Purpose) -> Result<SessionRecord, JobError> {
    let moves: &[Event] = match (p, s.status) {
        (Purpose::Fix, S::Analyzing) => &[Event::Plan, Event::Start],
        (Purpose::Fix, S::Planned) => &[Event::Start],
        (Purpose::Verify, S::Executing) => &[Event::Verify],
        _ => &[],
    };
    for e in moves {
        let t = Transition::new(*e, "host loop: running on the host");
        st.store.transition(&s.id, t).await?;
    }
    load(st, &s.id).await
}

/// One command on the host (off the async threads: it waits for `ansible`).
async fn run(st: &Shared, host: &str, command: &str) -> Ran {
    let cfg = &st.config.ansible;
    let mut a = Adhoc::new(
        PathBuf::from(cfg.ansible.as_deref().unwrap_or("ansible")),
        cfg.inventory.clone(),
    );
    if let Some(m) = &st.analyst {
        a.redactor = m.redactor().clone();
    }
    let tree = std::env::temp_dir().join(format!(
        "pipeguard-adhoc-{}-{}",
        std::process::id(),
        now_ms()
    ));
    let (host2, c, become_) = (host.to_string(), command.to_string(), cfg.become_);
    let t = tree.clone();
    let done = tokio::task::spawn_blocking(move || a.run(&host2, &c, become_, &t)).await;
    let _ = std::fs::remove_dir_all(&tree);
    let (code, output) = match done {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => (127, format!("ansible could not be run: {e}")),
        Err(e) => (127, format!("ansible could not be run: {e}")),
    };
    Ran {
        command: command.to_string(),
        risk: risk_name(assess_script(command).level).into(),
        ran: true,
        exit_code: Some(code),
        output,
        note: String::new(),
    }
}

/// Adds a command to the host's report, the timeline and the audit trail, in one update.
async fn record(
    st: &Shared,
    s: &SessionRecord,
    state: &mut State,
    p: Purpose,
    r: Ran,
) -> Result<(), JobError> {
    let what = match (r.ran, r.exit_code) {
        (true, Some(c)) => format!("exit {c}: {}", tail(r.output.trim(), 300)),
        _ => format!("not run: {}", r.note),
    };
    let line = format!(
        "{} [{}] {}: {} — {what}",
        name(p),
        r.risk,
        state.host,
        r.command
    );
    let audit = AuditEntry::new(
        "worker",
        if r.ran {
            "command.run"
        } else {
            "command.refused"
        },
        &s.id,
        json!({"host": state.host, "purpose": name(p), "command": r.command, "risk": r.risk,
               "exit_code": r.exit_code, "output": tail(&r.output, 1000), "note": r.note}),
    );
    state.report.list(p).push(r);
    let u = SessionUpdate {
        diagnosis: Some(with_state(s, state)),
        audit: Some(audit),
        ..Default::default()
    };
    st.store
        .update_session(&s.id, Transition::new(Event::Amend(s.status), &line), u)
        .await?;
    Ok(())
}

/// Ends the loop's turn by `event`, keeping its state (and, when `closed`, the end time).
async fn finish(
    st: &Shared,
    s: &SessionRecord,
    event: Event,
    why: &str,
    state: State,
    closed: bool,
) -> Result<(), JobError> {
    let u = SessionUpdate {
        reason: Some(why.to_string()),
        diagnosis: Some(with_state(s, &state)),
        finished_at: closed.then(now_ms),
        audit: Some(AuditEntry::new(
            "worker",
            "host_loop.outcome",
            &s.id,
            json!({"host": state.host, "outcome": state.report.outcome, "reason": why}),
        )),
        ..Default::default()
    };
    st.store
        .update_session(&s.id, Transition::new(event, why), u)
        .await?;
    Ok(())
}

fn with_state(s: &SessionRecord, state: &State) -> Value {
    let mut d = s.diagnosis.clone().unwrap_or_else(|| json!({}));
    d["host_loop"] = json!(state);
    d
}

/// What healed goes to `host_fixes`, as the CLI's loop learns; a database problem never
/// fails the session.
async fn learn(st: &Shared, state: &State) {
    let fix = LearnedFix::from_report(&state.fingerprint, "", &state.report);
    let row = crate::adhoc::learned_row(fix, &state.host);
    if let Err(e) = st.store.record_host_fix(&row).await {
        tracing::warn!("the heal was not learned: {e}");
    }
}

fn name(p: Purpose) -> &'static str {
    pipeguard_ansible::hostloop::purpose_name(p)
}
