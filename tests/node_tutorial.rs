//! The tutorial's walk-through against the real broker: one node on partition 0,
//! three transactions published by an independent client (confluent-kafka, Python)
//! ⇒ one block with the three transactions and the reward, valid under the `seed`
//! rules as the Python original checks them.

mod cluster;
mod support;

use std::process::Command;
use std::time::Duration;

use cluster::Ledger;
use kafkachain::chain::Rules;
use kafkachain::transport::chain_log::read_to_end;

#[test]
fn tutorial_walkthrough_is_readable_by_the_python_client() {
    let ledger = Ledger::new("tutorial", 2);
    let mut node = ledger.node(
        "tutorial-node",
        &[
            "--partition",
            "0",
            "--rules",
            "seed",
            "--block-size",
            "3",
            "--block-timeout",
            "120s",
        ],
    );
    let output = Command::new(support::python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/python/interop_check.py"
        ))
        .args(["--brokers", &ledger.brokers])
        .args(["--tx-topic", &ledger.topics.transactions])
        .args(["--chain-topic", &ledger.topics.chain])
        .args(["--partition", "0", "--count", "3", "--timeout", "90"])
        .output()
        .expect("running python/interop_check.py");
    assert!(
        output.status.success(),
        "python interop check failed:\n{}\n{}\nnode log:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
        node.log()
    );

    let (chain, view) = ledger.replay();
    assert_eq!(chain.rules(), Some(Rules::Seed));
    assert_eq!(view.height, 2, "genesis + one block");
    assert_eq!(view.user_txs, 3);
    assert_eq!(view.blocks_by_miner.get("tutorial-node"), Some(&1));
    assert!(view.invalid.is_empty(), "{:?}", view.invalid);

    // The block as the tutorial prints it: three transactions then the reward.
    let mut records = Vec::new();
    read_to_end(
        &ledger.kafka(),
        &ledger.topics.chain,
        0,
        Duration::from_secs(30),
        |r| records.push(r.payload),
    )
    .expect("reading chain");
    let genesis: serde_json::Value = serde_json::from_slice(&records[0]).expect("genesis JSON");
    assert_eq!(genesis["index"], 1);
    assert_eq!(genesis["proof"], 100);
    assert_eq!(genesis["previous_hash"], 1);
    let block: serde_json::Value = serde_json::from_slice(&records[1]).expect("block JSON");
    let txs = block["transactions"]
        .as_array()
        .expect("transactions array");
    assert_eq!(txs.len(), 4);
    assert_eq!(txs[3]["sender"], "0");
    assert_eq!(txs[3]["recipient"], "tutorial-node");
    assert_eq!(txs[3]["amount"], 1);
    for tx in &txs[..3] {
        assert_eq!(
            tx["origin"]["partition"], 0,
            "every transaction records its origin"
        );
    }

    node.terminate();
    assert_eq!(node.reported_tip().as_deref(), Some(view.tip.as_str()));
}
