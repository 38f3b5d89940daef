//! Chain-record replay: a rule-set selector byte, then records separated by 0xFF,
//! applied to a `ChainState` that starts empty (selector 0) or on a valid seed (1),
//! v2 (2) or accounts (3) chain. Seeds are the fixtures and real blocks, so most
//! inputs are mutated blocks. Each prefix is applied once per process and every input
//! replays on a clone of that state (`ChainState: Clone`), so an execution costs only
//! the input's own records.
//!
//! For every record: no panic; a discarded record leaves height and tip unchanged;
//! an appended one raises the height by one and becomes the tip, and applying it
//! again is discarded as stale (a block is never on the chain twice).
#![no_main]

use std::sync::OnceLock;

use kafkachain::chain::ChainState;
use kafkachain_fuzz::chains::{self, Chain};
use kafkachain_fuzz::{framed, RECORD_SEPARATOR};
use libfuzzer_sys::fuzz_target;

static CHAINS: OnceLock<[Chain; 3]> = OnceLock::new();
/// Each chain's prefix, applied once per process; every input replays on a clone.
static PREPARED: OnceLock<[ChainState; 3]> = OnceLock::new();

fn chains() -> &'static [Chain; 3] {
    CHAINS.get_or_init(|| [chains::seed(), chains::v2(), chains::accounts()])
}

fn prepared() -> &'static [ChainState; 3] {
    PREPARED.get_or_init(|| {
        let [a, b, c] = chains();
        [a.state(), b.state(), c.state()]
    })
}

fn check(state: &mut ChainState, record: &[u8]) {
    let before = (state.height(), state.tip().map(|t| t.hash));
    match state.apply(record) {
        Ok(appended) => {
            assert_eq!(state.height(), before.0 + 1, "appended without growing");
            assert_eq!(state.tip().map(|t| t.hash), Some(appended.hash));
            let tip = state.tip().map(|t| t.hash);
            match state.apply(record) {
                Ok(_) => panic!(
                    "the same block appended twice: {:?}",
                    String::from_utf8_lossy(record)
                ),
                Err(d) => {
                    assert!(
                        d.is_stale(),
                        "a block just appended, seen again, is {d} (not stale)"
                    );
                    assert_eq!(
                        (state.height(), state.tip().map(|t| t.hash)),
                        (before.0 + 1, tip)
                    );
                }
            }
        }
        Err(d) => {
            let _ = d.to_string();
            assert_eq!(
                (state.height(), state.tip().map(|t| t.hash)),
                before,
                "a discarded record ({d}) changed the chain"
            );
        }
    }
}

fuzz_target!(
    init: {
        let c = chains();
        prepared();
        let mut seeds = Vec::new();
        for (_, text) in kafkachain_fuzz::CHAIN_FIXTURES {
            let records: Vec<Vec<u8>> = kafkachain_fuzz::fixture_lines(text).collect();
            seeds.push(framed(0, &records));
        }
        seeds.push(framed(0, &kafkachain_fuzz::python_v2_chain()));
        for (i, chain) in c.iter().enumerate() {
            let selector = i as u8 + 1;
            seeds.push(framed(selector, &chain.tail));
            for block in &chain.tail {
                seeds.push(framed(selector, std::slice::from_ref(block)));
            }
            let mut all = chain.prefix.clone();
            all.extend(chain.tail.iter().cloned());
            seeds.push(framed(0, &all));
        }
        kafkachain_fuzz::write_seeds(seeds);
    },
    |data: &[u8]| {
        let Some((&selector, rest)) = data.split_first() else { return };
        let mut state = match selector % 4 {
            0 => ChainState::new(),
            n => prepared()[n as usize - 1].clone(),
        };
        for record in rest.split(|&b| b == RECORD_SEPARATOR) {
            check(&mut state, record);
        }
    }
);
