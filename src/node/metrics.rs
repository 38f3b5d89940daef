//! A node's Prometheus metrics (`kafkachain node --metrics 127.0.0.1:PORT`).
//!
//! The node loop updates [`NodeMetrics`] at a few points (a block appended or
//! discarded, a transaction read, a nonce found, each loop turn for the pool size);
//! everything is an atomic, so the hooks cost nanoseconds. A small thread answers
//! scrapes over plain HTTP/1.1 and, at each scrape, reads the transactions topic's
//! end offsets to report the intake lag.
//!
//! Exported (OpenMetrics names; counters get `_total`, units their suffix):
//! - `kafkachain_node_height` — blocks on the node's chain (genesis = 1);
//! - `kafkachain_node_blocks_won_total`, `kafkachain_node_stale_blocks_total`,
//!   `kafkachain_node_invalid_records_total`;
//! - `kafkachain_node_pending_transactions`;
//! - `kafkachain_node_intake_lag_records{partition}` — records on the transactions topic
//!   the node has not read yet;
//! - `kafkachain_node_hashes_total`, `kafkachain_node_hash_rate_hashes_per_second` (last
//!   solved block);
//! - `kafkachain_node_intake_to_chain_latency_seconds` — histogram, from the node reading
//!   a transaction to the node reading it back in a block on the chain (add the intake
//!   lag for the full publish-to-chain time; it is ~0 when the node keeps up).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use rdkafka::consumer::Consumer;

use super::Shutdown;
use crate::chain::Origin;
use crate::transport::{topics, KafkaConfig};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartitionLabel {
    partition: String,
}

/// Most transactions whose read time is remembered for the latency histogram.
const MAX_TRACKED: usize = 200_000;

/// The node's metrics; shared with the scrape thread.
pub struct NodeMetrics {
    registry: Registry,
    height: Gauge,
    won: Counter,
    stale: Counter,
    invalid: Counter,
    pending: Gauge,
    intake_lag: Family<PartitionLabel, Gauge>,
    hashes: Counter,
    hash_rate: Gauge<f64, AtomicU64>,
    latency: Histogram,
    /// Last offset read per partition.
    consumed: Mutex<HashMap<i32, i64>>,
    /// When each pending transaction was read.
    read_at: Mutex<HashMap<Origin, Instant>>,
}

impl std::fmt::Debug for NodeMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeMetrics").finish_non_exhaustive()
    }
}

impl Default for NodeMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let m = NodeMetrics {
            registry: Registry::default(),
            height: Gauge::default(),
            won: Counter::default(),
            stale: Counter::default(),
            invalid: Counter::default(),
            pending: Gauge::default(),
            intake_lag: Family::default(),
            hashes: Counter::default(),
            hash_rate: Gauge::default(),
            // 5 ms .. ~80 s
            latency: Histogram::new(exponential_buckets(0.005, 2.0, 15)),
            consumed: Mutex::new(HashMap::new()),
            read_at: Mutex::new(HashMap::new()),
        };
        registry.register(
            "kafkachain_node_height",
            "Blocks on the node's chain (genesis = 1)",
            m.height.clone(),
        );
        registry.register(
            "kafkachain_node_blocks_won",
            "Blocks this node mined that reached the chain",
            m.won.clone(),
        );
        registry.register(
            "kafkachain_node_stale_blocks",
            "Chain-topic records discarded as stale (lost a mining race)",
            m.stale.clone(),
        );
        registry.register(
            "kafkachain_node_invalid_records",
            "Chain-topic records discarded as invalid",
            m.invalid.clone(),
        );
        registry.register(
            "kafkachain_node_pending_transactions",
            "Transactions read and not yet on the chain",
            m.pending.clone(),
        );
        registry.register_with_unit(
            "kafkachain_node_intake_lag",
            "Records on the transactions topic the node has not read yet, per partition",
            Unit::Other("records".into()),
            m.intake_lag.clone(),
        );
        registry.register(
            "kafkachain_node_hashes",
            "Proof-of-work attempts of solved blocks",
            m.hashes.clone(),
        );
        registry.register_with_unit(
            "kafkachain_node_hash_rate",
            "Mining speed on the last solved block",
            Unit::Other("hashes_per_second".into()),
            m.hash_rate.clone(),
        );
        registry.register_with_unit(
            "kafkachain_node_intake_to_chain_latency",
            "From the node reading a transaction to reading it back in a block on the chain",
            Unit::Seconds,
            m.latency.clone(),
        );
        NodeMetrics { registry, ..m }
    }
}

impl NodeMetrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// A transaction was read from the transactions topic.
    pub fn on_intake(&self, origin: Origin) {
        let mut consumed = self.consumed.lock().unwrap_or_else(|p| p.into_inner());
        let last = consumed.entry(origin.partition).or_insert(origin.offset);
        *last = (*last).max(origin.offset);
        drop(consumed);
        let mut read_at = self.read_at.lock().unwrap_or_else(|p| p.into_inner());
        if read_at.len() >= MAX_TRACKED {
            // Transactions dropped on a revoke never reach us again; forget them all.
            read_at.clear();
        }
        read_at.insert(origin, Instant::now());
    }

    /// A block was appended; `won` when it is ours and was mined while running.
    pub fn on_block(&self, height: u64, origins: &[Origin], won: bool) {
        self.height.set(height as i64);
        if won {
            self.won.inc();
        }
        let mut read_at = self.read_at.lock().unwrap_or_else(|p| p.into_inner());
        if read_at.is_empty() {
            return;
        }
        let now = Instant::now();
        for o in origins {
            if let Some(at) = read_at.remove(o) {
                self.latency
                    .observe(now.saturating_duration_since(at).as_secs_f64());
            }
        }
    }

    pub fn on_discarded(&self, stale: bool) {
        if stale {
            self.stale.inc();
        } else {
            self.invalid.inc();
        }
    }

    /// A nonce was found after `hashes` attempts in `elapsed`.
    pub fn on_mined(&self, hashes: u64, elapsed: Duration) {
        self.hashes.inc_by(hashes);
        if elapsed > Duration::ZERO {
            self.hash_rate.set(hashes as f64 / elapsed.as_secs_f64());
        }
    }

    pub fn set_pending(&self, pending: usize) {
        self.pending.set(pending as i64);
    }

    /// Updates the intake lag from the topic's end offsets (None: broker unreachable,
    /// the lag keeps its last value).
    fn update_lag(&self, end_offsets: Option<&HashMap<i32, i64>>) {
        let Some(ends) = end_offsets else { return };
        let consumed = self.consumed.lock().unwrap_or_else(|p| p.into_inner());
        for (partition, last) in consumed.iter() {
            if let Some(end) = ends.get(partition) {
                self.intake_lag
                    .get_or_create(&PartitionLabel {
                        partition: partition.to_string(),
                    })
                    .set((end - last - 1).max(0));
            }
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Serves the metrics on `addr` until `shutdown`; returns the bound address.
pub fn serve(
    addr: SocketAddr,
    metrics: Arc<NodeMetrics>,
    kafka: &KafkaConfig,
    tx_topic: &str,
    shutdown: &Shutdown,
) -> std::io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let bound = listener.local_addr()?;
    let offsets = topics::metadata_client(kafka).ok();
    let topic = tx_topic.to_string();
    let stop = shutdown.clone();
    let handle = std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            while !stop.is_triggered() {
                let stream = match listener.accept() {
                    Ok((stream, _)) => stream,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(50));
                        continue;
                    }
                    Err(_) => continue,
                };
                let ends = offsets.as_ref().and_then(|c| {
                    let partitions: Vec<i32> = metrics
                        .consumed
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .keys()
                        .copied()
                        .collect();
                    partitions
                        .into_iter()
                        .map(|p| {
                            c.fetch_watermarks(&topic, p, Duration::from_secs(2))
                                .ok()
                                .map(|(_, high)| (p, high))
                        })
                        .collect::<Option<HashMap<i32, i64>>>()
                });
                metrics.update_lag(ends.as_ref());
                answer(stream, &metrics.render());
            }
        })?;
    Ok((bound, handle))
}

/// Reads the request head and answers with the metrics (any path).
fn answer(stream: std::net::TcpStream, body: &str) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
        if line == "\r\n" || line == "\n" {
            break;
        }
        line.clear();
    }
    let mut stream = &stream;
    let _ = write!(
        stream,
        "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}
