//! The one place that starts actors, sink-first, and wires their
//! `Recipient`s; it also records the order in which they stop.
//!
//! Each pipeline adds a `start_<pipeline>` function here that starts its
//! actors (writers before the stages feeding them), registers what the HTTP
//! layer needs, and pushes its stop stages: intake first, then drain, then
//! flush writers.
//!
//! Every long-lived actor is started under supervision
//! ([`tasklet_actors::supervise`]): after a panic it is restarted in place,
//! keeping its address, after a capped exponential backoff, with the
//! reason logged and `tasklet_actor_restarts_total{actor}` counted; a
//! `SyncArbiter` worker that panics answers its job with an error and is
//! replaced. Network actors also retry on their own: each odds Fetcher
//! backs off per game, and the AMQP consumer reconnects with capped
//! backoff whenever the broker connection is lost.

use futures_util::future::LocalBoxFuture;
use tasklet_actors::store::Store;
use tracing::info;

use crate::config::{Config, Secrets};
use crate::pipelines;

/// One step of an orderly stop.
struct Stage {
    name: String,
    stop: Box<dyn FnOnce() -> LocalBoxFuture<'static, ()>>,
}

/// The running actors of every enabled pipeline.
pub struct Topology {
    /// Names of the pipelines started, for `/readyz` and `/`.
    pub pipelines: Vec<&'static str>,
    /// Stop stages, run in order: intake, drain, flush.
    stages: Vec<Stage>,
    /// What the HTTP layer needs of each started pipeline.
    pub handles: Handles,
    /// Set to `true` when the stop begins, before HTTP stops taking
    /// requests: long-lived responses (SSE streams) end on it so that the
    /// graceful HTTP stop does not wait for them.
    closing: tokio::sync::watch::Sender<bool>,
}

/// One handle per pipeline, `None` when it is not enabled.
#[derive(Clone, Default)]
pub struct Handles {
    pub watermark: Option<pipelines::watermark::WatermarkHandle>,
    pub beard: Option<pipelines::beard::BeardHandle>,
    pub odds: Option<pipelines::odds::OddsHandle>,
    pub notify: Option<pipelines::notify::NotifyHandle>,
}

impl Topology {
    /// Starts every enabled pipeline.
    pub async fn start(
        config: &Config,
        secrets: &Secrets,
        store: &Store,
    ) -> anyhow::Result<Topology> {
        let mut t = Topology::empty();
        // Sinks first: a pipeline's writers start inside its `start`
        // before the stages that feed them.
        if config.watermark.enabled {
            t.handles.watermark =
                Some(pipelines::watermark::start(config, secrets, store, &mut t).await?);
            t.pipelines.push("watermark");
        }
        if config.beard.enabled {
            t.handles.beard = Some(pipelines::beard::start(config, secrets, store, &mut t).await?);
            t.pipelines.push("beard");
        }
        if config.odds.enabled {
            t.handles.odds = Some(pipelines::odds::start(config, secrets, store, &mut t).await?);
            t.pipelines.push("odds");
        }
        if config.notify.enabled {
            t.handles.notify =
                Some(pipelines::notify::start(config, secrets, store, &mut t).await?);
            t.pipelines.push("notify");
        }
        Ok(t)
    }

    /// A topology with nothing started yet (tests build their own).
    pub fn empty() -> Topology {
        Topology {
            pipelines: Vec::new(),
            stages: Vec::new(),
            handles: Handles::default(),
            closing: tokio::sync::watch::channel(false).0,
        }
    }

    /// Turns `true` when the daemon starts stopping.
    pub fn closing(&self) -> tokio::sync::watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Tells every [`closing`](Self::closing) watcher that the stop began.
    pub fn begin_closing(&self) {
        self.closing.send_replace(true);
    }

    /// Adds a stop stage; stages run in the order they were added.
    pub fn on_stop<F>(&mut self, name: impl Into<String>, stop: F)
    where
        F: FnOnce() -> LocalBoxFuture<'static, ()> + 'static,
    {
        self.stages.push(Stage {
            name: name.into(),
            stop: Box::new(stop),
        });
    }

    /// Runs every stop stage in order; each is logged with its duration.
    pub async fn shutdown(self) {
        for stage in self.stages {
            let started = std::time::Instant::now();
            (stage.stop)().await;
            info!(stage = %stage.name, elapsed_ms = started.elapsed().as_millis() as u64, "stopped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn stop_stages_run_in_order() {
        let mut t = Topology::empty();
        let log = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        for name in ["intake", "drain", "flush"] {
            let log = log.clone();
            t.on_stop(name, move || {
                Box::pin(async move {
                    log.borrow_mut().push(name);
                })
            });
        }
        t.shutdown().await;
        assert_eq!(*log.borrow(), vec!["intake", "drain", "flush"]);
    }
}
