//! The command line: `run`, `validate`, `map`, `schema`, `replay`, `record`,
//! `bench`, the bus readers `tail` and `book`, `top` (a live view of a
//! running relay) and `instruments` (reference data).
//! Each subcommand lives in its own file; this one only dispatches.

pub mod bench;
mod bench_ceiling;
mod bench_cluster;
mod bench_consumers;
mod bench_feeds;
mod bench_procs;
mod bench_publish;
mod bench_scale;
pub mod book;
pub mod bus;
pub mod instruments;
mod ladder;
mod map;
pub mod record;
pub mod replay;
pub mod run;
mod schema;
pub mod tail;
pub mod top;
mod validate;
pub mod venue_arg;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mdrelay: a config-driven market-data relay to NATS JetStream.
#[derive(Debug, Parser)]
#[command(name = "mdrelay", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the relay: connect to the configured venues and publish to JetStream.
    Run(run::Args),
    /// Serve recorded frames as a local fake venue (WebSocket server).
    Replay(replay::Args),
    /// Connect to a venue as `run` does and write its frames as a fixture case.
    Record(record::Args),
    /// End-to-end benchmark: broker ceiling, relay throughput, latency, CPU, RSS.
    Bench(bench::Args),
    /// One relay phase of the benchmark (run by `mdrelay bench`).
    #[command(hide = true)]
    BenchRelay(bench::RelayPhaseArgs),
    /// Compile every venue file and check it against its recorded fixtures.
    Validate(validate::Args),
    /// Map raw frames from stdin (one per line) to canonical events on stdout.
    Map(map::Args),
    /// Write the JSON Schemas of the venue and relay files.
    Schema(schema::Args),
    /// Print the events on the bus, decoded, one per line.
    Tail(tail::Args),
    /// Show one order book from the bus: a live ladder, or the book once.
    Book(book::Args),
    /// A live view of a running relay (from its /health and /metrics).
    Top(top::Args),
    /// A venue's instrument reference data, filtered: from the bus, the
    /// venue (`--fetch`) or a saved response (`--response`).
    Instruments(instruments::Args),
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(a) => run::run(a),
        Command::Replay(a) => replay::run(a),
        Command::Record(a) => record::run(a),
        Command::Bench(a) => bench::run(a),
        Command::BenchRelay(a) => bench::run_relay_phase(a),
        Command::Validate(a) => validate::run(a),
        Command::Map(a) => map::run(a),
        Command::Schema(a) => schema::run(a),
        Command::Tail(a) => tail::run(a),
        Command::Book(a) => book::run(a),
        Command::Top(a) => top::run(a),
        Command::Instruments(a) => instruments::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
