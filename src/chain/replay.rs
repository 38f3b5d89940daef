//! Replaying the chain topic: records arrive in offset order and each one is either
//! appended to the chain or discarded with the rule it broke. Same records ⇒ same
//! chain, on every node.
//!
//! Memory stays small however long the chain grows: we keep the tip, a small ring
//! of recent blocks, the origins already used (as per-partition ranges) and, to tell
//! a block that merely lost a mining race (*stale*) from a bad one however far back
//! its parent is, 24 bytes per block on the chain ([`Ancestors`]: 128 bits of its
//! hash and its index). Stale or invalid, a discarded record is discarded: the
//! classification never changes which blocks are accepted.
//!
//! Invariants (issue 12):
//! - Acceptance depends on the records alone, never on a node's state: claim
//!   tracking ([`ChainState::track_claims`], node-local, for intake decisions) only
//!   adds content digests to [`Appended::claims`].
//! - No arithmetic on a number read from a record can overflow or wrap; the seed
//!   rules never interpret the index (the tutorial does not), they only report it.
//! - Nothing recurses on the Rust stack per nesting level (parser, canonical writer
//!   and Python `repr` use explicit stacks), so any record the parser accepts
//!   (up to [`super::canonical::MAX_DEPTH`] levels) is safe on any thread.
//! - Per origin O(log r) work in any order (r: ranges in the origin set), and
//!   O(n log n) per v2 block for its duplicate check.

use std::collections::{HashMap, VecDeque};
use std::fmt;

use sha2::{Digest, Sha256};

use super::accounts::genesis::{read_genesis, GenesisFields};
use super::accounts::{AccountsError, Ledger};
use super::block::{
    as_f64, as_hash, as_u64, describe, python_str, string_is, tx_origin, Fields, TxFields,
};
use super::canonical::{Canonicalizer, Kind, Tape};
use super::claims::{Claim, ClaimScope, ClaimTracker, ContentDigest, Verdict};
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
    /// The index our next block carries (see [`Tip::next_index`]).
    pub(crate) next_index: u64,
}

impl Tip {
    /// The index of the block to build on this tip. v2: the tip's index + 1 (the rule).
    /// Seed: the chain's height + 1, which is what the tutorial's node writes
    /// (`len(self.blockchain) + 1`); the seed rules never check indexes, so a block
    /// with any index (0, 1, a string) may be the tip and we must still build on it.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

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
    /// The same transactions' claims (origin, attempt and, when tracked, content).
    pub claims: Vec<Claim>,
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
    /// Every block on the chain, to classify a block built on an old one as stale.
    ancestors: Ancestors,
    origins: OriginSet,
    /// Content of recent claims, for intake decisions (node only; see `claims`).
    claims: Option<ClaimTracker>,
    /// Balances and nonces (accounts rules only).
    ledger: Option<Ledger>,
    /// Reused between records so that replay does not allocate per block.
    canon: Canonicalizer,
    proof: Vec<u8>,
    leaves: Vec<[u8; 32]>,
    /// Scratch for content digests.
    content: (Vec<u8>, Vec<(u32, u32)>),
}

/// A copy of the chain's state, which then replays on its own; the scratch buffers
/// are not copied (they hold nothing between records). For callers that apply the
/// same prefix many times (the `chain_replay` fuzz target clones one prepared state
/// per input).
impl Clone for ChainState {
    fn clone(&self) -> Self {
        ChainState {
            rules: self.rules,
            tip: self.tip.clone(),
            height: self.height,
            recent: self.recent.clone(),
            ancestors: self.ancestors.clone(),
            origins: self.origins.clone(),
            claims: self.claims.clone(),
            ledger: self.ledger.clone(),
            canon: Canonicalizer::default(),
            proof: Vec::new(),
            leaves: Vec::new(),
            content: (Vec::new(), Vec::new()),
        }
    }
}

/// The blocks on the chain by hash: the first 8 bytes of the hash as the key, the
/// next 8 and the block's index as the value (128 bits compared: a record cannot
/// name a chain block's prefix and pass for its child by accident).
#[derive(Clone, Debug, Default)]
struct Ancestors(HashMap<u64, (u64, u64)>);

impl Ancestors {
    fn split(hash: &BlockHash) -> (u64, u64) {
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&hash.0[..8]);
        b.copy_from_slice(&hash.0[8..16]);
        (u64::from_le_bytes(a), u64::from_le_bytes(b))
    }

    fn insert(&mut self, hash: &BlockHash, index: u64) {
        let (key, check) = Self::split(hash);
        self.0.insert(key, (check, index));
    }

    /// The index of the chain block with this hash, if there is one.
    fn index_of(&self, hash: &BlockHash) -> Option<u64> {
        let (key, check) = Self::split(hash);
        self.0
            .get(&key)
            .filter(|(c, _)| *c == check)
            .map(|(_, index)| *index)
    }
}

/// A v2 block's checked content.
struct V2Block {
    index: u64,
    nonce: u64,
    previous: BlockHash,
    timestamp: f64,
    hash: BlockHash,
    claims: Vec<Claim>,
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

    /// Whether a transaction with this origin (any attempt) is already on the chain.
    pub fn contains_origin(&self, origin: Origin) -> bool {
        self.origins.contains_any(origin)
    }

    /// Starts remembering the content of claims on origins this node may still read
    /// (see [`super::claims`]): in `scope`, at or above `floors` (per partition; a
    /// partition without a floor is remembered from offset 0). Call before replay.
    pub fn track_claims(
        &mut self,
        scope: ClaimScope,
        floors: impl IntoIterator<Item = (i32, i64)>,
    ) {
        self.claims = Some(ClaimTracker::new(scope, floors));
    }

    /// The node will not read `partition` below `offset` again (it committed there):
    /// forget the content of claims below it.
    pub fn raise_claim_floor(&mut self, partition: i32, offset: i64) {
        if let Some(t) = &mut self.claims {
            t.raise_floor(partition, offset);
        }
    }

    /// Origins whose claims' content is remembered (a measure of memory use).
    pub fn tracked_claims(&self) -> usize {
        self.claims.as_ref().map_or(0, ClaimTracker::len)
    }

    /// What to do with a record at `origin` whose transfer has digest `content`.
    pub fn verdict(&self, origin: Origin, content: ContentDigest) -> Verdict {
        if !self.origins.contains_any(origin) {
            return Verdict::Free;
        }
        let Some(claims) = self.claims.as_ref().and_then(|t| t.get(origin)) else {
            // Not tracked (below the floor, or tracking off): the chain holds the origin.
            return Verdict::OnChain;
        };
        if claims.iter().any(|(_, c)| *c == Some(content)) {
            Verdict::OnChain
        } else {
            Verdict::Conflict {
                attempt: self.origins.lowest_free_attempt(origin),
            }
        }
    }

    /// The lowest attempt of `origin` that the chain does not hold.
    pub fn lowest_free_attempt(&self, origin: Origin) -> Option<u32> {
        self.origins.lowest_free_attempt(origin)
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
        let tape = &self.canon.tape;
        // A block with index 1 that does not link to the tip may be a genesis that lost
        // the start-up race. One that links to the tip is an ordinary block: the seed
        // rules never look at the index, and the tutorial's code accepts it.
        let maybe_second_genesis = self.rules.is_some()
            && fields.index.and_then(|i| as_u64(tape, record, i)) == Some(1)
            && fields.previous_hash.and_then(|p| as_hash(tape, record, p))
                != self.tip.as_ref().map(|t| t.hash.0);
        let result = match self.rules {
            None => self.apply_genesis(record, &fields),
            Some(Rules::Seed) => self.apply_seed(record, &fields),
            Some(Rules::V2 { difficulty }) => self.apply_v2(record, &fields, difficulty),
            Some(Rules::Accounts { difficulty, .. }) => {
                self.apply_accounts(record, &fields, difficulty)
            }
        };
        match result {
            Err(_) if maybe_second_genesis && ChainState::new().apply(record).is_ok() => {
                // Nodes that start on an empty topic race to publish the genesis block;
                // the losers' copies are well-formed, just late.
                Err(RuleError::SecondGenesis.into())
            }
            result => result.map_err(Discarded::from),
        }
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
                let (claims, miner, tx_count) = lenient_txs(
                    tape,
                    s,
                    f.transactions,
                    self.claims.as_ref(),
                    &mut self.content,
                );
                self.rules = Some(Rules::Seed);
                self.insert_claims(&claims);
                Ok(self.advance(1, hash, timestamp, claims, miner, tx_count))
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
                let b = parse_v2(
                    &mut self.canon,
                    &mut self.leaves,
                    s,
                    f,
                    true,
                    self.claims.as_ref(),
                    &mut self.content,
                )?;
                if b.previous != BlockHash::ZERO {
                    return Err(RuleError::BadGenesis(
                        "a v2 genesis has previous_hash of 64 zeros".into(),
                    ));
                }
                if as_u64(&self.canon.tape, s, f.proof.unwrap_or(0)) != Some(0) {
                    return Err(RuleError::BadGenesis("a v2 genesis has proof 0".into()));
                }
                check_unique(&self.origins, &b.claims)?;
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
                self.insert_claims(&b.claims);
                Ok(self.advance(b.index, hash, b.timestamp, b.claims, b.miner, b.tx_count))
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
            } else if let Some((parent, parent_index)) = named
                .map(BlockHash)
                .and_then(|h| self.ancestors.index_of(&h).map(|i| (h, i)))
            {
                // Built on a block older than the ring: a race lost long ago (its
                // parent's proof is no longer at hand to check, and need not be).
                return Err(RuleError::Stale {
                    parent,
                    parent_index,
                    tip_index: tip.index,
                });
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
        // Reported only (the seed rules never check it): the record's own index when
        // it is one, else the block's position.
        let index = f
            .index
            .and_then(|i| as_u64(tape, s, i))
            .unwrap_or(self.height.saturating_add(1));
        let timestamp = f
            .timestamp
            .and_then(|t| as_f64(tape, s, t))
            .unwrap_or(tip.timestamp);
        let (claims, miner, tx_count) = lenient_txs(
            tape,
            s,
            f.transactions,
            self.claims.as_ref(),
            &mut self.content,
        );
        let hash = canonical_hash(&mut self.canon, s);
        self.insert_claims(&claims);
        Ok(self.advance(index, hash, timestamp, claims, miner, tx_count))
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
        let b = parse_v2(
            &mut self.canon,
            &mut self.leaves,
            s,
            f,
            false,
            self.claims.as_ref(),
            &mut self.content,
        )?;
        let Some(tip) = &self.tip else {
            return Err(RuleError::NoGenesis("no tip".into()));
        };
        let pow_ok = hash_leading_zero_bits(&b.hash.0) >= difficulty;
        if b.previous != tip.hash {
            if let Some(parent) = self.recent.iter().rev().find(|t| t.hash == b.previous) {
                if pow_ok
                    && parent.index.checked_add(1) == Some(b.index)
                    && b.timestamp >= parent.timestamp
                {
                    return Err(RuleError::Stale {
                        parent: parent.hash,
                        parent_index: parent.index,
                        tip_index: tip.index,
                    });
                }
            } else if let Some(parent_index) = self.ancestors.index_of(&b.previous) {
                if pow_ok && parent_index.checked_add(1) == Some(b.index) {
                    return Err(RuleError::Stale {
                        parent: b.previous,
                        parent_index,
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
        // Checked: a tip index of u64::MAX has no successor (unreachable from a v2
        // genesis, whose index is 1, but the arithmetic must not trust that).
        if tip.index.checked_add(1) != Some(b.index) {
            return Err(RuleError::WrongIndex {
                expected: tip.index.saturating_add(1),
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
        check_unique(&self.origins, &b.claims)?;
        Ok(b)
    }

    fn commit_v2(&mut self, b: V2Block) -> Appended {
        self.set_proof(b.nonce);
        self.insert_claims(&b.claims);
        self.advance(b.index, b.hash, b.timestamp, b.claims, b.miner, b.tx_count)
    }

    /// v2 tips record their nonce as the proof string (seed tips: Python's `str(proof)`).
    fn set_proof(&mut self, nonce: u64) {
        use std::io::Write as _;
        self.proof.clear();
        let _ = write!(self.proof, "{nonce}");
    }

    fn insert_claims(&mut self, claims: &[Claim]) {
        for c in claims {
            self.origins.insert_attempt(c.origin, c.attempt);
            if let Some(t) = &mut self.claims {
                t.record(c);
            }
        }
    }

    /// Makes the block the new tip; the old tip joins the ring of recent blocks.
    fn advance(
        &mut self,
        index: u64,
        hash: BlockHash,
        timestamp: f64,
        claims: Vec<Claim>,
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
        let height = self.height.saturating_add(1);
        let next_index = match self.rules {
            Some(Rules::V2 { .. }) => index.saturating_add(1),
            _ => height.saturating_add(1),
        };
        let new_tip = Tip {
            index,
            hash,
            timestamp,
            proof,
            next_index,
        };
        self.ancestors.insert(&hash, index);
        if let Some(old) = self.tip.replace(new_tip) {
            self.recent.push_back(old);
        }
        self.height = height;
        Appended {
            index,
            hash,
            timestamp,
            tx_count,
            origins: claims.iter().map(|c| c.origin).collect(),
            claims,
            miner,
        }
    }
}

/// v2: each (partition, offset, attempt) at most once on the chain, including within
/// the block. O(n log n) in the block's size, O(log r) per origin against the chain.
fn check_unique(chain: &OriginSet, claims: &[Claim]) -> Result<(), RuleError> {
    if let Some(c) = claims
        .iter()
        .find(|c| chain.contains_attempt(c.origin, c.attempt))
    {
        return Err(RuleError::DuplicateOrigin(c.origin));
    }
    let mut keys: Vec<(i32, i64, u32)> = claims
        .iter()
        .map(|c| (c.origin.partition, c.origin.offset, c.attempt))
        .collect();
    keys.sort_unstable();
    match keys.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(RuleError::DuplicateOrigin(Origin {
            partition: w[0].0,
            offset: w[0].1,
        })),
        None => Ok(()),
    }
}

/// The claim a transaction makes, with its content digest when `tracker` wants it.
fn claim_of(
    tape: &Tape,
    s: &[u8],
    tf: &TxFields,
    (origin, attempt): (Origin, u32),
    tracker: Option<&ClaimTracker>,
    buf: &mut (Vec<u8>, Vec<(u32, u32)>),
) -> Claim {
    let content = tracker
        .filter(|t| t.wants(origin))
        .and_then(|_| content_digest(tape, s, tf, buf));
    Claim {
        origin,
        attempt,
        content,
    }
}

/// The digest of `{"amount": A, "recipient": R, "sender": S}` re-serialised from the
/// block (the same bytes a node builds from the record it read).
fn content_digest(
    tape: &Tape,
    s: &[u8],
    tf: &TxFields,
    (buf, scratch): &mut (Vec<u8>, Vec<(u32, u32)>),
) -> Option<ContentDigest> {
    let (amount, recipient, sender) = (tf.amount?, tf.recipient?, tf.sender?);
    buf.clear();
    buf.extend_from_slice(b"{\"amount\": ");
    tape.write(s, amount, buf, scratch);
    buf.extend_from_slice(b", \"recipient\": ");
    tape.write(s, recipient, buf, scratch);
    buf.extend_from_slice(b", \"sender\": ");
    tape.write(s, sender, buf, scratch);
    buf.push(b'}');
    Some(ContentDigest::of_canonical(buf))
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
fn lenient_txs(
    tape: &Tape,
    s: &[u8],
    txs: Option<usize>,
    tracker: Option<&ClaimTracker>,
    buf: &mut (Vec<u8>, Vec<(u32, u32)>),
) -> (Vec<Claim>, Option<String>, usize) {
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
            origins.push(claim_of(tape, s, &tf, o, tracker, buf));
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
    tracker: Option<&ClaimTracker>,
    content: &mut (Vec<u8>, Vec<(u32, u32)>),
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
                origins.push(claim_of(tape, s, &tf, o, tracker, content));
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
        claims: origins,
        tx_count,
        miner,
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use serde_json::Number;

    use super::*;
    use crate::chain::block::python_str;
    use crate::chain::pow::seed_valid_proof;
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
    fn a_clone_replays_on_its_own() {
        let mut s = v2_state();
        let b1 = mined(s.tip().unwrap(), 11.0, &[tx(1)]);
        s.apply(&b1).unwrap();
        let mut c = s.clone();
        let b2 = mined(s.tip().unwrap(), 12.0, &[tx(2)]);
        c.apply(&b2).unwrap();
        assert_eq!((s.height(), c.height()), (2, 3));
        assert!(c.contains_origin(Origin {
            partition: 0,
            offset: 2
        }));
        assert!(!s.contains_origin(Origin {
            partition: 0,
            offset: 2
        }));
        // The clone keeps the used origins and the chain's blocks: a reused origin is
        // refused, and the original's tip block is stale on the clone.
        let again = mined(c.tip().unwrap(), 13.0, &[tx(1)]);
        assert!(matches!(
            reason(&mut c, &again),
            RuleError::DuplicateOrigin(_)
        ));
        assert!(c.apply(&b1).unwrap_err().is_stale());
        // The original still takes the block the clone took, as its own next block.
        s.apply(&b2).unwrap();
        assert_eq!(s.tip().unwrap().hash, c.tip().unwrap().hash);
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

    /// Issue 11 item 5: an honest block built on a block far older than the ring of
    /// recent blocks lost a race: stale, not invalid. One that links to nothing on the
    /// chain is still a bad link.
    #[test]
    fn a_race_lost_long_ago_is_stale_not_invalid() {
        let mut s = v2_state();
        let mut old_tips = Vec::new();
        for i in 0..(RECENT as u32 * 3) {
            old_tips.push(s.tip().unwrap().clone());
            let b = mined(s.tip().unwrap(), 11.0 + f64::from(i), &[]);
            s.apply(&b).unwrap();
        }
        let far_back = &old_tips[2];
        let late = mined(far_back, far_back.timestamp + 0.5, &[]);
        let d = s.apply(&late).unwrap_err();
        assert!(d.is_stale(), "{}", d.reason);
        assert!(
            matches!(d.reason, RuleError::Stale { parent_index, .. } if parent_index == far_back.index),
            "{}",
            d.reason
        );
        let mut nowhere = far_back.clone();
        nowhere.hash = BlockHash([7; 32]);
        let orphan = mined(&nowhere, far_back.timestamp + 0.5, &[]);
        assert!(matches!(
            s.apply(&orphan).unwrap_err().reason,
            RuleError::BadLink { .. }
        ));
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
    /// floats as `repr`, booleans as `True`, lists and dicts as `repr`.
    #[test]
    fn seed_proof_uses_python_str() {
        for (proof_json, python_str) in [
            (r#""abc""#, "abc"),
            ("1.50", "1.5"),
            ("1e16", "1e+16"),
            ("true", "True"),
            ("[1]", "[1]"),
            (r#"{"a": 1, "b": "x"}"#, "{'a': 1, 'b': 'x'}"),
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
        assert!(matches!(
            reason(&mut ChainState::new(), b"{\"index\": 1"),
            RuleError::Json(_)
        ));
    }

    /// A seed block on `s`'s tip: `fields` (JSON members, may be empty) plus the link,
    /// with the first proof among `proofs` (JSON texts) that is valid.
    fn seed_block(s: &ChainState, fields: &str, proofs: impl Fn(u64) -> String) -> String {
        let tip = s.tip().unwrap();
        let (mut tape, mut text) = (Tape::default(), Vec::new());
        let proof = (0..)
            .map(&proofs)
            .find(|p| {
                tape.parse(p.as_bytes()).unwrap();
                python_str(&tape, p.as_bytes(), 0, &mut text).unwrap();
                seed_valid_proof(tip.proof_str().as_bytes(), &text)
            })
            .unwrap();
        format!(
            r#"{{{fields}"previous_hash": "{}", "proof": {proof}, "transactions": []}}"#,
            tip.hash
        )
    }

    fn seed_state() -> ChainState {
        let mut s = ChainState::new();
        s.apply(&genesis(Rules::Seed, 1.0)).unwrap();
        s
    }

    /// Issue 12: the tutorial accepts all of these; so must we, and keep extending.
    #[test]
    fn seed_accepts_what_the_tutorial_accepts() {
        let mut s = seed_state();
        // "index": 1 after genesis, linking to the tip: not a second genesis.
        let one = seed_block(&s, r#""index": 1, "#, |k| k.to_string());
        s.apply(one.as_bytes()).unwrap();
        // "index": 0, then a block our node builds on it.
        let zero = seed_block(&s, r#""index": 0, "#, |k| k.to_string());
        assert_eq!(s.apply(zero.as_bytes()).unwrap().index, 0);
        assert_eq!(
            s.tip().unwrap().next_index(),
            4,
            "the tutorial's len(chain) + 1"
        );
        let ours = BlockTemplate::new(s.tip().unwrap(), Rules::Seed, 5.0, &[]);
        let m = Miner::new(1)
            .mine(&ours.work(), &AtomicBool::new(false))
            .unwrap();
        s.apply(&ours.seal(m.nonce)).unwrap();
        // Proofs that are a list and a dict: Python hashes str(proof).
        let list = seed_block(&s, "", |k| format!("[{k}]"));
        s.apply(list.as_bytes()).unwrap();
        assert!(s.tip().unwrap().proof_str().starts_with('['));
        let dict = seed_block(&s, "", |k| format!(r#"{{"a": [{k}, "it's", null, 1.50]}}"#));
        s.apply(dict.as_bytes()).unwrap();
        assert!(s.tip().unwrap().proof_str().starts_with("{'a': ["));
        assert!(s
            .tip()
            .unwrap()
            .proof_str()
            .ends_with(", \"it's\", None, 1.5]}"));
        let after = seed_block(&s, "", |k| k.to_string());
        s.apply(after.as_bytes()).unwrap();
        // A transaction nested 600 deep (Python's json takes about 990 levels).
        let deep = format!("{}1{}", "[".repeat(600), "]".repeat(600));
        let nested = seed_block(&s, "", |k| k.to_string()).replace(
            r#""transactions": []"#,
            &format!(r#""transactions": [{{"x": {deep}}}]"#),
        );
        s.apply(nested.as_bytes()).unwrap();
        let after = seed_block(&s, "", |k| k.to_string());
        s.apply(after.as_bytes()).unwrap();
        assert_eq!(s.height(), 9);
    }

    /// Issue 12: a record nested to the parser's limit (a non-canonical transaction
    /// and a list proof, both about 986 levels; the old parser stopped at 512) replays
    /// on a thread with a 256 KiB stack: parser, canonical writer and `repr` keep
    /// their nesting on the heap.
    #[test]
    fn deep_records_need_no_stack() {
        let mut s = seed_state();
        let depth = crate::chain::canonical::MAX_DEPTH - 4;
        let deep = format!(
            "{}1{}",
            r#"{"b": 0, "a": ["#.repeat(depth / 2),
            "]}".repeat(depth / 2)
        );
        let proof = seed_block(&s, "", |k| {
            format!("{}{k}{}", "[".repeat(depth), "]".repeat(depth))
        });
        let block = proof.replace(
            r#""transactions": []"#,
            &format!(r#""transactions": [{{"x": {deep}}}]"#),
        );
        let replayed = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || s.apply(block.as_bytes()).map(|a| a.index))
            .unwrap()
            .join()
            .expect("no stack overflow");
        assert_eq!(replayed.unwrap(), 2);
    }

    /// Issue 12: `"index": u64::MAX` then any block used to overflow `tip.index + 1`
    /// (a panic in debug and test builds).
    #[test]
    fn huge_indexes_do_not_overflow() {
        let mut s = seed_state();
        let max = seed_block(&s, &format!(r#""index": {}, "#, u64::MAX), |k| {
            k.to_string()
        });
        assert_eq!(s.apply(max.as_bytes()).unwrap().index, u64::MAX);
        let next = seed_block(&s, "", |k| k.to_string());
        assert_eq!(s.apply(next.as_bytes()).unwrap().index, 3);
        let big = seed_block(&s, r#""index": 18446744073709551616, "#, |k| k.to_string());
        s.apply(big.as_bytes()).unwrap();
        assert_eq!(s.height(), 4);

        // v2 never reaches u64::MAX (indexes are consecutive from 1), but the check
        // and the stale classification must not overflow either.
        let mut v = v2_state();
        let mut skewed = v.tip().unwrap().clone();
        skewed.next_index = u64::MAX;
        let b = mined(&skewed, 11.0, &[]);
        assert!(matches!(reason(&mut v, &b), RuleError::WrongIndex { .. }));
        if let Some(t) = v.tip.as_mut() {
            t.index = u64::MAX;
            t.next_index = u64::MAX;
        }
        let b = mined(v.tip().unwrap(), 11.0, &[]);
        assert!(matches!(
            reason(&mut v, &b),
            RuleError::WrongIndex {
                expected: u64::MAX,
                found: u64::MAX
            }
        ));
    }

    fn attempt_tx(offset: i64, attempt: u32, from: &str) -> Transaction {
        let sub =
            parse_submitted(format!(r#"{{"from": "{from}", "to": "b", "amount": 1}}"#).as_bytes())
                .unwrap();
        Transaction::from_submitted_attempt(
            &sub,
            Origin {
                partition: 0,
                offset,
            },
            attempt,
        )
    }

    /// Issue 12: a claim with other content must not censor the real record; v2 takes
    /// it as a later attempt, each (partition, offset, attempt) once.
    #[test]
    fn claims_and_attempts() {
        let o = |offset| Origin {
            partition: 0,
            offset,
        };
        let mut s = ChainState::new();
        s.track_claims(ClaimScope::Partition(0), [(0, 5)]);
        s.apply(&genesis(RULES, 10.0)).unwrap();
        let real = attempt_tx(7, 0, "alice");
        let content = real.content().unwrap();
        assert_eq!(s.verdict(o(7), content), Verdict::Free);
        let forged = mined(
            s.tip().unwrap(),
            11.0,
            &[attempt_tx(7, 0, "mallory"), attempt_tx(3, 0, "x")],
        );
        let a = s.apply(&forged).unwrap();
        assert!(
            a.claims[0].content.is_some() && a.claims[1].content.is_none(),
            "below the floor: not tracked"
        );
        assert_eq!(
            s.verdict(o(7), content),
            Verdict::Conflict { attempt: Some(1) }
        );
        assert_eq!(
            s.verdict(o(3), content),
            Verdict::OnChain,
            "untracked: the old behaviour"
        );
        // The same attempt again is a duplicate; the next attempt lands.
        let again = mined(s.tip().unwrap(), 12.0, std::slice::from_ref(&real));
        assert_eq!(reason(&mut s, &again), RuleError::DuplicateOrigin(o(7)));
        let retry = real.with_attempt(1);
        assert!(retry
            .canonical_json()
            .contains(r#""origin": {"attempt": 1, "offset": 7, "partition": 0}"#));
        let b = mined(s.tip().unwrap(), 12.0, &[retry.clone(), retry.clone()]);
        assert_eq!(
            reason(&mut s, &b),
            RuleError::DuplicateOrigin(o(7)),
            "twice in one block"
        );
        let b = mined(s.tip().unwrap(), 12.0, &[retry]);
        assert_eq!(s.apply(&b).unwrap().claims[0].attempt, 1);
        assert_eq!(s.verdict(o(7), content), Verdict::OnChain);
        assert_eq!(s.tracked_claims(), 1);
        s.raise_claim_floor(0, 8);
        assert_eq!(s.tracked_claims(), 0);
        // Strict v2 origins: attempt is 1.. and the only extra member.
        for bad in [
            r#"{"attempt": 0, "offset": 1, "partition": 0}"#,
            r#"{"attempt": "1", "offset": 1, "partition": 0}"#,
            r#"{"digest": "00", "offset": 1, "partition": 0}"#,
        ] {
            let mut tape = Tape::default();
            tape.parse(bad.as_bytes()).unwrap();
            assert!(
                tx_origin(&tape, bad.as_bytes(), 0, 0, true).is_err(),
                "{bad}"
            );
        }
    }

    /// Issue 12: descending and sparse origins stay O(log n) each (a 20,000-origin
    /// block used to take seconds); the bench row in BENCHMARKS.md measures it.
    #[test]
    fn descending_origins_replay() {
        let mut s = v2_state();
        let txs: Vec<Transaction> = (0..20_000).rev().map(|i| tx(2 * i)).collect();
        let b = mined(s.tip().unwrap(), 11.0, &txs);
        assert_eq!(s.apply(&b).unwrap().origins.len(), 20_000);
        assert!(s.contains_origin(Origin {
            partition: 0,
            offset: 39_998
        }));
    }
}
