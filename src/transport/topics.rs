//! The two topics of a ledger: transactions (any number of partitions) and the chain
//! (exactly one partition, kept forever, because Kafka's order within that partition
//! *is* the consensus).
//!
//! Retention: the chain topic keeps everything forever (`retention.ms=-1`,
//! `retention.bytes=-1`). A transactions topic created here keeps records for
//! [`TX_RETENTION_MS`] (7 days) whatever the broker's default: a transaction must stay
//! readable until some node has put it on the chain, so a ledger whose nodes are down
//! for longer than that loses what was submitted meanwhile. Topics that already exist
//! keep their configuration.

use std::time::Duration;

use futures_executor::block_on;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

use super::{KafkaConfig, KafkaResultExt, TransportError, BROKER_TIMEOUT};

/// Retention of a transactions topic created by kafkachain: 7 days.
pub const TX_RETENTION_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// Kafka's default `max.message.bytes` (1 MiB + 12 bytes of batch overhead): assumed
/// for the chain topic when the broker does not report the topic's own value.
pub const DEFAULT_TOPIC_MAX_MESSAGE_BYTES: usize = 1_048_588;

/// Topic names and the partition count used when creating the transactions topic.
#[derive(Clone, Debug)]
pub struct TopicNames {
    pub transactions: String,
    pub chain: String,
    pub tx_partitions: i32,
}

impl Default for TopicNames {
    fn default() -> Self {
        TopicNames {
            transactions: "transactions".into(),
            chain: "blockchain".into(),
            tx_partitions: 2,
        }
    }
}

/// One partition of a topic and its offsets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: i32,
    pub low: i64,
    pub high: i64,
}

/// A topic as the broker describes it.
#[derive(Clone, Debug)]
pub struct TopicInfo {
    pub name: String,
    pub partitions: Vec<PartitionInfo>,
}

impl TopicInfo {
    /// Records currently held (high minus low watermark, summed over partitions).
    pub fn records(&self) -> i64 {
        self.partitions.iter().map(|p| p.high - p.low).sum()
    }
}

/// Creates both topics if missing, then checks that the chain topic has exactly one partition.
pub fn ensure_topics(config: &KafkaConfig, names: &TopicNames) -> Result<(), TransportError> {
    let admin: AdminClient<DefaultClientContext> = config
        .client(&[])
        .create()
        .kafka("creating Kafka admin client")?;
    let probe = metadata_client(config)?;
    let partitions = names.tx_partitions.max(1);
    let retention = TX_RETENTION_MS.to_string();
    create_if_missing(
        &admin,
        &probe,
        &names.transactions,
        partitions,
        &[("retention.ms", &retention)],
    )?;
    create_if_missing(
        &admin,
        &probe,
        &names.chain,
        1,
        // The chain is the ledger: never let the broker delete it.
        &[("retention.ms", "-1"), ("retention.bytes", "-1")],
    )?;
    let chain = describe_with(&probe, &names.chain)?;
    if chain.partitions.len() != 1 {
        return Err(TransportError::ChainTopicPartitions {
            topic: names.chain.clone(),
            partitions: chain.partitions.len(),
        });
    }
    Ok(())
}

fn create_if_missing(
    admin: &AdminClient<DefaultClientContext>,
    probe: &BaseConsumer,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Result<(), TransportError> {
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(-1));
    for (key, value) in configs {
        topic = topic.set(key, value);
    }
    let options = AdminOptions::new().operation_timeout(Some(BROKER_TIMEOUT));
    let results = block_on(admin.create_topics([&topic], &options))
        .kafka(format!("creating topic `{name}`"))?;
    for result in results {
        match result {
            Ok(_) => tracing::info!(topic = name, partitions, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                return Err(TransportError::Other(format!(
                    "creating topic `{name}` with {partitions} partition(s): {code}"
                )))
            }
        }
    }
    // Creation is asynchronous on some brokers: wait until metadata shows the topic.
    let deadline = std::time::Instant::now() + BROKER_TIMEOUT;
    loop {
        let metadata = probe
            .fetch_metadata(Some(name), BROKER_TIMEOUT)
            .kafka(format!("reading metadata of topic `{name}`"))?;
        let ready = metadata
            .topics()
            .iter()
            .any(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty());
        if ready {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            return Err(TransportError::MissingTopic(name.to_string()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A topic's `max.message.bytes` as the broker reports it (None if it does not).
pub fn max_message_bytes(
    config: &KafkaConfig,
    topic: &str,
) -> Result<Option<usize>, TransportError> {
    topic_config(config, topic, "max.message.bytes")
        .map(|value| value.and_then(|v| v.trim().parse().ok()))
}

/// One configuration value of a topic (DescribeConfigs), None if not reported.
pub fn topic_config(
    config: &KafkaConfig,
    topic: &str,
    key: &str,
) -> Result<Option<String>, TransportError> {
    let admin: AdminClient<DefaultClientContext> = config
        .client(&[])
        .create()
        .kafka("creating Kafka admin client")?;
    let options = AdminOptions::new().request_timeout(Some(BROKER_TIMEOUT));
    let results = block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &options))
        .kafka(format!("describing the configuration of topic `{topic}`"))?;
    for result in results {
        match result {
            Ok(resource) => {
                if let Some(entry) = resource.get(key) {
                    return Ok(entry.value.clone());
                }
            }
            Err(code) => {
                return Err(TransportError::Other(format!(
                    "describing the configuration of topic `{topic}`: {code}"
                )))
            }
        }
    }
    Ok(None)
}

/// Partitions and watermarks of one topic.
pub fn describe_topic(config: &KafkaConfig, name: &str) -> Result<TopicInfo, TransportError> {
    let consumer = metadata_client(config)?;
    describe_with(&consumer, name)
}

pub fn metadata_client(config: &KafkaConfig) -> Result<BaseConsumer, TransportError> {
    config
        .client(&[("enable.auto.commit", "false")])
        .create()
        .kafka("creating Kafka metadata client")
}

/// Partitions and watermarks of one topic, with an existing metadata client.
pub fn describe_with(consumer: &BaseConsumer, name: &str) -> Result<TopicInfo, TransportError> {
    let metadata = consumer
        .fetch_metadata(Some(name), BROKER_TIMEOUT)
        .kafka(format!("reading metadata of topic `{name}`"))?;
    let topic = metadata
        .topics()
        .iter()
        .find(|t| t.name() == name)
        .filter(|t| t.error().is_none() && !t.partitions().is_empty())
        .ok_or_else(|| TransportError::MissingTopic(name.to_string()))?;
    let mut partitions = Vec::new();
    for p in topic.partitions() {
        let (low, high) = consumer
            .fetch_watermarks(name, p.id(), BROKER_TIMEOUT)
            .kafka(format!("reading offsets of `{name}` partition {}", p.id()))?;
        partitions.push(PartitionInfo {
            partition: p.id(),
            low,
            high,
        });
    }
    partitions.sort_by_key(|p| p.partition);
    Ok(TopicInfo {
        name: name.to_string(),
        partitions,
    })
}
