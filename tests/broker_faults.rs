//! Broker faults under a steady stream of transactions: the broker (or, on a 3-node
//! Apache Kafka cluster, the leader of the chain partition and then a second broker)
//! goes away mid-stream and comes back. Afterwards every acknowledged transaction is
//! on the chain exactly once, every node reports the same tip, and `kafkachain verify`
//! accepts the chain topic.
//!
//! Each test starts its own broker with `scripts/broker` (the shared test broker is
//! never touched). Which tests run depends on `KAFKACHAIN_TEST_ENGINE` (see
//! `support::engine`): the single-broker tests run on both engines, the cluster
//! test only on Kafka (Tansu has no replication).
//!
//! On Tansu 0.6.0 the broker is killed (SIGKILL) rather than stopped: a graceful stop
//! under load leaves it unable to serve anything after its restart (a panic in its
//! idempotent-producer check; see docs/operations.md, "Tansu gaps"). A crash and
//! restart is what these tests need, and Tansu survives that.

mod cluster;
mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kafkachain::chain::{ChainState, Origin};
use kafkachain::transport::publish::{Profile, Publisher};
use kafkachain::transport::{topics, KafkaConfig, TopicNames, TransportError};
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

use cluster::{node_flags, ChainView, Ledger, NodeProc};
use support::{Engine, ScriptBroker};

/// A ledger (fresh topics, 2 transactions partitions) on `broker`.
fn ledger_on(broker: &ScriptBroker, name: &str) -> Ledger {
    let topics = TopicNames {
        transactions: support::unique_topic(&format!("{name}-tx")),
        chain: support::unique_topic(&format!("{name}-chain")),
        tx_partitions: 2,
    };
    topics::ensure_topics(&KafkaConfig::new(&broker.addr), &topics).unwrap_or_else(|e| {
        panic!(
            "creating topics on {}: {e}\n{}",
            broker.addr,
            broker.log_tail()
        )
    });
    Ledger {
        brokers: broker.addr.clone(),
        topics,
        dir: tempfile::tempdir().expect("tempdir"),
    }
}

/// An independent client sending one transaction every `every` until stopped, with
/// the node's own producer settings (idempotent, acks=all, librdkafka retries for up
/// to its 300 s message timeout).
struct Stream {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
    thread: Option<JoinHandle<(Vec<Origin>, Vec<String>)>>,
}

impl Stream {
    fn start(ledger: &Ledger, from: &str, every: Duration) -> Stream {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = crossbeam_channel::unbounded();
        let publisher = Publisher::new(
            &ledger.kafka(),
            &ledger.topics.transactions,
            Profile::Transactions,
            Some(tx),
        )
        .expect("transaction producer");
        let from = from.to_string();
        let thread = {
            let (stop, acked) = (Arc::clone(&stop), Arc::clone(&acked));
            std::thread::spawn(move || {
                let mut origins = Vec::new();
                let mut failures = Vec::new();
                let collect = |origins: &mut Vec<Origin>, failures: &mut Vec<String>| {
                    for d in rx.try_iter() {
                        match d.result {
                            Ok((partition, offset)) => {
                                origins.push(Origin { partition, offset });
                                acked.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => failures.push(format!("tx {}: {e}", d.tag)),
                        }
                    }
                };
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let payload = format!(r#"{{"from": "{from}", "to": "bob", "amount": {i}}}"#);
                    publisher
                        .send(i, None, payload.as_bytes())
                        .expect("queueing a transaction");
                    i += 1;
                    collect(&mut origins, &mut failures);
                    std::thread::sleep(every);
                }
                // Whatever is still queued gets its answer (or its 300 s timeout).
                let _ = publisher.flush(Duration::from_secs(330));
                collect(&mut origins, &mut failures);
                assert_eq!(
                    origins.len() + failures.len(),
                    i as usize,
                    "a delivery report for every transaction sent"
                );
                (origins, failures)
            })
        };
        Stream {
            stop,
            acked,
            thread: Some(thread),
        }
    }

    fn acked(&self) -> usize {
        self.acked.load(Ordering::Relaxed)
    }

    /// Stops sending and returns the acknowledged transactions, sorted. Panics if
    /// any transaction was not acknowledged in the end: with a 300 s message
    /// timeout, every fault here is over long before a send gives up.
    fn finish(mut self) -> Vec<Origin> {
        self.stop.store(true, Ordering::Relaxed);
        let (mut origins, failures) = self
            .thread
            .take()
            .expect("stream thread")
            .join()
            .expect("stream thread panicked");
        assert!(
            failures.is_empty(),
            "transactions not acknowledged: {} e.g. {:?}",
            failures.len(),
            &failures[..failures.len().min(3)]
        );
        origins.sort();
        origins
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Node id (= node number in `scripts/broker`) leading the chain partition.
fn chain_leader(ledger: &Ledger) -> u32 {
    let probe: BaseConsumer = ledger
        .kafka()
        .client(&[])
        .create()
        .expect("metadata client");
    support::wait_until(
        Duration::from_secs(60),
        "a leader for the chain partition",
        || {
            let md = probe
                .fetch_metadata(Some(&ledger.topics.chain), Duration::from_secs(5))
                .ok()?;
            let leader = md.topics().first()?.partitions().first()?.leader();
            u32::try_from(leader).ok().filter(|&l| l >= 1)
        },
    )
}

/// Replays the chain topic once (as `Ledger::replay`, but returning the error, which
/// is expected while brokers come and go).
fn try_replay(ledger: &Ledger) -> Result<ChainView, TransportError> {
    cluster::replay_topic(&ledger.kafka(), &ledger.topics.chain).map(|(_, view)| view)
}

/// [`try_replay`] until it succeeds (a minute at most).
fn replay(ledger: &Ledger) -> ChainView {
    let mut last = None;
    for _ in 0..30 {
        match try_replay(ledger) {
            Ok(view) => return view,
            Err(err) => last = Some(err),
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    panic!("replaying the chain topic kept failing: {last:?}");
}

/// The topic (as `topics::ensure_topics`, i.e. `kafkachain topics create`, made it on
/// 3 brokers) has 3 replicas per partition and `min.insync.replicas=2`.
fn assert_replicated(ledger: &Ledger, topic: &str) {
    let probe: BaseConsumer = ledger.kafka().client(&[]).create().expect("client");
    // A broker that has not yet caught up with the controller answers with no
    // partitions for a topic created a moment ago: ask again until one knows it.
    let replicas: Vec<(i32, usize)> = support::wait_until(
        Duration::from_secs(60),
        &format!("metadata of {topic} with its partitions"),
        || {
            let md = probe
                .fetch_metadata(Some(topic), Duration::from_secs(10))
                .ok()?;
            let partitions = md.topics().first()?.partitions();
            (!partitions.is_empty()).then(|| {
                partitions
                    .iter()
                    .map(|p| (p.id(), p.replicas().len()))
                    .collect()
            })
        },
    );
    for (id, count) in replicas {
        assert_eq!(count, 3, "{topic}[{id}] replicas");
    }
    let admin: AdminClient<DefaultClientContext> =
        ledger.kafka().client(&[]).create().expect("admin");
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    let resource = futures_executor::block_on(
        admin.describe_configs([&ResourceSpecifier::Topic(topic)], &opts),
    )
    .expect("describe_configs")
    .into_iter()
    .next()
    .expect("one result")
    .expect("topic configs");
    let min_isr = resource
        .entries
        .iter()
        .find(|e| e.name == "min.insync.replicas")
        .and_then(|e| e.value.clone());
    assert_eq!(min_isr.as_deref(), Some("2"), "{topic} min.insync.replicas");
}

/// Transactions currently on the chain.
fn txs_on_chain(ledger: &Ledger) -> usize {
    replay(ledger).origins.len()
}

/// Waits until at least `n` transactions are on the chain; panics with the broker
/// and node logs otherwise.
fn wait_for_chain(ledger: &Ledger, n: usize, timeout: Duration, what: &str, nodes: &[&NodeProc]) {
    let deadline = Instant::now() + timeout;
    loop {
        for node in nodes {
            node.assert_alive();
        }
        let have = txs_on_chain(ledger);
        if have >= n {
            return;
        }
        if Instant::now() > deadline {
            let logs: Vec<String> = nodes
                .iter()
                .map(|n| {
                    let log = n.log();
                    let lines: Vec<&str> = log.lines().collect();
                    format!(
                        "--- {}\n{}",
                        n.id,
                        lines[lines.len().saturating_sub(20)..].join("\n")
                    )
                })
                .collect();
            panic!(
                "{what}: only {have} of {n} transactions on the chain after {timeout:?}\n{}",
                logs.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Takes single-broker `broker` down: a graceful stop on Kafka, SIGKILL on Tansu (see
/// the module docs).
fn take_down(broker: &ScriptBroker) {
    match support::engine() {
        Engine::Kafka => broker.stop_node(1),
        Engine::Tansu => broker.kill(1),
    }
}

/// Waits until the nodes' group has committed every partition of the transactions
/// topic up to its end, while the nodes run: no final commit at SIGTERM can help, so
/// this holds only if every failed asynchronous commit was retried.
fn wait_committed_to_end(ledger: &Ledger, timeout: Duration, nodes: &[&NodeProc]) {
    let deadline = Instant::now() + timeout;
    loop {
        for node in nodes {
            node.assert_alive();
        }
        let positions = cluster::committed_vs_end(
            &ledger.brokers,
            &ledger.group(),
            &ledger.topics.transactions,
            ledger.topics.tx_partitions,
        );
        if positions
            .iter()
            .all(|&(_, committed, end)| committed == end)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the group's commits stay behind the partitions' ends after {timeout:?} \
             (partition, committed, end): {positions:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Every acknowledged transaction once, the same tip on every node, verify exits 0.
fn assert_ledger_intact(ledger: &Ledger, origins: &[Origin], nodes: Vec<NodeProc>) {
    let nodes_ref: Vec<&NodeProc> = nodes.iter().collect();
    wait_for_chain(
        ledger,
        origins.len(),
        Duration::from_secs(300),
        "after the faults",
        &nodes_ref,
    );
    let view = replay(ledger);
    view.assert_exactly_once(origins);
    assert!(
        view.invalid.is_empty(),
        "invalid records: {:?}",
        view.invalid
    );
    for mut node in nodes {
        node.terminate();
        assert_eq!(
            node.reported_tip().as_deref(),
            Some(view.tip.as_str()),
            "node {} stopped on another tip; log:\n{}",
            node.id,
            node.log()
        );
    }
    ledger.assert_verifies();
}

/// The broker goes down mid-stream and is started again on the same port and data:
/// the nodes ride it out (they keep running and retrying) and lose nothing. Once the
/// stream ends, the group's committed offsets reach the partitions' ends while the
/// nodes still run (issue 13 item 7: an asynchronous commit that failed while the
/// broker was away is retried, not taken as done). This check does not catch the old
/// behaviour (a failed asynchronous commit ignored): commits after the restart
/// succeed and cover it; it passed with that behaviour restored. Runs on both engines (a 1-node
/// Kafka on Kafka; on Tansu the broker is killed, see the module docs: a graceful
/// stop is what kept this test from running on Tansu before).
#[test]
fn broker_restart_mid_stream_loses_nothing() {
    let engine = support::engine();
    let broker = ScriptBroker::start(engine, 1).unwrap_or_else(|e| panic!("{e}"));
    let ledger = ledger_on(&broker, "restart");
    // Tansu loses track of group members across its own restart far too often (see
    // docs/operations.md), so on Tansu the nodes own a partition each (the
    // tutorial's mode); Apache Kafka runs them as one consumer group.
    let flags = |p: i32| match engine {
        Engine::Tansu => node_flags(Some(p), 20, 8),
        Engine::Kafka => node_flags(None, 20, 8),
    };
    let a = ledger.node("steady-a", &flags(0));
    let b = ledger.node("steady-b", &flags(1));
    let stream = Stream::start(&ledger, "alice", Duration::from_millis(25));
    wait_for_chain(
        &ledger,
        40,
        Duration::from_secs(120),
        "before the restart",
        &[&a, &b],
    );

    take_down(&broker);
    let acked_at_stop = stream.acked();
    std::thread::sleep(Duration::from_secs(10));
    a.assert_alive();
    b.assert_alive();
    assert!(
        stream.acked() <= acked_at_stop + 5,
        "transactions acknowledged while the broker was down"
    );
    // The operator can tell from the log why nothing happens (librdkafka's line,
    // repeated every few seconds while it keeps reconnecting).
    for node in [&a, &b] {
        let log = node.log();
        assert!(
            log.contains("All broker connections are down"),
            "node {} says nothing about the broker being unreachable:\n{log}",
            node.id
        );
    }
    broker.restart(1);

    let resumed_at = stream.acked();
    support::wait_until(
        Duration::from_secs(120),
        "transactions to be acknowledged again after the restart",
        || (stream.acked() > resumed_at + 40).then_some(()),
    );
    let origins = stream.finish();
    wait_for_chain(
        &ledger,
        origins.len(),
        Duration::from_secs(300),
        "after the restart",
        &[&a, &b],
    );
    wait_committed_to_end(&ledger, Duration::from_secs(60), &[&a, &b]);
    assert_ledger_intact(&ledger, &origins, vec![a, b]);
}

/// Issue 13 item 7: a node started while its broker is down (or restarting) waits for
/// it, retrying with backoff and saying so in its log, then replays the chain and
/// lands new transactions exactly once. The broker stays down for 20 s, longer than
/// one metadata round trip may take (`transport::BROKER_TIMEOUT`, 15 s): the old
/// node gave up at its first failed start-up request ("reading cluster metadata")
/// and exited, which fails this test at `ledger.node_within` ("exited early");
/// checked by reverting the start-up retry.
#[test]
fn a_node_started_while_the_broker_is_down_waits_and_replays() {
    let engine = support::engine();
    let broker = ScriptBroker::start(engine, 1).unwrap_or_else(|e| panic!("{e}"));
    let ledger = ledger_on(&broker, "late-broker");
    // A chain to replay: one node puts 30 transactions on it, then stops.
    let mut first = ledger.node("first", &node_flags(Some(0), 5, 8));
    let mut origins = ledger.send(30, Some(0), "alice");
    wait_for_chain(
        &ledger,
        origins.len(),
        Duration::from_secs(120),
        "before",
        &[&first],
    );
    first.terminate();

    take_down(&broker);
    let node = std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_secs(20));
            broker.restart(1);
        });
        // "node running" comes after the broker is back (slow on a busy machine).
        ledger.node_within(
            "patient",
            &node_flags(Some(0), 5, 8),
            Duration::from_secs(240),
        )
    });
    let log = node.log();
    assert!(
        log.contains("(is the broker down or restarting?); retrying"),
        "the node did not say why it waits:\n{log}"
    );
    assert!(log.contains("replayed chain"), "{log}");

    origins.extend(ledger.send(20, Some(0), "bob"));
    origins.sort();
    assert_ledger_intact(&ledger, &origins, vec![node]);
}

/// Publishes a valid v2 chain (difficulty 4) of `blocks` blocks of `txs` transactions
/// (~2 KB each) to the ledger's chain topic, claiming origins on `partition` from offset 0 (no
/// such records need exist: replay checks only the chain); returns those origins.
fn publish_long_chain(ledger: &Ledger, blocks: usize, txs: usize, partition: i32) -> Vec<Origin> {
    use kafkachain::chain::{self, BlockTemplate, Miner, Rules, Transaction};
    let publisher = Publisher::new(&ledger.kafka(), &ledger.topics.chain, Profile::Blocks, None)
        .expect("chain producer");
    let mut state = ChainState::new();
    let genesis = chain::genesis(Rules::V2 { difficulty: 4 }, 1_700_000_000.0);
    state.apply(&genesis).expect("own genesis");
    publisher.send(0, Some(0), &genesis).expect("send genesis");
    let miner = Miner::new(1);
    let never = AtomicBool::new(false);
    let text = format!(
        r#"{{"from": "dave {}", "to": "erin", "amount": 3}}"#,
        "d".repeat(2_000)
    );
    let submitted = chain::parse_submitted(text.as_bytes()).expect("transaction");
    let mut origins = Vec::new();
    for b in 0..blocks {
        let mut block_txs: Vec<Transaction> = (0..txs)
            .map(|_| {
                let origin = Origin {
                    partition,
                    offset: origins.len() as i64,
                };
                origins.push(origin);
                Transaction::from_submitted(&submitted, origin)
            })
            .collect();
        block_txs.push(Transaction::reward("builder", &serde_json::Number::from(1)));
        let tip = state.tip().expect("tip").clone();
        let rules = state.rules().expect("rules");
        let template = BlockTemplate::new(&tip, rules, tip.timestamp + 0.001, &block_txs);
        let mined = miner.mine(&template.work(), &never).expect("mining");
        let block = template.seal(mined.nonce);
        state.apply(&block).expect("own block");
        publisher
            .send(b as u64 + 1, Some(0), &block)
            .expect("send block");
    }
    publisher.flush(Duration::from_secs(300)).expect("flush");
    origins
}

/// The log of the node whose id is `id` (a file `<id>.<n>.log` in the ledger's dir),
/// if it has one yet.
fn log_of(ledger: &Ledger, id: &str) -> Option<String> {
    std::fs::read_dir(ledger.dir.path())
        .ok()?
        .filter_map(Result::ok)
        .find(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.starts_with(&format!("{id}.")) && name.ends_with(".log")
        })
        .and_then(|e| std::fs::read_to_string(e.path()).ok())
}

/// Issue 13 item 7: the broker is killed (SIGKILL, both engines) the moment a node
/// starts replaying a chain of 200 blocks of 50 transactions of ~2 KB (~20 MB: more
/// than the reader fetches ahead before the kill), and is back 5 s later. The node
/// retries the failed reads (`chain topic read error during replay; retrying`),
/// finishes the replay, and lands new transactions exactly once. With replay read
/// errors made fatal again (as start-up once treated them), the node exits with
/// `reading chain topic …: AllBrokersDown` and this test fails at `node_within`
/// ("exited early"; checked on Tansu).
#[test]
fn a_broker_restart_during_replay_does_not_stop_the_node() {
    let engine = support::engine();
    let broker = ScriptBroker::start(engine, 1).unwrap_or_else(|e| panic!("{e}"));
    let ledger = ledger_on(&broker, "replay-restart");
    let mut origins = publish_long_chain(&ledger, 200, 50, 1);
    let (node, replayed_before_kill) = std::thread::scope(|scope| {
        let killer = scope.spawn(|| {
            support::wait_until(
                Duration::from_secs(120),
                "the node to start replaying",
                || {
                    log_of(&ledger, "replayer")
                        .filter(|l| l.contains("replaying the chain topic"))
                        .map(|_| ())
                },
            );
            broker.kill(1);
            let log = log_of(&ledger, "replayer").unwrap_or_default();
            std::thread::sleep(Duration::from_secs(5));
            broker.restart(1);
            log.contains("replayed chain")
        });
        // "node running" comes at the end of the replay (a broker restart is slow on
        // a busy machine: wait long).
        let node = ledger.node_within(
            "replayer",
            &node_flags(Some(0), 5, 8),
            Duration::from_secs(240),
        );
        (node, killer.join().expect("killer thread"))
    });
    assert!(
        !replayed_before_kill,
        "the replay was over before the broker went down (make the chain longer):\n{}",
        node.log()
    );
    origins.extend(ledger.send(20, Some(0), "bob"));
    origins.sort();
    assert_ledger_intact(&ledger, &origins, vec![node]);
}

/// Three Kafka brokers (replication 3, min.insync.replicas 2), two nodes in one
/// group, a steady stream. `kill -9` the leader of the chain partition: the chain goes
/// on with two brokers. Stop a second broker: one in-sync replica is left, below
/// min.insync.replicas, so producers are refused and retry (nothing is acknowledged
/// that only one broker holds). Bring both back: everything acknowledged reaches the
/// chain exactly once.
#[test]
fn kafka_leader_killed_then_below_min_isr_loses_nothing() {
    if support::skip_unless(Engine::Kafka, "needs a replicated 3-broker cluster") {
        return;
    }
    let broker = ScriptBroker::start(Engine::Kafka, 3).unwrap_or_else(|e| panic!("{e}"));
    let ledger = ledger_on(&broker, "leader-kill");
    assert_replicated(&ledger, &ledger.topics.chain);
    assert_replicated(&ledger, &ledger.topics.transactions);
    let a = ledger.node("member-a", &node_flags(None, 20, 8));
    let b = ledger.node("member-b", &node_flags(None, 20, 8));
    let stream = Stream::start(&ledger, "carol", Duration::from_millis(25));
    wait_for_chain(
        &ledger,
        40,
        Duration::from_secs(120),
        "before the faults",
        &[&a, &b],
    );

    let leader = chain_leader(&ledger);
    eprintln!("killing broker {leader}, the chain partition's leader");
    broker.kill(leader);
    let before = txs_on_chain(&ledger);
    wait_for_chain(
        &ledger,
        before + 100,
        Duration::from_secs(180),
        &format!("after killing broker {leader}"),
        &[&a, &b],
    );
    let new_leader = chain_leader(&ledger);
    assert_ne!(new_leader, leader, "leadership moved off the killed broker");

    eprintln!("stopping broker {new_leader}: one in-sync replica left");
    broker.stop_node(new_leader);
    // Give in-flight requests a moment to finish, then nothing may be acknowledged:
    // every partition is down to one in-sync replica.
    std::thread::sleep(Duration::from_secs(3));
    let acked_below_isr = stream.acked();
    std::thread::sleep(Duration::from_secs(15));
    a.assert_alive();
    b.assert_alive();
    assert_eq!(
        stream.acked(),
        acked_below_isr,
        "transactions were acknowledged with one in-sync replica (min.insync.replicas=2)"
    );

    eprintln!("restarting brokers {leader} and {new_leader}");
    broker.restart(leader);
    broker.restart(new_leader);
    let resumed_at = stream.acked();
    support::wait_until(
        Duration::from_secs(180),
        "transactions to be acknowledged again",
        || (stream.acked() > resumed_at + 40).then_some(()),
    );
    let origins = stream.finish();
    assert_ledger_intact(&ledger, &origins, vec![a, b]);
}
