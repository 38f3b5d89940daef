//! Golden vectors for the v2 encoding, computed by an independent Python implementation
//! (`python/gen_v2_vectors.py` ⇒ `fixtures/v2_vectors.json`): transaction JSON and ids,
//! Merkle roots, the 88-byte header and its hash, a whole mined v2 chain, and Python's
//! float repr. Any change to what v2 hashes fails here byte for byte, so an encoding
//! change cannot pass silently (regenerate the fixtures only for a deliberate fork).

mod pyfloat;

use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

use kafkachain::chain::canonical::write_py_float;
use kafkachain::chain::merkle::{merkle_root, tx_id};
use kafkachain::chain::pow::{hash_leading_zero_bits, v2_header, v2_header_hash, Work};
use kafkachain::chain::{
    parse_submitted, BlockHash, BlockTemplate, ChainState, MerkleRoot, Miner, Origin, Rules,
    Transaction, TxId,
};
use serde_json::{Number, Value};

fn vectors() -> &'static Value {
    static V: OnceLock<Value> = OnceLock::new();
    V.get_or_init(|| {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/v2_vectors.json");
        let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
        serde_json::from_str(&text).expect("fixtures/v2_vectors.json is JSON")
    })
}

fn hash32(v: &Value) -> [u8; 32] {
    let bytes = hex::decode(v.as_str().expect("hex string")).expect("hex");
    bytes.try_into().expect("32 bytes")
}

fn f64_bits(v: &Value) -> f64 {
    f64::from_bits(u64::from_str_radix(v.as_str().expect("hex bits"), 16).expect("u64 hex"))
}

fn int(v: &Value) -> u64 {
    v.as_u64()
        .or_else(|| v.to_string().parse().ok())
        .expect("unsigned integer")
}

fn submitted_tx(v: &Value) -> Transaction {
    let text = v["submitted"].as_str().expect("submitted text");
    let sub =
        parse_submitted(text.as_bytes()).unwrap_or_else(|e| panic!("the node refuses {text}: {e}"));
    let origin = Origin {
        partition: int(&v["partition"]) as i32,
        offset: int(&v["offset"]) as i64,
    };
    Transaction::from_submitted(&sub, origin)
}

#[test]
fn transaction_json_and_ids_match_python() {
    let txs = vectors()["transactions"].as_array().expect("transactions");
    assert!(txs.len() >= 40);
    for (i, v) in txs.iter().enumerate() {
        let tx = match v["reward_to"].as_str() {
            Some(to) => Transaction::reward(to, &Number::from(1)),
            None => submitted_tx(v),
        };
        let want = v["canonical"].as_str().expect("canonical");
        assert_eq!(tx.canonical_json(), want, "transaction vector {i}");
        assert_eq!(
            tx_id(want.as_bytes()).to_hex(),
            v["tx_id"].as_str().expect("tx_id"),
            "transaction id, vector {i}: {want}"
        );
    }
}

#[test]
fn merkle_roots_match_python() {
    for (i, v) in vectors()["merkle"]
        .as_array()
        .expect("merkle")
        .iter()
        .enumerate()
    {
        let leaves: Vec<TxId> = v["leaves"]
            .as_array()
            .expect("leaves")
            .iter()
            .map(|l| TxId(hash32(l)))
            .collect();
        assert_eq!(
            merkle_root(&leaves),
            MerkleRoot(hash32(&v["root"])),
            "Merkle root of {} leaves (vector {i})",
            leaves.len()
        );
    }
}

#[test]
fn v2_headers_and_hashes_match_python() {
    let headers = vectors()["headers"].as_array().expect("headers");
    assert!(headers.len() >= 20);
    for (i, v) in headers.iter().enumerate() {
        let nonce = int(&v["nonce"]);
        let header = v2_header(
            int(&v["index"]),
            &BlockHash(hash32(&v["previous_hash"])),
            f64_bits(&v["timestamp_bits"]),
            &MerkleRoot(hash32(&v["merkle_root"])),
            nonce,
        );
        assert_eq!(
            hex::encode(header),
            v["header"].as_str().unwrap(),
            "header {i}"
        );
        let hash = v2_header_hash(&header);
        assert_eq!(
            hash.to_hex(),
            v["hash"].as_str().unwrap(),
            "header hash {i}"
        );
        let zeros = int(&v["leading_zero_bits"]) as u32;
        assert_eq!(hash_leading_zero_bits(&hash.0), zeros, "leading zeros {i}");
        // The miner's midstate check agrees with the plain hash at the boundary.
        assert!(
            Work::v2(&header, zeros).check(nonce),
            "header {i} meets {zeros} bits"
        );
        assert!(
            !Work::v2(&header, zeros + 1).check(nonce),
            "header {i} does not meet {} bits",
            zeros + 1
        );
    }
}

/// A chain mined by the Python implementation replays here with the same hashes, and
/// the node's block builder reproduces every block byte for byte from the same inputs.
#[test]
fn python_mined_v2_chain_replays_and_is_rebuilt_byte_for_byte() {
    let chain = &vectors()["v2_chain"];
    let difficulty = int(&chain["difficulty"]) as u32;
    let blocks = chain["blocks"].as_array().expect("blocks");
    assert!(blocks.len() >= 5);
    let mut state = ChainState::new();
    for (i, b) in blocks.iter().enumerate() {
        let record = b["record"].as_str().expect("record").as_bytes();
        if i > 0 {
            let tip = state.tip().expect("tip").clone();
            let mut txs: Vec<Transaction> = b["transactions"]
                .as_array()
                .expect("transactions")
                .iter()
                .map(submitted_tx)
                .collect();
            txs.push(Transaction::reward(
                b["miner"].as_str().expect("miner"),
                &Number::from(1),
            ));
            let template = BlockTemplate::new(
                &tip,
                Rules::V2 { difficulty },
                f64_bits(&b["timestamp_bits"]),
                &txs,
            );
            let nonce = int(&b["nonce"]);
            assert!(
                template.work().check(nonce),
                "block {i}: nonce solves the work"
            );
            // Python's loop from 0 found the smallest solution; so must the miner,
            // whatever its thread count.
            for threads in 1..=3 {
                let miner = Miner::new(threads);
                assert_eq!(miner.threads(), threads);
                let mined = miner
                    .mine(&template.work(), &AtomicBool::new(false))
                    .expect("a solution");
                assert_eq!(mined.nonce, nonce, "block {i}: {threads}-thread miner");
            }
            assert_eq!(
                String::from_utf8_lossy(&template.seal(nonce)),
                String::from_utf8_lossy(record),
                "block {i} rebuilt"
            );
        }
        let appended = state
            .apply(record)
            .unwrap_or_else(|d| panic!("block {i} refused: {d}"));
        assert_eq!(appended.index, i as u64 + 1);
        assert_eq!(
            appended.hash.to_hex(),
            b["hash"].as_str().unwrap(),
            "block {i} hash"
        );
    }
    assert_eq!(state.rules(), Some(Rules::V2 { difficulty }));
}

#[test]
fn floats_are_written_as_python_repr() {
    let floats = vectors()["floats"].as_array().expect("floats");
    assert!(floats.len() > 2000);
    for v in floats {
        let x = f64_bits(&v["bits"]);
        let want = v["repr"].as_str().expect("repr");
        let mut got = Vec::new();
        write_py_float(x, &mut got);
        assert_eq!(String::from_utf8_lossy(&got), want, "write_py_float({x:e})");
        // The tests' independent encoder agrees with Python too (chain_props uses it).
        assert_eq!(pyfloat::py_repr(x), want, "pyfloat::py_repr({x:e})");
        assert_eq!(pyfloat::not_shortest_repr(x, want), None);
    }
}
