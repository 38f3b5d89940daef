//! Several nodes mining one chain at once: every node ends on the same tip, every
//! transaction is on the chain exactly once, and blocks that lose a race are discarded
//! by everyone alike. Under `v2` the rules refuse a repeated origin; under `seed` (the
//! tutorial's rules, which do not) only the nodes' own logic keeps transactions unique,
//! so the races run under both.

mod cluster;
mod support;

use std::time::Duration;

use cluster::{node_flags, with_rules, ChainView, Ledger};

/// Runs `nodes` nodes, one per partition (the tutorial's layout), on `txs`
/// transactions, `block` per block.
fn race(nodes: usize, txs: usize, block: usize, rules: &str) -> ChainView {
    let ledger = Ledger::new(&format!("race{nodes}-{rules}"), nodes as i32);
    let mut procs: Vec<_> = (0..nodes)
        .map(|i| {
            ledger.node(
                &format!("racer-{i}"),
                &with_rules(node_flags(Some(i as i32), block, 10), rules),
            )
        })
        .collect();
    let mut origins = Vec::new();
    for p in 0..nodes {
        origins.extend(ledger.send(txs / nodes, Some(p as i32), "alice"));
    }
    origins.sort();
    ledger.wait_for(&origins, Duration::from_secs(240));
    let mut refs: Vec<_> = procs.iter_mut().collect();
    let view = ledger.stop_and_check(&mut refs, &origins);
    for node in &procs {
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
    let view = race(2, 1_000, 3, "v2");
    eprintln!("2 nodes: height {}, stale {}", view.height, view.stale);
}

#[test]
fn two_nodes_converge_and_include_each_transaction_once_under_seed_rules() {
    let view = race(2, 120, 6, "seed");
    eprintln!(
        "2 nodes (seed): height {}, stale {}",
        view.height, view.stale
    );
}

#[test]
fn three_nodes_converge_and_stale_blocks_are_discarded() {
    let view = race(3, 1_200, 3, "v2");
    eprintln!("3 nodes: height {}, stale {}", view.height, view.stale);
    assert!(
        view.stale > 0,
        "three racing nodes produced no stale block; the race was not exercised"
    );
}

/// Two nodes reading the *same* partition both build blocks from the same
/// transactions; each must still be on the chain exactly once.
fn twins(rules: &str, txs: usize, block: usize) {
    let ledger = Ledger::new(&format!("same-partition-{rules}"), 1);
    let flags = with_rules(node_flags(Some(0), block, 8), rules);
    let mut a = ledger.node("twin-a", &flags);
    let mut b = ledger.node("twin-b", &flags);
    let origins = ledger.send(txs, Some(0), "carol");
    ledger.wait_for(&origins, Duration::from_secs(180));
    ledger.stop_and_check(&mut [&mut a, &mut b], &origins);
}

#[test]
fn two_nodes_on_one_partition_never_duplicate() {
    twins("v2", 300, 4);
}

#[test]
fn two_nodes_on_one_partition_never_duplicate_under_seed_rules() {
    twins("seed", 80, 8);
}
