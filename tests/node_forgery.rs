//! Garbage and forged blocks written straight to the chain topic are discarded by every
//! node, with the reason logged, and the chain carries on.

mod cluster;
mod support;

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use cluster::{node_flags, Ledger};
use kafkachain::chain::{parse_submitted, BlockTemplate, ChainState, Miner, Origin, Transaction};

fn tx(origin: Origin) -> Transaction {
    let submitted = parse_submitted(br#"{"from": "mallory", "to": "mallory", "amount": 1000000}"#)
        .expect("valid transaction");
    Transaction::from_submitted(&submitted, origin)
}

/// A properly mined block on the current tip carrying `txs`.
fn mined_block(chain: &ChainState, txs: &[Transaction]) -> (BlockTemplate, Vec<u8>) {
    let tip = chain.tip().expect("tip");
    let rules = chain.rules().expect("rules");
    let template = BlockTemplate::new(tip, rules, tip.timestamp + 1.0, txs);
    let mined = Miner::new(1)
        .mine(&template.work(), &AtomicBool::new(false))
        .expect("mining");
    let block = template.seal(mined.nonce);
    (template, block)
}

fn with_field(block: &[u8], field: &str, value: serde_json::Value) -> Vec<u8> {
    let mut json: serde_json::Value = serde_json::from_slice(block).expect("block JSON");
    json[field] = value;
    serde_json::to_vec(&json).expect("JSON")
}

#[test]
fn forged_and_garbage_blocks_are_discarded_by_every_node() {
    let ledger = Ledger::new("forgery", 1);
    let flags = node_flags(Some(0), 5, 8);
    let mut a = ledger.node("honest-a", &flags);
    let mut b = ledger.node("honest-b", &flags);
    let mut origins = ledger.send(30, Some(0), "alice");
    ledger.wait_for_txs(30, Duration::from_secs(120));
    a.terminate();
    b.terminate();

    // With the honest nodes stopped, forge against the tip everyone agrees on.
    let (chain, before) = ledger.replay();
    let on_chain = before.origins[0];
    let fresh = Origin {
        partition: 0,
        offset: 1_000_000,
    };
    let (_, good) = mined_block(&chain, &[tx(fresh)]);
    let (_, duplicate) = mined_block(&chain, &[tx(on_chain)]);
    let tip = chain.tip().expect("tip").clone();
    let index = tip.index;
    let bad_proof = {
        // The same content with nonces until one fails the proof of work.
        let template = BlockTemplate::new(
            &tip,
            chain.rules().expect("rules"),
            tip.timestamp + 1.0,
            &[tx(fresh)],
        );
        (0..1000u64)
            .map(|nonce| template.seal(nonce))
            .find(|block| {
                let (mut probe, _) = ledger.replay();
                probe.apply(block).is_err()
            })
            .expect("a nonce that fails the proof of work")
    };
    let forged = vec![
        b"this is not JSON".to_vec(),
        br#"{"hello": "world"}"#.to_vec(),
        bad_proof,
        with_field(&good, "previous_hash", serde_json::json!("ab".repeat(32))),
        duplicate,
        with_field(&good, "index", serde_json::json!(index + 5)),
    ];
    ledger.publish_raw_blocks(&forged);

    let (_, after) = ledger.replay();
    assert_eq!(
        after.tip, before.tip,
        "no forged record may extend the chain"
    );
    assert_eq!(
        after.invalid.len(),
        forged.len(),
        "each forged record discarded: {:#?}",
        after.invalid
    );

    // Honest nodes restart, replay past the forgeries, and keep working.
    let mut a = ledger.node("honest-a", &flags);
    let mut b = ledger.node("honest-b", &flags);
    origins.extend(ledger.send(30, Some(0), "bob"));
    origins.sort();
    let view = ledger.wait_for_txs(origins.len(), Duration::from_secs(120));
    view.assert_exactly_once(&origins);
    for node in [&mut a, &mut b] {
        let log = node.terminate();
        let discards = log.matches("discarded invalid chain record").count();
        assert!(
            discards >= forged.len(),
            "node {} logged {discards} discards, expected {}:\n{log}",
            node.id,
            forged.len()
        );
        assert_eq!(node.reported_tip().as_deref(), Some(view.tip.as_str()));
    }
    eprintln!("discard reasons: {:#?}", after.invalid);
}

/// Malformed transactions are logged with partition and offset, counted and skipped;
/// the node keeps going, and its committed offset moves past them.
#[test]
fn malformed_transactions_are_skipped_and_never_stop_the_node() {
    let ledger = Ledger::new("malformed", 1);
    let flags = node_flags(Some(0), 3, 8);
    let mut node = ledger.node("sturdy", &flags);
    let mut origins = ledger.send(5, Some(0), "alice");
    let oversized = format!(
        r#"{{"from": "{}", "to": "bob", "amount": 1}}"#,
        "x".repeat(10_000)
    );
    let garbage: Vec<Vec<u8>> = vec![
        b"not json at all".to_vec(),
        br#"{"from": "a", "to": "b"}"#.to_vec(),
        br#"{"from": 7, "to": "b", "amount": 1}"#.to_vec(),
        br#"{"from": "a", "to": "b", "amount": "3"}"#.to_vec(),
        br#"{"from": "a", "to": "b", "amount": -1}"#.to_vec(),
        br#"{"from": "a", "to": "b", "amount": 1e999}"#.to_vec(),
        br#"[1, 2, 3]"#.to_vec(),
        Vec::new(),
        oversized.into_bytes(),
    ];
    let publisher = kafkachain::transport::publish::Publisher::new(
        &ledger.kafka(),
        &ledger.topics.transactions,
        kafkachain::transport::publish::Profile::Transactions,
        None,
    )
    .expect("producer");
    for (i, record) in garbage.iter().enumerate() {
        publisher.send(i as u64, Some(0), record).expect("send");
    }
    publisher.flush(Duration::from_secs(30)).expect("flush");
    origins.extend(ledger.send(5, Some(0), "carol"));
    let view = ledger.wait_for_txs(origins.len(), Duration::from_secs(120));
    view.assert_exactly_once(&origins);
    node.assert_alive();
    let log = node.terminate();
    let skipped: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("skipping malformed transaction"))
        .collect();
    assert_eq!(
        skipped.len(),
        garbage.len(),
        "each malformed record logged once:\n{log}"
    );
    assert!(skipped
        .iter()
        .all(|l| l.contains("partition=0") && l.contains("offset=")));
    assert!(
        log.contains(&format!("malformed transactions {}", garbage.len())),
        "{log}"
    );

    // The commit moved past the garbage: a restarted node has nothing left to do.
    let mut again = ledger.node("sturdy", &flags);
    std::thread::sleep(Duration::from_secs(2));
    let log = again.terminate();
    assert!(
        !log.contains("skipping malformed transaction"),
        "re-read after restart:\n{log}"
    );
    assert_eq!(ledger.replay().1.origins.len(), origins.len());
}
