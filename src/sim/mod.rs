//! `tasklet sim <party>`: simulators of every outside party, speaking the
//! real protocol on loopback, so that everything runs on one machine.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum SimCommand {}

pub async fn run(cmd: SimCommand) -> anyhow::Result<()> {
    match cmd {}
}
