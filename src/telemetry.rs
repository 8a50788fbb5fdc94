//! The one place the tracing subscriber is set up: a human-readable (or
//! JSON) console on stderr, and JSON lines in a daily-rotated file under
//! `log.dir` when that is set.

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

use crate::config::{LogFormat, LogSettings};

/// Keeps the file writer flushing; drop it last.
pub struct TelemetryGuard {
    _file: Option<WorkerGuard>,
}

/// Installs the global subscriber. `RUST_LOG` overrides `log.level`.
/// Returns an error if a subscriber is already installed.
pub fn init(settings: &LogSettings) -> anyhow::Result<TelemetryGuard> {
    let filter =
        || EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(&settings.level));
    let console = match settings.format {
        LogFormat::Pretty => fmt::layer().with_writer(std::io::stderr).compact().boxed(),
        LogFormat::Json => fmt::layer()
            .with_writer(std::io::stderr)
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    }
    .with_filter(filter()?);
    let (file, guard) = if settings.dir.is_empty() {
        (None, None)
    } else {
        std::fs::create_dir_all(&settings.dir)?;
        let appender = tracing_appender::rolling::daily(&settings.dir, "tasklet.log");
        let (writer, guard) = tracing_appender::non_blocking(appender);
        let layer = fmt::layer()
            .with_writer(writer)
            .with_ansi(false)
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_filter(filter()?);
        (Some(layer), Some(guard))
    };
    tracing_subscriber::registry()
        .with(console)
        .with(file)
        .try_init()?;
    Ok(TelemetryGuard { _file: guard })
}

/// The Prometheus recorder behind `GET /metrics`, installed on first use
/// (the daemon does so at start). `None` if another recorder was installed
/// first (only possible in tests).
pub fn prometheus() -> Option<&'static metrics_exporter_prometheus::PrometheusHandle> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            const SECONDS: &[f64] = &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0,
            ];
            const ROWS: &[f64] = &[1.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0];
            let handle = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
                .and_then(|b| b.set_buckets_for_metric(Matcher::Suffix("_rows".into()), ROWS))
                .and_then(|b| b.install_recorder())
                .ok()?;
            metrics_process::Collector::default().describe();
            Some(handle)
        })
        .as_ref()
}

/// Renders every metric, process CPU and memory included, in the
/// Prometheus text format.
pub fn render_metrics() -> String {
    match prometheus() {
        Some(handle) => {
            metrics_process::Collector::default().collect();
            handle.render()
        }
        None => "# no metrics recorder installed\n".to_owned(),
    }
}
