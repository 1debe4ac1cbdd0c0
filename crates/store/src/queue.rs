//! The durable job queue. Intake enqueues in the same transaction that stores the event, so
//! accepted work survives a crash; a worker that dies leaves a lease that expires and the job
//! is taken again.

use crate::crypto::{open, seal, Field, Keyring};
use crate::sessions::{log_in, redacted, SessionStatus};
use crate::{now_ms, parse_col, Backend, Result, Store, StoreError};
use pipeguard_core::analysis::redact::redact;
use pipeguard_core::event::FailureEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;

/// What a queued job asks the worker to do for its session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Task {
    /// Fetch the logs, diagnose, plan.
    Analyze,
    /// Carry out the stored plan.
    Execute {
        #[serde(default)]
        approved: bool,
    },
    /// A later attempt of the run being healed finished.
    Outcome {
        attempt: i64,
        success: bool,
        #[serde(default)]
        finished_at_ms: Option<i64>,
        /// The failure the delivery described, when it failed.
        #[serde(default)]
        event: Option<Box<FailureEvent>>,
    },
    /// Ask the platform whether the re-run finished (no webhook said so).
    Verify,
    /// One command of the Ansible host loop (`step` numbers the commands the loop considered
    /// before it): a crash or a lapsed lease takes up this step alone, and a step already
    /// recorded never runs again.
    HostStep { step: usize },
    /// Tell one configured channel about the session's status.
    Notify { channel: usize, status: String },
    /// Tell one configured channel that an incident opened or closed (queued on the session
    /// that opened or closed it).
    NotifyIncident {
        channel: usize,
        incident: i64,
        closed: bool,
    },
    /// A run handed to people passed on a later attempt of the same commit.
    PassedLater {
        attempt: i64,
        #[serde(default)]
        finished_at_ms: Option<i64>,
    },
    /// Files the ticket of a quarantined test whose filing failed (queued under
    /// [`quarantine_key`], no session).
    FileTicket { repository: String, test: String },
    /// Closes a released quarantine's ticket with a last comment (no session).
    CloseTicket {
        repository: String,
        test: String,
        ticket_id: String,
        ticket_url: String,
        comment: String,
    },
    /// Tells one configured channel that a quarantine ended at its end date (no session).
    NotifyQuarantine {
        channel: usize,
        repository: String,
        test: String,
        owner: String,
        #[serde(default)]
        ticket_url: Option<String>,
        why: String,
    },
    /// A person re-ran a run pipeguard only observed: what the attempt says about the
    /// decision. `at_ms` is when the re-run started (else ended) as the delivery says.
    Rerun {
        attempt: i64,
        success: bool,
        #[serde(default)]
        at_ms: Option<i64>,
    },
}

impl Task {
    pub fn kind(&self) -> &'static str {
        match self {
            Task::Analyze => "analyze",
            Task::Execute { .. } => "execute",
            Task::Outcome { .. } => "outcome",
            Task::Verify => "verify",
            Task::HostStep { .. } => "host_step",
            Task::Notify { .. } => "notify",
            Task::NotifyIncident { .. } => "notify_incident",
            Task::PassedLater { .. } => "passed_later",
            Task::Rerun { .. } => "rerun",
            Task::FileTicket { .. } => "file_ticket",
            Task::CloseTicket { .. } => "close_ticket",
            Task::NotifyQuarantine { .. } => "notify_quarantine",
        }
    }

    /// A job about a quarantined test rather than a session: its failure fails no session.
    pub fn sessionless(&self) -> bool {
        matches!(
            self,
            Task::FileTicket { .. } | Task::CloseTicket { .. } | Task::NotifyQuarantine { .. }
        )
    }

    /// The task with secrets masked in the event it carries, before it is stored.
    fn redacted(self) -> Task {
        match self {
            Task::Outcome {
                attempt,
                success,
                finished_at_ms,
                event,
            } => Task::Outcome {
                attempt,
                success,
                finished_at_ms,
                event: event.map(|e| Box::new(redacted(*e))),
            },
            other => other,
        }
    }

    /// The task stored as `kind` and `payload` columns. Rows written before tasks were typed
    /// have the kind only in its column: it is put back into the payload.
    fn from_columns(kind: &str, payload: &str) -> Result<Task> {
        let mut v: Value = serde_json::from_str(payload).unwrap_or(Value::Null);
        if !v.is_object() {
            v = Value::Object(Default::default());
        }
        v["kind"] = Value::String(kind.to_string());
        serde_json::from_value(v).map_err(|e| StoreError::Corrupt(format!("job {kind}: {e}")))
    }
}

/// The queue key of a quarantined test's jobs (in place of a session id): they run one at a
/// time, in order.
pub fn quarantine_key(repository: &str, test: &str) -> String {
    serde_json::json!(["quarantine", repository, test]).to_string()
}

/// A job that failed for good.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub job_id: i64,
    pub session_id: String,
    pub kind: String,
    pub error: Option<String>,
    pub tries: i64,
    /// When it was last due.
    pub at: i64,
}

/// What sending a session's dead letters again did.
#[derive(Debug, Clone, PartialEq)]
pub enum RetryDead {
    NotFound,
    /// Only a failed session is reopened; this one is in another state.
    NotFailed(SessionStatus),
    NothingDead,
    Requeued {
        kinds: Vec<String>,
        status: SessionStatus,
    },
}

/// The status a failed session goes back to so that a job of this kind can run again.
fn reopens_at(kind: &str) -> Option<SessionStatus> {
    match kind {
        "analyze" => Some(SessionStatus::Received),
        "execute" => Some(SessionStatus::Planned),
        "outcome" | "verify" | "passed_later" => Some(SessionStatus::Verifying),
        _ => None,
    }
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub session_id: String,
    /// The session's platform, for per-platform limits.
    pub platform: String,
    pub task: Task,
    /// How many times this job has been claimed, this one included.
    pub tries: i64,
}

/// Queues a task whose event, if any, is already redacted.
pub(crate) async fn enqueue_in(
    conn: &mut sqlx::AnyConnection,
    keys: Option<&Keyring>,
    session_id: &str,
    task: &Task,
    run_at: i64,
) -> Result<()> {
    enqueue_all_in(conn, keys, &[(session_id, task, run_at)]).await
}

/// Queues `(session, task, run_at)` jobs in one statement; their events are already redacted.
pub(crate) async fn enqueue_all_in(
    conn: &mut sqlx::AnyConnection,
    keys: Option<&Keyring>,
    jobs: &[(&str, &Task, i64)],
) -> Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let payloads = jobs
        .iter()
        .map(|(_, task, _)| {
            let plain = serde_json::to_string(task).unwrap_or_default();
            seal(keys, Field::JobPayload, plain)
        })
        .collect::<Result<Vec<_>>>()?;
    let sql = format!(
        "INSERT INTO jobs (session_id, kind, payload, run_at, status, tries, created_at) {}",
        crate::rows::values(conn, "($, $, $, $, 'queued', 0, $)", jobs.len())
    );
    let now = now_ms();
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for ((session_id, task, run_at), payload) in jobs.iter().zip(payloads) {
        q = q
            .bind(*session_id)
            .bind(task.kind())
            .bind(payload)
            .bind(*run_at)
            .bind(now);
    }
    q.execute(conn).await?;
    Ok(())
}

impl Store {
    pub async fn enqueue(&self, session_id: &str, task: &Task, run_at: i64) -> Result<()> {
        let task = task.clone().redacted();
        let mut conn = self.pool.acquire().await?;
        enqueue_in(&mut conn, self.keys(), session_id, &task, run_at).await
    }

    /// Takes the next due job, leasing it for `lease_ms`: never one whose session already
    /// has a job running (a session's jobs run one at a time), nor one of a platform in
    /// `busy` (so one slow platform cannot take every worker).
    pub async fn claim(&self, lease_ms: i64, busy: &[String]) -> Result<Option<Job>> {
        let now = now_ms();
        let placeholders: Vec<String> = (0..busy.len()).map(|i| format!("${}", i + 2)).collect();
        let not_busy = if busy.is_empty() {
            String::new()
        } else {
            format!(
                " AND COALESCE(s.platform, '') NOT IN ({})",
                placeholders.join(", ")
            )
        };
        let lock = match self.backend {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE OF j SKIP LOCKED",
        };
        let pick = format!(
            "SELECT j.id, COALESCE(s.platform, '') AS platform FROM jobs j \
             LEFT JOIN sessions s ON s.id = j.session_id \
             WHERE ((j.status = 'queued' AND j.run_at <= $1) \
             OR (j.status = 'running' AND j.locked_until < $1)) \
             AND NOT EXISTS (SELECT 1 FROM jobs r WHERE r.session_id = j.session_id \
             AND r.status = 'running' AND r.locked_until >= $1 AND r.id <> j.id){not_busy} \
             ORDER BY j.run_at, j.id LIMIT 1{lock}"
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(pick)).bind(now);
        for p in busy {
            q = q.bind(p);
        }
        let mut tx = self.begin_write().await?;
        let Some(row) = q.fetch_optional(&mut *tx).await? else {
            tx.commit().await?;
            return Ok(None);
        };
        let id: i64 = row.try_get("id")?;
        let platform: String = row.try_get("platform")?;
        let row = sqlx::query(
            "UPDATE jobs SET status = 'running', locked_until = $1, tries = tries + 1 \
             WHERE id = $2 RETURNING id, session_id, kind, payload, tries",
        )
        .bind(now + lease_ms)
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let kind: String = row.try_get("kind")?;
        let id: i64 = row.try_get("id")?;
        // A key error is configuration, not a bad job: the job waits for the right key.
        let payload = open(self.keys(), Field::JobPayload, row.try_get("payload")?)?;
        let task = match Task::from_columns(&kind, &payload) {
            Ok(t) => t,
            Err(e) => {
                // A job no worker can read would be claimed forever: set it aside.
                self.fail_job(id, &e.to_string()).await?;
                return Err(e);
            }
        };
        Ok(Some(Job {
            id,
            session_id: row.try_get("session_id")?,
            platform,
            task,
            tries: row.try_get("tries")?,
        }))
    }

    pub async fn finish_job(&self, id: i64) -> Result<()> {
        sqlx::query("UPDATE jobs SET status = 'done', locked_until = NULL WHERE id = $1")
            .bind(id)
            .execute(self.writes())
            .await?;
        Ok(())
    }

    /// Puts a job back to run again at `run_at` (transient error), keeping the error for humans.
    pub async fn retry_job(&self, id: i64, error: &str, run_at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET status = 'queued', run_at = $1, locked_until = NULL, last_error = $2 \
             WHERE id = $3",
        )
        .bind(run_at)
        .bind(redact(error))
        .bind(id)
        .execute(self.writes())
        .await?;
        Ok(())
    }

    /// Hands a claimed job back untouched (shutdown), without counting the try.
    pub async fn release_job(&self, id: i64) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET status = 'queued', locked_until = NULL, tries = tries - 1 WHERE id = $1",
        )
        .bind(id)
        .execute(self.writes())
        .await?;
        Ok(())
    }

    /// Puts every running job back in the queue; only for a backend with a single worker.
    pub async fn requeue_running(&self) -> Result<u64> {
        Ok(sqlx::query(
            "UPDATE jobs SET status = 'queued', locked_until = NULL WHERE status = 'running'",
        )
        .execute(self.writes())
        .await?
        .rows_affected())
    }

    pub async fn fail_job(&self, id: i64, error: &str) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET status = 'failed', locked_until = NULL, last_error = $1 WHERE id = $2",
        )
        .bind(redact(error))
        .bind(id)
        .execute(self.writes())
        .await?;
        Ok(())
    }

    /// Work that failed for good (its tries used up, or an error retrying cannot fix): the
    /// dead letters people look at and may send again.
    pub async fn dead_letters(&self, limit: i64) -> Result<Vec<DeadLetter>> {
        let rows = sqlx::query(
            "SELECT id, session_id, kind, last_error, tries, run_at FROM jobs \
             WHERE status = 'failed' ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(DeadLetter {
                    job_id: r.try_get("id")?,
                    session_id: r.try_get("session_id")?,
                    kind: r.try_get("kind")?,
                    error: r.try_get::<Option<String>, _>("last_error")?,
                    tries: r.try_get("tries")?,
                    at: r.try_get("run_at")?,
                })
            })
            .collect()
    }

    pub async fn dead_letter_count(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE status = 'failed'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Sends a session's dead letters again with fresh tries, in one transaction with reopening
    /// the session at the stage the earliest of them belongs to. Dead notifications alone are
    /// re-sent without touching the session (its outcome did not depend on them).
    pub async fn retry_dead(&self, session_id: &str, by: &str) -> Result<RetryDead> {
        let mut tx = self.begin_write().await?;
        let Some(row) = sqlx::query("SELECT status FROM sessions WHERE id = $1")
            .bind(session_id)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(RetryDead::NotFound);
        };
        let status: SessionStatus = parse_col(&row, "status")?;
        let kinds: Vec<String> =
            sqlx::query("SELECT kind FROM jobs WHERE session_id = $1 AND status = 'failed'")
                .bind(session_id)
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|r| r.try_get::<String, _>("kind"))
                .collect::<std::result::Result<_, _>>()?;
        if kinds.is_empty() {
            return Ok(RetryDead::NothingDead);
        }
        let reopen = kinds.iter().filter_map(|k| reopens_at(k)).min_by_key(|s| {
            SessionStatus::ALL
                .iter()
                .position(|x| x == s)
                .unwrap_or(usize::MAX)
        });
        if let Some(to) = reopen {
            if status != SessionStatus::Failed {
                return Ok(RetryDead::NotFailed(status));
            }
            sqlx::query(
                "UPDATE sessions SET status = $1, updated_at = $2, finished_at = NULL, reason = NULL \
                 WHERE id = $3",
            )
            .bind(to.as_str())
            .bind(now_ms())
            .bind(session_id)
            .execute(&mut *tx)
            .await?;
            log_in(&mut tx, session_id, to, &format!("retried by {by}")).await?;
        }
        sqlx::query(
            "UPDATE jobs SET status = 'queued', tries = 0, run_at = $1, locked_until = NULL \
             WHERE session_id = $2 AND status = 'failed'",
        )
        .bind(now_ms())
        .bind(session_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(RetryDead::Requeued {
            kinds,
            status: reopen.unwrap_or(status),
        })
    }

    /// Jobs waiting or running.
    pub async fn queue_depth(&self) -> Result<i64> {
        let row =
            sqlx::query("SELECT COUNT(*) AS n FROM jobs WHERE status IN ('queued', 'running')")
                .fetch_one(&self.pool)
                .await?;
        Ok(row.try_get("n")?)
    }

    /// Earliest time a queued job becomes due, so an idle worker knows how long to sleep.
    pub async fn next_due(&self) -> Result<Option<i64>> {
        let row = sqlx::query(
            "SELECT MIN(CASE WHEN status = 'queued' THEN run_at ELSE locked_until END) AS t \
             FROM jobs WHERE status IN ('queued', 'running')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<Option<i64>, _>("t")?)
    }
}
