//! `kafkachain verify` (filled in by the chain-core work).

use std::process::ExitCode;

/// Arguments of `kafkachain verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {}

/// Runs the command.
pub fn run(_args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    Ok(ExitCode::SUCCESS)
}
