//! Outcome records the policy learns from: how often a strategy healed a failure
//! fingerprint, or a category of failures in one repository.

use crate::{Result, Store};
use pipeguard_core::learning::{ArmStats, Learned};
use sqlx::Row;
use std::collections::BTreeMap;

/// Healed and failed sessions among those `filter` selects (`$1`… bound to `binds`), per
/// strategy. A session escalated after a heal whose next attempt failed again counts as
/// failed: the strategy did not heal it.
async fn arm_stats(
    store: &Store,
    filter: &str,
    binds: &[&str],
) -> Result<BTreeMap<String, ArmStats>> {
    let sql = format!(
        "SELECT strategy, SUM(CASE WHEN status = 'healed' THEN 1 ELSE 0 END) AS healed, \
         SUM(CASE WHEN status = 'failed' OR (status = 'escalated' AND heal_attempts > 0 \
         AND current_attempt > first_attempt) THEN 1 ELSE 0 END) AS failed \
         FROM sessions WHERE {filter} AND strategy IS NOT NULL GROUP BY strategy"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for b in binds {
        q = q.bind(*b);
    }
    let mut out = BTreeMap::new();
    for row in q.fetch_all(store.pool()).await? {
        let get = |c: &str| -> Result<u32> {
            Ok(row.try_get::<Option<i64>, _>(c)?.unwrap_or(0).max(0) as u32)
        };
        let stats = ArmStats {
            healed: get("healed")?,
            failed: get("failed")?,
        };
        out.insert(row.try_get::<String, _>("strategy")?, stats);
    }
    Ok(out)
}

impl Store {
    /// Heal outcomes of `strategy` on earlier sessions with this fingerprint.
    pub async fn fingerprint_stats(&self, fingerprint: &str, strategy: &str) -> Result<ArmStats> {
        let all = arm_stats(self, "fingerprint = $1", &[fingerprint]).await?;
        Ok(all.get(strategy).copied().unwrap_or_default())
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
        let all = arm_stats(
            self,
            "platform = $1 AND repository = $2 AND category = $3",
            &[platform, repository, category],
        )
        .await?;
        Ok(all.get(strategy).copied().unwrap_or_default())
    }

    /// What every strategy's record says about a failure: on its fingerprint, and on its
    /// category in its repository. Two queries whatever the number of strategies.
    pub async fn learned(
        &self,
        fingerprint: &str,
        platform: &str,
        repository: &str,
        category: &str,
    ) -> Result<Vec<(String, Learned)>> {
        let fp = arm_stats(self, "fingerprint = $1", &[fingerprint]).await?;
        let cat = arm_stats(
            self,
            "platform = $1 AND repository = $2 AND category = $3",
            &[platform, repository, category],
        )
        .await?;
        let mut strategies: Vec<&String> = fp.keys().chain(cat.keys()).collect();
        strategies.sort();
        strategies.dedup();
        Ok(strategies
            .into_iter()
            .map(|s| {
                let learned = Learned {
                    fingerprint: fp.get(s).copied().unwrap_or_default(),
                    category: cat.get(s).copied().unwrap_or_default(),
                };
                (s.clone(), learned)
            })
            .collect())
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

impl Store {
    /// Platform calls that re-ran work (`run` actions) made since `since_ms`, for one
    /// repository or all: what the healing budget counts.
    pub async fn reruns_since(
        &self,
        since_ms: i64,
        repository: Option<(&str, &str)>,
    ) -> Result<i64> {
        let row =
            match repository {
                Some((platform, repo)) => sqlx::query(
                    "SELECT COUNT(*) AS n FROM actions a JOIN sessions s ON s.id = a.session_id \
                     WHERE a.target = 'run' AND a.created_at >= $1 AND s.platform = $2 \
                     AND s.repository = $3",
                )
                .bind(since_ms)
                .bind(platform)
                .bind(repo)
                .fetch_one(self.pool())
                .await?,
                None => sqlx::query(
                    "SELECT COUNT(*) AS n FROM actions WHERE target = 'run' AND created_at >= $1",
                )
                .bind(since_ms)
                .fetch_one(self.pool())
                .await?,
            };
        Ok(row.try_get("n")?)
    }
}
