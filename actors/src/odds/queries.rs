//! Reads of the odds tables, shared by the HTTP API and the CLI: plain
//! async functions over the [`Store`].

use diesel::prelude::*;
use serde::Serialize;

use crate::store::schema::{odds_changes, odds_events};
use crate::store::{Store, StoreError};

/// One stored change.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = odds_changes)]
pub struct ChangeRow {
    pub id: i64,
    pub site: String,
    pub event_id: String,
    pub market: String,
    pub outcome: String,
    pub kind: String,
    pub old_price: Option<f64>,
    pub new_price: Option<f64>,
    pub status: Option<String>,
    pub seq: i64,
    pub observed_at_us: i64,
}

/// One stored event.
#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Serialize)]
#[diesel(table_name = odds_events)]
pub struct EventRow {
    pub site: String,
    pub external_id: String,
    pub sport: String,
    pub home: String,
    pub away: String,
    pub status: String,
    pub first_seen_us: i64,
    pub last_seen_us: i64,
}

/// Which changes to read.
#[derive(Debug, Clone, Default)]
pub struct ChangeFilter {
    pub site: Option<String>,
    pub event: Option<String>,
    /// Only changes observed at or after this time.
    pub since_us: Option<i64>,
    /// Only rows with a larger id (to page through).
    pub after_id: Option<i64>,
    pub limit: i64,
}

macro_rules! change_query {
    ($f:expr) => {{
        let f = $f;
        let mut q = odds_changes::table
            .select(ChangeRow::as_select())
            .order(odds_changes::id.asc())
            .limit(f.limit)
            .into_boxed();
        if let Some(site) = f.site.clone() {
            q = q.filter(odds_changes::site.eq(site));
        }
        if let Some(event) = f.event.clone() {
            q = q.filter(odds_changes::event_id.eq(event));
        }
        if let Some(since) = f.since_us {
            q = q.filter(odds_changes::observed_at_us.ge(since));
        }
        if let Some(after) = f.after_id {
            q = q.filter(odds_changes::id.gt(after));
        }
        q
    }};
}

/// Changes matching `filter`, oldest first.
pub async fn changes(store: &Store, filter: ChangeFilter) -> Result<Vec<ChangeRow>, StoreError> {
    match store {
        Store::Postgres(_) => {
            let mut conn = store.pg().await?;
            let q = change_query!(&filter);
            Ok(diesel_async::RunQueryDsl::load(q, &mut *conn).await?)
        }
        Store::Sqlite(_) => {
            store
                .read_sqlite(move |conn| Ok(change_query!(&filter).load(conn)?))
                .await
        }
    }
}

/// Events, most recently seen first.
pub async fn events(store: &Store, limit: i64) -> Result<Vec<EventRow>, StoreError> {
    match store {
        Store::Postgres(_) => {
            let mut conn = store.pg().await?;
            let q = odds_events::table
                .select(EventRow::as_select())
                .order(odds_events::last_seen_us.desc())
                .limit(limit);
            Ok(diesel_async::RunQueryDsl::load(q, &mut *conn).await?)
        }
        Store::Sqlite(_) => {
            store
                .read_sqlite(move |conn| {
                    Ok(odds_events::table
                        .select(EventRow::as_select())
                        .order(odds_events::last_seen_us.desc())
                        .limit(limit)
                        .load(conn)?)
                })
                .await
        }
    }
}

/// A `since` value: a duration ago (`90s`, `10m`, `2h`, `1d`) or an
/// absolute time in microseconds since the epoch.
pub fn parse_since(text: &str, now_us: i64) -> Result<i64, String> {
    let text = text.trim();
    if let Ok(us) = text.parse::<i64>() {
        return Ok(us);
    }
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} is not a time"))?;
    let (n, unit) = text.split_at(split);
    let n: i64 = n
        .parse()
        .map_err(|_| format!("{text:?}: expected a number before the unit"))?;
    let unit_us: i64 = match unit {
        "ms" => 1_000,
        "s" => 1_000_000,
        "m" => 60_000_000,
        "h" => 3_600_000_000,
        "d" => 86_400_000_000,
        _ => return Err(format!("{text:?}: the unit must be ms, s, m, h or d")),
    };
    Ok(now_us - n.saturating_mul(unit_us))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_reads_durations_ago_and_absolute_times() {
        assert_eq!(
            parse_since("10m", 1_000_000_000),
            Ok(1_000_000_000 - 600_000_000)
        );
        assert_eq!(
            parse_since("1700000000000000", 0),
            Ok(1_700_000_000_000_000)
        );
        assert_eq!(parse_since("90s", 100_000_000), Ok(10_000_000));
        for bad in ["", "m", "10x", "ten minutes", "5 m"] {
            assert!(parse_since(bad, 0).is_err(), "{bad}");
        }
    }
}
