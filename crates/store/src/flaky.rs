//! Per-test failure statistics per repository, and the quarantine list.
//!
//! A test is flaky when it failed and then passed on the same commit without a code change
//! (the definition Trunk, BuildPulse and Datadog use). Each finished session contributes one
//! observation per failing test it named: flaky when a re-run of the same commit went green,
//! a plain failure otherwise.

use crate::queue::{enqueue_all_in, quarantine_key, Task};
use crate::{now_ms, Result, Store};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TestStats {
    pub repository: String,
    pub test: String,
    /// Finished sessions in which this test failed.
    pub runs: i64,
    /// Of those, failures that stayed failures (the session failed or was escalated).
    pub failures: i64,
    /// Of those, failures that passed on a re-run of the same commit.
    pub flaky_failures: i64,
    /// `flaky_failures / runs`.
    pub flakiness_rate: f64,
    /// Time its failures cost, summed (see `Observation::time_lost_ms`).
    pub time_lost_ms: i64,
    pub first_seen_at: i64,
    pub last_seen_at: i64,
    pub quarantined: bool,
    /// Attempts of the runs this test failed in, re-runs included: what final results hide.
    pub runs_including_retries: i64,
    /// Of those attempts, the ones that failed (all but a heal's green last attempt).
    pub failed_attempts: i64,
    /// Failures (flaky or not) in the last 7 days, and in the 7 days before.
    pub failures_this_week: i64,
    pub failures_last_week: i64,
}

impl TestStats {
    /// `failed_attempts / runs_including_retries`: the failure rate retries cannot hide.
    pub fn attempt_failure_rate(&self) -> f64 {
        if self.runs_including_retries > 0 {
            self.failed_attempts as f64 / self.runs_including_retries as f64
        } else {
            0.0
        }
    }

    /// Failed more often this week than the week before.
    pub fn worse_this_week(&self) -> bool {
        self.failures_this_week > self.failures_last_week
    }

    fn from_row(r: &AnyRow) -> Result<TestStats> {
        let runs: i64 = r.try_get("runs")?;
        let flaky: i64 = r.try_get("flaky_failures")?;
        Ok(TestStats {
            repository: r.try_get("repository")?,
            test: r.try_get("test")?,
            runs,
            failures: r.try_get("failures")?,
            flaky_failures: flaky,
            flakiness_rate: if runs > 0 {
                flaky as f64 / runs as f64
            } else {
                0.0
            },
            time_lost_ms: r.try_get("time_lost_ms")?,
            first_seen_at: r.try_get("first_seen_at")?,
            last_seen_at: r.try_get("last_seen_at")?,
            quarantined: r.try_get::<i64, _>("quarantined")? != 0,
            runs_including_retries: r.try_get("runs_including_retries")?,
            failed_attempts: r.try_get("failed_attempts")?,
            failures_this_week: r.try_get("failures_this_week")?,
            failures_last_week: r.try_get("failures_last_week")?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuarantineEntry {
    pub repository: String,
    pub test: String,
    pub reason: String,
    pub added_at: i64,
    /// Who fixes it: given, from CODEOWNERS, the repository's default owner, or who
    /// quarantined it.
    pub owner: String,
    /// Released at the latest then (milliseconds since the epoch).
    pub expires_at: i64,
    /// First-attempt green runs of `workflow` since it was quarantined or last failed.
    pub passes_since: i64,
    /// The workflow (pipeline) the test was seen failing in: only its green runs are passes.
    /// `None` when unknown (never seen failing, or quarantined before it was stored): then
    /// every green run of the repository is one.
    pub workflow: Option<String>,
    pub ticket_url: Option<String>,
    /// Why the ticket could not be filed yet (it is tried again); `None` once filed.
    pub ticket_error: Option<String>,
    /// The platform's number of the ticket, to close it.
    #[serde(skip)]
    pub ticket_id: Option<String>,
}

/// A test to quarantine (again: a new reason, owner and end date, its count starts over).
#[derive(Debug, Clone)]
pub struct NewQuarantine<'a> {
    pub repository: &'a str,
    pub test: &'a str,
    pub reason: &'a str,
    pub owner: &'a str,
    pub expires_at: i64,
}

/// How long a quarantine lasts unless told otherwise.
pub const QUARANTINE_DAYS: i64 = 14;

/// What one finished session says about the tests it saw failing.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    pub session_id: &'a str,
    pub repository: &'a str,
    pub tests: &'a [String],
    /// True when a re-run of the same commit passed.
    pub flaky: bool,
    /// Time the failure cost, as the caller defines it.
    pub time_lost_ms: i64,
}

const WEEK_MS: i64 = 7 * 86_400_000;

/// The statistics' columns. The attempts come from the sessions the test failed in (a heal's
/// re-runs are its `heal_attempts`; a healed one's last attempt passed); the weeks end now.
fn stats_select() -> String {
    let now = now_ms();
    let (week, fortnight) = (now - WEEK_MS, now - 2 * WEEK_MS);
    let of_test = "FROM test_observations o LEFT JOIN sessions se ON se.id = o.session_id \
                   WHERE o.repository = s.repository AND o.test = s.test";
    format!(
        "SELECT s.repository, s.test, s.runs, s.failures, s.flaky_failures, \
         s.time_lost_ms, s.first_seen_at, s.last_seen_at, \
         CASE WHEN q.test IS NULL THEN 0 ELSE 1 END AS quarantined, \
         (SELECT CAST(COALESCE(SUM(1 + COALESCE(se.heal_attempts, 0)), 0) AS BIGINT) {of_test}) \
           AS runs_including_retries, \
         (SELECT CAST(COALESCE(SUM(1 + COALESCE(se.heal_attempts, 0) - o.flaky), 0) AS BIGINT) \
           {of_test}) AS failed_attempts, \
         (SELECT COUNT(*) {of_test} AND o.observed_at >= {week}) AS failures_this_week, \
         (SELECT COUNT(*) {of_test} AND o.observed_at >= {fortnight} AND o.observed_at < {week}) \
           AS failures_last_week \
         FROM test_stats s LEFT JOIN quarantine q ON q.repository = s.repository AND q.test = s.test"
    )
}

impl Store {
    /// Records a finished session's failing tests. A session already recorded changes nothing,
    /// so a job taken again after a crash does not count twice. Returns the tests newly counted.
    pub async fn record_test_outcomes(&self, o: &Observation<'_>) -> Result<usize> {
        if o.tests.is_empty() {
            return Ok(0);
        }
        let now = now_ms();
        let flaky = i64::from(o.flaky);
        let lost = o.time_lost_ms.max(0);
        let mut tx = self.begin_write().await?;
        let mut counted = 0;
        for test in o.tests {
            let fresh = sqlx::query(
                "INSERT INTO test_observations (session_id, test, repository, flaky, \
                 time_lost_ms, observed_at) VALUES ($1,$2,$3,$4,$5,$6) ON CONFLICT DO NOTHING",
            )
            .bind(o.session_id)
            .bind(test.as_str())
            .bind(o.repository)
            .bind(flaky)
            .bind(lost)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if fresh == 0 {
                continue;
            }
            sqlx::query(
                "INSERT INTO test_stats (repository, test, runs, failures, flaky_failures, \
                 time_lost_ms, first_seen_at, last_seen_at) VALUES ($1,$2,1,$3,$4,$5,$6,$6) \
                 ON CONFLICT (repository, test) DO UPDATE SET runs = test_stats.runs + 1, \
                 failures = test_stats.failures + excluded.failures, \
                 flaky_failures = test_stats.flaky_failures + excluded.flaky_failures, \
                 time_lost_ms = test_stats.time_lost_ms + excluded.time_lost_ms, \
                 last_seen_at = excluded.last_seen_at",
            )
            .bind(o.repository)
            .bind(test.as_str())
            .bind(1 - flaky)
            .bind(flaky)
            .bind(lost)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            counted += 1;
        }
        tx.commit().await?;
        Ok(counted)
    }

    /// Turns a session's failure observations into flaky ones, when a human says the failure
    /// was flaky (e.g. after re-running it by hand). Returns the tests changed.
    pub async fn mark_flaky(&self, session_id: &str) -> Result<usize> {
        let mut tx = self.begin_write().await?;
        let rows = sqlx::query(
            "SELECT test, repository FROM test_observations WHERE session_id = $1 AND flaky = 0",
        )
        .bind(session_id)
        .fetch_all(&mut *tx)
        .await?;
        for r in &rows {
            let test: String = r.try_get("test")?;
            let repository: String = r.try_get("repository")?;
            sqlx::query(
                "UPDATE test_observations SET flaky = 1 WHERE session_id = $1 AND test = $2",
            )
            .bind(session_id)
            .bind(&test)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "UPDATE test_stats SET failures = failures - 1, \
                 flaky_failures = flaky_failures + 1 WHERE repository = $1 AND test = $2",
            )
            .bind(&repository)
            .bind(&test)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(rows.len())
    }

    /// Statistics of the named tests of one repository (those ever seen failing).
    pub async fn tests_stats(&self, repository: &str, tests: &[String]) -> Result<Vec<TestStats>> {
        let mut out = Vec::new();
        for test in tests {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "{} WHERE s.repository = $1 AND s.test = $2",
                stats_select()
            )))
            .bind(repository)
            .bind(test.as_str())
            .fetch_optional(&self.pool)
            .await?;
            if let Some(r) = row {
                out.push(TestStats::from_row(&r)?);
            }
        }
        Ok(out)
    }

    /// Tests that were flaky at least once, most costly first: ranked by the time their
    /// failures cost, then by how often they failed. `repository` empty means all.
    pub async fn flaky_tests(&self, repository: &str, limit: i64) -> Result<Vec<TestStats>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{} WHERE s.flaky_failures > 0 AND ($1 = '' OR s.repository = $1) \
             ORDER BY s.time_lost_ms DESC, s.runs DESC, s.repository, s.test LIMIT $2",
            stats_select()
        )))
        .bind(repository)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(TestStats::from_row).collect()
    }

    /// Tests that are known flaky (at least one flaky failure), across repositories.
    pub async fn flaky_test_count(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM test_stats WHERE flaky_failures > 0")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    /// Adds (or updates the reason of) a quarantined test, for the default time, unowned.
    pub async fn quarantine_add(
        &self,
        repository: &str,
        test: &str,
        reason: &str,
    ) -> Result<QuarantineEntry> {
        self.quarantine_put(&NewQuarantine {
            repository,
            test,
            reason,
            owner: "",
            expires_at: now_ms() + QUARANTINE_DAYS * 86_400_000,
        })
        .await
    }

    /// Quarantines a test, or renews its quarantine (reason, owner, end date; passes start
    /// over; its ticket stays).
    pub async fn quarantine_put(&self, q: &NewQuarantine<'_>) -> Result<QuarantineEntry> {
        sqlx::query(
            "INSERT INTO quarantine (repository, test, reason, added_at, owner, expires_at, \
             workflow) VALUES ($1,$2,$3,$4,$5,$6,(SELECT s.workflow FROM test_observations o \
             JOIN sessions s ON s.id = o.session_id WHERE o.repository = $1 AND o.test = $2 \
             AND s.workflow <> '' ORDER BY o.observed_at DESC LIMIT 1)) \
             ON CONFLICT (repository, test) DO UPDATE SET \
             reason = excluded.reason, owner = excluded.owner, \
             expires_at = excluded.expires_at, passes_since = 0, \
             workflow = COALESCE(excluded.workflow, quarantine.workflow)",
        )
        .bind(q.repository)
        .bind(q.test)
        .bind(q.reason)
        .bind(now_ms())
        .bind(q.owner)
        .bind(q.expires_at)
        .execute(self.writes())
        .await?;
        self.quarantined_repos.drop_set();
        self.quarantined(q.repository, q.test)
            .await?
            .ok_or_else(|| crate::StoreError::Invalid("the quarantine vanished".into()))
    }

    pub async fn quarantined(
        &self,
        repository: &str,
        test: &str,
    ) -> Result<Option<QuarantineEntry>> {
        let r = sqlx::query("SELECT * FROM quarantine WHERE repository = $1 AND test = $2")
            .bind(repository)
            .bind(test)
            .fetch_optional(&self.pool)
            .await?;
        r.as_ref().map(quarantine_row).transpose()
    }

    /// The ticket filed for a quarantined test.
    pub async fn quarantine_ticket(
        &self,
        repository: &str,
        test: &str,
        ticket_id: &str,
        ticket_url: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE quarantine SET ticket_id = $1, ticket_url = $2, ticket_error = NULL \
             WHERE repository = $3 AND test = $4",
        )
        .bind(ticket_id)
        .bind(ticket_url)
        .bind(repository)
        .bind(test)
        .execute(self.writes())
        .await?;
        Ok(())
    }

    /// Why the quarantined test's ticket could not be filed (it is tried again).
    pub async fn quarantine_ticket_failed(
        &self,
        repository: &str,
        test: &str,
        error: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE quarantine SET ticket_error = $1 \
             WHERE repository = $2 AND test = $3 AND ticket_id IS NULL",
        )
        .bind(error)
        .bind(repository)
        .bind(test)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Lifts a quarantine and queues what follows it (closing its ticket, telling its owner)
    /// in the same transaction, so that a crash loses neither; false (nothing queued) when
    /// it was not quarantined.
    pub async fn quarantine_release(
        &self,
        repository: &str,
        test: &str,
        then: &[Task],
    ) -> Result<bool> {
        let mut tx = self.begin_write().await?;
        let n = sqlx::query("DELETE FROM quarantine WHERE repository = $1 AND test = $2")
            .bind(repository)
            .bind(test)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n > 0 {
            let key = quarantine_key(repository, test);
            let now = now_ms();
            let jobs: Vec<(&str, &Task, i64)> =
                then.iter().map(|t| (key.as_str(), t, now)).collect();
            enqueue_all_in(&mut tx, self.keys(), &jobs).await?;
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    /// A first-attempt green run of `workflow` of `repository`: one more pass for each of its
    /// quarantined tests seen failing in that workflow, or in one unknown. Returns the
    /// repository's quarantined tests with their counts.
    pub async fn quarantine_passed(
        &self,
        repository: &str,
        workflow: Option<&str>,
    ) -> Result<Vec<QuarantineEntry>> {
        if !self.has_quarantine(repository).await? {
            return Ok(vec![]);
        }
        sqlx::query(
            "UPDATE quarantine SET passes_since = passes_since + 1 \
             WHERE repository = $1 AND (workflow IS NULL OR workflow = $2)",
        )
        .bind(repository)
        .bind(workflow)
        .execute(self.writes())
        .await?;
        self.quarantine_list(repository).await
    }

    /// Whether `repository` surely has no quarantined test, by the last read while it is
    /// fresh: intake then need not count a pass at all.
    pub fn surely_unquarantined(&self, repository: &str) -> bool {
        self.quarantined_repos.has(repository) == Some(false)
    }

    /// Whether `repository` has quarantined tests, read again when the last read is stale.
    async fn has_quarantine(&self, repository: &str) -> Result<bool> {
        if let Some(has) = self.quarantined_repos.has(repository) {
            return Ok(has);
        }
        let generation = self.quarantined_repos.generation();
        let repos: Vec<String> = sqlx::query_scalar("SELECT DISTINCT repository FROM quarantine")
            .fetch_all(&self.pool)
            .await?;
        let has = repos.iter().any(|r| r == repository);
        self.quarantined_repos
            .keep(generation, repos.into_iter().collect());
        Ok(has)
    }

    /// Quarantined `tests` of `repository` failed again in `workflow`: their passes start
    /// over, and a quarantine that did not know its workflow learns it.
    pub async fn quarantine_failed(
        &self,
        repository: &str,
        tests: &[String],
        workflow: &str,
    ) -> Result<()> {
        for t in tests {
            sqlx::query(
                "UPDATE quarantine SET passes_since = 0, \
                 workflow = COALESCE(workflow, NULLIF($3, '')) \
                 WHERE repository = $1 AND test = $2",
            )
            .bind(repository)
            .bind(t.as_str())
            .bind(workflow)
            .execute(self.writes())
            .await?;
        }
        Ok(())
    }

    /// Quarantines whose end date passed by `now`.
    pub async fn quarantine_expired(&self, now: i64) -> Result<Vec<QuarantineEntry>> {
        let rows = sqlx::query(
            "SELECT * FROM quarantine WHERE expires_at > 0 AND expires_at <= $1 \
             ORDER BY expires_at LIMIT 100",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(quarantine_row).collect()
    }

    /// Removes a test from quarantine; false when it was not there.
    pub async fn quarantine_remove(&self, repository: &str, test: &str) -> Result<bool> {
        let n = sqlx::query("DELETE FROM quarantine WHERE repository = $1 AND test = $2")
            .bind(repository)
            .bind(test)
            .execute(self.writes())
            .await?
            .rows_affected();
        self.quarantined_repos.drop_set();
        Ok(n > 0)
    }

    /// The quarantine list; `repository` empty means all.
    pub async fn quarantine_list(&self, repository: &str) -> Result<Vec<QuarantineEntry>> {
        let rows = sqlx::query(
            "SELECT * FROM quarantine WHERE ($1 = '' OR repository = $1) \
             ORDER BY repository, test",
        )
        .bind(repository)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(quarantine_row).collect()
    }
}

fn quarantine_row(r: &AnyRow) -> Result<QuarantineEntry> {
    Ok(QuarantineEntry {
        repository: r.try_get("repository")?,
        test: r.try_get("test")?,
        reason: r.try_get("reason")?,
        added_at: r.try_get("added_at")?,
        owner: r.try_get("owner")?,
        expires_at: r.try_get("expires_at")?,
        passes_since: r.try_get("passes_since")?,
        workflow: r.try_get("workflow")?,
        ticket_url: r.try_get("ticket_url")?,
        ticket_error: r.try_get("ticket_error")?,
        ticket_id: r.try_get("ticket_id")?,
    })
}
