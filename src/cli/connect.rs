//! Flags shared by every command that talks to Kafka.

use anyhow::Context;

use crate::transport::{KafkaConfig, TopicNames};

/// Where the cluster is, how to reach it, and which topics hold the ledger.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// Bootstrap brokers (host:port,...).
    #[arg(long, env = "KAFKACHAIN_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// A librdkafka setting passed through, e.g. `-X security.protocol=SASL_SSL`.
    #[arg(short = 'X', value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
    /// Topic of submitted transactions.
    #[arg(long, default_value = "transactions")]
    pub tx_topic: String,
    /// Topic of blocks (must have exactly one partition).
    #[arg(long, default_value = "blockchain")]
    pub chain_topic: String,
    /// Partitions of the transactions topic when it is created.
    #[arg(long, default_value_t = 2)]
    pub tx_partitions: i32,
}

impl ConnectArgs {
    pub fn kafka(&self) -> anyhow::Result<KafkaConfig> {
        KafkaConfig::new(&self.brokers)
            .with_settings(&self.settings)
            .context("parsing -X settings")
    }

    pub fn topics(&self) -> TopicNames {
        TopicNames {
            transactions: self.tx_topic.clone(),
            chain: self.chain_topic.clone(),
            tx_partitions: self.tx_partitions,
        }
    }
}
