//! Test helpers that run real `kafkachain node` processes against the test broker
//! and inspect the chain topic with the library's own replay.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafkachain::chain::{ChainState, Origin};
use kafkachain::transport::chain_log::read_to_end;
use kafkachain::transport::publish::{Profile, Publisher};
use kafkachain::transport::{topics, KafkaConfig, TopicNames};

use crate::support;

/// A ledger under test: its own topics on the shared test broker.
pub struct Ledger {
    pub brokers: String,
    pub topics: TopicNames,
    pub dir: tempfile::TempDir,
}

/// What a replay of the chain topic found.
#[derive(Debug, Default)]
pub struct ChainView {
    pub height: u64,
    pub tip: String,
    /// Origins of every transaction on the chain, in chain order.
    pub origins: Vec<Origin>,
    /// Transactions on the chain per block (rewards excluded).
    pub user_txs: u64,
    pub blocks_by_miner: HashMap<String, u64>,
    pub stale: u64,
    pub invalid: Vec<String>,
}

impl ChainView {
    /// Panics unless each of `expected` origins appears exactly once (and nothing else).
    pub fn assert_exactly_once(&self, expected: &[Origin]) {
        let mut counts: HashMap<Origin, u32> = HashMap::new();
        for o in &self.origins {
            *counts.entry(*o).or_default() += 1;
        }
        let duplicated: Vec<_> = counts.iter().filter(|(_, &n)| n > 1).collect();
        assert!(
            duplicated.is_empty(),
            "duplicated on the chain: {duplicated:?}"
        );
        let missing: Vec<_> = expected
            .iter()
            .filter(|o| !counts.contains_key(o))
            .collect();
        assert!(
            missing.is_empty(),
            "lost (not on the chain): {} e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(5)]
        );
        assert_eq!(
            self.origins.len(),
            expected.len(),
            "unexpected extra transactions"
        );
    }
}

impl Ledger {
    pub fn new(name: &str, tx_partitions: i32) -> Self {
        let brokers = support::broker().to_string();
        let topics = TopicNames {
            transactions: support::unique_topic(&format!("{name}-tx")),
            chain: support::unique_topic(&format!("{name}-chain")),
            tx_partitions,
        };
        topics::ensure_topics(&KafkaConfig::new(&brokers), &topics).expect("creating topics");
        Ledger {
            brokers,
            topics,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn kafka(&self) -> KafkaConfig {
        KafkaConfig::new(&self.brokers)
    }

    /// Common flags of every kafkachain command against this ledger.
    pub fn connect_args(&self) -> Vec<String> {
        vec![
            "--brokers".into(),
            self.brokers.clone(),
            "--tx-topic".into(),
            self.topics.transactions.clone(),
            "--chain-topic".into(),
            self.topics.chain.clone(),
            "--tx-partitions".into(),
            self.topics.tx_partitions.to_string(),
        ]
    }

    /// Starts a node process; `extra` are more `kafkachain node` flags.
    pub fn node<S: AsRef<std::ffi::OsStr>>(&self, id: &str, extra: &[S]) -> NodeProc {
        let log_path = self
            .dir
            .path()
            .join(format!("{id}.{}.log", rand::random::<u32>()));
        let log = File::create(&log_path).expect("creating node log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_kafkachain"));
        command
            .arg("node")
            .args(self.connect_args())
            .args(["--id", id, "--group"])
            .arg(format!("{}-group", self.topics.transactions))
            .arg("--data-dir")
            .arg(self.dir.path().join(id))
            .args(["--threads", "1"])
            .args(extra)
            .env("RUST_LOG", "warn,kafkachain=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // If this test process dies, its nodes die with it (no orphans on Ctrl-C).
        // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
        unsafe {
            use std::os::unix::process::CommandExt;
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().expect("starting kafkachain node");
        let node = NodeProc {
            id: id.to_string(),
            child: Some(child),
            log_path,
        };
        support::wait_until(
            Duration::from_secs(60),
            &format!("node {id} to start"),
            || {
                node.assert_alive();
                node.log().contains("node running").then_some(())
            },
        );
        node
    }

    /// Publishes `count` transactions (to `partition`, or spread); returns their origins.
    pub fn send(&self, count: usize, partition: Option<i32>, from: &str) -> Vec<Origin> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let publisher = Publisher::new(
            &self.kafka(),
            &self.topics.transactions,
            Profile::Transactions,
            Some(tx),
        )
        .expect("producer");
        for i in 0..count {
            let payload = format!(r#"{{"from": "{from}", "to": "bob", "amount": {i}}}"#);
            publisher
                .send(i as u64, partition, payload.as_bytes())
                .expect("send");
        }
        publisher.flush(Duration::from_secs(60)).expect("flush");
        let mut origins: Vec<Origin> = rx
            .try_iter()
            .map(|d| {
                let (partition, offset) = d.result.expect("transaction acknowledged");
                Origin { partition, offset }
            })
            .collect();
        assert_eq!(origins.len(), count, "every send acknowledged");
        origins.sort();
        origins
    }

    /// Writes raw records straight to the chain topic.
    pub fn publish_raw_blocks(&self, records: &[Vec<u8>]) {
        let publisher = Publisher::new(&self.kafka(), &self.topics.chain, Profile::Blocks, None)
            .expect("producer");
        for (i, r) in records.iter().enumerate() {
            publisher.send(i as u64, None, r).expect("send");
        }
        publisher.flush(Duration::from_secs(30)).expect("flush");
    }

    /// Replays the chain topic as a node would.
    pub fn replay(&self) -> (ChainState, ChainView) {
        let mut chain = ChainState::new();
        let mut view = ChainView::default();
        read_to_end(
            &self.kafka(),
            &self.topics.chain,
            0,
            Duration::from_secs(30),
            |record| match chain.apply(&record.payload) {
                Ok(block) => {
                    view.origins.extend(&block.origins);
                    view.user_txs += (block.tx_count - usize::from(block.miner.is_some())) as u64;
                    if let Some(m) = block.miner {
                        *view.blocks_by_miner.entry(m).or_default() += 1;
                    }
                }
                Err(d) if d.is_stale() => view.stale += 1,
                Err(d) => view
                    .invalid
                    .push(format!("offset {}: {}", record.offset, d.reason)),
            },
        )
        .expect("reading the chain topic");
        view.height = chain.height();
        view.tip = chain.tip().map(|t| t.hash.to_string()).unwrap_or_default();
        (chain, view)
    }

    /// Waits until `n` submitted transactions are on the chain.
    pub fn wait_for_txs(&self, n: usize, timeout: Duration) -> ChainView {
        let started = Instant::now();
        loop {
            let (_, view) = self.replay();
            if view.origins.len() >= n {
                return view;
            }
            assert!(
                started.elapsed() < timeout,
                "only {} of {n} transactions reached the chain in {timeout:?}",
                view.origins.len()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// Node flags for fast tests: low difficulty, small blocks, a short block timeout, and
/// the tutorial's `--partition` mode when `partition` is given (else the consumer group).
pub fn node_flags(partition: Option<i32>, block_size: usize, difficulty: u32) -> Vec<String> {
    let mut flags: Vec<String> = vec![
        "--difficulty".into(),
        difficulty.to_string(),
        "--block-size".into(),
        block_size.to_string(),
        "--block-timeout".into(),
        "100ms".into(),
    ];
    if let Some(p) = partition {
        flags.extend(["--partition".into(), p.to_string()]);
    }
    flags
}

/// A running `kafkachain node` process; killed when dropped.
pub struct NodeProc {
    pub id: String,
    child: Option<Child>,
    pub log_path: PathBuf,
}

impl NodeProc {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn assert_alive(&self) {
        if let Some(child) = &self.child {
            let pid = child.id();
            let alive = std::path::Path::new(&format!("/proc/{pid}")).exists()
                && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                    .unwrap_or_default()
                    .contains(") Z ");
            assert!(
                alive,
                "node {} exited early; its log:\n{}",
                self.id,
                self.log()
            );
        }
    }

    /// SIGTERM, then wait for a clean exit; returns the final log.
    pub fn terminate(&mut self) -> String {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                match child.try_wait() {
                    Ok(Some(status)) => {
                        assert!(
                            status.success(),
                            "node {} exited with {status}; log:\n{}",
                            self.id,
                            self.log()
                        );
                        break;
                    }
                    _ if Instant::now() > deadline => {
                        let _ = child.kill();
                        panic!(
                            "node {} did not stop on SIGTERM; log:\n{}",
                            self.id,
                            self.log()
                        );
                    }
                    _ => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
        self.log()
    }

    /// SIGKILL: the node gets no chance to commit or leave its group.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The tip the node reported when it stopped (after [`terminate`]).
    pub fn reported_tip(&self) -> Option<String> {
        let log = self.log();
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains(" stopped: height "))?;
        let tip = line.split(", tip ").nth(1)?.split(',').next()?;
        Some(tip.trim().to_string())
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

impl NodeProc {
    /// The process id, while the node runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// SIGTERM without waiting (see [`NodeProc::wait_exit`]).
    pub fn signal_term(&self) {
        if let Some(child) = &self.child {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
        }
    }

    /// Waits up to `timeout` for the node to exit by itself; None if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
