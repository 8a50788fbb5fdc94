//! Wiring of the notify pipeline: which actors start, in what order, how they
//! stop, and what the HTTP layer gets to reach them.
//!
//! Sink first: the batching writer, then the notification log, then the
//! Viber sender pool, then the AMQP consumer. The consumer and the senders
//! share an arbiter of their own (the latency path); the log and the writer
//! run on the system arbiter. Each is restarted in place after a panic
//! ([`tasklet_actors::supervise`]); the consumer also reconnects on its own
//! whenever the broker connection is lost. On
//! stop: intake (cancel the consumer), drain (wait for every send in
//! flight), flush (commit the log, write the last acks, close the channel).

use actix::prelude::*;
use anyhow::Context as _;
use tasklet_actors::notify::{
    AmqpConsumer, Close, ConsumerStats, Drain, GetConsumerStats, GetLogStats, LogStats,
    NotificationLog, NotifySettings, Settle, StopIntake, ViberSender,
};
use tasklet_actors::store::models::NewNotification;
use tasklet_actors::store::{BatchWriter, Store, WriterSettings};
use tasklet_actors::supervise;

use crate::config::{Config, Secrets};
use crate::topology::Topology;

/// What the HTTP handlers (and tests) of the notify pipeline need; cheap to
/// clone.
#[derive(Clone)]
pub struct NotifyHandle {
    /// The Viber token, which also keys the webhook signatures.
    pub token: String,
    pub settings: NotifySettings,
    consumer: Addr<AmqpConsumer>,
    log: Addr<NotificationLog>,
}

impl NotifyHandle {
    /// The consumer's counters (delivered, acked, reconnections …).
    pub async fn consumer_stats(&self) -> anyhow::Result<ConsumerStats> {
        Ok(self.consumer.send(GetConsumerStats).await?)
    }

    /// The log's counters and publish → commit lags.
    pub async fn log_stats(&self) -> anyhow::Result<LogStats> {
        Ok(self.log.send(GetLogStats).await?)
    }
}

/// The log's batching settings: `[database]`'s, with the batch size capped
/// at half of `notify.prefetch`. The broker never has more than `prefetch`
/// deliveries unacked, and none is acked before its batch commits, so a
/// larger batch could never fill: every batch would wait for the timer and
/// throughput would stop at `prefetch / flush_interval`.
pub fn log_writer_settings(config: &Config) -> WriterSettings {
    let mut settings = config.database.writer();
    let half_window = usize::from(config.notify.prefetch / 2).max(1);
    settings.batch_size = settings.batch_size.min(half_window);
    settings
}

/// Starts the notify pipeline's actors sink-first and registers their stop
/// stages on `topology`.
pub async fn start(
    config: &Config,
    secrets: &Secrets,
    store: &Store,
    topology: &mut Topology,
) -> anyhow::Result<NotifyHandle> {
    let settings = config.notify.clone();
    let token = secrets
        .viber_auth_token
        .clone()
        .context("notify.enabled needs VIBER_AUTH_TOKEN in the environment")?;

    // Every actor is restarted in place after a panic (`supervise`).
    let writer = BatchWriter::<NewNotification>::new(store.clone(), log_writer_settings(config));
    let writer = supervise::start("BatchWriter", |_| writer);

    // The consumer is created first (not started) so that the log can be
    // given its address; it starts last, on an arbiter of its own, once
    // everything downstream runs.
    let consumer_arbiter = Arbiter::new();
    let (consumer_tx, consumer_rx) = actix::dev::channel::channel::<AmqpConsumer>(4096);
    let consumer_addr = Addr::new(consumer_tx);

    let log = NotificationLog::new(
        writer.clone().recipient(),
        writer.clone().recipient(),
        consumer_addr.clone().recipient(),
    );
    let log = supervise::start("NotificationLog", |_| log);
    // The senders share the consumer's arbiter: the hot path (delivery →
    // HTTP request) then stays on one thread, with no cross-thread wake-up.
    let sender = ViberSender::new(
        settings.clone(),
        config.pools.viber_senders,
        token.clone(),
        store.clone(),
        log.clone().recipient(),
    )?;
    let sender =
        supervise::start_in_arbiter(&consumer_arbiter.handle(), "ViberSender", move |_| sender);

    let (consumer_settings, deliveries) = (settings.clone(), sender.clone().recipient());
    consumer_arbiter.spawn(async move {
        let ctx = Context::with_receiver(consumer_rx);
        let consumer = AmqpConsumer::new(consumer_settings, deliveries);
        supervise::run("AmqpConsumer", ctx, consumer);
    });

    let c = consumer_addr.clone();
    topology.on_stop("notify: stop intake", move || {
        Box::pin(async move {
            let _ = c.send(StopIntake).await;
        })
    });
    let s = sender.clone();
    topology.on_stop("notify: drain senders", move || {
        Box::pin(async move {
            let _ = s.send(Drain).await;
        })
    });
    let (l, c) = (log.clone(), consumer_addr.clone());
    topology.on_stop("notify: flush log and ack", move || {
        Box::pin(async move {
            let _ = l.send(Settle).await;
            let _ = c.send(Close).await;
            consumer_arbiter.stop();
        })
    });

    Ok(NotifyHandle {
        token,
        settings,
        consumer: consumer_addr,
        log,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_batch_fits_in_half_the_prefetch_window() {
        let mut config = Config::default();
        config.notify.prefetch = 256;
        assert_eq!(log_writer_settings(&config).batch_size, 128);
        config.notify.prefetch = 1;
        assert_eq!(log_writer_settings(&config).batch_size, 1);
        config.notify.prefetch = 10_000;
        config.database.batch_size = 1000;
        assert_eq!(log_writer_settings(&config).batch_size, 1000);
    }
}
