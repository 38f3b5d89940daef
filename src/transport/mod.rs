//! Kafka transport: everything in kafkachain that talks to a broker.
//!
//! - [`config`]: bootstrap address plus librdkafka settings passed through (`-X key=value`).
//! - [`topics`]: creating and describing the transactions and chain topics.
//! - [`chain_log`]: reading the single-partition chain topic in order, from any offset.
//! - [`intake`]: consuming transactions, from one partition or as a consumer-group member.
//! - [`publish`]: idempotent, `acks=all` producers for blocks and transactions.
//! - [`submit`]: one awaitable transaction send (for the HTTP API).
//!
//! Nothing here knows the chain rules; records leave this module as bytes with their
//! partition and offset.

pub mod chain_log;
pub mod config;
pub mod intake;
pub mod publish;
pub mod submit;
pub mod topics;

pub use config::KafkaConfig;
pub use topics::TopicNames;

use std::time::Duration;

/// How long one metadata or admin round trip may take before we call the broker unreachable.
pub const BROKER_TIMEOUT: Duration = Duration::from_secs(15);

/// Errors from the Kafka transport. Each variant says what was being done.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{what}: {source}")]
    Kafka {
        what: String,
        #[source]
        source: rdkafka::error::KafkaError,
    },
    #[error(
        "chain topic `{topic}` has {partitions} partitions; the chain needs exactly one \
         (Kafka orders records only within a partition)"
    )]
    ChainTopicPartitions { topic: String, partitions: usize },
    #[error("topic `{0}` does not exist")]
    MissingTopic(String),
    #[error("invalid librdkafka setting `{0}`: expected key=value")]
    BadSetting(String),
    #[error("{0}")]
    Other(String),
}

/// Adds context to rdkafka errors in one call: `.kafka("fetching watermarks")?`.
pub(crate) trait KafkaResultExt<T> {
    fn kafka(self, what: impl Into<String>) -> Result<T, TransportError>;
}

impl<T> KafkaResultExt<T> for rdkafka::error::KafkaResult<T> {
    fn kafka(self, what: impl Into<String>) -> Result<T, TransportError> {
        self.map_err(|source| TransportError::Kafka {
            what: what.into(),
            source,
        })
    }
}
