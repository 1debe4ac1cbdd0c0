//! Incidents on the worker's side: gathering the fact the planner holds sessions by (opening
//! the incident when enough repositories fail for one cause), and, every housekeeping tick,
//! moving each incident on: one canary at a time with backoff, closing when it is green,
//! the paced wave after, and giving up together. Which way a session moves is the planner's
//! (`Happened::Released`, `Happened::Abandoned`); this module picks who and when.

use super::{close_with, facts, known_after, load, JobError};
use crate::Shared;
use pipeguard_core::heal::JobDiagnosis;
use pipeguard_core::incident::{self, Open};
use pipeguard_core::planner::{self, Happened, Step};
use pipeguard_store::{
    now_ms, IncidentRecord, SessionRecord, SessionStatus as S, SessionUpdate, Task, Transition,
};

/// The open incident of the failure's cause, opening it when this failure makes enough
/// repositories within the window. `None` when the cause is no outage or none is open.
pub(super) async fn on_diagnosis(
    st: &Shared,
    s: &SessionRecord,
    jobs: &[JobDiagnosis],
) -> Result<Option<Open>, JobError> {
    let cfg = &st.config.incidents;
    if cfg.min_repositories == 0 {
        return Ok(None);
    }
    let Some(cause) = planner::choose(jobs).and_then(|c| incident::cause(c.heal)) else {
        return Ok(None);
    };
    let category = cause.category.to_string();
    st.store.set_cause(&s.id, &category, &cause.target).await?;
    let open = match st.store.open_incident_for(&category, &cause.target).await? {
        Some(open) => open,
        None => {
            let since = now_ms() - cfg.window_minutes as i64 * 60_000;
            let repos = st
                .store
                .cause_repositories(&category, &cause.target, since)
                .await?;
            if !incident::opens(repos as usize, cfg) {
                return Ok(None);
            }
            let quiet = (cfg.give_up_hours as i64 * 60).max(cfg.window_minutes as i64) * 60_000;
            if st
                .store
                .given_up_since(&category, &cause.target, now_ms() - quiet)
                .await?
            {
                return Ok(None);
            }
            let first = now_ms() + incident::canary_delay_seconds(0, cfg) as i64 * 1000;
            let (open, opened) = st
                .store
                .open_incident(&category, &cause.target, first)
                .await?;
            if opened {
                tracing::warn!(incident = open.id, %category, target = %cause.target, repositories = repos, "incident opened");
                announce(st, &s.id, open.id, false).await;
            }
            open
        }
    };
    Ok(Some(Open {
        id: open.id,
        target: open.target,
        canary: false,
    }))
}

/// The open incident of a planned session's recorded cause; the session may be its canary.
pub(super) async fn of_session(st: &Shared, s: &SessionRecord) -> Result<Option<Open>, JobError> {
    let (Some(category), Some(target)) = (&s.category, &s.target) else {
        return Ok(None);
    };
    let open = st.store.open_incident_for(category, target).await?;
    Ok(open.map(|i| Open {
        canary: i.canary_session.as_deref() == Some(s.id.as_str()),
        id: i.id,
        target: i.target,
    }))
}

/// Moves every incident that needs it one step on; errors wait for the next tick.
pub(super) async fn tick(st: &Shared) {
    let active = match st.store.active_incidents().await {
        Ok(a) => a,
        Err(e) => return tracing::warn!("cannot read incidents: {e}"),
    };
    for i in active {
        let id = i.id;
        if let Err(e) = step(st, i).await {
            let msg = match e {
                JobError::Later(m, _) | JobError::Fatal(m) => m,
            };
            tracing::warn!(incident = id, "incident step failed: {msg}");
        }
    }
}

async fn step(st: &Shared, i: IncidentRecord) -> Result<(), JobError> {
    let cfg = &st.config.incidents;
    if i.escalated_at.is_some() {
        return abandon(st, &i).await;
    }
    if i.closed_at.is_some() {
        return wave(st, &i).await;
    }
    let now = now_ms();
    if let Some(canary) = &i.canary_session {
        let status = load(st, canary).await?.status;
        match status {
            S::Healed => {
                if st.store.close_incident(i.id, "pipeguard").await? {
                    tracing::info!(incident = i.id, "canary green: incident closed");
                    announce(st, canary, i.id, true).await;
                }
                return Ok(());
            }
            // The probe failed (held again) or ended otherwise: the next one after backoff.
            S::Held | S::Escalated | S::Failed | S::Skipped => {
                let delay = incident::canary_delay_seconds(i.canaries.max(0) as u32, cfg);
                st.store
                    .canary_failed(i.id, now + delay as i64 * 1000)
                    .await?;
                return Ok(());
            }
            _ => return Ok(()),
        }
    }
    if now - i.opened_at > cfg.give_up_hours as i64 * 3_600_000 {
        if st.store.give_up_incident(i.id).await? {
            if let Some(first) = st.store.held_sessions(i.id, 1).await?.first() {
                announce(st, first, i.id, true).await;
            }
            return abandon(st, &i).await;
        }
        return Ok(());
    }
    if now < i.next_canary_at {
        return Ok(());
    }
    let Some(next) = st.store.canary_candidate(i.id).await? else {
        return Ok(());
    };
    if st.store.set_canary(i.id, &next).await? {
        release(st, &next, i.id, true).await?;
    }
    Ok(())
}

/// Releases held sessions of a closed incident, oldest first, at the configured pace and
/// within the healing budget left.
async fn wave(st: &Shared, i: &IncidentRecord) -> Result<(), JobError> {
    let cfg = &st.config.incidents;
    let held = st.store.held_sessions(i.id, i64::MAX).await?;
    let now = now_ms();
    let since = now - i.released_at.unwrap_or(0);
    let n = incident::release_now(held.len(), since, hour_budget(st).await?, cfg);
    let mut released = 0;
    for id in held.iter().take(n) {
        if release(st, id, i.id, false).await? {
            released += 1;
        }
    }
    if n > 0 {
        st.store.released(i.id, released, now).await?;
    }
    Ok(())
}

/// The global healing budget of the last hour; `None` without a limit.
async fn hour_budget(st: &Shared) -> Result<Option<incident::HourBudget>, JobError> {
    let limit = st.config.healing.budget_per_hour;
    if limit == 0 {
        return Ok(None);
    }
    let used = st.store.reruns_since(now_ms() - 3_600_000, None).await?;
    Ok(Some(incident::HourBudget { limit, used }))
}

/// The planner lets a held session go; its call is executed now. False when it had moved on.
async fn release(st: &Shared, id: &str, incident: i64, canary: bool) -> Result<bool, JobError> {
    let s = load(st, id).await?;
    let known = known_after(st, &s, None);
    let happened = Happened::Released { incident, canary };
    let Ok(next) = planner::decide(&facts(st, &s, happened, known)) else {
        return Ok(false);
    };
    let Step::Execute(plan) = next.step else {
        return Ok(false);
    };
    // A wave's plan carries its incident (the budget it is weighed against).
    let update = SessionUpdate {
        plan,
        ..Default::default()
    };
    let t = Transition::new(next.event, &next.reason);
    let moved = st.store.update_session(id, t, update).await?;
    if moved {
        let task = Task::Execute { approved: false };
        st.store.enqueue(id, &task, now_ms()).await?;
    }
    Ok(moved)
}

/// Escalates the held sessions of a given-up incident, together: the incident's one
/// notification speaks for them, so each session's own is marked sent.
async fn abandon(st: &Shared, i: &IncidentRecord) -> Result<(), JobError> {
    let hours = st.config.incidents.give_up_hours;
    for id in st.store.held_sessions(i.id, i64::MAX).await? {
        let s = load(st, &id).await?;
        let happened = Happened::Abandoned {
            incident: i.id,
            hours,
        };
        let Ok(next) = planner::decide(&facts(st, &s, happened, known_after(st, &s, None))) else {
            continue;
        };
        let key = format!("notify:{}", next.status.as_str());
        if st.store.claim_action(&id, 0, &key, "notify").await? {
            st.store
                .finish_action(&id, 0, &key, "done", "told by the incident")
                .await?;
        }
        close_with(st, &s, next.event, &next.reason, None).await?;
    }
    Ok(())
}

/// An operator closed the incident: its closing message goes as when a canary is green.
pub(crate) async fn closed_by_hand(st: &Shared, incident: i64) {
    match st.store.held_sessions(incident, 1).await {
        Ok(held) => {
            if let Some(first) = held.first() {
                announce(st, first, incident, true).await;
            }
        }
        Err(e) => tracing::error!(incident, "cannot announce the incident's close: {e}"),
    }
}

/// Queues the incident's one message to each channel that asked for incidents.
async fn announce(st: &Shared, session: &str, incident: i64, closed: bool) {
    for (channel, ch) in st.config.notify.iter().enumerate() {
        let platform = crate::notify::platform::platform_of(&ch.kind).is_some();
        if platform || !ch.on.iter().any(|o| o == "incident") {
            continue;
        }
        let task = Task::NotifyIncident {
            channel,
            incident,
            closed,
        };
        if let Err(e) = st.store.enqueue(session, &task, now_ms()).await {
            tracing::error!(incident, "cannot queue the incident's notification: {e}");
        }
    }
}

/// Marks a session held by its incident, after the planner held it.
pub(super) async fn held(st: &Shared, s: &SessionRecord, incident: i64) -> Result<(), JobError> {
    st.store.hold_in(&s.id, incident).await?;
    Ok(())
}

/// Holds a planned session whose call came due while its incident is open.
pub(super) async fn hold_due(
    st: &Shared,
    s: &SessionRecord,
    next: &planner::Next,
    incident: i64,
) -> Result<(), JobError> {
    let t = Transition::new(next.event, &next.reason);
    let update = SessionUpdate {
        reason: Some(next.reason.clone()),
        ..Default::default()
    };
    if st.store.update_session(&s.id, t, update).await? {
        held(st, s, incident).await?;
    }
    Ok(())
}
