//! [`AmqpConsumer`]: takes transaction statuses off RabbitMQ.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{info, info_span, warn, Instrument};

use super::messages::{
    Ack, Delivery, DeliveryTag, TransactionStatus, DEAD_REASON_HEADER, PUBLISHED_AT_HEADER,
};
use super::NotifySettings;
use crate::observe;
use crate::store::models::now_us;

/// Consumes the transaction-status queue and hands each valid message to
/// the sender pool; acks deliveries when told their rows are committed.
///
/// Receives [`Ack`] (from the notification log), [`StopIntake`], [`Close`]
/// and [`GetConsumerStats`]; sends [`Delivery`] to its injected
/// `Recipient<Delivery>`. Owns the broker connection and channel. Runs on
/// an arbiter of its own (shared only with the senders). Declares the durable queue (quorum when
/// configured) with a dead-letter exchange and queue, consumes with manual
/// acks and `prefetch`, and reconnects with capped exponential backoff
/// whenever the connection or channel is lost — acks of a lost channel are
/// void, and its deliveries come again flagged `redelivered`. A message
/// that is not valid JSON or breaks the contract is published to the
/// dead-letter exchange with the reason in the `x-tasklet-reason` header,
/// then acked.
pub struct AmqpConsumer {
    settings: NotifySettings,
    sender: Recipient<Delivery>,
    link: Rc<RefCell<Option<Link>>>,
    stop: watch::Sender<bool>,
    stats: Arc<Counters>,
}

/// The live connection and channel, and which one it is.
struct Link {
    generation: u64,
    connection: Connection,
    channel: Channel,
    consumer_tag: ShortString,
    /// Tags handed to the senders (or being dead-lettered) and not acked
    /// yet.
    outstanding: BTreeSet<u64>,
    /// Ack frames go out through one task, in the order they were planned:
    /// a `multiple` ack planned later must never reach the broker before a
    /// single ack of a tag it covers (the broker closes the channel on an
    /// unknown tag).
    acks: mpsc::UnboundedSender<PlannedAck>,
}

/// An [`AckPlan`] on its way to the broker.
struct PlannedAck {
    plan: AckPlan,
    /// Acks of committed rows count as `acked`; dead-lettered poison
    /// messages are counted where they are dead-lettered.
    committed: bool,
    /// Told once the frames are written (or failed).
    done: Option<oneshot::Sender<()>>,
}

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    acked: AtomicU64,
    stale_acks: AtomicU64,
    dead_lettered: AtomicU64,
    connects: AtomicU64,
    /// Channels opened so far, across restarts of the actor: a channel's
    /// tags are told apart by it.
    generations: AtomicU64,
}

/// Stop taking deliveries (basic.cancel); what was taken but not yet handed
/// to the senders is left unacked, so the broker delivers it again later.
#[derive(Debug)]
pub struct StopIntake;

impl Message for StopIntake {
    type Result = ();
}

/// Close the channel and the connection (after the last acks).
#[derive(Debug)]
pub struct Close;

impl Message for Close {
    type Result = ();
}

/// Asks for the consumer's counters.
#[derive(Debug)]
pub struct GetConsumerStats;

impl Message for GetConsumerStats {
    type Result = ConsumerStats;
}

/// What the consumer has done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConsumerStats {
    /// Valid deliveries handed to the senders.
    pub delivered: u64,
    /// Deliveries acked after their row was committed.
    pub acked: u64,
    /// Acks dropped because their channel had closed (they come again).
    pub stale_acks: u64,
    /// Poison messages sent to the dead-letter queue.
    pub dead_lettered: u64,
    /// Successful connections (1 + reconnections).
    pub connects: u64,
    /// Whether a channel is open now.
    pub connected: bool,
}

/// Why a consuming session ended.
#[derive(Debug, thiserror::Error)]
pub enum ConsumerError {
    #[error("broker: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the delivery stream ended")]
    StreamEnded,
    #[error("the dead-letter exchange did not confirm a message")]
    DeadLetterNack,
    #[error("the sender pool is gone")]
    SenderGone,
}

impl AmqpConsumer {
    pub fn new(settings: NotifySettings, sender: Recipient<Delivery>) -> Self {
        Self {
            settings,
            sender,
            link: Rc::new(RefCell::new(None)),
            stop: watch::channel(false).0,
            stats: Default::default(),
        }
    }
}

impl Actor for AmqpConsumer {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(4096);
        let session = Session {
            settings: self.settings.clone(),
            sender: self.sender.clone(),
            link: self.link.clone(),
            stop: self.stop.subscribe(),
            stats: self.stats.clone(),
        };
        ctx.spawn(session.supervise().into_actor(self));
    }
}

/// Restarted after a panic: the consuming loop was dropped with the
/// context, so its channel is closed (the broker delivers its unacked
/// messages again, flagged redelivered, and acks planned for it are void)
/// and `started` opens a new one, numbered after it.
impl Supervised for AmqpConsumer {
    fn restarting(&mut self, _: &mut Context<Self>) {
        if let Some(old) = self.link.borrow_mut().take() {
            unacked(&BTreeSet::new());
            actix_rt::spawn(async move {
                let _ = old.channel.close(200, "restarting".into()).await;
                let _ = old.connection.close(200, "restarting".into()).await;
            });
        }
    }
}

impl Handler<Ack> for AmqpConsumer {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, Ack(tags): Ack, _: &mut Context<Self>) -> Self::Result {
        let _handled = observe::handling("AmqpConsumer");
        let stats = self.stats.clone();
        let mut link = self.link.borrow_mut();
        let Some(link) = link.as_mut() else {
            stats
                .stale_acks
                .fetch_add(tags.len() as u64, Ordering::Relaxed);
            return Box::pin(async {});
        };
        let (current, stale): (Vec<_>, Vec<_>) =
            tags.into_iter().partition(|t| t.channel == link.generation);
        stats
            .stale_acks
            .fetch_add(stale.len() as u64, Ordering::Relaxed);
        let plan = plan_acks(
            &mut link.outstanding,
            current.into_iter().map(|t| t.tag).collect(),
        );
        unacked(&link.outstanding);
        if plan.count == 0 {
            return Box::pin(async {});
        }
        let count = plan.count as u64;
        let (done, sent) = oneshot::channel();
        let planned = PlannedAck {
            plan,
            committed: true,
            done: Some(done),
        };
        if link.acks.send(planned).is_err() {
            stats.stale_acks.fetch_add(count, Ordering::Relaxed);
        }
        // Answer once the frames are out, so that a stop that closes the
        // channel after its last Ack loses none of them.
        Box::pin(async move {
            let _ = sent.await;
        })
    }
}

/// Sends the planned acks of one channel in order, one frame after the
/// other; ends when the channel's link is dropped.
async fn send_acks(
    channel: Channel,
    mut plans: mpsc::UnboundedReceiver<PlannedAck>,
    stats: Arc<Counters>,
) {
    while let Some(PlannedAck {
        plan,
        committed,
        done,
    }) = plans.recv().await
    {
        let frames = plan
            .multiple_up_to
            .map(|t| (t, true))
            .into_iter()
            .chain(plan.singles.iter().map(|&t| (t, false)));
        let mut failed = false;
        for (tag, multiple) in frames {
            if let Err(error) = channel.basic_ack(tag, BasicAckOptions { multiple }).await {
                failed = true;
                warn!(pipeline = "notify", actor = "AmqpConsumer", %error, "ack failed, the broker will redeliver");
            }
        }
        if let Some(done) = done {
            let _ = done.send(());
        }
        if !committed {
            continue;
        }
        if failed {
            stats
                .stale_acks
                .fetch_add(plan.count as u64, Ordering::Relaxed);
        } else {
            stats.acked.fetch_add(plan.count as u64, Ordering::Relaxed);
            metrics::counter!("tasklet_notify_acked_total").increment(plan.count as u64);
        }
    }
}

/// The ack frames for a set of committed tags.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AckPlan {
    /// One `multiple` ack covering every committed tag below the lowest
    /// tag still in the pipeline.
    pub multiple_up_to: Option<u64>,
    /// The committed tags above it, acked one by one.
    pub singles: Vec<u64>,
    /// Tags acked in all.
    pub count: usize,
}

/// Removes `tags` from `outstanding` and plans as few ack frames as
/// possible: a `multiple` ack may only cover tags none of which is still
/// in the pipeline (tags not outstanding at all, such as dead-lettered
/// ones, are already acked and the broker skips them).
pub fn plan_acks(outstanding: &mut BTreeSet<u64>, mut tags: Vec<u64>) -> AckPlan {
    tags.retain(|t| outstanding.remove(t));
    tags.sort_unstable();
    let lowest_open = outstanding.first().copied().unwrap_or(u64::MAX);
    let below = tags.partition_point(|&t| t < lowest_open);
    let count = tags.len();
    let (covered, above) = tags.split_at(below);
    match covered {
        [] => AckPlan {
            multiple_up_to: None,
            singles: above.to_vec(),
            count,
        },
        [single] => AckPlan {
            multiple_up_to: None,
            singles: std::iter::once(*single)
                .chain(above.iter().copied())
                .collect(),
            count,
        },
        [.., last] => AckPlan {
            multiple_up_to: Some(*last),
            singles: above.to_vec(),
            count,
        },
    }
}

impl Handler<StopIntake> for AmqpConsumer {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: StopIntake, _: &mut Context<Self>) -> Self::Result {
        let _handled = observe::handling("AmqpConsumer");
        let _ = self.stop.send(true);
        let current = self
            .link
            .borrow()
            .as_ref()
            .map(|l| (l.channel.clone(), l.consumer_tag.clone()));
        Box::pin(async move {
            if let Some((channel, tag)) = current {
                if let Err(error) = channel
                    .basic_cancel(tag, BasicCancelOptions::default())
                    .await
                {
                    warn!(pipeline = "notify", actor = "AmqpConsumer", %error, "cancel failed");
                }
            }
            info!(
                pipeline = "notify",
                actor = "AmqpConsumer",
                "intake stopped"
            );
        })
    }
}

impl Handler<Close> for AmqpConsumer {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, _: Close, _: &mut Context<Self>) -> Self::Result {
        let _handled = observe::handling("AmqpConsumer");
        let _ = self.stop.send(true);
        let link = self.link.borrow_mut().take();
        let done = async move {
            if let Some(link) = link {
                let _ = link.channel.close(200, "bye".into()).await;
                let _ = link.connection.close(200, "bye".into()).await;
            }
        };
        Box::pin(done.into_actor(self).map(|_, _, ctx| ctx.stop()))
    }
}

impl Handler<GetConsumerStats> for AmqpConsumer {
    type Result = MessageResult<GetConsumerStats>;

    fn handle(&mut self, _: GetConsumerStats, _: &mut Context<Self>) -> Self::Result {
        let _handled = observe::handling("AmqpConsumer");
        let s = &self.stats;
        MessageResult(ConsumerStats {
            delivered: s.delivered.load(Ordering::Relaxed),
            acked: s.acked.load(Ordering::Relaxed),
            stale_acks: s.stale_acks.load(Ordering::Relaxed),
            dead_lettered: s.dead_lettered.load(Ordering::Relaxed),
            connects: s.connects.load(Ordering::Relaxed),
            connected: self.link.borrow().is_some(),
        })
    }
}

/// The supervised consuming loop, spawned on the consumer's context.
struct Session {
    settings: NotifySettings,
    sender: Recipient<Delivery>,
    link: Rc<RefCell<Option<Link>>>,
    stop: watch::Receiver<bool>,
    stats: Arc<Counters>,
}

impl Session {
    /// Consumes until stopped; reconnects with capped exponential backoff.
    async fn supervise(mut self) {
        let initial = Duration::from_millis(self.settings.reconnect_initial_ms);
        let max = Duration::from_millis(self.settings.reconnect_max_ms);
        let mut delay = initial;
        while !*self.stop.borrow() {
            let generation = self.stats.generations.fetch_add(1, Ordering::Relaxed) + 1;
            let started = Instant::now();
            let result = self.consume(generation).await;
            // Whatever the channel was, its tags are void now (unless we stop
            // on purpose: then Close still needs it for the last acks).
            if !*self.stop.borrow() {
                if let Some(old) = self.link.borrow_mut().take() {
                    drop(old);
                    unacked(&BTreeSet::new());
                }
            }
            match result {
                Ok(()) => break,
                Err(error) => {
                    if started.elapsed() > max * 4 {
                        delay = initial;
                    }
                    observe::restarted("AmqpConsumer");
                    warn!(pipeline = "notify", actor = "AmqpConsumer", %error, retry_in_ms = delay.as_millis() as u64, "consumer stopped, reconnecting");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.stop.wait_for(|s| *s) => {}
                    }
                    delay = (delay * 2).min(max);
                }
            }
        }
        info!(
            pipeline = "notify",
            actor = "AmqpConsumer",
            "consumer loop ended"
        );
    }

    /// One connection's life: connect, declare, consume until it breaks.
    /// `Ok` only when stopped on purpose.
    async fn consume(&mut self, generation: u64) -> Result<(), ConsumerError> {
        let s = &self.settings;
        let connection = Connection::connect(
            &s.amqp_url,
            ConnectionProperties::default().with_connection_name("tasklet-notify".into()),
        )
        .await?;
        let channel = connection.create_channel().await?;
        let dead = connection.create_channel().await?;
        dead.confirm_select(ConfirmSelectOptions::default()).await?;
        declare(&channel, s).await?;
        channel
            .basic_qos(s.prefetch, BasicQosOptions::default())
            .await?;
        let consumer_tag: ShortString =
            format!("tasklet-{}-{generation}", std::process::id()).into();
        let mut deliveries = channel
            .basic_consume(
                s.queue.as_str().into(),
                consumer_tag.clone(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let (acks, plans) = mpsc::unbounded_channel();
        actix_rt::spawn(send_acks(channel.clone(), plans, self.stats.clone()));
        *self.link.borrow_mut() = Some(Link {
            generation,
            connection,
            channel: channel.clone(),
            consumer_tag,
            outstanding: BTreeSet::new(),
            acks,
        });
        self.stats.connects.fetch_add(1, Ordering::Relaxed);
        info!(pipeline = "notify", actor = "AmqpConsumer", queue = %s.queue, prefetch = s.prefetch, generation, "consuming");
        loop {
            let next = tokio::select! {
                next = deliveries.next() => next,
                _ = self.stop.wait_for(|s| *s) => return Ok(()),
            };
            let Some(item) = next else {
                return if *self.stop.borrow() {
                    Ok(())
                } else {
                    Err(ConsumerError::StreamEnded)
                };
            };
            let delivery = item?;
            if *self.stop.borrow() {
                // Left unacked: delivered again after we close.
                return Ok(());
            }
            let tag = DeliveryTag {
                channel: generation,
                tag: delivery.delivery_tag,
            };
            match TransactionStatus::parse(&delivery.data) {
                Ok(message) => {
                    let span = info_span!("AmqpConsumer", pipeline = "notify", tx = %message.transaction_id, id = %message.id);
                    let handled = observe::handling("AmqpConsumer");
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("tasklet_notify_received_total").increment(1);
                    let published_at_us = published_at_us(&delivery.properties);
                    if let Some(link) = self.link.borrow_mut().as_mut() {
                        link.outstanding.insert(delivery.delivery_tag);
                        unacked(&link.outstanding);
                    }
                    let send = self.sender.send(Delivery {
                        tag,
                        redelivered: delivery.redelivered,
                        message,
                        published_at_us,
                        received: Instant::now(),
                    });
                    async move {
                        let sent = observe::queued("ViberSender", send).await;
                        drop(handled);
                        sent
                    }
                    .instrument(span)
                    .await
                    .map_err(|_| ConsumerError::SenderGone)?;
                }
                Err(reason) => {
                    let _handled = observe::handling("AmqpConsumer");
                    let reason = reason.to_string();
                    warn!(pipeline = "notify", actor = "AmqpConsumer", tag = delivery.delivery_tag, bytes = delivery.data.len(), %reason, "poison message, dead-lettering");
                    // Outstanding while it is dead-lettered, so that no
                    // `multiple` ack of committed rows covers it before the
                    // dead-letter queue has it.
                    if let Some(link) = self.link.borrow_mut().as_mut() {
                        link.outstanding.insert(delivery.delivery_tag);
                    }
                    dead_letter(&dead, s, &delivery, &reason).await?;
                    if let Some(link) = self.link.borrow_mut().as_mut() {
                        let plan = plan_acks(&mut link.outstanding, vec![delivery.delivery_tag]);
                        let _ = link.acks.send(PlannedAck {
                            plan,
                            committed: false,
                            done: None,
                        });
                    }
                    self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("tasklet_notify_dead_lettered_total").increment(1);
                }
            }
        }
    }
}

/// Sets `tasklet_notify_unacked`: deliveries handed to the senders and
/// not acked yet (at most the prefetch).
fn unacked(outstanding: &BTreeSet<u64>) {
    metrics::gauge!("tasklet_notify_unacked").set(outstanding.len() as f64);
}

/// Declares the dead-letter exchange (fanout) and queue, and the main queue
/// (durable, quorum when configured) pointing at them. Idempotent; the
/// transactions publisher calls it too so that both agree on the arguments.
pub async fn declare(channel: &Channel, s: &NotifySettings) -> Result<(), lapin::Error> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .exchange_declare(
            s.dead_letter_exchange.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(
            s.dead_letter_queue.as_str().into(),
            durable,
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            s.dead_letter_queue.as_str().into(),
            s.dead_letter_exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(s.queue.as_str().into(), durable, queue_arguments(s))
        .await?;
    Ok(())
}

/// The main queue's arguments.
pub fn queue_arguments(s: &NotifySettings) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(s.dead_letter_exchange.as_str().into()),
    );
    if s.quorum {
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
    }
    args
}

/// Publishes a poison message to the dead-letter exchange with `reason` in
/// a header and waits for the broker's confirm.
async fn dead_letter(
    dead: &Channel,
    s: &NotifySettings,
    delivery: &lapin::message::Delivery,
    reason: &str,
) -> Result<(), ConsumerError> {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(
        DEAD_REASON_HEADER.into(),
        AMQPValue::LongString(reason.into()),
    );
    headers.insert(
        "x-tasklet-queue".into(),
        AMQPValue::LongString(s.queue.as_str().into()),
    );
    let properties = delivery
        .properties
        .clone()
        .with_headers(headers)
        .with_delivery_mode(2);
    let confirm = dead
        .basic_publish(
            s.dead_letter_exchange.as_str().into(),
            s.queue.as_str().into(),
            BasicPublishOptions::default(),
            &delivery.data,
            properties,
        )
        .await?
        .await?;
    if confirm.is_nack() {
        return Err(ConsumerError::DeadLetterNack);
    }
    Ok(())
}

/// The publish time: the `x-published-at-us` header, else the `timestamp`
/// property (seconds), else now.
pub fn published_at_us(properties: &BasicProperties) -> i64 {
    let header =
        properties
            .headers()
            .as_ref()
            .and_then(|h| match h.inner().get(PUBLISHED_AT_HEADER) {
                Some(AMQPValue::LongLongInt(v)) => Some(*v),
                Some(AMQPValue::LongInt(v)) => Some(i64::from(*v)),
                Some(AMQPValue::LongUInt(v)) => Some(i64::from(*v)),
                Some(AMQPValue::Timestamp(v)) => i64::try_from(*v).ok(),
                _ => None,
            });
    header
        .or_else(|| {
            properties
                .timestamp()
                .and_then(|t| i64::try_from(t).ok())
                .map(|s| s.saturating_mul(1_000_000))
        })
        .unwrap_or_else(now_us)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_time_prefers_the_header_then_the_timestamp() {
        let mut h = FieldTable::default();
        h.insert(PUBLISHED_AT_HEADER.into(), AMQPValue::LongLongInt(42));
        let p = BasicProperties::default().with_headers(h).with_timestamp(7);
        assert_eq!(published_at_us(&p), 42);
        let p = BasicProperties::default().with_timestamp(7);
        assert_eq!(published_at_us(&p), 7_000_000);
        let before = now_us();
        assert!(published_at_us(&BasicProperties::default()) >= before);
    }

    #[test]
    fn acks_collapse_into_one_multiple_frame_below_the_lowest_open_tag() {
        let mut open: BTreeSet<u64> = (1..=10).collect();
        // 1..=4 committed, 5 still in flight, 7 committed.
        let plan = plan_acks(&mut open, vec![3, 1, 2, 4, 7]);
        assert_eq!(
            plan,
            AckPlan {
                multiple_up_to: Some(4),
                singles: vec![7],
                count: 5
            }
        );
        assert_eq!(open.iter().copied().collect::<Vec<_>>(), [5, 6, 8, 9, 10]);
        // A lone tag below the lowest open one goes as a single ack.
        let plan = plan_acks(&mut open, vec![5]);
        assert_eq!(plan.singles, vec![5]);
        assert_eq!(plan.multiple_up_to, None);
        // Unknown (already acked) tags are ignored.
        let plan = plan_acks(&mut open, vec![5, 99]);
        assert_eq!(plan.count, 0);
        // Everything committed: one frame.
        let plan = plan_acks(&mut open, vec![6, 8, 9, 10]);
        assert_eq!(plan.multiple_up_to, Some(10));
        assert!(plan.singles.is_empty());
        assert!(open.is_empty());
    }

    #[test]
    fn quorum_is_an_argument() {
        let mut s = NotifySettings::default();
        assert!(!queue_arguments(&s).contains_key("x-queue-type"));
        assert!(queue_arguments(&s).contains_key("x-dead-letter-exchange"));
        s.quorum = true;
        assert!(queue_arguments(&s).contains_key("x-queue-type"));
    }
}
