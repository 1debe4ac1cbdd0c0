//! The healing worker: takes jobs from the durable queue and moves sessions through
//! analyze → plan → gate → act → verify. Every step is idempotent, because a job whose worker
//! died is taken again.

mod analyze;
pub mod baseline;
mod decisions;
mod execute;
mod explain;
mod fixes;
mod hostloop;
mod incidents;
mod notify;
mod outcome;
pub mod past;

pub(crate) use incidents::closed_by_hand;

use crate::Shared;
use pipeguard_core::event::Platform;
use pipeguard_core::lifecycle::Event;
use pipeguard_core::planner::{Facts, Happened, Known};
use pipeguard_platforms::{Ci, PlatformError};
use pipeguard_store::{now_ms, Job, SessionRecord, SessionUpdate, Task, Transition};
use std::time::Duration;
use tokio::sync::watch;
use tracing::Instrument;

/// Why a job did not finish.
enum JobError {
    /// Try again later (platform 5xx, rate limits, timeouts, run still in progress).
    Later(String, Duration),
    /// The session cannot go on; it is marked with the reason.
    Fatal(String),
}

impl From<pipeguard_store::StoreError> for JobError {
    fn from(e: pipeguard_store::StoreError) -> Self {
        JobError::Later(format!("store: {e}"), Duration::from_secs(5))
    }
}

impl From<PlatformError> for JobError {
    fn from(e: PlatformError) -> Self {
        match e {
            PlatformError::Transient(m) => JobError::Later(m, Duration::from_secs(10)),
            PlatformError::Busy {
                message,
                retry_after,
            } => JobError::Later(message, retry_after),
            other => JobError::Fatal(other.to_string()),
        }
    }
}

/// How often housekeeping runs (lapsed approvals, sealing the audit trail, retention).
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// How often retention purges old payloads.
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Jobs in flight, by platform.
struct InFlight {
    set: tokio::task::JoinSet<String>,
    by_platform: std::collections::HashMap<String, usize>,
}

impl InFlight {
    fn done(&mut self, platform: &str) {
        if let Some(n) = self.by_platform.get_mut(platform) {
            *n = n.saturating_sub(1);
        }
    }

    /// Platforms at their limit: their jobs wait so the others keep moving.
    fn busy(&self, limit: usize) -> Vec<String> {
        self.by_platform
            .iter()
            .filter(|(_, n)| **n >= limit.max(1))
            .map(|(p, _)| p.clone())
            .collect()
    }
}

/// Runs jobs from the queue, up to `[worker] concurrency` at a time and `per_platform` of one
/// platform, until shutdown; then waits for the jobs in flight.
pub async fn run(st: Shared, mut shutdown: watch::Receiver<bool>) {
    let lease = st.config.worker.lease_seconds as i64 * 1000;
    let concurrency = st.config.worker.concurrency.max(1);
    let mut housekept = std::time::Instant::now() - HOUSEKEEPING;
    let mut purged: Option<std::time::Instant> = None;
    let mut flight = InFlight {
        set: tokio::task::JoinSet::new(),
        by_platform: Default::default(),
    };
    loop {
        while let Some(done) = flight.set.try_join_next() {
            flight.done(&done.unwrap_or_default());
        }
        if *shutdown.borrow() {
            break;
        }
        if housekept.elapsed() >= HOUSEKEEPING {
            housekept = std::time::Instant::now();
            housekeeping(&st).await;
            if purged.is_none_or(|t| t.elapsed() >= RETENTION_EVERY) {
                purged = Some(std::time::Instant::now());
                retention(&st).await;
            }
        }
        let job = if flight.set.len() >= concurrency {
            None
        } else {
            let busy = flight.busy(st.config.worker.per_platform);
            st.store
                .claim(lease, &busy)
                .await
                .inspect_err(|e| tracing::error!("cannot claim work: {e}"))
                .ok()
                .flatten()
        };
        let Some(job) = job else {
            idle(&st, &mut flight, &mut shutdown).await;
            continue;
        };
        *flight.by_platform.entry(job.platform.clone()).or_default() += 1;
        flight.set.spawn(supervised(st.clone(), job));
    }
    while let Some(done) = flight.set.join_next().await {
        flight.done(&done.unwrap_or_default());
    }
}

/// Waits for the next due job, a wake-up from intake, a job in flight to finish, or shutdown.
async fn idle(st: &Shared, flight: &mut InFlight, shutdown: &mut watch::Receiver<bool>) {
    let wait = match st.store.next_due().await {
        Ok(Some(t)) => (t - now_ms()).clamp(10, 1000) as u64,
        _ => 1000,
    };
    tokio::select! {
        _ = tokio::time::sleep(Duration::from_millis(wait)) => {},
        _ = st.worker_wake.notified() => {},
        _ = shutdown.changed() => {},
        Some(done) = flight.set.join_next() => flight.done(&done.unwrap_or_default()),
    }
}

/// Runs one job; a panic in it (a bug) fails that job only, never the worker.
async fn supervised(st: Shared, job: Job) -> String {
    let (id, session, platform) = (job.id, job.session_id.clone(), job.platform.clone());
    let span = tracing::info_span!("job", id, kind = job.task.kind(), session = %session);
    if let Err(e) = tokio::spawn(handle(st.clone(), job).instrument(span)).await {
        tracing::error!(job = id, session = %session, "job panicked: {e}");
        let _ = st
            .store
            .fail_job(id, "internal error: the job panicked")
            .await;
    }
    platform
}

async fn housekeeping(st: &Shared) {
    match crate::approvals::expire(st).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(sessions = n, "escalated plans whose approval lapsed"),
        Err(e) => tracing::warn!("cannot expire approvals: {e}"),
    }
    crate::quarantine::expire(st).await;
    if let Err(e) = st.store.seal_audit().await {
        tracing::error!("cannot seal the audit trail: {e}");
    }
    incidents::tick(st).await;
}

/// `[retention] days`: payloads, logs and evidence of sessions closed longer ago go.
async fn retention(st: &Shared) {
    let days = st.config.retention.days;
    if days == 0 {
        return;
    }
    let filter = pipeguard_store::PurgeFilter {
        finished_before_ms: Some(now_ms() - days as i64 * 86_400_000),
        repository: None,
    };
    match st.store.purge(&filter, "retention").await {
        Ok(r) if r.sessions > 0 => {
            tracing::info!(sessions = r.sessions, "retention purged old payloads")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!("retention purge failed: {e}"),
    }
}

async fn dispatch(st: &Shared, job: &Job) -> Result<(), JobError> {
    match &job.task {
        Task::Analyze => analyze::analyze(st, job).await,
        Task::Execute { .. } => execute::execute(st, job).await,
        Task::Outcome {
            attempt,
            success,
            finished_at_ms,
            event,
        } => {
            let event = event.as_deref().cloned();
            outcome::outcome(
                st,
                &job.session_id,
                *attempt,
                *success,
                *finished_at_ms,
                event,
            )
            .await
        }
        Task::Verify => outcome::verify(st, job).await,
        Task::HostStep { step } => hostloop::step(st, &job.session_id, *step).await,
        Task::Notify { channel, status } => notify::send(st, job, *channel, status).await,
        Task::PassedLater {
            attempt,
            finished_at_ms,
        } => outcome::passed_later(st, job, *attempt, *finished_at_ms).await,
        Task::Rerun {
            attempt,
            success,
            at_ms,
        } => decisions::rerun(st, job, *attempt, *success, *at_ms).await,
        Task::NotifyIncident {
            channel,
            incident,
            closed,
        } => notify::send_incident(st, *channel, *incident, *closed).await,
        Task::FileTicket { repository, test } => {
            crate::quarantine::file_ticket_job(st, repository, test)
                .await
                .map_err(notify::later_or_fatal)
        }
        Task::CloseTicket {
            repository,
            ticket_id,
            ticket_url,
            comment,
            ..
        } => {
            let ticket = pipeguard_platforms::Ticket {
                id: ticket_id.clone(),
                url: ticket_url.clone(),
            };
            crate::quarantine::close_ticket_job(st, repository, &ticket, comment)
                .await
                .map_err(notify::later_or_fatal)
        }
        Task::NotifyQuarantine {
            channel,
            repository,
            test,
            owner,
            ticket_url,
            why,
        } => {
            let notice = crate::notify::QuarantineNotice {
                repository,
                test,
                owner,
                ticket_url: ticket_url.as_deref(),
                why,
            };
            notify::send_quarantine(st, *channel, &notice).await
        }
    }
}

async fn handle(st: Shared, job: Job) {
    let st = &st;
    // Notices and a quarantine's jobs have no session of theirs to fail or to tell about.
    let notify_job = matches!(job.task, Task::Notify { .. } | Task::NotifyIncident { .. })
        || job.task.sessionless();
    let done = match dispatch(st, &job).await {
        Ok(()) => st.store.finish_job(job.id).await,
        Err(JobError::Later(msg, delay)) if job.tries < st.config.worker.max_job_tries as i64 => {
            tracing::warn!(error = ?msg, ?delay, "job failed; trying again");
            st.store
                .retry_job(job.id, &msg, now_ms() + delay.as_millis() as i64)
                .await
        }
        // A channel that stays down loses that message; the session is not at fault.
        Err(JobError::Later(msg, _)) | Err(JobError::Fatal(msg)) if notify_job => {
            tracing::error!(error = ?msg, "notification failed");
            st.store.fail_job(job.id, &msg).await
        }
        Err(JobError::Later(msg, _)) | Err(JobError::Fatal(msg)) => {
            tracing::error!(task = job.task.kind(), error = ?msg, "job failed");
            let reason = format!("{}: {msg}", job.task.kind());
            let _ = close(st, &job.session_id, Event::Fail, &reason).await;
            st.store.fail_job(job.id, &msg).await
        }
    };
    if let Err(e) = done {
        tracing::error!("cannot record job {}: {e}", job.id);
    }
    if !notify_job && !st.config.notify.is_empty() {
        if let Err(e) = notify::queue(st, &job.session_id).await {
            tracing::error!("cannot queue notifications: {e}");
        }
    }
}

fn platform_of(s: &SessionRecord) -> Platform {
    Platform::parse(&s.platform).unwrap_or(Platform::Generic)
}

fn ci_for<'a>(st: &'a Shared, s: &SessionRecord) -> Option<&'a dyn Ci> {
    st.ci(Platform::parse(&s.platform)?, &s.repository)
}

async fn load(st: &Shared, id: &str) -> Result<SessionRecord, JobError> {
    st.store
        .get_session(id)
        .await?
        .ok_or_else(|| JobError::Fatal(format!("session {id} vanished")))
}

/// Ends a session by `event` (escalated, failed) with `reason`, storing the plan it ends
/// with when there is one.
async fn close_with(
    st: &Shared,
    s: &SessionRecord,
    event: Event,
    reason: &str,
    plan: Option<pipeguard_core::heal::StoredPlan>,
) -> Result<bool, JobError> {
    Ok(st
        .store
        .update_session(
            &s.id,
            Transition::new(event, reason),
            SessionUpdate {
                reason: Some(reason.to_string()),
                finished_at: Some(now_ms()),
                plan,
                ..Default::default()
            },
        )
        .await?)
}

/// Ends a session by `event` with `reason`, when the state machine allows it from where it is.
async fn close(st: &Shared, id: &str, event: Event, reason: &str) -> Result<bool, JobError> {
    let t = Transition::new(event, reason);
    let u = SessionUpdate {
        reason: Some(reason.to_string()),
        finished_at: Some(now_ms()),
        ..Default::default()
    };
    Ok(st.store.update_session(id, t, u).await?)
}

/// The facts of session `s` for `happened`; `known` is what the plan was made from.
pub(crate) fn facts<'a>(
    st: &'a Shared,
    s: &'a SessionRecord,
    happened: Happened<'a>,
    known: Known,
) -> Facts<'a> {
    Facts {
        status: s.status,
        happened,
        event: &s.event,
        policy: st.policy_for(platform_of(s), &s.repository),
        attempts_done: s.heal_attempts.max(0) as u32,
        plan: s.plan.as_ref(),
        known,
    }
}

/// What a plan for `jobs` of session `s` is made from now (a re-run someone asked for).
pub(crate) async fn known_for(
    st: &Shared,
    s: &SessionRecord,
    jobs: &[pipeguard_core::heal::JobDiagnosis],
) -> Result<Known, String> {
    match analyze::gather(st, s, ci_for(st, s), jobs, None, true).await {
        Ok(k) => Ok(k),
        Err(JobError::Later(m, _) | JobError::Fatal(m)) => Err(m),
    }
}

/// What the plan was made from, with how the platform carries strategies out now.
fn known_after(st: &Shared, s: &SessionRecord, ci: Option<&dyn Ci>) -> Known {
    let mut k = s
        .plan
        .as_ref()
        .and_then(|p| p.facts.clone())
        .unwrap_or_default();
    if let Some(ci) = ci {
        k.platform = fixes::traits(st, s, ci);
    }
    k
}

/// Runs the job's task again after `after`, as a fresh job so that waiting does not use up
/// the tries meant for errors.
async fn requeue(st: &Shared, job: &Job, why: &str, after: Duration) -> Result<(), JobError> {
    st.store
        .enqueue(
            &job.session_id,
            &job.task,
            now_ms() + after.as_millis() as i64,
        )
        .await?;
    tracing::debug!("{why}");
    Ok(())
}
