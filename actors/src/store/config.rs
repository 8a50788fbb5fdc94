//! `[database]`: where rows go and how the batching writers behave.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The `[database]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://PATH` (relative paths are next to the config file) or
    /// `postgres://user@host:port/db`.
    pub url: String,
    /// PostgreSQL connections in the pool (ignored for SQLite).
    pub pool_size: usize,
    /// How long to wait for a new connection or a free pooled one.
    pub connect_timeout_ms: u64,
    /// SQLite `busy_timeout`: how long a writer waits on a locked file.
    pub sqlite_busy_timeout_ms: u64,
    /// Flush as soon as this many rows are waiting.
    pub batch_size: usize,
    /// Flush this long after the first waiting row, even if the batch is not full.
    pub flush_interval_ms: u64,
    /// Messages that may wait in a writer's mailbox; senders wait beyond it.
    pub writer_mailbox: usize,
    /// Batches a writer may commit at once while the next one fills.
    pub commits_in_flight: usize,
    /// First retry delay after a failed commit; doubles up to `retry_max_ms`.
    pub retry_initial_ms: u64,
    /// Longest delay between two commit attempts.
    pub retry_max_ms: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: default_url(),
            pool_size: 8,
            connect_timeout_ms: 5_000,
            sqlite_busy_timeout_ms: 5_000,
            batch_size: 1_000,
            flush_interval_ms: 200,
            writer_mailbox: 256,
            commits_in_flight: 2,
            retry_initial_ms: 100,
            retry_max_ms: 5_000,
        }
    }
}

fn default_url() -> String {
    "sqlite://tasklet.db".to_owned()
}

impl DatabaseSettings {
    /// Refuses impossible values; each error names its key.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.url.starts_with("sqlite://")
            || self.url.starts_with("postgres://")
            || self.url.starts_with("postgresql://"))
        {
            return Err(("url", "must start with sqlite:// or postgres://".to_owned()));
        }
        if self.url == "sqlite://" {
            return Err(("url", "sqlite:// needs a file path".to_owned()));
        }
        if self.pool_size == 0 {
            return Err(("pool_size", "must be at least 1".to_owned()));
        }
        if self.connect_timeout_ms == 0 {
            return Err(("connect_timeout_ms", "must be at least 1".to_owned()));
        }
        self.writer().validate()
    }

    /// The batching settings every writer starts from.
    pub fn writer(&self) -> WriterSettings {
        WriterSettings {
            batch_size: self.batch_size,
            flush_interval_ms: self.flush_interval_ms,
            mailbox: self.writer_mailbox,
            commits_in_flight: self.commits_in_flight,
            retry_initial_ms: self.retry_initial_ms,
            retry_max_ms: self.retry_max_ms,
        }
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }
}

/// How a [`BatchWriter`](super::BatchWriter) batches and retries.
#[derive(Debug, Clone, PartialEq)]
pub struct WriterSettings {
    pub batch_size: usize,
    pub flush_interval_ms: u64,
    pub mailbox: usize,
    pub commits_in_flight: usize,
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
}

impl Default for WriterSettings {
    fn default() -> Self {
        DatabaseSettings::default().writer()
    }
}

impl WriterSettings {
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.batch_size == 0 || self.batch_size > 10_000 {
            return Err(("batch_size", "must be between 1 and 10000".to_owned()));
        }
        if self.flush_interval_ms == 0 {
            return Err(("flush_interval_ms", "must be at least 1".to_owned()));
        }
        if self.mailbox == 0 {
            return Err(("writer_mailbox", "must be at least 1".to_owned()));
        }
        if self.commits_in_flight == 0 || self.commits_in_flight > 64 {
            return Err(("commits_in_flight", "must be between 1 and 64".to_owned()));
        }
        if self.retry_initial_ms == 0 || self.retry_initial_ms > self.retry_max_ms {
            return Err((
                "retry_initial_ms",
                "must be at least 1 and at most retry_max_ms".to_owned(),
            ));
        }
        Ok(())
    }

    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(DatabaseSettings::default().validate(), Ok(()));
    }

    #[test]
    fn zero_batch_is_refused_by_name() {
        let s = DatabaseSettings {
            batch_size: 0,
            ..DatabaseSettings::default()
        };
        assert_eq!(s.validate().unwrap_err().0, "batch_size");
    }

    #[test]
    fn unknown_scheme_is_refused() {
        let s = DatabaseSettings {
            url: "mysql://x".into(),
            ..DatabaseSettings::default()
        };
        assert_eq!(s.validate().unwrap_err().0, "url");
    }
}
