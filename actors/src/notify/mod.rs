//! The notify pipeline: transaction statuses from RabbitMQ, sent to Viber at
//! once, every outcome logged in batches, each delivery acked only after its
//! row is committed.
//!
//! ```text
//! AmqpConsumer ─Delivery─▶ ViberSender pool ─Outcome─▶ NotificationLog ─Insert─▶ BatchWriter ─▶ DB
//!      ▲                                                      │ (commit receipt)
//!      └───────────────────────────Ack(tags)──────────────────┘
//! ```

pub mod actions;
mod amqp_consumer;
mod config;
pub mod messages;
mod notification_log;
mod viber_sender;

pub use amqp_consumer::{
    declare, published_at_us, queue_arguments, AmqpConsumer, Close, ConsumerError, ConsumerStats,
    GetConsumerStats, StopIntake,
};
pub use config::{NotifySettings, DEFAULT_TEMPLATE};
pub use notification_log::{quantile, GetLogStats, LogStats, NotificationLog, Settle};
pub use viber_sender::{
    backoff, classify, status_name, Drain, SendMessage, SendReply, SenderError, Verdict,
    ViberSender,
};
