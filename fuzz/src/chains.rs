//! Short valid chains under each rule set, built once per fuzzing process: a prefix
//! the replay target applies before the fuzzed records, and a tail of further valid
//! blocks that seeds the corpus (so libFuzzer mutates real blocks).

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use kafkachain::chain::accounts::{genesis_block, AccountsGenesis, Address, ChainId, Transfer};
use kafkachain::chain::{
    genesis, parse_submitted, BlockTemplate, ChainState, Origin, Rules, Transaction,
};
use serde_json::Number;

/// The accounts chain's id.
pub const CHAIN_ID: ChainId = ChainId([7; 32]);

pub struct Chain {
    /// Applied before the fuzzed records.
    pub prefix: Vec<Vec<u8>>,
    /// The valid blocks that follow the prefix.
    pub tail: Vec<Vec<u8>>,
}

impl Chain {
    /// A fresh state with the prefix applied.
    pub fn state(&self) -> ChainState {
        let mut s = ChainState::new();
        for r in &self.prefix {
            if let Err(e) = s.apply(r) {
                panic!("the prefix does not replay: {e}");
            }
        }
        s
    }
}

pub fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

pub fn addr(n: u8) -> Address {
    Address::of(&key(n).verifying_key())
}

/// The fixture's seed chain: genesis and two blocks, then the rest.
pub fn seed() -> Chain {
    let records: Vec<Vec<u8>> = crate::fixture_lines(crate::CHAIN_FIXTURES[0].1).collect();
    let (prefix, tail) = records.split_at(3.min(records.len()));
    Chain {
        prefix: prefix.to_vec(),
        tail: tail.to_vec(),
    }
}

/// Mines (trivially: difficulty 0) `blocks` blocks on `state`.
fn extend(
    state: &mut ChainState,
    rules: Rules,
    blocks: usize,
    txs: &mut dyn FnMut(usize) -> Vec<Transaction>,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for b in 0..blocks {
        let tip = match state.tip() {
            Some(t) => t.clone(),
            None => panic!("no tip"),
        };
        let template = BlockTemplate::new(&tip, rules, tip.timestamp + 1.25, &txs(b));
        let block = template.seal(0);
        if let Err(e) = state.apply(&block) {
            panic!("a built block does not replay: {e}");
        }
        out.push(block);
    }
    out
}

/// A v2 chain at difficulty 0: genesis, two blocks, then three more.
pub fn v2() -> Chain {
    let rules = Rules::V2 { difficulty: 0 };
    let mut state = ChainState::new();
    let g = genesis(rules, 1_764_079_200.5);
    if let Err(e) = state.apply(&g) {
        panic!("genesis: {e}");
    }
    let names = ["alice", "Zo\u{eb}", "\u{1f600}", "tab\there", "q\"uote"];
    let mut offset = 0i64;
    let mut txs = |b: usize| {
        let mut txs = Vec::new();
        for k in 0..3 {
            let amount = if k == 1 {
                "0.5".to_string()
            } else {
                format!("{}", b + k)
            };
            let msg = format!(
                "{{\"from\": {}, \"to\": {}, \"amount\": {amount}}}",
                serde_json::Value::from(names[(b + k) % 5]),
                serde_json::Value::from(names[(b + 2 * k + 1) % 5]),
            );
            let Ok(sub) = parse_submitted(msg.as_bytes()) else {
                panic!("{msg}");
            };
            txs.push(Transaction::from_submitted(
                &sub,
                Origin {
                    partition: (k % 2) as i32,
                    offset,
                },
            ));
            offset += 1;
        }
        txs.push(Transaction::reward("node-1", &Number::from(1)));
        txs
    };
    let mut blocks = vec![g];
    blocks.extend(extend(&mut state, rules, 5, &mut txs));
    let tail = blocks.split_off(3);
    Chain {
        prefix: blocks,
        tail,
    }
}

/// An accounts chain at difficulty 0 (accounts 1 and 2 funded, 3 mines): genesis, two
/// blocks of signed transfers, then three more.
pub fn accounts() -> Chain {
    let g = AccountsGenesis {
        chain_id: CHAIN_ID,
        difficulty: 0,
        block_reward: 10,
        allocations: BTreeMap::from([(addr(1), 1000), (addr(2), 50)]),
    };
    let rules = Rules::Accounts {
        difficulty: 0,
        chain_id: CHAIN_ID,
        block_reward: 10,
    };
    let mut state = ChainState::new();
    let gb = genesis_block(&g, 1_764_079_200.5);
    if let Err(e) = state.apply(&gb) {
        panic!("accounts genesis: {e}");
    }
    let mut nonces = [0u64; 4];
    let mut offset = 0i64;
    let mut txs = |b: usize| {
        let mut txs = Vec::new();
        for (from, to, amount) in [(1u8, 2u8, 7 + b as u64), (2, 3, 1), (1, 3, 2)] {
            let t = Transfer {
                from: addr(from),
                to: addr(to),
                amount,
                nonce: nonces[from as usize],
            }
            .sign(&key(from), &CHAIN_ID);
            nonces[from as usize] += 1;
            txs.push(t.unverified_block_tx(Origin {
                partition: 0,
                offset,
            }));
            offset += 1;
        }
        txs.push(Transaction::reward(&addr(3).to_string(), &Number::from(10)));
        txs
    };
    let mut blocks = vec![gb];
    blocks.extend(extend(&mut state, rules, 5, &mut txs));
    let tail = blocks.split_off(3);
    Chain {
        prefix: blocks,
        tail,
    }
}
