//! `tasklet bench …`: load generators and benchmarks, one file per target.

mod beard;
pub mod notify;
mod odds;
mod report;
mod store;
mod watermark;

use clap::Subcommand;

use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Rows/s committed by the batching writer at several batch sizes.
    Store(store::StoreBench),
    /// The beard path for a cached style: in-process per step, or over HTTP.
    Beard(beard::BeardBench),
    /// Images/s and latency of `POST /v1/watermark` (or a compatible server) under load.
    Watermark(watermark::WatermarkBench),
    /// The notify pipeline beside an asyncio baseline: latency at a rate,
    /// then draining a full queue (RabbitMQ + PostgreSQL on this machine).
    Notify(notify::NotifyBench),
    /// Games followed at one poll per second within the delay bound; CPU per poll; vs Scrapy.
    Odds(odds::OddsBench),
}

pub async fn run(cmd: BenchCommand, config: &Config) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Store(args) => store::run(args, config).await,
        BenchCommand::Beard(args) => beard::run(args).await,
        BenchCommand::Watermark(args) => watermark::run(args, config).await,
        BenchCommand::Notify(args) => notify::run(args, config).await,
        BenchCommand::Odds(args) => odds::run(args, config).await,
    }
}
