//! Signed transfers (`chain::accounts::SignedTransfer`): parsing and signature
//! checks. Whatever parses re-encodes to a record that parses to the same transfer,
//! verification never panics, and a transfer that verifies still verifies after the
//! round trip. Seeds include correctly signed transfers, so mutations reach
//! the signature check (`chain::accounts::sigcheck`).
#![no_main]

use kafkachain::chain::accounts::{SignedTransfer, Transfer};
use kafkachain::chain::canonical::is_canonical;
use kafkachain::chain::Origin;
use kafkachain_fuzz::chains::{addr, key, CHAIN_ID};
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        let mut seeds = Vec::new();
        for (from, to, amount, nonce) in [(1u8, 2u8, 7u64, 0u64), (2, 3, 1, 5), (1, 1, u64::MAX, u64::MAX)] {
            let t = Transfer { from: addr(from), to: addr(to), amount, nonce }.sign(&key(from), &CHAIN_ID);
            seeds.push(t.to_json());
        }
        kafkachain_fuzz::write_seeds(seeds);
    },
    |data: &[u8]| {
        let Ok(t) = SignedTransfer::parse(data) else { return };
        let json = t.to_json();
        assert_eq!(SignedTransfer::parse(&json).as_ref(), Ok(&t), "round trip changed the transfer");
        let block = t.block_json(Origin { partition: 0, offset: 1 });
        assert_eq!(is_canonical(block.as_bytes()), Ok(true), "block form not canonical: {block}");
        if t.verify(&CHAIN_ID).is_ok() {
            let again = SignedTransfer::parse(&json).map(|t| t.verify(&CHAIN_ID).is_ok());
            assert_eq!(again, Ok(true));
        }
    }
);
