//! The odds pipeline: discovery, fetchers, parser, differ, cache, persister.

mod config;

pub use config::OddsSettings;
