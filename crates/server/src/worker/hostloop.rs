//! The host loop on the server (`[ansible] host_loop`): a report from the callback plugin
//! about a host the server may reach runs the analyst's proposal (or, without a usable
//! answer, what healed the same failure on the same OS family before) on that host through
//! Ansible ad-hoc. What runs next, and which lifecycle event goes with it, come from
//! `pipeguard_ansible::hostloop` (pure); this module performs it. Each command is its own
//! queued job (`host_step`), so a crash or a lapsed lease takes up one step, and a step
//! recorded (or started) is never run again. Medium fixes wait in `awaiting_approval`; the
//! approval's execute job resumes here.

use super::{load, JobError};
use crate::adhoc::{tail, Adhoc};
use crate::Shared;
use pipeguard_ansible::hostloop::{
    ask_again, diagnostic_outputs, events, fingerprint, next, on_step, Diagnosis, HostReport, Next,
    Outcome, Proposal, Purpose, Ran, StepAction,
};
use pipeguard_ansible::HostFacts;
use pipeguard_core::heal::JobDiagnosis;
use pipeguard_core::lifecycle::Event;
use pipeguard_core::safety::{assess_script, risk_name};
use pipeguard_llm::Explanation;
use pipeguard_store::{
    now_ms, AuditEntry, SessionRecord, SessionStatus as S, SessionUpdate, Task, Transition,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::path::PathBuf;

/// What the session keeps of the loop, under `diagnosis.host_loop`. The host's facts are
/// in `report.facts`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct State {
    host: String,
    fingerprint: String,
    proposal: Proposal,
    report: HostReport,
    /// A person approved the medium-risk fixes.
    pub(super) approved: bool,
    /// The analyst was asked again with the diagnostics' output (once at most).
    #[serde(default)]
    asked_again: bool,
    /// The step last queued, and the step whose command began (see `on_step`).
    #[serde(default)]
    queued: Option<usize>,
    #[serde(default)]
    started: Option<usize>,
}

/// Whether the loop may handle this session: an Ansible report about a host the
/// configuration lets the server reach.
fn host_of<'a>(st: &Shared, s: &'a SessionRecord) -> Option<&'a String> {
    let host = s.event.target_hosts.first()?;
    (s.platform == "ansible" && st.config.ansible.reaches(host)).then_some(host)
}

/// The facts of the session's host, when the loop may handle it: those the callback plugin
/// reported, else what Ansible's setup module gathers now (read-only, bounded in time).
pub(super) async fn facts(st: &Shared, s: &SessionRecord) -> Option<HostFacts> {
    let host = host_of(st, s)?;
    if let Some(m) = &s.event.host_facts {
        return Some(HostFacts::from_map(m));
    }
    let (a, host) = (adhoc(st), host.clone());
    let tree = scratch();
    let t = tree.clone();
    let got = tokio::task::spawn_blocking(move || a.facts(&host, &t)).await;
    let _ = std::fs::remove_dir_all(&tree);
    match got {
        Ok(Ok(Some(f))) => Some(f),
        Ok(Ok(None)) | Ok(Err(_)) | Err(_) => {
            tracing::warn!("host facts could not be gathered; the loop goes on without them");
            Some(HostFacts::default())
        }
    }
}

/// What the analyst is told of the loop's host: its facts, and what healed the same failure
/// on its OS family before.
pub(super) async fn context(
    st: &Shared,
    jobs: &[JobDiagnosis],
    facts: Option<&HostFacts>,
) -> crate::analyst::More {
    let (Some(f), Some(job)) = (facts, jobs.first()) else {
        return Default::default();
    };
    let kind = job.diagnosis.category.to_string();
    let fp = fingerprint(&job.job.name, job.job.stage.as_deref().unwrap_or(""), &kind);
    let rows = st.store.list_host_fixes().await.unwrap_or_default();
    let os = f.os_family.clone().unwrap_or_default();
    crate::analyst::More {
        host: Some(crate::adhoc::analyst_facts(f)),
        offers: crate::adhoc::learned(rows).offers(&fp, &os),
        ..Default::default()
    }
}

/// The loop's state for a session it may handle: the analyst's usable answer, or else what
/// healed this failure on this OS family before (`diagnosis.source: "learned"`). `kind` is
/// the rules' verdict, before the analyst's reading replaced it: the failure is learned
/// under it, as the CLI learns.
pub(super) async fn proposal(
    st: &Shared,
    s: &SessionRecord,
    jobs: &[JobDiagnosis],
    kind: &str,
    e: Option<&Explanation>,
    facts: HostFacts,
) -> Option<State> {
    let (host, job) = (host_of(st, s)?, jobs.first()?);
    let fp = fingerprint(&job.job.name, job.job.stage.as_deref().unwrap_or(""), kind);
    let (proposal, diagnosis) = match e.filter(|e| e.is_usable()) {
        Some(e) => {
            let a = e.answer.as_ref()?;
            let d = Diagnosis {
                category: a.category.to_string(),
                source: "model".into(),
                reason: a.root_cause.clone(),
                fingerprint: fp.clone(),
            };
            (crate::adhoc::proposal(e), d)
        }
        None => learned(st, &fp, &facts).await?,
    };
    let report = HostReport {
        task: job.job.name.clone(),
        facts,
        diagnosis,
        ..HostReport::default()
    };
    Some(State {
        host: host.clone(),
        fingerprint: fp,
        proposal,
        report,
        ..State::default()
    })
}

/// What healed `fp` on the host's OS family before, replayed without an analyst: its fixes
/// and verification, gated and verified again (nothing learned to roll back with).
async fn learned(st: &Shared, fp: &str, facts: &HostFacts) -> Option<(Proposal, Diagnosis)> {
    let rows = st
        .store
        .list_host_fixes()
        .await
        .inspect_err(|e| tracing::warn!("learned heals unavailable: {e}"))
        .ok()?;
    let os = facts.os_family.clone().unwrap_or_default();
    let learned = crate::adhoc::learned(rows);
    let known = learned.replay(fp, &os)?;
    let d = Diagnosis {
        category: fp.rsplit('|').next().unwrap_or_default().to_string(),
        source: "learned".into(),
        reason: format!(
            "healed {} time(s) before on {os} hosts by [{}]",
            known.healed,
            known.fixes.join("; ")
        ),
        fingerprint: fp.to_string(),
    };
    let p = Proposal {
        diagnostics: vec![],
        fixes: known.fixes.clone(),
        verification: known.verification.clone(),
        rollback: vec![],
    };
    Some((p, d))
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
        "host loop on {} ({}; {}): {}",
        state.host,
        state.report.facts.summary(),
        state.report.diagnosis.source,
        state.report.diagnosis.reason
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

/// Takes the loop's steps that run nothing (the second round, skipped commands) until it
/// queues a command, heals, escalates or waits for people.
pub(super) async fn drive(st: &Shared, id: &str, mut state: State) -> Result<(), JobError> {
    loop {
        let s = load(st, id).await?;
        if s.status.is_terminal() {
            return Ok(());
        }
        if state.report.diagnosis.source == "model"
            && ask_again(&state.proposal, &state.report, state.asked_again)
        {
            second_round(st, &s, &mut state).await?;
            continue;
        }
        let step = next(
            &state.proposal,
            &state.report.facts,
            &state.report,
            state.approved,
        );
        let moves = events(&step, s.status);
        match step {
            Next::Run(p, c) => return queue(st, &s, state, p, &c, moves).await,
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
                return finish(st, &s, moves, &why, state, false).await;
            }
            Next::Healed => {
                state.report.outcome = Outcome::Healed;
                learn(st, &state).await;
                let why = format!("{} healed: fixed and verified on the host", state.host);
                return finish(st, &s, moves, &why, state, true).await;
            }
            Next::Escalate(why) => {
                state.report.outcome = Outcome::Escalated;
                state.report.reason = why.clone();
                let why = format!("{}: {why}", state.host);
                return finish(st, &s, moves, &why, state, true).await;
            }
        }
    }
}

/// Moves the session to where the command runs, and queues it as its own job in the same
/// transaction that records it queued.
async fn queue(
    st: &Shared,
    s: &SessionRecord,
    mut state: State,
    p: Purpose,
    c: &str,
    moves: &[Event],
) -> Result<(), JobError> {
    let line = format!("{} queued on {}: {c}", name(p), state.host);
    let (last, before) = match moves.split_last() {
        Some((last, before)) => (*last, before),
        None => (Event::Amend(s.status), &[][..]),
    };
    for e in before {
        st.store
            .transition(&s.id, Transition::new(*e, &line))
            .await?;
    }
    let step = state.report.done();
    state.queued = Some(step);
    let u = SessionUpdate {
        diagnosis: Some(with_state(s, &state)),
        enqueue: Some((Task::HostStep { step }, now_ms())),
        ..Default::default()
    };
    st.store
        .update_session(&s.id, Transition::new(last, &line), u)
        .await?;
    Ok(())
}

/// The `host_step` job: runs step number `n` unless it was recorded or began before.
pub(super) async fn step(st: &Shared, id: &str, n: usize) -> Result<(), JobError> {
    let s = load(st, id).await?;
    let Some(mut state) = stored(&s) else {
        return Ok(());
    };
    if s.status.is_terminal() || s.status == S::AwaitingApproval {
        return Ok(());
    }
    let action = on_step(n, state.report.done(), state.started, state.queued);
    let due = next(
        &state.proposal,
        &state.report.facts,
        &state.report,
        state.approved,
    );
    match (action, due) {
        (StepAction::Nothing, _) => return Ok(()),
        (StepAction::Interrupted, Next::Run(p, c)) => {
            let ran = Ran {
                risk: risk_name(assess_script(&c).level).into(),
                command: c,
                ran: true,
                note: "the worker stopped while it ran; not run again".into(),
                ..Ran::default()
            };
            record(st, &s, &mut state, p, ran).await?;
        }
        (StepAction::Run, Next::Run(p, c)) => {
            state.started = Some(n);
            let line = format!("{} running on {}: {c}", name(p), state.host);
            let u = SessionUpdate {
                diagnosis: Some(with_state(&s, &state)),
                ..Default::default()
            };
            let t = Transition::new(Event::Amend(s.status), &line);
            if !st.store.update_session(&s.id, t, u).await? {
                return Ok(());
            }
            let ran = run(st, &state.host, &c).await;
            let s = load(st, id).await?;
            // Another worker took the step over meanwhile (a lapsed lease): its record stands.
            let Some(mut state) = stored(&s).filter(|x| x.report.done() == n) else {
                tracing::warn!(step = n, "a host step was recorded by another worker");
                return Ok(());
            };
            record(st, &s, &mut state, p, ran).await?;
            return drive(st, id, state).await;
        }
        _ => {}
    }
    drive(st, id, state).await
}

/// The analyst's second round: its answer after reading the diagnostics' redacted output
/// replaces the first one's fixes, verification and rollback; an unusable one keeps them.
async fn second_round(st: &Shared, s: &SessionRecord, state: &mut State) -> Result<(), JobError> {
    state.asked_again = true;
    let first = crate::analyst::of_session(s);
    let job: Option<JobDiagnosis> = s
        .diagnosis
        .as_ref()
        .and_then(|d| d.pointer("/jobs/0"))
        .and_then(|j| serde_json::from_value(j.clone()).ok());
    let outputs = diagnostic_outputs(&state.report.diagnostics);
    let answered = match (&st.analyst, first, job) {
        (Some(m), Some(first), Some(j)) => {
            let more = crate::analyst::More {
                host: Some(crate::adhoc::analyst_facts(&state.report.facts)),
                diagnostics: outputs.clone(),
                fresh: true,
                ..Default::default()
            };
            let second =
                crate::analyst::ask_with(st, m, s, &j.diagnosis, Some(&j.job), vec![], more).await;
            crate::adhoc::second_round(&first, second)
        }
        _ => Err("no analyst or first answer to go on from".into()),
    };
    let line = match answered {
        Ok(e) => {
            let diagnostics = std::mem::take(&mut state.proposal.diagnostics);
            state.proposal = Proposal {
                diagnostics,
                ..crate::adhoc::proposal(&e)
            };
            if let Some(a) = &e.answer {
                state.report.diagnosis.category = a.category.to_string();
                state.report.diagnosis.reason = a.root_cause.clone();
            }
            format!(
                "second round on {}: the analyst read {} diagnostic output(s) and proposes fixes [{}]",
                state.host,
                outputs.len(),
                state.proposal.fixes.join("; ")
            )
        }
        Err(why) => format!(
            "second round on {}: no usable answer ({why}); the first answer stands",
            state.host
        ),
    };
    let u = SessionUpdate {
        diagnosis: Some(with_state(s, state)),
        audit: Some(AuditEntry::new(
            "worker",
            "host_loop.second_round",
            &s.id,
            json!({"host": state.host, "diagnostics": outputs.len(), "proposal": state.proposal}),
        )),
        ..Default::default()
    };
    st.store
        .update_session(&s.id, Transition::new(Event::Amend(s.status), &line), u)
        .await?;
    Ok(())
}

/// How the server reaches hosts.
fn adhoc(st: &Shared) -> Adhoc {
    let cfg = &st.config.ansible;
    let mut a = Adhoc::new(
        PathBuf::from(cfg.ansible.as_deref().unwrap_or("ansible")),
        cfg.inventory.clone(),
    );
    if let Some(m) = &st.analyst {
        a.redactor = m.redactor().clone();
    }
    a
}

/// A fresh directory for Ansible's `--tree` results.
fn scratch() -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    std::env::temp_dir().join(format!(
        "pipeguard-adhoc-{}-{}-{n}",
        std::process::id(),
        now_ms()
    ))
}

/// One command on the host (off the async threads: it waits for `ansible`).
async fn run(st: &Shared, host: &str, command: &str) -> Ran {
    let a = adhoc(st);
    let tree = scratch();
    let (host2, c, become_) = (
        host.to_string(),
        command.to_string(),
        st.config.ansible.become_,
    );
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
        (true, None) => format!("interrupted: {}", r.note),
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
        match (r.ran, r.exit_code) {
            (true, Some(_)) => "command.run",
            (true, None) => "command.interrupted",
            _ => "command.refused",
        },
        &s.id,
        json!({"host": state.host, "purpose": name(p), "command": r.command, "risk": r.risk,
               "exit_code": r.exit_code, "output": tail(&r.output, 1000), "note": r.note}),
    );
    state.report.list(p).push(r);
    state.started = None;
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

/// Ends the loop's turn by `moves` (one event), keeping its state (and, when `closed`,
/// the end time).
async fn finish(
    st: &Shared,
    s: &SessionRecord,
    moves: &[Event],
    why: &str,
    state: State,
    closed: bool,
) -> Result<(), JobError> {
    let Some(event) = moves.first() else {
        return Ok(());
    };
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
        .update_session(&s.id, Transition::new(*event, why), u)
        .await?;
    Ok(())
}

fn with_state(s: &SessionRecord, state: &State) -> Value {
    let mut d = s.diagnosis.clone().unwrap_or_else(|| json!({}));
    d["host_loop"] = json!(state);
    d
}

/// What healed goes to `host_fixes` under the host's OS family, as the CLI's loop learns;
/// a database problem never fails the session.
async fn learn(st: &Shared, state: &State) {
    let os = state.report.facts.os_family.clone().unwrap_or_default();
    let fix = pipeguard_ansible::hostloop::LearnedFix::from_report(
        &state.fingerprint,
        &os,
        &state.report,
    );
    let row = crate::adhoc::learned_row(fix, &state.host);
    if let Err(e) = st.store.record_host_fix(&row).await {
        tracing::warn!("the heal was not learned: {e}");
    }
}

fn name(p: Purpose) -> &'static str {
    pipeguard_ansible::hostloop::purpose_name(p)
}
