//! The body of `POST /transactions/new` (`serve::api::parse_new_transaction`): no
//! panic, and whatever it accepts is re-encoded as a record that intake accepts as
//! the same transaction.
#![no_main]

use kafkachain::chain::parse_submitted;
use kafkachain::serve::api::parse_new_transaction;
use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        let mut seeds = kafkachain_fuzz::submitted_vectors();
        seeds.push(br#"{"sender": "alice", "recipient": "bob", "amount": 3}"#.to_vec());
        seeds.push(br#"{"from": "a", "to": "b", "recipient": "c", "amount": 1.5}"#.to_vec());
        seeds.push(br#"{"amount": 1}"#.to_vec());
        kafkachain_fuzz::write_seeds(seeds);
    },
    |data: &[u8]| {
        match parse_new_transaction(data) {
            Ok((payload, submitted)) => {
                assert_eq!(parse_submitted(&payload), Ok(submitted), "the published record reads back differently");
            }
            Err(message) => assert!(!message.is_empty()),
        }
    }
);
