//! `kafkachain topics create` from bare names: it creates the transactions topic with
//! the requested partitions and the chain topic with one partition kept forever
//! (`retention.ms` and `retention.bytes` -1, read back from the broker), and running
//! it again changes nothing.

mod support;

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, ConfigSource, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};

fn topics_create(tx: &str, chain: &str, partitions: i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_kafkachain"))
        .args(["topics", "create", "--brokers", support::broker()])
        .args(["--tx-topic", tx, "--chain-topic", chain])
        .args(["--tx-partitions", &partitions.to_string()])
        .output()
        .expect("running kafkachain topics create");
    assert!(
        out.status.success(),
        "topics create failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn partitions(name: &str) -> usize {
    let probe: BaseConsumer = support::config().create().expect("consumer");
    let md = probe
        .fetch_metadata(Some(name), support::TIMEOUT)
        .expect("metadata");
    let topic = md
        .topics()
        .iter()
        .find(|t| t.name() == name)
        .unwrap_or_else(|| panic!("topic {name} missing from metadata"));
    assert!(topic.error().is_none(), "topic {name}: {:?}", topic.error());
    topic.partitions().len()
}

/// The topic's configuration as the broker describes it: value, and whether it was set
/// on the topic itself (not a broker default: Tansu's default retention is already
/// unlimited, so only the source tells that `topics create` asked for it).
fn configs(name: &str) -> HashMap<String, (Option<String>, bool)> {
    let admin: AdminClient<DefaultClientContext> = support::config().create().expect("admin");
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(30)));
    let results = futures_executor::block_on(
        admin.describe_configs([&ResourceSpecifier::Topic(name)], &opts),
    )
    .unwrap_or_else(|e| panic!("describe_configs {name}: {e}"));
    let resource = results
        .into_iter()
        .next()
        .expect("one result")
        .unwrap_or_else(|e| panic!("describe_configs {name}: {e:?}"));
    resource
        .entries
        .into_iter()
        .map(|e| {
            let on_topic = e.source == ConfigSource::DynamicTopic && !e.is_default;
            (e.name, (e.value, on_topic))
        })
        .collect()
}

#[test]
fn topics_create_from_bare_names_keeps_the_chain_forever() {
    let tx = support::unique_topic("bare-tx");
    let chain = support::unique_topic("bare-chain");
    topics_create(&tx, &chain, 3);
    assert_eq!(partitions(&tx), 3, "the transactions topic");
    assert_eq!(partitions(&chain), 1, "the chain topic");
    let chain_configs = configs(&chain);
    // Tansu 0.6.0 reports every topic config as a default (no source), so only Apache
    // Kafka can show that the value was set on the topic rather than inherited.
    let reports_source = support::engine() == support::Engine::Kafka;
    for key in ["retention.ms", "retention.bytes"] {
        assert_eq!(
            chain_configs.get(key).cloned(),
            Some((Some("-1".to_string()), reports_source)),
            "{key} of the chain topic {chain}: (value, set on the topic) (all configs: {chain_configs:?})"
        );
    }
    // Idempotent: a second run succeeds and changes nothing.
    topics_create(&tx, &chain, 5);
    assert_eq!(partitions(&tx), 3);
    assert_eq!(partitions(&chain), 1);
    assert_eq!(
        configs(&chain).get("retention.ms").cloned(),
        Some((Some("-1".to_string()), reports_source))
    );
}
