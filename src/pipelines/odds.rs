//! Wiring of the odds pipeline: which actors start, in what order, how they
//! stop, and what the HTTP layer gets to reach them.
//!
//! Sink first: `BatchWriter<NewOddsChange>` → Persister → Cache → Differ →
//! Parser pool → one Discovery per site (which starts the Fetchers). Each
//! actor is restarted in place after a panic, Fetchers included
//! ([`tasklet_actors::supervise`]); a Parser worker is replaced. Stop:
//! intake (Discovery stops every Fetcher once its poll in flight has
//! ended, so every snapshot taken has reached the Persister), then flush
//! (the Persister upserts the events and flushes the writer).

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use anyhow::Context as _;
use tasklet_actors::odds::messages::{OddsChange, StopDiscovery};
use tasklet_actors::odds::site::{self, SiteClient};
use tasklet_actors::odds::{
    Cache, Differ, Discovery, FetcherOutputs, FetcherSettings, Parser, PersistAll, Persister,
};
use tasklet_actors::store::models::NewOddsChange;
use tasklet_actors::store::{BatchWriter, Store};
use tasklet_actors::supervise;
use tokio::sync::{broadcast, watch};
use tracing::info;

use crate::config::{Config, Secrets};
use crate::topology::Topology;

/// What the HTTP handlers of the odds pipeline need; cheap to clone.
#[derive(Clone)]
pub struct OddsHandle {
    /// Every detected change, as the Differ finds it (subscribe for SSE).
    pub live: broadcast::Sender<Arc<Vec<OddsChange>>>,
    /// One per site, to ask what is watched.
    pub discoveries: Vec<Addr<Discovery>>,
    /// Turns true when the daemon stops (SIGTERM/SIGINT, or the intake stop
    /// stage): live streams end then, so that they do not hold the HTTP
    /// server's graceful stop.
    pub closing: watch::Receiver<bool>,
}

/// Starts the odds pipeline's actors sink-first and registers their stop
/// stages on `topology`.
pub async fn start(
    config: &Config,
    _secrets: &Secrets,
    store: &Store,
    topology: &mut Topology,
) -> anyhow::Result<OddsHandle> {
    let s = &config.odds;
    let mut writer_settings = config.database.writer();
    writer_settings.batch_size = s.persist_batch_size;
    writer_settings.flush_interval_ms = s.persist_flush_interval_ms;
    // Every actor is restarted in place after a panic (`supervise`).
    let writer = BatchWriter::<NewOddsChange>::new(store.clone(), writer_settings);
    let writer = supervise::start("BatchWriter", |_| writer);
    let persister = Persister::new(
        writer.clone().recipient(),
        writer.recipient(),
        store.clone(),
        Duration::from_millis(s.persist_flush_interval_ms),
        s.mailbox,
    );
    let persister = supervise::start("Persister", |_| persister);
    let cache = supervise::start("Cache", |_| Cache::new(s.mailbox));
    let (live, _) = broadcast::channel(s.stream_buffer);
    let differ = Differ::new(
        cache.clone().recipient(),
        cache.recipient(),
        persister.clone().recipient(),
        live.clone(),
        s.mailbox,
    );
    let differ = supervise::start("Differ", |_| differ);
    let snippet_bytes = s.snippet_bytes;
    let threads = config.pools.parser_threads();
    let parser = SyncArbiter::start(threads, move || Parser::new(snippet_bytes));
    let fetcher_settings = FetcherSettings {
        interval: s.poll_interval(),
        jitter: Duration::from_millis(s.poll_jitter_ms),
        backoff_max: Duration::from_millis(s.backoff_max_ms),
        stale_after_failures: s.stale_after_failures,
    };
    let mut discoveries = Vec::new();
    for site_settings in &s.sites {
        let adapter = site::build(site_settings)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("odds site {:?}", site_settings.name))?;
        let client = SiteClient::new(
            adapter,
            site_settings,
            Duration::from_millis(s.request_timeout_ms),
        )
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("odds site {:?}", site_settings.name))?;
        let client = Arc::new(client);
        let parser = parser.clone().recipient();
        let snapshots = differ.clone().recipient();
        let vanished = differ.clone().recipient();
        let fetcher_settings = fetcher_settings.clone();
        let interval = s.discovery_interval();
        discoveries.push(supervise::start("Discovery", move |ctx| {
            let outputs = FetcherOutputs {
                parser,
                snapshots,
                vanished,
                reports: ctx.address().recipient(),
            };
            Discovery::new(client, outputs, fetcher_settings, interval, snippet_bytes)
        }));
    }
    info!(
        pipeline = "odds",
        sites = s.sites.len(),
        parser_threads = threads,
        "started"
    );
    // SSE streams end when the daemon starts stopping (before HTTP drains).
    let closing = topology.closing();
    let stopping = discoveries.clone();
    topology.on_stop("odds: stop discovery and fetchers", move || {
        Box::pin(async move {
            for d in stopping {
                let _ = d.send(StopDiscovery).await;
            }
        })
    });
    topology.on_stop("odds: flush the persister", move || {
        Box::pin(async move {
            let _ = persister.send(PersistAll).await;
        })
    });
    Ok(OddsHandle {
        live,
        discoveries,
        closing,
    })
}
