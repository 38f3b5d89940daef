//! The `accounts` rule set: ed25519-signed transfers, balances and nonces.
//!
//! Pure and synchronous like the rest of [`crate::chain`]. The specification for other
//! languages is `docs/accounts.md`; this module is its reference implementation.
//!
//! - [`address`]: [`Address`] (an ed25519 public key, 64 lowercase hex digits) and
//!   [`ChainId`].
//! - [`transfer`]: the transfer format, the exact signed bytes, parsing and signature
//!   checks. [`SignedTransfer`] is what arrived (unverified); [`VerifiedTransfer`] can
//!   only be made by checking its signature, so unverified data cannot reach code
//!   that expects verified data.
//! - [`ledger`]: balances and nonces ([`Ledger`]) and the block check that applies a
//!   block's transfers in order, all or nothing.
//! - [`sigcheck`]: the signature rule (ed25519, ZIP 215's cofactored equation), alone
//!   and in batches.
//! - [`genesis`]: the genesis block of an accounts chain (allocations, reward, chain id).
//!
//! Invariants:
//! 1. Every amount is an integer in `1..=MAX_AMOUNT` minor units; balances never go
//!    negative and never exceed `u64::MAX` (a block that would is rejected).
//! 2. An account's nonce is the number of its transfers on the chain; a transfer is
//!    valid only with exactly that nonce, so each signed transfer lands at most once.
//! 3. The signature covers the chain id, so a transfer is valid on one chain only.
//! 4. A block is applied whole or not at all; its signatures are verified in one
//!    batch under the cofactored rule of [`sigcheck`], whose verdict is that of each
//!    signature alone (so every node reaches the same verdict, whatever the batch),
//!    falling back to single checks only to name the bad transfer.
//! 5. State is one entry per account: memory grows with accounts, not chain length.

pub mod address;
pub mod genesis;
pub mod ledger;
pub mod sigcheck;
pub mod transfer;

#[cfg(test)]
mod tests;

pub use address::{Address, ChainId};
pub use genesis::{genesis_block, parse_allocations, AccountsGenesis};
pub use ledger::{Account, Ledger, LedgerView};
pub use transfer::{verify_many, SignedTransfer, Transfer, VerifiedTransfer, DOMAIN, SIGNED_LEN};

/// The largest amount a transfer, reward or allocation may carry: 2^53 - 1, the
/// largest integer every JSON implementation (JavaScript's included) reads exactly.
pub const MAX_AMOUNT: u64 = (1 << 53) - 1;

/// The only signature scheme so far; the genesis names it.
pub const SIGNATURE_SCHEME: &str = "ed25519";

/// Everything that makes a transfer, a genesis or an accounts block unacceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountsError {
    #[error("transfer is {len} bytes, over the {max}-byte limit")]
    TooLarge { len: usize, max: usize },
    #[error("unparsable JSON: {0}")]
    Json(String),
    #[error("not a transfer: expected a JSON object")]
    NotAnObject,
    #[error(
        "unsigned transaction: this chain follows the accounts rules, so a transfer must be \
         signed ({{\"from\", \"to\", \"amount\", \"nonce\", \"sig\"}}, see docs/accounts.md); \
         tutorial-format transactions are not accepted"
    )]
    Unsigned,
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    #[error("unknown field `{0}`")]
    UnknownField(String),
    #[error("field `{0}` appears twice")]
    DuplicateField(&'static str),
    #[error("field `{field}` is not {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("malformed address in `{field}`: {reason}")]
    MalformedAddress {
        field: &'static str,
        reason: &'static str,
    },
    #[error("amount is zero (amounts are positive integers in minor units)")]
    AmountZero,
    #[error("amount {0} is negative")]
    AmountNegative(String),
    #[error("amount {0} is not an integer (amounts are integers in minor units)")]
    AmountFractional(String),
    #[error("amount {0} is out of range (at most {MAX_AMOUNT})")]
    AmountOutOfRange(String),
    #[error("malformed signature: {0}")]
    MalformedSignature(&'static str),
    #[error(
        "bad signature: it does not verify for sender {from} on chain {chain} (signed by \
         another key, for another chain id, or the transfer was altered)"
    )]
    BadSignature { from: Address, chain: ChainId },
    #[error("the block's signatures fail batch verification, although each verifies alone")]
    BatchFailed,
    #[error(
        "nonce {found} of {account} is already used (next is {expected}): a replay or the \
         losing side of a double spend"
    )]
    NonceTooLow {
        account: Address,
        expected: u64,
        found: u64,
    },
    #[error("nonce {found} of {account} is too high: the next is {expected}{held}")]
    NonceTooHigh {
        account: Address,
        expected: u64,
        found: u64,
        /// Empty on the chain; the hold window's explanation at intake.
        held: String,
    },
    #[error("spends {amount} from {account}, an empty account")]
    EmptyAccount { account: Address, amount: u64 },
    #[error("overdraft: {account} has {balance}, the transfer needs {amount}")]
    Overdraft {
        account: Address,
        balance: u64,
        amount: u64,
    },
    #[error("balance of {0} would exceed 2^64 - 1")]
    BalanceOverflow(Address),
    #[error("the block mints {found}, more than the reward of {max}")]
    RewardTooLarge { found: u64, max: u64 },
    #[error("more than one reward transaction, or the reward is not last")]
    MisplacedReward,
    #[error("conflicts with the pending transfer at partition {partition} offset {offset} (same sender and nonce{same})")]
    ConflictsWithPending {
        partition: i32,
        offset: i64,
        /// ", same bytes: a replay" when identical.
        same: &'static str,
    },
    #[error("bad genesis: {0}")]
    BadGenesis(String),
}
