//! The baseline: what the broker does with bare clients and the node's producer settings.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::Serialize;

use crate::transport::publish::{Profile, Publisher};
use crate::transport::{topics, KafkaConfig, TopicNames};

#[derive(Clone, Debug, Serialize)]
pub struct BaselineReport {
    pub messages: u64,
    pub seconds: f64,
    pub msgs_per_sec: f64,
}

/// Produces `count` transaction messages over `partitions` partitions while a bare
/// consumer reads them; the clock runs from the first send to the last message read.
/// `warmup` messages go through first, off the clock, as the ledger runs' warm-up does
/// (connections, metadata, the idempotent producer's id, the first fetch).
pub fn run(
    kafka: &KafkaConfig,
    count: u64,
    warmup: u64,
    partitions: i32,
    payload: &[u8],
) -> anyhow::Result<BaselineReport> {
    let names = TopicNames {
        transactions: super::unique("base-tx"),
        chain: super::unique("base-chain"),
        tx_partitions: partitions,
    };
    topics::ensure_topics(kafka, &names)?;
    let consumer: BaseConsumer = kafka
        .client(&[
            ("group.id", "kafkachain-bench-baseline"),
            ("enable.auto.commit", "false"),
            ("fetch.wait.max.ms", "50"),
        ])
        .create()?;
    let mut list = TopicPartitionList::new();
    for p in 0..partitions {
        list.add_partition_offset(&names.transactions, p, Offset::Beginning)?;
    }
    consumer.assign(&list)?;
    let publisher = Publisher::new(kafka, &names.transactions, Profile::Load, None)?;

    let (warm_tx, warm_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || -> anyhow::Result<Instant> {
        let mut read = 0u64;
        let mut last = Instant::now();
        if warmup == 0 {
            let _ = warm_tx.send(());
        }
        while read < warmup + count {
            match consumer.poll(Duration::from_millis(500)) {
                Some(Ok(_)) => {
                    read += 1;
                    last = Instant::now();
                    if read == warmup {
                        let _ = warm_tx.send(());
                    }
                }
                Some(Err(err)) => anyhow::bail!("baseline consumer: {err}"),
                None if last.elapsed() > Duration::from_secs(60) => {
                    anyhow::bail!("baseline consumer stalled at {read} of {}", warmup + count)
                }
                None => {}
            }
        }
        Ok(last)
    });
    for i in 0..warmup {
        publisher.send(i, None, payload)?;
    }
    publisher.flush(Duration::from_secs(120))?;
    // The clock starts once the warm-up is read (the reader ends early on an error).
    let _ = warm_rx.recv();
    let started = Instant::now();
    for i in 0..count {
        publisher.send(warmup + i, None, payload)?;
    }
    publisher.flush(Duration::from_secs(120))?;
    let finished = reader
        .join()
        .map_err(|_| anyhow::anyhow!("baseline consumer panicked"))??;
    let seconds = finished.duration_since(started).as_secs_f64();
    Ok(BaselineReport {
        messages: count,
        seconds,
        msgs_per_sec: count as f64 / seconds.max(1e-9),
    })
}
