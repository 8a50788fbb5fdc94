//! The odds pipeline: watch every live game on a bookmaker site and record
//! every odds change.
//!
//! ```text
//! Discovery ─spawns/stops─▶ Fetcher (one per game, polls every interval)
//! Fetcher ─RawPage─▶ Parser pool ─(reply)─▶ Fetcher ─Snapshot─▶ Differ ◀─Swap─▶ Cache
//! Differ ─Changes─▶ Persister ─Insert─▶ BatchWriter<NewOddsChange> ─▶ DB
//!        └──────▶ live stream (broadcast channel, SSE)
//! ```

mod cache;
mod config;
pub mod cpu;
mod differ;
mod discovery;
mod fetcher;
pub mod messages;
mod parser;
mod persister;
pub mod queries;
pub mod site;

pub use cache::Cache;
pub use config::{HtmlSelectors, OddsSettings, SiteKind, SiteSettings};
pub use differ::{diff, Differ};
pub use discovery::Discovery;
pub use fetcher::{Fetcher, FetcherOutputs, FetcherSettings, FINISHED};
pub use parser::{snippet, Parser};
pub use persister::{change_row, upsert_events, PersistAll, Persister};
