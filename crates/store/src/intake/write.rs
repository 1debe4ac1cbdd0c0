//! A batch's transaction in a fixed number of round trips: what the store knows of the batch's
//! runs is read in three statements, every delivery is decided in memory (each seeing the ones
//! before it), and the rows that follow are written in one statement per table.

use super::{stored_outcome, Item, Rollback, Work};
use crate::audit::{audit_all_in, AuditEntry};
use crate::crypto::Keyring;
use crate::queue::{enqueue_all_in, Task};
use crate::rows::values;
use crate::sessions::{log_all_in, SessionRecord, SessionStatus};
use crate::{now_ms, IntakeOutcome};
use pipeguard_core::event::{FailureEvent, Platform};
use sqlx::Row;
use std::collections::{HashMap, HashSet};

/// A run: platform, repository, run id (or the link a heal's run is known by).
type RunKey = (&'static str, String, String);

/// What of a session decides a delivery's route.
#[derive(Debug, Clone)]
pub(super) struct Seen {
    pub(super) id: String,
    pub(super) status: SessionStatus,
    pub(super) run_id: String,
    /// The run and attempt the session follows now (a heal's run once it started one).
    pub(super) event_run_id: String,
    pub(super) event_attempt: i64,
    pub(super) current_attempt: i64,
}

impl From<SessionRecord> for Seen {
    fn from(s: SessionRecord) -> Seen {
        Seen {
            id: s.id,
            status: s.status,
            run_id: s.run_id,
            event_run_id: s.event.run_id,
            event_attempt: s.event.attempt as i64,
            current_attempt: s.current_attempt,
        }
    }
}

/// The store's answers for a batch's deliveries and runs, kept current as the batch decides.
#[derive(Default)]
pub(super) struct View {
    delivered: HashMap<(&'static str, String), IntakeOutcome>,
    linked: HashMap<RunKey, Seen>,
    latest: HashMap<RunKey, Seen>,
}

impl View {
    pub(super) async fn load(
        conn: &mut sqlx::AnyConnection,
        keys: Option<&Keyring>,
        items: &[Item],
    ) -> crate::Result<View> {
        let mut view = View::default();
        view.load_deliveries(conn, items).await?;
        let mut runs: Vec<RunKey> = Vec::new();
        let mut links: Vec<RunKey> = Vec::new();
        for item in items {
            if let Work::Intake { intake, .. } = &item.work {
                let (repository, run_id, _) = intake.key();
                let p = item.platform.as_str();
                runs.push((p, repository.to_string(), run_id.to_string()));
                links.push((p, repository.to_string(), run_id.to_string()));
                links.push((p, repository.to_string(), item.run_link.clone()));
            }
        }
        dedupe(&mut runs);
        dedupe(&mut links);
        view.load_links(conn, keys, &links).await?;
        view.load_latest(conn, keys, &runs).await?;
        Ok(view)
    }

    async fn load_deliveries(
        &mut self,
        conn: &mut sqlx::AnyConnection,
        items: &[Item],
    ) -> crate::Result<()> {
        let sql = format!(
            "SELECT d.platform, d.delivery_id, d.status_code, d.response FROM ({}) AS k \
             JOIN deliveries d ON d.platform = k.column1 AND d.delivery_id = k.column2",
            values(conn, "($, $)", items.len())
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for item in items {
            q = q
                .bind(item.platform.as_str())
                .bind(item.delivery_id.as_str());
        }
        for row in q.fetch_all(&mut *conn).await? {
            let platform: String = row.try_get("platform")?;
            let Some(p) = Platform::parse(&platform) else {
                continue;
            };
            let outcome = stored_outcome(row.try_get("status_code")?, row.try_get("response")?);
            self.delivered
                .insert((p.as_str(), row.try_get("delivery_id")?), outcome);
        }
        Ok(())
    }

    async fn load_links(
        &mut self,
        conn: &mut sqlx::AnyConnection,
        keys: Option<&Keyring>,
        links: &[RunKey],
    ) -> crate::Result<()> {
        if links.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "SELECT l.run_id AS linked_run, s.* FROM ({}) AS k \
             JOIN run_links l ON l.platform = k.column1 AND l.repository = k.column2 \
             AND l.run_id = k.column3 JOIN sessions s ON s.id = l.session_id",
            values(conn, "($, $, $)", links.len())
        );
        for row in bind_runs(sqlx::query(sqlx::AssertSqlSafe(sql)), links)
            .fetch_all(&mut *conn)
            .await?
        {
            let linked_run: String = row.try_get("linked_run")?;
            let s = SessionRecord::from_row(&row, keys)?;
            if let Some(p) = Platform::parse(&s.platform) {
                let key = (p.as_str(), s.repository.clone(), linked_run);
                self.linked.insert(key, s.into());
            }
        }
        Ok(())
    }

    async fn load_latest(
        &mut self,
        conn: &mut sqlx::AnyConnection,
        keys: Option<&Keyring>,
        runs: &[RunKey],
    ) -> crate::Result<()> {
        if runs.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "SELECT s.* FROM ({}) AS k JOIN sessions s ON s.platform = k.column1 \
             AND s.repository = k.column2 AND s.run_id = k.column3 \
             ORDER BY s.first_attempt",
            values(conn, "($, $, $)", runs.len())
        );
        // Ascending: the newest session of each run is the last one kept.
        for row in bind_runs(sqlx::query(sqlx::AssertSqlSafe(sql)), runs)
            .fetch_all(&mut *conn)
            .await?
        {
            let s = SessionRecord::from_row(&row, keys)?;
            if let Some(p) = Platform::parse(&s.platform) {
                let key = (p.as_str(), s.repository.clone(), s.run_id.clone());
                self.latest.insert(key, s.into());
            }
        }
        Ok(())
    }

    /// The outcome stored (or decided earlier in the batch) for a delivery id.
    pub(super) fn delivered(
        &self,
        platform: Platform,
        delivery_id: &str,
    ) -> Option<&IntakeOutcome> {
        self.delivered
            .get(&(platform.as_str(), delivery_id.to_string()))
    }

    /// The session a delivery's run belongs to: the one a heal linked the run (or its
    /// pipeline) to, else the newest session of the run. True when it came through a link.
    pub(super) fn related(
        &self,
        platform: Platform,
        repository: &str,
        run_id: &str,
        run_link: &str,
    ) -> (Option<&Seen>, bool) {
        let key = |run: &str| (platform.as_str(), repository.to_string(), run.to_string());
        let linked = self
            .linked
            .get(&key(run_id))
            .or_else(|| self.linked.get(&key(run_link)));
        match linked {
            Some(s) => (Some(s), true),
            None => (self.latest.get(&key(run_id)), false),
        }
    }

    /// What the batch decided for a delivery, seen by the deliveries after it.
    pub(super) fn decided(&mut self, platform: Platform, delivery_id: &str, o: &IntakeOutcome) {
        self.delivered
            .insert((platform.as_str(), delivery_id.to_string()), o.clone());
    }

    /// A session the batch creates, seen by the deliveries after it.
    pub(super) fn created(&mut self, platform: Platform, id: &str, ev: &FailureEvent) {
        let key = (platform.as_str(), ev.repository.clone(), ev.run_id.clone());
        let attempt = ev.attempt as i64;
        let seen = Seen {
            id: id.to_string(),
            status: SessionStatus::Received,
            run_id: ev.run_id.clone(),
            event_run_id: ev.run_id.clone(),
            event_attempt: attempt,
            current_attempt: attempt,
        };
        self.latest.insert(key, seen);
    }
}

fn dedupe(keys: &mut Vec<RunKey>) {
    let mut seen = HashSet::new();
    keys.retain(|k| seen.insert(k.clone()));
}

fn bind_runs<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    keys: &'q [RunKey],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for (platform, repository, run) in keys {
        q = q
            .bind(*platform)
            .bind(repository.as_str())
            .bind(run.as_str());
    }
    q
}

/// A session the batch creates: the item that creates it and its new id.
pub(super) struct NewSession {
    pub(super) item: usize,
    pub(super) id: String,
}

/// The rows a batch writes, gathered while it decides.
#[derive(Default)]
pub(super) struct Writes {
    pub(super) sessions: Vec<NewSession>,
    /// `(session, task)` for deliveries that are a heal's outcome.
    pub(super) jobs: Vec<(String, Task)>,
    /// `(item, outcome)` for deliveries stored for the first time.
    pub(super) deliveries: Vec<(usize, IntakeOutcome)>,
}

impl Writes {
    /// Writes everything decided. Rows that lose a unique-key race with another replica (a
    /// twin delivery or session committed meanwhile) roll the whole batch back.
    pub(super) async fn flush(
        self,
        conn: &mut sqlx::AnyConnection,
        keys: Option<&Keyring>,
        items: &[Item],
    ) -> Result<(), Rollback> {
        let now = now_ms();
        insert_sessions(conn, items, &self.sessions, now).await?;
        let analyze = Task::Analyze;
        let mut jobs: Vec<(&str, &Task, i64)> = self
            .sessions
            .iter()
            .map(|s| (s.id.as_str(), &analyze, now))
            .collect();
        jobs.extend(self.jobs.iter().map(|(id, t)| (id.as_str(), t, now)));
        enqueue_all_in(conn, keys, &jobs).await?;
        let lines: Vec<_> = self
            .sessions
            .iter()
            .map(|s| (s.id.as_str(), SessionStatus::Received, "failure received"))
            .collect();
        log_all_in(conn, &lines).await?;
        insert_deliveries(conn, items, &self.deliveries, now).await?;
        let entries: Vec<AuditEntry> = self
            .deliveries
            .iter()
            .map(|(i, o)| super::accepted(items[*i].platform, &items[*i].delivery_id, o))
            .collect();
        audit_all_in(conn, &entries).await?;
        Ok(())
    }
}

async fn insert_sessions(
    conn: &mut sqlx::AnyConnection,
    items: &[Item],
    sessions: &[NewSession],
    now: i64,
) -> Result<(), Rollback> {
    if sessions.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO sessions (id, platform, repository, run_id, first_attempt, \
         current_attempt, heal_attempts, status, event, workflow, head_sha, failed_at, \
         created_at, updated_at) {} ON CONFLICT DO NOTHING RETURNING id",
        values(
            conn,
            "($, $, $, $, $, $, 0, 'received', $, $, $, $, $, $)",
            sessions.len()
        )
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for s in sessions {
        let item = &items[s.item];
        let Work::Intake {
            intake: super::Intake::Failure(ev),
            event,
        } = &item.work
        else {
            return Err(Rollback::Failed(crate::StoreError::Invalid(
                "a new session needs a failure".into(),
            )));
        };
        q = q
            .bind(s.id.as_str())
            .bind(item.platform.as_str())
            .bind(ev.repository.as_str())
            .bind(ev.run_id.as_str())
            .bind(ev.attempt as i64)
            .bind(ev.attempt as i64)
            .bind(event.as_deref().unwrap_or_default())
            .bind(ev.workflow.as_str())
            .bind(ev.head_sha.as_deref())
            .bind(ev.finished_at_ms.unwrap_or(now))
            .bind(now)
            .bind(now);
    }
    let inserted = q.fetch_all(&mut *conn).await?.len();
    if inserted < sessions.len() {
        return Err(Rollback::Raced);
    }
    Ok(())
}

async fn insert_deliveries(
    conn: &mut sqlx::AnyConnection,
    items: &[Item],
    deliveries: &[(usize, IntakeOutcome)],
    now: i64,
) -> Result<(), Rollback> {
    if deliveries.is_empty() {
        return Ok(());
    }
    // Ordered by id on every replica, so two batches with shared twins wait for each other
    // instead of deadlocking (PostgreSQL).
    let mut rows: Vec<&(usize, IntakeOutcome)> = deliveries.iter().collect();
    rows.sort_by_key(|(i, _)| (items[*i].platform, items[*i].delivery_id.as_str()));
    let sql = format!(
        "INSERT INTO deliveries (platform, delivery_id, session_id, status_code, response, \
         received_at) {} ON CONFLICT DO NOTHING RETURNING delivery_id",
        values(conn, "($, $, $, 0, $, $)", rows.len())
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (i, outcome) in rows {
        q = q
            .bind(items[*i].platform.as_str())
            .bind(items[*i].delivery_id.as_str())
            .bind(outcome.session_id())
            .bind(serde_json::to_string(outcome).unwrap_or_default())
            .bind(now);
    }
    let inserted = q.fetch_all(&mut *conn).await?.len();
    if inserted < deliveries.len() {
        return Err(Rollback::Raced);
    }
    Ok(())
}
