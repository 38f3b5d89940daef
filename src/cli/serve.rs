//! `kafkachain serve`: the indexed HTTP API, server-sent events, metrics and the
//! explorer page.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use super::connect::ConnectArgs;
use crate::node::Shutdown;
use crate::serve::{self, ServeConfig};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Address to serve HTTP on (port 0: any free port; the log says which).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// The index file (SQLite); deleting it makes `serve` rebuild it.
    #[arg(long, default_value = "data/index.sqlite")]
    pub index: PathBuf,
    /// `/healthz` fails when the index trails the chain topic by more records than this.
    #[arg(long, default_value_t = 100)]
    pub max_lag: i64,
}

pub fn run(args: &ServeArgs) -> anyhow::Result<ExitCode> {
    if let Some(dir) = args.index.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("creating the index directory {}", dir.display()))?;
    }
    let config = ServeConfig {
        kafka: args.connect.kafka()?,
        topics: args.connect.topics(),
        listen: args.listen,
        index: args.index.clone(),
        max_lag: args.max_lag,
    };
    let shutdown = Shutdown::on_signals().context("installing the Ctrl-C/SIGTERM handler")?;
    serve::run(config, &shutdown).with_context(|| format!("serving on {}", args.listen))?;
    Ok(ExitCode::SUCCESS)
}
