//! Storage: the diesel schema, row types, the [`Store`] handle on PostgreSQL
//! or SQLite, and the generic batching [`BatchWriter`] actor.

mod config;
pub mod models;
mod pool;
pub mod schema;
mod writer;

pub use config::{DatabaseSettings, WriterSettings};
pub use pool::{redact_url, wait_ready, Backend, Store, StoreError};
pub use writer::{
    BatchWriter, CommitReceipt, Committed, Flush, FlushTrigger, GetStats, Insert, WriteError,
    WriterStats,
};

use diesel::{QueryResult, SqliteConnection};
use diesel_async::AsyncPgConnection;
use futures_util::future::BoxFuture;

/// A row type the [`BatchWriter`] can store: one multi-row
/// `INSERT … ON CONFLICT DO NOTHING` per call, on either backend.
pub trait BatchRow: std::fmt::Debug + Send + Sync + Unpin + 'static {
    /// The table's name, for logs and metrics.
    const TABLE: &'static str;
    /// Bind parameters per row.
    const COLUMNS: usize;

    fn insert_pg<'a>(
        conn: &'a mut AsyncPgConnection,
        rows: &'a [Self],
    ) -> BoxFuture<'a, QueryResult<usize>>
    where
        Self: Sized;

    fn insert_sqlite(conn: &mut SqliteConnection, rows: &[Self]) -> QueryResult<usize>
    where
        Self: Sized;

    /// How many rows fit one statement under a bind-parameter limit.
    fn rows_per_statement(max_params: usize) -> usize {
        (max_params / Self::COLUMNS.max(1)).max(1)
    }
}
