//! Transaction intake (`chain::intake::parse_submitted`), the trust boundary of the
//! transactions topic. For whatever it accepts: the amount is a finite number that
//! is not below zero, `from`/`to` are what serde_json reads, the block transaction
//! is canonical JSON within the size the block budget assumes, and a v2 block
//! carrying it is accepted by replay (a node never mines a block the chain refuses).
#![no_main]

use std::sync::OnceLock;

use kafkachain::chain::canonical::is_canonical;
use kafkachain::chain::{
    parse_submitted, BlockTemplate, Origin, Rules, Transaction, BLOCK_FRAME_BYTES,
    BLOCK_TX_SEPARATOR_BYTES, MAX_TX_BYTES,
};
use kafkachain_fuzz::chains::{self, Chain};
use libfuzzer_sys::fuzz_target;

static V2: OnceLock<Chain> = OnceLock::new();

fuzz_target!(
    init: {
        let mut seeds = kafkachain_fuzz::submitted_vectors();
        seeds.push(br#"{"from": "alice", "to": "bob", "amount": 3}"#.to_vec());
        seeds.push(br#"{"amount": 1e308, "to": "\u00e9", "from": "\ud83d\ude00"}"#.to_vec());
        seeds.push(br#"{"from": "a", "to": "b", "amount": -0.0, "extra": [1, {"x": null}]}"#.to_vec());
        kafkachain_fuzz::write_seeds(seeds);
    },
    |data: &[u8]| {
        let Ok(tx) = parse_submitted(data) else { return };
        assert!(data.len() <= MAX_TX_BYTES);
        let literal = tx.amount.to_string();
        let amount: f64 = literal.parse().unwrap_or(f64::NAN);
        assert!(amount.is_finite() && amount >= 0.0, "accepted amount {literal}");
        let value: serde_json::Value = match serde_json::from_slice(data) {
            Ok(v) => v,
            Err(e) => panic!("accepted what serde_json refuses: {e}"),
        };
        assert_eq!(value["from"].as_str(), Some(tx.from.as_str()));
        assert_eq!(value["to"].as_str(), Some(tx.to.as_str()));

        let origin = Origin { partition: 3, offset: i64::MAX };
        let block_tx = Transaction::from_submitted(&tx, origin);
        let json = block_tx.canonical_json().as_bytes();
        assert_eq!(is_canonical(json), Ok(true), "block transaction not canonical: {:?}", block_tx.canonical_json());

        let chain = V2.get_or_init(chains::v2);
        let mut state = chain.state();
        let tip = match state.tip() { Some(t) => t.clone(), None => return };
        let template = BlockTemplate::new(&tip, Rules::V2 { difficulty: 0 }, tip.timestamp + 1.0, &[block_tx.clone()]);
        let block = template.seal(u64::MAX);
        assert!(
            block.len() <= BLOCK_FRAME_BYTES + block_tx.encoded_len() + BLOCK_TX_SEPARATOR_BYTES,
            "block of {} bytes is over its budget bound", block.len()
        );
        if let Err(e) = state.apply(&block) {
            panic!("a block with an accepted transaction is refused: {e}\n{:?}", String::from_utf8_lossy(&block));
        }
    }
);
