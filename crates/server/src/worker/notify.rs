//! Notifications: one message per interested channel when a session reaches a status people
//! must hear about, each a queued job retried while the channel is down.

use super::{load, JobError};
use crate::Shared;
use pipeguard_platforms::PlatformError;
use pipeguard_store::{now_ms, Job, Task};
use std::time::Duration;

/// Queues one message per interested channel when the session reached a status people
/// must hear about, once per status (the action record makes it idempotent).
pub(super) async fn queue(st: &Shared, id: &str) -> Result<(), pipeguard_store::StoreError> {
    let Some(s) = st.store.get_session(id).await? else {
        return Ok(());
    };
    // Observe mode tells people through the dashboard only.
    if s.status == pipeguard_store::SessionStatus::Observed {
        return Ok(());
    }
    let status = s.status.as_str();
    let told = told(st, id).await?;
    let channels: Vec<usize> = (0..st.config.notify.len())
        .filter(|&i| {
            let ch = &st.config.notify[i];
            let follows = crate::notify::platform::follows(&ch.kind)
                && told.iter().any(|t| ch.wants(t, &s.repository));
            (ch.wants(status, &s.repository) || follows) && crate::notify::platform::applies(ch, &s)
        })
        .collect();
    if channels.is_empty()
        || !st
            .store
            .claim_action(id, 0, &format!("notify:{status}"), "notify")
            .await?
    {
        return Ok(());
    }
    for i in channels {
        if let Err(e) = st
            .store
            .enqueue(
                id,
                &Task::Notify {
                    channel: i,
                    status: status.to_string(),
                },
                now_ms(),
            )
            .await
        {
            // Let the next job queue them again rather than lose them.
            st.store
                .release_action(id, 0, &format!("notify:{status}"))
                .await?;
            return Err(e);
        }
    }
    st.store
        .finish_action(id, 0, &format!("notify:{status}"), "done", "queued")
        .await?;
    Ok(())
}

/// The statuses the session's channels were already told about (none asked when no channel
/// follows its sessions).
async fn told(st: &Shared, id: &str) -> Result<Vec<String>, pipeguard_store::StoreError> {
    let kinds = st.config.notify.iter().map(|c| c.kind.as_str());
    if !kinds.clone().any(crate::notify::platform::follows) {
        return Ok(vec![]);
    }
    let actions = st.store.actions(id).await?;
    Ok(actions
        .into_iter()
        .filter_map(|a| a.target.strip_prefix("notify:").map(String::from))
        .collect())
}

pub(super) async fn send(
    st: &Shared,
    job: &Job,
    channel: usize,
    status: &str,
) -> Result<(), JobError> {
    let s = load(st, &job.session_id).await?;
    let Some(ch) = st.config.notify.get(channel) else {
        return Ok(());
    };
    let sent = if crate::notify::platform::platform_of(&ch.kind).is_some() {
        let http = st.registry.http();
        crate::notify::platform::send(&st.config, http, ch, &s, status).await
    } else {
        st.notifier.send(ch, &s, status).await
    };
    sent.map_err(later_or_fatal)?;
    tracing::info!(session = %s.id, channel = %ch.kind, "notified");
    Ok(())
}

/// An incident's one message to one channel.
pub(super) async fn send_incident(
    st: &Shared,
    channel: usize,
    incident: i64,
    closed: bool,
) -> Result<(), JobError> {
    let Some(ch) = st.config.notify.get(channel) else {
        return Ok(());
    };
    let window = st.config.incidents.window_minutes as i64 * 60_000;
    let Some(i) = st
        .store
        .list_incidents(Some(incident), 1, window)
        .await?
        .pop()
    else {
        return Ok(());
    };
    let body = serde_json::json!(crate::routes::incidents::Incident::of(&i));
    st.notifier
        .send_incident(ch, &body, closed)
        .await
        .map_err(later_or_fatal)?;
    tracing::info!(incident, channel = %ch.kind, closed, "incident notified");
    Ok(())
}

/// A quarantine's end to one channel.
pub(super) async fn send_quarantine(
    st: &Shared,
    channel: usize,
    notice: &crate::notify::QuarantineNotice<'_>,
) -> Result<(), JobError> {
    let Some(ch) = st.config.notify.get(channel) else {
        return Ok(());
    };
    st.notifier
        .send_quarantine(ch, notice)
        .await
        .map_err(later_or_fatal)?;
    tracing::info!(test = %notice.test, channel = %ch.kind, "quarantine notice sent");
    Ok(())
}

pub(super) fn later_or_fatal(e: PlatformError) -> JobError {
    match e {
        PlatformError::Transient(m) => JobError::Later(m, Duration::from_secs(30)),
        PlatformError::Busy {
            message,
            retry_after,
        } => JobError::Later(message, retry_after),
        other => JobError::Fatal(other.to_string()),
    }
}
