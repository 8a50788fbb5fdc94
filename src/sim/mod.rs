//! `tasklet sim <party>`: simulators of every outside party, speaking the
//! real protocol on loopback, so that everything runs on one machine.

pub mod beards;
pub mod bookmaker;
pub mod transactions;
pub mod viber;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    /// Viber's REST bot API (send_message, set_webhook, signed callbacks).
    Viber(viber::ViberSimArgs),
    /// A publisher of transaction-status messages to RabbitMQ.
    Transactions(transactions::TransactionsArgs),
    /// A bookmaker site with live games whose odds move (favbet JSON-RPC or HTML).
    Bookmaker(bookmaker::BookmakerArgs),
    /// A beard catalog site that keeps changing (catalog page + PNG beards).
    Beards(beards::BeardsArgs),
}

pub async fn run(cmd: SimCommand) -> anyhow::Result<()> {
    match cmd {
        SimCommand::Viber(args) => viber::run(args).await,
        SimCommand::Transactions(args) => transactions::run(args).await,
        SimCommand::Bookmaker(args) => bookmaker::run(args).await,
        SimCommand::Beards(args) => beards::run(args).await,
    }
}
