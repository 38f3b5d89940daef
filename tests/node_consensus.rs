//! Several nodes mining one chain at once: every node ends on the same tip, every
//! transaction is on the chain exactly once, and blocks that lose a race are discarded
//! by everyone alike.

mod cluster;
mod support;

use std::time::Duration;

use cluster::{node_flags, ChainView, Ledger};

/// Runs `nodes` nodes, one per partition (the tutorial's layout), on `txs` transactions.
fn race(nodes: usize, txs: usize) -> ChainView {
    let ledger = Ledger::new(&format!("race{nodes}"), nodes as i32);
    let mut procs: Vec<_> = (0..nodes)
        .map(|i| ledger.node(&format!("racer-{i}"), &node_flags(Some(i as i32), 3, 10)))
        .collect();
    let mut origins = Vec::new();
    for p in 0..nodes {
        origins.extend(ledger.send(txs / nodes, Some(p as i32), "alice"));
    }
    origins.sort();
    let view = ledger.wait_for_txs(origins.len(), Duration::from_secs(240));
    view.assert_exactly_once(&origins);
    assert!(
        view.invalid.is_empty(),
        "honest nodes published invalid blocks: {:?}",
        view.invalid
    );
    for node in &mut procs {
        node.terminate();
        assert_eq!(
            node.reported_tip().as_deref(),
            Some(view.tip.as_str()),
            "node {} ended on another tip",
            node.id
        );
        assert!(
            view.blocks_by_miner.get(&node.id).copied().unwrap_or(0) > 0,
            "node {} never won a block: {:?}",
            node.id,
            view.blocks_by_miner
        );
    }
    view
}

#[test]
fn two_nodes_converge_and_include_each_transaction_once() {
    let view = race(2, 1_000);
    eprintln!("2 nodes: height {}, stale {}", view.height, view.stale);
}

#[test]
fn three_nodes_converge_and_stale_blocks_are_discarded() {
    let view = race(3, 1_200);
    eprintln!("3 nodes: height {}, stale {}", view.height, view.stale);
    assert!(
        view.stale > 0,
        "three racing nodes produced no stale block; the race was not exercised"
    );
}

/// Two nodes reading the *same* partition both build blocks from the same
/// transactions; the chain rules must still keep each one exactly once.
#[test]
fn two_nodes_on_one_partition_never_duplicate() {
    let ledger = Ledger::new("same-partition", 1);
    let flags = node_flags(Some(0), 4, 8);
    let mut a = ledger.node("twin-a", &flags);
    let mut b = ledger.node("twin-b", &flags);
    let origins = ledger.send(300, Some(0), "carol");
    let view = ledger.wait_for_txs(origins.len(), Duration::from_secs(180));
    view.assert_exactly_once(&origins);
    a.terminate();
    b.terminate();
    assert_eq!(a.reported_tip(), b.reported_tip());
}
