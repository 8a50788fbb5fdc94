//! tasklet: one long-running daemon, built on actix actors, that runs four
//! pipelines side by side (watermark, beard, odds, notify).
//!
//! # Layout
//!
//! | module | what lives there |
//! |---|---|
//! | [`cli`] | the command line (`run`, `migrate`, `config check`, `bench`) |
//! | [`config`] | `config.toml` + `TASKLET__…` overrides, validated by key path |
//! | [`telemetry`] | the one place logs are set up |
//! | [`daemon`] | lifecycle: store, migrations, topology, HTTP, signals, orderly stop |
//! | [`topology`] | starts actors sink-first, wires `Recipient`s, orders the stop |
//! | [`pipelines`] | one wiring file per pipeline, called by the topology |
//! | [`sim`] | simulators of every outside party (`tasklet sim …`) |
//! | [`http`] | the actix-web app, one file per resource |
//! | [`odds_cli`] | `tasklet odds changes` and `tasklet odds watch` |
//! | [`bench`] | load generators and benchmarks |
//!
//! The actors themselves live in the `tasklet-actors` crate.

pub mod bench;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod http;
pub mod odds_cli;
pub mod pipelines;
pub mod profile_cli;
pub mod sim;
pub mod telemetry;
#[doc(hidden)]
pub mod testing;
pub mod topology;
