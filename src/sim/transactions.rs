//! `tasklet sim transactions`: publishes transaction-status messages (the
//! notify pipeline's contract) to RabbitMQ at a given rate, with publisher
//! confirms pipelined (a window of unconfirmed publishes, not one round
//! trip per message), so that the publisher is never the bottleneck.
//!
//! Each message carries its publish time in the `x-published-at-us`
//! header. If the broker goes away mid-run, the publisher reconnects with
//! capped backoff and publishes again every message not yet confirmed (so
//! a message may reach the queue twice; the consumer recognises the id).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use clap::Args;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::PublisherConfirm;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use tasklet_actors::notify::messages::{TransactionStatus, User, PUBLISHED_AT_HEADER};
use tasklet_actors::notify::{declare, NotifySettings};
use tasklet_actors::store::models::now_us;
use tracing::warn;

/// `tasklet sim transactions` arguments.
#[derive(Debug, Clone, Args)]
pub struct TransactionsArgs {
    /// The broker.
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp_url: String,
    /// The queue (declared like the consumer declares it).
    #[arg(long, default_value = "tasklet.transactions")]
    pub queue: String,
    /// Messages per second; 0 = as fast as confirms allow.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// How many messages.
    #[arg(long, default_value_t = 1000)]
    pub count: usize,
    /// Message ids are `PREFIX-N`.
    #[arg(long, default_value = "sim")]
    pub prefix: String,
    /// Unconfirmed publishes allowed in flight.
    #[arg(long, default_value_t = 1000)]
    pub window: usize,
}

impl TransactionsArgs {
    /// Settings for `queue` under `amqp_url` (dead-letter names derived
    /// from the queue, as the tests and benches configure the consumer).
    pub fn new(amqp_url: &str, queue: &str, rate: f64, count: usize, prefix: &str) -> Self {
        Self {
            amqp_url: amqp_url.to_owned(),
            queue: queue.to_owned(),
            rate,
            count,
            prefix: prefix.to_owned(),
            window: 1000,
        }
    }
}

/// What a publishing run did.
#[derive(Debug, Clone, Default)]
pub struct PublishReport {
    /// `(message id, publish time µs)` of every message, in order.
    pub published: Vec<(String, i64)>,
    /// Messages published again after a broker failure.
    pub republished: usize,
    pub elapsed: Duration,
}

/// The consumer-side settings naming `queue` (dead-letter exchange and
/// queue `QUEUE.dlx` / `QUEUE.dead`).
pub fn queue_settings(amqp_url: &str, queue: &str) -> NotifySettings {
    NotifySettings {
        amqp_url: amqp_url.to_owned(),
        queue: queue.to_owned(),
        dead_letter_exchange: format!("{queue}.dlx"),
        dead_letter_queue: format!("{queue}.dead"),
        ..NotifySettings::default()
    }
}

/// Message number `i` of a run: statuses cycle per transaction, receivers
/// and locales vary.
pub fn contract_message(prefix: &str, i: usize) -> TransactionStatus {
    const STATUSES: [&str; 3] = ["created", "pending", "completed"];
    TransactionStatus {
        id: format!("{prefix}-{i}"),
        transaction_id: format!("tx-{prefix}-{}", i / 3),
        status: STATUSES[i % 3].to_owned(),
        amount: format!("{}.{:02}", 10 + i % 990, i % 100),
        currency: "UAH".to_owned(),
        user: User {
            viber_id: format!("viber-user-{}", i % 1000),
            name: format!("User {}", i % 1000),
        },
        occurred_at: "2026-11-29T01:00:00Z".to_owned(),
        locale: if i % 2 == 0 { "uk" } else { "en" }.to_owned(),
    }
}

async fn open(args: &TransactionsArgs) -> Result<(Connection, Channel), lapin::Error> {
    let connection = Connection::connect(
        &args.amqp_url,
        ConnectionProperties::default().with_connection_name("tasklet-sim-transactions".into()),
    )
    .await?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    declare(&channel, &queue_settings(&args.amqp_url, &args.queue)).await?;
    Ok((connection, channel))
}

/// Publishes one raw body to `queue` (persistent), waiting for its confirm.
/// For tests that need a poison message.
pub async fn publish_raw(amqp_url: &str, queue: &str, body: &[u8]) -> anyhow::Result<()> {
    let args = TransactionsArgs::new(amqp_url, queue, 0.0, 1, "raw");
    let (connection, channel) = open(&args).await?;
    let confirm = channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default().with_delivery_mode(2),
        )
        .await?
        .await?;
    anyhow::ensure!(confirm.is_ack(), "the broker refused the message");
    let _ = channel.close(200, "bye".into()).await;
    let _ = connection.close(200, "bye".into()).await;
    Ok(())
}

/// Deletes `queue`, `QUEUE.dead` and the exchange `QUEUE.dlx` (as named by
/// [`queue_settings`]): tests and benches leave nothing behind.
pub async fn delete_queues(amqp_url: &str, queue: &str) -> anyhow::Result<()> {
    let connection = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let s = queue_settings(amqp_url, queue);
    channel
        .queue_delete(s.queue.as_str().into(), Default::default())
        .await?;
    channel
        .queue_delete(s.dead_letter_queue.as_str().into(), Default::default())
        .await?;
    channel
        .exchange_delete(s.dead_letter_exchange.as_str().into(), Default::default())
        .await?;
    let _ = connection.close(200, "bye".into()).await;
    Ok(())
}

/// Messages ready in `queue` (not counting unacked deliveries).
pub async fn ready_count(amqp_url: &str, queue: &str) -> anyhow::Result<u32> {
    let connection = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let q = channel
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let _ = connection.close(200, "bye".into()).await;
    Ok(q.message_count())
}

/// Publishes `args.count` messages at `args.rate`; returns once every one
/// is confirmed. Survives broker restarts.
pub async fn publish(args: &TransactionsArgs) -> anyhow::Result<PublishReport> {
    let started = Instant::now();
    let bodies: Vec<Vec<u8>> = (0..args.count)
        .map(|i| serde_json::to_vec(&contract_message(&args.prefix, i)))
        .collect::<Result<_, _>>()?;
    let mut report = PublishReport {
        published: (0..args.count)
            .map(|i| (format!("{}-{i}", args.prefix), 0))
            .collect(),
        ..PublishReport::default()
    };
    let mut next = 0usize;
    let mut highest = 0usize;
    let mut delay = Duration::from_millis(100);
    let window = args.window.max(1);
    'connect: loop {
        let (connection, channel) = match open(args).await {
            Ok(c) => c,
            Err(error) => {
                warn!(%error, retry_in_ms = delay.as_millis() as u64, "publisher cannot connect");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
                anyhow::ensure!(
                    started.elapsed() < Duration::from_secs(600),
                    "broker unreachable for 10 minutes"
                );
                continue;
            }
        };
        delay = Duration::from_millis(100);
        let mut pending: VecDeque<(usize, PublisherConfirm)> = VecDeque::new();
        loop {
            let done = next >= args.count;
            if done || pending.len() >= window {
                let Some((i, confirm)) = pending.pop_front() else {
                    let _ = connection.close(200, "bye".into()).await;
                    break 'connect;
                };
                match confirm.await {
                    Ok(c) if c.is_ack() => continue,
                    Ok(_) | Err(_) => {
                        warn!(message = i, "publish not confirmed, publishing again");
                        next = i;
                        continue 'connect;
                    }
                }
            }
            if args.rate > 0.0 {
                let due = started + Duration::from_secs_f64(next as f64 / args.rate);
                tokio::time::sleep_until(due.into()).await;
            }
            let at = now_us();
            let mut headers = FieldTable::default();
            headers.insert(PUBLISHED_AT_HEADER.into(), AMQPValue::LongLongInt(at));
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_timestamp(u64::try_from(at / 1_000_000).unwrap_or(0))
                .with_headers(headers);
            match channel
                .basic_publish(
                    "".into(),
                    args.queue.as_str().into(),
                    BasicPublishOptions::default(),
                    &bodies[next],
                    properties,
                )
                .await
            {
                Ok(confirm) => {
                    if next < highest {
                        report.republished += 1;
                    }
                    report.published[next].1 = at;
                    pending.push_back((next, confirm));
                    next += 1;
                    highest = highest.max(next);
                }
                Err(error) => {
                    warn!(%error, "publish failed, reconnecting");
                    next = pending.front().map(|(i, _)| *i).unwrap_or(next);
                    continue 'connect;
                }
            }
        }
    }
    report.elapsed = started.elapsed();
    Ok(report)
}

/// `tasklet sim transactions`: publishes, then prints a summary.
pub async fn run(args: TransactionsArgs) -> anyhow::Result<()> {
    let report = publish(&args).await?;
    let secs = report.elapsed.as_secs_f64();
    println!(
        "published {} messages to {} in {:.2} s ({:.0} msg/s, {} published again)",
        report.published.len(),
        args.queue,
        secs,
        report.published.len() as f64 / secs.max(1e-9),
        report.republished
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_messages_keep_the_contract() {
        for i in 0..10 {
            let m = contract_message("t", i);
            let bytes = serde_json::to_vec(&m).unwrap();
            assert_eq!(TransactionStatus::parse(&bytes).unwrap(), m);
        }
        assert_eq!(contract_message("t", 4).transaction_id, "tx-t-1");
    }
}
