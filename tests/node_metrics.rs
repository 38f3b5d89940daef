//! `kafkachain node --metrics ADDR`: a real node's Prometheus metrics, scraped over HTTP
//! and parsed.

mod cluster;
mod serve;
mod support;

use std::collections::HashMap;
use std::time::Duration;

use cluster::{node_flags, Ledger};

/// `name{labels} value` lines of an exposition, keyed by `name{labels}`.
fn parse(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

#[test]
fn a_node_exports_height_blocks_pending_lag_hash_rate_and_latency() {
    let ledger = Ledger::new("metrics", 1);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let mut flags = node_flags(Some(0), 5, 8);
    flags.extend(["--metrics".into(), addr.clone()]);
    let _node = ledger.node("m1", &flags);
    let origins = ledger.send(12, Some(0), "alice");
    let view = ledger.wait_for_txs(origins.len(), Duration::from_secs(90));

    let metrics = support::wait_until(Duration::from_secs(30), "metrics to catch up", || {
        let r = serve::get(&addr, "/metrics");
        assert_eq!(r.status, 200, "{}", r.text());
        let m = parse(&r.text());
        (m.get("kafkachain_node_height") == Some(&(view.height as f64))).then_some((m, r.text()))
    });
    let (m, text) = metrics;
    let get = |k: &str| *m.get(k).unwrap_or_else(|| panic!("{k} missing:\n{text}"));
    let won = view.blocks_by_miner.get("m1").copied().unwrap_or(0) as f64;
    assert!(won >= 1.0);
    assert_eq!(get("kafkachain_node_blocks_won_total"), won);
    assert_eq!(get("kafkachain_node_stale_blocks_total"), 0.0);
    assert_eq!(get("kafkachain_node_invalid_records_total"), 0.0);
    assert_eq!(get("kafkachain_node_pending_transactions"), 0.0);
    assert_eq!(
        get("kafkachain_node_intake_lag_records{partition=\"0\"}"),
        0.0
    );
    assert!(get("kafkachain_node_hash_rate_hashes_per_second") > 0.0);
    assert!(get("kafkachain_node_hashes_total") >= won);
    assert_eq!(
        get("kafkachain_node_intake_to_chain_latency_seconds_count"),
        origins.len() as f64
    );
    assert!(text.contains("# TYPE kafkachain_node_intake_to_chain_latency_seconds histogram"));
    assert!(text.contains("# UNIT kafkachain_node_intake_to_chain_latency_seconds seconds"));
}
