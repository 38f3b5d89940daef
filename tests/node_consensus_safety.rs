//! Issue 12 against running nodes: a forged block that claims the origins of records
//! not yet published must not censor them (seed and v2), and a seed block the
//! tutorial accepts (here `"index": 0`) must not stop our nodes from extending.

mod cluster;
mod support;

use std::collections::HashMap;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use cluster::{node_flags, Ledger};
use kafkachain::chain::{parse_submitted, BlockTemplate, ChainState, Miner, Origin, Transaction};
use kafkachain::transport::chain_log::read_to_end;
use kafkachain::transport::topics::describe_topic;

/// A properly mined block on the current tip carrying `txs`.
fn mined_block(chain: &ChainState, txs: &[Transaction]) -> Vec<u8> {
    let tip = chain.tip().expect("tip");
    let rules = chain.rules().expect("rules");
    let template = BlockTemplate::new(tip, rules, tip.timestamp + 1.0, txs);
    let mined = Miner::new(1)
        .mine(&template.work(), &AtomicBool::new(false))
        .expect("mining");
    template.seal(mined.nonce)
}

/// (origin, sender, amount) of every transaction on the chain, in chain order.
fn chain_transfers(ledger: &Ledger) -> Vec<(Origin, String, String)> {
    let mut chain = ChainState::new();
    let mut out = Vec::new();
    read_to_end(
        &ledger.kafka(),
        &ledger.topics.chain,
        0,
        Duration::from_secs(30),
        |record| {
            if chain.apply(&record.payload).is_err() {
                return;
            }
            let block: serde_json::Value =
                serde_json::from_slice(&record.payload).expect("an appended block is JSON");
            for tx in block["transactions"].as_array().into_iter().flatten() {
                let origin = &tx["origin"];
                let (Some(partition), Some(offset)) =
                    (origin["partition"].as_i64(), origin["offset"].as_i64())
                else {
                    continue;
                };
                out.push((
                    Origin {
                        partition: partition as i32,
                        offset,
                    },
                    tx["sender"].as_str().unwrap_or_default().to_string(),
                    tx["amount"].to_string(),
                ));
            }
        },
    )
    .expect("reading the chain topic");
    out
}

fn forged_claims_do_not_censor_real_transactions(rules: &str) {
    let ledger = Ledger::new(&format!("claims-{rules}"), 1);
    let mut flags = node_flags(Some(0), 5, 8);
    flags.extend(["--rules".to_string(), rules.to_string()]);
    let mut a = ledger.node("honest-a", &flags);
    let mut b = ledger.node("honest-b", &flags);
    ledger.send(3, Some(0), "alice");
    ledger.wait_for_txs(3, Duration::from_secs(120));

    // The nodes are idle: forge on the tip they agree on, claiming the next ten
    // offsets of partition 0 with other content.
    let h = describe_topic(&ledger.kafka(), &ledger.topics.transactions)
        .expect("describing the transactions topic")
        .partitions[0]
        .high;
    let (chain, before) = ledger.replay();
    let mallory = parse_submitted(br#"{"from": "mallory", "to": "mallory", "amount": 1000000}"#)
        .expect("valid transaction");
    let forged: Vec<Transaction> = (0..10)
        .map(|i| {
            Transaction::from_submitted(
                &mallory,
                Origin {
                    partition: 0,
                    offset: h + i,
                },
            )
        })
        .collect();
    ledger.publish_raw_blocks(&[mined_block(&chain, &forged)]);
    support::wait_until(
        Duration::from_secs(60),
        "the forged block on the chain",
        || (ledger.replay().1.height == before.height + 1).then_some(()),
    );

    let real = ledger.send(10, Some(0), "carol");
    let expected: Vec<Origin> = (0..10)
        .map(|i| Origin {
            partition: 0,
            offset: h + i,
        })
        .collect();
    assert_eq!(real, expected, "the real records got the claimed offsets");
    let landed = |transfers: &[(Origin, String, String)]| {
        let mut counts: HashMap<Origin, usize> = HashMap::new();
        for (o, sender, _) in transfers {
            if sender == "carol" {
                *counts.entry(*o).or_default() += 1;
            }
        }
        counts
    };
    support::wait_until(
        Duration::from_secs(180),
        "all ten real transactions on the chain",
        || (landed(&chain_transfers(&ledger)).len() == 10).then_some(()),
    );
    // Let the nodes run on a little: nothing may land twice.
    std::thread::sleep(Duration::from_secs(2));
    let transfers = chain_transfers(&ledger);
    let counts = landed(&transfers);
    for o in &real {
        assert_eq!(
            counts.get(o),
            Some(&1),
            "{o:?} exactly once: {transfers:#?}"
        );
    }
    for (i, &o) in real.iter().enumerate() {
        assert!(
            transfers
                .iter()
                .any(|(t, s, amount)| *t == o && s == "carol" && amount == &i.to_string()),
            "{o:?} carries carol's amount {i}"
        );
    }
    for node in [&mut a, &mut b] {
        let log = node.terminate();
        assert!(
            log.contains("conflicting claim"),
            "node {} did not report the conflicting claim:\n{log}",
            node.id
        );
    }
}

#[test]
fn forged_claims_do_not_censor_real_transactions_seed() {
    forged_claims_do_not_censor_real_transactions("seed");
}

#[test]
fn forged_claims_do_not_censor_real_transactions_v2() {
    forged_claims_do_not_censor_real_transactions("v2");
}

/// The tutorial accepts a seed block with `"index": 0`; our nodes used to build index
/// 1 on it, take their own block for a late second genesis and never extend again.
#[test]
fn a_seed_block_with_index_zero_does_not_stop_the_nodes() {
    let ledger = Ledger::new("index-zero", 1);
    let mut flags = node_flags(Some(0), 3, 8);
    flags.extend(["--rules".to_string(), "seed".to_string()]);
    let mut node = ledger.node("extender", &flags);
    let mut origins = ledger.send(3, Some(0), "alice");
    ledger.wait_for_txs(3, Duration::from_secs(120));

    let (chain, before) = ledger.replay();
    let block = mined_block(&chain, &[]);
    let text = String::from_utf8(block).expect("canonical JSON is ASCII");
    let prefix = format!("{{\"index\": {}, ", chain.tip().expect("tip").next_index());
    assert!(text.starts_with(&prefix), "{text}");
    // The seed proof does not cover the index: the block stays valid.
    let zero = text.replacen(&prefix, "{\"index\": 0, ", 1);
    ledger.publish_raw_blocks(&[zero.into_bytes()]);
    support::wait_until(
        Duration::from_secs(60),
        "the index-0 block on the chain",
        || (ledger.replay().1.height == before.height + 1).then_some(()),
    );

    origins.extend(ledger.send(6, Some(0), "bob"));
    origins.sort();
    let view = ledger.wait_for_txs(origins.len(), Duration::from_secs(120));
    view.assert_exactly_once(&origins);
    assert!(view.height >= before.height + 3, "the node kept extending");
    let log = node.terminate();
    assert!(!log.contains("discarded invalid chain record"), "{log}");
}
