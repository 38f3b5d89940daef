//! The node's event loop.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, select, unbounded, Receiver, Sender};
use rdkafka::consumer::CommitMode;
use serde_json::Number;
use tracing::{debug, info, warn};

use super::miner::{MineResult, MinerThread};
use super::pool::Pool;
use super::{identity, Shutdown};
use crate::chain::{
    self, Appended, BlockTemplate, ChainState, Discarded, Origin, Rules, Transaction,
};
use crate::transport::chain_log::{ChainLog, ChainRecord};
use crate::transport::intake::{Intake, IntakeEvent, IntakeMode};
use crate::transport::publish::{Delivery, Profile, Publisher};
use crate::transport::{topics, KafkaConfig, TopicNames, TransportError};

/// Everything a node needs to know; the CLI fills it from flags.
#[derive(Clone, Debug)]
pub struct NodeConfig {
    pub kafka: KafkaConfig,
    pub topics: TopicNames,
    /// Consumer group for transaction intake (also used for commits in partition mode).
    pub group: String,
    /// Reward recipient; None = the id kept in `data_dir`.
    pub id: Option<String>,
    pub data_dir: PathBuf,
    pub intake: IntakeMode,
    /// Rules for a new chain (an existing chain's genesis decides otherwise).
    pub rules: Rules,
    pub block_size: usize,
    pub block_timeout: Duration,
    pub reward: Number,
    pub mining_threads: usize,
    /// Show a progress bar while replaying (when stderr is a terminal).
    pub progress: bool,
    /// Prometheus metrics to update (`--metrics`).
    pub metrics: Option<Arc<super::metrics::NodeMetrics>>,
}

impl NodeConfig {
    pub fn new(kafka: KafkaConfig) -> Self {
        NodeConfig {
            kafka,
            topics: TopicNames::default(),
            group: "kafkachain".into(),
            id: None,
            data_dir: PathBuf::from("data/node"),
            intake: IntakeMode::Group,
            rules: Rules::V2 {
                difficulty: chain::DEFAULT_V2_DIFFICULTY,
            },
            block_size: 3,
            block_timeout: Duration::from_secs(1),
            reward: Number::from(1),
            mining_threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            progress: false,
            metrics: None,
        }
    }
}

/// Errors that stop a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("node id in {path}: {source}")]
    Identity {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("starting {what} thread: {source}")]
    Thread {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("chain topic `{0}` has no valid genesis block after replay")]
    NoGenesis(String),
    #[error("the chain-topic reader stopped: {0}")]
    ReaderStopped(String),
}

/// What a node did, returned when it stops.
#[derive(Clone, Debug, Default)]
pub struct NodeSummary {
    pub id: String,
    pub height: u64,
    pub tip: String,
    pub blocks_won: u64,
    pub blocks_seen: u64,
    pub stale_discarded: u64,
    pub invalid_discarded: u64,
    pub malformed_txs: u64,
    pub txs_already_on_chain: u64,
}

/// What the loop is doing about the next block.
enum Stage {
    Idle,
    /// Proof of work running for template `id`.
    Mining {
        id: u64,
        template: BlockTemplate,
        txs: usize,
    },
    /// Published block `id`; waiting to read a block back from the chain topic.
    Awaiting {
        id: u64,
        since: Instant,
        mined_in: Duration,
        txs: usize,
    },
}

/// How long to wait for our published block to come back before building again.
const AWAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Stop taking transactions in while this many are pending (back-pressure on the topic):
/// fifty 1000-transaction blocks of backlog is plenty, and keeps memory small.
const MAX_PENDING: usize = 50_000;

/// A running node. Create with [`Node::start`], drive with [`Node::run`].
pub struct Node {
    config: NodeConfig,
    id: String,
    chain: ChainState,
    pool: Pool,
    stage: Stage,
    next_job: u64,
    miner: MinerThread,
    mined_rx: Receiver<MineResult>,
    publisher: Publisher,
    deliveries: Receiver<Delivery>,
    chain_rx: Receiver<Result<Vec<ChainRecord>, String>>,
    reader_stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    intake: Option<Intake>,
    intake_rx: Receiver<IntakeEvent>,
    intake_tx: Sender<IntakeEvent>,
    summary: NodeSummary,
    last_commit: Vec<(i32, i64)>,
    last_status: Instant,
    txs_on_chain_since_status: u64,
}

fn now_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Node {
    /// Connects, creates the topics if needed, publishes a genesis block if the chain is
    /// empty and replays the chain. Transactions are not read until [`Node::run`].
    pub fn start(config: NodeConfig, shutdown: &Shutdown) -> Result<Self, NodeError> {
        let id = match &config.id {
            Some(id) => id.clone(),
            None => identity::load_or_create(&config.data_dir).map_err(|source| {
                NodeError::Identity {
                    path: config.data_dir.clone(),
                    source,
                }
            })?,
        };
        topics::ensure_topics(&config.kafka, &config.topics)?;

        let (delivery_tx, deliveries) = unbounded();
        let publisher = Publisher::new(
            &config.kafka,
            &config.topics.chain,
            Profile::Blocks,
            Some(delivery_tx),
        )?;
        let log = ChainLog::open(&config.kafka, &config.topics.chain, 0)?;
        let end = log.end_offset()?;
        if end == 0 {
            // Several nodes may race here; replay keeps the first genesis and
            // discards the others, so every node still agrees.
            let genesis = chain::genesis(config.rules, now_seconds());
            publisher.send(0, None, &genesis)?;
            publisher.flush(crate::transport::BROKER_TIMEOUT)?;
            info!(rules = ?config.rules, "published genesis block");
        }

        let (chain_tx, chain_rx) = bounded(64);
        let reader_stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let stop = Arc::clone(&reader_stop);
            std::thread::Builder::new()
                .name("chain-reader".into())
                .spawn(move || read_chain(log, chain_tx, stop))
                .map_err(|source| NodeError::Thread {
                    what: "chain reader",
                    source,
                })?
        };
        let (mined_tx, mined_rx) = unbounded();
        let miner = MinerThread::start(config.mining_threads, mined_tx).map_err(|source| {
            NodeError::Thread {
                what: "miner",
                source,
            }
        })?;
        let (intake_tx, intake_rx) = bounded(20_000);
        let mut node = Node {
            summary: NodeSummary {
                id: id.clone(),
                ..NodeSummary::default()
            },
            config,
            id,
            chain: ChainState::new(),
            pool: Pool::new(),
            stage: Stage::Idle,
            next_job: 1,
            miner,
            mined_rx,
            publisher,
            deliveries,
            chain_rx,
            reader_stop,
            reader: Some(reader),
            intake: None,
            intake_rx,
            intake_tx,
            last_commit: Vec::new(),
            last_status: Instant::now(),
            txs_on_chain_since_status: 0,
        };
        node.replay(end.max(1), shutdown)?;
        if let Some(rules) = node.chain.rules() {
            if rules != node.config.rules {
                info!(chain = ?rules, requested = ?node.config.rules, "the chain's genesis decides the rules");
            }
        }
        Ok(node)
    }

    /// The node id (reward recipient).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The chain as replayed so far.
    pub fn chain(&self) -> &ChainState {
        &self.chain
    }

    /// Reads the chain topic up to `end` (and at least to a genesis block).
    fn replay(&mut self, end: i64, shutdown: &Shutdown) -> Result<(), NodeError> {
        let started = Instant::now();
        let bar = (self.config.progress && end > 1_000).then(|| {
            let bar = indicatif::ProgressBar::new(end as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "replaying chain {bar:40} {pos}/{len} blocks ({per_sec}, eta {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        let mut next = 0;
        while (next < end || self.chain.tip().is_none()) && !shutdown.is_triggered() {
            let batch = match self.chain_rx.recv_timeout(Duration::from_secs(60)) {
                Ok(Ok(batch)) => batch,
                Ok(Err(err)) => return Err(NodeError::ReaderStopped(err)),
                Err(_) => {
                    return Err(NodeError::ReaderStopped(format!(
                        "no chain records for 60 s during replay (at offset {next} of {end})"
                    )))
                }
            };
            for record in &batch {
                next = record.offset + 1;
                self.apply_chain_record(record, false);
            }
            if let Some(bar) = &bar {
                bar.set_position(next as u64);
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        let tip = self
            .chain
            .tip()
            .ok_or_else(|| NodeError::NoGenesis(self.config.topics.chain.clone()))?;
        let secs = started.elapsed().as_secs_f64();
        info!(
            height = self.chain.height(),
            tip = %tip.hash,
            records = next,
            blocks_per_sec = (next as f64 / secs.max(1e-9)) as u64,
            "replayed chain"
        );
        Ok(())
    }

    /// Runs until `shutdown`: consumes transactions, mines, publishes, follows the chain.
    pub fn run(mut self, shutdown: &Shutdown) -> Result<NodeSummary, NodeError> {
        self.intake = Some(Intake::start(
            &self.config.kafka,
            &self.config.topics.transactions,
            &self.config.group,
            self.config.intake,
            self.intake_tx.clone(),
        )?);
        info!(id = %self.id, intake = ?self.config.intake, "node running");
        let tick = crossbeam_channel::tick(Duration::from_millis(25));
        while !shutdown.is_triggered() {
            let intake_rx = if self.pool.len() < MAX_PENDING {
                self.intake_rx.clone()
            } else {
                crossbeam_channel::never()
            };
            select! {
                recv(self.chain_rx) -> msg => self.on_chain_batch(msg)?,
                recv(intake_rx) -> msg => if let Ok(event) = msg {
                    self.on_intake(event);
                    // Drain what is already queued before doing anything else.
                    for _ in 0..10_000 {
                        match self.intake_rx.try_recv() {
                            Ok(event) => self.on_intake(event),
                            Err(_) => break,
                        }
                    }
                },
                recv(self.mined_rx) -> msg => if let Ok(result) = msg { self.on_mined(result)? },
                recv(self.deliveries) -> msg => if let Ok(delivery) = msg { self.on_delivery(delivery) },
                recv(tick) -> _ => {},
            }
            self.maybe_mine();
            self.maybe_commit(CommitMode::Async);
            self.maybe_report_status();
            if let Some(m) = &self.config.metrics {
                m.set_pending(self.pool.len());
            }
        }
        info!("shutting down: committing offsets and leaving the group");
        self.miner.cancel();
        self.maybe_commit(CommitMode::Sync);
        if let Some(intake) = self.intake.take() {
            if !intake.close(Duration::from_secs(10)) {
                warn!("the transaction consumer did not close within 10 s; exiting anyway");
            }
        }
        let _ = self.publisher.flush(Duration::from_secs(5));
        Ok(self.finish())
    }

    fn finish(&mut self) -> NodeSummary {
        self.reader_stop.store(true, Ordering::SeqCst);
        if let Some(reader) = self.reader.take() {
            // Drain so the reader is not blocked on a full channel.
            while !reader.is_finished() {
                let _ = self.chain_rx.recv_timeout(Duration::from_millis(10));
            }
            let _ = reader.join();
        }
        let mut summary = self.summary.clone();
        summary.height = self.chain.height();
        summary.tip = self
            .chain
            .tip()
            .map(|t| t.hash.to_string())
            .unwrap_or_default();
        summary
    }

    fn apply_chain_record(&mut self, record: &ChainRecord, live: bool) {
        match self.chain.apply(&record.payload) {
            Ok(appended) => self.on_appended(appended, record.offset, live),
            Err(discarded) => self.on_discarded(discarded, record.offset),
        }
    }

    fn on_appended(&mut self, block: Appended, offset: i64, live: bool) {
        self.summary.blocks_seen += 1;
        self.pool.remove(&block.origins);
        self.txs_on_chain_since_status += block.origins.len() as u64;
        let ours = block.miner.as_deref() == Some(self.id.as_str());
        let mined_in = match self.stage {
            Stage::Awaiting { mined_in, .. } if ours => Some(mined_in),
            _ => None,
        };
        if ours && live {
            self.summary.blocks_won += 1;
        }
        if let Some(m) = &self.config.metrics {
            m.on_block(self.chain.height(), &block.origins, ours && live);
        }
        if live {
            let hash = block.hash.to_string();
            info!(
                height = block.index,
                hash = &hash[..12.min(hash.len())],
                txs = block.tx_count,
                offset,
                miner = block.miner.as_deref().unwrap_or("-"),
                ours,
                mining_ms = mined_in.map(|d| d.as_millis() as u64),
                "block"
            );
        }
        // The tip moved: whatever we were mining or waiting for is now stale.
        if let Stage::Mining { .. } = self.stage {
            self.miner.cancel();
        }
        self.stage = Stage::Idle;
    }

    fn on_discarded(&mut self, discarded: Discarded, offset: i64) {
        if let Some(m) = &self.config.metrics {
            m.on_discarded(discarded.is_stale());
        }
        if discarded.is_stale() {
            self.summary.stale_discarded += 1;
            debug!(offset, reason = %discarded.reason, "discarded stale block (lost a race)");
        } else {
            self.summary.invalid_discarded += 1;
            warn!(offset, reason = %discarded.reason, "discarded invalid chain record");
        }
    }

    fn on_intake(&mut self, event: IntakeEvent) {
        match event {
            IntakeEvent::Record {
                partition,
                offset,
                payload,
            } => {
                let origin = Origin { partition, offset };
                if let Some(m) = &self.config.metrics {
                    m.on_intake(origin);
                }
                match chain::parse_submitted(&payload) {
                    Err(err) => {
                        self.summary.malformed_txs += 1;
                        self.pool.consumed(partition, offset);
                        warn!(partition, offset, error = %err, "skipping malformed transaction");
                    }
                    Ok(_) if self.chain.contains_origin(origin) => {
                        // Re-read after a crash or rebalance: already on the chain.
                        self.summary.txs_already_on_chain += 1;
                        self.pool.consumed(partition, offset);
                    }
                    Ok(tx) => {
                        let tx = Transaction::from_submitted(&tx, origin);
                        self.pool.offer(origin, tx, Instant::now());
                    }
                }
            }
            IntakeEvent::Assigned(partitions) => {
                info!(?partitions, "transaction partitions assigned");
            }
            IntakeEvent::Revoked(partitions) => {
                // Commit what is safe before the next owner starts reading.
                self.maybe_commit(CommitMode::Sync);
                let dropped = self.pool.revoke(&partitions);
                info!(?partitions, dropped, "transaction partitions revoked");
                self.last_commit.retain(|(p, _)| !partitions.contains(p));
            }
            IntakeEvent::Error(err) => warn!(error = %err, "transaction consumer error"),
        }
    }

    fn maybe_mine(&mut self) {
        if let Stage::Awaiting { id, since, txs, .. } = self.stage {
            if since.elapsed() < AWAIT_TIMEOUT {
                return;
            }
            warn!(
                id,
                txs, "published block not seen on the chain in time; building again"
            );
            self.stage = Stage::Idle;
        }
        if !matches!(self.stage, Stage::Idle) || self.pool.is_empty() {
            return;
        }
        let full = self.pool.len() >= self.config.block_size;
        let waited = self
            .pool
            .oldest_wait(Instant::now())
            .is_some_and(|w| w >= self.config.block_timeout);
        if !full && !waited {
            return;
        }
        let (Some(tip), Some(rules)) = (self.chain.tip(), self.chain.rules()) else {
            return;
        };
        let mut txs = self.pool.oldest(self.config.block_size);
        let count = txs.len();
        txs.push(Transaction::reward(&self.id, &self.config.reward));
        let template = BlockTemplate::new(tip, rules, now_seconds(), &txs);
        let id = self.next_job;
        self.next_job += 1;
        self.miner.submit(id, template.work());
        self.stage = Stage::Mining {
            id,
            template,
            txs: count,
        };
    }

    fn on_chain_batch(
        &mut self,
        msg: Result<Result<Vec<ChainRecord>, String>, crossbeam_channel::RecvError>,
    ) -> Result<(), NodeError> {
        match msg {
            Ok(Ok(batch)) => {
                for record in &batch {
                    self.apply_chain_record(record, true)
                }
            }
            Ok(Err(err)) => warn!(error = %err, "chain topic read error"),
            Err(_) => return Err(NodeError::ReaderStopped("reader thread exited".into())),
        }
        Ok(())
    }

    fn on_mined(&mut self, result: MineResult) -> Result<(), NodeError> {
        // A rival's block may already be waiting: apply it first, since publishing on
        // a tip that has moved only adds a stale block for everyone to discard.
        while let Ok(msg) = self.chain_rx.try_recv() {
            self.on_chain_batch(Ok(msg))?;
        }
        let Stage::Mining { id, template, txs } = &self.stage else {
            return Ok(());
        };
        if *id != result.id {
            return Ok(());
        }
        let Some(mined) = result.mined else {
            return Ok(());
        };
        if let Some(m) = &self.config.metrics {
            m.on_mined(mined.hashes, result.elapsed);
        }
        let block = template.seal(mined.nonce);
        let (id, txs) = (*id, *txs);
        self.publisher.send(id, None, &block)?;
        debug!(
            id,
            txs,
            hashes = mined.hashes,
            ms = result.elapsed.as_millis() as u64,
            "published block"
        );
        self.stage = Stage::Awaiting {
            id,
            since: Instant::now(),
            mined_in: result.elapsed,
            txs,
        };
        Ok(())
    }

    fn on_delivery(&mut self, delivery: Delivery) {
        if let Err(err) = delivery.result {
            warn!(id = delivery.tag, error = %err, "publishing block failed");
            if matches!(self.stage, Stage::Awaiting { id, .. } if id == delivery.tag) {
                self.stage = Stage::Idle;
            }
        }
    }

    fn maybe_commit(&mut self, mode: CommitMode) {
        let Some(intake) = &self.intake else { return };
        let positions = self.pool.commit_positions();
        if positions == self.last_commit {
            return;
        }
        match intake.commit(&positions, mode) {
            Ok(()) => self.last_commit = positions,
            Err(err) => debug!(error = %err, "commit failed; will retry"),
        }
    }

    fn maybe_report_status(&mut self) {
        let elapsed = self.last_status.elapsed();
        if elapsed < Duration::from_secs(10) {
            return;
        }
        info!(
            height = self.chain.height(),
            pending = self.pool.len(),
            txs_per_sec = (self.txs_on_chain_since_status as f64 / elapsed.as_secs_f64()) as u64,
            won = self.summary.blocks_won,
            stale = self.summary.stale_discarded,
            malformed = self.summary.malformed_txs,
            "status"
        );
        self.last_status = Instant::now();
        self.txs_on_chain_since_status = 0;
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Dropping the receiver also unblocks the reader if it is waiting to send.
        self.reader_stop.store(true, Ordering::SeqCst);
    }
}

/// The chain-reader thread: fetches records in batches so validation (on the node
/// loop) overlaps with fetching.
fn read_chain(log: ChainLog, out: Sender<Result<Vec<ChainRecord>, String>>, stop: Arc<AtomicBool>) {
    let mut errors = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let mut batch = Vec::new();
        match log.poll_batch(4096, Duration::from_millis(50), &mut batch) {
            Ok(0) => {}
            Ok(_) => {
                errors = 0;
                if out.send(Ok(batch)).is_err() {
                    return;
                }
            }
            Err(err) => {
                errors += 1;
                // librdkafka retries by itself; report, back off a little, go on.
                if errors % 50 == 1 && out.send(Err(err.to_string())).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}
