//! Healing sessions and intake: storing a delivery, its session and its first job atomically.

use crate::queue::enqueue_in;
use crate::{now_ms, opt_str, parse_col, Result, Store, StoreError};
use pipeguard_core::event::{FailureEvent, Platform};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Received,
    Analyzing,
    Planned,
    AwaitingApproval,
    Executing,
    Verifying,
    Healed,
    Failed,
    Escalated,
    Skipped,
}

impl SessionStatus {
    pub const ALL: [SessionStatus; 10] = [
        SessionStatus::Received,
        SessionStatus::Analyzing,
        SessionStatus::Planned,
        SessionStatus::AwaitingApproval,
        SessionStatus::Executing,
        SessionStatus::Verifying,
        SessionStatus::Healed,
        SessionStatus::Failed,
        SessionStatus::Escalated,
        SessionStatus::Skipped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::Received => "received",
            SessionStatus::Analyzing => "analyzing",
            SessionStatus::Planned => "planned",
            SessionStatus::AwaitingApproval => "awaiting_approval",
            SessionStatus::Executing => "executing",
            SessionStatus::Verifying => "verifying",
            SessionStatus::Healed => "healed",
            SessionStatus::Failed => "failed",
            SessionStatus::Escalated => "escalated",
            SessionStatus::Skipped => "skipped",
        }
    }

    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            SessionStatus::Healed
                | SessionStatus::Failed
                | SessionStatus::Escalated
                | SessionStatus::Skipped
        )
    }
}

impl fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SessionStatus {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<Self, ()> {
        SessionStatus::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or(())
    }
}

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
    pub plan: Option<Value>,
    pub reason: Option<String>,
    pub event: FailureEvent,
    pub workflow: String,
    pub head_sha: Option<String>,
    pub failed_at: i64,
    pub finished_at: Option<i64>,
    pub time_to_green_ms: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
}

fn json_col(row: &AnyRow, col: &str) -> Result<Option<Value>> {
    Ok(opt_str(row, col)?.and_then(|s| serde_json::from_str(&s).ok()))
}

impl SessionRecord {
    fn from_row(row: &AnyRow) -> Result<SessionRecord> {
        let event: String = row.try_get("event")?;
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
            diagnosis: json_col(row, "diagnosis")?,
            plan: json_col(row, "plan")?,
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
        })
    }
}

/// What a delivery says happened to a run.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // built once per delivery, moved once
pub enum Intake {
    /// A run attempt failed.
    Failure(FailureEvent),
    /// A run attempt finished successfully.
    Success {
        repository: String,
        run_id: String,
        attempt: u32,
        finished_at_ms: Option<i64>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct IntakeResult {
    pub status: u16,
    pub body: Value,
    pub session_id: Option<String>,
    /// True when this delivery id was seen before and the stored answer is replayed.
    pub replay: bool,
}

/// A conditional status change: applied only when the session is in one of `from`.
pub struct Transition<'a> {
    pub from: &'a [SessionStatus],
    pub to: SessionStatus,
    pub message: &'a str,
}

impl Store {
    /// Stores one verified delivery and what it implies, atomically, and returns the answer to
    /// give. The same `delivery_id` again returns the first answer and changes nothing.
    pub async fn intake(
        &self,
        platform: Platform,
        delivery_id: &str,
        intake: Intake,
    ) -> Result<IntakeResult> {
        if let Some(r) = self.find_delivery(platform, delivery_id).await? {
            return Ok(r);
        }
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        let (repository, run_id, attempt) = match &intake {
            Intake::Failure(ev) => (ev.repository.clone(), ev.run_id.clone(), ev.attempt),
            Intake::Success {
                repository,
                run_id,
                attempt,
                ..
            } => (repository.clone(), run_id.clone(), *attempt),
        };
        // A run a heal started belongs to that heal's session.
        let linked = sqlx::query(
            "SELECT s.* FROM run_links l JOIN sessions s ON s.id = l.session_id \
             WHERE l.platform = $1 AND l.repository = $2 AND l.run_id IN ($3, $4)",
        )
        .bind(platform.as_str())
        .bind(&repository)
        .bind(&run_id)
        .bind(link_key(platform, &run_id))
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| SessionRecord::from_row(&r))
        .transpose()?;
        let is_linked = linked.is_some();
        let latest = match linked {
            Some(s) => Some(s),
            None => sqlx::query(
                "SELECT * FROM sessions WHERE platform = $1 AND repository = $2 AND run_id = $3 \
                 ORDER BY first_attempt DESC LIMIT 1",
            )
            .bind(platform.as_str())
            .bind(&repository)
            .bind(&run_id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| SessionRecord::from_row(&r))
            .transpose()?,
        };
        let attempt = attempt as i64;
        // The newest attempt the session has seen of this run. A run it does not follow (the
        // original once a heal started another, or a sibling of the run it follows) has
        // nothing new to say.
        let seen = |s: &SessionRecord| {
            if s.event.run_id != run_id {
                i64::MAX
            } else if s.event.run_id != s.run_id {
                s.event.attempt as i64
            } else {
                s.current_attempt
            }
        };
        let (status, body, session_id) = match (&intake, latest) {
            // An attempt this session already covers: the twin delivery of the same failure.
            (_, Some(s)) if attempt <= seen(&s) => (
                202,
                json!({"session_id": s.id, "status": s.status, "duplicate": true}),
                Some(s.id),
            ),
            // A later attempt of a run being healed: the outcome of our heal.
            (_, Some(s))
                if matches!(
                    s.status,
                    SessionStatus::Executing | SessionStatus::Verifying
                ) =>
            {
                let success = matches!(intake, Intake::Success { .. });
                let finished = match &intake {
                    Intake::Success { finished_at_ms, .. } => *finished_at_ms,
                    Intake::Failure(ev) => ev.finished_at_ms,
                };
                let event = match &intake {
                    Intake::Failure(ev) => serde_json::to_value(ev).unwrap_or(Value::Null),
                    Intake::Success { .. } => Value::Null,
                };
                enqueue_in(
                    &mut tx,
                    &s.id,
                    "outcome",
                    &json!({"attempt": attempt, "success": success, "finished_at_ms": finished, "event": event}),
                    now,
                )
                .await?;
                (
                    202,
                    json!({"session_id": s.id, "status": "outcome"}),
                    Some(s.id),
                )
            }
            // A run pipeguard handed to people went green on a later attempt of the same run
            // (same commit): its failing tests were flaky.
            (Intake::Success { .. }, Some(s))
                if s.run_id == run_id
                    && matches!(s.status, SessionStatus::Escalated | SessionStatus::Failed) =>
            {
                enqueue_in(
                    &mut tx,
                    &s.id,
                    "passed_later",
                    &json!({"attempt": attempt}),
                    now,
                )
                .await?;
                (
                    202,
                    json!({"session_id": s.id, "status": "passed_later"}),
                    Some(s.id),
                )
            }
            // A run a heal started, once its session is closed: never a new heal of its own.
            (_, Some(s)) if is_linked => (
                202,
                json!({"session_id": s.id, "status": s.status, "duplicate": true}),
                Some(s.id),
            ),
            (Intake::Failure(ev), _) => {
                let id = uuid::Uuid::new_v4().to_string();
                let inserted = sqlx::query(
                    "INSERT INTO sessions (id, platform, repository, run_id, first_attempt, \
                     current_attempt, heal_attempts, status, event, workflow, head_sha, failed_at, \
                     created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$5,0,'received',$6,$7,$8,$9,$10,$10) \
                     ON CONFLICT DO NOTHING",
                )
                .bind(&id)
                .bind(platform.as_str())
                .bind(&repository)
                .bind(&run_id)
                .bind(attempt)
                .bind(serde_json::to_string(ev).unwrap_or_default())
                .bind(&ev.workflow)
                .bind(ev.head_sha.as_deref())
                .bind(ev.finished_at_ms.unwrap_or(now))
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if inserted == 1 {
                    enqueue_in(&mut tx, &id, "analyze", &Value::Null, now).await?;
                    log_in(&mut tx, &id, SessionStatus::Received, "failure received").await?;
                    (
                        202,
                        json!({"session_id": id, "status": "received"}),
                        Some(id),
                    )
                } else {
                    let row = sqlx::query(
                        "SELECT id FROM sessions WHERE platform = $1 AND repository = $2 AND \
                         run_id = $3 AND first_attempt = $4",
                    )
                    .bind(platform.as_str())
                    .bind(&repository)
                    .bind(&run_id)
                    .bind(attempt)
                    .fetch_one(&mut *tx)
                    .await?;
                    let id: String = row.try_get("id")?;
                    (202, json!({"session_id": id, "duplicate": true}), Some(id))
                }
            }
            (Intake::Success { .. }, _) => (
                200,
                json!({"status": "ignored", "reason": "success of a run pipeguard is not healing"}),
                None,
            ),
        };
        let stored = sqlx::query(
            "INSERT INTO deliveries (platform, delivery_id, session_id, status_code, response, \
             received_at) VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT DO NOTHING",
        )
        .bind(platform.as_str())
        .bind(delivery_id)
        .bind(session_id.as_deref())
        .bind(status as i64)
        .bind(body.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if stored == 0 {
            // The same delivery raced in on another connection and won: replay its answer.
            tx.rollback().await?;
            if let Some(r) = self.find_delivery(platform, delivery_id).await? {
                return Ok(r);
            }
        } else {
            tx.commit().await?;
        }
        Ok(IntakeResult {
            status,
            body,
            session_id,
            replay: false,
        })
    }

    /// Records a delivery that created nothing (ignored events), so replays answer the same.
    pub async fn record_ignored(
        &self,
        platform: Platform,
        delivery_id: &str,
        status: u16,
        body: &Value,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO deliveries (platform, delivery_id, session_id, status_code, response, \
             received_at) VALUES ($1,$2,NULL,$3,$4,$5) ON CONFLICT DO NOTHING",
        )
        .bind(platform.as_str())
        .bind(delivery_id)
        .bind(status as i64)
        .bind(body.to_string())
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub async fn find_delivery(
        &self,
        platform: Platform,
        delivery_id: &str,
    ) -> Result<Option<IntakeResult>> {
        let row = sqlx::query(
            "SELECT session_id, status_code, response FROM deliveries \
             WHERE platform = $1 AND delivery_id = $2",
        )
        .bind(platform.as_str())
        .bind(delivery_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let response: String = row.try_get("response")?;
        let status: i64 = row.try_get("status_code")?;
        Ok(Some(IntakeResult {
            status: status as u16,
            body: serde_json::from_str(&response).unwrap_or(Value::Null),
            session_id: opt_str(&row, "session_id")?,
            replay: true,
        }))
    }

    pub async fn count_deliveries(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM deliveries")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    pub async fn get_session(&self, id: &str) -> Result<Option<SessionRecord>> {
        sqlx::query("SELECT * FROM sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| SessionRecord::from_row(&r))
            .transpose()
    }

    /// Newest first.
    pub async fn list_sessions(&self, limit: i64, offset: i64) -> Result<Vec<SessionRecord>> {
        sqlx::query("SELECT * FROM sessions ORDER BY created_at DESC, id LIMIT $1 OFFSET $2")
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(SessionRecord::from_row)
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
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(t.to.as_str())
            .bind(now_ms())
            .bind(u.category)
            .bind(u.confidence)
            .bind(u.fingerprint)
            .bind(u.strategy)
            .bind(u.transient.map(|b| b as i64))
            .bind(u.diagnosis.map(|v| v.to_string()))
            .bind(u.plan.map(|v| v.to_string()))
            .bind(u.reason)
            .bind(u.current_attempt)
            .bind(u.heal_attempts)
            .bind(u.finished_at)
            .bind(u.time_to_green_ms)
            .bind(
                u.event
                    .map(|e| serde_json::to_string(&e).unwrap_or_default()),
            )
            .bind(id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 1 {
            log_in(&mut tx, id, t.to, t.message).await?;
        }
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Makes the session follow a run its heal started: the run's deliveries become the
    /// session's outcome, and `event` (the new run, no attempt seen yet) is what the worker
    /// verifies and diagnoses next. One transaction, so no delivery falls between the two.
    pub async fn follow_run(
        &self,
        session_id: &str,
        platform: Platform,
        event: &FailureEvent,
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO run_links (platform, repository, run_id, session_id, created_at) \
             VALUES ($1,$2,$3,$4,$5) ON CONFLICT DO NOTHING",
        )
        .bind(platform.as_str())
        .bind(&event.repository)
        .bind(link_key(platform, &event.run_id))
        .bind(session_id)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        sqlx::query("UPDATE sessions SET event = $1, updated_at = $2 WHERE id = $3")
            .bind(serde_json::to_string(event).unwrap_or_default())
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
        .execute(&self.pool)
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
            .execute(&self.pool)
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
        .bind(detail)
        .bind(session_id)
        .bind(attempt)
        .bind(target)
        .execute(&self.pool)
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
    pub plan: Option<Value>,
    pub reason: Option<String>,
    pub current_attempt: Option<i64>,
    pub heal_attempts: Option<i64>,
    pub finished_at: Option<i64>,
    pub time_to_green_ms: Option<i64>,
    pub event: Option<FailureEvent>,
}

/// What links a run to a session: a CircleCI run is one workflow of a pipeline, and a new
/// pipeline runs all its workflows, so the pipeline is linked; elsewhere the run itself.
fn link_key(platform: Platform, run_id: &str) -> String {
    match (platform, run_id.split_once('/')) {
        (Platform::Circleci, Some((pipeline, _))) => pipeline.to_string(),
        _ => run_id.to_string(),
    }
}

async fn log_in(
    conn: &mut sqlx::AnyConnection,
    session_id: &str,
    status: SessionStatus,
    message: &str,
) -> Result<()> {
    sqlx::query("INSERT INTO session_log (session_id, at, status, message) VALUES ($1,$2,$3,$4)")
        .bind(session_id)
        .bind(now_ms())
        .bind(status.as_str())
        .bind(message)
        .execute(conn)
        .await?;
    Ok(())
}
