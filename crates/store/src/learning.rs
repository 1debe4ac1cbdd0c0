//! Outcome records the policy learns from: how often a strategy healed a failure
//! fingerprint, or a category of failures in one repository.

use crate::{Result, Store};
use pipeguard_core::learning::ArmStats;
use sqlx::Row;

/// Healed and failed sessions among those `filter` selects (`$1`… bound to `binds`). A session
/// escalated after a heal whose next attempt failed again counts as failed: the strategy did
/// not heal it.
async fn arm_stats(store: &Store, filter: &str, binds: &[&str]) -> Result<ArmStats> {
    let sql = format!(
        "SELECT SUM(CASE WHEN status = 'healed' THEN 1 ELSE 0 END) AS healed, \
         SUM(CASE WHEN status = 'failed' OR (status = 'escalated' AND heal_attempts > 0 \
         AND current_attempt > first_attempt) THEN 1 ELSE 0 END) AS failed \
         FROM sessions WHERE {filter}"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for b in binds {
        q = q.bind(*b);
    }
    let row = q.fetch_one(store.pool()).await?;
    let get = |c: &str| -> Result<u32> {
        Ok(row.try_get::<Option<i64>, _>(c)?.unwrap_or(0).max(0) as u32)
    };
    Ok(ArmStats {
        healed: get("healed")?,
        failed: get("failed")?,
    })
}

impl Store {
    /// Heal outcomes of `strategy` on earlier sessions with this fingerprint.
    pub async fn fingerprint_stats(&self, fingerprint: &str, strategy: &str) -> Result<ArmStats> {
        arm_stats(
            self,
            "fingerprint = $1 AND strategy = $2",
            &[fingerprint, strategy],
        )
        .await
    }

    /// How often `strategy` healed failures of `category` in one repository: the evidence for
    /// a failure whose own fingerprint has too short a record.
    pub async fn category_stats(
        &self,
        platform: &str,
        repository: &str,
        category: &str,
        strategy: &str,
    ) -> Result<ArmStats> {
        arm_stats(
            self,
            "platform = $1 AND repository = $2 AND category = $3 AND strategy = $4",
            &[platform, repository, category, strategy],
        )
        .await
    }
}

impl Store {
    /// Strategies carried out (a `run` action done) by any session of this commit: scaling,
    /// clearing caches and resetting happen once per commit, whichever run asks again.
    pub async fn strategies_used_on_commit(
        &self,
        platform: &str,
        repository: &str,
        head_sha: &str,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT DISTINCT a.kind AS kind FROM actions a JOIN sessions s ON s.id = a.session_id \
             WHERE s.platform = $1 AND s.repository = $2 AND s.head_sha = $3 \
             AND a.target = 'run' AND a.status = 'done'",
        )
        .bind(platform)
        .bind(repository)
        .bind(head_sha)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("kind")?))
            .collect()
    }
}
