//! Retention: removes the payloads, logs and evidence of old (or chosen) sessions, keeping what
//! statistics and learning need (status, category, fingerprint, strategy, times, hosts, plan).
//!
//! A purged session keeps a skeleton of its event (repository, run, attempt, jobs' names,
//! hosts, times) so a late redelivery is still recognised as a duplicate and never starts a
//! heal; its log, error message, platform reasons, diagnosis and verdict evidence are gone.
//! Open sessions are never purged: the worker still needs their event and diagnosis.

use crate::audit::AuditEntry;
use crate::crypto::{open, Field};
use crate::sessions::event_text;
use crate::{now_ms, Result, Store, StoreError};
use pipeguard_core::event::FailureEvent;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;

const CLOSED: &str = "('healed', 'failed', 'escalated', 'skipped', 'observed')";
const BATCH: i64 = 200;

/// Which sessions to purge; both conditions apply when both are given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PurgeFilter {
    /// Closed sessions that finished before this time (epoch ms); also deliveries received
    /// and finished jobs created before it.
    pub finished_before_ms: Option<i64>,
    /// Every closed session of this repository.
    pub repository: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PurgeReport {
    /// Sessions whose payload, logs and evidence were removed.
    pub sessions: u64,
    /// Finished jobs deleted (their payloads carry events).
    pub jobs: u64,
    /// Delivery records deleted.
    pub deliveries: u64,
    /// Verdicts whose evidence was cleared (their category stays).
    pub verdicts: u64,
    /// Open sessions of the repository left alone; purge again once they are closed.
    pub open_skipped: u64,
    /// Models of jobs' green runs deleted (older than the cutoff, or of the repository).
    pub baselines: u64,
}

/// What of an event survives retention.
fn skeleton(mut ev: FailureEvent) -> FailureEvent {
    ev.log = None;
    ev.error_message = None;
    for j in &mut ev.jobs {
        j.platform_reason = None;
    }
    ev
}

impl Store {
    /// Deletes the rows of `table` whose `time` is before `before` (when given) and those of
    /// `repository` (when given). `table` and `time` are the store's own names, never input.
    pub(crate) async fn purge_table(
        &self,
        table: &'static str,
        time: &'static str,
        before: Option<i64>,
        repository: Option<&str>,
    ) -> Result<u64> {
        let mut n = 0;
        if let Some(t) = before {
            n += sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE {time} < $1"
            )))
            .bind(t)
            .execute(self.writes())
            .await?
            .rows_affected();
        }
        if let Some(r) = repository {
            n += sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE repository = $1"
            )))
            .bind(r.to_string())
            .execute(self.writes())
            .await?
            .rows_affected();
        }
        Ok(n)
    }

    /// Purges the sessions `f` selects, in batches, and records it in the audit trail.
    /// Interrupted, it is completed by running it again.
    pub async fn purge(&self, f: &PurgeFilter, actor: &str) -> Result<PurgeReport> {
        if f.finished_before_ms.is_none() && f.repository.is_none() {
            return Err(StoreError::Invalid(
                "purge needs an age (finished before) or a repository".into(),
            ));
        }
        let mut report = PurgeReport::default();
        let mut after = String::new();
        loop {
            let batch = self.purge_candidates(f, &after).await?;
            let Some((last, _)) = batch.last() else {
                break;
            };
            after = last.clone();
            self.purge_batch(&batch).await?;
            report.sessions += batch.len() as u64;
        }
        self.purge_dependents(&mut report).await?;
        if let Some(before) = f.finished_before_ms {
            self.purge_old_rows(before, &mut report).await?;
        }
        report.baselines = self
            .purge_baselines(f.finished_before_ms, f.repository.as_deref())
            .await?;
        self.purge_runner_jobs(f.finished_before_ms, f.repository.as_deref())
            .await?;
        if let Some(repo) = &f.repository {
            report.open_skipped = self.open_sessions(repo).await?;
        }
        let detail = json!({"filter": f, "report": report});
        let target = f.repository.as_deref().unwrap_or("*");
        self.audit(AuditEntry::new(actor, "data.purged", target, detail))
            .await?;
        Ok(report)
    }

    /// The next closed, unpurged sessions after `after` (by id) the filter selects, with
    /// their stored events. Walking by id reads the table once, without an index on it.
    async fn purge_candidates(
        &self,
        f: &PurgeFilter,
        after: &str,
    ) -> Result<Vec<(String, String)>> {
        let mut sql = format!(
            "SELECT id, event FROM sessions WHERE id > $1 AND purged_at IS NULL \
             AND status IN {CLOSED}"
        );
        let mut n = 2;
        if f.finished_before_ms.is_some() {
            sql += &format!(" AND COALESCE(finished_at, updated_at) < ${n}");
            n += 1;
        }
        if f.repository.is_some() {
            sql += &format!(" AND repository = ${n}");
            n += 1;
        }
        sql += &format!(" ORDER BY id LIMIT ${n}");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(after.to_string());
        if let Some(t) = f.finished_before_ms {
            q = q.bind(t);
        }
        if let Some(r) = &f.repository {
            q = q.bind(r.clone());
        }
        let rows = q.bind(BATCH).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| Ok((r.try_get("id")?, r.try_get("event")?)))
            .collect()
    }

    /// Replaces the sessions' events by their skeletons and drops their diagnoses.
    async fn purge_batch(&self, batch: &[(String, String)]) -> Result<()> {
        let keys = self.keys();
        let mut events = Vec::with_capacity(batch.len());
        for (id, stored) in batch {
            let text = open(keys, Field::SessionEvent, stored.clone())?;
            let ev: FailureEvent = serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("session {id} event: {e}")))?;
            events.push(event_text(keys, &skeleton(ev))?);
        }
        let now = now_ms();
        let mut tx = self.begin_write().await?;
        for ((id, _), event) in batch.iter().zip(events) {
            sqlx::query(
                "UPDATE sessions SET event = $1, diagnosis = NULL, purged_at = $2 WHERE id = $3",
            )
            .bind(event)
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Finished jobs, deliveries and verdict evidence of every purged session: one pass over
    /// each table, whatever the number of sessions.
    async fn purge_dependents(&self, report: &mut PurgeReport) -> Result<()> {
        const PURGED: &str = "(SELECT id FROM sessions WHERE purged_at IS NOT NULL)";
        let statements = [
            format!(
                "DELETE FROM jobs WHERE status IN ('done', 'failed') AND session_id IN {PURGED}"
            ),
            format!("DELETE FROM deliveries WHERE session_id IN {PURGED}"),
            format!(
                "UPDATE verdicts SET evidence = '' WHERE evidence <> '' AND session_id IN {PURGED}"
            ),
        ];
        let mut counts = [0u64; 3];
        for (sql, count) in statements.into_iter().zip(&mut counts) {
            *count = sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(self.writes())
                .await?
                .rows_affected();
        }
        report.jobs += counts[0];
        report.deliveries += counts[1];
        report.verdicts += counts[2];
        Ok(())
    }

    /// Deliveries and finished jobs older than the cutoff, whatever their session.
    async fn purge_old_rows(&self, before: i64, report: &mut PurgeReport) -> Result<()> {
        report.jobs +=
            sqlx::query("DELETE FROM jobs WHERE status IN ('done', 'failed') AND created_at < $1")
                .bind(before)
                .execute(self.writes())
                .await?
                .rows_affected();
        report.deliveries += sqlx::query("DELETE FROM deliveries WHERE received_at < $1")
            .bind(before)
            .execute(self.writes())
            .await?
            .rows_affected();
        Ok(())
    }

    async fn open_sessions(&self, repository: &str) -> Result<u64> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) AS n FROM sessions WHERE repository = $1 AND status NOT IN {CLOSED}"
        )))
        .bind(repository)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("n")? as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeguard_core::event::FailedJob;

    #[test]
    fn the_skeleton_keeps_identity_and_drops_text() {
        let ev = FailureEvent {
            repository: "o/r".into(),
            run_id: "7".into(),
            attempt: 2,
            log: Some("secret log".into()),
            error_message: Some("boom".into()),
            target_hosts: vec!["web1".into()],
            jobs: vec![FailedJob {
                id: "1".into(),
                name: "build".into(),
                platform_reason: Some("script_failure".into()),
                ..Default::default()
            }],
            finished_at_ms: Some(5),
            ..Default::default()
        };
        let s = skeleton(ev.clone());
        assert_eq!((s.log, s.error_message), (None, None));
        assert_eq!(s.jobs[0].platform_reason, None);
        assert_eq!(s.jobs[0].name, "build");
        assert_eq!(
            (
                s.repository,
                s.run_id,
                s.attempt,
                s.target_hosts,
                s.finished_at_ms
            ),
            (
                ev.repository,
                ev.run_id,
                ev.attempt,
                ev.target_hosts,
                ev.finished_at_ms
            )
        );
    }
}
