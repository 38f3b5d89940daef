//! The chain core against fixtures computed by Python itself (`python/gen_vectors.py`):
//! canonical JSON and hashes byte-for-byte, and a chain produced by the tutorial's
//! node (plus tampered variants) replayed exactly as the tutorial replays it.

use std::path::PathBuf;

use kafkachain::chain::canonical::{is_canonical, to_canonical};
use kafkachain::chain::{ChainState, Rules};
use serde_json::Value;
use sha2::{Digest, Sha256};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(fixture(name)).unwrap_or_else(|e| panic!("reading fixture {name}: {e}"))
}

#[test]
fn canonical_json_matches_python_vectors() {
    let text = read("canonical_vectors.jsonl");
    let mut count = 0;
    for (i, line) in text.lines().enumerate() {
        let v: Value = serde_json::from_str(line).unwrap();
        let input = hex::decode(v["input_hex"].as_str().unwrap()).unwrap();
        let want = v["canonical"].as_str().unwrap();
        let got = to_canonical(&input).unwrap_or_else(|e| {
            panic!("vector {}: {e}: {}", i + 1, String::from_utf8_lossy(&input))
        });
        assert_eq!(
            String::from_utf8_lossy(&got),
            want,
            "vector {} input {}",
            i + 1,
            String::from_utf8_lossy(&input)
        );
        assert_eq!(
            hex::encode(Sha256::digest(&got)),
            v["sha256"].as_str().unwrap()
        );
        assert_eq!(
            is_canonical(&input).unwrap(),
            v["canonical_input"].as_bool().unwrap(),
            "fast-path detection, vector {}: {}",
            i + 1,
            String::from_utf8_lossy(&input)
        );
        count += 1;
    }
    assert!(count > 500, "only {count} vectors");
}

#[test]
fn tutorial_chain_and_tampered_variants_replay_like_the_tutorial() {
    let expect: Value = serde_json::from_str(&read("seed_expect.json")).unwrap();
    let files = expect.as_object().unwrap();
    assert!(files.len() >= 8);
    for (name, e) in files {
        let text = read(name);
        let mut state = ChainState::new();
        let mut appended = Vec::new();
        let mut stale = Vec::new();
        for (i, line) in text.lines().enumerate() {
            match state.apply(line.as_bytes()) {
                Ok(_) => appended.push(i as u64 + 1),
                Err(d) if d.is_stale() => stale.push(i as u64 + 1),
                Err(_) => {}
            }
        }
        let want: Vec<u64> = e["appended"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap())
            .collect();
        assert_eq!(appended, want, "{name}: appended lines");
        assert_eq!(
            state.height(),
            e["height"].as_u64().unwrap(),
            "{name}: height"
        );
        assert_eq!(
            state.tip().unwrap().hash.to_string(),
            e["tip_hash"].as_str().unwrap(),
            "{name}: tip hash"
        );
        assert_eq!(state.rules(), Some(Rules::Seed));
        if name == "seed_duplicate.jsonl" {
            assert_eq!(stale, vec![17], "the replayed copy of block 15 is stale");
        } else {
            assert!(stale.is_empty(), "{name}: unexpected stale {stale:?}");
        }
    }
}

#[test]
fn tutorial_chain_reports_miner_and_transactions() {
    let text = read("seed_chain.jsonl");
    let mut state = ChainState::new();
    for (i, line) in text.lines().enumerate() {
        let a = state.apply(line.as_bytes()).unwrap();
        assert_eq!(a.index, i as u64 + 1);
        if i > 0 {
            assert_eq!(a.tx_count, 4);
            assert_eq!(a.miner.as_deref(), Some("n\u{f6}de-1"));
        }
    }
}
