//! [`NotificationLog`]: logs every outcome in batches and acks each delivery
//! once its row is committed.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use tracing::{info_span, warn, Instrument};

use super::messages::{Ack, Outcome};
use crate::observe;
use crate::store::models::{now_us, NewNotification};
use crate::store::{Flush, Insert};

/// Lags kept for [`GetLogStats`] percentiles.
const LAGS_KEPT: usize = 100_000;

/// Hands each [`Outcome`]'s row to the batching writer and, once the
/// writer's commit receipt resolves, sends [`Ack`] for its delivery.
///
/// Receives `Outcome` (from the Viber senders), [`Settle`] and
/// [`GetLogStats`]; sends `Insert<NewNotification>` and `Flush` to the
/// writer and `Ack` to the consumer. Owns the count of deliveries whose ack
/// is still owed and the last lags (publish → commit). Nothing is acked
/// before it is durable: if the database is unreachable, receipts wait (the
/// writer retries), acks wait, and the broker's prefetch stops new
/// deliveries. An outcome without a row (the log already had it) is acked
/// at once.
pub struct NotificationLog {
    writer: Recipient<Insert<NewNotification>>,
    flush: Recipient<Flush>,
    acks: Recipient<Ack>,
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Committed tags waiting to go out in the next `Ack`.
    ready: Mutex<Vec<super::messages::DeliveryTag>>,
    owed: AtomicUsize,
    acked: AtomicUsize,
    lags_us: Mutex<VecDeque<i64>>,
}

/// Flushes the writer and resolves once every owed ack has been written
/// to the broker. Shutdown awaits this after draining the senders.
#[derive(Debug)]
pub struct Settle;

impl Message for Settle {
    type Result = ();
}

/// Asks for the log's counters.
#[derive(Debug)]
pub struct GetLogStats;

impl Message for GetLogStats {
    type Result = LogStats;
}

/// What the log has done so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogStats {
    /// Deliveries acked after their row was committed (or found).
    pub acked: usize,
    /// Deliveries whose ack is still owed.
    pub owed: usize,
    /// Publish → commit lag of the last rows, in microseconds, sorted.
    pub lags_us: Vec<i64>,
}

impl LogStats {
    /// The `q` quantile (0..=1) of the lags, in microseconds.
    pub fn lag_quantile_us(&self, q: f64) -> Option<i64> {
        quantile(&self.lags_us, q)
    }
}

/// The `q` quantile of sorted `values` (nearest rank).
pub fn quantile(sorted: &[i64], q: f64) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((q.clamp(0.0, 1.0) * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

impl NotificationLog {
    pub fn new(
        writer: Recipient<Insert<NewNotification>>,
        flush: Recipient<Flush>,
        acks: Recipient<Ack>,
    ) -> Self {
        Self {
            writer,
            flush,
            acks,
            shared: Default::default(),
        }
    }
}

impl Actor for NotificationLog {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
    }
}

/// Restarted after a panic keeping its counters and the tags ready to ack:
/// the commits it awaits run as tasks of their own and ack through them.
/// An `Outcome` whose handling panicked is sent again by the sender.
impl Supervised for NotificationLog {}

impl Handler<Outcome> for NotificationLog {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, outcome: Outcome, _: &mut Context<Self>) -> Self::Result {
        crate::supervise::fault_point("NotificationLog.Outcome");
        let shared = self.shared.clone();
        let writer = self.writer.clone();
        let acks = self.acks.clone();
        shared.owed.fetch_add(1, Ordering::SeqCst);
        let span =
            info_span!("NotificationLog", pipeline = "notify", tx = %outcome.tx, id = %outcome.id);
        let handled = observe::handling("NotificationLog");
        let work = async move {
            let _handled = handled;
            let Outcome { tag, row, .. } = outcome;
            let Some(row) = row else {
                ack(&acks, &shared, tag, None).await;
                return;
            };
            let enqueued = row.enqueued_at_us;
            // Waits while the writer's mailbox is full: back-pressure.
            match observe::queued("BatchWriter", writer.send(Insert(vec![row]))).await {
                Ok(receipt) => {
                    actix::spawn(
                        async move {
                            match receipt.await {
                                Ok(_) => ack(&acks, &shared, tag, Some(enqueued)).await,
                                Err(error) => {
                                    warn!(pipeline = "notify", actor = "NotificationLog", %error, "row not committed, not acking");
                                    shared.owed.fetch_sub(1, Ordering::SeqCst);
                                }
                            }
                        }
                        .in_current_span(),
                    );
                }
                Err(error) => {
                    warn!(pipeline = "notify", actor = "NotificationLog", %error, "writer unreachable, not acking");
                    shared.owed.fetch_sub(1, Ordering::SeqCst);
                }
            }
        };
        Box::pin(work.instrument(span))
    }
}

/// Queues `tag` for acking; the first tag of a burst (the receipts of one
/// commit resolve together) schedules one [`Ack`] carrying all of them.
async fn ack(
    acks: &Recipient<Ack>,
    shared: &Arc<Shared>,
    tag: super::messages::DeliveryTag,
    enqueued_us: Option<i64>,
) {
    if let Some(enqueued) = enqueued_us {
        let lag = (now_us() - enqueued).max(0);
        metrics::histogram!("tasklet_notify_log_lag_seconds").record(lag as f64 / 1e6);
        if let Ok(mut lags) = shared.lags_us.lock() {
            if lags.len() == LAGS_KEPT {
                lags.pop_front();
            }
            lags.push_back(lag);
        }
    }
    let first = match shared.ready.lock() {
        Ok(mut ready) => {
            ready.push(tag);
            ready.len() == 1
        }
        Err(_) => false,
    };
    if !first {
        return;
    }
    // Let the other receipts of this commit join the batch.
    tokio::task::yield_now().await;
    let tags = shared
        .ready
        .lock()
        .map(|mut r| std::mem::take(&mut *r))
        .unwrap_or_default();
    let n = tags.len();
    match observe::queued("AmqpConsumer", acks.send(Ack(tags))).await {
        Ok(()) => {
            shared.acked.fetch_add(n, Ordering::SeqCst);
        }
        Err(error) => {
            warn!(pipeline = "notify", actor = "NotificationLog", %error, "consumer unreachable, acks lost (the broker redelivers)");
        }
    }
    shared.owed.fetch_sub(n, Ordering::SeqCst);
}

impl Handler<Settle> for NotificationLog {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Settle, _: &mut Context<Self>) -> Self::Result {
        let flush = self.flush.clone();
        let shared = self.shared.clone();
        let handled = observe::handling("NotificationLog");
        Box::pin(async move {
            let _handled = handled;
            match observe::queued("BatchWriter", flush.send(Flush)).await {
                Ok(receipt) => {
                    let _ = receipt.await;
                }
                Err(error) => {
                    warn!(pipeline = "notify", actor = "NotificationLog", %error, "writer unreachable at flush");
                }
            }
            while shared.owed.load(Ordering::SeqCst) > 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    }
}

impl Handler<GetLogStats> for NotificationLog {
    type Result = MessageResult<GetLogStats>;

    fn handle(&mut self, _: GetLogStats, _: &mut Context<Self>) -> Self::Result {
        let _handled = observe::handling("NotificationLog");
        let mut lags_us: Vec<i64> = self
            .shared
            .lags_us
            .lock()
            .map(|l| l.iter().copied().collect())
            .unwrap_or_default();
        lags_us.sort_unstable();
        MessageResult(LogStats {
            acked: self.shared.acked.load(Ordering::SeqCst),
            owed: self.shared.owed.load(Ordering::SeqCst),
            lags_us,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::notify::messages::DeliveryTag;
    use crate::store::{BatchWriter, DatabaseSettings, Store};

    /// Collects acks.
    struct Acks(Arc<Mutex<Vec<DeliveryTag>>>);
    impl Actor for Acks {
        type Context = Context<Self>;
    }
    impl Handler<Ack> for Acks {
        type Result = ();
        fn handle(&mut self, Ack(tags): Ack, _: &mut Context<Self>) {
            self.0.lock().unwrap().extend(tags);
        }
    }

    fn row(id: &str) -> NewNotification {
        NewNotification {
            message_id: id.into(),
            transaction_id: "tx".into(),
            receiver: "u".into(),
            status: "completed".into(),
            state: "sent".into(),
            viber_status: Some(0),
            message_token: Some(1),
            attempts: 1,
            error: None,
            enqueued_at_us: now_us(),
            sent_at_us: Some(now_us()),
            logged_at_us: now_us(),
        }
    }

    #[actix_rt::test]
    async fn acks_only_after_commit_and_at_once_without_a_row() {
        let dir = tempfile::tempdir().unwrap();
        let settings = DatabaseSettings {
            url: "sqlite://t.db".into(),
            ..Default::default()
        };
        let store = Store::connect(&settings, dir.path()).await.unwrap();
        store.migrate().await.unwrap();
        let mut ws = settings.writer();
        ws.flush_interval_ms = 60_000; // only Settle flushes
        ws.batch_size = 100;
        let writer = BatchWriter::<NewNotification>::new(store.clone(), ws).start();
        let got = Arc::new(Mutex::new(Vec::new()));
        let acks = Acks(got.clone()).start();
        let log = NotificationLog::new(
            writer.clone().recipient(),
            writer.clone().recipient(),
            acks.recipient(),
        )
        .start();
        let t = |tag| DeliveryTag { channel: 1, tag };
        log.send(Outcome {
            tag: t(1),
            id: "a".into(),
            tx: "t".into(),
            row: Some(row("a")),
        })
        .await
        .unwrap();
        log.send(Outcome {
            tag: t(2),
            id: "b".into(),
            tx: "t".into(),
            row: None,
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The row waits for a flush: only the row-less outcome is acked.
        assert_eq!(*got.lock().unwrap(), vec![t(2)]);
        assert_eq!(log.send(GetLogStats).await.unwrap().owed, 1);
        log.send(Settle).await.unwrap();
        assert_eq!(*got.lock().unwrap(), vec![t(2), t(1)]);
        let stats = log.send(GetLogStats).await.unwrap();
        assert_eq!((stats.acked, stats.owed, stats.lags_us.len()), (2, 0, 1));
        assert!(crate::notify::actions::find_by_message_id(&store, "a")
            .await
            .unwrap()
            .is_some());
    }

    #[test]
    fn quantiles() {
        let v: Vec<i64> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), Some(50));
        assert_eq!(quantile(&v, 0.99), Some(99));
        assert_eq!(quantile(&v, 1.0), Some(100));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
