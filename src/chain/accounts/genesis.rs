//! The genesis block of an accounts chain.
//!
//! A v2 genesis (index 1, previous hash and Merkle root all zeros, proof 0, no
//! transactions) with `"rules": "accounts"` and four more fields:
//! `allocations` (`{"<address>": amount, ...}`), `block_reward` (the most a block may
//! mint for its miner), `chain_id` (64 lowercase hex digits, random for each new
//! chain) and `signature_scheme` (`"ed25519"`). The genesis hash is the SHA-256 of
//! its canonical JSON, so it commits to all of them.

use std::collections::BTreeMap;

use super::address::{Address, ChainId};
use super::ledger::Ledger;
use super::transfer::{read_amount, text};
use super::{AccountsError, SIGNATURE_SCHEME};
use crate::chain::canonical::{write_py_float, Kind, Tape};
use crate::chain::hash::write_hex;

/// What a new accounts chain starts with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountsGenesis {
    pub chain_id: ChainId,
    pub difficulty: u32,
    pub block_reward: u64,
    pub allocations: BTreeMap<Address, u64>,
}

/// The genesis block as canonical JSON.
pub fn genesis_block(g: &AccountsGenesis, timestamp: f64) -> Vec<u8> {
    let mut out = Vec::with_capacity(512 + 90 * g.allocations.len());
    out.extend_from_slice(b"{\"allocations\": {");
    for (i, (address, amount)) in g.allocations.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(format!("\"{address}\": {amount}").as_bytes());
    }
    out.extend_from_slice(
        format!(
            "}}, \"block_reward\": {}, \"chain_id\": \"{}\", \"difficulty\": {}, \"index\": 1, \"merkle_root\": \"",
            g.block_reward, g.chain_id, g.difficulty
        )
        .as_bytes(),
    );
    write_hex(&[0; 32], &mut out);
    out.extend_from_slice(b"\", \"previous_hash\": \"");
    write_hex(&[0; 32], &mut out);
    out.extend_from_slice(
        format!(
            "\", \"proof\": 0, \"rules\": \"accounts\", \"signature_scheme\": \"{SIGNATURE_SCHEME}\", \"timestamp\": "
        )
        .as_bytes(),
    );
    write_py_float(timestamp, &mut out);
    out.extend_from_slice(b", \"transactions\": []}");
    out
}

/// Reads `{"<address>": amount, ...}` at tape node `obj`.
fn read_allocations(
    tape: &Tape,
    s: &[u8],
    obj: usize,
) -> Result<BTreeMap<Address, u64>, AccountsError> {
    if tape.node(obj).kind != Kind::Object {
        return Err(AccountsError::WrongType {
            field: "allocations",
            expected: "an object {\"<address>\": amount}",
        });
    }
    let mut out = BTreeMap::new();
    let mut buf = Vec::new();
    for (k, v) in tape.members(obj) {
        let address = Address::parse(text(tape, s, k, &mut buf), "allocations")?;
        address.key("allocations")?;
        let amount = read_amount(tape, s, v)?;
        if out.insert(address, amount).is_some() {
            return Err(AccountsError::DuplicateField("allocations"));
        }
    }
    Ok(out)
}

/// Parses a `--genesis-alloc` file: `{"<address>": amount, ...}`.
pub fn parse_allocations(json: &[u8]) -> Result<BTreeMap<Address, u64>, AccountsError> {
    let mut tape = Tape::default();
    tape.parse(json)
        .map_err(|e| AccountsError::Json(e.to_string()))?;
    read_allocations(&tape, json, 0)
}

/// The accounts fields of a genesis, by tape node (absent: `None`).
pub(crate) struct GenesisFields {
    pub allocations: Option<usize>,
    pub block_reward: Option<usize>,
    pub chain_id: Option<usize>,
    pub signature_scheme: Option<usize>,
}

/// Reads the accounts fields of a genesis block: chain id, reward and the ledger.
pub(crate) fn read_genesis(
    tape: &Tape,
    s: &[u8],
    f: &GenesisFields,
) -> Result<(ChainId, u64, Ledger), AccountsError> {
    let need =
        |slot: Option<usize>, name: &'static str| slot.ok_or(AccountsError::MissingField(name));
    let mut buf = Vec::new();
    let scheme = need(f.signature_scheme, "signature_scheme")?;
    if tape.node(scheme).kind != Kind::Str
        || text(tape, s, scheme, &mut buf) != SIGNATURE_SCHEME.as_bytes()
    {
        return Err(AccountsError::BadGenesis(format!(
            "signature_scheme must be \"{SIGNATURE_SCHEME}\""
        )));
    }
    let id = need(f.chain_id, "chain_id")?;
    let chain_id = (tape.node(id).kind == Kind::Str)
        .then(|| ChainId::parse(text(tape, s, id, &mut buf)))
        .flatten()
        .ok_or(AccountsError::WrongType {
            field: "chain_id",
            expected: "64 lowercase hex digits",
        })?;
    let reward = need(f.block_reward, "block_reward")?;
    let block_reward = read_amount(tape, s, reward)?;
    let allocations = read_allocations(tape, s, need(f.allocations, "allocations")?)?;
    let ledger = Ledger::new(chain_id, block_reward, allocations)?;
    Ok((chain_id, block_reward, ledger))
}
