//! The notify pipeline: AMQP consumer, Viber senders, notification log.

mod config;

pub use config::NotifySettings;
