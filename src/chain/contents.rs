//! What a block carries, read for the index and for proofs: each transaction's
//! canonical JSON, its id (the v2 Merkle leaf hash) and the fields people look up.
//!
//! This reads a record that [`ChainState`](super::ChainState) already appended; it
//! does not judge it. The ids are computed exactly as the v2 rules compute the leaves
//! (canonical JSON of each transaction), so for a v2 block the ids fold to the block's
//! `merkle_root`. Under the seed rules the id is the same hash of the same canonical
//! JSON; seed blocks just have no root to fold it to.

use super::block::{as_hash, as_u64, string_value, tx_origin, Fields, TxFields};
use super::canonical::{Canonicalizer, JsonError, Kind};
use super::hash::{BlockHash, MerkleRoot, TxId};
use super::merkle::tx_id;
use super::Origin;

/// One transaction of a block.
#[derive(Clone, Debug, PartialEq)]
pub struct TxContents {
    pub id: TxId,
    /// Canonical JSON (what the id hashes).
    pub json: String,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    /// The amount as canonical JSON (arbitrary precision kept).
    pub amount: Option<String>,
    /// The amount as Python's `float()` would read it.
    pub amount_f64: Option<f64>,
    pub origin: Option<Origin>,
}

/// The parts of a block that the index keeps besides what replay reports.
#[derive(Clone, Debug, PartialEq)]
pub struct BlockContents {
    /// v2 blocks: the parent's hash. Seed genesis blocks carry the integer 1 here.
    pub previous_hash: Option<BlockHash>,
    /// v2 blocks only.
    pub merkle_root: Option<MerkleRoot>,
    /// v2 blocks: the nonce.
    pub nonce: Option<u64>,
    /// The `proof` value as canonical JSON.
    pub proof: String,
    pub txs: Vec<TxContents>,
    /// Accounts genesis only: the addresses its `allocations` fund, as written.
    pub allocations: Vec<String>,
}

impl BlockContents {
    /// Contents with nothing in them.
    pub fn empty() -> Self {
        BlockContents {
            previous_hash: None,
            merkle_root: None,
            nonce: None,
            proof: String::new(),
            txs: Vec::new(),
            allocations: Vec::new(),
        }
    }
}

/// Reads block contents; reusable so indexing does not allocate a parser per block.
#[derive(Debug, Default)]
pub struct ContentsReader {
    canon: Canonicalizer,
    buf: Vec<u8>,
}

impl ContentsReader {
    pub fn new() -> Self {
        Self::default()
    }

    /// The contents of a block record. Transactions that are not objects (possible
    /// only under the seed rules, which never look inside) still get an id and JSON.
    pub fn read(&mut self, record: &[u8]) -> Result<BlockContents, JsonError> {
        let Canonicalizer {
            tape, buf, scratch, ..
        } = &mut self.canon;
        tape.parse(record)?;
        let tape = &*tape;
        let s = record;
        let mut contents = BlockContents::empty();
        if tape.node(0).kind != Kind::Object {
            return Ok(contents);
        }
        let f = Fields::read(tape, s);
        contents.previous_hash = f
            .previous_hash
            .and_then(|p| as_hash(tape, s, p))
            .map(BlockHash);
        contents.merkle_root = f
            .merkle_root
            .and_then(|m| as_hash(tape, s, m))
            .map(MerkleRoot);
        if let Some(a) = f.allocations.filter(|a| tape.node(*a).kind == Kind::Object) {
            contents.allocations = tape
                .members(a)
                .filter_map(|(k, _)| string_value(tape, s, k))
                .collect();
        }
        if let Some(p) = f.proof {
            contents.nonce = as_u64(tape, s, p);
            self.buf.clear();
            tape.write(s, p, &mut self.buf, scratch);
            contents.proof = String::from_utf8_lossy(&self.buf).into_owned();
        }
        let Some(txs) = f.transactions.filter(|t| tape.node(*t).kind == Kind::Array) else {
            return Ok(contents);
        };
        for (i, tx) in tape.items(txs).enumerate() {
            let json: &[u8] = if tape.canonical {
                tape.raw(s, tx)
            } else {
                buf.clear();
                tape.write(s, tx, buf, scratch);
                buf
            };
            let mut t = TxContents {
                id: tx_id(json),
                json: String::from_utf8_lossy(json).into_owned(),
                sender: None,
                recipient: None,
                amount: None,
                amount_f64: None,
                origin: None,
            };
            if tape.node(tx).kind == Kind::Object {
                let tf = TxFields::read(tape, s, tx);
                t.sender = tf.sender.and_then(|v| string_value(tape, s, v));
                t.recipient = tf.recipient.and_then(|v| string_value(tape, s, v));
                if let Some(a) = tf
                    .amount
                    .filter(|a| matches!(tape.node(*a).kind, Kind::Int | Kind::Float))
                {
                    self.buf.clear();
                    tape.write(s, a, &mut self.buf, scratch);
                    let text = String::from_utf8_lossy(&self.buf).into_owned();
                    t.amount_f64 = text.parse::<f64>().ok().filter(|x| x.is_finite());
                    t.amount = Some(text);
                }
                t.origin = tf
                    .origin
                    .and_then(|o| tx_origin(tape, s, o, i, false).ok().flatten())
                    .map(|(origin, _attempt)| origin);
            }
            contents.txs.push(t);
        }
        Ok(contents)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Number;

    use super::*;
    use crate::chain::merkle::merkle_root;
    use crate::chain::{genesis, parse_submitted, BlockTemplate, ChainState, Rules, Transaction};

    #[test]
    fn ids_fold_to_the_blocks_root_and_fields_are_read() {
        let rules = Rules::V2 { difficulty: 0 };
        let mut state = ChainState::new();
        state.apply(&genesis(rules, 1.0)).unwrap();
        let sub =
            parse_submitted(br#"{"from": "J\u00f6rg", "to": "bob", "amount": 2.50}"#).unwrap();
        let txs = vec![
            Transaction::from_submitted(
                &sub,
                Origin {
                    partition: 1,
                    offset: 7,
                },
            ),
            Transaction::reward("miner", &Number::from(1)),
        ];
        let t = BlockTemplate::new(state.tip().unwrap(), rules, 2.0, &txs);
        let block = t.seal(0);
        state.apply(&block).unwrap();
        let c = ContentsReader::new().read(&block).unwrap();
        let ids: Vec<TxId> = c.txs.iter().map(|t| t.id).collect();
        assert_eq!(Some(merkle_root(&ids)), c.merkle_root);
        assert_eq!(c.nonce, Some(0));
        assert_eq!(c.txs[0].sender.as_deref(), Some("Jörg"));
        assert_eq!(c.txs[0].amount.as_deref(), Some("2.5"));
        assert_eq!(c.txs[0].amount_f64, Some(2.5));
        assert_eq!(
            c.txs[0].origin,
            Some(Origin {
                partition: 1,
                offset: 7
            })
        );
        assert_eq!(c.txs[1].json, txs[1].canonical_json());
        // The same ids from a non-canonical spelling of the same block.
        let pretty = serde_json::to_vec_pretty(
            &serde_json::from_slice::<serde_json::Value>(&block).unwrap(),
        )
        .unwrap();
        let again = ContentsReader::new().read(&pretty).unwrap();
        assert_eq!(again.txs, c.txs);
    }

    #[test]
    fn an_accounts_genesis_names_the_addresses_it_funds() {
        use std::collections::BTreeMap;

        use crate::chain::accounts::{genesis_block, AccountsGenesis, Address, ChainId};
        let key = |n: u8| {
            let k = ed25519_dalek::SigningKey::from_bytes(&[n; 32]);
            Address::of(&k.verifying_key())
        };
        let g = AccountsGenesis {
            chain_id: ChainId([3; 32]),
            difficulty: 0,
            block_reward: 1,
            allocations: BTreeMap::from([(key(1), 100), (key(2), 5)]),
        };
        let c = ContentsReader::new().read(&genesis_block(&g, 1.0)).unwrap();
        let mut expected = vec![key(1).to_string(), key(2).to_string()];
        expected.sort();
        assert_eq!(c.allocations, expected);
        assert!(c.txs.is_empty());
    }
}
