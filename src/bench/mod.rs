//! `tasklet bench …`: load generators and benchmarks, one file per target.

mod odds;
mod store;

use clap::Subcommand;

use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Rows/s committed by the batching writer at several batch sizes.
    Store(store::StoreBench),
    /// Games followed at one poll per second within the delay bound; CPU per poll; vs Scrapy.
    Odds(odds::OddsBench),
}

pub async fn run(cmd: BenchCommand, config: &Config) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Store(args) => store::run(args, config).await,
        BenchCommand::Odds(args) => odds::run(args, config).await,
    }
}
