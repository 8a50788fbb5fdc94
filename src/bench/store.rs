//! `tasklet bench store`: how many rows/s the batching writer commits.

use std::time::Instant;

use actix::Actor;
use clap::Args;
use diesel::prelude::*;
use serde::Serialize;
use tasklet_actors::store::models::NewNotification;
use tasklet_actors::store::schema::notifications;
use tasklet_actors::store::{BatchWriter, Flush, Insert, Store};

use crate::config::Config;

#[derive(Debug, Args)]
pub struct StoreBench {
    /// Database to write to (default: the config's `database.url`). Use a
    /// scratch database: the bench writes and then deletes its rows.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Rows per run (runs at batch size 1 write a twentieth of it).
    #[arg(long, default_value_t = 100_000)]
    pub rows: usize,
    /// Batch sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    pub batch_sizes: Vec<usize>,
    /// Concurrent senders.
    #[arg(long, default_value_t = 64)]
    pub senders: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct Run {
    backend: String,
    batch_size: usize,
    rows: usize,
    seconds: f64,
    rows_per_s: f64,
    batches: u64,
}

fn row(run: &str, i: usize) -> NewNotification {
    crate::testing::sent_notification(format!("{run}-{i}"), i)
}

pub async fn run(args: StoreBench, config: &Config) -> anyhow::Result<()> {
    let mut settings = config.database.clone();
    if let Some(url) = &args.database_url {
        settings.url = url.clone();
    }
    settings
        .validate()
        .map_err(|(k, r)| anyhow::anyhow!("database.{k}: {r}"))?;
    let store = Store::connect(&settings, &config.base_dir).await?;
    store.migrate().await?;
    let mut runs = Vec::new();
    for &batch_size in &args.batch_sizes {
        let rows = if batch_size < 10 {
            (args.rows / 20).max(1)
        } else {
            args.rows
        };
        let tag = format!("bench-{}-{batch_size}", std::process::id());
        let mut writer_settings = settings.writer();
        writer_settings.batch_size = batch_size;
        writer_settings.mailbox = 4096;
        let writer = BatchWriter::<NewNotification>::new(store.clone(), writer_settings).start();
        let started = Instant::now();
        let per_sender = rows.div_ceil(args.senders.max(1));
        let mut tasks = Vec::new();
        for s in 0..args.senders.max(1) {
            let writer = writer.clone();
            let tag = tag.clone();
            tasks.push(tokio::task::spawn_local(async move {
                let mut receipts = Vec::with_capacity(per_sender);
                for i in (s * per_sender)..((s + 1) * per_sender).min(rows) {
                    receipts.push(writer.send(Insert(vec![row(&tag, i)])).await?);
                }
                for r in receipts {
                    r.await?;
                }
                anyhow::Ok(())
            }));
        }
        for t in tasks {
            t.await??;
        }
        writer.send(Flush).await?.await?;
        let seconds = started.elapsed().as_secs_f64();
        let stats = writer.send(tasklet_actors::store::GetStats).await?;
        runs.push(Run {
            backend: format!("{:?}", store.backend()),
            batch_size,
            rows,
            seconds,
            rows_per_s: rows as f64 / seconds,
            batches: stats.batches,
        });
        cleanup(&store, tag).await?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
    } else {
        println!(
            "{:<10} {:>10} {:>10} {:>10} {:>12} {:>8}",
            "backend", "batch", "rows", "seconds", "rows/s", "batches"
        );
        for r in &runs {
            println!(
                "{:<10} {:>10} {:>10} {:>10.2} {:>12.0} {:>8}",
                r.backend, r.batch_size, r.rows, r.seconds, r.rows_per_s, r.batches
            );
        }
    }
    Ok(())
}

async fn cleanup(store: &Store, tag: String) -> anyhow::Result<()> {
    let pattern = format!("{tag}-%");
    match store {
        Store::Postgres(_) => {
            let mut conn = store.pg().await?;
            diesel_async::RunQueryDsl::execute(
                diesel::delete(
                    notifications::table.filter(notifications::message_id.like(pattern)),
                ),
                &mut *conn,
            )
            .await?;
        }
        Store::Sqlite(_) => {
            store
                .write_sqlite(move |c| {
                    diesel::delete(
                        notifications::table.filter(notifications::message_id.like(pattern)),
                    )
                    .execute(c)?;
                    Ok(())
                })
                .await?;
        }
    }
    Ok(())
}
