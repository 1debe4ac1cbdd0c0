//! Healing sessions: their records, conditional status changes, the platform calls made for
//! them and their timelines.

use crate::audit::{audit_in, AuditEntry};
use crate::crypto::{open, open_opt, seal, Field, Keyring};
use crate::{now_ms, opt_str, parse_col, Result, Store, StoreError};
use pipeguard_core::analysis::redact::redact;
use pipeguard_core::event::{FailureEvent, Platform};
use pipeguard_core::heal::{JobDiagnosis, StoredPlan};
use pipeguard_core::Diagnosis;
use serde::Serialize;
use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::Row;

pub use pipeguard_core::lifecycle::SessionStatus;
use pipeguard_core::lifecycle::{self, Event};

#[derive(Debug, Clone, Serialize)]
pub struct SessionRecord {
    pub id: String,
    pub platform: String,
    pub repository: String,
    pub run_id: String,
    pub first_attempt: i64,
    pub current_attempt: i64,
    pub heal_attempts: i64,
    pub status: SessionStatus,
    pub category: Option<String>,
    pub confidence: Option<f64>,
    pub fingerprint: Option<String>,
    pub strategy: Option<String>,
    pub diagnosis: Option<Value>,
    pub plan: Option<StoredPlan>,
    pub reason: Option<String>,
    pub event: FailureEvent,
    pub workflow: String,
    pub head_sha: Option<String>,
    pub failed_at: i64,
    pub finished_at: Option<i64>,
    pub time_to_green_ms: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// When retention removed its payload, logs and evidence.
    pub purged_at: Option<i64>,
    /// The external host its failure named (registry, API, cloud endpoint), when one did.
    pub target: Option<String>,
    /// The incident that held it.
    pub incident_id: Option<i64>,
}

fn json_col(row: &AnyRow, col: &str) -> Result<Option<Value>> {
    Ok(opt_str(row, col)?.and_then(|s| serde_json::from_str(&s).ok()))
}

/// Masks secrets in free text a delivery carried (generic and Ansible logs): private-key
/// blocks as a whole, then line by line.
fn redact_text(text: &mut Option<String>) {
    if let Some(t) = text {
        *t = pipeguard_core::secrets::redact_log(t);
    }
}

/// The event with secrets masked in its log and error message, as it may be stored.
pub(crate) fn redacted(mut ev: FailureEvent) -> FailureEvent {
    redact_text(&mut ev.log);
    redact_text(&mut ev.error_message);
    ev
}

/// The `sessions.event` column for an (already redacted) event.
pub(crate) fn event_text(keys: Option<&Keyring>, ev: &FailureEvent) -> Result<String> {
    let text = serde_json::to_string(ev).unwrap_or_default();
    seal(keys, Field::SessionEvent, text)
}

impl SessionRecord {
    pub(crate) fn from_row(row: &AnyRow, keys: Option<&Keyring>) -> Result<SessionRecord> {
        let event = open(keys, Field::SessionEvent, row.try_get("event")?)?;
        let diagnosis = open_opt(keys, Field::SessionDiagnosis, opt_str(row, "diagnosis")?)?;
        Ok(SessionRecord {
            id: row.try_get("id")?,
            platform: row.try_get("platform")?,
            repository: row.try_get("repository")?,
            run_id: row.try_get("run_id")?,
            first_attempt: row.try_get("first_attempt")?,
            current_attempt: row.try_get("current_attempt")?,
            heal_attempts: row.try_get("heal_attempts")?,
            status: parse_col(row, "status")?,
            category: opt_str(row, "category")?,
            confidence: row.try_get("confidence")?,
            fingerprint: opt_str(row, "fingerprint")?,
            strategy: opt_str(row, "strategy")?,
            diagnosis: diagnosis.and_then(|d| serde_json::from_str(&d).ok()),
            plan: json_col(row, "plan")?.and_then(|v| serde_json::from_value(v).ok()),
            reason: opt_str(row, "reason")?,
            event: serde_json::from_str(&event)
                .map_err(|e| StoreError::Corrupt(format!("session event: {e}")))?,
            workflow: row.try_get("workflow")?,
            head_sha: opt_str(row, "head_sha")?,
            failed_at: row.try_get("failed_at")?,
            finished_at: row.try_get("finished_at")?,
            time_to_green_ms: row.try_get("time_to_green_ms")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            purged_at: row.try_get("purged_at")?,
            target: opt_str(row, "target")?,
            incident_id: row.try_get("incident_id")?,
        })
    }
}

impl SessionRecord {
    /// The diagnosed jobs the session's plan was made from, as the worker stored them (each
    /// failed job with its own diagnosis); older sessions stored one diagnosis for the run.
    pub fn diagnosed_jobs(&self) -> Vec<JobDiagnosis> {
        let Some(d) = &self.diagnosis else {
            return vec![];
        };
        let jobs: Vec<JobDiagnosis> = d["jobs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|j| serde_json::from_value(j.clone()).ok())
                    .collect()
            })
            .unwrap_or_default();
        if !jobs.is_empty() {
            return jobs;
        }
        let Ok(diagnosis) = serde_json::from_value::<Diagnosis>(d.clone()) else {
            return vec![];
        };
        let job = self.event.jobs.first().cloned().unwrap_or_default();
        vec![JobDiagnosis { job, diagnosis }]
    }
}

/// A conditional status change: applied only while the session is in one of `from`. The
/// legal moves are core's state machine ([`lifecycle`]); the store only guards them.
pub struct Transition<'a> {
    from: &'a [SessionStatus],
    to: SessionStatus,
    message: &'a str,
}

impl<'a> Transition<'a> {
    /// The move `event` makes, from the statuses the state machine allows it from.
    pub fn new(event: Event, message: &'a str) -> Transition<'a> {
        let (from, to) = lifecycle::moves(event);
        Transition { from, to, message }
    }

    /// Puts a session in `to` from `from` without the state machine: for test fixtures
    /// that need a session in a given status, never for the service's own moves.
    #[doc(hidden)]
    pub fn fixture(from: &'a [SessionStatus], to: SessionStatus, message: &'a str) -> Self {
        Transition { from, to, message }
    }

    pub fn to(&self) -> SessionStatus {
        self.to
    }
}

impl Store {
    pub async fn get_session(&self, id: &str) -> Result<Option<SessionRecord>> {
        sqlx::query("SELECT * FROM sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| SessionRecord::from_row(&r, self.keys()))
            .transpose()
    }

    /// Newest first.
    pub async fn list_sessions(&self, limit: i64, offset: i64) -> Result<Vec<SessionRecord>> {
        self.find_sessions(&SessionFilter::default(), limit, offset)
            .await
    }

    /// Sessions changed after `since_ms` (oldest change first), for live views: polling the
    /// database sees what every replica did.
    pub async fn sessions_changed_since(
        &self,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<SessionRecord>> {
        sqlx::query("SELECT * FROM sessions WHERE updated_at > $1 ORDER BY updated_at, id LIMIT $2")
            .bind(since_ms)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| SessionRecord::from_row(r, self.keys()))
            .collect()
    }

    /// The sessions `f` selects, newest first.
    pub async fn find_sessions(
        &self,
        f: &SessionFilter,
        limit: i64,
        offset: i64,
    ) -> Result<Vec<SessionRecord>> {
        let fields = [
            ("repository", f.repository.as_deref()),
            ("status", f.status.map(SessionStatus::as_str)),
            ("category", f.category.as_deref()),
            ("platform", f.platform.as_deref()),
        ];
        let mut sql = String::from("SELECT * FROM sessions WHERE 1 = 1");
        let mut binds = Vec::new();
        for (col, value) in fields {
            if let Some(v) = value {
                binds.push(v);
                sql.push_str(&format!(" AND {col} = ${}", binds.len()));
            }
        }
        sql.push_str(&format!(
            " ORDER BY created_at DESC, id LIMIT ${} OFFSET ${}",
            binds.len() + 1,
            binds.len() + 2
        ));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            q = q.bind(b);
        }
        q.bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| SessionRecord::from_row(r, self.keys()))
            .collect()
    }

    /// Number of sessions per status.
    pub async fn status_counts(&self) -> Result<Vec<(SessionStatus, i64)>> {
        let rows = sqlx::query("SELECT status, COUNT(*) AS n FROM sessions GROUP BY status")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| Ok((parse_col(r, "status")?, r.try_get::<i64, _>("n")?)))
            .collect()
    }

    /// Applies a status change only from the expected states; false when another worker or
    /// delivery already moved the session on.
    pub async fn transition(&self, id: &str, t: Transition<'_>) -> Result<bool> {
        self.update_session(id, t, SessionUpdate::default()).await
    }

    /// A transition that also writes fields. `None` fields stay as they are.
    pub async fn update_session(
        &self,
        id: &str,
        t: Transition<'_>,
        u: SessionUpdate,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let moved = self.update_in(&mut tx, id, t, u).await?;
        tx.commit().await?;
        Ok(moved)
    }

    /// [`Store::update_session`] inside the caller's transaction.
    pub(crate) async fn update_in(
        &self,
        conn: &mut sqlx::AnyConnection,
        id: &str,
        t: Transition<'_>,
        u: SessionUpdate,
    ) -> Result<bool> {
        let from: Vec<String> = t.from.iter().map(|s| format!("'{}'", s.as_str())).collect();
        let sql = format!(
            "UPDATE sessions SET status = $1, updated_at = $2, \
             category = COALESCE($3, category), confidence = COALESCE($4, confidence), \
             fingerprint = COALESCE($5, fingerprint), strategy = COALESCE($6, strategy), \
             transient = COALESCE($7, transient), diagnosis = COALESCE($8, diagnosis), \
             plan = COALESCE($9, plan), reason = COALESCE($10, reason), \
             current_attempt = COALESCE($11, current_attempt), \
             heal_attempts = COALESCE($12, heal_attempts), \
             finished_at = COALESCE($13, finished_at), \
             time_to_green_ms = COALESCE($14, time_to_green_ms), \
             event = COALESCE($15, event) \
             WHERE id = $16 AND status IN ({})",
            from.join(",")
        );
        let keys = self.keys();
        let diagnosis = u
            .diagnosis
            .map(|v| seal(keys, Field::SessionDiagnosis, v.to_string()))
            .transpose()?;
        let event = u
            .event
            .map(|e| event_text(keys, &redacted(e)))
            .transpose()?;
        let n = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(t.to.as_str())
            .bind(now_ms())
            .bind(u.category)
            .bind(u.confidence)
            .bind(u.fingerprint)
            .bind(u.strategy)
            .bind(u.transient.map(|b| b as i64))
            .bind(diagnosis)
            .bind(
                u.plan
                    .map(|p| serde_json::to_string(&p).unwrap_or_default()),
            )
            .bind(u.reason.as_deref().map(redact))
            .bind(u.current_attempt)
            .bind(u.heal_attempts)
            .bind(u.finished_at)
            .bind(u.time_to_green_ms)
            .bind(event)
            .bind(id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        if n == 1 {
            log_in(conn, id, t.to, t.message).await?;
            if let Some(e) = &u.audit {
                audit_in(conn, e).await?;
            }
            if let Some((task, at)) = &u.enqueue {
                crate::queue::enqueue_in(conn, self.keys(), id, task, *at).await?;
            }
        }
        Ok(n == 1)
    }

    /// Makes the session follow a run its heal started: the run's deliveries become the
    /// session's outcome, and `event` (the new run, no attempt seen yet) is what the worker
    /// verifies and diagnoses next. One transaction, so no delivery falls between the two.
    pub async fn follow_run(
        &self,
        session_id: &str,
        platform: Platform,
        run_link: &str,
        event: &FailureEvent,
    ) -> Result<()> {
        let text = event_text(self.keys(), &redacted(event.clone()))?;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO run_links (platform, repository, run_id, session_id, created_at) \
             VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING",
        )
        .bind(platform.as_str())
        .bind(&event.repository)
        .bind(run_link)
        .bind(session_id)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE sessions SET event = $1, updated_at = $2 WHERE id = $3")
            .bind(text)
            .bind(now_ms())
            .bind(session_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records that heal `attempt` calls the platform for `target`. False when it was already
    /// recorded: the call must not be made twice.
    pub async fn claim_action(
        &self,
        session_id: &str,
        attempt: i64,
        target: &str,
        kind: &str,
    ) -> Result<bool> {
        let n = sqlx::query(
            "INSERT INTO actions (session_id, attempt, target, kind, status, created_at) \
             VALUES ($1,$2,$3,$4,'started',$5) ON CONFLICT DO NOTHING",
        )
        .bind(session_id)
        .bind(attempt)
        .bind(target)
        .bind(kind)
        .bind(now_ms())
        .execute(self.writes())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Forgets an action the platform did not take (it answered with a transient error), so
    /// the next try may call again.
    pub async fn release_action(&self, session_id: &str, attempt: i64, target: &str) -> Result<()> {
        sqlx::query("DELETE FROM actions WHERE session_id = $1 AND attempt = $2 AND target = $3")
            .bind(session_id)
            .bind(attempt)
            .bind(target)
            .execute(self.writes())
            .await?;
        Ok(())
    }

    pub async fn finish_action(
        &self,
        session_id: &str,
        attempt: i64,
        target: &str,
        status: &str,
        detail: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE actions SET status = $1, detail = $2 WHERE session_id = $3 AND attempt = $4 \
             AND target = $5",
        )
        .bind(status)
        .bind(redact(detail))
        .bind(session_id)
        .bind(attempt)
        .bind(target)
        .execute(self.writes())
        .await?;
        Ok(())
    }

    /// The platform calls made for a session: (attempt, target, kind, status, detail).
    pub async fn actions(&self, session_id: &str) -> Result<Vec<ActionRecord>> {
        let rows = sqlx::query(
            "SELECT attempt, target, kind, status, detail, created_at FROM actions \
             WHERE session_id = $1 ORDER BY created_at, attempt, target",
        )
        .bind(session_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ActionRecord {
                    attempt: r.try_get("attempt")?,
                    target: r.try_get("target")?,
                    kind: r.try_get("kind")?,
                    status: r.try_get("status")?,
                    detail: opt_str(r, "detail")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }

    pub async fn session_log(&self, session_id: &str) -> Result<Vec<Value>> {
        let rows = sqlx::query(
            "SELECT at, status, message FROM session_log WHERE session_id = $1 ORDER BY id",
        )
        .bind(session_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(json!({
                    "at": r.try_get::<i64, _>("at")?,
                    "status": r.try_get::<String, _>("status")?,
                    "message": r.try_get::<String, _>("message")?,
                }))
            })
            .collect()
    }

    /// Appends a note to a session's timeline without changing its status.
    pub async fn note(&self, session_id: &str, status: SessionStatus, message: &str) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        log_in(&mut conn, session_id, status, message).await
    }
}

/// Which sessions to list; `None` fields match every session.
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub repository: Option<String>,
    pub status: Option<SessionStatus>,
    pub category: Option<String>,
    pub platform: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActionRecord {
    pub attempt: i64,
    pub target: String,
    pub kind: String,
    pub status: String,
    pub detail: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Default)]
pub struct SessionUpdate {
    pub category: Option<String>,
    pub confidence: Option<f64>,
    pub fingerprint: Option<String>,
    pub strategy: Option<String>,
    pub transient: Option<bool>,
    pub diagnosis: Option<Value>,
    pub plan: Option<StoredPlan>,
    pub reason: Option<String>,
    pub current_attempt: Option<i64>,
    pub heal_attempts: Option<i64>,
    pub finished_at: Option<i64>,
    pub time_to_green_ms: Option<i64>,
    pub event: Option<FailureEvent>,
    /// Appended to the audit trail in the same transaction, when the transition applies.
    pub audit: Option<AuditEntry>,
    /// Queued for the session (the task, when due) in the same transaction, when the
    /// transition applies.
    pub enqueue: Option<(crate::Task, i64)>,
}

pub(crate) async fn log_in(
    conn: &mut sqlx::AnyConnection,
    session_id: &str,
    status: SessionStatus,
    message: &str,
) -> Result<()> {
    log_all_in(conn, &[(session_id, status, message)]).await
}

/// Appends `(session, status, message)` lines to session logs in one statement.
pub(crate) async fn log_all_in(
    conn: &mut sqlx::AnyConnection,
    lines: &[(&str, SessionStatus, &str)],
) -> Result<()> {
    if lines.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO session_log (session_id, at, status, message) {}",
        crate::rows::values(conn, "($, $, $, $)", lines.len())
    );
    let now = now_ms();
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (session_id, status, message) in lines {
        q = q
            .bind(*session_id)
            .bind(now)
            .bind(status.as_str())
            .bind(redact(message));
    }
    q.execute(conn).await?;
    Ok(())
}
