//! `kafkachain proof verify FILE`: checks a Merkle inclusion proof offline (the JSON
//! that `GET /tx/:txid/merkle-proof` serves; format in docs/proofs.md).

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::chain::proof::InclusionProof;

#[derive(Debug, clap::Args)]
pub struct ProofArgs {
    #[command(subcommand)]
    pub command: ProofCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum ProofCommand {
    /// Check a proof: exit 0 if it binds the transaction to the block hash, 1 (with
    /// the reason) if it does not.
    Verify {
        /// The proof JSON; `-` for standard input.
        file: PathBuf,
    },
}

pub fn run(args: &ProofArgs) -> anyhow::Result<ExitCode> {
    let ProofCommand::Verify { file } = &args.command;
    let mut text = Vec::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut text)
            .context("reading the proof from standard input")?;
    } else {
        text =
            std::fs::read(file).with_context(|| format!("reading the proof {}", file.display()))?;
    }
    let proof: InclusionProof = match serde_json::from_slice(&text) {
        Ok(p) => p,
        Err(err) => {
            println!("invalid: not a kafkachain Merkle proof: {err}");
            return Ok(ExitCode::from(1));
        }
    };
    match proof.verify() {
        Ok(()) => {
            println!(
                "ok: transaction {} is at position {} of block {} ({}), {} bits of work",
                proof.txid, proof.pos, proof.block_height, proof.block_hash, proof.difficulty
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            println!("invalid: {err}");
            Ok(ExitCode::from(1))
        }
    }
}
