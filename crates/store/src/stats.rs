//! Aggregates for analytics and metrics, computed in the database so every replica agrees.

use crate::crypto::{open, Field};
use crate::{opt_str, Result, Store};
use serde::Serialize;
use sqlx::Row;

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct OutcomeCount {
    pub platform: String,
    pub category: String,
    pub status: String,
    pub count: i64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FingerprintCount {
    pub fingerprint: String,
    pub category: String,
    pub sessions: i64,
    pub healed: i64,
}

/// What analytics need of one session, read once per request.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionFacts {
    pub platform: String,
    pub status: String,
    pub heal_attempts: i64,
    pub failed_at: i64,
    pub finished_at: Option<i64>,
    /// Hosts the failure happened on (Ansible and generic webhooks name them).
    pub hosts: Vec<String>,
    /// Wall-clock duration of the failed attempt, when the platform reported start and end.
    pub run_ms: Option<i64>,
}

impl Store {
    /// Sessions per (platform, category, status).
    pub async fn outcome_counts(&self) -> Result<Vec<OutcomeCount>> {
        let rows = sqlx::query(
            "SELECT platform, COALESCE(category, 'unknown') AS category, status, COUNT(*) AS n \
             FROM sessions GROUP BY platform, COALESCE(category, 'unknown'), status \
             ORDER BY platform, category, status",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OutcomeCount {
                    platform: r.try_get("platform")?,
                    category: r.try_get("category")?,
                    status: r.try_get("status")?,
                    count: r.try_get("n")?,
                })
            })
            .collect()
    }

    /// Times to green of healed sessions, in milliseconds, newest `limit` first.
    pub async fn times_to_green(&self, limit: i64) -> Result<Vec<i64>> {
        let rows = sqlx::query(
            "SELECT time_to_green_ms FROM sessions WHERE status = 'healed' \
             AND time_to_green_ms IS NOT NULL ORDER BY finished_at DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<i64, _>("time_to_green_ms")?))
            .collect()
    }

    /// The most frequent failure fingerprints and how often they were healed.
    pub async fn top_fingerprints(&self, limit: i64) -> Result<Vec<FingerprintCount>> {
        let rows = sqlx::query(
            "SELECT fingerprint, MAX(category) AS category, COUNT(*) AS n, \
             SUM(CASE WHEN status = 'healed' THEN 1 ELSE 0 END) AS healed \
             FROM sessions WHERE fingerprint IS NOT NULL GROUP BY fingerprint \
             ORDER BY n DESC, fingerprint LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(FingerprintCount {
                    fingerprint: r.try_get("fingerprint")?,
                    category: opt_str(r, "category")?.unwrap_or_default(),
                    sessions: r.try_get("n")?,
                    healed: r.try_get("healed")?,
                })
            })
            .collect()
    }
}

impl Store {
    /// Facts of the newest `limit` sessions, for the per-host, retry, hand-off and compute
    /// figures of `/api/v1/stats`. Hosts and run times live in the stored event (JSON), which
    /// is read here rather than in SQL so both backends agree.
    pub async fn session_facts(&self, limit: i64) -> Result<Vec<SessionFacts>> {
        let rows = sqlx::query(
            "SELECT platform, status, heal_attempts, failed_at, finished_at, event FROM sessions \
             ORDER BY created_at DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let event = open(self.keys(), Field::SessionEvent, r.try_get("event")?)?;
                let ev: serde_json::Value = serde_json::from_str(&event).unwrap_or_default();
                let hosts = ev["target_hosts"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|h| h.as_str().map(str::to_string))
                    .collect();
                let run_ms = match (ev["started_at_ms"].as_i64(), ev["finished_at_ms"].as_i64()) {
                    (Some(a), Some(b)) if b >= a => Some(b - a),
                    _ => None,
                };
                Ok(SessionFacts {
                    platform: r.try_get("platform")?,
                    status: r.try_get("status")?,
                    heal_attempts: r.try_get("heal_attempts")?,
                    failed_at: r.try_get("failed_at")?,
                    finished_at: r.try_get("finished_at")?,
                    hosts,
                    run_ms,
                })
            })
            .collect()
    }
}
