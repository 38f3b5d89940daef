//! Who may write: a secured Apache Kafka (`scripts/broker start --secure`: SASL/SCRAM
//! over TLS, the StandardAuthorizer, and ACLs by principal) against the real
//! `kafkachain` commands, with credentials passed through `-X`.
//!
//! - miners (`miner-1`, `miner-2`) run nodes in a consumer group and write the chain;
//!   a client sends transactions; a reader watches, verifies, prints, lists and
//!   serves the chain over HTTP;
//! - a client without credentials, or with a wrong password, is refused;
//! - the broker itself refuses a block written by the client or the reader principal
//!   (`TOPIC_AUTHORIZATION_FAILED`), so nothing reaches the chain topic for replay to
//!   judge, while a miner may write the same record;
//! - a reader can read but not write either topic, and cannot use the chain reader's
//!   group (which it may only look up: `Describe`, not `Read`).
//!
//! The secured broker is this test process's own (one JVM for all tests here, on free
//! ports, stopped by its watcher when the process exits). Tansu 0.6.0 has no TLS,
//! SASL or ACLs: the tests skip themselves there.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use kafkachain::chain::template::genesis;
use kafkachain::chain::Rules;
use kafkachain::transport::{topics, TopicNames};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord};
use support::secure::{self, report, text, SecureBroker};
use support::Engine;

const SKIP_REASON: &str = "SASL/SCRAM, TLS and ACLs: Tansu 0.6.0 has none of them";

fn secure_broker() -> &'static SecureBroker {
    static BROKER: OnceLock<Result<SecureBroker, String>> = OnceLock::new();
    match BROKER.get_or_init(secure::start_secure_broker) {
        Ok(broker) => broker,
        Err(err) => panic!("{err}"),
    }
}

/// Topics named under the ACLs' prefixes (`transactions`, `blockchain`), created by
/// the admin (no other principal may create topics).
fn ledger(broker: &SecureBroker, name: &str) -> TopicNames {
    let names = TopicNames {
        transactions: support::unique_topic(&format!("transactions-{name}")),
        chain: support::unique_topic(&format!("blockchain-{name}")),
        tx_partitions: 2,
    };
    let out = kafkachain(
        broker,
        "admin",
        &names,
        &["topics", "create"],
        &[],
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "topics create as admin: {}",
        report(&out)
    );
    names
}

/// Runs `kafkachain COMMAND <connect flags> <user's -X> EXTRA` (user "" = no
/// credentials) and waits at most `limit`.
fn kafkachain(
    broker: &SecureBroker,
    user: &str,
    names: &TopicNames,
    command: &[&str],
    extra: &[&str],
    limit: Duration,
) -> Output {
    let mut args: Vec<String> = command.iter().map(|s| s.to_string()).collect();
    args.extend(broker.connect(names));
    if !user.is_empty() {
        args.extend(broker.x_args(user));
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    run(&args, limit)
}

fn run(args: &[String], limit: Duration) -> Output {
    let child = Command::new(env!("CARGO_BIN_EXE_kafkachain"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running kafkachain");
    wait_output(child, limit, &args.join(" "))
}

/// The output of `child`, killed (and the test failed) if it runs longer than `limit`.
fn wait_output(mut child: Child, limit: Duration, what: &str) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait().expect("waiting for kafkachain") {
            Some(_) => return child.wait_with_output().expect("collecting output"),
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("collecting output");
                panic!(
                    "kafkachain {what} still running after {limit:?}: {}",
                    report(&out)
                );
            }
            None => std::thread::sleep(Duration::from_millis(50)),
        }
    }
}

/// A `kafkachain node` as `user`, logging to a file; SIGTERM and reaped on drop.
struct Node {
    child: Child,
    log: PathBuf,
}

impl Node {
    fn start(
        broker: &SecureBroker,
        user: &str,
        names: &TopicNames,
        group: &str,
        dir: &Path,
    ) -> Node {
        let log = dir.join(format!("{user}.log"));
        let file = std::fs::File::create(&log).expect("node log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_kafkachain"));
        command
            .arg("node")
            .args(broker.connect(names))
            .args(broker.x_args(user))
            .args(["--id", user, "--group", group, "--threads", "1"])
            .args(["--difficulty", "8", "--block-size", "5"])
            .args(["--block-timeout", "100ms"])
            .arg("--data-dir")
            .arg(dir.join(user))
            .env("RUST_LOG", "warn,kafkachain=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        support::set_parent_death_signal(&mut command);
        let node = Node {
            child: command.spawn().expect("starting kafkachain node"),
            log,
        };
        support::wait_until(
            Duration::from_secs(120),
            &format!("node {user} to start"),
            || node.running_or_panic(),
        );
        node
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn running_or_panic(&self) -> Option<()> {
        let log = self.log();
        if log.contains("node running") {
            return Some(());
        }
        let pid = self.child.id();
        if !Path::new(&format!("/proc/{pid}")).exists() {
            panic!("node exited during start-up:\n{log}");
        }
        None
    }

    /// SIGTERM, then the exit status and the log.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("waiting for node") {
                return (status, self.log());
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("node ignored SIGTERM for 60 s:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes one record with `user`'s credentials (acks=all; `idempotent` as the node's
/// producer is); the broker's answer. A principal with no Write on any topic gets no
/// producer id, so an idempotent producer fails before it sends anything: refusals of
/// such principals are checked without idempotence, where the broker answers the
/// produce request itself.
fn produce_as(
    broker: &SecureBroker,
    user: &str,
    topic: &str,
    payload: &[u8],
    idempotent: bool,
) -> Result<(i32, i64), KafkaError> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &broker.addr)
        .set("enable.idempotence", idempotent.to_string())
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .set("log_level", "0");
    for kv in broker.settings(user) {
        let (k, v) = kv.split_once('=').expect("key=value");
        config.set(k, v);
    }
    let producer: FutureProducer = config.create().expect("producer");
    let record = FutureRecord::<(), [u8]>::to(topic).payload(payload);
    futures_executor::block_on(producer.send(record, Duration::from_secs(30)))
        .map_err(|(err, _)| err)
}

/// End offsets of `topic`'s partitions, read by the admin.
fn end_offsets(broker: &SecureBroker, topic: &str) -> Vec<i64> {
    let info = topics::describe_topic(&broker.kafka("admin"), topic).expect("describing topic");
    info.partitions.iter().map(|p| p.high).collect()
}

/// The body of `GET path` on `addr` if it answered 200.
fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_string())
}

fn is_authorization_failure(err: &KafkaError) -> bool {
    err.rdkafka_error_code() == Some(RDKafkaErrorCode::TopicAuthorizationFailed)
}

#[test]
fn miners_clients_and_readers_work_with_credentials_through_x() {
    if support::skip_unless(Engine::Kafka, SKIP_REASON) {
        return;
    }
    let broker = secure_broker();
    let names = ledger(broker, "works");
    let dir = tempfile::tempdir().expect("tempdir");
    // Two miner principals in one consumer group: one transactions partition each.
    let group = support::unique_topic("kafkachain-secure");
    let miner1 = Node::start(broker, "miner-1", &names, &group, dir.path());
    let miner2 = Node::start(broker, "miner-2", &names, &group, dir.path());

    let out = kafkachain(
        broker,
        "client",
        &names,
        &["send"],
        &[
            "--from", "alice", "--to", "bob", "--amount", "1", "--count", "20", "--rate", "200",
        ],
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "send as client: {}", report(&out));

    let out = kafkachain(
        broker,
        "reader",
        &names,
        &["watch"],
        &["--until-txs", "20", "--timeout", "180"],
        Duration::from_secs(240),
    );
    assert!(
        out.status.success(),
        "the 20 transactions on the chain (watch as reader): {}\nminer-1:\n{}\nminer-2:\n{}",
        report(&out),
        miner1.log(),
        miner2.log()
    );

    let out = run(
        &[
            "verify".into(),
            "--allow-stale".into(),
            "--brokers".into(),
            broker.addr.clone(),
            "--chain-topic".into(),
            names.chain.clone(),
        ]
        .into_iter()
        .chain(broker.x_args("reader"))
        .collect::<Vec<_>>(),
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "verify as reader: {}", report(&out));
    assert!(text(&out.stdout).contains("height:"), "{}", report(&out));

    let out = kafkachain(
        broker,
        "reader",
        &names,
        &["chain"],
        &[],
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "chain as reader: {}", report(&out));
    let blocks = text(&out.stdout);
    assert!(
        blocks.lines().count() >= 2 && blocks.contains("\"alice\""),
        "the chain holds the genesis and the client's transactions: {blocks}"
    );

    let out = kafkachain(
        broker,
        "reader",
        &names,
        &["topics", "list"],
        &[],
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "topics list as reader: {}",
        report(&out)
    );
    assert!(text(&out.stdout).contains(&names.chain), "{}", report(&out));

    // The read side as the reader: `serve` indexes the chain and answers over HTTP.
    let serve_log = dir.path().join("serve.log");
    let mut serve = Command::new(env!("CARGO_BIN_EXE_kafkachain"))
        .arg("serve")
        .args(broker.connect(&names))
        .args(broker.x_args("reader"))
        .args(["--listen", "127.0.0.1:0", "--index"])
        .arg(dir.path().join("index.sqlite"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&serve_log).expect("serve log"))
        .spawn()
        .expect("starting kafkachain serve");
    let addr = support::wait_until(Duration::from_secs(120), "serve to listen", || {
        let log = std::fs::read_to_string(&serve_log).unwrap_or_default();
        if let Ok(Some(status)) = serve.try_wait() {
            panic!("serve exited with {status}:\n{log}");
        }
        log.split("serving on http://")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .map(str::to_string)
    });
    let height = support::wait_until(Duration::from_secs(120), "serve to index the chain", || {
        http_get(&addr, "/blocks/tip/height")
            .and_then(|body| body.trim().parse::<usize>().ok())
            .filter(|h| *h > 0)
    });
    let _ = serve.kill();
    let _ = serve.wait();
    assert!(
        height > 0,
        "serve as reader indexed blocks past the genesis"
    );

    // Both miner principals wrote blocks, and neither met a refusal.
    for (name, node) in [("miner-1", miner1), ("miner-2", miner2)] {
        let (status, log) = node.stop();
        assert!(status.success(), "{name} exited with {status}:\n{log}");
        assert!(
            !log.to_lowercase().contains("authoriz"),
            "{name} was refused something:\n{log}"
        );
    }
}

#[test]
fn a_client_without_credentials_is_refused() {
    if support::skip_unless(Engine::Kafka, SKIP_REASON) {
        return;
    }
    let broker = secure_broker();
    let names = ledger(broker, "anonymous");
    let send: Vec<String> = ["--from", "mallory", "--to", "bob", "--amount", "1"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // TLS and SCRAM, but a wrong password.
    let ca = format!("ssl.ca.location={}", broker.ca().display());
    let mut wrong: Vec<String> = Vec::new();
    for kv in [
        "security.protocol=SASL_SSL",
        "sasl.mechanisms=SCRAM-SHA-512",
        "sasl.username=client",
        "sasl.password=not-the-password",
        &ca,
    ] {
        wrong.extend(["-X".to_string(), kv.to_string()]);
    }
    let command = |name: &str, x: &[String], extra: &[String]| -> Vec<String> {
        let mut args = vec![name.to_string()];
        args.extend(broker.connect(&names));
        args.extend(x.iter().cloned());
        args.extend(extra.iter().cloned());
        args
    };
    // Each waits for the client's metadata timeout: run them side by side.
    let attempts = [
        (
            "send without credentials (plaintext to a TLS listener)",
            command("send", &[], &send),
        ),
        ("send with a wrong password", command("send", &wrong, &send)),
        ("chain with a wrong password", command("chain", &wrong, &[])),
    ];
    let outputs: Vec<(&str, Output)> = std::thread::scope(|scope| {
        let handles: Vec<_> = attempts
            .iter()
            .map(|(what, args)| scope.spawn(move || (*what, run(args, Duration::from_secs(180)))))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("attempt"))
            .collect()
    });
    for (what, out) in &outputs {
        assert!(!out.status.success(), "{what} must fail: {}", report(out));
    }
    // Both commands say why (the metadata-only client of `send` too).
    for (what, out) in &outputs[1..] {
        assert!(
            text(&out.stderr).contains("Authentication failed"),
            "{what}: the broker refused the password, and the error says so: {}",
            report(out)
        );
    }
    assert_eq!(
        end_offsets(broker, &names.transactions),
        vec![0, 0],
        "nothing reached the transactions topic"
    );
}

#[test]
fn the_broker_refuses_blocks_from_client_and_reader_principals() {
    if support::skip_unless(Engine::Kafka, SKIP_REASON) {
        return;
    }
    let broker = secure_broker();
    let names = ledger(broker, "forge");
    // A well-formed genesis block: whoever writes the chain's first record sets its rules.
    let block = genesis(Rules::V2 { difficulty: 8 }, 1_700_000_000.0);

    // The client writes the transactions topic, so it gets a producer id and its
    // idempotent producer (the node's settings) reaches the chain partition's leader.
    for (user, idempotent) in [("client", true), ("client", false), ("reader", false)] {
        match produce_as(broker, user, &names.chain, &block, idempotent) {
            Err(err) if is_authorization_failure(&err) => {}
            other => panic!(
                "{user} writing a block to the chain topic (idempotent: {idempotent}): \
                 expected TopicAuthorizationFailed, got {other:?}"
            ),
        }
    }
    assert_eq!(
        end_offsets(broker, &names.chain),
        vec![0],
        "the broker kept nothing for replay to judge"
    );
    // Miners may not submit transactions either: each role writes one topic.
    match produce_as(
        broker,
        "miner-1",
        &names.transactions,
        br#"{"from": "miner", "to": "x", "amount": 1}"#,
        true,
    ) {
        Err(err) if is_authorization_failure(&err) => {}
        other => panic!(
            "miner-1 writing a transaction: expected TopicAuthorizationFailed, got {other:?}"
        ),
    }
    // The same record from a miner principal lands: the refusals were about who wrote.
    let landed = produce_as(broker, "miner-1", &names.chain, &block, true);
    assert_eq!(landed.ok(), Some((0, 0)), "miner-1 writes the chain");

    // Only the admin creates topics: a client meeting none says who must.
    let missing = TopicNames {
        transactions: support::unique_topic("transactions-missing"),
        chain: support::unique_topic("blockchain-missing"),
        tx_partitions: 2,
    };
    let out = kafkachain(
        broker,
        "client",
        &missing,
        &["send"],
        &["--from", "alice", "--to", "bob", "--amount", "1"],
        Duration::from_secs(120),
    );
    assert!(
        !out.status.success() && text(&out.stderr).contains("may not create it"),
        "send to topics that do not exist: {}",
        report(&out)
    );
}

#[test]
fn a_reader_reads_but_cannot_write() {
    if support::skip_unless(Engine::Kafka, SKIP_REASON) {
        return;
    }
    let broker = secure_broker();
    let names = ledger(broker, "reader");
    let block = genesis(Rules::V2 { difficulty: 8 }, 1_700_000_000.0);
    produce_as(broker, "miner-2", &names.chain, &block, true).expect("miner-2 writes the genesis");

    let out = kafkachain(
        broker,
        "reader",
        &names,
        &["chain"],
        &[],
        Duration::from_secs(120),
    );
    assert!(out.status.success(), "chain as reader: {}", report(&out));
    assert_eq!(
        text(&out.stdout).trim().as_bytes(),
        &block[..],
        "{}",
        report(&out)
    );

    let out = kafkachain(
        broker,
        "reader",
        &names,
        &["send"],
        &["--from", "reader", "--to", "bob", "--amount", "1"],
        Duration::from_secs(180),
    );
    assert!(!out.status.success(), "send as reader: {}", report(&out));
    assert!(
        text(&out.stderr).contains("TopicAuthorizationFailed")
            || text(&out.stderr).contains("authorization failed"),
        "the broker refused the write: {}",
        report(&out)
    );
    assert_eq!(end_offsets(broker, &names.transactions), vec![0, 0]);

    match produce_as(
        broker,
        "reader",
        &names.transactions,
        br#"{"from": "r"}"#,
        false,
    ) {
        Err(err) if is_authorization_failure(&err) => {}
        other => {
            panic!("reader writing a transaction: expected TopicAuthorizationFailed, got {other:?}")
        }
    }

    // The chain reader's group.id is there only because librdkafka's assign() needs one:
    // the reader may look the group up (what `kafkachain chain` above needed), not
    // commit in it.
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &broker.addr)
        .set("group.id", "kafkachain-chain-reader")
        .set("enable.auto.commit", "false")
        .set("log_level", "0");
    for kv in broker.settings("reader") {
        let (k, v) = kv.split_once('=').expect("key=value");
        config.set(k, v);
    }
    let consumer: BaseConsumer = config.create().expect("consumer");
    let mut list = rdkafka::TopicPartitionList::new();
    list.add_partition_offset(&names.chain, 0, rdkafka::Offset::Offset(1))
        .expect("commit list");
    match consumer.commit(&list, CommitMode::Sync) {
        Err(err) if err.rdkafka_error_code() == Some(RDKafkaErrorCode::GroupAuthorizationFailed) => {}
        other => panic!(
            "reader committing in group kafkachain-chain-reader: expected GroupAuthorizationFailed, \
             got {other:?}"
        ),
    }
}
