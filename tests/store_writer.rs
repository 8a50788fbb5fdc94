//! The batching writer and migrations against real databases: SQLite in a
//! temp folder (always) and a throw-away PostgreSQL database (ignored
//! unless the full test command runs them).

use std::path::Path;
use std::time::Duration;

use actix::prelude::*;
use diesel::prelude::*;
use tasklet::testing::{TcpProxy, TempPgDb};
use tasklet_actors::store::models::NewNotification;
use tasklet_actors::store::schema::notifications;
use tasklet_actors::store::{
    BatchWriter, DatabaseSettings, Flush, FlushTrigger, GetStats, Insert, Store, WriterSettings,
};

fn row(tag: &str, i: usize) -> NewNotification {
    tasklet::testing::sent_notification(format!("{tag}-{i}"), i)
}

async fn count(store: &Store) -> i64 {
    match store {
        Store::Postgres(_) => {
            let mut conn = store.pg().await.expect("pg connection");
            diesel_async::RunQueryDsl::get_result(notifications::table.count(), &mut *conn)
                .await
                .expect("count")
        }
        Store::Sqlite(_) => store
            .read_sqlite(|c| Ok(notifications::table.count().get_result(c)?))
            .await
            .expect("count"),
    }
}

async fn sqlite_store(dir: &Path) -> Store {
    let settings = DatabaseSettings {
        url: "sqlite://data/tasklet.db".into(),
        ..DatabaseSettings::default()
    };
    let store = Store::connect(&settings, dir).await.expect("open sqlite");
    store.migrate().await.expect("migrate");
    store
}

async fn pg_store(url: &str) -> Store {
    let settings = DatabaseSettings {
        url: url.to_owned(),
        connect_timeout_ms: 1_000,
        ..DatabaseSettings::default()
    };
    let store = Store::connect(&settings, Path::new("."))
        .await
        .expect("open pg");
    store.migrate().await.expect("migrate");
    store
}

fn settings(batch_size: usize, flush_interval_ms: u64) -> WriterSettings {
    WriterSettings {
        batch_size,
        flush_interval_ms,
        mailbox: 64,
        commits_in_flight: 2,
        retry_initial_ms: 50,
        retry_max_ms: 400,
    }
}

/// Tests running `$check` on a fresh SQLite file and, ignored where no
/// server is set up, on a throw-away PostgreSQL database.
macro_rules! on_both_stores {
    ($check:ident => $sqlite:ident, $postgres:ident) => {
        #[actix_rt::test]
        async fn $sqlite() {
            let dir = tempfile::tempdir().unwrap();
            $check(sqlite_store(dir.path()).await).await;
        }

        #[actix_rt::test]
        #[ignore = "needs PostgreSQL"]
        async fn $postgres() {
            let db = TempPgDb::create().await.unwrap();
            $check(pg_store(&db.url).await).await;
        }
    };
}

/// 10,000 rows sent one per message by many senders: every receipt
/// resolves, and exactly 10,000 rows are in the table.
async fn ten_thousand_rows(store: Store) {
    let writer = BatchWriter::<NewNotification>::new(store.clone(), settings(500, 50)).start();
    let mut tasks = Vec::new();
    for s in 0..20 {
        let writer = writer.clone();
        tasks.push(actix_rt::spawn(async move {
            let mut receipts = Vec::new();
            for i in 0..500 {
                receipts.push(
                    writer
                        .send(Insert(vec![row("bulk", s * 500 + i)]))
                        .await
                        .unwrap(),
                );
            }
            for r in receipts {
                r.await.expect("committed");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(count(&store).await, 10_000);
    let stats = writer.send(GetStats).await.unwrap();
    assert_eq!(stats.rows_committed, 10_000);
    assert_eq!(stats.rows_new, 10_000);
    assert!(
        stats.full >= 19,
        "most batches flush because they are full: {stats:?}"
    );
}

on_both_stores!(ten_thousand_rows => sqlite_ten_thousand_rows_in_exactly_ten_thousand_rows_out, postgres_ten_thousand_rows_in_exactly_ten_thousand_rows_out);

/// A batch flushes when full (before its timer), and a lone row flushes on
/// the timer; receipts say which.
async fn flushes_on_size_and_on_time(store: Store) {
    let writer = BatchWriter::<NewNotification>::new(store.clone(), settings(10, 300)).start();
    let rows: Vec<_> = (0..10).map(|i| row("size", i)).collect();
    let receipt = writer.send(Insert(rows)).await.unwrap();
    let committed = receipt.await.unwrap();
    assert_eq!(committed.trigger, FlushTrigger::Full);
    assert_eq!(committed.batch_rows, 10);

    let started = std::time::Instant::now();
    let receipt = writer.send(Insert(vec![row("time", 0)])).await.unwrap();
    let committed = receipt.await.unwrap();
    assert_eq!(committed.trigger, FlushTrigger::Timeout);
    assert_eq!(committed.batch_rows, 1);
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "not before the interval"
    );
    let stats = writer.send(GetStats).await.unwrap();
    assert_eq!((stats.full, stats.timeout, stats.shutdown), (1, 1, 0));
    assert_eq!(count(&store).await, 11);
}

on_both_stores!(flushes_on_size_and_on_time => sqlite_flushes_on_size_and_on_time, postgres_flushes_on_size_and_on_time);

/// Rows sent the instant before shutdown are committed by the explicit
/// Flush the shutdown awaits, not left to a timer.
async fn flush_commits_what_waits(store: Store) {
    let writer =
        BatchWriter::<NewNotification>::new(store.clone(), settings(1_000, 60_000)).start();
    let receipts: Vec<_> =
        futures_util::future::join_all((0..37).map(|i| writer.send(Insert(vec![row("late", i)]))))
            .await
            .into_iter()
            .map(Result::unwrap)
            .collect();
    let flushed = writer.send(Flush).await.unwrap().await.unwrap();
    assert_eq!(flushed.trigger, FlushTrigger::Shutdown);
    assert_eq!(count(&store).await, 37, "committed before Flush answered");
    for r in receipts {
        assert_eq!(r.await.unwrap().trigger, FlushTrigger::Shutdown);
    }
    // Nothing waits: Flush answers at once.
    let empty = writer.send(Flush).await.unwrap().await.unwrap();
    assert_eq!(empty.batch_rows, 0);
}

on_both_stores!(flush_commits_what_waits => sqlite_flush_commits_what_waits, postgres_flush_commits_what_waits);

/// The same row twice (a redelivery) is stored once; the receipt still
/// resolves, since the row is durable.
async fn duplicates_are_ignored(store: Store) {
    let writer = BatchWriter::<NewNotification>::new(store.clone(), settings(4, 50)).start();
    let r1 = writer
        .send(Insert(vec![row("dup", 1), row("dup", 2)]))
        .await
        .unwrap();
    let r2 = writer
        .send(Insert(vec![row("dup", 1), row("dup", 2)]))
        .await
        .unwrap();
    r1.await.unwrap();
    r2.await.unwrap();
    let r3 = writer
        .send(Insert(vec![row("dup", 2), row("dup", 3)]))
        .await
        .unwrap();
    r3.await.unwrap();
    assert_eq!(count(&store).await, 3);
    let stats = writer.send(GetStats).await.unwrap();
    assert_eq!(stats.rows_committed, 6);
    assert_eq!(stats.rows_new, 3);
}

on_both_stores!(duplicates_are_ignored => sqlite_duplicates_are_ignored, postgres_duplicates_are_ignored);

/// With PostgreSQL unreachable (a proxy cut in front of it), no receipt
/// resolves and senders wait once the mailbox is full; after it comes
/// back every row is committed exactly once and only then do receipts say so.
#[actix_rt::test]
#[ignore = "needs PostgreSQL"]
async fn postgres_outage_loses_nothing_and_signals_only_after_commit() {
    let db = TempPgDb::create().await.unwrap();
    // Migrate directly, then route the writer through the proxy.
    pg_store(&db.url).await;
    let proxy = TcpProxy::start(db.server_addr().await.unwrap())
        .await
        .unwrap();
    let via_proxy = db.url_via(proxy.addr);
    let store = pg_store(&via_proxy).await;
    let direct = pg_store(&db.url).await;
    let mut ws = settings(100, 50);
    ws.mailbox = 8;
    let writer = BatchWriter::<NewNotification>::new(store.clone(), ws).start();

    // Warm up: one batch through the proxy works.
    writer
        .send(Insert(vec![row("before", 0)]))
        .await
        .unwrap()
        .await
        .unwrap();
    proxy.cut();

    // Feed rows while the database is away.
    let feeder = {
        let writer = writer.clone();
        actix_rt::spawn(async move {
            let mut receipts = Vec::new();
            for i in 0..1_000 {
                receipts.push(writer.send(Insert(vec![row("during", i)])).await.unwrap());
            }
            receipts
        })
    };
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(
        !feeder.is_finished(),
        "senders must wait (back-pressure) while nothing commits"
    );
    assert_eq!(
        count(&direct).await,
        1,
        "nothing of the outage batch is committed yet"
    );

    proxy.restore();
    let receipts = tokio::time::timeout(Duration::from_secs(60), feeder)
        .await
        .expect("feeder finishes")
        .unwrap();
    for r in receipts {
        let committed = tokio::time::timeout(Duration::from_secs(60), r)
            .await
            .expect("receipt")
            .unwrap();
        assert!(committed.batch_rows > 0);
    }
    assert_eq!(
        count(&direct).await,
        1_001,
        "every row committed exactly once"
    );
    let stats = writer.send(GetStats).await.unwrap();
    assert!(stats.failed_attempts > 0, "the outage was seen: {stats:?}");
}

/// Receipts for rows stuck in an outage do not resolve while it lasts.
#[actix_rt::test]
#[ignore = "needs PostgreSQL"]
async fn postgres_receipt_waits_for_the_database() {
    let db = TempPgDb::create().await.unwrap();
    pg_store(&db.url).await;
    let proxy = TcpProxy::start(db.server_addr().await.unwrap())
        .await
        .unwrap();
    let via_proxy = db.url_via(proxy.addr);
    let store = pg_store(&via_proxy).await;
    let writer = BatchWriter::<NewNotification>::new(store, settings(10, 20)).start();
    proxy.cut();
    let receipt = writer.send(Insert(vec![row("wait", 0)])).await.unwrap();
    let mut receipt = Box::pin(receipt);
    assert!(
        tokio::time::timeout(Duration::from_millis(800), &mut receipt)
            .await
            .is_err(),
        "no commit signal while the database is unreachable"
    );
    proxy.restore();
    let committed = tokio::time::timeout(Duration::from_secs(30), receipt)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(committed.batch_rows, 1);
    let direct = pg_store(&db.url).await;
    assert_eq!(count(&direct).await, 1);
}

#[actix_rt::test]
async fn sqlite_migrations_apply_on_a_fresh_file_and_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let settings = DatabaseSettings {
        url: "sqlite://fresh.db".into(),
        ..DatabaseSettings::default()
    };
    let store = Store::connect(&settings, dir.path()).await.unwrap();
    let first = store.migrate().await.unwrap();
    assert!(!first.is_empty(), "a fresh file gets every migration");
    assert!(dir.path().join("fresh.db").exists());
    assert!(
        store.migrate().await.unwrap().is_empty(),
        "second run applies nothing"
    );
    assert_eq!(count(&store).await, 0);
}

#[actix_rt::test]
#[ignore = "needs PostgreSQL"]
async fn postgres_migrations_apply_on_a_fresh_database_and_are_idempotent() {
    let db = TempPgDb::create().await.unwrap();
    let settings = DatabaseSettings {
        url: db.url.clone(),
        ..DatabaseSettings::default()
    };
    let store = Store::connect(&settings, Path::new(".")).await.unwrap();
    let first = store.migrate().await.unwrap();
    assert!(!first.is_empty());
    assert!(store.migrate().await.unwrap().is_empty());
    assert_eq!(count(&store).await, 0);
}
