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
