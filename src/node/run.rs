//! The node's event loop.
//!
//! # Liveness
//!
//! The loop never waits on anything but its channels, and every thread it owns checks
//! a stop flag at least every 100 ms, so SIGTERM stops a node within seconds in every
//! state: the miner is cancelled, the safe offsets are committed (bounded wait), the
//! consumer leaves its group (bounded wait) and the producer is flushed (bounded wait).
//!
//! - A publish error never ends the node: the block is dropped, the node goes idle and
//!   builds again after [`PUBLISH_RETRY`]; a block refused as too large shrinks the
//!   byte budget first ([`BlockBudget`]).
//! - A transaction that cannot fit any block is skipped with a warning and committed
//!   past, like a malformed one.
//! - A chain topic without a valid genesis block gets one: when replay reaches the end
//!   without one, the node publishes a genesis and replays on.
//! - A broker that is down or restarting at start-up is waited for: each start-up
//!   round trip is retried with backoff for up to [`START_PATIENCE`] (`transport::retry`).
//! - Chain-topic read errors are retried with backoff, at start-up and while running,
//!   except a truncated or recreated chain topic (or one with more than one partition),
//!   which stops the node with an error that says so.
//!
//! # Memory while catching up
//!
//! Records from the chain reader to the loop: at most [`CHAIN_BUFFER_BYTES`] of payload
//! in the channel plus one batch of at most [`CHAIN_BATCH_BYTES`] (or one record, if
//! larger) being filled, on top of librdkafka's prefetch (`chain_log::PREFETCH_KBYTES`
//! plus one fetch response of at most `chain_log::FETCH_MAX_BYTES`): about 72 MiB in
//! all for blocks up to 4 MiB. Transactions: [`INTAKE_BUFFER_BYTES`] in the intake
//! channel and [`MAX_PENDING_BYTES`] in the pool.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, select, unbounded, Receiver, RecvTimeoutError, Sender};
use rdkafka::consumer::CommitMode;
use serde_json::Number;
use tracing::{debug, info, warn};

use super::accounts_pool::{self, AccountsPool, Offered};
use super::budget::BlockBudget;
use super::miner::{MineResult, MinerThread};
use super::pool::Pool;
use super::turn::{TipTurn, Turns};
use super::warn_limit::SkipWarnings;
use super::{identity, Shutdown};
use crate::chain::{
    self, Appended, BlockTemplate, ChainState, ClaimScope, Discarded, Origin, Rules, Transaction,
    Verdict, BLOCK_TX_SEPARATOR_BYTES,
};
use crate::transport::budget::ByteBudget;
use crate::transport::chain_log::{ChainLog, ChainRecord, CHAIN_PARTITION};
use crate::transport::intake::{self as intake, Intake, IntakeChannels, IntakeEvent, IntakeMode};
use crate::transport::publish::{Delivery, Profile, Publisher};
use crate::transport::{retry, topics, KafkaConfig, TopicNames, TransportError};

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
    /// Starting balances of a new accounts chain.
    pub genesis_alloc: std::collections::BTreeMap<chain::accounts::Address, u64>,
    /// Prometheus metrics to update (`--metrics`).
    pub metrics: Option<Arc<super::metrics::NodeMetrics>>,
    /// Publishing turns: a node not first in line builds nothing until this long per
    /// rank after reading the tip (`node::turn`; zero = build whenever due).
    pub turn_grace: Duration,
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
            genesis_alloc: Default::default(),
            metrics: None,
            turn_grace: DEFAULT_TURN_GRACE,
        }
    }
}

/// Errors that stop a node.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("node key: {0}")]
    Key(#[from] super::keyfile::KeyFileError),
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
    #[error("stopped while waiting for the broker at start-up")]
    Interrupted,
}

impl From<retry::Gave> for NodeError {
    fn from(gave: retry::Gave) -> Self {
        match gave {
            retry::Gave::Stopped => NodeError::Interrupted,
            retry::Gave::Up(err) => NodeError::Transport(err),
        }
    }
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
    /// Transactions too large for any block, skipped.
    pub oversized_txs: u64,
    pub txs_already_on_chain: u64,
    pub publish_failures: u64,
    /// Heights where a block was due but this node waited for its turn, and another
    /// node's block came first (nothing built, nothing mined).
    pub turns_yielded: u64,
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

/// Default of [`NodeConfig::turn_grace`] (`--turn-grace`).
pub const DEFAULT_TURN_GRACE: Duration = Duration::from_millis(100);
/// How long to wait for our published block to come back before building again.
const AWAIT_TIMEOUT: Duration = Duration::from_secs(30);
/// Stop taking transactions in while this many are pending (back-pressure on the topic):
/// fifty 1000-transaction blocks of backlog is plenty, and keeps memory small.
const MAX_PENDING: usize = 50_000;
/// ... or while the pending transactions hold this many bytes of canonical JSON.
const MAX_PENDING_BYTES: usize = 64 << 20;
/// Capacity of the intake's record channel, in records and in payload bytes.
const INTAKE_BUFFER_RECORDS: usize = 20_000;
const INTAKE_BUFFER_BYTES: usize = 16 << 20;
/// The chain reader's batches: at most this many records and (about) bytes each.
const CHAIN_BATCH_RECORDS: usize = 4096;
const CHAIN_BATCH_BYTES: usize = 4 << 20;
/// Payload bytes of chain records handed to the loop and not yet applied.
const CHAIN_BUFFER_BYTES: usize = 32 << 20;
/// After a failed publish, wait this long before building the next block.
const PUBLISH_RETRY: Duration = Duration::from_millis(500);
/// How long start-up waits for an unreachable broker (retrying with backoff, see
/// `transport::retry`) before the node gives up.
const START_PATIENCE: Duration = Duration::from_secs(300);
/// After a failed commit, wait this long before committing again.
const COMMIT_RETRY: Duration = Duration::from_secs(1);
/// At most one asynchronous offset commit per this interval (per node). A commit is a
/// write transaction on the broker (on Tansu 0.6.0, SQLite statements compiled per
/// request, and pages in its write-ahead log); committing after every block that held
/// the node's transactions cost one commit per block. A crash re-reads at most about
/// this much more of the partition, which the chain already holds and the node skips
/// (`Verdict::OnChain`); a stop or a revocation still commits at once.
const COMMIT_INTERVAL: Duration = Duration::from_secs(1);
/// Bounded waits when stopping.
const STOP_COMMIT_TIMEOUT: Duration = Duration::from_secs(3);
const STOP_CLOSE_TIMEOUT: Duration = Duration::from_secs(3);
const STOP_FLUSH_TIMEOUT: Duration = Duration::from_secs(2);
/// Delivery tag of a genesis block (our blocks are numbered from 1).
const GENESIS_TAG: u64 = 0;

type ChainBatch = Result<Vec<ChainRecord>, TransportError>;

/// A running node. Create with [`Node::start`], drive with [`Node::run`].
pub struct Node {
    config: NodeConfig,
    id: String,
    chain: ChainState,
    pool: Pool,
    /// The accounts rules' index over `pool` (accounts chains only).
    accounts: Option<AccountsPool>,
    stage: Stage,
    next_job: u64,
    miner: MinerThread,
    mined_rx: Receiver<MineResult>,
    publisher: Publisher,
    deliveries: Receiver<Delivery>,
    /// The block being published: (tag, bytes), for a size rejection.
    publishing: Option<(u64, usize)>,
    /// Don't build before this (after a failed publish).
    build_after: Option<Instant>,
    budget: BlockBudget,
    /// Canonical size of our reward transaction (part of every block we build).
    reward_len: usize,
    chain_rx: Receiver<ChainBatch>,
    chain_bytes: Arc<ByteBudget>,
    reader_stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
    intake: Option<Intake>,
    intake_rx: Receiver<IntakeEvent>,
    intake_channels: IntakeChannels,
    control_rx: Receiver<IntakeEvent>,
    summary: NodeSummary,
    /// Positions the broker confirmed committing.
    last_commit: Vec<(i32, i64)>,
    /// Positions sent in an asynchronous commit not yet answered.
    commit_in_flight: Option<Vec<(i32, i64)>>,
    commit_after: Option<Instant>,
    /// When the last asynchronous commit was sent ([`COMMIT_INTERVAL`]).
    commit_sent: Option<Instant>,
    last_status: Instant,
    txs_on_chain_since_status: u64,
    /// Warnings about skipped records, rate-limited (the counters are not).
    skip_warnings: SkipWarnings,
    /// Whose turn it is to publish, and this node's turn on the current tip.
    turns: Turns,
    turn: TipTurn,
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
        let stopped = || shutdown.is_triggered();
        retry::retry(
            "creating or checking the topics",
            START_PATIENCE,
            &stopped,
            || topics::ensure_topics(&config.kafka, &config.topics),
        )?;

        let (delivery_tx, deliveries) = unbounded();
        let publisher = Publisher::new(
            &config.kafka,
            &config.topics.chain,
            Profile::Blocks,
            Some(delivery_tx),
        )?;
        let topic_max = match topics::max_message_bytes(&config.kafka, &config.topics.chain) {
            Ok(Some(max)) => max,
            Ok(None) => topics::DEFAULT_TOPIC_MAX_MESSAGE_BYTES,
            Err(err) => {
                warn!(error = %err, "could not read the chain topic's max.message.bytes; assuming Kafka's default");
                topics::DEFAULT_TOPIC_MAX_MESSAGE_BYTES
            }
        };
        let budget = BlockBudget::new(config.block_size, publisher.max_message_bytes(), topic_max);
        info!(
            max_txs = budget.max_txs(),
            max_bytes = budget.max_bytes(),
            producer_max = publisher.max_message_bytes(),
            topic_max,
            "block limits"
        );
        let (log, end) = retry::retry("opening the chain topic", START_PATIENCE, &stopped, || {
            let log = ChainLog::open(&config.kafka, &config.topics.chain, 0)?;
            let end = log.end_offset()?;
            Ok((log, end))
        })?;

        info!(records = end, "replaying the chain topic");
        let (chain_tx, chain_rx) = bounded(64);
        let chain_bytes = ByteBudget::new(CHAIN_BUFFER_BYTES);
        let reader_stop = Arc::new(AtomicBool::new(false));
        let reader = {
            let stop = Arc::clone(&reader_stop);
            let bytes = Arc::clone(&chain_bytes);
            std::thread::Builder::new()
                .name("chain-reader".into())
                .spawn({
                    let reopen = (config.kafka.clone(), config.topics.chain.clone());
                    move || read_chain(log, reopen, chain_tx, bytes, stop)
                })
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
        let (records_tx, intake_rx) = bounded(INTAKE_BUFFER_RECORDS);
        let (control_tx, control_rx) = unbounded();
        let intake_channels = IntakeChannels {
            records: records_tx,
            records_rx: intake_rx.clone(),
            bytes: ByteBudget::new(INTAKE_BUFFER_BYTES),
            control: control_tx,
        };
        let reward_len = Transaction::reward(&id, &config.reward).encoded_len();
        let config_turn_grace = config.turn_grace;
        let mut node = Node {
            summary: NodeSummary {
                id: id.clone(),
                ..NodeSummary::default()
            },
            config,
            id,
            chain: ChainState::new(),
            pool: Pool::new(),
            accounts: None,
            stage: Stage::Idle,
            next_job: 1,
            miner,
            mined_rx,
            publisher,
            deliveries,
            publishing: None,
            build_after: None,
            budget,
            reward_len,
            chain_rx,
            chain_bytes,
            reader_stop,
            reader: Some(reader),
            intake: None,
            intake_rx,
            intake_channels,
            control_rx,
            last_commit: Vec::new(),
            commit_in_flight: None,
            commit_after: None,
            commit_sent: None,
            last_status: Instant::now(),
            txs_on_chain_since_status: 0,
            skip_warnings: SkipWarnings::new(),
            turns: Turns::new(config_turn_grace),
            turn: TipTurn::free(Instant::now()),
        };
        node.track_claims();
        node.replay(end, shutdown)?;
        if let Some(rules) = node.chain.rules() {
            if rules != node.config.rules {
                info!(chain = ?rules, requested = ?node.config.rules, "the chain's genesis decides the rules");
            }
            // Accounts: rewards are minted to the node's own key, at the chain's rate.
            if let Rules::Accounts {
                chain_id,
                block_reward,
                ..
            } = rules
            {
                node.id = accounts_pool::node_address(&node.config.data_dir)?;
                node.summary.id = node.id.clone();
                node.config.reward = Number::from(block_reward);
                node.accounts = Some(AccountsPool::with_verifier(chain_id).map_err(|source| {
                    NodeError::Thread {
                        what: "transfer verifier",
                        source,
                    }
                })?);
                info!(address = %node.id, "accounts chain: rewards go to this node's key");
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

    /// Remembers the content of claims on origins this node may still read (at or
    /// above the group's committed offsets), so a forged claim cannot censor a record
    /// (see `chain::claims`). Without the offsets it remembers from offset 0.
    fn track_claims(&mut self) {
        let (scope, partitions) = match self.config.intake {
            IntakeMode::Partition(p) => (ClaimScope::Partition(p), vec![p]),
            IntakeMode::Group => (
                ClaimScope::All,
                (0..self.config.topics.tx_partitions.max(1)).collect(),
            ),
        };
        let floors = match intake::group_committed(
            &self.config.kafka,
            &self.config.topics.transactions,
            &self.config.group,
            &partitions,
        ) {
            Ok(committed) => committed
                .into_iter()
                .filter_map(|(p, o)| Some((p, o?)))
                .collect(),
            Err(err) => {
                warn!(error = %err, "reading committed offsets; remembering claims from offset 0");
                Vec::new()
            }
        };
        debug!(?floors, "claim floors");
        self.chain.track_claims(scope, floors);
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
        let mut genesis_sent = false;
        let mut quiet_since = Instant::now();
        while (next < end || self.chain.tip().is_none()) && !shutdown.is_triggered() {
            if next >= end && self.chain.tip().is_none() && !genesis_sent {
                // An empty chain topic, or one whose records hold no valid genesis:
                // start the chain. Several nodes may race here; replay keeps the first
                // valid genesis and discards the others, so every node still agrees.
                genesis_sent = self.publish_genesis(next);
            }
            // A genesis whose delivery failed is sent again.
            while let Ok(delivery) = self.deliveries.try_recv() {
                if delivery.tag == GENESIS_TAG && delivery.result.is_err() {
                    warn!(error = ?delivery.result, "publishing the genesis block failed; retrying");
                    genesis_sent = false;
                }
            }
            let batch = match self.chain_rx.recv_timeout(Duration::from_secs(1)) {
                Ok(Ok(batch)) => batch,
                Ok(Err(err)) if err.is_fatal() => return Err(err.into()),
                Ok(Err(err)) => {
                    warn!(error = %err, at = next, of = end, "chain topic read error during replay; retrying");
                    continue;
                }
                Err(RecvTimeoutError::Timeout) => {
                    if quiet_since.elapsed() >= Duration::from_secs(60) {
                        warn!(
                            at = next,
                            of = end,
                            "no chain records for 60 s during replay; still waiting"
                        );
                        quiet_since = Instant::now();
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(NodeError::ReaderStopped("reader thread exited".into()))
                }
            };
            quiet_since = Instant::now();
            for record in &batch {
                // A batch of big blocks takes a while to validate: stop promptly.
                if shutdown.is_triggered() {
                    break;
                }
                next = record.offset + 1;
                self.apply_chain_record(record, false);
            }
            self.chain_bytes.give_back(batch_bytes(&batch));
            if let Some(bar) = &bar {
                bar.set_position(next as u64);
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        if shutdown.is_triggered() && (next < end || self.chain.tip().is_none()) {
            info!(at = next, of = end, "stopped during replay");
            return Ok(());
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

    /// Publishes a genesis block for a chain topic with none; false if it failed (the
    /// caller retries).
    fn publish_genesis(&mut self, at: i64) -> bool {
        let genesis = accounts_pool::genesis_record(&self.config, now_seconds());
        let sent = self
            .publisher
            .send(GENESIS_TAG, Some(CHAIN_PARTITION), &genesis)
            .and_then(|()| self.publisher.flush(Duration::from_secs(5)));
        match sent {
            Ok(()) => {
                if at == 0 {
                    info!(rules = ?self.config.rules, "published genesis block");
                } else {
                    warn!(rules = ?self.config.rules, records = at, "the chain topic holds no valid genesis block; published one");
                }
                true
            }
            Err(err) => {
                warn!(error = %err, "publishing the genesis block failed; retrying");
                false
            }
        }
    }

    /// Runs until `shutdown`: consumes transactions, mines, publishes, follows the chain.
    pub fn run(mut self, shutdown: &Shutdown) -> Result<NodeSummary, NodeError> {
        if shutdown.is_triggered() {
            return Ok(self.finish());
        }
        self.intake = Some(Intake::start(
            &self.config.kafka,
            &self.config.topics.transactions,
            &self.config.group,
            self.config.intake,
            self.intake_channels.clone(),
        )?);
        info!(id = %self.id, intake = ?self.config.intake, "node running");
        let result = self.run_loop(shutdown);
        // The same bounded stop whether the loop ended on SIGTERM or on an error.
        self.stop();
        result.map(|()| self.finish())
    }

    fn run_loop(&mut self, shutdown: &Shutdown) -> Result<(), NodeError> {
        let tick = crossbeam_channel::tick(Duration::from_millis(25));
        let verdicts_rx = self.accounts.as_ref().map(|a| a.verdicts());
        let verdicts_rx = verdicts_rx.unwrap_or_else(crossbeam_channel::never);
        while !shutdown.is_triggered() {
            let checking = self.accounts.as_ref().map_or(0, |a| a.in_flight());
            let intake_rx = if self.pool.len() + checking < MAX_PENDING
                && self.pool.bytes() < MAX_PENDING_BYTES
            {
                self.intake_rx.clone()
            } else {
                crossbeam_channel::never()
            };
            // Waiting for our turn on this tip (`node::turn`): look again when it comes.
            let turn = match self.turn.wake(Instant::now()) {
                Some(at) if matches!(self.stage, Stage::Idle) => crossbeam_channel::at(at),
                _ => crossbeam_channel::never(),
            };
            select! {
                recv(self.chain_rx) -> msg => self.on_chain_batch(msg)?,
                recv(turn) -> _ => {},
                recv(self.control_rx) -> msg => if let Ok(event) = msg { self.on_intake(event, Instant::now()) },
                recv(intake_rx) -> msg => if let Ok(event) = msg {
                    // Assignments before the records that follow them.
                    self.drain_control();
                    // One clock reading for the whole drain: arrival times only
                    // decide when a block is due (`--block-timeout`).
                    let now = Instant::now();
                    self.take_record(event, now);
                    // Drain what is already queued before doing anything else.
                    for _ in 0..10_000.min(MAX_PENDING.saturating_sub(self.pool.len() + checking)) {
                        match self.intake_rx.try_recv() {
                            Ok(event) => self.take_record(event, now),
                            Err(_) => break,
                        }
                    }
                },
                recv(verdicts_rx) -> msg => if let Ok(verdicts) = msg { self.on_verdicts(Some(verdicts)) },
                recv(self.mined_rx) -> msg => if let Ok(result) = msg { self.on_mined(result)? },
                recv(self.deliveries) -> msg => if let Ok(delivery) = msg { self.on_delivery(delivery) },
                recv(tick) -> _ => {},
            }
            self.on_verdicts(None);
            self.maybe_mine();
            self.maybe_commit();
            self.maybe_report_status();
            if let Some(m) = &self.config.metrics {
                m.set_pending(self.pool.len());
            }
        }
        Ok(())
    }

    /// Cancels mining, commits what is safe, leaves the group and flushes the
    /// producer, each with a bounded wait.
    fn stop(&mut self) {
        info!("shutting down: committing offsets and leaving the group");
        self.miner.cancel();
        self.drain_control();
        if let Some(intake) = self.intake.take() {
            // Always commit here, even if the positions look unchanged: an earlier
            // asynchronous commit may have failed without us hearing yet.
            let positions = self.pool.commit_positions();
            intake.set_safe_positions(&positions);
            match intake.commit_sync_within(&positions, STOP_COMMIT_TIMEOUT) {
                Ok(true) => info!(?positions, "committed offsets"),
                Ok(false) => warn!(?positions, "committing offsets did not finish in time; the next owner re-reads from the previous commit"),
                Err(err) => warn!(error = %err, "committing offsets failed; the next owner re-reads from the previous commit"),
            }
            if !intake.close(STOP_CLOSE_TIMEOUT) {
                warn!(
                    "the transaction consumer did not close within {:?}; exiting anyway",
                    STOP_CLOSE_TIMEOUT
                );
            }
        }
        let _ = self.publisher.flush(STOP_FLUSH_TIMEOUT);
        self.skip_warnings.report_now();
    }

    /// Handles the control events already queued (assignments, revocations, commits).
    fn drain_control(&mut self) {
        while let Ok(event) = self.control_rx.try_recv() {
            self.on_intake(event, Instant::now());
        }
    }

    /// A record from the intake channel: give its bytes back, then handle it.
    fn take_record(&mut self, event: IntakeEvent, now: Instant) {
        if let IntakeEvent::Record { payload, .. } = &event {
            self.intake_channels.bytes.give_back(payload.len());
        }
        self.on_intake(event, now);
    }

    fn finish(&mut self) -> NodeSummary {
        self.reader_stop.store(true, Ordering::SeqCst);
        if let Some(reader) = self.reader.take() {
            // Drain so the reader is not blocked on a full channel.
            while !reader.is_finished() {
                if let Ok(Ok(batch)) = self.chain_rx.recv_timeout(Duration::from_millis(10)) {
                    self.chain_bytes.give_back(batch_bytes(&batch));
                }
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
        for origin in self.pool.settle(&block.claims) {
            self.on_conflicting_claim(origin, offset);
        }
        if let Some(accounts) = &mut self.accounts {
            accounts.on_block(&self.chain, &mut self.pool);
        }
        self.txs_on_chain_since_status += block.origins.len() as u64;
        let ours = block.miner.as_deref() == Some(self.id.as_str());
        let mined_in = match self.stage {
            Stage::Awaiting {
                mined_in, since, ..
            } if ours && live => {
                self.turns.on_round_trip(since.elapsed());
                Some(mined_in)
            }
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
        self.turns.on_block(block.miner.as_deref());
        if self.turn.yielded() {
            self.summary.turns_yielded += 1;
            debug!(
                height = block.index,
                "yielded a height: waited for our turn and the first in line's block came"
            );
        }
        self.turn = TipTurn::new(&self.turns, block.hash.as_bytes(), &self.id, Instant::now());
        // The tip moved: whatever we were mining or waiting for is now stale.
        if let Stage::Mining { .. } = self.stage {
            self.miner.cancel();
        }
        self.stage = Stage::Idle;
    }

    /// A block claimed `origin` (at the attempt we hold pending) with other content.
    fn on_conflicting_claim(&mut self, origin: Origin, block_offset: i64) {
        match self.chain.lowest_free_attempt(origin) {
            Some(attempt) => {
                warn!(
                    partition = origin.partition,
                    offset = origin.offset,
                    block_offset,
                    attempt,
                    "conflicting claim: a block claims this transaction's origin with other content (an attack?); including it again as a new attempt"
                );
                self.pool.reattempt(origin, attempt);
            }
            None => warn!(
                partition = origin.partition,
                offset = origin.offset,
                "conflicting claim: every attempt at this origin is taken"
            ),
        }
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

    /// `now`: when the record was taken (its arrival time in the pool).
    fn on_intake(&mut self, event: IntakeEvent, now: Instant) {
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
                if let Some(accounts) = &mut self.accounts {
                    // Accounts chains: signed transfers only, checked in batches on the
                    // verifier thread, settled in order by `on_verdicts`.
                    accounts.take(&self.chain, origin, &payload);
                    return;
                }
                match chain::parse_submitted(&payload) {
                    Err(err) => {
                        self.summary.malformed_txs += 1;
                        self.pool.consumed(partition, offset);
                        if self.skip_warnings.malformed.admit(Instant::now(), &err) {
                            warn!(partition, offset, error = %err, "skipping malformed transaction");
                        }
                    }
                    Ok(tx) => {
                        let tx = Transaction::from_submitted(&tx, origin);
                        let verdict = tx
                            .content()
                            .map_or(Verdict::Free, |c| self.chain.verdict(origin, c));
                        match verdict {
                            Verdict::Free => {
                                if self.fits_a_block(&tx, origin) {
                                    self.pool.offer(origin, tx, now);
                                }
                            }
                            Verdict::OnChain => {
                                // Re-read after a crash or rebalance: already on the chain.
                                self.summary.txs_already_on_chain += 1;
                                self.pool.consumed(partition, offset);
                            }
                            Verdict::Conflict {
                                attempt: Some(attempt),
                            } => {
                                warn!(
                                    partition,
                                    offset,
                                    attempt,
                                    "conflicting claim: the chain claims this transaction's origin with other content (an attack?); including it as a new attempt"
                                );
                                let tx = tx.with_attempt(attempt);
                                if self.fits_a_block(&tx, origin) {
                                    self.pool.offer(origin, tx, now);
                                }
                            }
                            Verdict::Conflict { attempt: None } => {
                                warn!(partition, offset, "conflicting claim: every attempt at this origin is taken; skipping");
                                self.pool.consumed(partition, offset);
                            }
                        }
                    }
                }
            }
            IntakeEvent::Assigned(partitions) => {
                info!(?partitions, "transaction partitions assigned");
            }
            IntakeEvent::Revoked(partitions) => {
                // The revocation callback already committed our safe positions for
                // these partitions before handing them over.
                let dropped = self.pool.revoke(&partitions);
                if let Some(accounts) = &mut self.accounts {
                    accounts.revoke(&partitions);
                }
                info!(?partitions, dropped, "transaction partitions revoked");
                self.last_commit.retain(|(p, _)| !partitions.contains(p));
                self.commit_in_flight = None;
            }
            IntakeEvent::Committed(Ok(positions)) => {
                if self.commit_in_flight.as_ref() == Some(&positions) {
                    self.commit_in_flight = None;
                }
                debug!(?positions, "offsets committed");
                // Claims below a committed offset can never be read again by this group.
                for &(partition, offset) in &positions {
                    self.chain.raise_claim_floor(partition, offset);
                }
                self.last_commit = positions;
            }
            IntakeEvent::Committed(Err(err)) => {
                warn!(error = %err, "committing offsets failed; retrying");
                self.last_commit.clear();
                self.commit_in_flight = None;
                self.commit_after = Some(Instant::now() + COMMIT_RETRY);
            }
            IntakeEvent::Error(err) => warn!(error = %err, "transaction consumer error"),
        }
    }

    /// Accounts chains: sends the transfers taken since the last turn to the verifier,
    /// applies `verdicts` if any, and settles the records whose verdicts are in, in
    /// arrival order (see `accounts_pool.rs`).
    fn on_verdicts(&mut self, verdicts: Option<super::verifier::Verdicts>) {
        let Some(accounts) = &mut self.accounts else {
            return;
        };
        accounts.flush();
        let outcomes = match verdicts {
            Some(v) => accounts.on_verdicts(&self.chain, &mut self.pool, v),
            None => accounts.settle(&self.chain, &mut self.pool),
        };
        for (origin, outcome) in outcomes {
            match outcome {
                Ok(Offered::AlreadyOnChain) => self.summary.txs_already_on_chain += 1,
                Ok(_) => {}
                Err(reason) => {
                    self.summary.malformed_txs += 1;
                    self.pool.consumed(origin.partition, origin.offset);
                    if self.skip_warnings.rejected.admit(Instant::now(), &reason) {
                        warn!(
                            partition = origin.partition,
                            offset = origin.offset,
                            %reason,
                            "rejected transfer"
                        );
                    }
                }
            }
        }
    }

    /// False (and the transaction skipped, as consumed) if it could never fit a block.
    fn fits_a_block(&mut self, tx: &Transaction, origin: Origin) -> bool {
        if self.budget.fits_alone(tx.encoded_len(), self.reward_len) {
            return true;
        }
        self.summary.oversized_txs += 1;
        self.pool.consumed(origin.partition, origin.offset);
        if !self
            .skip_warnings
            .oversized
            .admit(Instant::now(), &"TooLarge")
        {
            return false;
        }
        warn!(
            partition = origin.partition,
            offset = origin.offset,
            bytes = tx.encoded_len(),
            max_block_bytes = self.budget.max_bytes(),
            "skipping transaction: too large for any block"
        );
        false
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
        if self.build_after.is_some_and(|t| Instant::now() < t) {
            return;
        }
        let reward = Transaction::reward(&self.id, &self.config.reward);
        let room = self.budget.tx_bytes(reward.encoded_len());
        // Full by count, or by bytes (the pending transactions would fill a block).
        let full = self.pool.len() >= self.budget.max_txs()
            || self.pool.bytes() + BLOCK_TX_SEPARATOR_BYTES * self.pool.len() >= room;
        let waited = self
            .pool
            .oldest_wait(Instant::now())
            .is_some_and(|w| w >= self.config.block_timeout);
        // Our turn on this tip (`node::turn`): cut at half a block or half the timeout.
        let half_due = 2 * self.pool.len() >= self.budget.max_txs()
            || 2 * (self.pool.bytes() + BLOCK_TX_SEPARATOR_BYTES * self.pool.len()) >= room
            || self
                .pool
                .oldest_wait(Instant::now())
                .is_some_and(|w| 2 * w >= self.config.block_timeout);
        let my_turn = half_due
            && self
                .chain
                .tip()
                .is_some_and(|tip| self.turns.my_turn(tip.hash.as_bytes(), &self.id));
        if !full && !waited && !my_turn {
            return;
        }
        // Another node's turn first (`node::turn`): build nothing until ours comes.
        if !self.turn.may_build(Instant::now()) {
            return;
        }
        let (Some(tip), Some(rules)) = (self.chain.tip(), self.chain.rules()) else {
            return;
        };
        let mut txs = match &mut self.accounts {
            Some(accounts) => {
                // Nonce order per sender: any prefix of the selection is still valid,
                // so the byte budget cuts it from the end.
                let mut txs = accounts.select(&self.chain, &self.pool, self.budget.max_txs());
                txs.truncate(accounts_pool::fitting(&txs, room, BLOCK_TX_SEPARATOR_BYTES));
                // Verified at intake: our block passes every node's signature check.
                accounts.vouch(&self.chain, txs.len());
                txs
            }
            None => self
                .pool
                .oldest_within(self.budget.max_txs(), room, BLOCK_TX_SEPARATOR_BYTES),
        };
        if txs.is_empty() && self.accounts.is_none() {
            // The oldest no longer fits (the budget shrank after a rejection): skip it.
            if let Some((origin, bytes)) = self.pool.oldest_entry() {
                self.pool.remove(&[origin]);
                self.summary.oversized_txs += 1;
                if !self
                    .skip_warnings
                    .oversized
                    .admit(Instant::now(), &"TooLarge")
                {
                    return;
                }
                warn!(
                    partition = origin.partition,
                    offset = origin.offset,
                    bytes,
                    max_block_bytes = self.budget.max_bytes(),
                    "skipping transaction: too large for any block"
                );
            }
            return;
        }
        if txs.is_empty() {
            return; // accounts: only held transfers are pending
        }
        let count = txs.len();
        txs.push(reward);
        let template = BlockTemplate::new(tip, rules, now_seconds(), &txs);
        let id = self.next_job;
        self.next_job += 1;
        self.miner.submit(id, template.work());
        if self.turn.built_after_waiting() {
            debug!("built after waiting for our turn: the first in line published nothing");
        }
        self.stage = Stage::Mining {
            id,
            template,
            txs: count,
        };
    }

    fn on_chain_batch(
        &mut self,
        msg: Result<ChainBatch, crossbeam_channel::RecvError>,
    ) -> Result<(), NodeError> {
        match msg {
            Ok(Ok(batch)) => {
                for record in &batch {
                    self.apply_chain_record(record, true)
                }
                self.chain_bytes.give_back(batch_bytes(&batch));
            }
            Ok(Err(err)) if err.is_fatal() => return Err(err.into()),
            Ok(Err(err)) => warn!(error = %err, "chain topic read error; retrying"),
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
        let (id, txs, index) = (*id, *txs, template.index());
        self.stage = Stage::Idle;
        self.publish(id, &block, result.elapsed, txs, index);
        Ok(())
    }

    /// Publishes a mined block (built on our turn: see `node::turn`).
    fn publish(&mut self, id: u64, block: &[u8], mined_in: Duration, txs: usize, index: u64) {
        if let Err(err) = self.publisher.send(id, Some(CHAIN_PARTITION), block) {
            self.publish_failed(id, block.len(), err.is_too_large(), &err.to_string());
            return;
        }
        self.publishing = Some((id, block.len()));
        // One line per block: `kafkachain bench` reads these for tip-to-publish times.
        info!(
            height = index,
            txs,
            since_tip_ms = self.turn.seen().elapsed().as_millis() as u64,
            mining_ms = mined_in.as_millis() as u64,
            "published block"
        );
        self.stage = Stage::Awaiting {
            id,
            since: Instant::now(),
            mined_in,
            txs,
        };
    }

    fn on_delivery(&mut self, delivery: Delivery) {
        let Err(err) = &delivery.result else {
            return;
        };
        let len = match self.publishing {
            Some((tag, len)) if tag == delivery.tag => len,
            _ => 0,
        };
        if matches!(self.stage, Stage::Awaiting { id, .. } if id == delivery.tag) {
            self.stage = Stage::Idle;
        }
        self.publish_failed(delivery.tag, len, delivery.too_large, err);
    }

    /// A block could not be published: never fatal. Shrink the budget if it was too
    /// large, and build again shortly.
    fn publish_failed(&mut self, id: u64, len: usize, too_large: bool, err: &str) {
        self.summary.publish_failures += 1;
        if matches!(self.stage, Stage::Mining { .. }) {
            self.stage = Stage::Idle;
        }
        if too_large && len > 0 {
            let before = self.budget.max_bytes();
            if self.budget.shrink_below(len) {
                warn!(id, bytes = len, error = %err, before, after = self.budget.max_bytes(), "block refused as too large; building smaller blocks");
                return;
            }
        }
        warn!(id, bytes = len, error = %err, "publishing block failed; building again");
        self.build_after = Some(Instant::now() + PUBLISH_RETRY);
    }

    /// Keeps the intake's safe positions current and commits them asynchronously when
    /// they moved, at most once per [`COMMIT_INTERVAL`]. Positions count as committed
    /// only once the broker confirms them ([`IntakeEvent::Committed`]); a failed commit
    /// is retried after [`COMMIT_RETRY`].
    fn maybe_commit(&mut self) {
        let Some(intake) = &self.intake else { return };
        let positions = self.pool.commit_positions();
        intake.set_safe_positions(&positions);
        if positions == self.last_commit || self.commit_in_flight.as_ref() == Some(&positions) {
            return;
        }
        if self.commit_after.is_some_and(|t| Instant::now() < t) {
            return;
        }
        if self
            .commit_sent
            .is_some_and(|t| t.elapsed() < COMMIT_INTERVAL)
        {
            return;
        }
        self.commit_after = None;
        match intake.commit(&positions, CommitMode::Async) {
            Ok(()) => {
                self.commit_in_flight = Some(positions);
                self.commit_sent = Some(Instant::now());
            }
            Err(err) => {
                warn!(error = %err, "commit failed; retrying");
                self.commit_after = Some(Instant::now() + COMMIT_RETRY);
            }
        }
    }

    fn maybe_report_status(&mut self) {
        self.skip_warnings.report_due(Instant::now());
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

fn batch_bytes(batch: &[ChainRecord]) -> usize {
    batch.iter().map(|r| r.payload.len()).sum()
}

/// The chain-reader thread: fetches records in batches so validation (on the node
/// loop) overlaps with fetching. Batches are bounded by count and bytes, and the
/// channel by [`CHAIN_BUFFER_BYTES`] (see the module docs). Transient errors are
/// reported and retried with backoff; fatal ones (truncated or recreated topic, more
/// than one partition) are reported and end the thread.
/// Reads the chain topic into `out`, in order, from the start of `log`.
///
/// A consumer that has failed for [`REOPEN_AFTER`] on end (every poll an error, no
/// record) is replaced by a new one at the next offset: after a restart of a one-node
/// Apache Kafka, a chain reader's consumer was seen reporting `AllBrokersDown` every
/// 2 s for the rest of a 300 s run while the same process's producer had reconnected
/// (`broker_faults::broker_restart_mid_stream_loses_nothing`, in some runs). The new
/// consumer starts where the old one stopped delivering, so nothing is skipped or read
/// twice.
fn read_chain(
    mut log: ChainLog,
    (kafka, topic): (KafkaConfig, String),
    out: Sender<ChainBatch>,
    bytes: Arc<ByteBudget>,
    stop: Arc<AtomicBool>,
) {
    // Blocks always go to partition 0 explicitly, so an added partition never gets
    // one; the check bounds how long a node mines on after it appeared (the loop
    // applies the reader's fatal error before publishing any block it mined).
    const PARTITION_CHECK: Duration = Duration::from_secs(10);
    const REOPEN_AFTER: Duration = Duration::from_secs(30);
    let mut next_offset = 0i64;
    let mut failing_since: Option<Instant> = None;
    let mut errors = 0u32;
    let mut last_check = Instant::now();
    let send = |item: ChainBatch| -> bool {
        let mut item = item;
        loop {
            match out.send_timeout(item, Duration::from_millis(100)) {
                Ok(()) => return true,
                Err(crossbeam_channel::SendTimeoutError::Timeout(back)) => {
                    if stop.load(Ordering::Relaxed) {
                        return false;
                    }
                    item = back;
                }
                Err(crossbeam_channel::SendTimeoutError::Disconnected(_)) => return false,
            }
        }
    };
    while !stop.load(Ordering::Relaxed) {
        if last_check.elapsed() >= PARTITION_CHECK {
            last_check = Instant::now();
            if let Err(err) = log.check_single_partition(Duration::from_secs(2)) {
                if err.is_fatal() {
                    send(Err(err));
                    return;
                }
            }
        }
        let mut batch = Vec::new();
        let result = log.poll_batch_within(
            CHAIN_BATCH_RECORDS,
            CHAIN_BATCH_BYTES,
            Duration::from_millis(50),
            &mut batch,
        );
        // Records polled before an error are delivered all the same: never skip one.
        if let Some(last) = batch.last() {
            next_offset = last.offset + 1;
        }
        if !batch.is_empty() {
            let size = batch_bytes(&batch);
            while !bytes.try_take(size) {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            if !send(Ok(batch)) {
                return;
            }
        }
        match result {
            Ok(_) => {
                errors = 0;
                failing_since = None;
            }
            Err(err) if err.is_fatal() => {
                send(Err(err));
                return;
            }
            Err(err) => {
                errors += 1;
                let since = *failing_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= REOPEN_AFTER {
                    match ChainLog::open(&kafka, &topic, next_offset) {
                        Ok(fresh) => {
                            warn!(
                                offset = next_offset,
                                failing_s = since.elapsed().as_secs(),
                                "chain reader: the consumer kept failing; replaced it with a new one at the next offset"
                            );
                            // Dropping a consumer closes it, which waits on the
                            // broker: let that happen off this thread.
                            let old = std::mem::replace(&mut log, fresh);
                            let _ = std::thread::Builder::new()
                                .name("chain-reader-close".into())
                                .spawn(move || drop(old));
                        }
                        Err(err) => {
                            warn!(error = %err, "chain reader: could not open a new consumer; retrying")
                        }
                    }
                    failing_since = None;
                }
                let report = errors == 1 || errors.is_multiple_of(20);
                if report && !send(Err(err)) {
                    return;
                }
                // librdkafka retries by itself too; back off 100 ms, doubling to 2 s.
                let backoff =
                    Duration::from_millis(100 << errors.min(5)).min(Duration::from_secs(2));
                let until = Instant::now() + backoff;
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
}
