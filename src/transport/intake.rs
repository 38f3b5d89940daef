//! Consuming the transactions topic.
//!
//! Two modes: the tutorial's (this node owns one partition) and a consumer group that
//! spreads the partitions over the running nodes. Either way offsets are committed
//! only when the node says so — after the transactions are on the chain — so a crash
//! loses nothing: the next owner re-reads from the last commit and skips what the chain
//! already holds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::Sender;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

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

/// Turns librdkafka rebalance callbacks into [`IntakeEvent`]s.
pub struct IntakeContext {
    events: Sender<IntakeEvent>,
}

impl ClientContext for IntakeContext {}

fn partitions_of(list: &TopicPartitionList) -> Vec<i32> {
    list.elements().iter().map(|e| e.partition()).collect()
}

impl ConsumerContext for IntakeContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            let _ = self.events.send(IntakeEvent::Revoked(partitions_of(list)));
        }
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            let _ = self.events.send(IntakeEvent::Assigned(partitions_of(list)));
        }
    }
}

type IntakeConsumer = BaseConsumer<IntakeContext>;

/// A running intake: a thread polling the consumer, plus a handle to commit offsets.
pub struct Intake {
    consumer: Arc<IntakeConsumer>,
    topic: String,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Intake {
    /// Starts consuming `topic` as a member of `group`; events go to `events`.
    pub fn start(
        config: &KafkaConfig,
        topic: &str,
        group: &str,
        mode: IntakeMode,
        events: Sender<IntakeEvent>,
    ) -> Result<Self, TransportError> {
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
            ])
            .create_with_context(IntakeContext {
                events: events.clone(),
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
                let _ = events.send(IntakeEvent::Assigned(vec![p]));
            }
        }
        let consumer = Arc::new(consumer);
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let consumer = Arc::clone(&consumer);
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name("intake".into())
                .spawn(move || poll_loop(&consumer, &events, &stop))
                .map_err(|e| TransportError::Other(format!("starting intake thread: {e}")))?
        };
        Ok(Intake {
            consumer,
            topic: topic.to_string(),
            stop,
            thread: Some(thread),
        })
    }

    /// Commits, per partition, the offset of the next transaction not yet on the chain.
    pub fn commit(&self, positions: &[(i32, i64)], mode: CommitMode) -> Result<(), TransportError> {
        if positions.is_empty() {
            return Ok(());
        }
        let mut list = TopicPartitionList::new();
        for &(partition, offset) in positions {
            list.add_partition_offset(&self.topic, partition, Offset::Offset(offset))
                .kafka("building commit list")?;
        }
        self.consumer
            .commit(&list, mode)
            .kafka(format!("committing offsets of `{}`", self.topic))
    }

    /// Offsets committed by the group for `partitions` (None where nothing is committed).
    pub fn committed(&self, partitions: &[i32]) -> Result<Vec<(i32, Option<i64>)>, TransportError> {
        let mut list = TopicPartitionList::new();
        for &p in partitions {
            list.add_partition(&self.topic, p);
        }
        let committed = self
            .consumer
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

    /// Stops polling and leaves the group (so the group rebalances at once rather than
    /// waiting for a session timeout). Returns false if closing did not finish within
    /// `timeout`: against Tansu 0.6.0 librdkafka's close of a group consumer sometimes
    /// never completes, and a node must still be able to exit.
    pub fn close(mut self, timeout: Duration) -> bool {
        self.shutdown();
        let consumer = Arc::clone(&self.consumer);
        drop(self);
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let closer = std::thread::Builder::new()
            .name("intake-close".into())
            .spawn(move || {
                drop(consumer);
                let _ = done_tx.send(());
            });
        closer.is_ok() && done.recv_timeout(timeout).is_ok()
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
            self.consumer.unsubscribe();
        }
    }
}

impl Drop for Intake {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn poll_loop(consumer: &IntakeConsumer, events: &Sender<IntakeEvent>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        let event = match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Ok(message)) => IntakeEvent::Record {
                partition: message.partition(),
                offset: message.offset(),
                payload: message.payload().unwrap_or_default().to_vec(),
            },
            Some(Err(KafkaError::PartitionEOF(_))) => continue,
            Some(Err(err)) => IntakeEvent::Error(err.to_string()),
        };
        if events.send(event).is_err() {
            return;
        }
    }
}
