//! Kafka transport: everything in kafkachain that talks to a broker.
//!
//! - [`config`]: bootstrap address plus librdkafka settings passed through (`-X key=value`).
//! - [`topics`]: creating and describing the transactions and chain topics.
//! - [`chain_log`]: reading the single-partition chain topic in order, from any offset.
//! - [`intake`]: consuming transactions, from one partition or as a consumer-group member.
//! - [`publish`]: idempotent, `acks=all` producers for blocks and transactions.
//! - [`budget`]: byte budgets for the queues between reader threads and the node.
//! - [`submit`]: one awaitable transaction send (for the HTTP API).
//! - [`retry`]: retrying start-up round trips with backoff while the broker is away.
//!
//! Nothing here knows the chain rules; records leave this module as bytes with their
//! partition and offset.

pub mod budget;
pub mod chain_log;
pub mod config;
pub mod intake;
pub mod publish;
pub mod retry;
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
    #[error(
        "chain topic `{topic}` is not kept forever: {problem}. Every node replays the \
         whole chain, so a broker that deletes or compacts blocks loses the ledger. \
         Fix it with: {fix}"
    )]
    UnsafeChainTopic {
        topic: String,
        problem: String,
        fix: String,
    },
    #[error(
        "chain topic `{topic}` was truncated or recreated under this node: {detail}; \
         a fresh replay would not reach this node's tip, so it stops rather than skip \
         records (check the topic's retention, or whether it was deleted)"
    )]
    ChainTruncated { topic: String, detail: String },
    #[error("topic `{0}` does not exist")]
    MissingTopic(String),
    #[error("invalid librdkafka setting `{0}`: expected key=value")]
    BadSetting(String),
    #[error("{0}")]
    Other(String),
}

impl TransportError {
    /// True for errors that no retry can cure: the chain topic is not what it was.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            TransportError::ChainTruncated { .. } | TransportError::ChainTopicPartitions { .. }
        )
    }

    /// True for errors that waiting for the broker cannot cure: the chain topic is
    /// unsafe or not what it was, a setting is invalid, a topic is missing, or the
    /// client cannot even be created. Everything else (a broker down, restarting or
    /// electing a leader; a timeout) may pass, and [`retry`] retries it.
    pub fn is_permanent(&self) -> bool {
        match self {
            TransportError::Kafka { source, .. } => matches!(
                source,
                rdkafka::error::KafkaError::ClientCreation(_)
                    | rdkafka::error::KafkaError::ClientConfig(..)
            ),
            TransportError::Other(_) => false,
            TransportError::ChainTopicPartitions { .. }
            | TransportError::UnsafeChainTopic { .. }
            | TransportError::ChainTruncated { .. }
            | TransportError::MissingTopic(_)
            | TransportError::BadSetting(_) => true,
        }
    }

    /// True if a record was refused for its size (see [`publish::is_too_large`]).
    pub fn is_too_large(&self) -> bool {
        matches!(self, TransportError::Kafka { source, .. } if publish::is_too_large(source))
    }
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
