//! Incidents: an outage shared by many repositories' failures, with the sessions it holds,
//! its canary and its wave. Every change is conditional, so replicas sharing the database
//! open one incident per cause, send one canary at a time and release each session once.

use crate::sessions::SessionStatus;
use crate::{now_ms, opt_str, Result, Store};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentRecord {
    pub id: i64,
    /// The failure category.
    pub cause: String,
    /// The external host the failures named.
    pub target: String,
    pub opened_at: i64,
    pub closed_at: Option<i64>,
    /// `pipeguard` when a canary was green or the incident was given up, else the operator.
    pub closed_by: Option<String>,
    pub canary_session: Option<String>,
    pub canaries: i64,
    pub next_canary_at: i64,
    pub sessions_released: i64,
    pub released_at: Option<i64>,
    pub escalated_at: Option<i64>,
}

impl IncidentRecord {
    fn from_row(r: &AnyRow) -> Result<IncidentRecord> {
        Ok(IncidentRecord {
            id: r.try_get("id")?,
            cause: r.try_get("cause")?,
            target: r.try_get("target")?,
            opened_at: r.try_get("opened_at")?,
            closed_at: r.try_get("closed_at")?,
            closed_by: opt_str(r, "closed_by")?,
            canary_session: opt_str(r, "canary_session")?,
            canaries: r.try_get("canaries")?,
            next_canary_at: r.try_get("next_canary_at")?,
            sessions_released: r.try_get("sessions_released")?,
            released_at: r.try_get("released_at")?,
            escalated_at: r.try_get("escalated_at")?,
        })
    }
}

/// An incident with what it touched, as the API lists it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IncidentSummary {
    #[serde(flatten)]
    pub incident: IncidentRecord,
    /// Repositories that failed with the cause while it was open (and in the window before).
    pub repositories: i64,
    /// Sessions it held.
    pub sessions_held: i64,
    /// Sessions still held now.
    pub held_now: i64,
}

impl Store {
    /// Distinct repositories whose sessions failed with `category` on `target` since `since`.
    pub async fn cause_repositories(
        &self,
        category: &str,
        target: &str,
        since: i64,
    ) -> Result<i64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(DISTINCT repository) FROM sessions \
             WHERE category = $1 AND target = $2 AND failed_at >= $3",
        )
        .bind(category)
        .bind(target)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }

    /// Records the cause (category and external target) a session's failure named, before
    /// it is planned, so the incident's count includes it.
    pub async fn set_cause(&self, session_id: &str, category: &str, target: &str) -> Result<()> {
        sqlx::query("UPDATE sessions SET category = $1, target = $2 WHERE id = $3")
            .bind(category)
            .bind(target)
            .bind(session_id)
            .execute(self.writes())
            .await?;
        Ok(())
    }

    /// Marks a session as held by `incident`.
    pub async fn hold_in(&self, session_id: &str, incident: i64) -> Result<()> {
        sqlx::query("UPDATE sessions SET incident_id = $1 WHERE id = $2")
            .bind(incident)
            .bind(session_id)
            .execute(self.writes())
            .await?;
        Ok(())
    }

    /// The open incident of a cause.
    pub async fn open_incident_for(
        &self,
        category: &str,
        target: &str,
    ) -> Result<Option<IncidentRecord>> {
        sqlx::query(
            "SELECT * FROM incidents WHERE cause = $1 AND target = $2 AND closed_at IS NULL",
        )
        .bind(category)
        .bind(target)
        .fetch_optional(&self.pool)
        .await?
        .map(|r| IncidentRecord::from_row(&r))
        .transpose()
    }

    /// Opens an incident for a cause unless one is open; the open one, and whether this call
    /// opened it.
    pub async fn open_incident(
        &self,
        category: &str,
        target: &str,
        first_canary_at: i64,
    ) -> Result<(IncidentRecord, bool)> {
        let n = sqlx::query(
            "INSERT INTO incidents (cause, target, opened_at, next_canary_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
        )
        .bind(category)
        .bind(target)
        .bind(now_ms())
        .bind(first_canary_at)
        .execute(self.writes())
        .await?
        .rows_affected();
        let open = self
            .open_incident_for(category, target)
            .await?
            .ok_or_else(|| crate::StoreError::Corrupt("incident vanished".into()))?;
        Ok((open, n == 1))
    }

    pub async fn get_incident(&self, id: i64) -> Result<Option<IncidentRecord>> {
        sqlx::query("SELECT * FROM incidents WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| IncidentRecord::from_row(&r))
            .transpose()
    }

    /// Incidents that still need the worker: open ones, and closed ones with held sessions
    /// left to release.
    pub async fn active_incidents(&self) -> Result<Vec<IncidentRecord>> {
        sqlx::query(
            "SELECT * FROM incidents i WHERE closed_at IS NULL OR EXISTS \
             (SELECT 1 FROM sessions s WHERE s.incident_id = i.id AND s.status = 'held') \
             ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(IncidentRecord::from_row)
        .collect()
    }

    /// Newest first (or only incident `only`), with what each touched; `window_ms` is the
    /// detection window.
    pub async fn list_incidents(
        &self,
        only: Option<i64>,
        limit: i64,
        window_ms: i64,
    ) -> Result<Vec<IncidentSummary>> {
        let rows = sqlx::query(
            "SELECT i.*, \
             (SELECT COUNT(DISTINCT s.repository) FROM sessions s WHERE s.category = i.cause \
              AND s.target = i.target AND s.failed_at >= i.opened_at - $1 \
              AND (i.closed_at IS NULL OR s.failed_at <= i.closed_at)) AS repositories, \
             (SELECT COUNT(*) FROM sessions s WHERE s.incident_id = i.id) AS sessions_held, \
             (SELECT COUNT(*) FROM sessions s WHERE s.incident_id = i.id \
              AND s.status = 'held') AS held_now \
             FROM incidents i WHERE ($2 < 0 OR i.id = $2) ORDER BY i.id DESC LIMIT $3",
        )
        .bind(window_ms)
        .bind(only.unwrap_or(-1))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(IncidentSummary {
                    incident: IncidentRecord::from_row(r)?,
                    repositories: r.try_get("repositories")?,
                    sessions_held: r.try_get("sessions_held")?,
                    held_now: r.try_get("held_now")?,
                })
            })
            .collect()
    }

    /// The incident's held sessions, oldest failure first.
    pub async fn held_sessions(&self, incident: i64, limit: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM sessions WHERE incident_id = $1 AND status = $2 \
             ORDER BY failed_at, created_at, id LIMIT $3",
        )
        .bind(incident)
        .bind(SessionStatus::Held.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The held session to probe with next: the one re-run least, oldest failure first, so
    /// a failed canary does not use up one session's heal attempts.
    pub async fn canary_candidate(&self, incident: i64) -> Result<Option<String>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM sessions WHERE incident_id = $1 AND status = $2 \
             ORDER BY heal_attempts, failed_at, created_at, id LIMIT 1",
        )
        .bind(incident)
        .bind(SessionStatus::Held.as_str())
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Makes `session` the incident's canary, when no other is probing: false otherwise.
    pub async fn set_canary(&self, incident: i64, session: &str) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE incidents SET canary_session = $1, canaries = canaries + 1 \
             WHERE id = $2 AND canary_session IS NULL AND closed_at IS NULL",
        )
        .bind(session)
        .bind(incident)
        .execute(self.writes())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// The canary's probe failed: the next one goes at `next_canary_at`.
    pub async fn canary_failed(&self, incident: i64, next_canary_at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE incidents SET canary_session = NULL, next_canary_at = $1 WHERE id = $2",
        )
        .bind(next_canary_at)
        .bind(incident)
        .execute(self.writes())
        .await?;
        Ok(())
    }

    /// Closes an open incident; false when it was closed already.
    pub async fn close_incident(&self, incident: i64, by: &str) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE incidents SET closed_at = $1, closed_by = $2, released_at = $1 \
             WHERE id = $3 AND closed_at IS NULL",
        )
        .bind(now_ms())
        .bind(by)
        .bind(incident)
        .execute(self.writes())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Counts `n` sessions released by the wave at `at`.
    pub async fn released(&self, incident: i64, n: i64, at: i64) -> Result<()> {
        sqlx::query(
            "UPDATE incidents SET sessions_released = sessions_released + $1, released_at = $2 \
             WHERE id = $3",
        )
        .bind(n)
        .bind(at)
        .bind(incident)
        .execute(self.writes())
        .await?;
        Ok(())
    }

    /// Marks the incident given up (its held sessions escalated), once: false when it was.
    pub async fn give_up_incident(&self, incident: i64) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE incidents SET escalated_at = $1, closed_at = $1, closed_by = 'pipeguard' \
             WHERE id = $2 AND escalated_at IS NULL AND closed_at IS NULL",
        )
        .bind(now_ms())
        .bind(incident)
        .execute(self.writes())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Whether an incident of the cause was given up since `since`: people have the outage,
    /// so its failures are not held again at once.
    pub async fn given_up_since(&self, category: &str, target: &str, since: i64) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM incidents WHERE cause = $1 AND target = $2 AND escalated_at >= $3",
        )
        .bind(category)
        .bind(target)
        .bind(since)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// Open incidents, for the metrics.
    pub async fn open_incident_count(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM incidents WHERE closed_at IS NULL")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}
