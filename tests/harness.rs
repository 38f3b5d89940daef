//! Tests of the test harness (`tests/support`) and of what the broker it provides
//! (Tansu 0.6.0, or whatever KAFKACHAIN_TEST_BROKERS points at) can do for us:
//! topic creation with configs, idempotent produce, partition consume, watermarks,
//! consumer-group commits. If one of the capability tests fails on a new broker
//! version, the transport layer's assumptions need revisiting.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

use support::{broker, config, create_topic, create_topic_with, produce, unique_topic, wait_until};

/// Reads one record from `topic`/`partition` at `offset` with a plain assigned consumer.
fn read_at(topic: &str, partition: i32, offset: i64) -> (Option<Vec<u8>>, Option<Vec<u8>>) {
    let consumer: BaseConsumer = config()
        .set("group.id", unique_topic("harness-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("creating consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, partition, Offset::Offset(offset))
        .expect("building assignment");
    consumer.assign(&tpl).expect("assigning partition");
    wait_until(
        support::TIMEOUT,
        &format!("a record at {topic}[{partition}]@{offset}"),
        || match consumer.poll(Duration::from_millis(200))? {
            Ok(m) => Some((m.key().map(<[u8]>::to_vec), m.payload().map(<[u8]>::to_vec))),
            Err(e) => panic!("consuming {topic}[{partition}]: {e}"),
        },
    )
}

#[test]
fn broker_answers_metadata() {
    assert!(support::answers_metadata(broker(), Duration::from_secs(10)));
}

#[test]
fn unique_topics_differ() {
    let a = unique_topic("t");
    let b = unique_topic("t");
    assert_ne!(a, b);
    assert!(a.starts_with(&format!("t-{}-", std::process::id())), "{a}");
}

#[test]
fn wait_until_returns_the_value() {
    let mut n = 0;
    let v = wait_until(Duration::from_secs(5), "n to reach 3", || {
        n += 1;
        (n == 3).then_some(n * 10)
    });
    assert_eq!(v, 30);
}

#[test]
#[should_panic(expected = "waiting for the impossible")]
fn wait_until_panics_with_what_on_timeout() {
    wait_until(Duration::from_millis(100), "the impossible", || None::<()>);
}

#[test]
fn python_has_confluent_kafka() {
    let status = Command::new(support::python())
        .args(["-c", "import confluent_kafka"])
        .status()
        .expect("running python");
    assert!(
        status.success(),
        "confluent_kafka not importable: run scripts/setup"
    );
}

/// A private Tansu answers, and is gone (process and data dir) once dropped.
#[test]
fn own_tansu_starts_and_is_killed_on_drop() {
    let tansu = support::Tansu::start().unwrap_or_else(|e| panic!("{e}"));
    assert!(support::answers_metadata(
        &tansu.addr,
        Duration::from_secs(10)
    ));
    let pid = tansu.pid();
    let dir = tansu.data_dir().to_path_buf();
    assert!(
        dir.join("tansu.db").exists(),
        "SQLite file in {}",
        dir.display()
    );
    drop(tansu);
    assert!(!alive(pid), "tansu pid {pid} still alive after drop");
    assert!(!dir.exists(), "{} not removed", dir.display());
}

fn alive(pid: u32) -> bool {
    // A zombie (exited, not yet reaped by whoever inherited it) counts as dead.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit(") ")
                .next()
                .is_some_and(|rest| !rest.starts_with('Z'))
        })
        .unwrap_or(false)
}

/// The broker `broker()` starts for a test process dies with that process, even
/// though nothing ever drops it: run this file's test binary again as a child that
/// starts one and exits, then check the broker is gone.
#[test]
fn shared_tansu_dies_with_the_test_process() {
    let exe = std::env::current_exe().expect("current test binary");
    let out = Command::new(exe)
        .args([
            "--exact",
            "child_starts_shared_broker",
            "--ignored",
            "--nocapture",
        ])
        .env_remove("KAFKACHAIN_TEST_BROKERS")
        // The shared broker under test here is the Tansu one, whatever the suite runs on.
        .env("KAFKACHAIN_TEST_ENGINE", "tansu")
        .env("KAFKACHAIN_HARNESS_CHILD", "1")
        .output()
        .expect("running child test process");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pid: u32 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("TANSU_PID="))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("child printed no TANSU_PID: {stdout}"));
    wait_until(
        Duration::from_secs(10),
        &format!("tansu pid {pid} to die with its test process"),
        || (!alive(pid)).then_some(()),
    );
}

#[test]
#[ignore = "run by shared_tansu_dies_with_the_test_process"]
fn child_starts_shared_broker() {
    if std::env::var_os("KAFKACHAIN_HARNESS_CHILD").is_none() {
        return;
    }
    let addr = broker();
    assert!(support::answers_metadata(addr, Duration::from_secs(10)));
    println!(
        "TANSU_PID={}",
        support::broker_pid().expect("a broker started by this process")
    );
}

/// Smoke test: create a topic, produce one record with rdkafka, consume it back.
#[test]
fn produce_and_consume_one_message() {
    let topic = unique_topic("smoke");
    create_topic(&topic, 2);
    let (partition, offset) = produce(&topic, 1, b"key-1", "héllo ✓".as_bytes());
    assert_eq!((partition, offset), (1, 0));
    let (key, payload) = read_at(&topic, 1, 0);
    assert_eq!(key.as_deref(), Some(&b"key-1"[..]));
    assert_eq!(payload.as_deref(), Some("héllo ✓".as_bytes()));
}

/// Topic configs given at creation (what the blockchain topic needs) are accepted
/// and read back by DescribeConfigs.
#[test]
fn create_topic_with_configs() {
    let topic = unique_topic("configs");
    create_topic_with(
        &topic,
        1,
        &[("retention.ms", "-1"), ("retention.bytes", "-1")],
    );
    let admin: AdminClient<DefaultClientContext> = config().create().expect("admin client");
    let opts = AdminOptions::new().request_timeout(Some(support::TIMEOUT));
    let results = futures_executor::block_on(
        admin.describe_configs([&ResourceSpecifier::Topic(&topic)], &opts),
    )
    .expect("describe_configs");
    let resource = results
        .into_iter()
        .next()
        .expect("one result")
        .expect("describing topic configs");
    let configs: BTreeMap<_, _> = resource
        .entries
        .iter()
        .map(|e| (e.name.clone(), e.value.clone()))
        .collect();
    assert_eq!(
        configs.get("retention.ms"),
        Some(&Some("-1".to_string())),
        "{configs:?}"
    );
    assert_eq!(
        configs.get("retention.bytes"),
        Some(&Some("-1".to_string())),
        "{configs:?}"
    );
}

/// Idempotent producer (enable.idempotence=true, acks=all): InitProducerId works and
/// records land once, in order; watermarks then report (0, n).
#[test]
fn idempotent_producer_and_watermarks() {
    let topic = unique_topic("idem");
    create_topic(&topic, 1);
    let producer: BaseProducer<support::Deliveries> = config()
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .create_with_context(support::Deliveries::default())
        .expect("idempotent producer");
    for i in 0..5 {
        producer
            .send(
                BaseRecord::to(&topic)
                    .partition(0)
                    .key("k")
                    .payload(&format!("m{i}")),
            )
            .unwrap_or_else(|(e, _)| panic!("enqueue: {e}"));
    }
    producer.flush(support::TIMEOUT).expect("flush");
    let reports = producer.context().0.lock().unwrap().clone();
    let offsets: Vec<i64> = reports
        .iter()
        .map(|r| {
            r.as_ref()
                .map(|(_, o)| *o)
                .unwrap_or_else(|e| panic!("delivery: {e}"))
        })
        .collect();
    assert_eq!(offsets, vec![0, 1, 2, 3, 4]);

    let consumer: BaseConsumer = config().create().expect("consumer");
    let (low, high) = consumer
        .fetch_watermarks(&topic, 0, support::TIMEOUT)
        .expect("fetch_watermarks");
    assert_eq!((low, high), (0, 5));
    assert_eq!(read_at(&topic, 0, 3).1.as_deref(), Some(&b"m3"[..]));
}

/// A consumer group member subscribes, gets partitions, commits an offset; a new
/// consumer in the same group reads the committed offset back.
#[test]
fn consumer_group_commit_and_read_back() {
    let topic = unique_topic("group");
    let group = unique_topic("group");
    create_topic(&topic, 2);
    produce(&topic, 0, b"a", b"one");
    produce(&topic, 0, b"b", b"two");

    let member: BaseConsumer = config()
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .create()
        .expect("group consumer");
    member.subscribe(&[&topic]).expect("subscribe");
    let first = wait_until(
        support::TIMEOUT,
        "a record via the group subscription",
        || match member.poll(Duration::from_millis(200))? {
            Ok(m) => Some((m.partition(), m.offset(), m.payload().map(<[u8]>::to_vec))),
            Err(e) => panic!("group poll: {e}"),
        },
    );
    assert_eq!(first, (0, 0, Some(b"one".to_vec())));
    let assignment = member.assignment().expect("assignment");
    assert_eq!(
        assignment.count(),
        2,
        "one member owns both partitions: {assignment:?}"
    );

    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(&topic, 0, Offset::Offset(1))
        .unwrap();
    member.commit(&tpl, CommitMode::Sync).expect("commit");
    member.unsubscribe();
    // Known gap: with rdkafka 0.37 against Tansu 0.6.0, dropping (closing) a group
    // consumer sometimes never finishes (BaseConsumer::drop polls until
    // rd_kafka_consumer_closed, which stays false). Close it on a thread that may
    // be left behind, so this test checks commits, not close.
    let (closed_tx, closed_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(member);
        let _ = closed_tx.send(());
    });
    if closed_rx.recv_timeout(Duration::from_secs(10)).is_err() {
        eprintln!(
            "warning: group consumer close did not finish within 10s (known rdkafka/Tansu gap)"
        );
    }

    let other: BaseConsumer = config().set("group.id", &group).create().expect("consumer");
    let mut query = TopicPartitionList::new();
    query.add_partition(&topic, 0);
    query.add_partition(&topic, 1);
    let committed = other
        .committed_offsets(query, support::TIMEOUT)
        .expect("committed_offsets");
    let p0 = committed
        .find_partition(&topic, 0)
        .expect("partition 0")
        .offset();
    let p1 = committed
        .find_partition(&topic, 1)
        .expect("partition 1")
        .offset();
    assert_eq!(p0, Offset::Offset(1));
    assert_eq!(p1, Offset::Invalid, "nothing committed for partition 1");
}
