//! `serve`'s own metrics, in the Prometheus/OpenMetrics text format
//! (`prometheus-client`): the index's height and position on the chain topic, what it
//! indexed and discarded, batch write time, and HTTP requests by route and status.

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// Labels of an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteOnly {
    pub route: String,
}

/// Every metric `serve` exports; cheap to update from any thread.
pub struct ServeMetrics {
    registry: Registry,
    pub height: Gauge,
    pub next_offset: Gauge,
    pub topic_end: Gauge,
    pub blocks: Counter,
    pub txs: Counter,
    pub stale: Counter,
    pub invalid: Counter,
    pub rebuilds: Counter,
    pub batch_seconds: Histogram,
    pub requests: Family<RouteLabels, Counter>,
    pub request_seconds: Family<RouteOnly, Histogram>,
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~3.3 s
    Histogram::new(exponential_buckets(0.000_05, 3.0, 11))
}

impl Default for ServeMetrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let height = Gauge::default();
        let next_offset = Gauge::default();
        let topic_end = Gauge::default();
        let blocks = Counter::default();
        let txs = Counter::default();
        let stale = Counter::default();
        let invalid = Counter::default();
        let rebuilds = Counter::default();
        let batch_seconds = latency_histogram();
        let requests = Family::<RouteLabels, Counter>::default();
        let request_seconds =
            Family::<RouteOnly, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        registry.register(
            "kafkachain_index_height",
            "Blocks on the indexed chain (genesis = 1), as Fabric's ledger_blockchain_height",
            height.clone(),
        );
        registry.register(
            "kafkachain_index_next_offset",
            "First chain-topic offset the index has not replayed",
            next_offset.clone(),
        );
        registry.register(
            "kafkachain_chain_topic_end_offset",
            "End (high watermark) of the chain topic, as last read from the broker",
            topic_end.clone(),
        );
        registry.register(
            "kafkachain_index_blocks",
            "Blocks written to the index",
            blocks.clone(),
        );
        registry.register(
            "kafkachain_index_transactions",
            "Transactions written to the index",
            txs.clone(),
        );
        registry.register(
            "kafkachain_index_stale_blocks",
            "Chain-topic records discarded as stale (lost a mining race)",
            stale.clone(),
        );
        registry.register(
            "kafkachain_index_invalid_records",
            "Chain-topic records discarded as invalid",
            invalid.clone(),
        );
        registry.register(
            "kafkachain_index_rebuilds",
            "Times the index was wiped and rebuilt (tip no longer on the topic)",
            rebuilds.clone(),
        );
        registry.register_with_unit(
            "kafkachain_index_batch_duration",
            "Time to replay and write one batch of chain-topic records",
            Unit::Seconds,
            batch_seconds.clone(),
        );
        registry.register(
            "kafkachain_http_requests",
            "HTTP requests served, by route and status code",
            requests.clone(),
        );
        registry.register_with_unit(
            "kafkachain_http_request_duration",
            "HTTP request handling time, by route",
            Unit::Seconds,
            request_seconds.clone(),
        );
        ServeMetrics {
            registry,
            height,
            next_offset,
            topic_end,
            blocks,
            txs,
            stale,
            invalid,
            rebuilds,
            batch_seconds,
            requests,
            request_seconds,
        }
    }
}

impl ServeMetrics {
    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
