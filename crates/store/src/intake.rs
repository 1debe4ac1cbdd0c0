//! Intake: storing a delivery, what it implies for its run's session and the session's next
//! job, atomically. The answer is an [`IntakeOutcome`]; the server decides what HTTP says.

use crate::audit::{audit_in, AuditEntry};
use crate::batch::{Counters, Pending};
use crate::crypto::Keyring;
use crate::queue::{enqueue_in, Task};
use crate::sessions::{event_text, log_in, redacted, SessionRecord, SessionStatus};
use crate::{now_ms, Result, Store, StoreError};
use pipeguard_core::event::{FailureEvent, Platform};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;

/// What a delivery says happened to a run.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // built once per delivery, moved once
pub enum Intake {
    /// A run attempt failed.
    Failure(FailureEvent),
    /// A run attempt finished successfully.
    Success {
        repository: String,
        run_id: String,
        attempt: u32,
        finished_at_ms: Option<i64>,
    },
}

impl Intake {
    fn key(&self) -> (&str, &str, i64) {
        match self {
            Intake::Failure(ev) => (&ev.repository, &ev.run_id, ev.attempt as i64),
            Intake::Success {
                repository,
                run_id,
                attempt,
                ..
            } => (repository, run_id, *attempt as i64),
        }
    }

    /// The delivery with secrets masked in the free text it carries, before it is stored.
    fn redacted(self) -> Intake {
        match self {
            Intake::Failure(ev) => Intake::Failure(redacted(ev)),
            success => success,
        }
    }
}

/// What a delivery did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum IntakeOutcome {
    /// A new healing session.
    Created { session_id: String },
    /// Its failure is one a session already covers (a twin delivery, a job of the same
    /// attempt, a run a closed heal started).
    Duplicate {
        session_id: String,
        #[serde(default)]
        status: Option<SessionStatus>,
    },
    /// The outcome of a heal in progress.
    Outcome { session_id: String },
    /// A run handed to people passed on a later attempt.
    PassedLater { session_id: String },
    /// Nothing to heal.
    Ignored { reason: String },
    /// An answer stored by a version that kept HTTP bodies.
    Recorded { status: u16, body: Value },
}

impl IntakeOutcome {
    pub fn session_id(&self) -> Option<&str> {
        match self {
            IntakeOutcome::Created { session_id }
            | IntakeOutcome::Duplicate { session_id, .. }
            | IntakeOutcome::Outcome { session_id }
            | IntakeOutcome::PassedLater { session_id } => Some(session_id),
            IntakeOutcome::Recorded { body, .. } => body["session_id"].as_str(),
            IntakeOutcome::Ignored { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct IntakeResult {
    pub outcome: IntakeOutcome,
    /// True when this delivery id was seen before and the stored outcome is replayed.
    pub replay: bool,
}

/// What a delivery means for the session of its run, decided from the session alone.
enum Route<'a> {
    Duplicate(&'a SessionRecord),
    Outcome(&'a SessionRecord),
    PassedLater(&'a SessionRecord),
    New(&'a FailureEvent),
    Ignore,
}

fn route<'a>(
    intake: &'a Intake,
    latest: Option<&'a SessionRecord>,
    linked: bool,
    run_id: &str,
    attempt: i64,
) -> Route<'a> {
    // The newest attempt the session has seen of this run. A run it does not follow (the
    // original once a heal started another, or a sibling of the run it follows) has
    // nothing new to say.
    let seen = |s: &SessionRecord| {
        if s.event.run_id != run_id {
            i64::MAX
        } else if s.event.run_id != s.run_id {
            s.event.attempt as i64
        } else {
            s.current_attempt
        }
    };
    match (intake, latest) {
        (_, Some(s)) if attempt <= seen(s) => Route::Duplicate(s),
        (_, Some(s))
            if matches!(
                s.status,
                SessionStatus::Executing | SessionStatus::Verifying
            ) =>
        {
            Route::Outcome(s)
        }
        // Same run, same commit: its failing tests were flaky.
        (Intake::Success { .. }, Some(s))
            if s.run_id == run_id
                && matches!(s.status, SessionStatus::Escalated | SessionStatus::Failed) =>
        {
            Route::PassedLater(s)
        }
        // A run a heal started, once its session is closed: never a new heal of its own.
        (_, Some(s)) if linked => Route::Duplicate(s),
        (Intake::Failure(ev), _) => Route::New(ev),
        (Intake::Success { .. }, _) => Route::Ignore,
    }
}

/// A delivery on its way into a batch, prepared outside the writer: redacted, its event
/// already serialized (and sealed), so the writer only decides and writes.
pub(crate) struct Item {
    platform: Platform,
    delivery_id: String,
    run_link: String,
    work: Work,
}

// Items live only while their batch is written; boxing would add an allocation per delivery.
#[allow(clippy::large_enum_variant)]
enum Work {
    Intake {
        intake: Intake,
        /// The `sessions.event` column, should the delivery start a session.
        event: Option<String>,
    },
    Ignored(String),
}

impl Item {
    /// Deliveries of one run stay in arrival order; batches lock rows in the same order, so
    /// concurrent batches on PostgreSQL wait for each other instead of deadlocking.
    fn order(&self) -> (&str, &str, &str) {
        match &self.work {
            Work::Intake { intake, .. } => {
                let (repository, run_id, _) = intake.key();
                (self.platform.as_str(), repository, run_id)
            }
            Work::Ignored(_) => (self.platform.as_str(), "", ""),
        }
    }
}

/// Why a batch was rolled back.
enum Rollback {
    /// A twin of one of its deliveries was committed by another replica meanwhile.
    Raced,
    Failed(StoreError),
}

impl<E: Into<StoreError>> From<E> for Rollback {
    fn from(e: E) -> Self {
        Rollback::Failed(e.into())
    }
}

impl Store {
    /// Stores one verified delivery and what it implies, atomically, in a batch with the
    /// deliveries that arrive with it; returns once the batch committed. The same
    /// `delivery_id` again returns the first outcome and changes nothing. `run_link` is what
    /// ties a run a heal started to its session (the platform says: the run, or its
    /// pipeline).
    pub async fn intake(
        &self,
        platform: Platform,
        delivery_id: &str,
        run_link: &str,
        intake: Intake,
    ) -> Result<IntakeResult> {
        let intake = intake.redacted();
        let event = match &intake {
            Intake::Failure(ev) => Some(event_text(self.keys(), ev)?),
            Intake::Success { .. } => None,
        };
        self.submit(Item {
            platform,
            delivery_id: delivery_id.to_string(),
            run_link: run_link.to_string(),
            work: Work::Intake { intake, event },
        })
        .await
    }

    /// Records a delivery that created nothing (ignored events), so replays answer the same.
    pub async fn record_ignored(
        &self,
        platform: Platform,
        delivery_id: &str,
        reason: &str,
    ) -> Result<IntakeOutcome> {
        let item = Item {
            platform,
            delivery_id: delivery_id.to_string(),
            run_link: String::new(),
            work: Work::Ignored(reason.to_string()),
        };
        Ok(self.submit(item).await?.outcome)
    }

    /// Stores a batch and answers each delivery. A batch that cannot commit whole is written
    /// again one delivery at a time: a failure answers only the delivery it concerns.
    pub(crate) async fn write_batch(&self, batch: Vec<Pending>, counters: &Counters) {
        let (items, replies): (Vec<Item>, Vec<_>) =
            batch.into_iter().map(|p| (p.item, p.reply)).unzip();
        if items.len() > 1 {
            if let Ok(results) = self.store_together(&items).await {
                counters.stored(items.len());
                for (reply, r) in replies.into_iter().zip(results) {
                    let _ = reply.send(Ok(r));
                }
                return;
            }
            counters.split();
        }
        for (item, reply) in items.iter().zip(replies) {
            let r = self.store_alone(item).await;
            if r.is_ok() {
                counters.stored(1);
            }
            let _ = reply.send(r);
        }
    }

    async fn store_alone(&self, item: &Item) -> Result<IntakeResult> {
        match self.store_together(std::slice::from_ref(item)).await {
            Ok(mut r) => Ok(r.remove(0)),
            Err(Rollback::Failed(e)) => Err(e),
            Err(Rollback::Raced) => self
                .find_delivery(item.platform, &item.delivery_id)
                .await?
                .ok_or_else(|| StoreError::Invalid("a concurrent twin was not stored".into())),
        }
    }

    /// One transaction for all `items`, each decided after the ones before it.
    async fn store_together(
        &self,
        items: &[Item],
    ) -> std::result::Result<Vec<IntakeResult>, Rollback> {
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by(|a, b| items[*a].order().cmp(&items[*b].order()));
        let mut results = vec![None; items.len()];
        let mut tx = self.begin_write().await?;
        for i in order {
            results[i] = Some(store_in(&mut tx, self.keys(), &items[i]).await?);
        }
        tx.commit().await?;
        Ok(results.into_iter().flatten().collect())
    }

    pub async fn find_delivery(
        &self,
        platform: Platform,
        delivery_id: &str,
    ) -> Result<Option<IntakeResult>> {
        let mut conn = self.pool.acquire().await?;
        find_delivery_in(&mut conn, platform, delivery_id).await
    }

    pub async fn count_deliveries(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM deliveries")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }
}

/// One delivery inside a batch's transaction: a replay answers what the first delivery got.
async fn store_in(
    conn: &mut sqlx::AnyConnection,
    keys: Option<&Keyring>,
    item: &Item,
) -> std::result::Result<IntakeResult, Rollback> {
    let (platform, delivery_id) = (item.platform, item.delivery_id.as_str());
    if let Some(r) = find_delivery_in(conn, platform, delivery_id).await? {
        return Ok(r);
    }
    let outcome = match &item.work {
        Work::Intake { intake, event } => {
            decide(
                conn,
                keys,
                platform,
                &item.run_link,
                intake,
                event.as_deref(),
            )
            .await?
        }
        Work::Ignored(reason) => IntakeOutcome::Ignored {
            reason: reason.clone(),
        },
    };
    if !insert_delivery(conn, platform, delivery_id, &outcome).await? {
        return Err(Rollback::Raced);
    }
    audit_in(conn, &accepted(platform, delivery_id, &outcome)).await?;
    Ok(IntakeResult {
        outcome,
        replay: false,
    })
}

/// What a delivery means for its run's session, and the rows that follow from it.
async fn decide(
    conn: &mut sqlx::AnyConnection,
    keys: Option<&Keyring>,
    platform: Platform,
    run_link: &str,
    intake: &Intake,
    event: Option<&str>,
) -> Result<IntakeOutcome> {
    let (repository, run_id, attempt) = intake.key();
    let (latest, linked) = related(conn, keys, platform, repository, run_id, run_link).await?;
    Ok(
        match route(intake, latest.as_ref(), linked, run_id, attempt) {
            Route::Duplicate(s) => IntakeOutcome::Duplicate {
                session_id: s.id.clone(),
                status: Some(s.status),
            },
            Route::Outcome(s) => {
                let task = outcome_task(intake, attempt);
                enqueue_in(conn, keys, &s.id, &task, now_ms()).await?;
                IntakeOutcome::Outcome {
                    session_id: s.id.clone(),
                }
            }
            Route::PassedLater(s) => {
                let task = Task::PassedLater { attempt };
                enqueue_in(conn, keys, &s.id, &task, now_ms()).await?;
                IntakeOutcome::PassedLater {
                    session_id: s.id.clone(),
                }
            }
            Route::New(ev) => {
                create_session(conn, keys, platform, ev, event.unwrap_or_default()).await?
            }
            Route::Ignore => IntakeOutcome::Ignored {
                reason: "success of a run pipeguard is not healing".into(),
            },
        },
    )
}

async fn find_delivery_in(
    conn: &mut sqlx::AnyConnection,
    platform: Platform,
    delivery_id: &str,
) -> Result<Option<IntakeResult>> {
    let row = sqlx::query(
        "SELECT status_code, response FROM deliveries \
         WHERE platform = $1 AND delivery_id = $2",
    )
    .bind(platform.as_str())
    .bind(delivery_id)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let response: String = row.try_get("response")?;
    let outcome = match serde_json::from_str(&response) {
        Ok(o) => o,
        Err(_) => IntakeOutcome::Recorded {
            status: row.try_get::<i64, _>("status_code")? as u16,
            body: serde_json::from_str(&response).unwrap_or(Value::Null),
        },
    };
    Ok(Some(IntakeResult {
        outcome,
        replay: true,
    }))
}

/// The audit entry of a delivery stored for the first time.
fn accepted(platform: Platform, delivery_id: &str, outcome: &IntakeOutcome) -> AuditEntry {
    let kind = serde_json::to_value(outcome).unwrap_or(Value::Null)["outcome"].clone();
    AuditEntry::new(
        &format!("webhook:{}", platform.as_str()),
        "webhook.accepted",
        outcome.session_id().unwrap_or(delivery_id),
        serde_json::json!({
            "platform": platform.as_str(),
            "delivery_id": delivery_id,
            "session_id": outcome.session_id(),
            "outcome": kind,
        }),
    )
}

fn outcome_task(intake: &Intake, attempt: i64) -> Task {
    match intake {
        Intake::Success { finished_at_ms, .. } => Task::Outcome {
            attempt,
            success: true,
            finished_at_ms: *finished_at_ms,
            event: None,
        },
        Intake::Failure(ev) => Task::Outcome {
            attempt,
            success: false,
            finished_at_ms: ev.finished_at_ms,
            event: Some(Box::new(ev.clone())),
        },
    }
}

/// The session a delivery's run belongs to: the one a heal linked the run (or its pipeline)
/// to, else the newest session of the run. True when it came through a link.
async fn related(
    conn: &mut sqlx::AnyConnection,
    keys: Option<&Keyring>,
    platform: Platform,
    repository: &str,
    run_id: &str,
    run_link: &str,
) -> Result<(Option<SessionRecord>, bool)> {
    let linked = sqlx::query(
        "SELECT s.* FROM run_links l JOIN sessions s ON s.id = l.session_id \
         WHERE l.platform = $1 AND l.repository = $2 AND l.run_id IN ($3, $4)",
    )
    .bind(platform.as_str())
    .bind(repository)
    .bind(run_id)
    .bind(run_link)
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = linked {
        return Ok((Some(SessionRecord::from_row(&row, keys)?), true));
    }
    let latest = sqlx::query(
        "SELECT * FROM sessions WHERE platform = $1 AND repository = $2 AND run_id = $3 \
         ORDER BY first_attempt DESC LIMIT 1",
    )
    .bind(platform.as_str())
    .bind(repository)
    .bind(run_id)
    .fetch_optional(&mut *conn)
    .await?
    .map(|r| SessionRecord::from_row(&r, keys))
    .transpose()?;
    Ok((latest, false))
}

/// A new session for a failure, with its first job; a session another delivery of the same
/// attempt created first is answered as a duplicate.
async fn create_session(
    conn: &mut sqlx::AnyConnection,
    keys: Option<&Keyring>,
    platform: Platform,
    ev: &FailureEvent,
    event: &str,
) -> Result<IntakeOutcome> {
    let id = uuid::Uuid::new_v4().to_string();
    let now = now_ms();
    let inserted = sqlx::query(
        "INSERT INTO sessions (id, platform, repository, run_id, first_attempt, \
         current_attempt, heal_attempts, status, event, workflow, head_sha, failed_at, \
         created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$5,0,'received',$6,$7,$8,$9,$10,$10) \
         ON CONFLICT DO NOTHING",
    )
    .bind(&id)
    .bind(platform.as_str())
    .bind(&ev.repository)
    .bind(&ev.run_id)
    .bind(ev.attempt as i64)
    .bind(event)
    .bind(&ev.workflow)
    .bind(ev.head_sha.as_deref())
    .bind(ev.finished_at_ms.unwrap_or(now))
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        enqueue_in(conn, keys, &id, &Task::Analyze, now).await?;
        log_in(conn, &id, SessionStatus::Received, "failure received").await?;
        return Ok(IntakeOutcome::Created { session_id: id });
    }
    let row = sqlx::query(
        "SELECT id FROM sessions WHERE platform = $1 AND repository = $2 AND \
         run_id = $3 AND first_attempt = $4",
    )
    .bind(platform.as_str())
    .bind(&ev.repository)
    .bind(&ev.run_id)
    .bind(ev.attempt as i64)
    .fetch_one(&mut *conn)
    .await?;
    Ok(IntakeOutcome::Duplicate {
        session_id: row.try_get("id")?,
        status: None,
    })
}

/// False when the delivery was stored already (a concurrent twin won).
async fn insert_delivery(
    conn: &mut sqlx::AnyConnection,
    platform: Platform,
    delivery_id: &str,
    outcome: &IntakeOutcome,
) -> Result<bool> {
    let n = sqlx::query(
        "INSERT INTO deliveries (platform, delivery_id, session_id, status_code, response, \
         received_at) VALUES ($1,$2,$3,0,$4,$5) ON CONFLICT DO NOTHING",
    )
    .bind(platform.as_str())
    .bind(delivery_id)
    .bind(outcome.session_id())
    .bind(serde_json::to_string(outcome).unwrap_or_default())
    .bind(now_ms())
    .execute(conn)
    .await?
    .rows_affected();
    Ok(n == 1)
}
