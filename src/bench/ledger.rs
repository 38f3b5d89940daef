//! The ledger under load: N node processes, transactions in, blocks read back.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use super::races::{self, Arrival, RaceReport};
use super::{Latency, Memory};
use crate::chain::{ChainState, Origin};
use crate::transport::chain_log::ChainLog;
use crate::transport::publish::{Profile, Publisher};
use crate::transport::{topics, KafkaConfig, TopicNames};

/// What the ledger phase is asked to do.
#[derive(Clone, Debug)]
pub struct LedgerParams {
    pub txs: u64,
    pub nodes: usize,
    pub block_size: usize,
    pub block_timeout_ms: u64,
    pub rules: String,
    pub difficulty: u32,
    /// Transactions per second to offer (None = as fast as the producer goes).
    pub rate: Option<f64>,
    /// Sample node memory when this many transactions are on the chain.
    pub rss_checkpoint: Option<u64>,
    /// `--rules accounts`: this many funded sender accounts sign the transfers.
    pub accounts_senders: Option<usize>,
    /// The nodes' `--turn-grace`, in milliseconds (0 = publish at once).
    pub turn_grace_ms: u64,
    /// Transactions put on the chain before the clock starts (not measured).
    pub warmup_txs: u64,
    /// The nodes' `RUST_LOG` filter.
    pub node_log_filter: String,
    /// Copy the nodes' logs into this directory when the phase ends (they are kept
    /// anyway, in the run's temporary directory, when the ledger stalls).
    pub keep_logs: Option<std::path::PathBuf>,
}

/// The nodes' log filter by default: `info` is what the race report reads.
pub const DEFAULT_NODE_LOG: &str = "warn,kafkachain=info";

#[derive(Clone, Debug, Serialize)]
pub struct NodeMemory {
    pub node: String,
    pub at_checkpoint: Option<Memory>,
    pub at_end: Option<Memory>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LedgerReport {
    pub txs: u64,
    pub offered_rate: Option<f64>,
    pub seconds: f64,
    pub committed_tx_per_sec: f64,
    pub latency: Latency,
    pub blocks: u64,
    pub stale_blocks: u64,
    pub invalid_records: u64,
    pub turn_grace_ms: u64,
    /// Rival blocks per height and what the races cost (`bench::races`).
    pub races: RaceReport,
    pub rss_checkpoint_txs: Option<u64>,
    pub node_memory: Vec<NodeMemory>,
    /// CPU-seconds the bench process itself used from the clock's start to the last
    /// transaction on the chain: the load generator and the chain follower. On a
    /// small machine this is CPU the broker and the nodes under test did not get, so
    /// it is reported with every run (a spinning producer once took a whole core).
    pub bench_cpu_seconds: Option<f64>,
}

struct NodeProcess {
    name: String,
    child: Child,
    log: std::path::PathBuf,
}

impl NodeProcess {
    fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        anyhow::bail!("node {} did not stop on SIGTERM", self.name)
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// `--genesis-alloc FILE` funding the bench senders (accounts rules only).
fn accounts_flags(params: &LedgerParams, dir: &Path) -> anyhow::Result<Vec<String>> {
    let Some(n) = params.accounts_senders else {
        return Ok(Vec::new());
    };
    let path = dir.join("alloc.json");
    let alloc: serde_json::Map<String, serde_json::Value> =
        super::accounts::allocations(&super::accounts::senders(n))
            .into_iter()
            .map(|(a, v)| (a.to_string(), v.into()))
            .collect();
    std::fs::write(&path, serde_json::to_vec(&alloc)?)?;
    Ok(vec!["--genesis-alloc".into(), path.display().to_string()])
}

/// The chain id of the accounts chain on `topic` (its genesis, published by node 0).
fn chain_id(kafka: &KafkaConfig, topic: &str) -> anyhow::Result<crate::chain::accounts::ChainId> {
    let log = ChainLog::open(kafka, topic, 0)?;
    let mut chain = ChainState::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some(record) = log.poll(Duration::from_millis(200))? {
            let _ = chain.apply(&record.payload);
            if let Some(ledger) = chain.accounts() {
                return Ok(ledger.chain_id());
            }
        }
    }
    anyhow::bail!("no accounts genesis on `{topic}` within 60 s")
}

fn start_node(
    exe: &Path,
    kafka: &KafkaConfig,
    names: &TopicNames,
    index: usize,
    params: &LedgerParams,
    dir: &Path,
) -> anyhow::Result<NodeProcess> {
    let name = format!("bench-node-{index}");
    let log_path = dir.join(format!("{name}.log"));
    let log = std::fs::File::create(&log_path)?;
    let threads =
        (std::thread::available_parallelism().map_or(1, |n| n.get()) / params.nodes).max(1);
    let mut command = Command::new(exe);
    command
        .arg("node")
        .args(["--brokers", &kafka.brokers])
        .args([
            "--tx-topic",
            &names.transactions,
            "--chain-topic",
            &names.chain,
        ])
        .args(["--tx-partitions", &names.tx_partitions.to_string()])
        .args(["--partition", &index.to_string(), "--id", &name])
        .arg("--data-dir")
        .arg(dir.join(&name))
        .args(["--group", &format!("{}-group", names.transactions)])
        .args([
            "--rules",
            &params.rules,
            "--difficulty",
            &params.difficulty.to_string(),
        ])
        .args(["--block-size", &params.block_size.to_string()])
        .args(["--block-timeout", &format!("{}ms", params.block_timeout_ms)])
        .args(["--threads", &threads.to_string()])
        .args(["--turn-grace", &format!("{}ms", params.turn_grace_ms)])
        .args(accounts_flags(params, dir)?)
        .env("RUST_LOG", &params.node_log_filter)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    for (key, value) in &kafka.settings {
        command.arg("-X").arg(format!("{key}={value}"));
    }
    // A bench that is killed leaves no nodes behind.
    super::die_with_parent(&mut command, libc::SIGTERM);
    let child = command.spawn().context("starting a node process")?;
    let mut node = NodeProcess {
        name,
        child,
        log: log_path.clone(),
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.contains("node running") {
            return Ok(node);
        }
        if let Some(status) = node.child.try_wait()? {
            anyhow::bail!("node {} exited ({status}):\n{log}", node.name);
        }
        if Instant::now() > deadline {
            anyhow::bail!("node {} did not start:\n{log}", node.name);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Follows the chain topic and records when each origin arrived on the chain.
struct Follower {
    seen: Mutex<HashMap<Origin, Instant>>,
    on_chain: AtomicU64,
    blocks: AtomicU64,
    stale: AtomicU64,
    invalid: AtomicU64,
    arrivals: Mutex<Vec<Arrival>>,
}

pub fn run(
    exe: &Path,
    kafka: &KafkaConfig,
    params: &LedgerParams,
    payload: &[u8],
) -> anyhow::Result<LedgerReport> {
    let names = TopicNames {
        transactions: super::unique("ledger-tx"),
        chain: super::unique("ledger-chain"),
        tx_partitions: params.nodes as i32,
    };
    topics::ensure_topics(kafka, &names)?;
    let dir = tempfile::Builder::new()
        .prefix("kafkachain-bench-nodes-")
        .tempdir()?;
    let mut nodes = Vec::new();
    for i in 0..params.nodes {
        nodes.push(start_node(exe, kafka, &names, i, params, dir.path())?);
    }

    let follower = Arc::new(Follower {
        seen: Mutex::new(HashMap::with_capacity(params.txs as usize)),
        on_chain: AtomicU64::new(0),
        blocks: AtomicU64::new(0),
        stale: AtomicU64::new(0),
        invalid: AtomicU64::new(0),
        arrivals: Mutex::new(Vec::new()),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let follow = {
        let follower = Arc::clone(&follower);
        let stop = Arc::clone(&stop);
        let log = ChainLog::open(kafka, &names.chain, 0)?;
        std::thread::spawn(move || -> anyhow::Result<()> {
            let mut chain = ChainState::new();
            let mut batch = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                batch.clear();
                log.poll_batch(4096, Duration::from_millis(20), &mut batch)?;
                let now = Instant::now();
                for record in &batch {
                    let applied = chain.apply(&record.payload);
                    let arrival = match &applied {
                        Ok(block) => Some(Arrival {
                            height: block.index,
                            miner: block.miner.clone(),
                            at: now,
                            stale: false,
                        }),
                        Err(d) if d.is_stale() => {
                            let (height, miner) = races::identify(&record.payload);
                            height.map(|height| Arrival {
                                height,
                                miner,
                                at: now,
                                stale: true,
                            })
                        }
                        Err(_) => None,
                    };
                    if let Some(arrival) = arrival {
                        follower
                            .arrivals
                            .lock()
                            .map_err(|_| anyhow::anyhow!("poisoned"))?
                            .push(arrival);
                    }
                    match applied {
                        Ok(block) => {
                            follower.blocks.fetch_add(1, Ordering::Relaxed);
                            let mut seen = follower
                                .seen
                                .lock()
                                .map_err(|_| anyhow::anyhow!("poisoned"))?;
                            for origin in &block.origins {
                                seen.insert(*origin, now);
                            }
                            follower
                                .on_chain
                                .fetch_add(block.origins.len() as u64, Ordering::Relaxed);
                        }
                        Err(d) if d.is_stale() => {
                            follower.stale.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(_) => {
                            follower.invalid.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            Ok(())
        })
    };

    // Send, remembering when each tagged transaction left.
    // Accounts: sign every transfer before the clock starts (sender i % n, partition
    // sender % nodes, so each sender's nonces reach one node in order).
    // The warm-up goes first: transactions 0..warmup, on the chain before the clock
    // starts; the measured ones are warmup..warmup + txs (for accounts, one sequence of
    // nonces across both).
    let warmup = params.warmup_txs;
    let total = warmup + params.txs;
    let signed: Option<(Vec<Vec<u8>>, usize)> = match params.accounts_senders {
        Some(n) => {
            let id = chain_id(kafka, &names.chain)?;
            let keys = super::accounts::senders(n);
            let all = (0..total)
                .map(|i| super::accounts::transfer(&keys, i, &id))
                .collect();
            Some((all, n))
        }
        None => None,
    };
    let (reports_tx, reports) = crossbeam_channel::unbounded();
    let publisher = Publisher::new(kafka, &names.transactions, Profile::Load, Some(reports_tx))?;
    let send = |i: u64| -> anyhow::Result<()> {
        match &signed {
            Some((all, n)) => {
                let partition = ((i % *n as u64) % params.nodes as u64) as i32;
                publisher.send(i, Some(partition), &all[i as usize])?
            }
            // Round robin over the partitions, so each node gets its share: a lone
            // producer with null keys at full speed can put 90 % of a burst on one
            // partition (librdkafka's sticky partitioner), and the run would then
            // measure one node, not the cluster.
            None => {
                let partition = (i % params.nodes as u64) as i32;
                publisher.send(i, Some(partition), payload)?
            }
        }
        Ok(())
    };
    for i in 0..warmup {
        send(i)?;
    }
    publisher.flush(Duration::from_secs(120))?;
    let warm = Instant::now();
    while follower.on_chain.load(Ordering::Relaxed) < warmup {
        if warm.elapsed() > Duration::from_secs(120) {
            anyhow::bail!(
                "the warm-up stalled at {} of {warmup} transactions (node logs in {})",
                follower.on_chain.load(Ordering::Relaxed),
                dir.keep().display()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    // What the warm-up put on the chain is not measured.
    let (warm_blocks, warm_stale, warm_invalid) = (
        follower.blocks.load(Ordering::Relaxed),
        follower.stale.load(Ordering::Relaxed),
        follower.invalid.load(Ordering::Relaxed),
    );
    let measured_from_height = warm_blocks + 1;

    let mut sent_at = Vec::with_capacity(params.txs as usize);
    let own_cpu_at_start = super::cpu_seconds(std::process::id());
    let started = Instant::now();
    let mut checkpoint = None;
    for i in 0..params.txs {
        if let Some(rate) = params.rate.filter(|r| *r > 0.0) {
            let due = Duration::from_secs_f64(i as f64 / rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        sent_at.push(Instant::now());
        send(warmup + i)?;
        if i % 1024 == 0 {
            sample_checkpoint(params, &follower, &nodes, &mut checkpoint);
        }
    }
    publisher.flush(Duration::from_secs(120))?;

    let mut origin_tag: HashMap<Origin, u64> = HashMap::with_capacity(params.txs as usize);
    for report in reports.try_iter() {
        let (partition, offset) = report
            .result
            .map_err(|e| anyhow::anyhow!("a transaction was not acknowledged: {e}"))?;
        origin_tag.insert(Origin { partition, offset }, report.tag);
    }

    let mut last_progress = (0, Instant::now());
    loop {
        sample_checkpoint(params, &follower, &nodes, &mut checkpoint);
        let on_chain = follower.on_chain.load(Ordering::Relaxed);
        if on_chain >= total {
            break;
        }
        if on_chain != last_progress.0 {
            last_progress = (on_chain, Instant::now());
        } else if last_progress.1.elapsed() > Duration::from_secs(60) {
            anyhow::bail!(
                "the ledger stalled at {on_chain} of {total} transactions (node logs in {})",
                dir.keep().display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let bench_cpu_seconds = own_cpu_at_start
        .zip(super::cpu_seconds(std::process::id()))
        .map(|(start, end)| end - start);
    let node_memory_end: Vec<Option<Memory>> =
        nodes.iter().map(|n| Memory::of(n.child.id())).collect();
    stop.store(true, Ordering::Relaxed);
    follow
        .join()
        .map_err(|_| anyhow::anyhow!("chain follower panicked"))??;
    let names_of: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let log_paths: Vec<std::path::PathBuf> = nodes.iter().map(|n| n.log.clone()).collect();
    for node in nodes {
        node.stop()?;
    }
    let logs: Vec<(String, String)> = names_of
        .iter()
        .zip(&log_paths)
        .map(|(name, path)| {
            (
                name.clone(),
                std::fs::read_to_string(path).unwrap_or_default(),
            )
        })
        .collect();
    if let Some(keep) = &params.keep_logs {
        std::fs::create_dir_all(keep).with_context(|| format!("creating {}", keep.display()))?;
        for (name, path) in names_of.iter().zip(&log_paths) {
            let to = keep.join(format!("{}-{name}.log", names.chain));
            std::fs::copy(path, &to)
                .with_context(|| format!("keeping {} as {}", path.display(), to.display()))?;
            eprintln!("bench: node log kept in {}", to.display());
        }
    }
    let race_report = {
        let arrivals = follower
            .arrivals
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?;
        races::analyse(&arrivals, &logs, measured_from_height)
    };

    let seen = follower
        .seen
        .lock()
        .map_err(|_| anyhow::anyhow!("poisoned"))?;
    let mut last_seen = started;
    let mut samples = Vec::with_capacity(seen.len());
    for (origin, at) in seen.iter() {
        if let Some(&sent) = origin_tag
            .get(origin)
            .and_then(|tag| tag.checked_sub(warmup))
            .and_then(|i| sent_at.get(i as usize))
        {
            samples.push(at.saturating_duration_since(sent));
            last_seen = last_seen.max(*at);
        }
    }
    let seconds = last_seen.duration_since(started).as_secs_f64();
    let checkpoint = checkpoint.unwrap_or_default();
    Ok(LedgerReport {
        txs: params.txs,
        offered_rate: params.rate,
        seconds,
        committed_tx_per_sec: params.txs as f64 / seconds.max(1e-9),
        latency: Latency::from_samples(samples),
        blocks: follower.blocks.load(Ordering::Relaxed) - warm_blocks,
        stale_blocks: follower.stale.load(Ordering::Relaxed) - warm_stale,
        invalid_records: follower.invalid.load(Ordering::Relaxed) - warm_invalid,
        turn_grace_ms: params.turn_grace_ms,
        races: race_report,
        rss_checkpoint_txs: params.rss_checkpoint,
        node_memory: names_of
            .into_iter()
            .zip(node_memory_end)
            .enumerate()
            .map(|(i, (node, at_end))| NodeMemory {
                node,
                at_checkpoint: checkpoint.get(i).copied().flatten(),
                at_end,
            })
            .collect(),
        bench_cpu_seconds,
    })
}

fn sample_checkpoint(
    params: &LedgerParams,
    follower: &Follower,
    nodes: &[NodeProcess],
    checkpoint: &mut Option<Vec<Option<Memory>>>,
) {
    if checkpoint.is_some() {
        return;
    }
    if let Some(at) = params.rss_checkpoint {
        if follower.on_chain.load(Ordering::Relaxed) >= at {
            *checkpoint = Some(nodes.iter().map(|n| Memory::of(n.child.id())).collect());
        }
    }
}
