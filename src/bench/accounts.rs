//! Signed transfers for the accounts benchmarks: deterministic sender keys, their
//! genesis allocations, transfers with consecutive nonces, and whole mined chains for
//! the replay benchmark (`cargo bench --bench accounts`).

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

use crate::chain::accounts::{genesis_block, AccountsGenesis, Address, ChainId, Transfer};
use crate::chain::{BlockTemplate, ChainState, Miner, Origin, Transaction};

/// Each sender's starting balance: plenty for any run.
pub const ALLOCATION: u64 = 1 << 50;

/// `n` deterministic sender keys (seed = SHA-256 of "kafkachain bench sender <i>").
pub fn senders(n: usize) -> Vec<SigningKey> {
    (0..n)
        .map(|i| {
            let seed: [u8; 32] = Sha256::digest(format!("kafkachain bench sender {i}")).into();
            SigningKey::from_bytes(&seed)
        })
        .collect()
}

/// Genesis allocations for `keys`.
pub fn allocations(keys: &[SigningKey]) -> BTreeMap<Address, u64> {
    keys.iter()
        .map(|k| (Address::of(&k.verifying_key()), ALLOCATION))
        .collect()
}

/// Transfer number `i` of a run over `keys`: sender `i % n` pays 1 to the next
/// sender, with nonce `i / n` (so each sender's transfers are in nonce order).
pub fn transfer(keys: &[SigningKey], i: u64, chain: &ChainId) -> Vec<u8> {
    let n = keys.len() as u64;
    let from = &keys[(i % n) as usize];
    let to = &keys[((i + 1) % n) as usize];
    Transfer {
        from: Address::of(&from.verifying_key()),
        to: Address::of(&to.verifying_key()),
        amount: 1,
        nonce: i / n,
    }
    .sign(from, chain)
    .to_json()
}

/// A mined accounts chain (genesis first) of `blocks` blocks with `per_block`
/// transfers each plus a reward, over `senders` accounts. Difficulty 4: replay cost
/// does not depend on it.
pub fn build_chain(senders_n: usize, blocks: usize, per_block: usize) -> Vec<Vec<u8>> {
    let mut out = Vec::with_capacity(blocks + 1);
    for_each_block(senders_n, blocks, per_block, |b| out.push(b.to_vec()));
    out
}

/// The blocks of [`build_chain`], one at a time (genesis first), without keeping
/// them: for chains too long to hold in memory.
pub fn for_each_block(
    senders_n: usize,
    blocks: usize,
    per_block: usize,
    mut each: impl FnMut(&[u8]),
) {
    let keys = senders(senders_n.max(2));
    let chain_id = ChainId([0x5a; 32]);
    let genesis = genesis_block(
        &AccountsGenesis {
            chain_id,
            difficulty: 4,
            block_reward: 1,
            allocations: allocations(&keys),
        },
        1_764_079_200.0,
    );
    let mut state = ChainState::new();
    if state.apply(&genesis).is_err() {
        return;
    }
    each(&genesis);
    let miner = Miner::new(1);
    let never = AtomicBool::new(false);
    let reward_to = Address::of(&keys[0].verifying_key()).to_string();
    let mut i = 0u64;
    for _ in 0..blocks {
        let mut txs: Vec<Transaction> = (0..per_block)
            .map(|_| {
                let json = transfer(&keys, i, &chain_id);
                i += 1;
                let signed = crate::chain::accounts::SignedTransfer::parse(&json)
                    .expect("our own transfer parses");
                signed.unverified_block_tx(Origin {
                    partition: 0,
                    offset: i as i64,
                })
            })
            .collect();
        txs.push(Transaction::reward(
            &reward_to,
            &serde_json::Number::from(1),
        ));
        let Some(tip) = state.tip().cloned() else {
            break;
        };
        let Some(rules) = state.rules() else { break };
        let template = BlockTemplate::new(&tip, rules, tip.timestamp + 0.5, &txs);
        let Some(mined) = miner.mine(&template.work(), &never) else {
            break;
        };
        let block = template.seal(mined.nonce);
        if state.apply(&block).is_err() {
            break;
        }
        each(&block);
    }
}
