//! Replaying the chain topic: records arrive in offset order and each one is either
//! appended to the chain or discarded with the rule it broke. Same records ⇒ same
//! chain, on every node.
//!
//! Memory stays bounded however long the chain grows: we keep the tip, a small ring
//! of recent blocks (enough to tell a block that merely lost a mining race — *stale* —
//! from a bad one) and the origins already used, as per-partition ranges.

use std::collections::VecDeque;
use std::fmt;

use sha2::{Digest, Sha256};

use super::accounts::genesis::{read_genesis, GenesisFields};
use super::accounts::{AccountsError, Ledger};
use super::block::{
    as_f64, as_hash, as_u64, describe, python_str, string_is, tx_origin, Fields, TxFields,
};
use super::canonical::{Canonicalizer, Kind, Tape};
use super::hash::{BlockHash, MerkleRoot};
use super::merkle::{merkle_root_in_place, tx_id};
use super::origins::OriginSet;
use super::pow::{hash_leading_zero_bits, seed_valid_proof, v2_header, v2_header_hash};
use super::rules::{RuleError, Rules};
use super::Origin;

/// How many recent non-tip blocks we remember to classify stale blocks.
const RECENT: usize = 16;

/// The block at the end of the chain: what the next block must build on.
#[derive(Clone, Debug)]
pub struct Tip {
    pub index: u64,
    pub hash: BlockHash,
    pub timestamp: f64,
    /// Python's `str(proof)`: the seed rule's proof of work chains on it.
    pub(crate) proof: String,
}

impl Tip {
    /// Python's `str()` of the block's proof (what the seed rule hashes next).
    pub fn proof_str(&self) -> &str {
        &self.proof
    }
}

/// A block that was appended.
#[derive(Clone, Debug)]
pub struct Appended {
    pub index: u64,
    pub hash: BlockHash,
    pub timestamp: f64,
    pub tx_count: usize,
    /// Origins of the transactions it carries, in block order.
    pub origins: Vec<Origin>,
    /// Recipient of the reward transaction (sender `"0"`), if any.
    pub miner: Option<String>,
}

/// A record that was not appended, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Discarded {
    pub reason: RuleError,
}

impl Discarded {
    /// Whether the record was a well-formed block that lost a race (it builds on a
    /// recent block that is no longer the tip). Expected when several nodes mine.
    pub fn is_stale(&self) -> bool {
        self.reason.is_stale()
    }
}

impl fmt::Display for Discarded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.reason.fmt(f)
    }
}

impl std::error::Error for Discarded {}

impl From<RuleError> for Discarded {
    fn from(reason: RuleError) -> Self {
        Discarded { reason }
    }
}

/// The replayed chain: rules, tip, recent history and used origins.
#[derive(Debug, Default)]
pub struct ChainState {
    rules: Option<Rules>,
    tip: Option<Tip>,
    height: u64,
    /// Recent blocks before the tip, oldest first.
    recent: VecDeque<Tip>,
    origins: OriginSet,
    /// Balances and nonces (accounts rules only).
    ledger: Option<Ledger>,
    /// Reused between records so that replay does not allocate per block.
    canon: Canonicalizer,
    proof: Vec<u8>,
    leaves: Vec<[u8; 32]>,
}

/// A v2 block's checked content.
struct V2Block {
    index: u64,
    nonce: u64,
    previous: BlockHash,
    timestamp: f64,
    hash: BlockHash,
    origins: Vec<Origin>,
    tx_count: usize,
    miner: Option<String>,
}

impl ChainState {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn tip(&self) -> Option<&Tip> {
        self.tip.as_ref()
    }

    pub fn rules(&self) -> Option<Rules> {
        self.rules
    }

    /// Blocks on the chain, genesis included.
    pub fn height(&self) -> u64 {
        self.height
    }

    /// The accounts state as of the tip (accounts rules only).
    pub fn accounts(&self) -> Option<&Ledger> {
        self.ledger.as_ref()
    }

    /// Whether a transaction with this origin is already on the chain.
    pub fn contains_origin(&self, origin: Origin) -> bool {
        self.origins.contains(origin)
    }

    /// Applies the next record of the chain topic.
    pub fn apply(&mut self, record: &[u8]) -> Result<Appended, Discarded> {
        if let Err(e) = self.canon.tape.parse(record) {
            return Err(json_error(record, e.to_string()).into());
        }
        let kind = self.canon.tape.node(0).kind;
        if kind != Kind::Object {
            return Err(RuleError::NotABlock(format!(
                "the record is {}, not an object",
                kind_name(kind)
            ))
            .into());
        }
        let fields = Fields::read(&self.canon.tape, record);
        let second_genesis = self.rules.is_some()
            && fields
                .index
                .and_then(|i| as_u64(&self.canon.tape, record, i))
                == Some(1)
            && ChainState::new().apply(record).is_ok();
        if second_genesis {
            // Nodes that start on an empty topic race to publish the genesis block;
            // the losers' copies are well-formed, just late.
            return Err(RuleError::SecondGenesis.into());
        }
        let result = match self.rules {
            None => self.apply_genesis(record, &fields),
            Some(Rules::Seed) => self.apply_seed(record, &fields),
            Some(Rules::V2 { difficulty }) => self.apply_v2(record, &fields, difficulty),
            Some(Rules::Accounts { difficulty, .. }) => {
                self.apply_accounts(record, &fields, difficulty)
            }
        };
        result.map_err(Discarded::from)
    }

    fn apply_genesis(&mut self, s: &[u8], f: &Fields) -> Result<Appended, RuleError> {
        let tape = &self.canon.tape;
        match f.index {
            Some(i) if as_u64(tape, s, i) == Some(1) => {}
            Some(i) => {
                return Err(RuleError::NoGenesis(format!(
                    "index {}",
                    describe(tape, s, i)
                )))
            }
            None => return Err(RuleError::NoGenesis("a block without an index".into())),
        }
        match f.rules {
            None => {
                let proof = f
                    .proof
                    .ok_or_else(|| RuleError::MissingField("proof".into()))?;
                python_str(tape, s, proof, &mut self.proof)?;
                let hash = canonical_hash(&mut self.canon, s);
                let tape = &self.canon.tape;
                let timestamp = f.timestamp.and_then(|t| as_f64(tape, s, t)).unwrap_or(0.0);
                let (origins, miner, tx_count) = lenient_txs(tape, s, f.transactions);
                self.rules = Some(Rules::Seed);
                Ok(self.advance(1, hash, timestamp, origins, miner, tx_count))
            }
            Some(r) if string_is(tape, s, r, b"v2") || string_is(tape, s, r, b"accounts") => {
                let accounts = string_is(tape, s, r, b"accounts");
                let difficulty = f
                    .difficulty
                    .ok_or_else(|| RuleError::MissingField("difficulty".into()))
                    .and_then(|d| {
                        as_u64(tape, s, d).filter(|d| *d <= 256).ok_or_else(|| {
                            RuleError::WrongType {
                                field: "difficulty".into(),
                                expected: "an integer 0..=256 (leading zero bits)",
                            }
                        })
                    })? as u32;
                let accounts_fields = GenesisFields {
                    allocations: f.allocations,
                    block_reward: f.block_reward,
                    chain_id: f.chain_id,
                    signature_scheme: f.signature_scheme,
                };
                let ledger = if accounts {
                    Some(
                        read_genesis(tape, s, &accounts_fields).map_err(|e| match e {
                            AccountsError::BadGenesis(why) => RuleError::BadGenesis(why),
                            other => RuleError::BadGenesis(other.to_string()),
                        })?,
                    )
                } else {
                    for (slot, name) in [
                        (f.allocations, "allocations"),
                        (f.block_reward, "block_reward"),
                        (f.chain_id, "chain_id"),
                        (f.signature_scheme, "signature_scheme"),
                    ] {
                        if slot.is_some() {
                            return Err(RuleError::UnknownField(format!(
                                "{name} (only an accounts genesis carries it)"
                            )));
                        }
                    }
                    None
                };
                // The genesis hash is that of its whole canonical JSON, so it commits
                // to the rules and the difficulty that the header does not carry.
                // (Computed first: parse_v2 reuses the parse tape.)
                let hash = canonical_hash(&mut self.canon, s);
                let b = parse_v2(&mut self.canon, &mut self.leaves, s, f, true)?;
                if b.previous != BlockHash::ZERO {
                    return Err(RuleError::BadGenesis(
                        "a v2 genesis has previous_hash of 64 zeros".into(),
                    ));
                }
                if as_u64(&self.canon.tape, s, f.proof.unwrap_or(0)) != Some(0) {
                    return Err(RuleError::BadGenesis("a v2 genesis has proof 0".into()));
                }
                self.rules = Some(match ledger {
                    Some((chain_id, block_reward, ledger)) => {
                        if b.tx_count > 0 {
                            return Err(RuleError::BadGenesis(
                                "an accounts genesis carries no transactions (balances go in `allocations`)".into(),
                            ));
                        }
                        self.ledger = Some(ledger);
                        Rules::Accounts {
                            difficulty,
                            chain_id,
                            block_reward,
                        }
                    }
                    None => Rules::V2 { difficulty },
                });
                self.set_proof(b.nonce);
                self.insert_origins(&b.origins);
                Ok(self.advance(b.index, hash, b.timestamp, b.origins, b.miner, b.tx_count))
            }
            Some(r) => Err(RuleError::UnknownRules(describe(tape, s, r))),
        }
    }

    fn apply_seed(&mut self, s: &[u8], f: &Fields) -> Result<Appended, RuleError> {
        let (Some(tip), Some(prev), Some(proof)) = (&self.tip, f.previous_hash, f.proof) else {
            let missing = if f.previous_hash.is_none() {
                "previous_hash"
            } else {
                "proof"
            };
            return Err(RuleError::MissingField(missing.into()));
        };
        let tape = &self.canon.tape;
        python_str(tape, s, proof, &mut self.proof)?;
        let named = as_hash(tape, s, prev);
        // Python compares `block['previous_hash'] != self.hash(last_block)` first.
        if named != Some(tip.hash.0) {
            let found = describe(tape, s, prev);
            if let Some(parent) =
                named.and_then(|h| self.recent.iter().rev().find(|t| t.hash.0 == h))
            {
                if seed_valid_proof(parent.proof.as_bytes(), &self.proof) {
                    return Err(RuleError::Stale {
                        parent: parent.hash,
                        parent_index: parent.index,
                        tip_index: tip.index,
                    });
                }
            }
            return Err(RuleError::BadLink {
                expected: tip.hash,
                tip_index: tip.index,
                found,
            });
        }
        if !seed_valid_proof(tip.proof.as_bytes(), &self.proof) {
            return Err(RuleError::BadProof(format!(
                "sha256(\"{}\" + \"{}\") does not start with 0000",
                shorten(&tip.proof).escape_debug(),
                shorten(&String::from_utf8_lossy(&self.proof)).escape_debug()
            )));
        }
        let index = f
            .index
            .and_then(|i| as_u64(tape, s, i))
            .unwrap_or(tip.index + 1);
        let timestamp = f
            .timestamp
            .and_then(|t| as_f64(tape, s, t))
            .unwrap_or(tip.timestamp);
        let (origins, miner, tx_count) = lenient_txs(tape, s, f.transactions);
        let hash = canonical_hash(&mut self.canon, s);
        self.insert_origins(&origins);
        Ok(self.advance(index, hash, timestamp, origins, miner, tx_count))
    }

    fn apply_v2(&mut self, s: &[u8], f: &Fields, difficulty: u32) -> Result<Appended, RuleError> {
        let b = self.check_v2(s, f, difficulty)?;
        Ok(self.commit_v2(b))
    }

    /// The accounts rules: a valid v2 block whose transactions the ledger accepts,
    /// applied in order, whole or not at all ([`Ledger::apply_block`]).
    fn apply_accounts(
        &mut self,
        s: &[u8],
        f: &Fields,
        difficulty: u32,
    ) -> Result<Appended, RuleError> {
        let b = self.check_v2(s, f, difficulty)?;
        let (Some(ledger), Some(txs)) = (self.ledger.as_mut(), f.transactions) else {
            return Err(RuleError::MissingField("transactions".into()));
        };
        ledger.apply_block(&self.canon.tape, s, txs)?;
        Ok(self.commit_v2(b))
    }

    /// Every v2 check of a block against the tip, without changing anything.
    fn check_v2(&mut self, s: &[u8], f: &Fields, difficulty: u32) -> Result<V2Block, RuleError> {
        let b = parse_v2(&mut self.canon, &mut self.leaves, s, f, false)?;
        let Some(tip) = &self.tip else {
            return Err(RuleError::NoGenesis("no tip".into()));
        };
        let pow_ok = hash_leading_zero_bits(&b.hash.0) >= difficulty;
        if b.previous != tip.hash {
            if let Some(parent) = self.recent.iter().rev().find(|t| t.hash == b.previous) {
                if pow_ok && b.index == parent.index + 1 && b.timestamp >= parent.timestamp {
                    return Err(RuleError::Stale {
                        parent: parent.hash,
                        parent_index: parent.index,
                        tip_index: tip.index,
                    });
                }
            }
            return Err(RuleError::BadLink {
                expected: tip.hash,
                tip_index: tip.index,
                found: b.previous.to_string(),
            });
        }
        if b.index != tip.index + 1 {
            return Err(RuleError::WrongIndex {
                expected: tip.index + 1,
                found: b.index,
            });
        }
        if b.timestamp < tip.timestamp {
            return Err(RuleError::TimestampBackwards {
                previous: tip.timestamp,
                found: b.timestamp,
            });
        }
        if !pow_ok {
            return Err(RuleError::BadProof(format!(
                "header hash {} has {} leading zero bits, {} required",
                b.hash,
                hash_leading_zero_bits(&b.hash.0),
                difficulty
            )));
        }
        for (i, o) in b.origins.iter().enumerate() {
            if self.origins.contains(*o) || b.origins[..i].contains(o) {
                return Err(RuleError::DuplicateOrigin(*o));
            }
        }
        Ok(b)
    }

    fn commit_v2(&mut self, b: V2Block) -> Appended {
        self.set_proof(b.nonce);
        self.insert_origins(&b.origins);
        self.advance(b.index, b.hash, b.timestamp, b.origins, b.miner, b.tx_count)
    }

    /// v2 tips record their nonce as the proof string (seed tips: Python's `str(proof)`).
    fn set_proof(&mut self, nonce: u64) {
        use std::io::Write as _;
        self.proof.clear();
        let _ = write!(self.proof, "{nonce}");
    }

    fn insert_origins(&mut self, origins: &[Origin]) {
        for o in origins {
            self.origins.insert(*o);
        }
    }

    /// Makes the block the new tip; the old tip joins the ring of recent blocks.
    fn advance(
        &mut self,
        index: u64,
        hash: BlockHash,
        timestamp: f64,
        origins: Vec<Origin>,
        miner: Option<String>,
        tx_count: usize,
    ) -> Appended {
        // Recycle the proof string of the block falling off the ring.
        let mut proof = if self.recent.len() >= RECENT {
            self.recent.pop_front().map(|t| t.proof).unwrap_or_default()
        } else {
            String::new()
        };
        proof.clear();
        proof.push_str(&String::from_utf8_lossy(&self.proof));
        let new_tip = Tip {
            index,
            hash,
            timestamp,
            proof,
        };
        if let Some(old) = self.tip.replace(new_tip) {
            self.recent.push_back(old);
        }
        self.height += 1;
        Appended {
            index,
            hash,
            timestamp,
            tx_count,
            origins,
            miner,
        }
    }
}

/// At most 80 characters of `text`, for error messages.
fn shorten(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().count() <= 80 {
        text.into()
    } else {
        format!("{}...", text.chars().take(77).collect::<String>()).into()
    }
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Object => "an object",
        Kind::Array => "an array",
        Kind::Str => "a string",
        Kind::Int | Kind::Float => "a number",
        Kind::True | Kind::False => "a boolean",
        Kind::Null => "null",
    }
}

/// Reports a parse failure with serde_json's wording when serde also rejects it
/// (familiar to operators), else with ours (e.g. Python's integer-digit limit).
fn json_error(record: &[u8], ours: String) -> RuleError {
    match serde_json::from_slice::<serde::de::IgnoredAny>(record) {
        Err(e) => RuleError::Json(e.to_string()),
        Ok(_) => RuleError::Json(ours),
    }
}

/// The seed hash: SHA-256 of the canonical JSON of the last parsed record.
fn canonical_hash(canon: &mut Canonicalizer, s: &[u8]) -> BlockHash {
    BlockHash(Sha256::digest(canon.canonical_of_parsed(s)).into())
}

/// Origins, miner and count of the transactions, ignoring anything malformed: the
/// seed rules never look inside transactions.
fn lenient_txs(tape: &Tape, s: &[u8], txs: Option<usize>) -> (Vec<Origin>, Option<String>, usize) {
    let mut origins = Vec::new();
    let mut miner = None;
    let Some(txs) = txs.filter(|t| tape.node(*t).kind == Kind::Array) else {
        return (origins, miner, 0);
    };
    let mut count = 0;
    for (i, tx) in tape.items(txs).enumerate() {
        count += 1;
        if tape.node(tx).kind != Kind::Object {
            continue;
        }
        let tf = TxFields::read(tape, s, tx);
        if let Some(Ok(Some(o))) = tf.origin.map(|o| tx_origin(tape, s, o, i, false)) {
            origins.push(o);
        }
        if let Some(r) = tf.reward_recipient(tape, s) {
            miner = Some(r);
        }
    }
    (origins, miner, count)
}

const V2_FIELDS: &str = "index, merkle_root, previous_hash, proof, timestamp, transactions";

/// Checks a v2 block's form and content (everything that does not depend on the
/// tip) and computes its header hash.
fn parse_v2(
    canon: &mut Canonicalizer,
    leaves: &mut Vec<[u8; 32]>,
    s: &[u8],
    f: &Fields,
    genesis: bool,
) -> Result<V2Block, RuleError> {
    let Canonicalizer { tape, buf, scratch } = canon;
    let tape: &Tape = tape;
    if let Some(k) = f.unknown {
        let name = describe(tape, s, k);
        return Err(RuleError::UnknownField(format!(
            "{} (allowed: {V2_FIELDS})",
            name.trim_matches('"')
        )));
    }
    if !genesis {
        for (slot, name) in [
            (f.rules, "rules"),
            (f.difficulty, "difficulty"),
            (f.allocations, "allocations"),
            (f.block_reward, "block_reward"),
            (f.chain_id, "chain_id"),
            (f.signature_scheme, "signature_scheme"),
        ] {
            if slot.is_some() {
                return Err(RuleError::UnknownField(format!(
                    "{name} (only the genesis block carries it)"
                )));
            }
        }
    }
    let need =
        |slot: Option<usize>, name: &str| slot.ok_or_else(|| RuleError::MissingField(name.into()));
    let wrong = |field: &str, expected: &'static str| RuleError::WrongType {
        field: field.into(),
        expected,
    };
    let index = as_u64(tape, s, need(f.index, "index")?)
        .ok_or_else(|| wrong("index", "an integer 0..2^64"))?;
    let previous = as_hash(tape, s, need(f.previous_hash, "previous_hash")?)
        .ok_or_else(|| wrong("previous_hash", "64 lowercase hex digits"))?;
    let timestamp = as_f64(tape, s, need(f.timestamp, "timestamp")?)
        .filter(|t| t.is_finite())
        .ok_or_else(|| wrong("timestamp", "a finite number"))?;
    let nonce = as_u64(tape, s, need(f.proof, "proof")?)
        .ok_or_else(|| wrong("proof", "an integer 0..2^64 (the nonce)"))?;
    let claimed = as_hash(tape, s, need(f.merkle_root, "merkle_root")?)
        .ok_or_else(|| wrong("merkle_root", "64 lowercase hex digits"))?;
    let txs = need(f.transactions, "transactions")?;
    if tape.node(txs).kind != Kind::Array {
        return Err(wrong("transactions", "an array"));
    }
    leaves.clear();
    let mut origins = Vec::new();
    let mut miner = None;
    let mut tx_count = 0;
    for (i, tx) in tape.items(txs).enumerate() {
        tx_count += 1;
        if tape.node(tx).kind != Kind::Object {
            return Err(RuleError::WrongType {
                field: format!("transactions[{i}]"),
                expected: "an object",
            });
        }
        let tf = TxFields::read(tape, s, tx);
        let is =
            |slot: Option<usize>, kinds: &[Kind]| slot.map(|v| kinds.contains(&tape.node(v).kind));
        for (name, ok, expected) in [
            ("sender", is(tf.sender, &[Kind::Str]), "a string"),
            ("recipient", is(tf.recipient, &[Kind::Str]), "a string"),
            (
                "amount",
                is(tf.amount, &[Kind::Int, Kind::Float]),
                "a number",
            ),
        ] {
            match ok {
                None => return Err(RuleError::MissingField(format!("transactions[{i}].{name}"))),
                Some(false) => {
                    return Err(RuleError::WrongType {
                        field: format!("transactions[{i}].{name}"),
                        expected,
                    })
                }
                Some(true) => {}
            }
        }
        if let Some(o) = tf.origin {
            if let Some(o) = tx_origin(tape, s, o, i, true)? {
                origins.push(o);
            }
        }
        if let Some(r) = tf.reward_recipient(tape, s) {
            miner = Some(r);
        }
        let leaf = if tape.canonical {
            tx_id(tape.raw(s, tx))
        } else {
            buf.clear();
            tape.write(s, tx, buf, scratch);
            tx_id(buf)
        };
        leaves.push(leaf.0);
    }
    let computed = merkle_root_in_place(leaves);
    let claimed = MerkleRoot(claimed);
    if computed != claimed {
        return Err(RuleError::MerkleMismatch { claimed, computed });
    }
    let previous = BlockHash(previous);
    let hash = v2_header_hash(&v2_header(index, &previous, timestamp, &claimed, nonce));
    Ok(V2Block {
        nonce,
        index,
        previous,
        timestamp,
        hash,
        origins,
        tx_count,
        miner,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use serde_json::Number;

    use super::*;
    use crate::chain::{genesis, parse_submitted, BlockTemplate, Miner, Transaction, Work};

    const RULES: Rules = Rules::V2 { difficulty: 6 };

    fn tx(offset: i64) -> Transaction {
        let sub = parse_submitted(br#"{"from": "a", "to": "b", "amount": 1}"#).unwrap();
        Transaction::from_submitted(
            &sub,
            Origin {
                partition: 0,
                offset,
            },
        )
    }

    fn mined(tip: &Tip, ts: f64, txs: &[Transaction]) -> Vec<u8> {
        let t = BlockTemplate::new(tip, RULES, ts, txs);
        let m = Miner::new(1)
            .mine(&t.work(), &AtomicBool::new(false))
            .unwrap();
        t.seal(m.nonce)
    }

    fn v2_state() -> ChainState {
        let mut s = ChainState::new();
        s.apply(&genesis(RULES, 10.0)).unwrap();
        s
    }

    fn reason(s: &mut ChainState, block: &[u8]) -> RuleError {
        s.apply(block).unwrap_err().reason
    }

    #[test]
    fn v2_rejects_reused_origins() {
        let mut s = v2_state();
        let b = mined(
            s.tip().unwrap(),
            11.0,
            &[tx(5), Transaction::reward("n", &Number::from(1))],
        );
        s.apply(&b).unwrap();
        assert!(s.contains_origin(Origin {
            partition: 0,
            offset: 5
        }));
        let again = mined(s.tip().unwrap(), 12.0, &[tx(5)]);
        assert_eq!(
            reason(&mut s, &again),
            RuleError::DuplicateOrigin(Origin {
                partition: 0,
                offset: 5
            })
        );
        let twice = mined(s.tip().unwrap(), 12.0, &[tx(6), tx(6)]);
        assert_eq!(
            reason(&mut s, &twice),
            RuleError::DuplicateOrigin(Origin {
                partition: 0,
                offset: 6
            })
        );
        assert_eq!(s.height(), 2);
    }

    #[test]
    fn v2_rejects_time_travel_and_unknown_fields() {
        let mut s = v2_state();
        let mut early = s.tip().unwrap().clone();
        early.timestamp = 5.0;
        let b = mined(&early, 5.0, &[]);
        assert!(matches!(
            reason(&mut s, &b),
            RuleError::TimestampBackwards { .. }
        ));
        let good = mined(s.tip().unwrap(), 11.0, &[]);
        let mut extra = good[..good.len() - 1].to_vec();
        extra.extend_from_slice(br#", "zz": 1}"#);
        assert!(
            matches!(reason(&mut s, &extra), RuleError::UnknownField(f) if f.starts_with("zz"))
        );
        s.apply(&good).unwrap();
        assert!(s.tip().unwrap().proof_str().parse::<u64>().is_ok());
    }

    #[test]
    fn genesis_rules() {
        let mut s = ChainState::new();
        assert!(matches!(
            reason(&mut s, br#"{"index": 2, "proof": 1, "previous_hash": 1}"#),
            RuleError::NoGenesis(_)
        ));
        assert!(
            matches!(reason(&mut s, br#"{"index": 1, "rules": "v3"}"#), RuleError::UnknownRules(r) if r == "\"v3\"")
        );
        let no_difficulty = String::from_utf8(genesis(RULES, 1.0))
            .unwrap()
            .replace("\"difficulty\": 6, ", "");
        assert_eq!(
            reason(&mut s, no_difficulty.as_bytes()),
            RuleError::MissingField("difficulty".into())
        );
        assert_eq!(s.height(), 0);
        s.apply(&genesis(Rules::Seed, 1.0)).unwrap();
        assert_eq!(s.rules(), Some(Rules::Seed));
        assert_eq!(s.tip().unwrap().proof_str(), "100");
    }

    #[test]
    fn a_second_genesis_lost_the_race_and_is_stale() {
        let mut s = ChainState::new();
        s.apply(&genesis(RULES, 1.0)).unwrap();
        let late = s.apply(&genesis(RULES, 2.0)).unwrap_err();
        assert_eq!(late.reason, RuleError::SecondGenesis);
        assert!(late.is_stale());
        assert_eq!(s.height(), 1);
        // Not every index-1 record is a genesis that lost a race.
        assert!(!s
            .apply(br#"{"index": 1, "rules": "v3"}"#)
            .unwrap_err()
            .is_stale());
    }

    #[test]
    fn v2_genesis_hash_commits_to_its_difficulty() {
        let easy = genesis(Rules::V2 { difficulty: 1 }, 5.0);
        let hard = String::from_utf8(easy.clone())
            .unwrap()
            .replace("\"difficulty\": 1,", "\"difficulty\": 2,");
        assert_ne!(easy, hard.as_bytes());
        let (mut a, mut b) = (ChainState::new(), ChainState::new());
        let ha = a.apply(&easy).unwrap().hash;
        let hb = b.apply(hard.as_bytes()).unwrap().hash;
        assert_ne!(ha, hb);
    }

    /// Python's `f'{last_proof}{proof}'` uses `str()`: strings as themselves,
    /// floats as `repr`, booleans as `True`.
    #[test]
    fn seed_proof_uses_python_str() {
        for (proof_json, python_str) in [
            (r#""abc""#, "abc"),
            ("1.50", "1.5"),
            ("1e16", "1e+16"),
            ("true", "True"),
        ] {
            let g = format!(
                r#"{{"index": 1, "previous_hash": 1, "proof": {proof_json}, "timestamp": 0, "transactions": []}}"#
            );
            let mut s = ChainState::new();
            s.apply(g.as_bytes()).unwrap();
            let tip = s.tip().unwrap().clone();
            assert_eq!(tip.proof_str(), python_str);
            let m = Miner::new(2)
                .mine(&Work::seed(python_str.as_bytes()), &AtomicBool::new(false))
                .unwrap();
            let block = format!(
                r#"{{"index": 2, "previous_hash": "{}", "proof": {}}}"#,
                tip.hash, m.nonce
            );
            s.apply(block.as_bytes()).unwrap();
            let wrong = format!(
                r#"{{"previous_hash": "{}", "proof": {}}}"#,
                s.tip().unwrap().hash,
                m.nonce
            );
            assert!(matches!(
                reason(&mut s, wrong.as_bytes()),
                RuleError::BadProof(_) | RuleError::BadLink { .. }
            ));
        }
        let mut s = ChainState::new();
        s.apply(br#"{"index": 1, "previous_hash": 1, "proof": [1]}"#)
            .unwrap_err();
        let mut s2 = ChainState::new();
        assert!(matches!(
            reason(
                &mut s2,
                br#"{"index": 1, "previous_hash": 1, "proof": [1]}"#
            ),
            RuleError::UnsupportedProof(_)
        ));
        assert!(matches!(
            reason(&mut s, b"{\"index\": 1"),
            RuleError::Json(_)
        ));
    }
}
