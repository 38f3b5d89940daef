//! Start-up replay: a node reading a long chain, against a bare consumer reading the
//! same topic.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::chain::{self, BlockTemplate, ChainState, Miner, Origin, Rules, Transaction};
use crate::node::{Node, NodeConfig, Shutdown};
use crate::transport::intake::IntakeMode;
use crate::transport::publish::{Profile, Publisher};
use crate::transport::{topics, KafkaConfig, TopicNames};

#[derive(Clone, Debug, Serialize)]
pub struct ReplayReport {
    pub blocks: u64,
    pub txs_per_block: usize,
    pub bytes: u64,
    pub bare_records_per_sec: f64,
    pub node_blocks_per_sec: f64,
    pub node_txs_per_sec: f64,
    pub ratio: f64,
}

/// Publishes a valid v2 chain of `blocks` blocks (plus genesis) with `txs` transactions
/// each. Difficulty 4 keeps building quick; replay cost does not depend on it.
fn build_chain(kafka: &KafkaConfig, topic: &str, blocks: u64, txs: usize) -> anyhow::Result<u64> {
    let publisher = Publisher::new(kafka, topic, Profile::Transactions, None)?;
    let mut state = ChainState::new();
    let genesis = chain::genesis(Rules::V2 { difficulty: 4 }, 1_700_000_000.0);
    let mut bytes = genesis.len() as u64;
    state
        .apply(&genesis)
        .map_err(|d| anyhow::anyhow!("own genesis rejected: {}", d.reason))?;
    publisher.send(0, None, &genesis)?;
    let miner = Miner::new(1);
    let never = AtomicBool::new(false);
    let submitted = chain::parse_submitted(br#"{"from": "alice", "to": "bob", "amount": 3}"#)?;
    let mut offset = 0i64;
    for b in 0..blocks {
        let mut block_txs: Vec<Transaction> = (0..txs)
            .map(|_| {
                offset += 1;
                Transaction::from_submitted(
                    &submitted,
                    Origin {
                        partition: 0,
                        offset,
                    },
                )
            })
            .collect();
        block_txs.push(Transaction::reward("bench", &serde_json::Number::from(1)));
        let tip = state
            .tip()
            .ok_or_else(|| anyhow::anyhow!("no tip"))?
            .clone();
        let rules = state.rules().ok_or_else(|| anyhow::anyhow!("no rules"))?;
        let template = BlockTemplate::new(&tip, rules, tip.timestamp + 0.001, &block_txs);
        let mined = miner
            .mine(&template.work(), &never)
            .ok_or_else(|| anyhow::anyhow!("mining cancelled"))?;
        let block = template.seal(mined.nonce);
        state
            .apply(&block)
            .map_err(|d| anyhow::anyhow!("own block {b} rejected: {}", d.reason))?;
        bytes += block.len() as u64;
        publisher.send(b + 1, None, &block)?;
    }
    publisher.flush(Duration::from_secs(300))?;
    Ok(bytes)
}

fn bare_read(kafka: &KafkaConfig, topic: &str, records: u64) -> anyhow::Result<Duration> {
    let consumer: BaseConsumer = kafka
        .client(&[
            ("group.id", "kafkachain-bench-replay"),
            ("enable.auto.commit", "false"),
            ("fetch.wait.max.ms", "20"),
            ("queued.max.messages.kbytes", "262144"),
            ("fetch.max.bytes", "52428800"),
            ("max.partition.fetch.bytes", "10485760"),
        ])
        .create()?;
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&list)?;
    let started = Instant::now();
    let mut read = 0u64;
    while read < records {
        match consumer.poll(Duration::from_secs(30)) {
            Some(Ok(_)) => read += 1,
            Some(Err(err)) => anyhow::bail!("bare consumer: {err}"),
            None => anyhow::bail!("bare consumer stalled at {read} of {records}"),
        }
    }
    Ok(started.elapsed())
}

fn node_replay(kafka: &KafkaConfig, names: &TopicNames, expect: u64) -> anyhow::Result<Duration> {
    let mut config = NodeConfig::new(kafka.clone());
    config.topics = names.clone();
    config.id = Some("bench-replay".into());
    config.intake = IntakeMode::Partition(0);
    config.mining_threads = 1;
    let started = Instant::now();
    let node = Node::start(config, &Shutdown::new())?;
    let elapsed = started.elapsed();
    anyhow::ensure!(
        node.chain().height() == expect,
        "node replayed {} blocks, expected {expect}",
        node.chain().height()
    );
    Ok(elapsed)
}

/// Builds the chain, then times bare reads and node replays alternately (best of two).
pub fn run(kafka: &KafkaConfig, blocks: u64, txs: usize) -> anyhow::Result<ReplayReport> {
    let names = TopicNames {
        transactions: super::unique("replay-tx"),
        chain: super::unique("replay-chain"),
        tx_partitions: 1,
    };
    topics::ensure_topics(kafka, &names)?;
    let bytes = build_chain(kafka, &names.chain, blocks, txs)?;
    let records = blocks + 1;
    let mut bare = Duration::MAX;
    let mut node = Duration::MAX;
    for _ in 0..2 {
        bare = bare.min(bare_read(kafka, &names.chain, records)?);
        node = node.min(node_replay(kafka, &names, records)?);
    }
    let bare_rate = records as f64 / bare.as_secs_f64().max(1e-9);
    let node_rate = records as f64 / node.as_secs_f64().max(1e-9);
    Ok(ReplayReport {
        blocks: records,
        txs_per_block: txs + 1,
        bytes,
        bare_records_per_sec: bare_rate,
        node_blocks_per_sec: node_rate,
        node_txs_per_sec: node_rate * (txs + 1) as f64,
        ratio: node_rate / bare_rate,
    })
}
