//! Past failures replayed by `pipeguard import`: each is stored whole (the observed session
//! with its timeline, and its decision with the outcome the person's re-run gave it) or not at
//! all, once per run attempt; a second import finds it and skips the run. A run read with
//! nothing to measure is remembered as it was seen, so a later import skips it until it changed.

use crate::decisions::{decision_in, DecisionRecord};
use crate::sessions::{event_text, redacted, SessionUpdate, Transition};
use crate::{now_ms, Result, Store};
use pipeguard_core::event::{FailureEvent, Platform};
use pipeguard_core::lifecycle::SessionStatus;
use pipeguard_core::readiness::Outcome;

/// One past failure with the decision the planner made on it.
pub struct ImportedSession<'a> {
    pub platform: Platform,
    pub event: &'a FailureEvent,
    /// The planner's move from `analyzing` (to `observed`) with its reason.
    pub transition: Transition<'a>,
    pub update: SessionUpdate,
    pub decision: DecisionRecord,
    /// Whether the person's re-run went green, and when it started.
    pub went_green: bool,
    pub rerun_at: i64,
}

impl Store {
    /// Whether any session covers a run of the repository (imported before, or healed live).
    pub async fn has_run_session(
        &self,
        platform: Platform,
        repository: &str,
        run_id: &str,
    ) -> Result<bool> {
        let found = sqlx::query(
            "SELECT 1 FROM sessions WHERE platform = $1 AND repository = $2 AND run_id = $3 LIMIT 1",
        )
        .bind(platform.as_str())
        .bind(repository)
        .bind(run_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    /// Whether an import read the run before, as it is `seen` now, and found nothing to measure.
    pub async fn read_before(
        &self,
        platform: Platform,
        repository: &str,
        run_id: &str,
        seen: &str,
    ) -> Result<bool> {
        let found = sqlx::query(
            "SELECT 1 FROM imported_runs WHERE platform = $1 AND repository = $2 \
             AND run_id = $3 AND seen = $4",
        )
        .bind(platform.as_str())
        .bind(repository)
        .bind(run_id)
        .bind(seen)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    /// Remembers that the run, as it is `seen` now, has nothing to measure.
    pub async fn note_read(
        &self,
        platform: Platform,
        repository: &str,
        run_id: &str,
        seen: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO imported_runs (platform, repository, run_id, seen, read_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (platform, repository, run_id) \
             DO UPDATE SET seen = excluded.seen, read_at = excluded.read_at",
        )
        .bind(platform.as_str())
        .bind(repository)
        .bind(run_id)
        .bind(seen)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Stores a past failure as a finished session with its decision and outcome, in one
    /// transaction. `None` when the run's attempt already has a session.
    pub async fn import_session(&self, s: ImportedSession<'_>) -> Result<Option<String>> {
        let ev = s.event;
        let id = s.decision.session_id.clone();
        let event = event_text(self.keys(), &redacted(ev.clone()))?;
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        let inserted = sqlx::query(
            "INSERT INTO sessions (id, platform, repository, run_id, first_attempt, \
             current_attempt, heal_attempts, status, event, workflow, head_sha, failed_at, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5, 0, $6, $7, $8, $9, $10, \
             $11, $11) ON CONFLICT DO NOTHING RETURNING id",
        )
        .bind(&id)
        .bind(s.platform.as_str())
        .bind(&ev.repository)
        .bind(&ev.run_id)
        .bind(ev.attempt as i64)
        .bind(SessionStatus::Analyzing.as_str())
        .bind(event)
        .bind(&ev.workflow)
        .bind(ev.head_sha.as_deref())
        .bind(s.decision.failed_at)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if inserted.is_none() {
            return Ok(None);
        }
        if !self.update_in(&mut tx, &id, s.transition, s.update).await? {
            return Ok(None);
        }
        let outcome = Outcome::of(s.decision.would_retry, s.went_green);
        decision_in(&mut tx, &s.decision, outcome, Some(s.rerun_at)).await?;
        tx.commit().await?;
        self.unfixed_branches.drop_set();
        Ok(Some(id))
    }
}
