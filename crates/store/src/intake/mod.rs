//! Intake: storing a delivery, what it implies for its run's session and the session's next
//! job, atomically. The answer is an [`IntakeOutcome`]; the server decides what HTTP says.

mod write;

use crate::audit::AuditEntry;
use crate::batch::{Counters, Pending};
use crate::queue::Task;
use crate::sessions::{event_text, redacted, SessionStatus};
use crate::{Result, Store, StoreError};
use pipeguard_core::event::{FailureEvent, Platform};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;
use write::{NewSession, Seen, View, Writes};

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
    /// A person re-ran a run pipeguard only observed.
    Rerun { session_id: String },
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
            | IntakeOutcome::PassedLater { session_id }
            | IntakeOutcome::Rerun { session_id } => Some(session_id),
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
enum Route<'s, 'i> {
    Duplicate(&'s Seen),
    Outcome(&'s Seen),
    PassedLater(&'s Seen),
    Rerun(&'s Seen),
    New(&'i FailureEvent),
    Ignore,
}

fn route<'s, 'i>(
    intake: &'i Intake,
    latest: Option<&'s Seen>,
    linked: bool,
    run_id: &str,
    attempt: i64,
) -> Route<'s, 'i> {
    // The newest attempt the session has seen of this run. A run it does not follow (the
    // original once a heal started another, or a sibling of the run it follows) has
    // nothing new to say.
    let seen = |s: &Seen| {
        if s.event_run_id != run_id {
            i64::MAX
        } else if s.event_run_id != s.run_id {
            s.event_attempt
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
        // Observe mode's evidence: a person re-ran the run pipeguard left alone. It is
        // measured against the decision, never healed again.
        (_, Some(s)) if s.run_id == run_id && s.status == SessionStatus::Observed => {
            Route::Rerun(s)
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

    /// A delivery whose transaction lost a race is decided again: what it lost to (its twin,
    /// or a session of its run) is committed and visible then.
    async fn store_alone(&self, item: &Item) -> Result<IntakeResult> {
        for _ in 0..3 {
            match self.store_together(std::slice::from_ref(item)).await {
                Ok(mut r) => return Ok(r.remove(0)),
                Err(Rollback::Failed(e)) => return Err(e),
                Err(Rollback::Raced) => continue,
            }
        }
        Err(StoreError::Invalid(
            "the delivery lost three races with other replicas in a row".into(),
        ))
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
        let mut view = View::load(&mut tx, self.keys(), items).await?;
        let mut writes = Writes::default();
        for i in order {
            results[i] = Some(decide(&mut view, &mut writes, items, i));
        }
        writes.flush(&mut tx, self.keys(), items).await?;
        tx.commit().await?;
        Ok(results.into_iter().flatten().collect())
    }

    pub async fn find_delivery(
        &self,
        platform: Platform,
        delivery_id: &str,
    ) -> Result<Option<IntakeResult>> {
        let row = sqlx::query(
            "SELECT status_code, response FROM deliveries \
             WHERE platform = $1 AND delivery_id = $2",
        )
        .bind(platform.as_str())
        .bind(delivery_id)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(IntakeResult {
            outcome: stored_outcome(row.try_get("status_code")?, row.try_get("response")?),
            replay: true,
        }))
    }

    pub async fn count_deliveries(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM deliveries")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }
}

/// Decides delivery `i` of a batch against what the store and the batch's earlier deliveries
/// say: a replay answers what the first delivery got.
fn decide(view: &mut View, writes: &mut Writes, items: &[Item], i: usize) -> IntakeResult {
    let item = &items[i];
    if let Some(o) = view.delivered(item.platform, &item.delivery_id) {
        return IntakeResult {
            outcome: o.clone(),
            replay: true,
        };
    }
    let outcome = match &item.work {
        Work::Intake { intake, .. } => decide_intake(view, writes, item, intake, i),
        Work::Ignored(reason) => IntakeOutcome::Ignored {
            reason: reason.clone(),
        },
    };
    view.decided(item.platform, &item.delivery_id, &outcome);
    writes.deliveries.push((i, outcome.clone()));
    IntakeResult {
        outcome,
        replay: false,
    }
}

/// What a delivery means for its run's session, and the rows that follow from it.
fn decide_intake(
    view: &mut View,
    writes: &mut Writes,
    item: &Item,
    intake: &Intake,
    i: usize,
) -> IntakeOutcome {
    let (repository, run_id, attempt) = intake.key();
    let (latest, linked) = view.related(item.platform, repository, run_id, &item.run_link);
    let (outcome, task) = match route(intake, latest, linked, run_id, attempt) {
        Route::Duplicate(s) => (
            IntakeOutcome::Duplicate {
                session_id: s.id.clone(),
                status: Some(s.status),
            },
            None,
        ),
        Route::Outcome(s) => (
            IntakeOutcome::Outcome {
                session_id: s.id.clone(),
            },
            Some(outcome_task(intake, attempt)),
        ),
        Route::PassedLater(s) => (
            IntakeOutcome::PassedLater {
                session_id: s.id.clone(),
            },
            Some(passed_later(intake, attempt)),
        ),
        Route::Rerun(s) => (
            IntakeOutcome::Rerun {
                session_id: s.id.clone(),
            },
            Some(rerun_task(intake, attempt)),
        ),
        Route::New(ev) => {
            // Time-ordered: a new session appends to the id index instead of touching a random
            // page of it (fewer pages written per batch).
            let id = crate::new_session_id();
            view.created(item.platform, &id, ev);
            writes.sessions.push(NewSession {
                item: i,
                id: id.clone(),
            });
            return IntakeOutcome::Created { session_id: id };
        }
        Route::Ignore => (
            IntakeOutcome::Ignored {
                reason: "success of a run pipeguard is not healing".into(),
            },
            None,
        ),
    };
    if let (Some(task), Some(id)) = (task, outcome.session_id()) {
        writes.jobs.push((id.to_string(), task));
    }
    outcome
}

/// The outcome a stored delivery got, as its replay answers it.
fn stored_outcome(status_code: i64, response: String) -> IntakeOutcome {
    match serde_json::from_str(&response) {
        Ok(o) => o,
        Err(_) => IntakeOutcome::Recorded {
            status: status_code as u16,
            body: serde_json::from_str(&response).unwrap_or(Value::Null),
        },
    }
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

fn passed_later(intake: &Intake, attempt: i64) -> Task {
    let finished_at_ms = match intake {
        Intake::Success { finished_at_ms, .. } => *finished_at_ms,
        Intake::Failure(ev) => ev.finished_at_ms,
    };
    Task::PassedLater {
        attempt,
        finished_at_ms,
    }
}

fn rerun_task(intake: &Intake, attempt: i64) -> Task {
    let (success, at_ms) = match intake {
        Intake::Success { finished_at_ms, .. } => (true, *finished_at_ms),
        Intake::Failure(ev) => (false, ev.started_at_ms.or(ev.finished_at_ms)),
    };
    Task::Rerun {
        attempt,
        success,
        at_ms,
    }
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
