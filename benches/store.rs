//! The store's batch insert (`Store::insert_batch`: one transaction of
//! multi-row `INSERT … ON CONFLICT DO NOTHING`), as the odds persister and
//! the notification log call it, at a few batch sizes.
//!
//! SQLite always, into a fresh file in a temporary folder. PostgreSQL too
//! when `TASKLET_BENCH_PG_URL` names a database the bench may write to (it
//! migrates it, and deletes its own rows at the end):
//!
//! `TASKLET_BENCH_PG_URL=postgres://postgres@127.0.0.1/test cargo bench --bench store`

use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use diesel::prelude::*;
use tasklet::testing::sent_notification;
use tasklet_actors::store::models::{now_us, NewNotification, NewOddsChange};
use tasklet_actors::store::schema::{notifications, odds_changes};
use tasklet_actors::store::{DatabaseSettings, Store};

const BATCH_SIZES: [usize; 3] = [1, 100, 1_000];

/// Rows no earlier call inserted: `seq` (odds) and the message id
/// (notifications) carry a number that grows with every call.
struct Rows {
    tag: String,
    next: i64,
}

impl Rows {
    fn odds(&mut self, n: usize) -> Arc<Vec<NewOddsChange>> {
        self.next += 1;
        let seq = self.next;
        Arc::new(
            (0..n)
                .map(|i| NewOddsChange {
                    site: self.tag.clone(),
                    event_id: format!("{}", i / 9),
                    market: format!("{}", i / 3),
                    outcome: format!("{i}"),
                    kind: "price".to_owned(),
                    old_price: Some(1.85),
                    new_price: Some(1.9),
                    seq,
                    observed_at_us: now_us(),
                    status: None,
                })
                .collect(),
        )
    }

    fn notifications(&mut self, n: usize) -> Arc<Vec<NewNotification>> {
        self.next += 1;
        let call = self.next;
        Arc::new(
            (0..n)
                .map(|i| sent_notification(format!("{}-{call}-{i}", self.tag), i))
                .collect(),
        )
    }
}

fn bench_backend(c: &mut Criterion, rt: &tokio::runtime::Runtime, name: &str, store: &Store) {
    let tag = format!("bench-{}-{}", std::process::id(), now_us());
    let mut rows = Rows {
        tag: tag.clone(),
        next: 0,
    };
    let mut group = c.benchmark_group(format!("insert_batch/{name}"));
    for size in BATCH_SIZES {
        group.throughput(Throughput::Elements(size as u64));
        group.bench_function(format!("odds_changes/{size}"), |b| {
            b.iter_batched(
                || rows.odds(size),
                |batch| {
                    let n = rt.block_on(store.insert_batch(batch)).expect("inserts");
                    assert_eq!(n, size, "every row is new");
                },
                BatchSize::PerIteration,
            )
        });
        group.bench_function(format!("notifications/{size}"), |b| {
            b.iter_batched(
                || rows.notifications(size),
                |batch| {
                    let n = rt.block_on(store.insert_batch(batch)).expect("inserts");
                    assert_eq!(n, size, "every row is new");
                },
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
    rt.block_on(delete_rows(store, tag))
        .expect("the bench's rows delete");
}

/// Removes what the bench wrote (a PostgreSQL database outlives the bench).
async fn delete_rows(store: &Store, tag: String) -> anyhow::Result<()> {
    let ids = format!("{tag}-%");
    match store {
        Store::Postgres(_) => {
            let mut conn = store.pg().await?;
            diesel_async::RunQueryDsl::execute(
                diesel::delete(odds_changes::table.filter(odds_changes::site.eq(&tag))),
                &mut *conn,
            )
            .await?;
            diesel_async::RunQueryDsl::execute(
                diesel::delete(notifications::table.filter(notifications::message_id.like(&ids))),
                &mut *conn,
            )
            .await?;
        }
        Store::Sqlite(_) => {
            store
                .write_sqlite(move |c| {
                    diesel::delete(odds_changes::table.filter(odds_changes::site.eq(&tag)))
                        .execute(c)?;
                    diesel::delete(
                        notifications::table.filter(notifications::message_id.like(&ids)),
                    )
                    .execute(c)?;
                    Ok(())
                })
                .await?;
        }
    }
    Ok(())
}

async fn open(url: &str, dir: &std::path::Path) -> Store {
    let settings = DatabaseSettings {
        url: url.to_owned(),
        ..DatabaseSettings::default()
    };
    let store = Store::connect(&settings, dir)
        .await
        .expect("the database opens");
    store.migrate().await.expect("the migrations apply");
    store
}

fn bench_insert(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let dir = tempfile::tempdir().expect("a temporary folder");
    let sqlite = rt.block_on(open("sqlite://bench.db", dir.path()));
    bench_backend(c, &rt, "sqlite", &sqlite);
    if let Ok(url) = std::env::var("TASKLET_BENCH_PG_URL") {
        let pg = rt.block_on(open(&url, dir.path()));
        bench_backend(c, &rt, "postgres", &pg);
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_insert
}
criterion_main!(benches);
