//! Decisions on failures and what later re-runs said about them (readiness), and the healing
//! mode set per repository through the API.

use crate::audit::{audit_in, AuditEntry};
use crate::{now_ms, opt_str, Result, Store, StoreError};
use pipeguard_core::planner::Mode;
use pipeguard_core::readiness::{Decided, Outcome};
use sqlx::any::AnyRow;
use sqlx::Row;
use std::collections::HashSet;
use std::sync::atomic::Ordering;

/// One key for a (repository, workflow, branch).
fn branch_key(repository: &str, workflow: &str, branch: &str) -> String {
    format!("{repository}\0{workflow}\0{branch}")
}

/// A decision to record: the session's first plan on its failure.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRecord {
    pub session_id: String,
    pub repository: String,
    pub platform: String,
    pub mode: Mode,
    pub would_retry: bool,
    pub failed_at: i64,
    /// Where the failure ran: what a later push that fixed it is matched on.
    pub on: Revision,
}

/// A run's workflow, branch and commit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Revision {
    pub workflow: String,
    pub branch: Option<String>,
    pub head_sha: Option<String>,
}

/// A recorded decision with what is known of its outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRow {
    pub record: DecisionRecord,
    pub outcome: Option<Outcome>,
    pub rerun_at: Option<i64>,
}

impl DecisionRow {
    pub fn decided(&self) -> Decided {
        Decided {
            would_retry: self.record.would_retry,
            outcome: self.outcome,
            failed_at_ms: self.record.failed_at,
            rerun_at_ms: self.rerun_at,
        }
    }

    fn from_row(r: &AnyRow) -> Result<DecisionRow> {
        let mode: String = r.try_get("mode")?;
        let outcome = opt_str(r, "outcome")?;
        let corrupt = |c: &str, v: &str| StoreError::Corrupt(format!("decisions.{c}={v:?}"));
        Ok(DecisionRow {
            record: DecisionRecord {
                session_id: r.try_get("session_id")?,
                repository: r.try_get("repository")?,
                platform: r.try_get("platform")?,
                mode: Mode::parse(&mode).ok_or_else(|| corrupt("mode", &mode))?,
                would_retry: r.try_get::<i64, _>("would_retry")? != 0,
                failed_at: r.try_get("failed_at")?,
                on: Revision {
                    workflow: opt_str(r, "workflow")?.unwrap_or_default(),
                    branch: opt_str(r, "branch")?,
                    head_sha: opt_str(r, "head_sha")?,
                },
            },
            outcome: match outcome {
                Some(o) => Some(Outcome::parse(&o).ok_or_else(|| corrupt("outcome", &o))?),
                None => None,
            },
            rerun_at: r.try_get::<Option<i64>, _>("rerun_at")?,
        })
    }
}

/// Records a decision (with its outcome, when a re-run already told it) inside the caller's
/// transaction; the first decision on a session stands.
pub(crate) async fn decision_in(
    conn: &mut sqlx::AnyConnection,
    d: &DecisionRecord,
    outcome: Option<Outcome>,
    rerun_at: Option<i64>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO decisions (session_id, repository, platform, mode, would_retry, \
         failed_at, decided_at, outcome, rerun_at, workflow, branch, head_sha) VALUES ($1, $2, \
         $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (session_id) DO NOTHING",
    )
    .bind(&d.session_id)
    .bind(&d.repository)
    .bind(&d.platform)
    .bind(d.mode.as_str())
    .bind(d.would_retry as i64)
    .bind(d.failed_at)
    .bind(now_ms())
    .bind(outcome.map(Outcome::as_str))
    .bind(rerun_at)
    .bind(&d.on.workflow)
    .bind(d.on.branch.as_deref())
    .bind(d.on.head_sha.as_deref())
    .execute(conn)
    .await?;
    Ok(())
}

/// One repository's decisions, oldest failure first.
#[derive(Debug, Clone, PartialEq)]
pub struct RepositoryDecisions {
    pub repository: String,
    pub platform: String,
    pub rows: Vec<DecisionRow>,
}

impl Store {
    /// Records the decision on a session's failure; the first one stands (a re-diagnosis after
    /// a heal attempt is not a new decision on the failure).
    pub async fn put_decision(&self, d: &DecisionRecord) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        decision_in(&mut conn, d, None, None).await?;
        self.unfixed_branches.drop_set();
        Ok(())
    }

    /// Records what a re-run of the session's run said, once: the first re-run that decides
    /// an outcome stands. `rerun_at` is when a person re-ran it (`None`: pipeguard did).
    /// Returns the decision when this call recorded its outcome.
    pub async fn record_outcome(
        &self,
        session_id: &str,
        went_green: bool,
        rerun_at: Option<i64>,
    ) -> Result<Option<DecisionRow>> {
        let Some(row) = self.decision(session_id).await? else {
            return Ok(None);
        };
        if row.outcome.is_some() {
            return Ok(None);
        }
        let outcome = Outcome::of(row.record.would_retry, went_green);
        let changed = sqlx::query(
            "UPDATE decisions SET outcome = $2, rerun_at = COALESCE(rerun_at, $3) \
             WHERE session_id = $1 AND outcome IS NULL",
        )
        .bind(session_id)
        .bind(outcome.map(Outcome::as_str))
        .bind(rerun_at)
        .execute(self.writes())
        .await?
        .rows_affected();
        if changed == 0 || outcome.is_none() {
            return Ok(None);
        }
        Ok(Some(DecisionRow {
            outcome,
            rerun_at: row.rerun_at.or(rerun_at),
            ..row
        }))
    }

    /// A green run of `green.workflow` on `green.branch` for commit `green.head_sha`, finished
    /// at `at`: the failures of that workflow and branch before it, on other commits, that no
    /// re-run measured were fixed by a push. Returns how many were recorded so.
    pub async fn record_push_fix(
        &self,
        platform: &str,
        repository: &str,
        green: &Revision,
        at: i64,
    ) -> Result<u64> {
        let (Some(branch), Some(sha)) = (&green.branch, &green.head_sha) else {
            return Ok(0);
        };
        if !self
            .may_be_unfixed(repository, &green.workflow, branch)
            .await?
        {
            return Ok(0);
        }
        self.push_fix_updates.fetch_add(1, Ordering::Relaxed);
        let fixed = sqlx::query(
            "UPDATE decisions SET outcome = $1 WHERE platform = $2 AND repository = $3 \
             AND workflow = $4 AND branch = $5 AND head_sha IS NOT NULL AND head_sha <> $6 \
             AND outcome IS NULL AND failed_at <= $7",
        )
        .bind(Outcome::FixedByPush.as_str())
        .bind(platform)
        .bind(repository)
        .bind(&green.workflow)
        .bind(branch)
        .bind(sha)
        .bind(at)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(fixed)
    }

    /// Whether a green run of `workflow` on `branch` of `repository` surely finds no failure
    /// a push may fix, by the last read while it is fresh: intake then need not try at all.
    pub fn surely_nothing_to_fix(&self, repository: &str, workflow: &str, branch: &str) -> bool {
        self.unfixed_branches
            .has(&branch_key(repository, workflow, branch))
            == Some(false)
    }

    /// UPDATEs run by [`Store::record_push_fix`] since the store was opened.
    pub fn push_fix_updates(&self) -> u64 {
        self.push_fix_updates.load(Ordering::Relaxed)
    }

    /// Whether the branch has failures a push may fix, read again when the last read is stale.
    async fn may_be_unfixed(&self, repository: &str, workflow: &str, branch: &str) -> Result<bool> {
        let key = branch_key(repository, workflow, branch);
        if let Some(has) = self.unfixed_branches.has(&key) {
            return Ok(has);
        }
        let generation = self.unfixed_branches.generation();
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT DISTINCT repository, workflow, branch FROM decisions WHERE outcome IS NULL \
             AND head_sha IS NOT NULL AND workflow IS NOT NULL AND branch IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        let keys: HashSet<String> = rows.iter().map(|(r, w, b)| branch_key(r, w, b)).collect();
        let has = keys.contains(&key);
        self.unfixed_branches.keep(generation, keys);
        Ok(has)
    }

    pub async fn decision(&self, session_id: &str) -> Result<Option<DecisionRow>> {
        sqlx::query("SELECT * FROM decisions WHERE session_id = $1")
            .bind(session_id)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| DecisionRow::from_row(&r))
            .transpose()
    }

    /// Decisions per (platform, repository), of one repository or of all.
    pub async fn readiness_rows(
        &self,
        repository: Option<&str>,
    ) -> Result<Vec<RepositoryDecisions>> {
        const ORDER: &str = " ORDER BY repository, platform, failed_at, session_id";
        let rows = match repository {
            Some(r) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT * FROM decisions WHERE repository = $1{ORDER}"
                )))
                .bind(r)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT * FROM decisions{ORDER}"
                )))
                .fetch_all(&self.pool)
                .await?
            }
        };
        let mut out: Vec<RepositoryDecisions> = Vec::new();
        for r in &rows {
            let row = DecisionRow::from_row(r)?;
            match out.last_mut() {
                Some(g)
                    if g.repository == row.record.repository
                        && g.platform == row.record.platform =>
                {
                    g.rows.push(row)
                }
                _ => out.push(RepositoryDecisions {
                    repository: row.record.repository.clone(),
                    platform: row.record.platform.clone(),
                    rows: vec![row],
                }),
            }
        }
        Ok(out)
    }

    /// Decisions with an outcome, by the mode they were made in and the outcome.
    pub async fn decision_counts(&self) -> Result<Vec<(Mode, Outcome, i64)>> {
        let rows = sqlx::query(
            "SELECT mode, outcome, COUNT(*) AS n FROM decisions WHERE outcome IS NOT NULL \
             GROUP BY mode, outcome ORDER BY mode, outcome",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::new();
        for r in &rows {
            let mode: String = r.try_get("mode")?;
            let outcome: String = r.try_get("outcome")?;
            if let (Some(m), Some(o)) = (Mode::parse(&mode), Outcome::parse(&outcome)) {
                out.push((m, o, r.try_get("n")?));
            }
        }
        Ok(out)
    }

    /// Sets the repository's healing mode, overriding the configuration file's, and appends
    /// who did it to the audit trail in the same transaction. Returns the mode it had.
    pub async fn set_mode(&self, repository: &str, mode: Mode, by: &str) -> Result<Option<Mode>> {
        let before = self.mode(repository).await?;
        let mut tx = self.begin_write().await?;
        sqlx::query(
            "INSERT INTO repository_modes (repository, mode, updated_by, updated_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (repository) DO UPDATE SET \
             mode = excluded.mode, updated_by = excluded.updated_by, \
             updated_at = excluded.updated_at",
        )
        .bind(repository)
        .bind(mode.as_str())
        .bind(by)
        .bind(now_ms())
        .execute(&mut *tx)
        .await?;
        let detail = serde_json::json!({"mode": mode, "before": before});
        audit_in(
            &mut tx,
            &AuditEntry::new(by, "mode.set", repository, detail),
        )
        .await?;
        tx.commit().await?;
        Ok(before)
    }

    /// The modes set through the API, by repository.
    pub async fn modes(&self) -> Result<Vec<(String, Mode)>> {
        let rows = sqlx::query("SELECT repository, mode FROM repository_modes ORDER BY repository")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let mode: String = r.try_get("mode")?;
                let parsed = Mode::parse(&mode).ok_or_else(|| {
                    StoreError::Corrupt(format!("repository_modes.mode={mode:?}"))
                })?;
                Ok((r.try_get("repository")?, parsed))
            })
            .collect()
    }

    /// The mode set through the API for `repository`, if any.
    pub async fn mode(&self, repository: &str) -> Result<Option<Mode>> {
        Ok(self
            .modes()
            .await?
            .into_iter()
            .find(|(r, _)| r == repository)
            .map(|(_, m)| m))
    }
}
