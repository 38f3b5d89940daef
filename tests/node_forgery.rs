//! Garbage and forged blocks written straight to the chain topic are discarded by every
//! node, each for its own reason, logged, and the chain carries on — also when they
//! arrive while the nodes are mining. Malformed transactions are skipped and the
//! group's commit still reaches the end of the partition.

mod cluster;
mod support;

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use cluster::{committed_vs_end, node_flags, Ledger, NodeProc};
use kafkachain::chain::{
    parse_submitted, BlockTemplate, ChainState, Miner, Origin, RuleError, Transaction,
};

fn tx(origin: Origin) -> Transaction {
    let submitted = parse_submitted(br#"{"from": "mallory", "to": "mallory", "amount": 1000000}"#)
        .expect("valid transaction");
    Transaction::from_submitted(&submitted, origin)
}

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

/// The block for `txs` on the current tip sealed with the first nonce that fails the
/// proof of work.
fn bad_proof_block(chain: &ChainState, txs: &[Transaction]) -> Vec<u8> {
    let tip = chain.tip().expect("tip");
    let template = BlockTemplate::new(tip, chain.rules().expect("rules"), tip.timestamp + 1.0, txs);
    (0..1000u64)
        .find(|nonce| !template.work().check(*nonce))
        .map(|nonce| template.seal(nonce))
        .expect("a nonce that fails the proof of work")
}

fn with_field(block: &[u8], field: &str, value: serde_json::Value) -> Vec<u8> {
    let mut json: serde_json::Value = serde_json::from_slice(block).expect("block JSON");
    json[field] = value;
    serde_json::to_vec(&json).expect("JSON")
}

/// The same block with the first transaction's amount changed after sealing.
fn with_changed_amount(block: &[u8]) -> Vec<u8> {
    let mut json: serde_json::Value = serde_json::from_slice(block).expect("block JSON");
    json["transactions"][0]["amount"] = serde_json::json!(1);
    serde_json::to_vec(&json).expect("JSON")
}

/// Asserts that `node` logged the discard of the record at `offset`, with `reason`.
fn assert_logged_discard(node: &NodeProc, log: &str, offset: i64, reason: &str) {
    let at = format!("offset={offset} ");
    assert!(
        log.lines()
            .any(|l| l.contains("discarded invalid chain record")
                && l.contains(&at)
                && l.contains(reason)),
        "node {} did not log the discard of offset {offset} ({reason}):\n{log}",
        node.id
    );
}

#[test]
fn forged_and_garbage_blocks_are_discarded_by_every_node() {
    let ledger = Ledger::new("forgery", 1);
    let flags = node_flags(Some(0), 5, 8);
    let mut a = ledger.node("honest-a", &flags);
    let mut b = ledger.node("honest-b", &flags);
    let mut origins = ledger.send(30, Some(0), "alice");
    ledger.wait_for(&origins, Duration::from_secs(120));
    ledger.stop_and_check(&mut [&mut a, &mut b], &origins);

    // With the honest nodes stopped, forge against the tip everyone agrees on.
    let (chain, before) = ledger.replay();
    let on_chain = before.origins[0];
    let fresh = Origin {
        partition: 0,
        offset: 1_000_000,
    };
    let good = mined_block(&chain, &[tx(fresh)]);
    let index = chain.tip().expect("tip").index;
    let tip_hash = chain.tip().expect("tip").hash;
    type Check = Box<dyn Fn(&RuleError) -> bool>;
    let forged: Vec<(Vec<u8>, &str, Check)> = vec![
        (
            b"this is not JSON".to_vec(),
            "unparsable JSON",
            Box::new(|r| matches!(r, RuleError::Json(_))),
        ),
        (
            br#"{"hello": "world"}"#.to_vec(),
            "unknown field",
            Box::new(|r| matches!(r, RuleError::UnknownField(_))),
        ),
        (
            bad_proof_block(&chain, &[tx(fresh)]),
            "bad proof of work",
            Box::new(|r| matches!(r, RuleError::BadProof(_))),
        ),
        (
            with_field(&good, "previous_hash", serde_json::json!("ab".repeat(32))),
            "bad link",
            Box::new(
                move |r| matches!(r, RuleError::BadLink { expected, .. } if *expected == tip_hash),
            ),
        ),
        (
            mined_block(&chain, &[tx(fresh), tx(on_chain)]),
            "duplicate origin",
            Box::new(move |r| *r == RuleError::DuplicateOrigin(on_chain)),
        ),
        (
            with_field(&good, "index", serde_json::json!(index + 5)),
            "wrong index",
            Box::new(move |r| {
                *r == RuleError::WrongIndex {
                    expected: index + 1,
                    found: index + 5,
                }
            }),
        ),
        (
            with_changed_amount(&good),
            "merkle root mismatch",
            Box::new(|r| matches!(r, RuleError::MerkleMismatch { .. })),
        ),
    ];
    let bytes: Vec<Vec<u8>> = forged.iter().map(|(r, _, _)| r.clone()).collect();
    let offsets = ledger.publish_raw_blocks(&bytes);

    let (_, after) = ledger.replay();
    assert_eq!(
        after.tip, before.tip,
        "no forged record may extend the chain"
    );
    assert_eq!(
        after.rejected.len(),
        forged.len(),
        "each forged record discarded as invalid: {:#?}",
        after.invalid
    );
    for ((_, what, check), (offset, rejected)) in
        forged.iter().zip(offsets.iter().zip(&after.rejected))
    {
        assert_eq!(rejected.offset, *offset);
        assert!(
            check(&rejected.reason),
            "the {what} forgery at offset {offset} was discarded for another reason: {}",
            rejected.reason
        );
    }

    // Honest nodes restart, replay past the forgeries, and keep working.
    let mut a = ledger.node("honest-a", &flags);
    let mut b = ledger.node("honest-b", &flags);
    origins.extend(ledger.send(30, Some(0), "bob"));
    origins.sort();
    ledger.wait_for_except(&origins, &offsets, Duration::from_secs(120));
    ledger.stop_and_check_except(&mut [&mut a, &mut b], &origins, &offsets);
    for node in [&a, &b] {
        let log = node.log();
        for rejected in &after.rejected {
            assert_logged_discard(node, &log, rejected.offset, &rejected.reason.to_string());
        }
    }
}

/// Forged blocks published against the live tip while two nodes mine a stream of
/// transactions: none is appended (each is discarded as invalid, or as stale when the
/// tip moved before it arrived), every node logs each one, and the honest
/// transactions are on the chain exactly once.
#[test]
fn forged_blocks_arriving_while_nodes_mine_are_discarded() {
    let ledger = Ledger::new("forgery-live", 2);
    // A higher difficulty than elsewhere keeps each block busy for a while, so the
    // forgeries of every round meet nodes that are still mining what was just sent.
    let mut a = ledger.node("busy-a", &node_flags(Some(0), 3, 14));
    let mut b = ledger.node("busy-b", &node_flags(Some(1), 3, 14));
    let mut origins = Vec::new();
    let mut forged_offsets = Vec::new();
    let mut forged_origins = Vec::new();
    let mut rounds_mid_stream = 0;
    for round in 0..4i64 {
        origins.extend(ledger.send(40, Some(0), "alice"));
        origins.extend(ledger.send(40, Some(1), "bob"));
        let (chain, view) = ledger.replay();
        if view.origins.len() < origins.len() {
            rounds_mid_stream += 1;
        }
        let fresh = Origin {
            partition: 0,
            offset: 1_000_000 + round,
        };
        forged_origins.push(fresh);
        let good = mined_block(&chain, &[tx(fresh)]);
        let mut forged = vec![
            format!("garbage {round}").into_bytes(),
            bad_proof_block(&chain, &[tx(fresh)]),
            with_changed_amount(&good),
            with_field(&good, "index", serde_json::json!(chain.height() + 7)),
        ];
        if let Some(on_chain) = view.origins.first() {
            forged.push(mined_block(&chain, &[tx(fresh), tx(*on_chain)]));
        }
        forged_offsets.extend(ledger.publish_raw_blocks(&forged));
    }
    origins.sort();
    eprintln!("{rounds_mid_stream} of 4 forgery rounds met the nodes mid-stream");
    assert!(
        rounds_mid_stream >= 2,
        "the nodes mined everything before the forgeries arrived; nothing was tested"
    );
    ledger.wait_for_except(&origins, &forged_offsets, Duration::from_secs(240));
    let view = ledger.stop_and_check_except(&mut [&mut a, &mut b], &origins, &forged_offsets);
    for offset in &forged_offsets {
        assert!(
            view.rejected.iter().any(|r| r.offset == *offset)
                || view.stale_offsets.contains(offset),
            "the forged record at offset {offset} was appended"
        );
    }
    for o in &forged_origins {
        assert!(
            !view.origins.contains(o),
            "a forged transaction {o:?} is on the chain"
        );
    }
    for node in [&a, &b] {
        let log = node.log();
        for offset in &forged_offsets {
            let at = format!("offset={offset} ");
            assert!(
                log.lines()
                    .any(|l| l.contains("discarded") && l.contains(&at)),
                "node {} did not discard the forged record at offset {offset}:\n{log}",
                node.id
            );
        }
    }
}

/// Malformed transactions are logged with partition and offset, counted and skipped;
/// the node keeps going, and its committed offset reaches the end of the partition
/// even though the malformed records are the last ones on it.
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
    ledger.wait_for(&origins, Duration::from_secs(120));
    support::wait_until(
        Duration::from_secs(60),
        "the node to log every malformed transaction",
        || {
            node.assert_alive();
            let log = node.log();
            (log.matches("skipping malformed transaction").count() >= garbage.len()).then_some(())
        },
    );
    // The garbage is the last thing on the partition: the commit must still move past it.
    let end = origins.len() as i64 + garbage.len() as i64;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (_, committed, high) = committed_vs_end(
            &ledger.brokers,
            &ledger.group(),
            &ledger.topics.transactions,
            1,
        )[0];
        assert_eq!(high, end);
        if committed == end {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            if committed < 0 {
                "the group never committed an offset (offsets never committed)".to_string()
            } else {
                format!(
                    "the committed offset is stuck at {committed} of {end}: the malformed \
                     transactions at offsets {}..{end} were never marked as read",
                    origins.len()
                )
            }
        );
        std::thread::sleep(Duration::from_millis(200));
    }
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

    // A restarted node resumes after the garbage: once a new transaction is on the
    // chain it has read everything before it, and it never met the garbage again.
    let mut again = ledger.node("sturdy", &flags);
    origins.extend(ledger.send(1, Some(0), "carol"));
    ledger.wait_for(&origins, Duration::from_secs(120));
    ledger.stop_and_check(&mut [&mut again], &origins);
    let log = again.log();
    assert!(
        !log.contains("skipping malformed transaction"),
        "the restarted node read the malformed transactions again (the commit did not \
         move past them):\n{log}"
    );
}
