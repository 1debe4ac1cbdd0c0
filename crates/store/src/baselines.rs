//! Models of jobs' green runs: per (platform, repository, workflow, job), the serialized
//! templates of its recent green logs, sealed like logs, with the runs they came from.
//!
//! The store keeps the model as opaque bytes; learning and reading it belong to the analyzer.
//! Retention deletes models with the other log-derived data.

use crate::crypto::{open, seal, Field};
use crate::{now_ms, Result, Store, StoreError};
use sqlx::Row;

/// Which job a model describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaselineKey {
    pub platform: String,
    pub repository: String,
    pub workflow: String,
    pub job: String,
}

impl BaselineKey {
    /// The row's id: the four parts as one JSON array, unambiguous whatever they contain.
    fn id(&self) -> String {
        serde_json::json!([self.platform, self.repository, self.workflow, self.job]).to_string()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct BaselineRecord {
    pub key: BaselineKey,
    /// The serialized model (UTF-8 JSON as the analyzer writes it).
    pub model: String,
    /// The green runs it was learned from, newest first.
    pub green_runs: Vec<String>,
    pub updated_at: i64,
}

impl Store {
    /// Stores (or replaces) the job's model.
    pub async fn put_baseline(
        &self,
        key: &BaselineKey,
        model: &str,
        green_runs: &[String],
    ) -> Result<()> {
        let sealed = seal(self.keys(), Field::BaselineModel, model.to_string())?;
        let runs = serde_json::to_string(green_runs).expect("strings serialize");
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO baselines (id, platform, repository, workflow, job, model, green_runs, \
             updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (id) DO UPDATE SET model = excluded.model, \
             green_runs = excluded.green_runs, updated_at = excluded.updated_at",
        )
        .bind(key.id())
        .bind(key.platform.clone())
        .bind(key.repository.clone())
        .bind(key.workflow.clone())
        .bind(key.job.clone())
        .bind(sealed)
        .bind(runs)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The job's model, if one was learned (and not yet removed by retention).
    pub async fn baseline(&self, key: &BaselineKey) -> Result<Option<BaselineRecord>> {
        let Some(row) =
            sqlx::query("SELECT model, green_runs, updated_at FROM baselines WHERE id = $1")
                .bind(key.id())
                .fetch_optional(&self.pool)
                .await?
        else {
            return Ok(None);
        };
        let model = open(self.keys(), Field::BaselineModel, row.try_get("model")?)?;
        let runs: String = row.try_get("green_runs")?;
        let green_runs = serde_json::from_str(&runs)
            .map_err(|e| StoreError::Corrupt(format!("baseline green runs: {e}")))?;
        Ok(Some(BaselineRecord {
            key: key.clone(),
            model,
            green_runs,
            updated_at: row.try_get("updated_at")?,
        }))
    }

    /// Whether a session of this workflow started since `since_ms`: green runs are learned
    /// only for jobs that fail now and then.
    pub async fn failed_since(
        &self,
        platform: &str,
        repository: &str,
        workflow: &str,
        since_ms: i64,
    ) -> Result<bool> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM sessions WHERE platform = $1 AND repository = $2 \
             AND workflow = $3 AND created_at >= $4",
        )
        .bind(platform.to_string())
        .bind(repository.to_string())
        .bind(workflow.to_string())
        .bind(since_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>("n")? > 0)
    }

    /// Retention: models not updated since `before` (when given) and every model of
    /// `repository` (when given) are deleted.
    pub(crate) async fn purge_baselines(
        &self,
        before: Option<i64>,
        repository: Option<&str>,
    ) -> Result<u64> {
        self.purge_table("baselines", "updated_at", before, repository)
            .await
    }
}
