//! The daemon's lifecycle: open the store, migrate, start the topology,
//! serve HTTP; on SIGTERM/SIGINT stop intake, drain, flush, exit.

use std::net::SocketAddr;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer};
use anyhow::Context as _;
use tasklet_actors::store::Store;
use tracing::{error, info};

use crate::config::{Config, Secrets};
use crate::http::{self, AppState};
use crate::topology::Topology;

/// A started daemon.
pub struct Daemon {
    /// Where HTTP listens (the real port when the config said 0).
    pub addr: SocketAddr,
    pub store: Store,
    server: ServerHandle,
    serving: tokio::task::JoinHandle<std::io::Result<()>>,
    topology: Topology,
    grace: Duration,
}

/// Opens the store named by the config and applies pending migrations.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let store = Store::connect(&config.database, &config.base_dir)
        .await
        .context("opening the database")?;
    let applied = store.migrate().await.context("running migrations")?;
    if !applied.is_empty() {
        info!(backend = ?store.backend(), migrations = ?applied, "migrations applied");
    }
    Ok(store)
}

impl Daemon {
    /// Starts everything; returns once HTTP is listening.
    pub async fn start(config: Config, secrets: Secrets) -> anyhow::Result<Daemon> {
        crate::telemetry::prometheus();
        let store = open_store(&config).await?;
        let topology = Topology::start(&config, &secrets, &store).await?;
        let state = AppState {
            store: store.clone(),
            pipelines: topology.pipelines.clone(),
            handles: topology.handles.clone(),
            secrets: secrets.clone(),
        };
        let grace = Duration::from_millis(config.server.shutdown_grace_ms);
        let origins = http::origin::OriginPolicy::new(&config.server.allowed_origins);
        let server = HttpServer::new(move || {
            let origins = origins.clone();
            App::new()
                .wrap(from_fn(move |req, next| {
                    http::origin::check(origins.clone(), req, next)
                }))
                .configure(http::configure(state.clone()))
        })
        .workers(config.server.worker_threads())
        .disable_signals()
        .shutdown_timeout(grace.as_secs().max(1));
        let server = match tls_config(&config)? {
            Some(tls) => server.bind_rustls_0_23(&config.server.addr, tls),
            None => server.bind(&config.server.addr),
        }
        .with_context(|| format!("binding {}", config.server.addr))?;
        let addr = *server.addrs().first().context("no listening address")?;
        let server = server.run();
        let handle = server.handle();
        let serving = tokio::spawn(server);
        let tls = !config.server.tls_cert.is_empty();
        info!(%addr, tls, pipelines = ?topology.pipelines, "listening");
        Ok(Daemon {
            addr,
            store,
            server: handle,
            serving,
            topology,
            grace,
        })
    }

    /// The started pipelines' handles (what the HTTP layer reaches).
    pub fn handles(&self) -> &crate::topology::Handles {
        &self.topology.handles
    }

    /// The orderly stop: refuse new connections and finish in-flight
    /// requests, then stop each pipeline (intake, drain, flush). Fails if it
    /// takes longer than `server.shutdown_grace_ms`.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let Daemon {
            server,
            serving,
            topology,
            grace,
            ..
        } = self;
        let stop = async move {
            // Long-lived responses end first, or the graceful stop waits for them.
            topology.begin_closing();
            server.stop(true).await;
            let _ = serving.await;
            topology.shutdown().await;
        };
        tokio::time::timeout(grace, stop).await.map_err(|_| {
            anyhow::anyhow!(
                "shutdown took longer than {} ms; unflushed work may be lost",
                grace.as_millis()
            )
        })
    }

    /// Runs until SIGTERM or SIGINT, then stops in order.
    pub async fn run_until_signal(self, signals: Signals) -> anyhow::Result<()> {
        let signal = signals.wait().await;
        info!(signal, "stopping: intake first, then drain, then flush");
        let result = self.shutdown().await;
        match &result {
            Ok(()) => info!("stopped cleanly"),
            Err(e) => error!(error = %e, "stop was not clean"),
        }
        result
    }
}

/// SIGTERM and SIGINT, caught from the moment this is created (install it
/// before announcing readiness, or an early signal kills the process).
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    pub fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn wait(mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// The rustls server config when `server.tls_cert` and `server.tls_key`
/// are set (paths relative to the config file).
fn tls_config(config: &Config) -> anyhow::Result<Option<rustls::ServerConfig>> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let (cert, key) = (&config.server.tls_cert, &config.server.tls_key);
    if cert.is_empty() || key.is_empty() {
        return Ok(None);
    }
    let cert = config.base_dir.join(cert);
    let key = config.base_dir.join(key);
    let chain = CertificateDer::pem_file_iter(&cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("server.tls_cert: reading {}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&key)
        .with_context(|| format!("server.tls_key: reading {}", key.display()))?;
    let tls = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .context("server.tls_cert/tls_key: certificate and key do not fit")?;
    Ok(Some(tls))
}
