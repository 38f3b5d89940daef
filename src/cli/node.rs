//! `kafkachain node`: run a node until Ctrl-C/SIGTERM.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use super::connect::ConnectArgs;
use crate::chain::accounts::{parse_allocations, ChainId, MAX_AMOUNT};
use crate::chain::{self, Rules};
use crate::node::{Node, NodeConfig, Shutdown};
use crate::transport::intake::IntakeMode;

/// Which rule set a new chain gets.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RulesArg {
    /// The tutorial's rules, byte-compatible with the Python original.
    Seed,
    /// Proof of work that commits to the block's content (the default).
    V2,
    /// v2 plus ed25519-signed transfers, balances and nonces (docs/accounts.md).
    Accounts,
}

#[derive(Debug, clap::Args)]
pub struct NodeArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Reward recipient; default: a random id kept in the data directory.
    #[arg(long)]
    pub id: Option<String>,
    /// Where the node keeps its id.
    #[arg(long, default_value = "data/node")]
    pub data_dir: PathBuf,
    /// Own exactly this partition of the transactions topic (the tutorial's mode);
    /// default: join the consumer group and share partitions with the other nodes.
    #[arg(long)]
    pub partition: Option<i32>,
    /// Consumer group for transaction intake.
    #[arg(long, default_value = "kafkachain")]
    pub group: String,
    /// Rules for a new chain (an existing chain keeps its own).
    #[arg(long, value_enum, default_value = "v2")]
    pub rules: RulesArg,
    /// Leading zero bits of the v2 proof of work, for a new chain.
    #[arg(long, default_value_t = chain::DEFAULT_V2_DIFFICULTY)]
    pub difficulty: u32,
    /// Cut a block every N transactions.
    #[arg(long, default_value_t = 3)]
    pub block_size: usize,
    /// ... or when the oldest pending transaction has waited this long (e.g. 1s, 250ms).
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub block_timeout: Duration,
    /// Amount of the reward transaction.
    #[arg(long, default_value = "1")]
    pub reward: serde_json::Number,
    /// Starting balances of a new accounts chain: a JSON file `{"<address>": amount}`.
    #[arg(long)]
    pub genesis_alloc: Option<PathBuf>,
    /// Mining threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9464).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Publishing turns: when another node is first in line for the next block, build
    /// nothing until this long per place behind it after reading the tip, and build
    /// nothing at all if that node's block comes first (0 = build whenever a block is
    /// due; docs/consensus.md).
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    pub turn_grace: Duration,
}

/// Parses `1s`, `250ms`, `2m` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| c.is_ascii_alphabetic()) {
        Some(i) => text.split_at(i),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 1s or 250ms"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("unknown unit in `{text}` (use ms, s or m)")),
    };
    if !seconds.is_finite() || seconds < 0.0 {
        return Err(format!("`{text}` is not a valid duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

pub fn run(args: &NodeArgs) -> anyhow::Result<ExitCode> {
    let mut config = NodeConfig::new(args.connect.kafka()?);
    config.topics = args.connect.topics();
    config.group = args.group.clone();
    config.id = args.id.clone();
    config.data_dir = args.data_dir.clone();
    config.intake = args
        .partition
        .map_or(IntakeMode::Group, IntakeMode::Partition);
    config.rules = match args.rules {
        RulesArg::Seed => Rules::Seed,
        RulesArg::V2 => Rules::V2 {
            difficulty: args.difficulty,
        },
        RulesArg::Accounts => Rules::Accounts {
            difficulty: args.difficulty,
            chain_id: ChainId::random(),
            block_reward: args
                .reward
                .as_u64()
                .filter(|r| (1..=MAX_AMOUNT).contains(r))
                .with_context(|| {
                    format!(
                        "--reward {} is not an integer 1..={MAX_AMOUNT} (accounts amounts are minor units)",
                        args.reward
                    )
                })?,
        },
    };
    if let Some(path) = &args.genesis_alloc {
        anyhow::ensure!(
            matches!(args.rules, RulesArg::Accounts),
            "--genesis-alloc needs --rules accounts"
        );
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        config.genesis_alloc = parse_allocations(&bytes)
            .with_context(|| format!("reading allocations from {}", path.display()))?;
    }
    anyhow::ensure!(args.block_size > 0, "--block-size must be at least 1");
    config.block_size = args.block_size;
    config.block_timeout = args.block_timeout;
    config.turn_grace = args.turn_grace;
    config.reward = args.reward.clone();
    if let Some(threads) = args.threads {
        config.mining_threads = threads.max(1);
    }
    config.progress = std::io::stderr().is_terminal();

    let shutdown = Shutdown::on_signals().context("installing the Ctrl-C/SIGTERM handler")?;
    if let Some(addr) = args.metrics {
        let metrics = std::sync::Arc::new(crate::node::metrics::NodeMetrics::new());
        let (bound, _) = crate::node::metrics::serve(
            addr,
            std::sync::Arc::clone(&metrics),
            &config.kafka,
            &config.topics.transactions,
            &shutdown,
        )
        .with_context(|| format!("serving metrics on {addr}"))?;
        tracing::info!("metrics on http://{bound}/metrics");
        config.metrics = Some(metrics);
    }
    let node = Node::start(config, &shutdown)
        .with_context(|| format!("starting node against {}", args.connect.brokers))?;
    let summary = node.run(&shutdown).context("running node")?;
    eprintln!(
        "node {} stopped: height {}, tip {}, blocks won {}, stale discarded {}, invalid discarded {}, malformed transactions {}",
        summary.id,
        summary.height,
        summary.tip,
        summary.blocks_won,
        summary.stale_discarded,
        summary.invalid_discarded,
        summary.malformed_txs
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("fast").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
