//! The beard pipeline's catalog: scrape, download and cache beard styles.

mod config;

pub use config::BeardSettings;
