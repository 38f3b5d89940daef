//! The two topics of a ledger: transactions (any number of partitions) and the chain
//! (exactly one partition, kept forever, because Kafka's order within that partition
//! *is* the consensus).
//!
//! Safety of the chain topic, checked every time a node starts ([`ensure_topics`]):
//! - created here with replication factor min(3, brokers) and, when replicated,
//!   `min.insync.replicas=2`, so an acknowledged (`acks=all`) block is on two brokers;
//! - `retention.ms=-1`, `retention.bytes=-1` and no compaction: a broker that deletes
//!   or compacts old blocks silently rewrites history for every node that replays
//!   later. An existing chain topic configured that way is refused with the command
//!   that fixes it ([`TransportError::UnsafeChainTopic`]). Brokers that do not report
//!   a setting (Tansu keeps everything) pass.
//!
//! Retention: the chain topic keeps everything forever (`retention.ms=-1`,
//! `retention.bytes=-1`). A transactions topic created here keeps records for
//! [`TX_RETENTION_MS`] (7 days) whatever the broker's default: a transaction must stay
//! readable until some node has put it on the chain, so a ledger whose nodes are down
//! for longer than that loses what was submitted meanwhile. Topics that already exist
//! keep their configuration.
//!
//! On a secured cluster only an operator may create topics: a principal refused
//! creation (`TopicAuthorizationFailed`) goes on when the topic exists, and otherwise
//! gets an error saying that an operator must create it.

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

/// Creates both topics if missing (replicated as [`replication_for`] says), then checks
/// that the chain topic has exactly one partition and keeps its records forever.
pub fn ensure_topics(config: &KafkaConfig, names: &TopicNames) -> Result<(), TransportError> {
    let admin: AdminClient<DefaultClientContext> = config
        .client(&[])
        .create()
        .kafka("creating Kafka admin client")?;
    let probe = metadata_client(config)?;
    let brokers = fetch_metadata(&probe, None)
        .kafka("reading cluster metadata")?
        .brokers()
        .len();
    let (replication, min_insync) = replication_for(brokers);
    let min_insync = min_insync.map(|n| n.to_string());
    let mut replicated: Vec<(&str, &str)> = Vec::new();
    if let Some(n) = &min_insync {
        replicated.push(("min.insync.replicas", n));
    }
    let partitions = names.tx_partitions.max(1);
    let retention = TX_RETENTION_MS.to_string();
    let mut tx_configs = vec![("retention.ms", retention.as_str())];
    tx_configs.extend(&replicated);
    create_if_missing(
        &admin,
        &probe,
        &names.transactions,
        partitions,
        replication,
        &tx_configs,
    )?;
    // The chain is the ledger: never let the broker delete or compact it.
    let mut chain_configs = vec![("retention.ms", "-1"), ("retention.bytes", "-1")];
    chain_configs.extend(&replicated);
    let chain_partitions =
        create_if_missing(&admin, &probe, &names.chain, 1, replication, &chain_configs)?;
    if chain_partitions != 1 {
        return Err(TransportError::ChainTopicPartitions {
            topic: names.chain.clone(),
            partitions: chain_partitions,
        });
    }
    check_chain_kept_forever(&admin, config, &names.chain)
}

/// Replication factor and `min.insync.replicas` for new topics on a cluster of
/// `brokers`: three copies where there are three brokers, and two of them in sync
/// before a write counts wherever there is a second copy (durability over
/// availability: a ledger would rather wait than lose an acknowledged block).
pub fn replication_for(brokers: usize) -> (i32, Option<u32>) {
    let replication = brokers.clamp(1, 3) as i32;
    (replication, (replication >= 2).then_some(2))
}

/// Refuses a chain topic whose broker may delete or compact records.
fn check_chain_kept_forever(
    admin: &AdminClient<DefaultClientContext>,
    config: &KafkaConfig,
    topic: &str,
) -> Result<(), TransportError> {
    let options = AdminOptions::new().request_timeout(Some(BROKER_TIMEOUT));
    let results = block_on(admin.describe_configs([&ResourceSpecifier::Topic(topic)], &options))
        .kafka(format!("reading the configs of topic `{topic}`"))?;
    let mut settings = Vec::new();
    for result in results {
        let resource = result.map_err(|code| {
            TransportError::Other(format!("reading the configs of topic `{topic}`: {code}"))
        })?;
        settings.extend(
            resource
                .entries
                .into_iter()
                .filter_map(|e| Some((e.name, e.value?))),
        );
    }
    match unsafe_chain_setting(settings.iter().map(|(k, v)| (k.as_str(), v.as_str()))) {
        None => Ok(()),
        Some(problem) => Err(TransportError::UnsafeChainTopic {
            topic: topic.to_string(),
            problem,
            fix: format!(
                "kafka-configs.sh --bootstrap-server {} --alter --entity-type topics \
                 --entity-name {topic} --add-config retention.ms=-1,retention.bytes=-1,cleanup.policy=delete",
                config.brokers
            ),
        }),
    }
}

/// The first setting among a chain topic's configs that lets the broker drop
/// records, described for the operator; `None` if the topic keeps everything.
/// Settings the broker does not report are taken as safe.
pub fn unsafe_chain_setting<'a>(
    settings: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<String> {
    for (key, value) in settings {
        let value = value.trim();
        match key {
            "retention.ms" | "retention.bytes" if value != "-1" => {
                return Some(format!(
                    "{key}={value} lets the broker delete old blocks (the chain must be kept forever: -1)"
                ))
            }
            "cleanup.policy" if value.split(',').any(|p| p.trim() == "compact") => {
                return Some(format!(
                    "cleanup.policy={value} lets the broker compact away blocks (must be delete, with unlimited retention)"
                ))
            }
            _ => {}
        }
    }
    None
}

/// Creates topic `name` unless it exists and waits until every partition has a leader;
/// returns the partition count (of the existing topic, if it was there).
fn create_if_missing(
    admin: &AdminClient<DefaultClientContext>,
    probe: &BaseConsumer,
    name: &str,
    partitions: i32,
    replication: i32,
    configs: &[(&str, &str)],
) -> Result<usize, TransportError> {
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replication));
    for (key, value) in configs {
        topic = topic.set(key, value);
    }
    let options = AdminOptions::new().operation_timeout(Some(BROKER_TIMEOUT));
    let results = block_on(admin.create_topics([&topic], &options))
        .kafka(format!("creating topic `{name}`"))?;
    for result in results {
        match result {
            Ok(_) => tracing::info!(topic = name, partitions, replication, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            // A secured cluster lets only operators create topics (Kafka checks the
            // Create ACL before existence): a principal that may use an existing topic
            // goes on; one that finds no topic says who must create it.
            Err((_, RDKafkaErrorCode::TopicAuthorizationFailed)) if topic_exists(probe, name)? => {}
            Err((_, RDKafkaErrorCode::TopicAuthorizationFailed)) => {
                return Err(TransportError::Other(format!(
                    "topic `{name}` does not exist (or this principal may not see it) and this \
                     principal may not create it (TopicAuthorizationFailed): create it with an \
                     operator's credentials, e.g. `kafkachain topics create -X sasl.username=...`"
                )))
            }
            Err((_, code)) => {
                return Err(TransportError::Other(format!(
                    "creating topic `{name}` with {partitions} partition(s), \
                     replication factor {replication}: {code}"
                )))
            }
        }
    }
    // Creation is asynchronous: wait until metadata shows the topic with a leader
    // for every partition (Apache Kafka lists a new partition a moment before its
    // leader serves it; reading offsets then fails with NotLeaderForPartition).
    let deadline = std::time::Instant::now() + BROKER_TIMEOUT;
    loop {
        let metadata = fetch_metadata(probe, Some(name))
            .kafka(format!("reading metadata of topic `{name}`"))?;
        let ready = metadata
            .topics()
            .iter()
            .find(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty())
            .filter(|t| {
                t.partitions()
                    .iter()
                    .all(|p| p.error().is_none() && p.leader() >= 0)
            })
            .map(|t| t.partitions().len());
        if let Some(count) = ready {
            return Ok(count);
        }
        if std::time::Instant::now() > deadline {
            return Err(TransportError::MissingTopic(name.to_string()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Metadata of `topic` (all topics if `None`). On failure the client's queued log lines
/// and error events are served first: a client that never polls keeps them queued, and
/// they hold the reason the broker gave (`SASL authentication error: ...`, a TLS
/// failure), which the fetch's own error (`BrokerTransportFailure`) does not.
fn fetch_metadata(
    probe: &BaseConsumer,
    topic: Option<&str>,
) -> rdkafka::error::KafkaResult<rdkafka::metadata::Metadata> {
    probe
        .fetch_metadata(topic, BROKER_TIMEOUT)
        .inspect_err(|_| {
            // Without a group.id this polls the main queue: logs and errors, no messages.
            let _ = probe.poll(Duration::ZERO);
        })
}

/// Whether metadata lists topic `name` (without error) for this principal.
fn topic_exists(probe: &BaseConsumer, name: &str) -> Result<bool, TransportError> {
    let metadata =
        fetch_metadata(probe, Some(name)).kafka(format!("reading metadata of topic `{name}`"))?;
    Ok(metadata
        .topics()
        .iter()
        .any(|t| t.name() == name && t.error().is_none()))
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
    let metadata = fetch_metadata(consumer, Some(name))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_follows_the_cluster_size() {
        assert_eq!(replication_for(0), (1, None));
        assert_eq!(replication_for(1), (1, None));
        assert_eq!(replication_for(2), (2, Some(2)));
        assert_eq!(replication_for(3), (3, Some(2)));
        assert_eq!(replication_for(7), (3, Some(2)));
    }

    #[test]
    fn a_chain_topic_kept_forever_passes() {
        let kept = [
            ("retention.ms", "-1"),
            ("retention.bytes", "-1"),
            ("cleanup.policy", "delete"),
            ("min.insync.replicas", "2"),
        ];
        assert_eq!(unsafe_chain_setting(kept), None);
        // A broker that reports nothing (Tansu) is not refused.
        assert_eq!(unsafe_chain_setting([]), None);
    }

    #[test]
    fn finite_retention_or_compaction_is_refused() {
        let week = unsafe_chain_setting([("retention.ms", "604800000"), ("retention.bytes", "-1")]);
        assert!(week.is_some_and(|p| p.contains("retention.ms=604800000")));
        let bytes =
            unsafe_chain_setting([("retention.ms", "-1"), ("retention.bytes", "1073741824")]);
        assert!(bytes.is_some_and(|p| p.contains("retention.bytes")));
        for policy in ["compact", "compact,delete", "delete, compact"] {
            let problem = unsafe_chain_setting([("cleanup.policy", policy)]);
            assert!(problem.is_some_and(|p| p.contains("compact")), "{policy}");
        }
    }
}
