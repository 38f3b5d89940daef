//! `kafkachain keys new --out FILE` and `kafkachain keys show FILE`: ed25519 keys for
//! accounts chains (the file format is in `docs/accounts.md`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use crate::node::keyfile;

#[derive(Debug, clap::Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    pub command: KeysCommand,
}

#[derive(Debug, clap::Subcommand)]
pub enum KeysCommand {
    /// Write a new random key (file mode 0600; an existing file is never overwritten)
    /// and print its address.
    New {
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the address (public key) of a key file.
    Show { file: PathBuf },
}

pub fn run(args: &KeysArgs) -> anyhow::Result<ExitCode> {
    match &args.command {
        KeysCommand::New { out } => {
            let key = keyfile::create(out).context("creating key file")?;
            println!("{}", keyfile::address(&key));
            eprintln!("wrote a new ed25519 key to {}", out.display());
        }
        KeysCommand::Show { file } => {
            let key = keyfile::read(file).context("reading key file")?;
            println!("{}", keyfile::address(&key));
        }
    }
    Ok(ExitCode::SUCCESS)
}
