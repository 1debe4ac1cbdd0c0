//! The quarantine lifecycle: a quarantined test always has an owner (given, from CODEOWNERS
//! for its file through the platform's API, the repository's `default_owner`, or whoever
//! quarantined it), an end date, and — with `[flaky] tickets` — an issue. It is released after
//! `[flaky] release_after_passes` first-attempt green runs in a row of the workflow it was seen
//! failing in (of any workflow of its repository while that is unknown; a failure of it starts
//! the count over), or at its end date, when it counts again and its owner is told. Releasing
//! closes its ticket. Errors of the platform never fail the quarantine: a ticket that cannot
//! be filed is stored as `ticket_error` and filed again from the durable queue; closing the
//! ticket and telling the owner are queued with the release itself, so a crash or a channel
//! that is down loses neither.

use crate::auth::Principal;
use crate::Shared;
use pipeguard_core::event::{FailureEvent, Platform};
use pipeguard_platforms::{Issue, PlatformError, Ticket};
use pipeguard_store::{
    now_ms, quarantine_key, NewQuarantine, QuarantineEntry, Task, QUARANTINE_DAYS,
};
use serde_json::json;

/// What someone asked to quarantine.
pub struct Request<'a> {
    pub repository: &'a str,
    pub test: &'a str,
    pub reason: &'a str,
    pub owner: Option<&'a str>,
    /// The test's file, to look its owner up in CODEOWNERS.
    pub file: Option<&'a str>,
    pub expires_in_days: Option<u32>,
}

/// Longest quarantine that can be asked for.
pub const MAX_DAYS: u32 = 365;

pub async fn quarantine(
    st: &Shared,
    r: &Request<'_>,
    who: &Principal,
) -> pipeguard_store::Result<QuarantineEntry> {
    let days = r.expires_in_days.map(i64::from).unwrap_or(QUARANTINE_DAYS);
    let owner = match r.owner.map(str::trim).filter(|o| !o.is_empty()) {
        Some(o) => o.to_string(),
        None => find_owner(st, r.repository, r.file)
            .await
            .unwrap_or_else(|| who.name.clone()),
    };
    let entry = st
        .store
        .quarantine_put(&NewQuarantine {
            repository: r.repository,
            test: r.test,
            reason: r.reason,
            owner: &owner,
            expires_at: now_ms() + days * 86_400_000,
        })
        .await?;
    let detail = json!({"test": r.test, "owner": owner, "expires_at": entry.expires_at,
                        "reason": r.reason});
    crate::audit::record(st, &who.name, "quarantine.added", r.repository, detail).await;
    if entry.ticket_id.is_none() {
        file_ticket(st, &entry).await;
    }
    Ok(st
        .store
        .quarantined(r.repository, r.test)
        .await?
        .unwrap_or(entry))
}

/// The platform the repository's CODEOWNERS and tickets live on: the one its `[[repos]]`
/// entry names, else the tickets' platform, else GitHub.
fn platform_of(st: &Shared, repository: &str) -> Platform {
    st.config
        .repos
        .iter()
        .find(|r| r.name.eq_ignore_ascii_case(repository))
        .and_then(|r| Platform::parse(&r.platform))
        .or(st.config.flaky.tickets.platform())
        .unwrap_or(Platform::Github)
}

fn repo_event(repository: &str) -> FailureEvent {
    FailureEvent {
        repository: repository.to_string(),
        ..Default::default()
    }
}

/// CODEOWNERS' first owner of `file`, else the repository's `default_owner`.
async fn find_owner(st: &Shared, repository: &str, file: Option<&str>) -> Option<String> {
    let platform = platform_of(st, repository);
    if let (Some(file), Some(ci)) = (file, st.ci(platform, repository)) {
        match ci.codeowners(&repo_event(repository)).await {
            Ok(Some(text)) => {
                if let Some(o) = pipeguard_core::codeowners::owners(&text, file)
                    .into_iter()
                    .next()
                {
                    return Some(o);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(repository, "cannot read CODEOWNERS: {e}"),
        }
    }
    st.repo(platform, repository)
        .and_then(|(_, r)| r.default_owner.clone())
        .filter(|o| !o.trim().is_empty())
}

/// The ticket's text: the evidence pipeguard has, the failure rate and the owner.
async fn issue(st: &Shared, e: &QuarantineEntry) -> Issue {
    let stats = st
        .store
        .tests_stats(&e.repository, std::slice::from_ref(&e.test))
        .await
        .unwrap_or_default();
    let rate = stats.first().map(|s| {
        format!(
            "Failed in {} of {} attempts including retries ({:.0} %); {} of {} failed runs passed on a re-run.",
            s.failed_attempts,
            s.runs_including_retries,
            s.attempt_failure_rate() * 100.0,
            s.flaky_failures,
            s.runs
        )
    });
    let expires = time::OffsetDateTime::from_unix_timestamp(e.expires_at / 1000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default();
    let body = format!(
        "`{}` is quarantined by pipeguard: its failures are re-run instead of failing the build.\n\n\
         - Reason: {}\n- Owner: {}\n- Failure rate: {}\n- Released after {} green runs in a row, \
         or on {expires}, whichever comes first.\n",
        e.test,
        if e.reason.is_empty() { "(none given)" } else { &e.reason },
        e.owner,
        rate.unwrap_or_else(|| "no failure recorded yet".into()),
        st.config.flaky.release_after_passes,
    );
    // Users can be assigned; a team or an address is mentioned in the body only.
    let assignees = e
        .owner
        .strip_prefix('@')
        .filter(|o| !o.contains('/'))
        .map(|o| vec![o.to_string()])
        .unwrap_or_default();
    Issue {
        title: format!("Flaky test quarantined: {}", e.test),
        body,
        labels: vec!["flaky-test".into()],
        assignees,
    }
}

/// Files the quarantine's ticket when `[flaky] tickets` names a platform. When the platform
/// fails, the quarantine keeps the reason as `ticket_error` and a queued job tries again.
async fn file_ticket(st: &Shared, e: &QuarantineEntry) {
    if let Err(err) = try_ticket(st, e).await {
        tracing::warn!(repository = %e.repository, test = %e.test, "cannot file the ticket: {err}");
        let why = err.to_string();
        let d = json!({"test": e.test, "error": why});
        crate::audit::record(
            st,
            "pipeguard",
            "quarantine.ticket_failed",
            &e.repository,
            d,
        )
        .await;
        let task = Task::FileTicket {
            repository: e.repository.clone(),
            test: e.test.clone(),
        };
        let key = quarantine_key(&e.repository, &e.test);
        let stored = async {
            st.store
                .quarantine_ticket_failed(&e.repository, &e.test, &why)
                .await?;
            st.store
                .enqueue(&key, &task, now_ms() + TICKET_RETRY_MS)
                .await
        };
        if let Err(err) = stored.await {
            tracing::error!(test = %e.test, "cannot queue the ticket again: {err}");
        }
    }
}

/// A failed ticket is filed again this long after.
const TICKET_RETRY_MS: i64 = 30_000;

async fn try_ticket(st: &Shared, e: &QuarantineEntry) -> Result<(), PlatformError> {
    let Some(platform) = st.config.flaky.tickets.platform() else {
        return Ok(());
    };
    let Some(ci) = st.ci(platform, &e.repository) else {
        tracing::warn!(repository = %e.repository, "[flaky] tickets = {platform} but {platform} is not configured");
        return Ok(());
    };
    let issue = issue(st, e).await;
    let Some(t) = ci.open_issue(&repo_event(&e.repository), &issue).await? else {
        return Ok(());
    };
    if let Err(err) = st
        .store
        .quarantine_ticket(&e.repository, &e.test, &t.id, &t.url)
        .await
    {
        tracing::error!("cannot store the ticket {}: {err}", t.url);
    }
    let d = json!({"test": e.test, "ticket_url": t.url});
    crate::audit::record(st, "pipeguard", "quarantine.ticket_filed", &e.repository, d).await;
    Ok(())
}

/// The queued job filing a ticket that failed before: nothing when the test was released or
/// got its ticket meanwhile.
pub(crate) async fn file_ticket_job(
    st: &Shared,
    repository: &str,
    test: &str,
) -> Result<(), PlatformError> {
    let entry = st
        .store
        .quarantined(repository, test)
        .await
        .map_err(|e| PlatformError::Transient(e.to_string()))?;
    match entry {
        Some(e) if e.ticket_id.is_none() => {
            let r = try_ticket(st, &e).await;
            if let Err(err) = &r {
                let _ = st
                    .store
                    .quarantine_ticket_failed(repository, test, &err.to_string())
                    .await;
            }
            r
        }
        _ => Ok(()),
    }
}

/// The queued job closing a released quarantine's ticket with a word to its owner.
pub(crate) async fn close_ticket_job(
    st: &Shared,
    repository: &str,
    ticket: &Ticket,
    comment: &str,
) -> Result<(), PlatformError> {
    let platform = st
        .config
        .flaky
        .tickets
        .platform()
        .unwrap_or_else(|| platform_of(st, repository));
    match st.ci(platform, repository) {
        Some(ci) => {
            ci.close_issue(&repo_event(repository), ticket, comment)
                .await
        }
        None => Ok(()),
    }
}

/// A first-attempt green run of `workflow` of `repository`: a pass of the quarantined tests
/// seen failing in that workflow (or in one unknown); those that passed enough times in a row
/// are released.
pub async fn passed(st: &Shared, repository: &str, workflow: Option<&str>) {
    let need = i64::from(st.config.flaky.release_after_passes);
    match st.store.quarantine_passed(repository, workflow).await {
        Ok(entries) => {
            for e in entries.into_iter().filter(|e| e.passes_since >= need) {
                let why = format!("passed {} green runs in a row", e.passes_since);
                release(st, &e, &why, false).await;
            }
        }
        Err(err) => tracing::warn!(repository, "quarantine passes not counted: {err}"),
    }
}

/// [`passed`], for a task of its own.
pub async fn passed_owned(st: Shared, repository: String, workflow: Option<String>) {
    passed(&st, &repository, workflow.as_deref()).await
}

/// Releases quarantines whose end date passed; their owners are told.
pub async fn expire(st: &Shared) {
    match st.store.quarantine_expired(now_ms()).await {
        Ok(entries) => {
            for e in entries {
                release(
                    st,
                    &e,
                    "its quarantine expired; its failures count again",
                    true,
                )
                .await;
            }
        }
        Err(err) => tracing::warn!("cannot look for expired quarantines: {err}"),
    }
}

/// Lifts one quarantine (once, whoever else tries) and, in the same transaction, queues the
/// closing of its ticket and, at expiry, a notice to its owner on each channel listing
/// `quarantine_expired`.
async fn release(st: &Shared, e: &QuarantineEntry, why: &str, tell_owner: bool) {
    let mut then = Vec::new();
    if let (Some(id), Some(url)) = (&e.ticket_id, &e.ticket_url) {
        then.push(Task::CloseTicket {
            repository: e.repository.clone(),
            test: e.test.clone(),
            ticket_id: id.clone(),
            ticket_url: url.clone(),
            comment: format!("{} Released by pipeguard: {why}.", e.owner),
        });
    }
    if tell_owner {
        then.extend(
            crate::notify::quarantine_channels(st, &e.repository).map(|channel| {
                Task::NotifyQuarantine {
                    channel,
                    repository: e.repository.clone(),
                    test: e.test.clone(),
                    owner: e.owner.clone(),
                    ticket_url: e.ticket_url.clone(),
                    why: why.to_string(),
                }
            }),
        );
    }
    match st
        .store
        .quarantine_release(&e.repository, &e.test, &then)
        .await
    {
        Ok(true) => {}
        Ok(false) => return,
        Err(err) => {
            tracing::warn!(test = %e.test, "cannot release the quarantine: {err}");
            return;
        }
    }
    if !then.is_empty() {
        st.worker_wake.notify_one();
    }
    let d = json!({"test": e.test, "owner": e.owner, "why": why});
    crate::audit::record(st, "pipeguard", "quarantine.released", &e.repository, d).await;
    tracing::info!(repository = %e.repository, test = %e.test, "quarantine released: {why}");
}
