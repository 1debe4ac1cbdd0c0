//! Jobs per runner and what was decided about each runner (suspect, quarantined, released).
//! The counts are what `pipeguard_core::runners::judge` weighs; the store only counts.

use crate::audit::{audit_in, AuditEntry};
use crate::{now_ms, Result, Store};
use pipeguard_core::runners::{RunnerCount, RunnerJob};
use sqlx::Row;
use std::collections::BTreeMap;

/// A runner as listed: its counts since `since` (or its release) and its state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunnerRecord {
    pub platform: String,
    /// What the platform's API takes to pause or stop it, when known.
    pub runner_id: Option<String>,
    /// A repository whose job it ran: whose credentials reach its platform's API.
    pub repository: Option<String>,
    pub count: RunnerCount,
    pub suspect: bool,
    pub quarantined: bool,
    /// Why it is suspect or how it was taken out.
    pub detail: Option<String>,
}

/// A runner's new state, with the audit entry that records the decision.
pub struct RunnerState<'a> {
    pub platform: &'a str,
    pub name: &'a str,
    pub suspect: bool,
    /// `None` leaves it as it is: marking a runner suspect never undoes another worker's
    /// taking it out (which would let a third take it out again).
    pub quarantined: Option<bool>,
    pub detail: &'a str,
    pub audit: AuditEntry,
}

impl Store {
    /// Records jobs seen on runners; a job already recorded keeps its row (a failure stays a
    /// failure, a known category stays known).
    pub async fn record_runner_jobs(&self, platform: &str, jobs: &[RunnerJob]) -> Result<()> {
        self.upsert_runner_jobs(platform, jobs, None).await
    }

    /// Records diagnosed failures with their category.
    pub async fn record_runner_failures(
        &self,
        platform: &str,
        jobs: &[(RunnerJob, String)],
    ) -> Result<()> {
        for (job, category) in jobs {
            self.upsert_runner_jobs(platform, std::slice::from_ref(job), Some(category))
                .await?;
        }
        Ok(())
    }

    async fn upsert_runner_jobs(
        &self,
        platform: &str,
        jobs: &[RunnerJob],
        category: Option<&str>,
    ) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let mut tx = self.begin_write().await?;
        for j in jobs {
            sqlx::query(
                "INSERT INTO runner_jobs (platform, job_id, runner, runner_id, repository, failed, \
                 category, seen_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (platform, job_id) DO UPDATE SET \
                 failed = CASE WHEN excluded.failed > runner_jobs.failed THEN excluded.failed \
                 ELSE runner_jobs.failed END, \
                 category = COALESCE(excluded.category, runner_jobs.category), \
                 runner_id = COALESCE(excluded.runner_id, runner_jobs.runner_id)",
            )
            .bind(platform.to_string())
            .bind(j.job_id.clone())
            .bind(j.runner.name.clone())
            .bind(j.runner.id.clone())
            .bind(j.repository.clone())
            .bind(j.failed as i64)
            .bind(category.map(str::to_string))
            .bind(now_ms())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every runner of `platform` (all platforms when `None`) with its counts since
    /// `since_ms` and since its last release, and its state; by platform and name.
    pub async fn runners(
        &self,
        platform: Option<&str>,
        since_ms: i64,
    ) -> Result<Vec<RunnerRecord>> {
        let mut out: BTreeMap<(String, String), RunnerRecord> = BTreeMap::new();
        let counts = sqlx::query(
            "SELECT j.platform, j.runner, MAX(j.runner_id) AS runner_id, \
             MAX(j.repository) AS repository, COUNT(*) AS jobs, \
             COUNT(CASE WHEN j.failed = 1 THEN 1 END) AS failures, COUNT(DISTINCT CASE WHEN j.failed = 1 \
             THEN j.repository || ' ' || COALESCE(j.category, '') END) AS unrelated \
             FROM runner_jobs j LEFT JOIN runners r ON r.platform = j.platform AND r.name = j.runner \
             WHERE j.seen_at >= $1 AND j.seen_at >= COALESCE(r.released_at, 0) \
             AND ($2 = '' OR j.platform = $2) GROUP BY j.platform, j.runner",
        )
        .bind(since_ms)
        .bind(platform.unwrap_or_default().to_string())
        .fetch_all(&self.pool)
        .await?;
        for row in counts {
            let (p, name): (String, String) = (row.try_get("platform")?, row.try_get("runner")?);
            let rec = out.entry((p.clone(), name.clone())).or_default();
            rec.platform = p;
            rec.runner_id = row.try_get("runner_id")?;
            rec.repository = row.try_get("repository")?;
            rec.count = RunnerCount {
                name,
                jobs: row.try_get::<i64, _>("jobs")?.max(0) as u64,
                failures: row.try_get::<i64, _>("failures")?.max(0) as u64,
                unrelated_failures: row.try_get::<i64, _>("unrelated")?.max(0) as u64,
            };
        }
        let states = sqlx::query(
            "SELECT platform, name, suspect, quarantined, detail FROM runners \
             WHERE $1 = '' OR platform = $1",
        )
        .bind(platform.unwrap_or_default().to_string())
        .fetch_all(&self.pool)
        .await?;
        for row in states {
            let (p, name): (String, String) = (row.try_get("platform")?, row.try_get("name")?);
            let rec = out.entry((p.clone(), name.clone())).or_default();
            rec.platform = p;
            rec.count.name = name;
            rec.suspect = row.try_get::<i64, _>("suspect")? != 0;
            rec.quarantined = row.try_get::<i64, _>("quarantined")? != 0;
            rec.detail = row.try_get("detail")?;
        }
        Ok(out.into_values().collect())
    }

    /// Stores a runner's new state and its audit entry together.
    pub async fn set_runner(&self, s: RunnerState<'_>) -> Result<()> {
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO runners (platform, name, suspect, quarantined, detail, changed_at) \
             VALUES ($1, $2, $3, COALESCE($4, 0), $5, $6) ON CONFLICT (platform, name) DO UPDATE \
             SET suspect = excluded.suspect, quarantined = COALESCE($4, runners.quarantined), \
             detail = excluded.detail, changed_at = excluded.changed_at",
        )
        .bind(s.platform.to_string())
        .bind(s.name.to_string())
        .bind(s.suspect as i64)
        .bind(s.quarantined.map(i64::from))
        .bind(s.detail.to_string())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        audit_in(&mut tx, &s.audit).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks the runner quarantined unless it already is: `true` for the one caller that
    /// must now take it out through the platform (replicas and workers race here).
    pub async fn claim_runner_quarantine(&self, platform: &str, name: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query(
            "INSERT INTO runners (platform, name, suspect, quarantined, detail, changed_at)              VALUES ($1, $2, 1, 1, 'being taken out', $3) ON CONFLICT (platform, name) DO              UPDATE SET suspect = 1, quarantined = 1, detail = excluded.detail,              changed_at = excluded.changed_at WHERE runners.quarantined = 0",
        )
        .bind(platform.to_string())
        .bind(name.to_string())
        .bind(now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n > 0)
    }

    /// An operator's release: the runner is neither suspect nor quarantined and its counts
    /// start afresh. `false` when pipeguard never saw the runner.
    pub async fn release_runner(
        &self,
        platform: &str,
        name: &str,
        audit: AuditEntry,
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let seen = sqlx::query(
            "SELECT 1 AS x FROM runner_jobs WHERE platform = $1 AND runner = $2 \
             UNION ALL SELECT 1 AS x FROM runners WHERE platform = $1 AND name = $2 LIMIT 1",
        )
        .bind(platform.to_string())
        .bind(name.to_string())
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
        if !seen {
            return Ok(false);
        }
        let now = now_ms();
        sqlx::query(
            "INSERT INTO runners (platform, name, suspect, quarantined, detail, changed_at, \
             released_at) VALUES ($1, $2, 0, 0, $3, $4, $4) ON CONFLICT (platform, name) DO \
             UPDATE SET suspect = 0, quarantined = 0, detail = excluded.detail, \
             changed_at = excluded.changed_at, released_at = excluded.released_at",
        )
        .bind(platform.to_string())
        .bind(name.to_string())
        .bind(format!("released by {}", audit.actor))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        audit_in(&mut tx, &audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Retention: jobs seen before `before` (when given) and every job of `repository`
    /// (when given) are forgotten.
    pub(crate) async fn purge_runner_jobs(
        &self,
        before: Option<i64>,
        repository: Option<&str>,
    ) -> Result<u64> {
        self.purge_table("runner_jobs", "seen_at", before, repository)
            .await
    }
}
