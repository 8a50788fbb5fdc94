//! `tasklet sim <party>`: simulators of every outside party, speaking the
//! real protocol on loopback, so that everything runs on one machine.

pub mod bookmaker;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// A bookmaker site with live games whose odds move (favbet JSON-RPC or HTML).
    Bookmaker(bookmaker::BookmakerArgs),
}

pub async fn run(cmd: SimCommand) -> anyhow::Result<()> {
    match cmd {
        SimCommand::Bookmaker(args) => bookmaker::run(args).await,
    }
}
