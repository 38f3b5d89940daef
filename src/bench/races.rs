//! Races between miners, measured (issue 15): which heights drew rival blocks, how far
//! behind the winner the rivals arrived, and per node how long it took from reading a
//! tip to publishing on it and how much of that was thrown away.
//!
//! Two sources, both real: the bench's chain follower records every record's height,
//! reward recipient and arrival time (winners and stale blocks alike), and each node's
//! log has one `published block height=… since_tip_ms=…` line per block it published.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::Latency;

/// One chain record as the follower read it.
#[derive(Clone, Debug)]
pub struct Arrival {
    pub height: u64,
    pub miner: Option<String>,
    pub at: Instant,
    /// Discarded as stale (lost a race) rather than appended.
    pub stale: bool,
}

/// A node's publishes, from its log.
#[derive(Clone, Debug, Default, Serialize)]
pub struct NodeRaces {
    pub node: String,
    pub published: u64,
    /// Published blocks whose height went to another node's block.
    pub lost: u64,
    /// Time from reading the tip to publishing on it.
    pub tip_to_publish: Latency,
    /// Sum of tip-to-publish time over the lost blocks: work and waiting thrown away.
    pub lost_ms: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct RaceReport {
    /// Heights on the chain (genesis excluded) in the run.
    pub heights: u64,
    /// Heights that drew at least one stale rival.
    pub raced_heights: u64,
    /// Stale blocks per height: how many heights had 0, 1, 2, ... rivals.
    pub stale_per_height: BTreeMap<u64, u64>,
    /// How long after the winner each stale rival arrived at the follower (one poll
    /// batch is 0 ms apart).
    pub rival_gap: Latency,
    /// At heights where more than one node published: time between the first two
    /// publishes, from the nodes' log timestamps (same machine, same clock).
    pub publish_gap: Latency,
    pub nodes: Vec<NodeRaces>,
}

/// The height and reward recipient of a block record, read loosely (stale records
/// are not applied, so the chain cannot tell us).
pub fn identify(record: &[u8]) -> (Option<u64>, Option<String>) {
    let Ok(block) = serde_json::from_slice::<serde_json::Value>(record) else {
        return (None, None);
    };
    let height = block.get("index").and_then(serde_json::Value::as_u64);
    let miner = block
        .get("transactions")
        .and_then(serde_json::Value::as_array)
        .and_then(|txs| {
            txs.iter()
                .find(|tx| tx.get("sender").and_then(|s| s.as_str()) == Some("0"))
        })
        .and_then(|tx| tx.get("recipient"))
        .and_then(|r| r.as_str())
        .map(str::to_string);
    (height, miner)
}

/// One `published block` line of a node's log.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Published {
    pub height: u64,
    pub since_tip_ms: u64,
    /// Seconds since midnight UTC, from the line's timestamp.
    pub at: Option<f64>,
}

/// The reward recipient a node's blocks carry, from its `node running id=…` log line:
/// the `--id` under seed and v2, the address of its key under accounts (so a node's
/// name in the bench is not what its blocks say). None if the line is missing.
pub fn miner_id(log: &str) -> Option<&str> {
    log.lines()
        .find(|line| line.contains("node running"))?
        .split_whitespace()
        .find_map(|t| t.strip_prefix("id="))
}

/// Every `published block` line in a node's log.
pub fn published(log: &str) -> Vec<Published> {
    log.lines()
        .filter(|line| line.contains("published block"))
        .filter_map(|line| {
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|t| t.strip_prefix(name))
                    .and_then(|v| v.parse::<u64>().ok())
            };
            Some(Published {
                height: field("height=")?,
                since_tip_ms: field("since_tip_ms=")?,
                at: line.split_whitespace().next().and_then(time_of_day),
            })
        })
        .collect()
}

/// `2026-11-26T05:40:00.123456Z` → seconds since midnight.
fn time_of_day(stamp: &str) -> Option<f64> {
    let time = stamp.split_once('T')?.1.trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next()?.parse().ok()?;
    let m: f64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

/// Puts the follower's arrivals and the nodes' logs (name, text) together.
///
/// Heights below `from_height` (a warm-up) are left out.
pub fn analyse(arrivals: &[Arrival], logs: &[(String, String)], from_height: u64) -> RaceReport {
    let arrivals: Vec<&Arrival> = arrivals
        .iter()
        .filter(|a| a.height >= from_height)
        .collect();
    let mut winners: HashMap<u64, (Option<&str>, Instant)> = HashMap::new();
    for a in arrivals.iter().filter(|a| !a.stale && a.height > 0) {
        winners.insert(a.height, (a.miner.as_deref(), a.at));
    }
    let mut stale_at: HashMap<u64, u64> = HashMap::new();
    let mut gaps = Vec::new();
    for a in arrivals.iter().filter(|a| a.stale) {
        *stale_at.entry(a.height).or_default() += 1;
        if let Some((_, won_at)) = winners.get(&a.height) {
            gaps.push(a.at.saturating_duration_since(*won_at));
        }
    }
    let mut stale_per_height = BTreeMap::new();
    for height in winners.keys() {
        *stale_per_height
            .entry(stale_at.get(height).copied().unwrap_or(0))
            .or_default() += 1;
    }
    let mut publish_times: HashMap<u64, Vec<f64>> = HashMap::new();
    let nodes = logs
        .iter()
        .map(|(node, log)| {
            let me = miner_id(log).unwrap_or(node.as_str());
            let mut publishes = published(log);
            publishes.retain(|p| p.height >= from_height);
            for p in &publishes {
                if let Some(at) = p.at {
                    publish_times.entry(p.height).or_default().push(at);
                }
            }
            let lost: Vec<u64> = publishes
                .iter()
                .filter(|p| {
                    winners
                        .get(&p.height)
                        .is_some_and(|(miner, _)| *miner != Some(me))
                })
                .map(|p| p.since_tip_ms)
                .collect();
            NodeRaces {
                node: node.clone(),
                published: publishes.len() as u64,
                lost: lost.len() as u64,
                tip_to_publish: Latency::from_samples(
                    publishes
                        .iter()
                        .map(|p| Duration::from_millis(p.since_tip_ms))
                        .collect(),
                ),
                lost_ms: lost.iter().sum::<u64>() as f64,
            }
        })
        .collect();
    let publish_gaps = publish_times
        .values_mut()
        .filter(|times| times.len() > 1)
        .map(|times| {
            times.sort_by(f64::total_cmp);
            Duration::from_secs_f64((times[1] - times[0]).max(0.0))
        })
        .collect();
    RaceReport {
        heights: winners.len() as u64,
        raced_heights: stale_at.keys().filter(|h| winners.contains_key(h)).count() as u64,
        stale_per_height,
        rival_gap: Latency::from_samples(gaps),
        publish_gap: Latency::from_samples(publish_gaps),
        nodes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_height_and_miner_of_a_block_record() {
        let block = br#"{"index": 7, "previous_hash": "x", "proof": 1, "timestamp": 1.0, "transactions": [{"amount": 3, "recipient": "bob", "sender": "alice"}, {"amount": 1, "recipient": "node-1", "sender": "0"}]}"#;
        assert_eq!(identify(block), (Some(7), Some("node-1".into())));
        assert_eq!(identify(b"not json"), (None, None));
    }

    #[test]
    fn reads_published_lines_of_a_node_log() {
        let log = "2026-11-26T05:40:00Z  INFO kafkachain::node::run: published block height=5 txs=1000 since_tip_ms=12 mining_ms=3\n\
                   2026-11-26T05:40:00Z  INFO kafkachain::node::run: block height=5\n";
        assert_eq!(
            published(log),
            vec![Published {
                height: 5,
                since_tip_ms: 12,
                at: Some(5.0 * 3600.0 + 40.0 * 60.0)
            }]
        );
    }

    #[test]
    fn counts_raced_heights_gaps_and_lost_publishes() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let arrival = |height, miner: &str, ms, stale| Arrival {
            height,
            miner: Some(miner.into()),
            at: at(ms),
            stale,
        };
        let arrivals = vec![
            arrival(1, "a", 0, false),
            arrival(1, "b", 4, true),
            arrival(2, "b", 10, false),
            arrival(3, "a", 20, false),
        ];
        let logs = vec![
            (
                "a".to_string(),
                "dT00:00:00.000Z published block height=1 since_tip_ms=2\ndT00:00:00.200Z published block height=3 since_tip_ms=1"
                    .to_string(),
            ),
            (
                "b".to_string(),
                "dT00:00:00.030Z published block height=1 since_tip_ms=3\ndT00:00:00.100Z published block height=2 since_tip_ms=5"
                    .to_string(),
            ),
        ];
        let r = analyse(&arrivals, &logs, 0);
        assert_eq!(r.heights, 3);
        assert_eq!(r.raced_heights, 1);
        assert_eq!(r.stale_per_height, BTreeMap::from([(0, 2), (1, 1)]));
        assert_eq!(r.rival_gap.p50_ms, 4.0);
        assert_eq!((r.nodes[0].published, r.nodes[0].lost), (2, 0));
        assert_eq!((r.nodes[1].published, r.nodes[1].lost), (2, 1));
        assert_eq!(r.nodes[1].lost_ms, 3.0);
        assert!(
            (r.publish_gap.p50_ms - 30.0).abs() < 1e-6,
            "{:?}",
            r.publish_gap
        );
    }

    #[test]
    fn an_accounts_node_is_known_by_its_address_not_its_name() {
        // Under the accounts rules a node's blocks reward its key's address; its
        // bench name (`--id`) appears in no block.
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let t0 = Instant::now();
        let arrival = |height, miner: &str, stale| Arrival {
            height,
            miner: Some(miner.into()),
            at: t0,
            stale,
        };
        let arrivals = vec![
            arrival(1, &a, false),
            arrival(1, &b, true),
            arrival(2, &b, false),
        ];
        let running = |id: &str| {
            format!("dT00:00:00.000Z  INFO kafkachain::node::run: node running id={id} intake=Partition(0)\n")
        };
        let logs = vec![
            (
                "bench-node-0".to_string(),
                running(&a) + "dT00:00:00.100Z published block height=1 since_tip_ms=2\n",
            ),
            (
                "bench-node-1".to_string(),
                running(&b)
                    + "dT00:00:00.110Z published block height=1 since_tip_ms=3\n\
                       dT00:00:00.200Z published block height=2 since_tip_ms=4\n",
            ),
        ];
        let r = analyse(&arrivals, &logs, 0);
        assert_eq!((r.nodes[0].published, r.nodes[0].lost), (1, 0));
        assert_eq!((r.nodes[1].published, r.nodes[1].lost), (2, 1));
        assert_eq!(r.nodes[1].lost_ms, 3.0);
        assert_eq!(miner_id(&running(&a)), Some(a.as_str()));
        assert_eq!(miner_id("no such line"), None);
    }
}
