//! The command line: `tasklet run | migrate | config check | bench …`.

pub mod notify;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "tasklet",
    version,
    about = "An actor-system daemon: watermark, beard, odds and notify pipelines"
)]
pub struct Cli {
    /// The config file (default: ./config.toml if present, else built-in defaults).
    #[arg(long, short, global = true, env = "TASKLET_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon until SIGTERM or SIGINT.
    Run,
    /// Apply pending database migrations, then exit.
    Migrate,
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Load generators and micro-benchmarks.
    #[command(subcommand)]
    Bench(crate::bench::BenchCommand),
    /// Fetch a CPU flamegraph (SVG) from a running daemon.
    Profile(crate::profile_cli::ProfileArgs),
    /// Simulators of the outside parties, on loopback.
    #[command(subcommand)]
    Sim(crate::sim::SimCommand),
    /// The notify pipeline: webhook registration, the notification log.
    #[command(subcommand)]
    Notify(notify::NotifyCommand),
    /// Recorded odds changes and the live stream.
    #[command(subcommand)]
    Odds(crate::odds_cli::OddsCommand),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective configuration (file + environment), secrets
    /// redacted; exit non-zero naming the offending key if it is invalid.
    Check,
}
