//! The `kafkachain` command line: one file per command, each with a clap `Args`
//! struct and a `run` function. Errors are `anyhow` here, at the edge.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod balance;
pub mod bench;
pub mod chain;
pub mod connect;
pub mod keys;
pub mod node;
pub mod proof;
pub mod send;
pub mod serve;
pub mod topics;
pub mod verify;
pub mod watch;

/// A blockchain ledger on Apache Kafka.
#[derive(Debug, Parser)]
#[command(name = "kafkachain", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a node: replay the chain, consume transactions, mine and publish blocks.
    Node(node::NodeArgs),
    /// Publish a transaction (or many, for load).
    Send(send::SendArgs),
    /// Print the chain topic as JSON lines, as kcat would.
    Chain(chain::ChainArgs),
    /// Replay a chain (a file of JSON lines, stdin, or the chain topic) and report.
    Verify(verify::VerifyArgs),
    /// Create or list the ledger's topics.
    Topics(topics::TopicsArgs),
    /// Live summary: height, tx/s, pending, blocks won per node.
    Watch(watch::WatchArgs),
    /// Measure the ledger against the bare broker, side by side.
    Bench(bench::BenchArgs),
    /// Create or show ed25519 keys (accounts chains).
    Keys(keys::KeysArgs),
    /// An account's balance and next nonce as of the chain's tip (accounts chains).
    Balance(balance::BalanceArgs),
    /// Serve the indexed HTTP API, live events, metrics and the explorer page.
    Serve(serve::ServeArgs),
    /// Check Merkle inclusion proofs offline.
    Proof(proof::ProofArgs),
}

/// Entry point used by the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let result = match &cli.command {
        Command::Node(args) => node::run(args),
        Command::Send(args) => send::run(args),
        Command::Chain(args) => chain::run(args),
        Command::Verify(args) => verify::run(args),
        Command::Topics(args) => topics::run(args),
        Command::Watch(args) => watch::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Keys(args) => keys::run(args),
        Command::Balance(args) => balance::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Proof(args) => proof::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Structured logs on stderr; `RUST_LOG` filters (default: info for kafkachain).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,kafkachain=info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
