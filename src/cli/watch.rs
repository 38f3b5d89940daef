//! `kafkachain watch`: a live summary of the ledger, as the demo shows it.
//!
//! It replays the chain topic like a node (so it counts exactly what a node would
//! accept) and compares with the transactions topic's end offsets.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::connect::ConnectArgs;
use crate::chain::ChainState;
use crate::node::Shutdown;
use crate::transport::chain_log::ChainLog;
use crate::transport::topics;

#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Seconds between summary lines.
    #[arg(long, default_value_t = 1.0)]
    pub every: f64,
    /// Exit once this many submitted transactions are on the chain.
    #[arg(long)]
    pub until_txs: Option<u64>,
    /// Exit once every submitted transaction is on the chain and nothing new has been
    /// submitted for two seconds.
    #[arg(long)]
    pub until_caught_up: bool,
    /// Give up (exit 1) after this many seconds.
    #[arg(long)]
    pub timeout: Option<f64>,
}

pub fn run(args: &WatchArgs) -> anyhow::Result<ExitCode> {
    let kafka = args.connect.kafka()?;
    let shutdown = Shutdown::on_signals().context("installing the Ctrl-C handler")?;
    let log =
        ChainLog::open(&kafka, &args.connect.chain_topic, 0).context("opening the chain topic")?;
    // One client for the once-a-second offset reads, not a new one each time.
    let offsets = topics::metadata_client(&kafka).context("creating a metadata client")?;
    let mut chain = ChainState::new();
    let mut txs_on_chain = 0u64;
    let mut stale = 0u64;
    let mut invalid = 0u64;
    let mut won: BTreeMap<String, u64> = BTreeMap::new();
    let started = Instant::now();
    let every = Duration::from_secs_f64(args.every.max(0.1));
    let mut last_line = Instant::now();
    let mut last_txs = 0u64;
    let mut batch = Vec::new();
    let mut stdout = std::io::stdout();
    let mut submitted = 0i64;
    let mut submitted_changed = Instant::now();
    let mut caught_up = false;
    loop {
        batch.clear();
        log.poll_batch(4096, Duration::from_millis(100), &mut batch)?;
        for record in &batch {
            match chain.apply(&record.payload) {
                Ok(block) => {
                    let reward = usize::from(block.miner.is_some());
                    txs_on_chain += block.tx_count.saturating_sub(reward) as u64;
                    if let Some(miner) = block.miner {
                        *won.entry(miner).or_default() += 1;
                    }
                }
                Err(d) if d.is_stale() => stale += 1,
                Err(_) => invalid += 1,
            }
        }
        let done = args.until_txs.is_some_and(|n| txs_on_chain >= n) || caught_up;
        if last_line.elapsed() >= every || done || shutdown.is_triggered() {
            let now_submitted = topics::describe_with(&offsets, &args.connect.tx_topic)
                .map(|t| t.records())
                .unwrap_or(submitted);
            if now_submitted != submitted {
                submitted = now_submitted;
                submitted_changed = Instant::now();
            }
            caught_up = args.until_caught_up
                && submitted > 0
                && txs_on_chain as i64 >= submitted
                && submitted_changed.elapsed() > Duration::from_secs(2);
            let secs = last_line.elapsed().as_secs_f64();
            let rate = (txs_on_chain - last_txs) as f64 / secs.max(1e-9);
            let winners: Vec<String> = won
                .iter()
                .map(|(id, n)| format!("{}={n}", &id[..8.min(id.len())]))
                .collect();
            let _ = writeln!(
                stdout,
                "[{:>6.1}s] height {:>6}  txs on chain {:>8}  {:>8.0} tx/s  pending {:>7}  stale {:>4}  invalid {:>3}  won: {}",
                started.elapsed().as_secs_f64(),
                chain.height(),
                txs_on_chain,
                rate,
                (submitted - txs_on_chain as i64).max(0),
                stale,
                invalid,
                winners.join(" ")
            );
            last_line = Instant::now();
            last_txs = txs_on_chain;
        }
        if done || shutdown.is_triggered() {
            return Ok(ExitCode::SUCCESS);
        }
        if args
            .timeout
            .is_some_and(|t| started.elapsed().as_secs_f64() > t)
        {
            eprintln!("watch: timed out with {txs_on_chain} transactions on the chain");
            return Ok(ExitCode::from(1));
        }
    }
}
