//! The analyze job: fetch the failed jobs' logs → diagnose → gather what was learned →
//! refine and plan (pure, in core) → persist, and queue the execution.

use super::{ci_for, facts, load, requeue, JobError};
use crate::Shared;
use pipeguard_core::event::{FailedJob, FailureEvent};
use pipeguard_core::heal::{self, JobDiagnosis, Knowledge, StoredPlan};
use pipeguard_core::lifecycle::Event;
use pipeguard_core::planner::{self, Happened, Known, ModelVerdict, Next, Step};
use pipeguard_core::policy::{Capabilities, Decision, Strategy};
use pipeguard_core::Category;
use pipeguard_platforms::{Ci, JobLog, RunState};
use pipeguard_store::{
    now_ms, Job, SessionRecord, SessionStatus as S, SessionUpdate, Task, Transition,
};
use serde_json::{json, Value};
use std::time::Duration;
use tracing::Instrument;

pub(super) async fn analyze(st: &Shared, job: &Job) -> Result<(), JobError> {
    let s = load(st, &job.session_id).await?;
    if !matches!(s.status, S::Received | S::Analyzing) {
        return Ok(());
    }
    if s.status == S::Received {
        let t = Transition::new(Event::Take, "fetching logs");
        st.store.transition(&s.id, t).await?;
    }
    // Taken again after the host loop began: it goes on where it was, never from the start.
    if let Some(state) = super::hostloop::stored(&s) {
        return super::hostloop::drive(st, &s.id, state).await;
    }
    let s = SessionRecord {
        status: S::Analyzing,
        ..s
    };
    let ci = ci_for(st, &s);
    let logs = match fetch(st, &s, ci)
        .instrument(tracing::info_span!("fetch"))
        .await?
    {
        Logs::Wait => return requeue(st, job, "run still in progress", run_poll(st)).await,
        Logs::Early(log) => return early(st, job, &s, ci, log).await,
        Logs::Run(logs) => logs,
    };
    let kept = super::explain::keep_logs(st, &logs);
    let (mut jobs, marks) = super::baseline::diagnose(st, &s, logs)
        .instrument(tracing::info_span!("diagnose"))
        .await?;
    refine(st, &s, &mut jobs)
        .instrument(tracing::info_span!("refine"))
        .await;
    // The host loop's facts and the rules' verdict, before the analyst reads them.
    let host = super::hostloop::facts(st, &s).await;
    let kind = jobs.first().map(|j| j.diagnosis.category.to_string());
    let more = super::hostloop::context(st, &jobs, host.as_ref()).await;
    let explained = super::explain::consult(st, &s, &mut jobs, kept, more)
        .instrument(tracing::info_span!("explain"))
        .await;
    let e = explained.as_ref().map(|c| c.explanation());
    let loop_state = match (host, kind) {
        (Some(h), Some(kind)) => super::hostloop::proposal(st, &s, &jobs, &kind, e, h).await,
        _ => None,
    };
    if let Some(state) = loop_state {
        let mode = st.mode_for(super::platform_of(&s), &s.repository).await?;
        if mode == planner::Mode::Act {
            let mut d = json!({"jobs": jobs});
            if let Some(j) = jobs.first() {
                d = serde_json::to_value(&j.diagnosis).unwrap_or(d);
                d["jobs"] = json!(jobs);
            }
            super::explain::attach(&mut d, explained.as_ref());
            return super::hostloop::begin(st, &s, d, state).await;
        }
    }
    let model = super::explain::verdict(explained.as_ref());
    let known = gather(st, &s, ci, &jobs, model, true)
        .instrument(tracing::info_span!("gather"))
        .await?;
    let next = match planner::decide(&facts(st, &s, Happened::Diagnosed(&jobs), known)) {
        Ok(next) => next,
        Err(_) => return Ok(()),
    };
    persist(st, &s, &jobs, next, explained.as_ref(), &marks)
        .instrument(tracing::info_span!("persist"))
        .await
}

/// What the analysis can read now.
enum Logs {
    /// The run is still in progress: wait for it.
    Wait,
    /// One job failed while the others still run, on a platform that retries it meanwhile.
    Early(JobLog),
    /// The failed jobs of the run (or the log the delivery carried).
    Run(Vec<JobLog>),
}

/// The failed jobs' logs; while the run is still in progress, the failed job's own log where
/// the platform retries a job before its run completes, else nothing yet (re-runs are only
/// possible once the run is done).
async fn fetch(st: &Shared, s: &SessionRecord, ci: Option<&dyn Ci>) -> Result<Logs, JobError> {
    let ev = &s.event;
    match (ci, &ev.log) {
        (_, Some(log)) => Ok(Logs::Run(vec![JobLog {
            job: ev.jobs.first().cloned().unwrap_or_default(),
            log: log.clone().into_bytes(),
        }])),
        (Some(ci), None) => {
            if let RunState::InProgress { attempt } = ci.run_state(ev).await? {
                if attempt == ev.attempt {
                    if let Some(job) = early_job(ci, ev) {
                        return Ok(Logs::Early(ci.job_log(ev, job).await?));
                    }
                    // From when the session began following this run.
                    let waited = now_ms() - s.created_at.max(ev.started_at_ms.unwrap_or(0));
                    if waited > st.config.worker.wait_limit_seconds as i64 * 1000 {
                        return Err(JobError::Fatal("the run did not complete in time".into()));
                    }
                    return Ok(Logs::Wait);
                }
            }
            Ok(Logs::Run(ci.failed_logs(ev).await?))
        }
        (None, None) => Ok(Logs::Run(vec![])),
    }
}

/// The job a delivery reported failed, when the platform retries it while its run goes on.
fn early_job<'a>(ci: &dyn Ci, ev: &'a FailureEvent) -> Option<&'a FailedJob> {
    match ev.jobs.as_slice() {
        [job] if ev.job_event && ci.retries_jobs_while_running() && !job.id.is_empty() => Some(job),
        _ => None,
    }
}

/// Heals one job that failed while its run still runs: its log alone is diagnosed and a plain
/// retry of that job planned. Anything else (a genuine failure, an approval, another remedy)
/// waits for the run to complete, as every failure did before.
async fn early(
    st: &Shared,
    job: &Job,
    s: &SessionRecord,
    ci: Option<&dyn Ci>,
    log: JobLog,
) -> Result<(), JobError> {
    let (mut jobs, marks) = super::baseline::diagnose(st, s, vec![log]).await?;
    refine(st, s, &mut jobs).await;
    let Some(first) = jobs.first() else {
        let name = s
            .event
            .jobs
            .first()
            .map(|j| j.name.as_str())
            .unwrap_or_default();
        let msg = format!(
            "job {name} is not retried while the run goes on (no log); waiting for the run"
        );
        return wait_for_run(st, job, s, &msg).await;
    };
    let known = gather(st, s, ci, &jobs, None, true).await?;
    let next = match planner::decide(&facts(st, s, Happened::DiagnosedEarly(first), known)) {
        Ok(next) => next,
        Err(_) => return Ok(()),
    };
    if next.step == Step::WaitForRun {
        return wait_for_run(st, job, s, &next.reason).await;
    }
    persist(st, s, &jobs, next, None, &marks).await
}

/// Leaves the early path for good: the session waits for the run and plans over all its
/// failed jobs, without diagnosing this job again at each look.
async fn wait_for_run(
    st: &Shared,
    job: &Job,
    s: &SessionRecord,
    msg: &str,
) -> Result<(), JobError> {
    let mut ev = s.event.clone();
    ev.job_event = false;
    let update = SessionUpdate {
        event: Some(ev),
        ..Default::default()
    };
    let t = Transition::new(Event::Amend(S::Analyzing), msg);
    st.store.update_session(&s.id, t, update).await?;
    requeue(st, job, "run still in progress", run_poll(st)).await
}

/// How often a run in progress is looked at: as often as outcomes are polled, at most every
/// 15 seconds.
fn run_poll(st: &Shared) -> Duration {
    Duration::from_secs(st.config.worker.verify_poll_seconds.clamp(1, 15))
}

/// What people taught (verdicts, quarantine, flaky history) applied to each diagnosis. Errors
/// leave the diagnoses as the knowledge base made them: learning must never stop healing.
pub(super) async fn refine(st: &Shared, s: &SessionRecord, jobs: &mut [JobDiagnosis]) {
    let min_confidence = st.policy.min_confidence;
    let classifier = if jobs
        .iter()
        .any(|j| heal::unsure(&j.diagnosis, min_confidence))
    {
        crate::learned::trained(st)
            .await
            .inspect_err(|e| tracing::warn!("learned classifier unavailable: {e}"))
            .ok()
    } else {
        None
    };
    let tests: Vec<String> = jobs
        .iter()
        .flat_map(|j| j.diagnosis.failing_tests.iter().cloned())
        .collect();
    let records = crate::flaky::records(st, &s.repository, &tests)
        .await
        .inspect_err(|e| tracing::warn!("flaky-test history unavailable: {e}"))
        .unwrap_or_default();
    let knowledge = Knowledge {
        classifier: classifier.as_ref(),
        min_confidence,
        tests: &records,
    };
    for j in jobs.iter_mut() {
        heal::refine(&mut j.diagnosis, &knowledge);
    }
}

/// Everything the plan depends on besides the diagnoses: what the platform and the
/// configuration allow, what outcomes taught about the failure to heal, the configured fixes,
/// the model's verdict and, for a failure happening now (`live`; not one `import` replays),
/// the suspect runners the failed jobs ran on and the open incident of its cause.
pub(super) async fn gather(
    st: &Shared,
    s: &SessionRecord,
    ci: Option<&dyn Ci>,
    jobs: &[JobDiagnosis],
    model: Option<ModelVerdict>,
    live: bool,
) -> Result<Known, JobError> {
    let mode = st.mode_for(super::platform_of(s), &s.repository).await?;
    let Some(heal) = planner::choose(jobs).map(|c| c.heal) else {
        return Ok(Known {
            mode,
            ..Default::default()
        });
    };
    let learned = st
        .store
        .learned(
            &heal.fingerprint,
            &s.platform,
            &s.repository,
            &heal.category.to_string(),
        )
        .await?
        .into_iter()
        .filter_map(|(k, l)| Some((Strategy::parse(&k)?, l)))
        .collect();
    let (runners, incident) = if live {
        let runners = crate::runners::after_diagnosis(st, &s.event, ci, jobs)
            .instrument(tracing::info_span!("runners"))
            .await;
        (runners, super::incidents::on_diagnosis(st, s, jobs).await?)
    } else {
        (vec![], None)
    };
    Ok(Known {
        incident,
        capabilities: capabilities(st, s, ci).await?,
        learned,
        fixes: super::fixes::planned(st, s, heal.category),
        model,
        platform: ci
            .map(|ci| super::fixes::traits(st, s, ci))
            .unwrap_or_default(),
        mode,
        runners,
        ..Default::default()
    })
}

/// What can be done for this session: the platform's own abilities, widened by what the
/// repository's configuration maps (a bigger runner, a cache-key variable, a reset), less
/// what this run (or its commit) already had.
async fn capabilities(
    st: &Shared,
    s: &SessionRecord,
    ci: Option<&dyn Ci>,
) -> Result<Capabilities, JobError> {
    let mut caps = ci.map(|c| c.capabilities(&s.event)).unwrap_or_default();
    if let Some(ci) = ci {
        super::fixes::widen(st, s, ci, &mut caps);
    }
    let mut used: Vec<String> = st
        .store
        .actions(&s.id)
        .await?
        .into_iter()
        .filter(|a| a.target == "run" && a.status == "done")
        .map(|a| a.kind)
        .collect();
    // A run the heal started, or a sibling workflow of it, is the same commit: it must not
    // scale or clear again (that is how a heal could loop).
    if let Some(sha) = s.head_sha.as_deref().filter(|x| !x.is_empty()) {
        used.extend(
            st.store
                .strategies_used_on_commit(&s.platform, &s.repository, sha)
                .await?,
        );
    }
    caps.used = used.iter().filter_map(|k| Strategy::parse(k)).collect();
    Ok(caps)
}

/// Stores the diagnosis and the planner's decision, moves the session as it says, and queues
/// the execution after the plan's backoff.
async fn persist(
    st: &Shared,
    s: &SessionRecord,
    jobs: &[JobDiagnosis],
    next: Next,
    explained: Option<&super::explain::Consulted>,
    marks: &super::baseline::Marks,
) -> Result<(), JobError> {
    let stored = match &next.step {
        Step::Plan(stored) | Step::Close(Some(stored)) => stored,
        _ => return escalate_unknown(st, s, &next).await,
    };
    let plan = &stored.plan;
    let delay = plan
        .steps
        .iter()
        .map(|x| x.delay_seconds)
        .max()
        .unwrap_or(0);
    let update = planned_update(s, jobs, stored, &next, explained, marks);
    let diag = update.category.clone().unwrap_or_default();
    let t = Transition::new(next.event, &next.reason);
    let moved = st.store.update_session(&s.id, t, update).await?;
    tracing::info!(category = %diag, decision = ?plan.decision, reason = ?plan.reason, "planned");
    if moved {
        super::decisions::record(st, s, stored).await?;
    }
    crate::flaky::record_outcome(st, &s.id).await;
    let incident = stored.facts.as_ref().and_then(|k| k.incident.as_ref());
    if let Some(i) = incident.filter(|_| moved && next.status == S::Held) {
        super::incidents::held(st, s, i.id).await?;
    }
    if moved && next.status == S::Planned {
        let at = now_ms() + delay as i64 * 1000;
        let task = Task::Execute { approved: false };
        st.store.enqueue(&s.id, &task, at).await?;
    }
    Ok(())
}

/// What the session stores once planned: the diagnoses, the plan and its reason (for an
/// observed session, what would have happened).
pub(super) fn planned_update(
    s: &SessionRecord,
    jobs: &[JobDiagnosis],
    stored: &StoredPlan,
    next: &Next,
    explained: Option<&super::explain::Consulted>,
    marks: &super::baseline::Marks,
) -> SessionUpdate {
    let diag = &planner::choose(jobs)
        .expect("a run with a plan has a diagnosis")
        .run;
    let plan = &stored.plan;
    let mut diagnosis_json = serde_json::to_value(diag).unwrap_or(Value::Null);
    diagnosis_json["jobs"] = json!(jobs);
    super::explain::attach(&mut diagnosis_json, explained);
    super::baseline::attach(&mut diagnosis_json, marks);
    SessionUpdate {
        category: Some(diag.category.to_string()),
        confidence: Some(diag.confidence),
        fingerprint: Some(diag.fingerprint.clone()),
        // An escalation after a heal keeps the strategy that was tried, so learning counts
        // it against that strategy.
        strategy: (plan.decision != Decision::Escalate || s.heal_attempts == 0)
            .then(|| plan.strategy.as_str().to_string()),
        transient: Some(diag.transient),
        diagnosis: Some(diagnosis_json),
        // Observed: what would have happened is the session's reason; held: which incident
        // holds it.
        reason: Some(match next.status {
            S::Observed | S::Held => next.reason.clone(),
            _ => plan.reason.clone(),
        }),
        finished_at: next.status.is_terminal().then(now_ms),
        plan: Some(stored.clone()),
        audit: Some(pipeguard_store::AuditEntry::new(
            "pipeguard",
            "session.planned",
            &s.id,
            json!({"category": diag.category, "confidence": diag.confidence,
                   "fingerprint": diag.fingerprint, "decision": plan.decision,
                   "strategy": plan.strategy, "reason": plan.reason}),
        )),
        ..Default::default()
    }
}

/// What a session with no failed job or log stores: a person must look.
pub(super) fn unknown_update(reason: &str) -> SessionUpdate {
    SessionUpdate {
        reason: Some(reason.to_string()),
        category: Some(Category::Unknown.to_string()),
        finished_at: Some(now_ms()),
        ..Default::default()
    }
}

/// No failed job or log: a person must look (in observe mode, would have had to).
async fn escalate_unknown(st: &Shared, s: &SessionRecord, next: &Next) -> Result<(), JobError> {
    let update = unknown_update(&next.reason);
    let t = Transition::new(next.event, &next.reason);
    if st.store.update_session(&s.id, t, update).await? {
        super::decisions::withheld(st, s, next.status).await?;
    }
    Ok(())
}
