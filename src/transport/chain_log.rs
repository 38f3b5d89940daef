//! Reading the chain topic: one partition, in offset order, from any offset.
//!
//! Every node reads the same records in the same order, which is what makes the
//! replay deterministic. The reader has no consumer group: a node's chain position is
//! derived from the chain itself on each start, never from a committed offset.
//!
//! The reader never skips: `auto.offset.reset` is `error`, so if the topic is truncated
//! (retention, DeleteRecords) or deleted and recreated under a reader, the next poll
//! fails with [`TransportError::ChainTruncated`] instead of jumping to the end.
//!
//! Memory: librdkafka prefetches at most [`PREFETCH_KBYTES`] KiB (plus one fetch
//! response of at most [`FETCH_MAX_BYTES`]); a batch from [`ChainLog::poll_batch_within`]
//! holds at most its byte limit plus one record.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::{KafkaConfig, KafkaResultExt, TransportError, BROKER_TIMEOUT};

/// The only partition of the chain topic.
pub const CHAIN_PARTITION: i32 = 0;

/// librdkafka's prefetch queue for the chain topic (`queued.max.messages.kbytes`).
pub const PREFETCH_KBYTES: usize = 16 * 1024;
/// Largest fetch response (`fetch.max.bytes`); a single larger record still comes.
pub const FETCH_MAX_BYTES: usize = 16 * 1024 * 1024;

/// One record of the chain topic.
#[derive(Clone, Debug)]
pub struct ChainRecord {
    pub offset: i64,
    pub payload: Vec<u8>,
}

/// An ordered reader of the chain topic.
pub struct ChainLog {
    consumer: BaseConsumer,
    topic: String,
}

impl ChainLog {
    /// Opens the chain topic at `from` (0 = the genesis record).
    pub fn open(config: &KafkaConfig, topic: &str, from: i64) -> Result<Self, TransportError> {
        let prefetch = PREFETCH_KBYTES.to_string();
        let fetch_max = FETCH_MAX_BYTES.to_string();
        let consumer: BaseConsumer = config
            .client(&[
                // Never joined and never committed to: librdkafka's assign() refuses a
                // consumer without a group.id. A secured broker grants readers only
                // Describe on it, for the coordinator lookup (docs/operations.md).
                ("group.id", "kafkachain-chain-reader"),
                ("enable.auto.commit", "false"),
                ("enable.auto.offset.store", "false"),
                ("enable.partition.eof", "false"),
                // Never jump: a missing offset is an error the node must report.
                ("auto.offset.reset", "error"),
                // Followers must see a rival's block quickly to cancel their own mining.
                // Tansu 0.6.0 answers a fetch only when this wait expires, even when data
                // arrives sooner, so the wait is on every block's critical path: 20 ms
                // gave 0.53 of the baseline in `kafkachain bench`, 5 ms 0.65, 1 ms 0.68
                // (for more broker CPU). A real Kafka answers as soon as data arrives.
                ("fetch.wait.max.ms", "5"),
                ("fetch.min.bytes", "1"),
                // Replays read long runs of blocks: prefetch, within a stated bound.
                ("queued.max.messages.kbytes", &prefetch),
                ("fetch.max.bytes", &fetch_max),
                ("max.partition.fetch.bytes", &fetch_max),
            ])
            .create()
            .kafka("creating chain-topic consumer")?;
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(topic, CHAIN_PARTITION, Offset::Offset(from))
            .kafka("building chain-topic assignment")?;
        consumer
            .assign(&assignment)
            .kafka(format!("assigning chain topic `{topic}`"))?;
        Ok(ChainLog {
            consumer,
            topic: topic.to_string(),
        })
    }

    /// The offset the next published block will get (the high watermark).
    pub fn end_offset(&self) -> Result<i64, TransportError> {
        let (_, high) = self
            .consumer
            .fetch_watermarks(&self.topic, CHAIN_PARTITION, BROKER_TIMEOUT)
            .kafka(format!(
                "reading end offset of chain topic `{}`",
                self.topic
            ))?;
        Ok(high)
    }

    /// Fails with [`TransportError::ChainTopicPartitions`] unless the chain topic has
    /// exactly one partition (someone may add partitions to a running ledger).
    pub fn check_single_partition(&self, timeout: Duration) -> Result<(), TransportError> {
        let metadata = self
            .consumer
            .fetch_metadata(Some(&self.topic), timeout)
            .kafka(format!("reading metadata of chain topic `{}`", self.topic))?;
        let partitions = metadata
            .topics()
            .iter()
            .find(|t| t.name() == self.topic)
            .map_or(0, |t| t.partitions().len());
        if partitions > 1 {
            return Err(TransportError::ChainTopicPartitions {
                topic: self.topic.clone(),
                partitions,
            });
        }
        Ok(())
    }

    /// Waits up to `timeout` for the next record.
    pub fn poll(&self, timeout: Duration) -> Result<Option<ChainRecord>, TransportError> {
        match self.consumer.poll(timeout) {
            None => Ok(None),
            Some(Ok(message)) => Ok(Some(ChainRecord {
                offset: message.offset(),
                payload: message.payload().unwrap_or_default().to_vec(),
            })),
            Some(Err(KafkaError::PartitionEOF(_))) => Ok(None),
            Some(Err(
                err @ KafkaError::MessageConsumption(
                    RDKafkaErrorCode::AutoOffsetReset | RDKafkaErrorCode::OffsetOutOfRange,
                ),
            )) => Err(TransportError::ChainTruncated {
                topic: self.topic.clone(),
                detail: err.to_string(),
            }),
            Some(Err(err)) => Err(TransportError::Kafka {
                what: format!("reading chain topic `{}`", self.topic),
                source: err,
            }),
        }
    }

    /// Appends up to `max` records that are already fetched (waiting at most `timeout`
    /// for the first) to `out`; returns how many were added.
    pub fn poll_batch(
        &self,
        max: usize,
        timeout: Duration,
        out: &mut Vec<ChainRecord>,
    ) -> Result<usize, TransportError> {
        self.poll_batch_within(max, usize::MAX, timeout, out)
    }

    /// [`ChainLog::poll_batch`], also stopping once the batch holds `max_bytes` of
    /// payload (a batch always takes at least one record, whatever its size).
    pub fn poll_batch_within(
        &self,
        max: usize,
        max_bytes: usize,
        timeout: Duration,
        out: &mut Vec<ChainRecord>,
    ) -> Result<usize, TransportError> {
        let mut added = 0;
        let mut bytes = 0usize;
        let mut wait = timeout;
        while added < max && bytes < max_bytes {
            match self.poll(wait)? {
                Some(record) => {
                    bytes = bytes.saturating_add(record.payload.len());
                    out.push(record);
                    added += 1;
                    wait = Duration::ZERO;
                }
                None => break,
            }
        }
        Ok(added)
    }
}

/// The records from `from` up to the end offset seen when it was opened, in order.
/// Yields an error (and then ends) rather than hanging when the broker delivers nothing
/// for `stall`.
pub struct ToEnd {
    log: ChainLog,
    topic: String,
    next: i64,
    end: i64,
    stall: Duration,
    last_progress: std::time::Instant,
}

impl ToEnd {
    pub fn open(
        config: &KafkaConfig,
        topic: &str,
        from: i64,
        stall: Duration,
    ) -> Result<Self, TransportError> {
        let log = ChainLog::open(config, topic, from)?;
        let end = log.end_offset()?;
        Ok(ToEnd {
            log,
            topic: topic.to_string(),
            next: from,
            end,
            stall,
            last_progress: std::time::Instant::now(),
        })
    }

    /// The end offset this reader stops at.
    pub fn end(&self) -> i64 {
        self.end
    }
}

impl Iterator for ToEnd {
    type Item = Result<ChainRecord, TransportError>;

    fn next(&mut self) -> Option<Self::Item> {
        while self.next < self.end {
            let failed = match self.log.poll(Duration::from_millis(200)) {
                Ok(Some(record)) => {
                    self.next = record.offset + 1;
                    self.last_progress = std::time::Instant::now();
                    return Some(Ok(record));
                }
                Ok(None) if self.last_progress.elapsed() > self.stall => {
                    TransportError::Other(format!(
                        "chain topic `{}` stopped delivering at offset {} of {}",
                        self.topic, self.next, self.end
                    ))
                }
                Ok(None) => continue,
                Err(err) => err,
            };
            self.next = self.end;
            return Some(Err(failed));
        }
        None
    }
}

/// Reads every record from `from` up to the end offset seen at the start and hands each
/// to `visit`; returns that end offset.
pub fn read_to_end(
    config: &KafkaConfig,
    topic: &str,
    from: i64,
    stall: Duration,
    mut visit: impl FnMut(ChainRecord),
) -> Result<i64, TransportError> {
    let mut records = ToEnd::open(config, topic, from, stall)?;
    for record in records.by_ref() {
        visit(record?);
    }
    Ok(records.end())
}
