//! Rows as diesel sees them: one `New…` struct per insertable table, each a
//! [`BatchRow`] so that the batching writer can store it on either backend.

use diesel::prelude::*;

use super::schema::{notifications, odds_changes, odds_events};
use super::BatchRow;

/// Microseconds since the Unix epoch, the unit of every `*_us` column.
pub fn now_us() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_micros()).unwrap_or(i64::MAX)
}

/// One notification log row (see the notify pipeline).
#[derive(Debug, Clone, PartialEq, Insertable, Queryable, Selectable)]
#[diesel(table_name = notifications)]
#[diesel(treat_none_as_default_value = false)]
pub struct NewNotification {
    pub message_id: String,
    pub transaction_id: String,
    pub receiver: String,
    pub status: String,
    pub state: String,
    pub viber_status: Option<i32>,
    pub message_token: Option<i64>,
    pub attempts: i32,
    pub error: Option<String>,
    pub enqueued_at_us: i64,
    pub sent_at_us: Option<i64>,
    pub logged_at_us: i64,
}

/// One notification log row as read back (see the notify pipeline).
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, serde::Serialize)]
#[diesel(table_name = notifications)]
pub struct Notification {
    pub id: i64,
    pub message_id: String,
    pub transaction_id: String,
    pub receiver: String,
    pub status: String,
    pub state: String,
    pub viber_status: Option<i32>,
    pub message_token: Option<i64>,
    pub attempts: i32,
    pub error: Option<String>,
    pub enqueued_at_us: i64,
    pub sent_at_us: Option<i64>,
    pub logged_at_us: i64,
    pub receipt_at_us: Option<i64>,
}

/// One recorded odds change (see the odds pipeline).
#[derive(Debug, Clone, PartialEq, Insertable, Queryable, Selectable)]
#[diesel(table_name = odds_changes)]
#[diesel(treat_none_as_default_value = false)]
pub struct NewOddsChange {
    pub site: String,
    pub event_id: String,
    pub market: String,
    pub outcome: String,
    pub kind: String,
    pub old_price: Option<f64>,
    pub new_price: Option<f64>,
    pub seq: i64,
    pub observed_at_us: i64,
    /// The new event status of a `status` change.
    pub status: Option<String>,
}

/// One watched event (see the odds pipeline).
#[derive(Debug, Clone, PartialEq, Insertable, Queryable, Selectable)]
#[diesel(table_name = odds_events)]
#[diesel(treat_none_as_default_value = false)]
pub struct NewOddsEvent {
    pub site: String,
    pub external_id: String,
    pub sport: String,
    pub home: String,
    pub away: String,
    pub status: String,
    pub first_seen_us: i64,
    pub last_seen_us: i64,
}

/// Implements [`BatchRow`] for an insertable struct: one multi-row
/// `INSERT … ON CONFLICT DO NOTHING` on either backend.
macro_rules! batch_row {
    ($row:ty, $table:ident, $columns:expr) => {
        impl BatchRow for $row {
            const TABLE: &'static str = stringify!($table);
            const COLUMNS: usize = $columns;

            fn insert_pg<'a>(
                conn: &'a mut diesel_async::AsyncPgConnection,
                rows: &'a [Self],
            ) -> futures_util::future::BoxFuture<'a, QueryResult<usize>> {
                Box::pin(diesel_async::RunQueryDsl::execute(
                    diesel::insert_into($table::table)
                        .values(rows)
                        .on_conflict_do_nothing(),
                    conn,
                ))
            }

            fn insert_sqlite(conn: &mut SqliteConnection, rows: &[Self]) -> QueryResult<usize> {
                diesel::insert_into($table::table)
                    .values(rows)
                    .on_conflict_do_nothing()
                    .execute(conn)
            }
        }
    };
}

batch_row!(NewNotification, notifications, 12);
batch_row!(NewOddsChange, odds_changes, 10);
batch_row!(NewOddsEvent, odds_events, 8);
