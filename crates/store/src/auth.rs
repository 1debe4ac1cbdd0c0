//! API tokens (stored as hashes only) and people's decisions on plans awaiting approval.

use crate::{now_ms, opt_str, Result, Store};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

/// A token as listed: never the token itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TokenRecord {
    pub name: String,
    pub role: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

impl TokenRecord {
    fn from_row(r: &AnyRow) -> Result<TokenRecord> {
        Ok(TokenRecord {
            name: r.try_get("name")?,
            role: r.try_get("role")?,
            created_at: r.try_get("created_at")?,
            last_used_at: r.try_get("last_used_at")?,
            revoked_at: r.try_get("revoked_at")?,
        })
    }
}

/// One person's decision on one plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ApprovalRecord {
    pub session_id: String,
    pub attempt: i64,
    pub approver: String,
    /// `approved` or `rejected`.
    pub decision: String,
    pub comment: Option<String>,
    pub at: i64,
}

/// How often a token's last use is written at most: a read per request, a write per minute.
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

impl Store {
    /// Stores a new token's hash. False when a live token already has the name; a revoked
    /// one is replaced.
    pub async fn create_token(&self, name: &str, role: &str, token_hash: &str) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        sqlx::query("DELETE FROM api_tokens WHERE name = $1 AND revoked_at IS NOT NULL")
            .bind(name)
            .execute(&mut *tx)
            .await?;
        let n = sqlx::query(
            "INSERT INTO api_tokens (name, role, token_hash, created_at) VALUES ($1,$2,$3,$4) \
             ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(role)
        .bind(token_hash)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(n == 1)
    }

    /// The live token with this hash, marking it used.
    pub async fn use_token(&self, token_hash: &str) -> Result<Option<TokenRecord>> {
        let row = sqlx::query(
            "SELECT name, role, created_at, last_used_at, revoked_at FROM api_tokens \
             WHERE token_hash = $1 AND revoked_at IS NULL",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let t = TokenRecord::from_row(&row)?;
        let now = now_ms();
        if t.last_used_at
            .is_none_or(|at| now - at > LAST_USED_RESOLUTION_MS)
        {
            sqlx::query("UPDATE api_tokens SET last_used_at = $1 WHERE token_hash = $2")
                .bind(now)
                .bind(token_hash)
                .execute(self.writes())
                .await?;
        }
        Ok(Some(t))
    }

    pub async fn list_tokens(&self) -> Result<Vec<TokenRecord>> {
        let rows = sqlx::query(
            "SELECT name, role, created_at, last_used_at, revoked_at FROM api_tokens ORDER BY name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(TokenRecord::from_row).collect()
    }

    /// False when no live token has the name.
    pub async fn revoke_token(&self, name: &str) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE api_tokens SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL",
        )
        .bind(now_ms())
        .bind(name)
        .execute(self.writes())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Records one person's decision on heal attempt `attempt`'s plan. False when this
    /// person already decided on it.
    pub async fn record_decision(&self, a: &ApprovalRecord) -> Result<bool> {
        let n = sqlx::query(
            "INSERT INTO approvals (session_id, attempt, approver, decision, comment, at) \
             VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT DO NOTHING",
        )
        .bind(&a.session_id)
        .bind(a.attempt)
        .bind(&a.approver)
        .bind(&a.decision)
        .bind(a.comment.as_deref())
        .bind(a.at)
        .execute(self.writes())
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// The decisions on a session's plans, oldest first.
    pub async fn decisions(&self, session_id: &str) -> Result<Vec<ApprovalRecord>> {
        let rows = sqlx::query(
            "SELECT session_id, attempt, approver, decision, comment, at FROM approvals \
             WHERE session_id = $1 ORDER BY at, approver",
        )
        .bind(session_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ApprovalRecord {
                    session_id: r.try_get("session_id")?,
                    attempt: r.try_get("attempt")?,
                    approver: r.try_get("approver")?,
                    decision: r.try_get("decision")?,
                    comment: opt_str(r, "comment")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }
}
