//! Wiring of the beard pipeline: which actors start, in what order, how they
//! stop, and what the HTTP layer gets to reach them.
//!
//! ```text
//! HTTP ─GetBeard─▶ BeardCatalog (list, cache, single-flight downloads)
//!      ─Dress───▶ Compositor pool (find faces, place, blend, encode)
//! ```

use std::path::PathBuf;
use std::sync::Arc;

use actix::prelude::*;
use anyhow::Context as _;
use tasklet_actors::beards::{BeardCatalog, BeardSettings};
use tasklet_actors::compose::dress::Dress;
use tasklet_actors::compose::face::FaceFinder;
use tasklet_actors::compose::{Compositor, Marks};
use tasklet_actors::store::Store;
use tasklet_actors::supervise;
use tokio::sync::Semaphore;
use tracing::info;

use crate::config::{Config, Secrets};
use crate::topology::Topology;

/// What the HTTP handlers of the beard pipeline need; cheap to clone.
#[derive(Clone)]
pub struct BeardHandle {
    pub catalog: Addr<BeardCatalog>,
    /// The compositor pool's `Dress` mailbox.
    pub dresser: Recipient<Dress>,
    /// Requests allowed in the pool at once (`beard.max_in_flight`).
    pub permits: Arc<Semaphore>,
    pub settings: Arc<BeardSettings>,
    /// Where the face models are, resolved against the config's folder.
    pub models_dir: Arc<PathBuf>,
}

/// The face models' folder: `beard.models_dir`, relative to the config file.
pub fn models_dir(config: &Config) -> PathBuf {
    let dir = PathBuf::from(&config.beard.models_dir);
    if dir.is_absolute() {
        dir
    } else {
        config.base_dir.join(dir)
    }
}

/// Starts the beard pipeline's actors sink-first and registers their stop
/// stages on `topology`.
pub async fn start(
    config: &Config,
    _secrets: &Secrets,
    _store: &Store,
    topology: &mut Topology,
) -> anyhow::Result<BeardHandle> {
    let settings = config.beard.clone();
    let models = models_dir(config);
    // Load the models once here so that a missing or broken model fails
    // the start, not the first request; each worker loads its own copy.
    let probe = models.clone();
    tokio::task::spawn_blocking(move || FaceFinder::load(&probe))
        .await
        .context("loading the face models")?
        .with_context(|| format!("loading the face models from {}", models.display()))?;
    // One compositor pool for the daemon: the watermark pipeline's when it
    // runs (it starts first), else one of our own.
    let dresser = match &topology.handles.watermark {
        Some(watermark) => watermark.compositor.clone().recipient(),
        None => {
            let threads = config.pools.compositor_threads();
            let no_marks = Arc::new(Marks::default());
            SyncArbiter::start(threads, move || Compositor::new(Arc::clone(&no_marks))).recipient()
        }
    };
    let catalog = BeardCatalog::new(settings.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
    // Restarted in place after a panic; a compositor worker is replaced.
    let catalog = supervise::start("BeardCatalog", |_| catalog);
    info!(pipeline = "beard", catalog = %settings.catalog_url, models = %models.display(), "beard pipeline started");
    let permits = Arc::new(Semaphore::new(settings.max_in_flight));
    let intake = permits.clone();
    let max = settings.max_in_flight as u32;
    topology.on_stop("beard: drain the compositor pool", move || {
        Box::pin(async move {
            // Every permit back means no dress is in the pool any more.
            if let Ok(all) = intake.acquire_many(max).await {
                all.forget();
            }
        })
    });
    let stop_catalog = catalog.clone();
    topology.on_stop("beard: stop the catalog", move || {
        Box::pin(async move {
            stop_catalog.do_send(StopCatalog);
        })
    });
    Ok(BeardHandle {
        catalog,
        dresser,
        permits,
        settings: Arc::new(settings),
        models_dir: Arc::new(models),
    })
}

/// Stops the catalog actor (ends its refresh schedule).
#[derive(Message)]
#[rtype(result = "()")]
struct StopCatalog;

impl Handler<StopCatalog> for BeardCatalog {
    type Result = ();

    fn handle(&mut self, _msg: StopCatalog, ctx: &mut Context<Self>) {
        let _handled = tasklet_actors::observe::handling("BeardCatalog");
        ctx.stop();
    }
}
