//! Producers. The node's and the CLI's are idempotent with `acks=all`: a retried send
//! never duplicates a record, and an acknowledged record survives the loss of a broker
//! (with replication). The benchmark's load generator ([`Profile::Load`]) is not
//! idempotent and never retries: see there why.

use std::time::Duration;

use crossbeam_channel::Sender;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{
    BaseRecord, DeliveryResult, NoCustomPartitioner, Producer, ProducerContext, ThreadedProducer,
};
use rdkafka::ClientContext;

use super::{KafkaConfig, KafkaResultExt, TransportError};

/// The broker's answer for one record.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The caller's tag given to [`Publisher::send`].
    pub tag: u64,
    /// Where the record landed, or why it did not.
    pub result: Result<(i32, i64), String>,
    /// The record was refused for its size (by librdkafka or the broker): sending it
    /// again can never succeed; a smaller one might.
    pub too_large: bool,
}

/// Forwards delivery reports to a channel (when one is given).
pub struct DeliveryContext {
    reports: Option<Sender<Delivery>>,
}

impl ClientContext for DeliveryContext {}

impl ProducerContext<NoCustomPartitioner> for DeliveryContext {
    type DeliveryOpaque = Box<u64>;

    fn delivery(&self, result: &DeliveryResult<'_>, tag: Self::DeliveryOpaque) {
        let (result, too_large) = match result {
            Ok(message) => (Ok((message.partition(), message.offset())), false),
            Err((err, _)) => (Err(err.to_string()), is_too_large(err)),
        };
        if let Some(reports) = &self.reports {
            // The receiver may be gone during shutdown; nothing to do then.
            let _ = reports.send(Delivery {
                tag: *tag,
                result,
                too_large,
            });
        }
    }
}

/// True if `err` says a record is too large for the producer or the broker.
pub fn is_too_large(err: &KafkaError) -> bool {
    matches!(
        err.rdkafka_error_code(),
        Some(RDKafkaErrorCode::MessageSizeTooLarge | RDKafkaErrorCode::MessageBatchTooLarge)
    )
}

/// The producers' `message.max.bytes` unless overridden with `-X`: the largest record
/// librdkafka accepts (checked on the uncompressed record, before sending).
pub const DEFAULT_MESSAGE_MAX_BYTES: usize = 10_000_000;

/// Which kind of records a publisher sends; sets batching for latency or throughput.
#[derive(Clone, Copy, Debug)]
pub enum Profile {
    /// Blocks: every millisecond before a block is on the chain is a millisecond in
    /// which a rival can win the race, so send at once.
    Blocks,
    /// Transactions: many small records, batched.
    Transactions,
    /// A load generator's transactions (`kafkachain bench`): batched like
    /// `Transactions`, but not idempotent, never retried, one request in flight.
    ///
    /// librdkafka 2.12's idempotent producer caps its produce requests in flight per
    /// partition at 5 minus the *records* in flight (`rd_kafka_toppar_producer_serve`
    /// compares `rktp_msgs_inflight` with `RD_KAFKA_IDEMP_MAX_INFLIGHT`; upstream PR
    /// confluentinc/librdkafka#4989 is open). Once a request holds 5 records it sends
    /// nothing more on that partition until the answer comes, and while it waits its
    /// broker thread calls `poll(…, 0)` in a loop: at 5,300 tx/s against Tansu the
    /// bench's producer used a whole core of this 2-core machine, which the broker and
    /// the nodes it measures did not get. A load generator must not do that.
    /// Not idempotent, it does not spin. One request in flight batches as much as the
    /// broker's answer time allows (with no limit, a request of ~13 records every 5 ms
    /// per partition kept Tansu, which runs its storage work one request at a time,
    /// behind a rate the ledger carries otherwise: BENCHMARKS.md). With no retries
    /// nothing is duplicated or reordered, and a failed send fails the run (the ledger
    /// run checks every delivery report; the baseline's reader gives up on a record
    /// that never comes).
    Load,
}

/// A background producer for one topic.
pub struct Publisher {
    producer: ThreadedProducer<DeliveryContext>,
    topic: String,
    max_message_bytes: usize,
}

impl Publisher {
    pub fn new(
        config: &KafkaConfig,
        topic: &str,
        profile: Profile,
        reports: Option<Sender<Delivery>>,
    ) -> Result<Self, TransportError> {
        let max = DEFAULT_MESSAGE_MAX_BYTES.to_string();
        let mut settings = profile_settings(profile);
        settings.push(("message.max.bytes", max.as_str()));
        let client = config.client(&settings);
        let max_message_bytes = client
            .get("message.max.bytes")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES);
        let producer = client
            .create_with_context(DeliveryContext { reports })
            .kafka(format!("creating producer for topic `{topic}`"))?;
        Ok(Publisher {
            producer,
            topic: topic.to_string(),
            max_message_bytes,
        })
    }

    /// Queues one record; blocks while librdkafka's queue is full.
    pub fn send(
        &self,
        tag: u64,
        partition: Option<i32>,
        payload: &[u8],
    ) -> Result<(), TransportError> {
        let mut record =
            BaseRecord::<(), [u8], Box<u64>>::with_opaque_to(&self.topic, Box::new(tag))
                .payload(payload);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    record = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((err, _)) => {
                    return Err(TransportError::Kafka {
                        what: format!("sending to topic `{}`", self.topic),
                        source: err,
                    })
                }
            }
        }
    }

    /// Waits until every queued record is acknowledged (or `timeout` passes).
    pub fn flush(&self, timeout: Duration) -> Result<(), TransportError> {
        self.producer
            .flush(timeout)
            .kafka(format!("flushing producer for topic `{}`", self.topic))
    }

    /// The producer's `message.max.bytes` (ours, or the operator's `-X` override).
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Records still waiting for the broker's acknowledgement.
    pub fn in_flight(&self) -> i32 {
        self.producer.in_flight_count()
    }
}

/// The producer settings of a profile (before the operator's `-X` overrides).
fn profile_settings(profile: Profile) -> Vec<(&'static str, &'static str)> {
    // Blocks are large, repetitive JSON read by every node: compressing them cuts
    // the bytes the broker writes and serves several-fold (lz4 is built into
    // librdkafka). Transactions are tiny and stay uncompressed, as a client sends them.
    let (linger, compression) = match profile {
        Profile::Blocks => ("0", "lz4"),
        Profile::Transactions | Profile::Load => ("5", "none"),
    };
    let mut settings = vec![
        ("acks", "all"),
        ("linger.ms", linger),
        ("compression.type", compression),
    ];
    match profile {
        Profile::Blocks | Profile::Transactions => settings.push(("enable.idempotence", "true")),
        Profile::Load => settings.extend([
            ("enable.idempotence", "false"),
            ("retries", "0"),
            ("max.in.flight.requests.per.connection", "1"),
        ]),
    }
    settings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setting(profile: Profile, key: &str) -> Option<&'static str> {
        profile_settings(profile)
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    #[test]
    fn blocks_and_transactions_are_sent_idempotently_with_acks_all() {
        for profile in [Profile::Blocks, Profile::Transactions] {
            assert_eq!(setting(profile, "enable.idempotence"), Some("true"));
            assert_eq!(setting(profile, "acks"), Some("all"));
        }
    }

    /// librdkafka's idempotent producer spins a core against a slow broker (see
    /// [`Profile::Load`]); the bench must measure without it, and without duplicates.
    #[test]
    fn the_load_generator_is_not_idempotent_never_retries_and_keeps_one_request_in_flight() {
        assert_eq!(setting(Profile::Load, "enable.idempotence"), Some("false"));
        assert_eq!(setting(Profile::Load, "retries"), Some("0"));
        assert_eq!(
            setting(Profile::Load, "max.in.flight.requests.per.connection"),
            Some("1")
        );
        assert_eq!(setting(Profile::Load, "acks"), Some("all"));
    }
}
