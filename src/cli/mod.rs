//! The `kafkachain` command line: one file per command, each with a clap `Args`
//! struct and a `run` function. Errors are `anyhow` here, at the edge.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod verify;

/// A blockchain ledger on Apache Kafka.
#[derive(Debug, Parser)]
#[command(name = "kafkachain", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Replay a chain (one block per line, as `kcat -C -t blockchain` prints it) and report.
    Verify(verify::VerifyArgs),
}

/// Entry point used by the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Verify(args) => verify::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
