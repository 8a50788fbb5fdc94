//! Wiring of the watermark pipeline: decode the marks once, start the
//! [`Compositor`] pool (`pools.compositor` workers), and hand the HTTP layer
//! the pool's address and the permits that bound what waits for it.

use std::sync::Arc;
use std::time::Duration;

use actix::{Addr, SyncArbiter};
use anyhow::Context as _;
use tasklet_actors::compose::{load_marks, Compositor, WatermarkSettings};
use tasklet_actors::store::Store;
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::config::{Config, Secrets};
use crate::topology::Topology;

/// What the HTTP handlers of the watermark pipeline need; cheap to clone.
#[derive(Clone)]
pub struct WatermarkHandle {
    /// The compositor pool (its queue is unbounded: take a permit first).
    pub compositor: Addr<Compositor>,
    /// `watermark.max_in_flight` permits; no permit means 503.
    pub permits: Arc<Semaphore>,
    pub settings: Arc<WatermarkSettings>,
}

/// Starts the watermark pipeline's actors sink-first and registers their stop
/// stages on `topology`.
pub async fn start(
    config: &Config,
    _secrets: &Secrets,
    _store: &Store,
    topology: &mut Topology,
) -> anyhow::Result<WatermarkHandle> {
    let settings = Arc::new(config.watermark.clone());
    let marks =
        Arc::new(load_marks(&settings.marks, &config.base_dir).context("loading watermark marks")?);
    let threads = config.pools.compositor_threads();
    let pool_marks = Arc::clone(&marks);
    let compositor = SyncArbiter::start(threads, move || Compositor::new(Arc::clone(&pool_marks)));
    let permits = Arc::new(Semaphore::new(settings.max_in_flight));
    info!(pipeline = "watermark", threads, marks = ?marks.keys().collect::<Vec<_>>(), max_in_flight = settings.max_in_flight, "compositor pool started");

    // The HTTP server has stopped taking requests when this runs: wait for
    // the images in flight (every permit back), bounded by the grace.
    let drain = Arc::clone(&permits);
    let all = settings.max_in_flight as u32;
    let grace = Duration::from_millis(config.server.shutdown_grace_ms);
    topology.on_stop("watermark: drain compositor pool", move || {
        Box::pin(async move {
            match tokio::time::timeout(grace, drain.acquire_many(all)).await {
                Ok(_) => {}
                Err(_) => warn!(pipeline = "watermark", "images still in flight at shutdown"),
            }
        })
    });
    Ok(WatermarkHandle {
        compositor,
        permits,
        settings,
    })
}
