//! Test helpers that run real `kafkachain node` processes against the test broker
//! and inspect the chain topic with the library's own replay.
#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kafkachain::chain::{ChainState, Origin, RuleError};
use kafkachain::transport::chain_log::read_to_end;
use kafkachain::transport::publish::{Profile, Publisher};
use kafkachain::transport::{topics, KafkaConfig, TopicNames, TransportError};

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
    /// Records read (the chain topic's end offset at the replay).
    pub records: i64,
    /// Offsets of the records discarded as stale (lost a race).
    pub stale_offsets: Vec<i64>,
    /// `offset N: reason (origins …)` of every record discarded as invalid.
    pub invalid: Vec<String>,
    /// The same, structured.
    pub rejected: Vec<Rejected>,
}

/// A chain record discarded as invalid: where, why, and what it carried.
#[derive(Clone, Debug)]
pub struct Rejected {
    pub offset: i64,
    pub reason: RuleError,
    /// Origins of the transactions it carried (read leniently from its JSON).
    pub origins: Vec<Origin>,
}

/// `p0@12`: partition 0, offset 12.
pub fn fmt_origins<'a>(origins: impl IntoIterator<Item = &'a Origin>) -> String {
    let all: Vec<String> = origins
        .into_iter()
        .map(|o| format!("p{}@{}", o.partition, o.offset))
        .collect();
    if all.len() > 25 {
        format!("[{} … and {} more]", all[..25].join(", "), all.len() - 25)
    } else {
        format!("[{}]", all.join(", "))
    }
}

/// Origins of the transactions in a record, if it is a block with origins at all.
fn record_origins(payload: &[u8]) -> Vec<Origin> {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) else {
        return Vec::new();
    };
    v["transactions"]
        .as_array()
        .map(|txs| {
            txs.iter()
                .filter_map(|t| {
                    Some(Origin {
                        partition: t["origin"]["partition"].as_i64()? as i32,
                        offset: t["origin"]["offset"].as_i64()?,
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

impl ChainView {
    /// Panics unless each of `expected` origins is on the chain exactly once, nothing
    /// else is, and no record was discarded as invalid. The message names the lost,
    /// duplicated and invalid transactions by origin.
    pub fn assert_exactly_once(&self, expected: &[Origin]) {
        if let Some(report) = self.exactly_once_report(expected, &[]) {
            panic!("{report}");
        }
    }

    /// [`ChainView::assert_exactly_once`], except that invalid records at the offsets
    /// in `forged` are expected (a test wrote them).
    pub fn assert_exactly_once_except(&self, expected: &[Origin], forged: &[i64]) {
        if let Some(report) = self.exactly_once_report(expected, forged) {
            panic!("{report}");
        }
    }

    /// What is wrong with the chain as an exactly-once record of `expected`, if anything.
    pub fn exactly_once_report(&self, expected: &[Origin], forged: &[i64]) -> Option<String> {
        let mut counts: HashMap<Origin, u32> = HashMap::new();
        for o in &self.origins {
            *counts.entry(*o).or_default() += 1;
        }
        let mut problems = Vec::new();
        let mut duplicated: Vec<(Origin, u32)> = counts
            .iter()
            .filter(|(_, &n)| n > 1)
            .map(|(o, n)| (*o, *n))
            .collect();
        duplicated.sort();
        if !duplicated.is_empty() {
            let list: Vec<String> = duplicated
                .iter()
                .take(25)
                .map(|(o, n)| format!("p{}@{} ×{n}", o.partition, o.offset))
                .collect();
            problems.push(format!(
                "{} duplicated on the chain: [{}]",
                duplicated.len(),
                list.join(", ")
            ));
        }
        let invalid: Vec<&Rejected> = self
            .rejected
            .iter()
            .filter(|r| !forged.contains(&r.offset))
            .collect();
        let refused_repeats: Vec<String> = invalid
            .iter()
            .filter_map(|r| match r.reason {
                RuleError::DuplicateOrigin(o) => Some(format!(
                    "p{}@{} (block at offset {} refused for repeating it)",
                    o.partition, o.offset, r.offset
                )),
                _ => None,
            })
            .collect();
        if !refused_repeats.is_empty() {
            problems.push(format!(
                "{} duplicated (a node published a block repeating a transaction already on \
                 the chain; the v2 rules refused it): [{}]",
                refused_repeats.len(),
                refused_repeats.join(", ")
            ));
        }
        if !invalid.is_empty() {
            let list: Vec<String> = invalid
                .iter()
                .take(10)
                .map(|r| {
                    format!(
                        "offset {}: {} carrying {}",
                        r.offset,
                        r.reason,
                        fmt_origins(&r.origins)
                    )
                })
                .collect();
            problems.push(format!(
                "{} invalid chain records: {}",
                invalid.len(),
                list.join("; ")
            ));
        }
        let lost: Vec<&Origin> = expected
            .iter()
            .filter(|o| !counts.contains_key(o))
            .collect();
        if !lost.is_empty() {
            let in_invalid = lost
                .iter()
                .filter(|o| invalid.iter().any(|r| r.origins.contains(o)))
                .count();
            problems.push(format!(
                "{} of {} lost (not on the chain; {in_invalid} of them only in invalid records): {}",
                lost.len(),
                expected.len(),
                fmt_origins(lost)
            ));
        }
        let wanted: std::collections::HashSet<&Origin> = expected.iter().collect();
        let extra: Vec<&Origin> = counts.keys().filter(|o| !wanted.contains(o)).collect();
        if !extra.is_empty() {
            problems.push(format!(
                "{} unexpected transactions on the chain: {}",
                extra.len(),
                fmt_origins(extra)
            ));
        }
        (!problems.is_empty()).then(|| {
            format!(
                "the chain (height {}, {} stale) is not exactly-once:\n  {}",
                self.height,
                self.stale,
                problems.join("\n  ")
            )
        })
    }
}

impl Ledger {
    /// `kafkachain verify --allow-stale` on this ledger's chain topic must succeed.
    pub fn assert_verifies(&self) {
        let out = Command::new(env!("CARGO_BIN_EXE_kafkachain"))
            .args(["verify", "--allow-stale", "--brokers", &self.brokers])
            .args(["--chain-topic", &self.topics.chain])
            .output()
            .expect("running kafkachain verify");
        assert!(
            out.status.success(),
            "kafkachain verify failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

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

    /// Starts a node process in the ledger's group (`<tx topic>-group`); `extra` are
    /// more `kafkachain node` flags.
    pub fn node<S: AsRef<std::ffi::OsStr>>(&self, id: &str, extra: &[S]) -> NodeProc {
        self.node_in_group(id, &self.group(), extra)
    }

    /// The consumer group the nodes of [`Ledger::node`] use (for reads and commits).
    pub fn group(&self) -> String {
        format!("{}-group", self.topics.transactions)
    }

    /// [`Ledger::node`] with another consumer group.
    pub fn node_in_group<S: AsRef<std::ffi::OsStr>>(
        &self,
        id: &str,
        group: &str,
        extra: &[S],
    ) -> NodeProc {
        let node = self.spawn_node(id, group, extra);
        node.wait_running(Duration::from_secs(60));
        node
    }

    /// [`Ledger::node`], waiting up to `timeout` (rather than 60 s) for the node to
    /// run: for nodes that start while the broker is away.
    pub fn node_within<S: AsRef<std::ffi::OsStr>>(
        &self,
        id: &str,
        extra: &[S],
        timeout: Duration,
    ) -> NodeProc {
        let node = self.spawn_node(id, &self.group(), extra);
        node.wait_running(timeout);
        node
    }

    /// Starts a node process without waiting for it to run.
    fn spawn_node<S: AsRef<std::ffi::OsStr>>(
        &self,
        id: &str,
        group: &str,
        extra: &[S],
    ) -> NodeProc {
        let log_path = self
            .dir
            .path()
            .join(format!("{id}.{}.log", rand::random::<u32>()));
        let log = File::create(&log_path).expect("creating node log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_kafkachain"));
        command
            .arg("node")
            .args(self.connect_args())
            .args(["--id", id, "--group", group])
            .arg("--data-dir")
            .arg(self.dir.path().join(id))
            .args(["--threads", "1"])
            .args(extra)
            .env("RUST_LOG", "warn,kafkachain=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        support::set_parent_death_signal(&mut command);
        let child = command.spawn().expect("starting kafkachain node");
        NodeProc {
            id: id.to_string(),
            child: Some(child),
            log_path,
        }
    }

    /// Publishes `count` transactions (to `partition`, or spread); returns their origins.
    pub fn send(&self, count: usize, partition: Option<i32>, from: &str) -> Vec<Origin> {
        let payloads: Vec<String> = (0..count)
            .map(|i| format!(r#"{{"from": "{from}", "to": "bob", "amount": {i}}}"#))
            .collect();
        self.send_payloads(partition, &payloads)
    }

    /// Publishes raw records (to `partition`, or spread) with one idempotent producer,
    /// so a partition keeps their order; returns their origins, sorted.
    pub fn send_payloads<P: AsRef<[u8]>>(
        &self,
        partition: Option<i32>,
        payloads: &[P],
    ) -> Vec<Origin> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let publisher = Publisher::new(
            &self.kafka(),
            &self.topics.transactions,
            Profile::Transactions,
            Some(tx),
        )
        .expect("producer");
        for (i, payload) in payloads.iter().enumerate() {
            publisher
                .send(i as u64, partition, payload.as_ref())
                .expect("send");
        }
        publisher.flush(Duration::from_secs(120)).expect("flush");
        let mut origins = Vec::with_capacity(payloads.len());
        // Acknowledged with offset -1: librdkafka's idempotent producer reports a retry
        // the broker already had (its first answer lost to a restart) as delivered at an
        // unknown offset. Where it landed is read back from the topic.
        let mut unknown = Vec::new();
        for d in rx.try_iter() {
            match d.result.expect("transaction acknowledged") {
                (partition, offset) if offset >= 0 => origins.push(Origin { partition, offset }),
                (partition, _) => unknown.push((partition, d.tag as usize)),
            }
        }
        if !unknown.is_empty() {
            let records = self.transactions_records();
            for (partition, i) in unknown {
                let payload = payloads[i].as_ref();
                let found = records
                    .iter()
                    .filter(|(p, _, bytes)| *p == partition && bytes.as_slice() == payload)
                    .map(|(partition, offset, _)| Origin {
                        partition: *partition,
                        offset: *offset,
                    })
                    .find(|o| !origins.contains(o))
                    .unwrap_or_else(|| {
                        panic!("send {i} acknowledged at an unknown offset and not found in p{partition}")
                    });
                origins.push(found);
            }
        }
        assert_eq!(origins.len(), payloads.len(), "every send acknowledged");
        origins.sort();
        origins
    }

    /// Every record of the transactions topic as (partition, offset, payload).
    pub fn transactions_records(&self) -> Vec<(i32, i64, Vec<u8>)> {
        use rdkafka::consumer::{BaseConsumer, Consumer};
        use rdkafka::Message;
        let consumer: BaseConsumer = self
            .kafka()
            .client(&[
                ("group.id", "kafkachain-test-reader"),
                ("enable.auto.commit", "false"),
            ])
            .create()
            .expect("consumer");
        let mut list = rdkafka::TopicPartitionList::new();
        let mut ends = HashMap::new();
        for p in 0..self.topics.tx_partitions {
            let (_, high) = consumer
                .fetch_watermarks(&self.topics.transactions, p, Duration::from_secs(30))
                .expect("watermarks");
            ends.insert(p, high);
            list.add_partition_offset(&self.topics.transactions, p, rdkafka::Offset::Beginning)
                .expect("assignment");
        }
        consumer.assign(&list).expect("assign");
        // Partitions still to read to their end.
        ends.retain(|_, end| *end > 0);
        let mut records = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !ends.is_empty() {
            assert!(Instant::now() < deadline, "reading the transactions topic");
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                let (partition, offset) = (m.partition(), m.offset());
                records.push((partition, offset, m.payload().unwrap_or(&[]).to_vec()));
                if ends.get(&partition).is_some_and(|end| offset + 1 >= *end) {
                    ends.remove(&partition);
                }
            }
        }
        records
    }

    /// Writes raw records straight to the chain topic; returns their offsets, in order.
    pub fn publish_raw_blocks(&self, records: &[Vec<u8>]) -> Vec<i64> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let publisher =
            Publisher::new(&self.kafka(), &self.topics.chain, Profile::Blocks, Some(tx))
                .expect("producer");
        for (i, r) in records.iter().enumerate() {
            publisher.send(i as u64, None, r).expect("send");
        }
        publisher.flush(Duration::from_secs(30)).expect("flush");
        let mut offsets: Vec<(u64, i64)> = rx
            .try_iter()
            .map(|d| (d.tag, d.result.expect("record acknowledged").1))
            .collect();
        offsets.sort_unstable();
        assert_eq!(offsets.len(), records.len(), "every record acknowledged");
        offsets.into_iter().map(|(_, o)| o).collect()
    }

    /// Replays the chain topic as a node would.
    pub fn replay(&self) -> (ChainState, ChainView) {
        replay_topic(&self.kafka(), &self.topics.chain).expect("reading the chain topic")
    }

    /// Waits until `n` submitted transactions are on the chain. On timeout the panic
    /// says what the chain holds (duplicates, invalid records), not only how many.
    pub fn wait_for_txs(&self, n: usize, timeout: Duration) -> ChainView {
        let started = Instant::now();
        loop {
            let (_, view) = self.replay();
            if view.origins.len() >= n {
                return view;
            }
            if started.elapsed() >= timeout {
                let report = view
                    .exactly_once_report(&view.origins.clone(), &[])
                    .unwrap_or_default();
                panic!(
                    "only {} of {n} transactions reached the chain in {timeout:?}; {report}",
                    view.origins.len()
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Waits until every one of `expected` is on the chain. Fails at once if a
    /// transaction is on the chain twice; on timeout, names the lost transactions
    /// (and any duplicated or invalid ones).
    pub fn wait_for(&self, expected: &[Origin], timeout: Duration) -> ChainView {
        self.wait_for_except(expected, &[], timeout)
    }

    /// [`Ledger::wait_for`] with invalid records at the `forged` offsets expected.
    pub fn wait_for_except(
        &self,
        expected: &[Origin],
        forged: &[i64],
        timeout: Duration,
    ) -> ChainView {
        let started = Instant::now();
        loop {
            let (_, view) = self.replay();
            let on_chain: std::collections::HashSet<&Origin> = view.origins.iter().collect();
            if on_chain.len() < view.origins.len() {
                panic!(
                    "{}",
                    view.exactly_once_report(expected, forged)
                        .unwrap_or_else(|| "duplicated transactions on the chain".into())
                );
            }
            if expected.iter().all(|o| on_chain.contains(o)) {
                return view;
            }
            if started.elapsed() >= timeout {
                panic!(
                    "timed out after {timeout:?} waiting for {} transactions: {}",
                    expected.len(),
                    view.exactly_once_report(expected, forged)
                        .unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// Stops `nodes` (SIGTERM), replays the chain after they all stopped, checks that
    /// it holds each of `expected` exactly once, and that every node reported that
    /// replay's tip (a real one: a node that reported nothing fails).
    pub fn stop_and_check(&self, nodes: &mut [&mut NodeProc], expected: &[Origin]) -> ChainView {
        self.stop_and_check_except(nodes, expected, &[])
    }

    /// [`Ledger::stop_and_check`] with invalid records at the `forged` offsets expected.
    pub fn stop_and_check_except(
        &self,
        nodes: &mut [&mut NodeProc],
        expected: &[Origin],
        forged: &[i64],
    ) -> ChainView {
        for node in nodes.iter_mut() {
            node.terminate();
        }
        let (_, view) = self.replay();
        view.assert_exactly_once_except(expected, forged);
        let stopped: Vec<&NodeProc> = nodes.iter().map(|n| &**n).collect();
        assert_tips(&stopped, &view);
        view
    }
}

/// Replays chain topic `topic` as a node would; the error is returned, since it is
/// expected while brokers come and go.
pub fn replay_topic(
    kafka: &KafkaConfig,
    topic: &str,
) -> Result<(ChainState, ChainView), TransportError> {
    let mut chain = ChainState::new();
    let mut view = ChainView::default();
    read_to_end(kafka, topic, 0, Duration::from_secs(30), |record| {
        view.records = view.records.max(record.offset + 1);
        match chain.apply(&record.payload) {
            Ok(block) => {
                view.origins.extend(&block.origins);
                view.user_txs += (block.tx_count - usize::from(block.miner.is_some())) as u64;
                if let Some(m) = block.miner {
                    *view.blocks_by_miner.entry(m).or_default() += 1;
                }
            }
            Err(d) if d.is_stale() => {
                view.stale += 1;
                view.stale_offsets.push(record.offset);
            }
            Err(d) => {
                let origins = record_origins(&record.payload);
                view.invalid.push(format!(
                    "offset {}: {} (carrying {})",
                    record.offset,
                    d.reason,
                    fmt_origins(&origins)
                ));
                view.rejected.push(Rejected {
                    offset: record.offset,
                    reason: d.reason,
                    origins,
                });
            }
        }
    })?;
    view.height = chain.height();
    view.tip = chain.tip().map(|t| t.hash.to_string()).unwrap_or_default();
    Ok((chain, view))
}

/// Each (stopped) node reported `view`'s tip, which is a real block: take `view` from a
/// replay after the nodes stopped.
pub fn assert_tips(nodes: &[&NodeProc], view: &ChainView) {
    assert!(
        !view.tip.is_empty() && view.height > 0,
        "the replay found no chain"
    );
    for node in nodes {
        assert_eq!(
            node.reported_tip().as_deref(),
            Some(view.tip.as_str()),
            "node {} did not end on the tip of the chain (height {}); its log:\n{}",
            node.id,
            view.height,
            node.log()
        );
    }
}

/// The committed offset of `group` on each partition of `topic` next to the partition's
/// end offset: `(partition, committed, end)`; committed is -1 when nothing is committed.
pub fn committed_vs_end(
    brokers: &str,
    group: &str,
    topic: &str,
    partitions: i32,
) -> Vec<(i32, i64, i64)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("creating a consumer to read committed offsets");
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(30))
        .expect("reading committed offsets");
    (0..partitions)
        .map(|p| {
            let c = match committed.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => -1,
            };
            let (_, high) = consumer
                .fetch_watermarks(topic, p, Duration::from_secs(30))
                .expect("reading watermarks");
            (p, c, high)
        })
        .collect()
}

/// The same flags with `--rules` set (`seed` or `v2`).
pub fn with_rules(mut flags: Vec<String>, rules: &str) -> Vec<String> {
    flags.extend(["--rules".into(), rules.into()]);
    flags
}

/// Partitions a node logged as assigned to it most recently (non-empty), if any.
pub fn assigned_partitions(log: &str) -> Option<Vec<i32>> {
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("transaction partitions assigned"))?;
    let list = line.split("partitions=[").nth(1)?.split(']').next()?;
    let parts: Vec<i32> = list
        .split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    (!parts.is_empty()).then_some(parts)
}

/// The `pending=N` of the node's most recent status line.
pub fn last_pending(log: &str) -> Option<usize> {
    let line = log.lines().rev().find(|l| l.contains(" pending="))?;
    line.split(" pending=")
        .nth(1)?
        .split(' ')
        .next()?
        .parse()
        .ok()
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
    /// Waits up to `timeout` for the node to log `node running`; panics with its log
    /// if it exits first or takes longer.
    pub fn wait_running(&self, timeout: Duration) {
        support::wait_until(timeout, &format!("node {} to start", self.id), || {
            self.assert_alive();
            self.log().contains("node running").then_some(())
        });
    }

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
