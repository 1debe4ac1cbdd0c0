//! Group commit for intake. Deliveries wait in a queue; a writer takes every delivery waiting
//! (up to [`MAX_BATCH`]), stores them in one transaction and answers each only after it
//! committed. While one batch commits the next one gathers, so the batch grows with the load
//! and a lone delivery waits for nobody.
//!
//! SQLite has one writer (it allows only one at a time anyway, and a single writer never waits
//! on the busy timeout); PostgreSQL has a few, so round trips to the server overlap.

use crate::intake::Item;
use crate::{Backend, IntakeResult, Result, Store, StoreError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Most deliveries one transaction takes.
pub(crate) const MAX_BATCH: usize = 256;
/// Deliveries waiting for a writer before submitters wait too.
const QUEUE: usize = 8 * MAX_BATCH;

pub(crate) struct Pending {
    pub(crate) item: Item,
    pub(crate) reply: oneshot::Sender<Result<IntakeResult>>,
}

/// How intake grouped its writes since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IntakeStats {
    /// Transactions that stored a batch.
    pub batches: u64,
    /// Deliveries those transactions stored.
    pub deliveries: u64,
    /// Batches rolled back and written again one delivery at a time (a delivery failed, or
    /// its twin on another replica won).
    pub split: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    batches: AtomicU64,
    deliveries: AtomicU64,
    split: AtomicU64,
}

impl Counters {
    pub(crate) fn stored(&self, n: usize) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.deliveries.fetch_add(n as u64, Ordering::Relaxed);
    }

    pub(crate) fn split(&self) {
        self.split.fetch_add(1, Ordering::Relaxed);
    }
}

/// The queue to the writers, started on first use in the caller's runtime.
#[derive(Default)]
pub(crate) struct Batcher {
    queue: Mutex<Option<mpsc::Sender<Pending>>>,
    counters: Arc<Counters>,
}

impl Batcher {
    pub(crate) fn stats(&self) -> IntakeStats {
        let c = &self.counters;
        IntakeStats {
            batches: c.batches.load(Ordering::Relaxed),
            deliveries: c.deliveries.load(Ordering::Relaxed),
            split: c.split.load(Ordering::Relaxed),
        }
    }

    /// The queue, with writers started when there are none (first use, or their runtime
    /// ended).
    fn queue(&self, store: &Store) -> mpsc::Sender<Pending> {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = q.as_ref().filter(|tx| !tx.is_closed()) {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel(QUEUE);
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let writers = match store.backend {
            Backend::Sqlite => 1,
            Backend::Postgres => 4,
        };
        for _ in 0..writers {
            // The writers' store has a batcher of its own that it never uses: the queue is
            // not kept alive by its own consumers, so it closes when the last store goes.
            let own = Store {
                intake: Default::default(),
                ..store.clone()
            };
            tokio::spawn(write_loop(own, rx.clone(), self.counters.clone()));
        }
        *q = Some(tx.clone());
        tx
    }
}

async fn write_loop(
    store: Store,
    rx: Arc<tokio::sync::Mutex<mpsc::Receiver<Pending>>>,
    counters: Arc<Counters>,
) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut batch = vec![first];
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    Err(_) => break,
                }
            }
            batch
        };
        store.write_batch(batch, &counters).await;
    }
}

impl Store {
    /// Queues one delivery for the next batch and waits until its batch committed.
    pub(crate) async fn submit(&self, item: Item) -> Result<IntakeResult> {
        let (reply, answer) = oneshot::channel();
        let stopped = || StoreError::Invalid("the intake writer stopped; try again".into());
        self.intake
            .queue(self)
            .send(Pending { item, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// How intake grouped its writes.
    pub fn intake_stats(&self) -> IntakeStats {
        self.intake.stats()
    }
}
