//! A node refuses a chain topic that the broker may delete or compact, and says how to
//! fix it; `kafkachain topics create` makes a chain topic that is kept forever.
//! (Replication on a multi-broker cluster is checked in `broker_faults`.)

mod support;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;

/// Runs `kafkachain node` on `chain` (with a fresh transactions topic) and returns
/// (exit success, stderr) once it exits; panics if it is still running after 60 s.
fn start_node_on(chain: &str) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut child = Command::new(env!("CARGO_BIN_EXE_kafkachain"))
        .args(["node", "--brokers", support::broker()])
        .args(["--tx-topic", &support::unique_topic("safety-tx")])
        .args(["--chain-topic", chain])
        .args(["--id", "careful", "--difficulty", "8", "--threads", "1"])
        .arg("--data-dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting kafkachain node");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().expect("waiting for the node") {
            let out = child.wait_with_output().expect("node output");
            return (
                status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            );
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("node output");
            panic!(
                "the node started on an unsafe chain topic `{chain}` instead of refusing it:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn node_refuses_a_chain_topic_with_finite_retention() {
    let chain = support::unique_topic("safety-week");
    support::create_topic_with(&chain, 1, &[("retention.ms", "604800000")]);
    let (ok, stderr) = start_node_on(&chain);
    assert!(!ok, "the node must exit with an error: {stderr}");
    assert!(
        stderr.contains("retention.ms=604800000") && stderr.contains("kafka-configs.sh"),
        "the error names the setting and the fix: {stderr}"
    );
}

#[test]
fn node_refuses_a_compacted_chain_topic() {
    let chain = support::unique_topic("safety-compact");
    support::create_topic_with(
        &chain,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("retention.ms", "-1"),
            ("retention.bytes", "-1"),
        ],
    );
    let (ok, stderr) = start_node_on(&chain);
    assert!(!ok, "the node must exit with an error: {stderr}");
    assert!(
        stderr.contains("cleanup.policy=compact") && stderr.contains("cleanup.policy=delete"),
        "the error names the setting and the fix: {stderr}"
    );
}

/// `kafkachain topics create` makes the chain topic with unlimited retention.
#[test]
fn topics_create_keeps_the_chain_forever() {
    let chain = support::unique_topic("safety-created");
    let tx = support::unique_topic("safety-created-tx");
    let out = Command::new(env!("CARGO_BIN_EXE_kafkachain"))
        .args(["topics", "create", "--brokers", support::broker()])
        .args(["--tx-topic", &tx, "--chain-topic", &chain])
        .output()
        .expect("running kafkachain topics create");
    assert!(
        out.status.success(),
        "topics create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let admin: AdminClient<DefaultClientContext> =
        support::config().create().expect("admin client");
    let opts = AdminOptions::new().request_timeout(Some(support::TIMEOUT));
    let resource = futures_executor::block_on(
        admin.describe_configs([&ResourceSpecifier::Topic(&chain)], &opts),
    )
    .expect("describe_configs")
    .into_iter()
    .next()
    .expect("one result")
    .expect("the chain topic's configs");
    let configs: BTreeMap<String, Option<String>> = resource
        .entries
        .into_iter()
        .map(|e| (e.name, e.value))
        .collect();
    for key in ["retention.ms", "retention.bytes"] {
        assert_eq!(
            configs.get(key),
            Some(&Some("-1".to_string())),
            "{key}: {configs:?}"
        );
    }
}
