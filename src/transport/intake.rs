//! Consuming the transactions topic.
//!
//! Two modes: the tutorial's (this node owns one partition) and a consumer group that
//! spreads the partitions over the running nodes. Either way offsets are committed
//! only when the node says so — after the transactions are on the chain — so a crash
//! loses nothing: the next owner re-reads from the last commit and skips what the chain
//! already holds.
//!
//! # The intake thread never blocks
//!
//! librdkafka runs rebalance and commit callbacks inside `poll`, on the intake thread,
//! and a group member that stops polling stalls the whole group's rebalance. So:
//! - records go to the node through a channel bounded by count *and* bytes
//!   ([`IntakeChannels`]); when it is full the thread keeps what it polled in a small
//!   local queue, pauses its partitions (librdkafka then drops what it prefetched and
//!   re-fetches from the last polled offset on resume, so nothing is skipped) and goes
//!   on polling, which keeps serving callbacks and heartbeats;
//! - every assignment starts unpaused: librdkafka keeps an application's pause on a
//!   partition across revocation and re-assignment, so the assignment callback resumes
//!   what it is given (a partition paused when revoked, then assigned again, would
//!   otherwise never be fetched: the node stopped reading for good after a rebalance
//!   that came while its intake was paused);
//! - everything else (assignments, revocations, commit results, errors) goes through an
//!   unbounded control channel: callbacks only ever `send` there, which cannot block;
//! - on revocation the callback itself commits the node's latest safe positions for the
//!   revoked partitions ([`Intake::set_safe_positions`]) before librdkafka hands them
//!   over, and removes every record of those partitions that the node has not taken yet
//!   from both queues. After `Revoked(p)` the node never receives a record of `p` polled
//!   before the revocation.
//! - the stop flag is checked every poll (at most 100 ms apart).
//!
//! # Every commit's outcome reaches the node
//!
//! librdkafka reports the outcome of an asynchronous `rd_kafka_commit` only to an
//! `offset_commit_cb` set in the configuration, which rust-rdkafka never sets: a failed
//! asynchronous commit (the broker refusing it, `GROUP_AUTHORIZATION_FAILED`) would be
//! logged by librdkafka and otherwise lost, and the node would never retry it. So the
//! node's commits run synchronously on a commit thread of their own, one at a time and
//! in order (a waiting asynchronous request is replaced by a newer one), and the thread
//! reports each outcome as [`IntakeEvent::Committed`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use super::budget::ByteBudget;
use super::{KafkaConfig, KafkaResultExt, TransportError};

/// What the intake thread reports, in the order it happened.
#[derive(Debug)]
pub enum IntakeEvent {
    Record {
        partition: i32,
        offset: i64,
        payload: Vec<u8>,
    },
    /// These partitions are now ours (reading resumes at their committed offsets).
    Assigned(Vec<i32>),
    /// These partitions are no longer ours; forget their pending transactions.
    Revoked(Vec<i32>),
    /// The broker answered an asynchronous commit: the positions it stored, or why not.
    Committed(Result<Vec<(i32, i64)>, String>),
    /// The consumer reported an error (the broker may be down); informational.
    Error(String),
}

/// Where transactions come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntakeMode {
    /// The tutorial's mode: exactly this partition, no rebalancing.
    Partition(i32),
    /// Join the consumer group and take whatever partitions it assigns.
    Group,
}

/// Offsets that `group` has committed for `partitions` of `topic` (None where nothing
/// is committed), read without joining the group. A node reads them before replaying
/// the chain, to know which origins it may still read.
pub fn group_committed(
    config: &KafkaConfig,
    topic: &str,
    group: &str,
    partitions: &[i32],
) -> Result<Vec<(i32, Option<i64>)>, TransportError> {
    let consumer: BaseConsumer = config
        .client(&[("group.id", group), ("enable.auto.commit", "false")])
        .create()
        .kafka(format!(
            "creating consumer for `{topic}` in group `{group}`"
        ))?;
    read_committed(&consumer, topic, partitions)
}

/// The group's committed offset of each of `partitions` (None where nothing is committed).
fn read_committed<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partitions: &[i32],
) -> Result<Vec<(i32, Option<i64>)>, TransportError> {
    let mut list = TopicPartitionList::new();
    for &p in partitions {
        list.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(list, super::BROKER_TIMEOUT)
        .kafka("reading committed offsets")?;
    Ok(committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => (e.partition(), Some(o)),
            _ => (e.partition(), None),
        })
        .collect())
}

/// The two channels from the intake thread to the node (see the module docs).
///
/// Records: at most the channel's capacity in count and `bytes.limit()` in payload
/// bytes (plus one oversized record), plus the records polled while the channel was
/// full (at most what librdkafka had already handed over when the partitions were
/// paused). The node must call `bytes.give_back(payload.len())` for each record it
/// takes from `records`.
#[derive(Clone)]
pub struct IntakeChannels {
    pub records: Sender<IntakeEvent>,
    /// The node's end of `records`, used to withdraw a revoked partition's records.
    pub records_rx: Receiver<IntakeEvent>,
    pub bytes: Arc<ByteBudget>,
    pub control: Sender<IntakeEvent>,
}

/// State shared by the intake thread, its callbacks and the node.
struct Shared {
    channels: IntakeChannels,
    /// Records polled but not yet in the channel (full), oldest first.
    held: Mutex<VecDeque<IntakeEvent>>,
    /// The node's latest safe commit positions, committed on revocation.
    safe: Mutex<Vec<(i32, i64)>>,
    /// Bumped by every rebalance callback: a new assignment starts unpaused.
    rebalances: AtomicUsize,
    topic: String,
}

/// Turns librdkafka callbacks into [`IntakeEvent`]s; never blocks (see the module docs).
pub struct IntakeContext {
    shared: Arc<Shared>,
}

impl ClientContext for IntakeContext {}

fn partitions_of(list: &TopicPartitionList) -> Vec<i32> {
    list.elements().iter().map(|e| e.partition()).collect()
}

impl ConsumerContext for IntakeContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(list) = rebalance else {
            return;
        };
        let revoked = partitions_of(list);
        let shared = &self.shared;
        shared.rebalances.fetch_add(1, Ordering::SeqCst);
        // Commit what is safe before the next owner reads from the committed offset.
        let safe: Vec<(i32, i64)> = lock(&shared.safe)
            .iter()
            .copied()
            .filter(|(p, _)| revoked.contains(p))
            .collect();
        if !safe.is_empty() {
            let result = commit_list(&shared.topic, &safe).and_then(|list| {
                consumer
                    .commit(&list, CommitMode::Sync)
                    .kafka("committing on revocation")
            });
            if let Err(err) = result {
                let _ = shared.channels.control.send(IntakeEvent::Error(format!(
                    "committing revoked partitions {revoked:?}: {err}"
                )));
            }
        }
        withdraw(shared, &revoked);
        let _ = shared.channels.control.send(IntakeEvent::Revoked(revoked));
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            // librdkafka keeps an application's pause across unassign and assign (it
            // resets only its own): a partition paused, revoked and assigned again would
            // never be fetched. Start every assignment unpaused; the poll loop pauses it
            // again if its backlog needs that.
            if let Err(err) = consumer.resume(list) {
                let _ = self
                    .shared
                    .channels
                    .control
                    .send(IntakeEvent::Error(format!(
                        "resuming newly assigned partitions: {err}"
                    )));
            }
            self.shared.rebalances.fetch_add(1, Ordering::SeqCst);
            let _ = self
                .shared
                .channels
                .control
                .send(IntakeEvent::Assigned(partitions_of(list)));
        }
    }
}

fn commit_thread_gone() -> TransportError {
    TransportError::Other("the intake's commit thread has stopped".into())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Removes the records of `revoked` partitions from the held queue and from the
/// channel (what the node has not taken yet), keeping the others in order.
fn withdraw(shared: &Shared, revoked: &[i32]) {
    let of_revoked = |event: &IntakeEvent| matches!(event, IntakeEvent::Record { partition, .. } if revoked.contains(partition));
    let mut held = lock(&shared.held);
    let mut kept = VecDeque::new();
    while let Ok(event) = shared.channels.records_rx.try_recv() {
        if let IntakeEvent::Record { payload, .. } = &event {
            shared.channels.bytes.give_back(payload.len());
        }
        if !of_revoked(&event) {
            kept.push_back(event);
        }
    }
    held.retain(|event| !of_revoked(event));
    // What was in the channel came before what was held.
    kept.append(&mut held);
    *held = kept;
}

fn commit_list(
    topic: &str,
    positions: &[(i32, i64)],
) -> Result<TopicPartitionList, TransportError> {
    let mut list = TopicPartitionList::new();
    for &(partition, offset) in positions {
        list.add_partition_offset(topic, partition, Offset::Offset(offset))
            .kafka("building commit list")?;
    }
    Ok(list)
}

type IntakeConsumer = BaseConsumer<IntakeContext>;

/// A commit for the commit thread; `done` waits for the outcome, else it goes to the
/// node as [`IntakeEvent::Committed`].
struct CommitRequest {
    positions: Vec<(i32, i64)>,
    done: Option<Sender<Result<(), TransportError>>>,
}

/// Serves commit requests until the intake is dropped (see the module docs).
fn commit_loop(consumer: &IntakeConsumer, shared: &Shared, requests: &Receiver<CommitRequest>) {
    while let Ok(mut request) = requests.recv() {
        // Only the newest position matters to the node: skip asynchronous requests that
        // a newer one replaced (a waited-for request is always served).
        while request.done.is_none() {
            match requests.try_recv() {
                Ok(next) => request = next,
                Err(_) => break,
            }
        }
        let result = commit_list(&shared.topic, &request.positions).and_then(|list| {
            consumer
                .commit(&list, CommitMode::Sync)
                .kafka(format!("committing offsets of `{}`", shared.topic))
        });
        match request.done {
            Some(done) => {
                let _ = done.send(result);
            }
            None => {
                let report = result
                    .map(|()| request.positions)
                    .map_err(|err| err.to_string());
                let _ = shared.channels.control.send(IntakeEvent::Committed(report));
            }
        }
    }
}

/// A running intake: a thread polling the consumer, plus a handle to commit offsets.
pub struct Intake {
    consumer: Arc<IntakeConsumer>,
    shared: Arc<Shared>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// To the commit thread, which ends when this is dropped.
    commits: Sender<CommitRequest>,
}

impl Intake {
    /// Starts consuming `topic` as a member of `group`; events go to `channels`.
    pub fn start(
        config: &KafkaConfig,
        topic: &str,
        group: &str,
        mode: IntakeMode,
        channels: IntakeChannels,
    ) -> Result<Self, TransportError> {
        let shared = Arc::new(Shared {
            channels,
            held: Mutex::new(VecDeque::new()),
            safe: Mutex::new(Vec::new()),
            rebalances: AtomicUsize::new(0),
            topic: topic.to_string(),
        });
        let consumer: IntakeConsumer = config
            .client(&[
                ("group.id", group),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                // A new group must not skip what was published before it existed.
                ("auto.offset.reset", "earliest"),
                ("enable.partition.eof", "false"),
                ("fetch.wait.max.ms", "50"),
                ("session.timeout.ms", "10000"),
                ("heartbeat.interval.ms", "1000"),
                // Transactions are small: a few MB of prefetch is plenty.
                ("queued.max.messages.kbytes", "8192"),
            ])
            .create_with_context(IntakeContext {
                shared: Arc::clone(&shared),
            })
            .kafka(format!(
                "creating consumer for `{topic}` in group `{group}`"
            ))?;
        match mode {
            IntakeMode::Group => consumer
                .subscribe(&[topic])
                .kafka(format!("subscribing to `{topic}`"))?,
            IntakeMode::Partition(p) => {
                let mut list = TopicPartitionList::new();
                list.add_partition_offset(topic, p, Offset::Stored)
                    .kafka("building assignment")?;
                consumer
                    .assign(&list)
                    .kafka(format!("assigning `{topic}` partition {p}"))?;
                let _ = shared.channels.control.send(IntakeEvent::Assigned(vec![p]));
            }
        }
        let consumer = Arc::new(consumer);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let consumer = Arc::clone(&consumer);
            let stop = Arc::clone(&stop);
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("intake".into())
                .spawn(move || poll_loop(&consumer, &shared, &stop, mode))
                .map_err(|e| TransportError::Other(format!("starting intake thread: {e}")))?
        };
        let (commits, requests) = crossbeam_channel::unbounded();
        {
            let consumer = Arc::clone(&consumer);
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("intake-commit".into())
                .spawn(move || commit_loop(&consumer, &shared, &requests))
                .map_err(|e| TransportError::Other(format!("starting commit thread: {e}")))?;
        }
        Ok(Intake {
            consumer,
            shared,
            stop,
            thread: Some(thread),
            commits,
        })
    }

    /// The node's current safe commit positions; committed by the revocation callback.
    pub fn set_safe_positions(&self, positions: &[(i32, i64)]) {
        let mut safe = lock(&self.shared.safe);
        safe.clear();
        safe.extend_from_slice(positions);
    }

    /// Commits, per partition, the offset of the next transaction not yet on the chain.
    /// An asynchronous commit's outcome arrives later as [`IntakeEvent::Committed`]; a
    /// synchronous one waits for it.
    pub fn commit(&self, positions: &[(i32, i64)], mode: CommitMode) -> Result<(), TransportError> {
        if positions.is_empty() {
            return Ok(());
        }
        match mode {
            CommitMode::Async => self.request(positions, None),
            CommitMode::Sync => {
                let (done_tx, done) = crossbeam_channel::bounded(1);
                self.request(positions, Some(done_tx))?;
                done.recv().unwrap_or_else(|_| Err(commit_thread_gone()))
            }
        }
    }

    /// A synchronous commit that gives up waiting after `timeout` (a commit against an
    /// unreachable broker can otherwise wait for a long time). Ok(false) on timeout.
    pub fn commit_sync_within(
        &self,
        positions: &[(i32, i64)],
        timeout: Duration,
    ) -> Result<bool, TransportError> {
        if positions.is_empty() {
            return Ok(true);
        }
        let (done_tx, done) = crossbeam_channel::bounded(1);
        self.request(positions, Some(done_tx))?;
        match done.recv_timeout(timeout) {
            Ok(result) => result.map(|()| true),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => Ok(false),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => Err(commit_thread_gone()),
        }
    }

    fn request(
        &self,
        positions: &[(i32, i64)],
        done: Option<Sender<Result<(), TransportError>>>,
    ) -> Result<(), TransportError> {
        self.commits
            .send(CommitRequest {
                positions: positions.to_vec(),
                done,
            })
            .map_err(|_| commit_thread_gone())
    }

    /// Offsets committed by the group for `partitions` (None where nothing is committed).
    pub fn committed(&self, partitions: &[i32]) -> Result<Vec<(i32, Option<i64>)>, TransportError> {
        read_committed(&self.consumer, &self.shared.topic, partitions)
    }

    /// Stops polling and leaves the group (so the group rebalances at once rather than
    /// waiting for a session timeout). Returns false if closing did not finish within
    /// `timeout`: against Tansu 0.6.0 librdkafka's close of a group consumer sometimes
    /// never completes, and a node must still be able to exit.
    pub fn close(mut self, timeout: Duration) -> bool {
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let consumer = Arc::clone(&self.consumer);
        self.stop.store(true, Ordering::SeqCst);
        let thread = self.thread.take();
        drop(self);
        let closer = std::thread::Builder::new()
            .name("intake-close".into())
            .spawn(move || {
                if let Some(thread) = thread {
                    let _ = thread.join();
                }
                consumer.unsubscribe();
                drop(consumer);
                let _ = done_tx.send(());
            });
        closer.is_ok() && done.recv_timeout(timeout).is_ok()
    }
}

impl Drop for Intake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
            self.consumer.unsubscribe();
        }
    }
}

/// Moves held records into the channel while they fit; false if the node is gone.
fn flush_held(shared: &Shared) -> bool {
    let mut held = lock(&shared.held);
    while let Some(event) = held.pop_front() {
        let len = match &event {
            IntakeEvent::Record { payload, .. } => payload.len(),
            _ => 0,
        };
        if !shared.channels.bytes.try_take(len) {
            held.push_front(event);
            return true;
        }
        match shared.channels.records.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(event)) => {
                shared.channels.bytes.give_back(len);
                held.push_front(event);
                return true;
            }
            Err(TrySendError::Disconnected(_)) => return false,
        }
    }
    true
}

/// Pauses or resumes the current assignment. An empty assignment (between a
/// revocation and the next assignment) is a success: the assignment callback starts
/// every new assignment unpaused. Errors are reported to the node.
fn set_paused(consumer: &IntakeConsumer, shared: &Shared, pause: bool) -> bool {
    let result = consumer.assignment().and_then(|assignment| {
        if assignment.count() == 0 {
            Ok(())
        } else if pause {
            consumer.pause(&assignment)
        } else {
            consumer.resume(&assignment)
        }
    });
    match result {
        Ok(()) => true,
        Err(err) => {
            let what = if pause { "pausing" } else { "resuming" };
            let _ = shared.channels.control.send(IntakeEvent::Error(format!(
                "{what} the transaction partitions: {err}"
            )));
            false
        }
    }
}

/// Re-assigns partition `p` at its committed offset (partition mode), unpaused (an
/// application's pause outlives an assignment in librdkafka).
fn reassign(consumer: &IntakeConsumer, topic: &str, p: i32) -> Result<(), TransportError> {
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, p, Offset::Stored)
        .kafka("building assignment")?;
    consumer
        .assign(&list)
        .kafka(format!("re-assigning `{topic}` partition {p}"))?;
    consumer
        .resume(&list)
        .kafka(format!("resuming `{topic}` partition {p}"))
}

/// The least time between two re-assignments of a partition whose start offset
/// could not be read (see [`poll_loop`]).
const REASSIGN_AFTER: Duration = Duration::from_secs(2);

/// Polls until `stop`. In partition mode a consumer error before the first record
/// after an assignment re-assigns the partition (at most every [`REASSIGN_AFTER`]):
/// librdkafka 2.12 reads the committed offset of an assigned partition once, and if
/// that read fails (the broker restarting: `NotCoordinator`) it never fetches the
/// partition at all, so a node started during a broker restart would take in nothing.
/// Nothing was polled yet, so re-reading the committed offset skips nothing.
fn poll_loop(consumer: &IntakeConsumer, shared: &Shared, stop: &AtomicBool, mode: IntakeMode) {
    let mut paused = false;
    let mut paused_at = 0usize;
    let mut polled_since_assign = false;
    let mut assigned_at = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if !flush_held(shared) {
            return;
        }
        let backlog = !lock(&shared.held).is_empty();
        // A rebalance gives a new assignment, unpaused: pause it again if need be.
        let rebalances = shared.rebalances.load(Ordering::SeqCst);
        if backlog && (!paused || rebalances != paused_at) {
            // A failed pause only lets more records into `held`; nothing is lost.
            set_paused(consumer, shared, true);
            paused = true;
            paused_at = rebalances;
        } else if !backlog && paused {
            // A failed resume is tried again on the next turn: a partition left
            // paused would never be read again.
            paused = !set_paused(consumer, shared, false);
        }
        let timeout = Duration::from_millis(if backlog { 20 } else { 100 });
        let event = match consumer.poll(timeout) {
            None => continue,
            Some(Ok(message)) => IntakeEvent::Record {
                partition: message.partition(),
                offset: message.offset(),
                payload: message.payload().unwrap_or_default().to_vec(),
            },
            Some(Err(KafkaError::PartitionEOF(_))) => continue,
            Some(Err(err)) => {
                let _ = shared
                    .channels
                    .control
                    .send(IntakeEvent::Error(err.to_string()));
                if let IntakeMode::Partition(p) = mode {
                    if !polled_since_assign && assigned_at.elapsed() >= REASSIGN_AFTER {
                        assigned_at = std::time::Instant::now();
                        let what = match reassign(consumer, &shared.topic, p) {
                            Ok(()) => format!(
                                "nothing read from partition {p} yet after a consumer error; \
                                 re-assigned it at its committed offset"
                            ),
                            Err(e) => format!("re-assigning partition {p}: {e}"),
                        };
                        let _ = shared.channels.control.send(IntakeEvent::Error(what));
                    }
                }
                continue;
            }
        };
        polled_since_assign = true;
        lock(&shared.held).push_back(event);
    }
}
