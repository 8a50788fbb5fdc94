//! `tasklet`: parse the command line, load the config, set up logs, run.

use clap::Parser;
use tasklet::cli::{Cli, Command, ConfigCommand};
use tasklet::config::{Config, Secrets};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    match actix_rt::System::new().block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tasklet: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::load(cli.config.as_deref(), std::env::vars())?;
    let secrets = Secrets::from_env();
    match cli.command {
        Command::Config(ConfigCommand::Check) => {
            print!("{}", config.redacted_toml(&secrets));
            Ok(())
        }
        Command::Migrate => {
            let _logs = tasklet::telemetry::init(&config.log)?;
            tasklet::daemon::open_store(&config).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Run => {
            let _logs = tasklet::telemetry::init(&config.log)?;
            let signals = tasklet::daemon::Signals::install()?;
            let daemon = tasklet::daemon::Daemon::start(config, secrets).await?;
            println!("tasklet listening on http://{}", daemon.addr);
            daemon.run_until_signal(signals).await
        }
        Command::Bench(cmd) => tasklet::bench::run(cmd, &config).await,
        Command::Profile(args) => tasklet::profile_cli::run(args).await,
        Command::Notify(cmd) => tasklet::cli::notify::run(cmd, &config, &secrets).await,
        Command::Odds(cmd) => tasklet::odds_cli::run(cmd, &config).await,
        Command::Sim(cmd) => {
            let _logs = tasklet::telemetry::init(&config.log)?;
            tasklet::sim::run(cmd).await
        }
    }
}
