//! `tasklet sim <party>`: simulators of every outside party, speaking the
//! real protocol on loopback, so that everything runs on one machine.

pub mod beards;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// A beard catalog site that keeps changing (catalog page + PNG beards).
    Beards(beards::BeardsArgs),
}

pub async fn run(cmd: SimCommand) -> anyhow::Result<()> {
    match cmd {
        SimCommand::Beards(args) => beards::run(args).await,
    }
}
