//! Plain async functions over the notification log, one query each, on
//! either backend: look a message up (the idempotency check), list rows for
//! inspection, and apply a delivery receipt. Inserts go through the
//! batching writer instead.

use diesel::prelude::*;

use super::messages::state;
use crate::store::models::Notification;
use crate::store::schema::notifications::dsl as n;
use crate::store::{Store, StoreError};

/// Runs the query `$q` (an expression built fresh in each branch, so that
/// each backend infers its own types) with diesel's `$method` on `$store`.
macro_rules! on_store {
    ($store:expr, $method:ident, $q:expr) => {
        match $store {
            Store::Postgres(_) => {
                let mut conn = $store.pg().await?;
                Ok(diesel_async::RunQueryDsl::$method($q, &mut *conn).await?)
            }
            Store::Sqlite(_) => {
                $store
                    .read_sqlite(move |conn| Ok(diesel::RunQueryDsl::$method($q, conn)?))
                    .await
            }
        }
    };
    (write $store:expr, $method:ident, $q:expr) => {
        match $store {
            Store::Postgres(_) => {
                let mut conn = $store.pg().await?;
                Ok(diesel_async::RunQueryDsl::$method($q, &mut *conn).await?)
            }
            Store::Sqlite(_) => {
                $store
                    .write_sqlite(move |conn| Ok(diesel::RunQueryDsl::$method($q, conn)?))
                    .await
            }
        }
    };
}

/// The row of one message, if it was logged.
pub async fn find_by_message_id(
    store: &Store,
    message_id: &str,
) -> Result<Option<Notification>, StoreError> {
    let id = message_id.to_owned();
    on_store!(
        store,
        get_results,
        n::notifications
            .filter(n::message_id.eq(id))
            .select(Notification::as_select())
            .limit(1)
    )
    .map(|rows: Vec<Notification>| rows.into_iter().next())
}

/// Which rows [`list`] returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListFilter {
    pub transaction_id: Option<String>,
    pub state: Option<String>,
    /// Only rows enqueued at or after this time (µs since the epoch).
    pub since_us: Option<i64>,
    /// At most this many rows, oldest first.
    pub limit: i64,
}

/// Rows matching `filter`, oldest first.
pub async fn list(store: &Store, filter: ListFilter) -> Result<Vec<Notification>, StoreError> {
    macro_rules! query {
        ($db:ty, $f:expr) => {{
            let f = $f;
            let mut q = n::notifications
                .select(Notification::as_select())
                .into_boxed::<$db>();
            if let Some(tx) = f.transaction_id {
                q = q.filter(n::transaction_id.eq(tx));
            }
            if let Some(s) = f.state {
                q = q.filter(n::state.eq(s));
            }
            if let Some(since) = f.since_us {
                q = q.filter(n::enqueued_at_us.ge(since));
            }
            q.order((n::enqueued_at_us.asc(), n::id.asc()))
                .limit(f.limit)
        }};
    }
    match store {
        Store::Postgres(_) => {
            let mut conn = store.pg().await?;
            Ok(diesel_async::RunQueryDsl::load(query!(diesel::pg::Pg, filter), &mut *conn).await?)
        }
        Store::Sqlite(_) => {
            store
                .read_sqlite(move |conn| {
                    Ok(diesel::RunQueryDsl::load(
                        query!(diesel::sqlite::Sqlite, filter),
                        conn,
                    )?)
                })
                .await
        }
    }
}

/// A delivery receipt from the Viber webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    pub message_token: i64,
    /// [`state::DELIVERED`], [`state::SEEN`] or [`state::FAILED`].
    pub state: &'static str,
    /// When Viber saw the event (µs since the epoch).
    pub at_us: i64,
    /// The reason Viber gives for a failure.
    pub desc: Option<String>,
}

/// The states a row may move to `to` from: receipts only move forward
/// (a late "delivered" does not undo "seen").
pub fn receipt_may_follow(to: &str) -> &'static [&'static str] {
    match to {
        state::DELIVERED => &[state::SENT],
        state::SEEN => &[state::SENT, state::DELIVERED],
        state::FAILED => &[state::SENT, state::DELIVERED],
        _ => &[],
    }
}

/// Applies a receipt to the row with its message token; returns the rows
/// changed (0 when the token is unknown or the row is already further on).
pub async fn apply_receipt(store: &Store, receipt: Receipt) -> Result<usize, StoreError> {
    let from = receipt_may_follow(receipt.state);
    let Receipt {
        message_token,
        state: to,
        at_us,
        desc,
    } = receipt;
    on_store!(
        write store,
        execute,
        diesel::update(
            n::notifications
                .filter(n::message_token.eq(message_token))
                .filter(n::state.eq_any(from)),
        )
        .set((
            n::state.eq(to),
            n::receipt_at_us.eq(Some(at_us)),
            n::error.eq(desc.clone()),
        ))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::models::{now_us, NewNotification};
    use crate::store::{BatchRow, DatabaseSettings};
    use std::sync::Arc;

    fn row(id: &str, tx: &str, token: i64, at: i64) -> NewNotification {
        NewNotification {
            message_id: id.into(),
            transaction_id: tx.into(),
            receiver: "u".into(),
            status: "completed".into(),
            state: state::SENT.into(),
            viber_status: Some(0),
            message_token: Some(token),
            attempts: 1,
            error: None,
            enqueued_at_us: at,
            sent_at_us: Some(at),
            logged_at_us: at,
        }
    }

    async fn sqlite() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let settings = DatabaseSettings {
            url: "sqlite://t.db".into(),
            ..Default::default()
        };
        let store = Store::connect(&settings, dir.path()).await.unwrap();
        store.migrate().await.unwrap();
        (dir, store)
    }

    #[actix_rt::test]
    async fn find_list_and_receipts_on_sqlite() {
        let (_dir, store) = sqlite().await;
        let t = now_us();
        let rows = vec![
            row("a", "tx1", 1, t),
            row("b", "tx1", 2, t + 1),
            row("c", "tx2", 3, t + 2),
        ];
        let _ = NewNotification::COLUMNS;
        store.insert_batch(Arc::new(rows)).await.unwrap();
        assert_eq!(
            find_by_message_id(&store, "b")
                .await
                .unwrap()
                .unwrap()
                .message_token,
            Some(2)
        );
        assert!(find_by_message_id(&store, "zz").await.unwrap().is_none());

        let by_tx = list(
            &store,
            ListFilter {
                transaction_id: Some("tx1".into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            by_tx
                .iter()
                .map(|r| r.message_id.as_str())
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        let since = list(
            &store,
            ListFilter {
                since_us: Some(t + 1),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(since.len(), 2);

        let seen = Receipt {
            message_token: 1,
            state: state::SEEN,
            at_us: t + 10,
            desc: None,
        };
        assert_eq!(apply_receipt(&store, seen).await.unwrap(), 1);
        // A late "delivered" does not undo "seen".
        let late = Receipt {
            message_token: 1,
            state: state::DELIVERED,
            at_us: t + 11,
            desc: None,
        };
        assert_eq!(apply_receipt(&store, late).await.unwrap(), 0);
        let unknown = Receipt {
            message_token: 99,
            state: state::DELIVERED,
            at_us: t,
            desc: None,
        };
        assert_eq!(apply_receipt(&store, unknown).await.unwrap(), 0);
        let a = find_by_message_id(&store, "a").await.unwrap().unwrap();
        assert_eq!(a.state, state::SEEN);
        assert_eq!(a.receipt_at_us, Some(t + 10));
        let by_state = list(
            &store,
            ListFilter {
                state: Some(state::SEEN.into()),
                limit: 10,
                ..Default::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(by_state.len(), 1);
    }
}
