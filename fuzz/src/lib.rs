//! Shared pieces of the fuzz targets (`fuzz_targets/*.rs`, one per parser):
//!
//! - [`write_seeds`]: each target writes its seed corpus (from the fixtures and from
//!   chains built here) into `$KAFKACHAIN_FUZZ_SEEDS` when that is set, so the corpus
//!   always matches the code (`scripts/fuzz` sets it).
//! - [`py`]: an encoder written for the fuzzer alone, from Python's documented
//!   behaviour, over `serde_json`'s parse: the other side of the canonical JSON
//!   differential. It shares no code with `kafkachain::chain::canonical`.
//! - [`chains`]: short valid chains under every rule set (seed from the fixtures, v2
//!   and accounts at difficulty 0, so that mutated blocks can still pass the proof of
//!   work and reach the deeper checks).

use std::path::PathBuf;

pub mod chains;
pub mod py;

/// Separates records in a replay input: 0xFF never occurs in UTF-8, so no record
/// the parser could accept contains it.
pub const RECORD_SEPARATOR: u8 = 0xFF;

/// Writes `seeds` as files named by their SHA-256 into `$KAFKACHAIN_FUZZ_SEEDS`
/// (nothing when it is unset: an ordinary fuzzing run).
pub fn write_seeds(seeds: impl IntoIterator<Item = Vec<u8>>) {
    let Some(dir) = std::env::var_os("KAFKACHAIN_FUZZ_SEEDS").map(PathBuf::from) else {
        return;
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("cannot create {}: {e}", dir.display());
        return;
    }
    for seed in seeds {
        let name = format!("seed-{}", kafkachain::chain::merkle::tx_id(&seed));
        let path = dir.join(name);
        if !path.exists() {
            if let Err(e) = std::fs::write(&path, &seed) {
                eprintln!("cannot write {}: {e}", path.display());
            }
        }
    }
}

/// The fixtures' lines, one record each.
pub fn fixture_lines(text: &'static str) -> impl Iterator<Item = Vec<u8>> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|l| l.as_bytes().to_vec())
}

/// `(name, text)` of every chain-record fixture.
pub const CHAIN_FIXTURES: &[(&str, &str)] = &[
    (
        "seed_chain",
        include_str!("../../fixtures/seed_chain.jsonl"),
    ),
    (
        "seed_duplicate",
        include_str!("../../fixtures/seed_duplicate.jsonl"),
    ),
    (
        "seed_garbage",
        include_str!("../../fixtures/seed_garbage.jsonl"),
    ),
    (
        "seed_reencoded",
        include_str!("../../fixtures/seed_reencoded.jsonl"),
    ),
    (
        "seed_splits",
        include_str!("../../fixtures/seed_splits.jsonl"),
    ),
    (
        "seed_tampered_amount",
        include_str!("../../fixtures/seed_tampered_amount.jsonl"),
    ),
    (
        "seed_tampered_extra",
        include_str!("../../fixtures/seed_tampered_extra.jsonl"),
    ),
    (
        "seed_tampered_link",
        include_str!("../../fixtures/seed_tampered_link.jsonl"),
    ),
    (
        "seed_tampered_proof",
        include_str!("../../fixtures/seed_tampered_proof.jsonl"),
    ),
];

/// `fixtures/v2_vectors.json`.
pub const V2_VECTORS: &str = include_str!("../../fixtures/v2_vectors.json");

/// The inputs of `fixtures/canonical_vectors.jsonl` (hex-decoded).
pub fn canonical_vector_inputs() -> Vec<Vec<u8>> {
    include_str!("../../fixtures/canonical_vectors.jsonl")
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v.get("input_hex")?.as_str().and_then(unhex))
        .collect()
}

/// The submitted transactions of `fixtures/v2_vectors.json`.
pub fn submitted_vectors() -> Vec<Vec<u8>> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(V2_VECTORS) else {
        return Vec::new();
    };
    v["transactions"]
        .as_array()
        .map(|txs| {
            txs.iter()
                .filter_map(|t| t.get("submitted"))
                .map(|s| match s.as_str() {
                    Some(text) => text.as_bytes().to_vec(),
                    None => s.to_string().into_bytes(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The records of the Python-mined v2 chain in `fixtures/v2_vectors.json`.
pub fn python_v2_chain() -> Vec<Vec<u8>> {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(V2_VECTORS) else {
        return Vec::new();
    };
    v["v2_chain"]["blocks"]
        .as_array()
        .map(|blocks| {
            blocks
                .iter()
                .filter_map(|b| b["record"].as_str())
                .map(|r| r.as_bytes().to_vec())
                .collect()
        })
        .unwrap_or_default()
}

/// Joins records with [`RECORD_SEPARATOR`] after a selector byte.
pub fn framed(selector: u8, records: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![selector];
    for (i, r) in records.iter().enumerate() {
        if i > 0 {
            out.push(RECORD_SEPARATOR);
        }
        out.extend_from_slice(r);
    }
    out
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}
