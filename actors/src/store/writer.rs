//! [`BatchWriter`]: the batching DB-writer actor every pipeline logs through.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};
use tracing::{debug, info_span, warn, Instrument};

use super::{BatchRow, Store, WriterSettings};

/// Why a batch was flushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FlushTrigger {
    /// `batch_size` rows were waiting.
    Full,
    /// `flush_interval_ms` passed since the first waiting row.
    Timeout,
    /// An explicit [`Flush`] (shutdown, or a caller that cannot wait).
    Shutdown,
}

impl FlushTrigger {
    pub fn as_str(self) -> &'static str {
        match self {
            FlushTrigger::Full => "full",
            FlushTrigger::Timeout => "timeout",
            FlushTrigger::Shutdown => "shutdown",
        }
    }
}

/// Sent to the caller once its rows are committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// Rows in the committed batch (this caller's and others').
    pub batch_rows: usize,
    /// What made the batch flush.
    pub trigger: FlushTrigger,
}

/// Why a commit signal will never come.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum WriteError {
    #[error("the writer stopped before the rows were committed")]
    Stopped,
}

/// Resolves once the rows it was handed out for are committed.
#[derive(Debug)]
pub struct CommitReceipt(oneshot::Receiver<Committed>);

impl std::future::Future for CommitReceipt {
    type Output = Result<Committed, WriteError>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        std::pin::Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.map_err(|_| WriteError::Stopped))
    }
}

/// Rows to store. The reply comes as soon as the rows are buffered (a full
/// mailbox makes `send().await` wait: that is the back-pressure); await the
/// [`CommitReceipt`] to learn when they are committed.
pub struct Insert<R>(pub Vec<R>);

impl<R> std::fmt::Debug for Insert<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Insert({} rows)", self.0.len())
    }
}

impl<R: BatchRow> Message for Insert<R> {
    type Result = CommitReceipt;
}

/// Commit whatever is waiting now; the receipt resolves when it is durable
/// (at once when nothing waits). Shutdown awaits this.
#[derive(Debug)]
pub struct Flush;

impl Message for Flush {
    type Result = CommitReceipt;
}

/// Asks for the writer's counters.
#[derive(Debug)]
pub struct GetStats;

impl Message for GetStats {
    type Result = WriterStats;
}

/// What a writer has done so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriterStats {
    pub rows_committed: u64,
    pub rows_new: u64,
    pub batches: u64,
    pub full: u64,
    pub timeout: u64,
    pub shutdown: u64,
    pub failed_attempts: u64,
}

/// Collects rows of type `R` and commits them in batches.
///
/// Receives [`Insert`] and [`Flush`]; owns the waiting rows and the
/// callers' commit receipts. A batch is committed when `batch_size` rows
/// wait or `flush_interval_ms` after the first of them, whichever comes
/// first, as one transaction of multi-row `INSERT … ON CONFLICT DO NOTHING`.
/// Up to `commits_in_flight` batches commit at once while the next one
/// fills; when all of them are busy and another batch is full, the actor
/// takes no new message until one finishes, so its mailbox (bounded by
/// `mailbox`) fills and senders wait: rows are never dropped and memory is
/// bounded. A failed commit keeps the batch and is retried with capped
/// exponential backoff; receipts resolve only after the commit succeeded.
pub struct BatchWriter<R: BatchRow> {
    store: Store,
    settings: WriterSettings,
    rows: Vec<R>,
    receipts: Vec<oneshot::Sender<Committed>>,
    /// One permit per batch that may commit at once.
    commits: Arc<Semaphore>,
    /// Bumped on every flush so that a stale timer does nothing.
    generation: u64,
    /// Updated by the commit tasks, read by [`GetStats`].
    stats: Arc<Mutex<WriterStats>>,
    /// The pipeline this writer serves, for logs and metrics.
    pipeline: &'static str,
}

impl<R: BatchRow> BatchWriter<R> {
    pub fn new(store: Store, settings: WriterSettings) -> Self {
        Self {
            store,
            rows: Vec::with_capacity(settings.batch_size),
            commits: Arc::new(Semaphore::new(settings.commits_in_flight.max(1))),
            settings,
            receipts: Vec::new(),
            generation: 0,
            stats: Arc::default(),
            pipeline: "store",
        }
    }

    /// Names the pipeline this writer serves (logs and metrics say it).
    pub fn for_pipeline(mut self, pipeline: &'static str) -> Self {
        self.pipeline = pipeline;
        self
    }

    fn receipt(&mut self) -> CommitReceipt {
        let (tx, rx) = oneshot::channel();
        self.receipts.push(tx);
        CommitReceipt(rx)
    }

    /// Hands the waiting rows to a commit; if every commit slot is busy,
    /// the actor takes no other message until one frees up.
    fn flush(&mut self, ctx: &mut Context<Self>, trigger: FlushTrigger) {
        self.generation += 1;
        let rows = Arc::new(std::mem::replace(
            &mut self.rows,
            Vec::with_capacity(self.settings.batch_size),
        ));
        let receipts = std::mem::take(&mut self.receipts);
        metrics::gauge!("tasklet_db_pending_rows", "table" => R::TABLE).set(0.0);
        match self.commits.clone().try_acquire_owned() {
            Ok(permit) => self.commit(permit, rows, receipts, trigger),
            Err(_) => {
                let commits = self.commits.clone();
                ctx.wait(
                    async move { commits.acquire_owned().await }
                        .into_actor(self)
                        .map(move |permit, act, _| {
                            if let Ok(permit) = permit {
                                act.commit(permit, rows, receipts, trigger);
                            }
                        }),
                );
            }
        }
    }

    /// Commits `rows` (retrying until it succeeds), then resolves `receipts`.
    /// Runs as a task of its own, outside the actor's context, so that it
    /// goes on while the actor waits for a commit slot.
    fn commit(
        &mut self,
        permit: OwnedSemaphorePermit,
        rows: Arc<Vec<R>>,
        receipts: Vec<oneshot::Sender<Committed>>,
        trigger: FlushTrigger,
    ) {
        let store = self.store.clone();
        let settings = self.settings.clone();
        let stats = self.stats.clone();
        let batch_rows = rows.len();
        let span = info_span!(
            "flush",
            pipeline = self.pipeline,
            actor = "BatchWriter",
            table = R::TABLE,
            rows = batch_rows,
            trigger = trigger.as_str()
        );
        let commit = async move {
            let started = Instant::now();
            let mut delay = Duration::from_millis(settings.retry_initial_ms);
            let mut failures = 0u64;
            let mut new = 0;
            while !rows.is_empty() {
                match store.insert_batch(rows.clone()).await {
                    Ok(n) => {
                        new = n;
                        break;
                    }
                    Err(error) => {
                        failures += 1;
                        metrics::counter!("tasklet_db_commit_failures_total", "table" => R::TABLE).increment(1);
                        warn!(%error, attempt = failures, retry_in_ms = delay.as_millis() as u64, "commit failed, keeping the batch");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_millis(settings.retry_max_ms));
                    }
                }
            }
            drop(permit);
            let elapsed = started.elapsed();
            if let Ok(mut stats) = stats.lock() {
                stats.failed_attempts += failures;
                if batch_rows > 0 {
                    stats.batches += 1;
                    stats.rows_committed += batch_rows as u64;
                    stats.rows_new += new as u64;
                    match trigger {
                        FlushTrigger::Full => stats.full += 1,
                        FlushTrigger::Timeout => stats.timeout += 1,
                        FlushTrigger::Shutdown => stats.shutdown += 1,
                    }
                }
            }
            if batch_rows > 0 {
                metrics::counter!("tasklet_db_flush_total", "table" => R::TABLE, "trigger" => trigger.as_str()).increment(1);
                metrics::counter!("tasklet_db_rows_total", "table" => R::TABLE).increment(batch_rows as u64);
                metrics::histogram!("tasklet_db_batch_rows", "table" => R::TABLE).record(batch_rows as f64);
                metrics::histogram!("tasklet_db_commit_seconds", "table" => R::TABLE).record(elapsed.as_secs_f64());
                debug!(table = R::TABLE, rows = batch_rows, new, trigger = trigger.as_str(), elapsed_ms = elapsed.as_millis() as u64, "batch committed");
            }
            let committed = Committed { batch_rows, trigger };
            for receipt in receipts {
                let _ = receipt.send(committed);
            }
        }
        .instrument(span);
        actix_rt::spawn(commit);
    }
}

impl<R: BatchRow> Actor for BatchWriter<R> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(self.settings.mailbox);
    }
}

/// Restarted after a panic keeping the rows that wait and their receipts;
/// commits in flight run as tasks of their own and resolve theirs. The
/// flush timer was dropped with the context, so what waits is flushed now.
impl<R: BatchRow> Supervised for BatchWriter<R> {
    fn restarting(&mut self, ctx: &mut Context<Self>) {
        if !self.rows.is_empty() {
            self.flush(ctx, FlushTrigger::Timeout);
        }
    }
}

impl<R: BatchRow> Handler<Insert<R>> for BatchWriter<R> {
    type Result = MessageResult<Insert<R>>;

    fn handle(&mut self, Insert(rows): Insert<R>, ctx: &mut Context<Self>) -> Self::Result {
        let _handled = crate::observe::handling("BatchWriter");
        let was_empty = self.rows.is_empty();
        self.rows.extend(rows);
        let receipt = self.receipt();
        metrics::gauge!("tasklet_db_pending_rows", "table" => R::TABLE).set(self.rows.len() as f64);
        if self.rows.len() >= self.settings.batch_size {
            self.flush(ctx, FlushTrigger::Full);
        } else if was_empty && !self.rows.is_empty() {
            let generation = self.generation;
            ctx.run_later(self.settings.flush_interval(), move |act, ctx| {
                if act.generation == generation && !act.rows.is_empty() {
                    act.flush(ctx, FlushTrigger::Timeout);
                }
            });
        }
        MessageResult(receipt)
    }
}

impl<R: BatchRow> Handler<Flush> for BatchWriter<R> {
    type Result = MessageResult<Flush>;

    /// Commits what waits, and answers once it and every batch still
    /// committing from before are durable.
    fn handle(&mut self, _: Flush, ctx: &mut Context<Self>) -> Self::Result {
        let _handled = crate::observe::handling("BatchWriter");
        let batch_rows = self.rows.len();
        self.flush(ctx, FlushTrigger::Shutdown);
        let (tx, rx) = oneshot::channel();
        let commits = self.commits.clone();
        let slots = self.settings.commits_in_flight.max(1) as u32;
        actix_rt::spawn(async move {
            // Holding every slot at once means no commit is left running.
            if let Ok(all) = commits.acquire_many_owned(slots).await {
                drop(all);
                let _ = tx.send(Committed {
                    batch_rows,
                    trigger: FlushTrigger::Shutdown,
                });
            }
        });
        MessageResult(CommitReceipt(rx))
    }
}

impl<R: BatchRow> Handler<GetStats> for BatchWriter<R> {
    type Result = MessageResult<GetStats>;

    fn handle(&mut self, _: GetStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.stats.lock().map(|s| s.clone()).unwrap_or_default())
    }
}
