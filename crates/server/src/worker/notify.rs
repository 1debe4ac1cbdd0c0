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
    let channels: Vec<usize> = (0..st.config.notify.len())
        .filter(|&i| {
            let ch = &st.config.notify[i];
            ch.wants(status, &s.repository) && crate::notify::platform::applies(ch, &s)
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
    sent.map_err(|e| match e {
        PlatformError::Transient(m) => JobError::Later(m, Duration::from_secs(30)),
        PlatformError::Busy {
            message,
            retry_after,
        } => JobError::Later(message, retry_after),
        other => JobError::Fatal(other.to_string()),
    })?;
    tracing::info!(session = %s.id, channel = %ch.kind, "notified");
    Ok(())
}
