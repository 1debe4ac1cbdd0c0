//! Outcome records the policy learns from, beyond one fingerprint's.

use crate::{Result, Store};
use sqlx::Row;

impl Store {
    /// How often `strategy` healed failures of `category` in one repository: the evidence for
    /// a failure whose own fingerprint has too short a record.
    pub async fn category_stats(
        &self,
        platform: &str,
        repository: &str,
        category: &str,
        strategy: &str,
    ) -> Result<pipeguard_core::learning::ArmStats> {
        let row = sqlx::query(
            "SELECT SUM(CASE WHEN status = 'healed' THEN 1 ELSE 0 END) AS healed, \
             SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed \
             FROM sessions WHERE platform = $1 AND repository = $2 AND category = $3 \
             AND strategy = $4",
        )
        .bind(platform)
        .bind(repository)
        .bind(category)
        .bind(strategy)
        .fetch_one(self.pool())
        .await?;
        let get = |c: &str| -> Result<u32> {
            Ok(row.try_get::<Option<i64>, _>(c)?.unwrap_or(0).max(0) as u32)
        };
        Ok(pipeguard_core::learning::ArmStats {
            healed: get("healed")?,
            failed: get("failed")?,
        })
    }
}
