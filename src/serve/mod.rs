//! `kafkachain serve`: the read side. An index of the chain topic, an HTTP API over it
//! (tutorial-compatible, Esplora-like, server-sent events, health and metrics), Merkle
//! proofs and a live explorer page.
//!
//! - [`schema`]: the SQLite tables, as code.
//! - [`index`]: the indexer thread: the node's replay, written in batches.
//! - [`query`]: every read the API makes, typed.
//! - [`api`]: the axum router; routes only translate between HTTP and [`query`].
//! - [`metrics`]: `serve`'s Prometheus metrics.
//!
//! The index is a cache: delete the file and it is rebuilt from the chain topic.
//! Threads: the indexer (blocking, one SQLite writer), a broker watcher (reads the
//! chain topic's end offset every second, for `/healthz`), and a small tokio runtime
//! for HTTP. They share [`Shared`].

pub mod api;
pub mod index;
pub mod metrics;
pub mod query;
pub mod schema;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;
use tokio::sync::broadcast;
use tracing::{info, warn};

use crate::chain::{BlockHash, TxId};
use crate::node::Shutdown;
use crate::transport::chain_log::CHAIN_PARTITION;
use crate::transport::submit::Submitter;
use crate::transport::{topics, KafkaConfig, TopicNames, TransportError};

/// One new block on the indexed chain, as `/events` sends it.
#[derive(Clone, Debug, Serialize)]
pub struct BlockEvent {
    pub height: u64,
    pub hash: String,
    pub tx_count: usize,
    pub timestamp: f64,
}

/// A transaction submitted through this server and not yet seen on the chain.
#[derive(Clone, Debug, Serialize)]
pub struct PendingTx {
    pub partition: i32,
    pub offset: i64,
    #[serde(skip)]
    pub submitted: SystemTime,
}

/// What the indexer and the broker watcher last saw.
#[derive(Clone, Debug, Default)]
pub struct Status {
    pub next_offset: i64,
    pub height: u64,
    pub tip: Option<BlockHash>,
    pub topic_end: Option<i64>,
    pub broker_error: Option<String>,
    pub broker_ok_at: Option<Instant>,
}

/// Most pending transactions remembered; beyond it the oldest half is forgotten
/// (they are still on their way, only `/tx` reports them as unknown until indexed).
const MAX_PENDING: usize = 100_000;

/// State shared by the indexer, the watcher and the HTTP handlers.
pub struct Shared {
    status: Mutex<Status>,
    /// `status.height`, readable without the lock (every `/tx` reads it).
    height: AtomicU64,
    pub events: broadcast::Sender<BlockEvent>,
    pending: Mutex<HashMap<TxId, PendingTx>>,
    pub metrics: metrics::ServeMetrics,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            status: Mutex::new(Status::default()),
            height: AtomicU64::new(0),
            events: broadcast::channel(1024).0,
            pending: Mutex::new(HashMap::new()),
            metrics: metrics::ServeMetrics::default(),
        }
    }
}

impl Shared {
    pub fn status(&self) -> Status {
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The indexed height (0 before the indexer's first report), without a lock.
    pub fn height(&self) -> u64 {
        self.height.load(Ordering::Relaxed)
    }

    /// The indexer committed a batch.
    fn indexed(&self, next_offset: i64, height: u64, tip: Option<BlockHash>, ids: &[TxId]) {
        {
            let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
            s.next_offset = next_offset;
            s.height = height;
            s.tip = tip;
        }
        self.height.store(height, Ordering::Relaxed);
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if !pending.is_empty() {
            for id in ids {
                pending.remove(id);
            }
        }
    }

    fn broker(&self, result: Result<i64, String>) {
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(end) => {
                s.topic_end = Some(end);
                s.broker_error = None;
                s.broker_ok_at = Some(Instant::now());
                self.metrics.topic_end.set(end);
            }
            Err(err) => s.broker_error = Some(err),
        }
    }

    pub fn add_pending(&self, id: TxId, tx: PendingTx) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        if pending.len() >= MAX_PENDING {
            let mut by_age: Vec<(SystemTime, TxId)> =
                pending.iter().map(|(k, v)| (v.submitted, *k)).collect();
            by_age.sort();
            for (_, k) in by_age.iter().take(MAX_PENDING / 2) {
                pending.remove(k);
            }
        }
        pending.insert(id, tx);
    }

    pub fn pending(&self, id: &TxId) -> Option<PendingTx> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }
}

/// What `serve` needs; the CLI fills it from flags.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub kafka: KafkaConfig,
    pub topics: TopicNames,
    pub listen: SocketAddr,
    pub index: PathBuf,
    /// `/healthz` reports the index as behind when it trails the chain topic by more
    /// than this many records.
    pub max_lag: i64,
}

/// Errors that stop `serve`.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Index(#[from] index::IndexError),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

/// Runs the indexer, the broker watcher and the HTTP server until `shutdown`.
pub fn run(config: ServeConfig, shutdown: &Shutdown) -> Result<(), ServeError> {
    topics::ensure_topics(&config.kafka, &config.topics)?;
    let shared = Arc::new(Shared::default());
    let indexer = index::Indexer {
        path: config.index.clone(),
        kafka: config.kafka.clone(),
        topic: config.topics.chain.clone(),
        shared: Arc::clone(&shared),
    };
    let io = |what: &str| {
        let what = what.to_string();
        move |source| ServeError::Io { what, source }
    };
    // Create the file and tables before the API opens read-only connections to it.
    schema::open_writer(&config.index, &config.topics.chain).map_err(|source| {
        index::IndexError::Sqlite {
            path: config.index.clone(),
            source,
        }
    })?;
    let indexer_stop = shutdown.clone();
    let indexer_thread = std::thread::Builder::new()
        .name("indexer".into())
        .spawn(move || {
            let result = indexer.run(&indexer_stop);
            // Without an indexer the server would silently serve an old chain.
            indexer_stop.trigger();
            result
        })
        .map_err(io("starting the indexer thread"))?;
    let watcher = {
        let shared = Arc::clone(&shared);
        let kafka = config.kafka.clone();
        let topic = config.topics.chain.clone();
        let stop = shutdown.clone();
        std::thread::Builder::new()
            .name("broker-watch".into())
            .spawn(move || watch_broker(&kafka, &topic, &shared, &stop))
            .map_err(io("starting the broker watcher thread"))?
    };
    let app = api::App {
        query: query::Query::new(&config.index),
        shared: Arc::clone(&shared),
        submitter: Some(Submitter::new(&config.kafka, &config.topics.transactions)?),
        max_lag: config.max_lag,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("http")
        .build()
        .map_err(io("starting the HTTP runtime"))?;
    let served = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(io(&format!("listening on {}", config.listen)))?;
        let addr = listener
            .local_addr()
            .map_err(io("reading the listening address"))?;
        info!(
            "serving on http://{addr}/ (index {})",
            config.index.display()
        );
        let stop = shutdown.clone();
        axum::serve(listener, api::router(Arc::new(app)))
            .with_graceful_shutdown(async move {
                while !stop.is_triggered() {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            })
            .await
            .map_err(io("serving HTTP"))
    });
    shutdown.trigger();
    runtime.shutdown_timeout(Duration::from_secs(2));
    let _ = watcher.join();
    let indexed = indexer_thread
        .join()
        .unwrap_or_else(|_| {
            warn!("the indexer thread panicked");
            Ok(())
        })
        .map_err(ServeError::from);
    served.and(indexed)
}

/// Reads the chain topic's end offset every second, for `/healthz` and the lag metric.
fn watch_broker(kafka: &KafkaConfig, topic: &str, shared: &Shared, stop: &Shutdown) {
    let client = match topics::metadata_client(kafka) {
        Ok(c) => c,
        Err(err) => {
            shared.broker(Err(err.to_string()));
            return;
        }
    };
    while !stop.is_triggered() {
        let result = rdkafka::consumer::Consumer::fetch_watermarks(
            &client,
            topic,
            CHAIN_PARTITION,
            Duration::from_secs(3),
        )
        .map(|(_, high)| high)
        .map_err(|e| format!("reading the end of chain topic `{topic}`: {e}"));
        shared.broker(result);
        for _ in 0..10 {
            if stop.is_triggered() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
