//! The chain rules: pure, synchronous, no I/O.
//!
//! - [`canonical`]: byte-exact Python `json.dumps(…, sort_keys=True)`; everything that
//!   hashes JSON goes through it.
//! - [`hash`]: the `BlockHash`, `TxId` and `MerkleRoot` newtypes.
//! - [`block`]: reading blocks off the parsed JSON (internal).
//! - [`merkle`]: the v2 transaction Merkle tree.
//! - [`proof`]: Merkle inclusion proofs a client can check alone.
//! - [`contents`]: a block's transactions with their ids, read for the index.
//! - [`rules`]: the `seed` and `v2` rule sets and the precise rejection reasons.
//! - [`origins`]: the compact set of transaction origins already on the chain.
//! - [`claims`]: which content the chain holds for an origin (forged claims must not
//!   censor the real record).
//! - [`replay`]: [`ChainState`], which applies chain-topic records in order.
//! - [`intake`]: parsing transactions submitted on the transactions topic.
//! - [`template`]: building canonical blocks for our node to mine.
//! - [`pow`]: the miner and the proof-of-work checks.
//! - [`sha_x2`]: SHA-256 compressions two at a time (x86 SHA extensions) for the miner.
//! - `pyrepr`: Python's `repr()` of parsed JSON (the seed proof may be a list or dict).
//! - [`accounts`]: the `accounts` rule set: ed25519-signed transfers, balances, nonces.

pub mod accounts;
pub(crate) mod block;
pub mod canonical;
pub mod claims;
pub mod contents;
pub mod hash;
pub mod intake;
pub mod merkle;
pub mod origins;
pub mod pow;
pub mod proof;
pub(crate) mod pyrepr;
mod pyrepr_table;
pub mod replay;
pub mod rules;
pub mod sha_x2;
pub mod template;

pub use canonical::{to_canonical, Canonicalizer, JsonError};
pub use claims::{Claim, ClaimScope, ContentDigest, Verdict};
pub use hash::{BlockHash, HashParseError, MerkleRoot, TxId};
pub use intake::{parse_submitted, IntakeError, SubmittedTx, MAX_TX_BYTES};
pub use origins::OriginSet;
pub use pow::{Mined, Miner, Work};
pub use replay::{Appended, ChainState, Discarded, Tip};
pub use rules::{RuleError, Rules, DEFAULT_V2_DIFFICULTY};
pub use template::{
    genesis, BlockTemplate, Transaction, BLOCK_FRAME_BYTES, BLOCK_TX_SEPARATOR_BYTES,
};

/// Where a transaction came from: its partition and offset on the transactions
/// topic. Each origin may appear on the chain at most once (v2), which is what
/// makes redelivery after a crash harmless.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin {
    pub partition: i32,
    pub offset: i64,
}
