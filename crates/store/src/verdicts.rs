//! Human verdicts on diagnoses: the category an operator says a session really was. They train
//! the learned classifier and measure how often the knowledge base agrees with people.

use crate::crypto::{open, seal, Field, Keyring};
use crate::{now_ms, opt_str, Result, Store};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictRecord {
    pub session_id: String,
    /// The human's category.
    pub category: String,
    /// What pipeguard had diagnosed when the verdict was given.
    pub diagnosed_category: Option<String>,
    /// Which analyzer had decided (`rules`, `learned`).
    pub diagnosed_by: Option<String>,
    pub note: String,
    /// The session's evidence lines, the text the classifier learns from.
    pub evidence: String,
    pub created_at: i64,
}

impl VerdictRecord {
    fn from_row(r: &AnyRow, keys: Option<&Keyring>) -> Result<VerdictRecord> {
        Ok(VerdictRecord {
            session_id: r.try_get("session_id")?,
            category: r.try_get("category")?,
            diagnosed_category: opt_str(r, "diagnosed_category")?,
            diagnosed_by: opt_str(r, "diagnosed_by")?,
            note: r.try_get("note")?,
            evidence: open(keys, Field::VerdictEvidence, r.try_get("evidence")?)?,
            created_at: r.try_get("created_at")?,
        })
    }
}

/// Verdicts per (diagnosed, human) category pair.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfusionCell {
    pub diagnosed: String,
    pub human: String,
    pub count: i64,
}

impl Store {
    /// Stores a verdict; a later verdict on the same session replaces the earlier one.
    /// `created_at` is set here.
    pub async fn put_verdict(&self, v: &VerdictRecord) -> Result<VerdictRecord> {
        let evidence = seal(self.keys(), Field::VerdictEvidence, v.evidence.clone())?;
        sqlx::query(
            "INSERT INTO verdicts (session_id, category, diagnosed_category, diagnosed_by, note, \
             evidence, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7) \
             ON CONFLICT (session_id) DO UPDATE SET category = excluded.category, \
             diagnosed_category = excluded.diagnosed_category, \
             diagnosed_by = excluded.diagnosed_by, note = excluded.note, \
             evidence = excluded.evidence, created_at = excluded.created_at",
        )
        .bind(&v.session_id)
        .bind(&v.category)
        .bind(v.diagnosed_category.as_deref())
        .bind(v.diagnosed_by.as_deref())
        .bind(&v.note)
        .bind(evidence)
        .bind(now_ms())
        .execute(self.writes())
        .await?;
        self.verdict(&v.session_id)
            .await?
            .ok_or_else(|| crate::StoreError::Corrupt("verdict vanished after insert".into()))
    }

    pub async fn verdict(&self, session_id: &str) -> Result<Option<VerdictRecord>> {
        sqlx::query("SELECT * FROM verdicts WHERE session_id = $1")
            .bind(session_id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| VerdictRecord::from_row(&r, self.keys()))
            .transpose()
    }

    /// The newest `limit` verdicts, for training.
    pub async fn verdicts(&self, limit: i64) -> Result<Vec<VerdictRecord>> {
        let rows = sqlx::query("SELECT * FROM verdicts ORDER BY created_at DESC, id DESC LIMIT $1")
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| VerdictRecord::from_row(r, self.keys()))
            .collect()
    }

    /// How pipeguard's diagnoses compare with the humans' categories.
    pub async fn verdict_confusion(&self) -> Result<Vec<ConfusionCell>> {
        let rows = sqlx::query(
            "SELECT COALESCE(diagnosed_category, 'unknown') AS diagnosed, category, COUNT(*) AS n \
             FROM verdicts GROUP BY COALESCE(diagnosed_category, 'unknown'), category \
             ORDER BY diagnosed, category",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ConfusionCell {
                    diagnosed: r.try_get("diagnosed")?,
                    human: r.try_get("category")?,
                    count: r.try_get("n")?,
                })
            })
            .collect()
    }
}
