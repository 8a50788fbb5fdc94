//! tasklet-actors: every actor of the tasklet daemon and the messages they
//! pass, grouped by pipeline. Nothing here knows about HTTP, the CLI or the
//! config file: each actor takes a plain settings struct.
//!
//! # Layout
//!
//! | folder | what lives there |
//! |---|---|
//! | [`store`] | diesel schema, rows, the [`store::Store`] handle, the batching [`store::BatchWriter`] |
//! | [`compose`] | the watermark pipeline: compositor pool and image paths |
//! | [`beards`] | the beard catalog: scrape, download, cache |
//! | [`odds`] | discovery, fetchers, parser, differ, cache, persister |
//! | [`notify`] | AMQP consumer, Viber sender, notification log |
//! | [`observe`] | per-actor metrics: messages, handling time, depth, restarts |
//! | [`supervise`] | restart after a panic, with capped backoff; test-only fault points |
//!
//! Each pipeline folder holds `config.rs` (its settings), `messages.rs`
//! (what flows between its actors) and one file per actor.

pub mod beards;
pub mod compose;
pub mod notify;
pub mod observe;
pub mod odds;
pub mod store;
pub mod supervise;
