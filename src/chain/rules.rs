//! The rule sets and the precise reasons a record is not accepted onto the chain.
//!
//! The genesis block chooses the rules for the whole chain: a tutorial genesis (no
//! `rules` field) means [`Rules::Seed`], exactly the Python original's `valid_block`;
//! `"rules": "v2"` means [`Rules::V2`], where the proof of work commits to the content.

use std::fmt;

use super::accounts::{AccountsError, ChainId};
use super::hash::{BlockHash, MerkleRoot};
use super::Origin;

/// Default v2 difficulty in leading zero bits: about 65 k attempts per block, the
/// same expected work as the tutorial's four hex zeros.
pub const DEFAULT_V2_DIFFICULTY: u32 = 16;

/// Which validation rules a chain follows; fixed by its genesis block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rules {
    /// The tutorial's rules: `previous_hash` equals the SHA-256 of the previous
    /// block's canonical JSON, and `sha256(f"{last_proof}{proof}")` starts with
    /// `0000`. Nothing else is checked (not even the index), as in Python.
    Seed,
    /// Header proof of work with `difficulty` leading zero bits, Merkle-committed
    /// transactions, consecutive indexes, monotonic timestamps, unique origins.
    V2 { difficulty: u32 },
    /// The v2 rules plus ed25519-signed transfers, balances and nonces
    /// ([`super::accounts`]); the genesis names the chain id and the block reward.
    Accounts {
        difficulty: u32,
        chain_id: ChainId,
        block_reward: u64,
    },
}

impl Rules {
    /// Leading zero bits of the header proof of work (v2 and accounts).
    pub fn difficulty(&self) -> Option<u32> {
        match self {
            Rules::Seed => None,
            Rules::V2 { difficulty } | Rules::Accounts { difficulty, .. } => Some(*difficulty),
        }
    }
}

impl fmt::Display for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rules::Seed => f.write_str("seed"),
            Rules::V2 { difficulty } => write!(f, "v2 (difficulty {difficulty} bits)"),
            Rules::Accounts {
                difficulty,
                chain_id,
                block_reward,
            } => write!(
                f,
                "accounts (difficulty {difficulty} bits, chain id {chain_id}, block reward {block_reward})"
            ),
        }
    }
}

/// Why a record was not appended to the chain.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    #[error("unparsable JSON: {0}")]
    Json(String),
    #[error("not a block: {0}")]
    NotABlock(String),
    #[error("missing field `{0}`")]
    MissingField(String),
    #[error("field `{field}` is not {expected}")]
    WrongType {
        field: String,
        expected: &'static str,
    },
    #[error("unknown field `{0}` (a v2 block may only carry fields its hash commits to)")]
    UnknownField(String),
    #[error("no genesis yet: expected a block with index 1, found {0}")]
    NoGenesis(String),
    #[error("unknown rules {0} in the genesis block")]
    UnknownRules(String),
    #[error("bad genesis: {0}")]
    BadGenesis(String),
    #[error("stale: a second genesis block (another node published the first one)")]
    SecondGenesis,
    #[error(
        "bad link: previous_hash is {found}, but the tip (index {tip_index}) has hash {expected}"
    )]
    BadLink {
        expected: BlockHash,
        tip_index: u64,
        found: String,
    },
    #[error("stale: builds on block {parent_index} ({parent}), which is no longer the tip (index {tip_index})")]
    Stale {
        parent: BlockHash,
        parent_index: u64,
        tip_index: u64,
    },
    #[error("bad proof of work: {0}")]
    BadProof(String),
    #[error("wrong index: expected {expected}, found {found}")]
    WrongIndex { expected: u64, found: u64 },
    #[error("timestamp goes backwards: {found} is before the tip's {previous}")]
    TimestampBackwards { previous: f64, found: f64 },
    #[error("duplicate origin: partition {} offset {} is already on the chain", .0.partition, .0.offset)]
    DuplicateOrigin(Origin),
    #[error("merkle root mismatch: the block says {claimed}, its transactions give {computed}")]
    MerkleMismatch {
        claimed: MerkleRoot,
        computed: MerkleRoot,
    },
    #[error("transactions[{index}]: {reason}")]
    Transfer { index: usize, reason: AccountsError },
    #[error("{0}")]
    Accounts(AccountsError),
    #[error("proof {0} has no Python str() that this implementation reproduces")]
    UnsupportedProof(String),
}

impl RuleError {
    /// A well-formed block that merely lost a race to another block.
    pub fn is_stale(&self) -> bool {
        matches!(self, RuleError::Stale { .. } | RuleError::SecondGenesis)
    }
}
