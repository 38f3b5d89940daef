//! Merkle inclusion proofs for v2 blocks, checkable by a client alone
//! (the format is specified language-neutrally in `docs/proofs.md`).
//!
//! The tree is the one in [`merkle`](super::merkle): leaves `SHA-256(0x00 ‖ tx)`,
//! inner nodes `SHA-256(0x01 ‖ left ‖ right)`, and an odd node at the end of a level
//! promoted unchanged. So a level contributes a sibling to the proof only when the
//! node has one; the verifier knows which levels do from `pos` and `tx_count`.
//!
//! A proof binds the transaction to a block hash: leaf → root (the branch), root →
//! header (the header carries the root), header → block hash (SHA-256 of the 88
//! header bytes), and the hash has the chain's proof of work.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::hash::{BlockHash, HashParseError, MerkleRoot, TxId};
use super::merkle::tx_id;
use super::pow::{hash_leading_zero_bits, v2_header, v2_header_hash};

/// The format tag every proof carries.
pub const PROOF_FORMAT: &str = "kafkachain-merkle-proof/1";

/// The v2 header fields the block hash commits to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProofHeader {
    pub index: u64,
    pub previous_hash: String,
    pub timestamp: f64,
    pub merkle_root: String,
    pub nonce: u64,
}

/// An inclusion proof as served by `/tx/:txid/merkle-proof` and checked by
/// `kafkachain proof verify`. Field names follow Esplora where it has one
/// (`block_height`, `merkle`, `pos`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InclusionProof {
    pub format: String,
    pub txid: String,
    /// The transaction's canonical JSON: its leaf is `SHA-256(0x00 ‖ tx)`.
    pub tx: String,
    pub block_height: u64,
    pub pos: u64,
    pub tx_count: u64,
    /// Sibling hashes from the leaf level up (levels where the node was promoted
    /// contribute none).
    pub merkle: Vec<String>,
    pub merkle_root: String,
    pub block_hash: String,
    pub header: ProofHeader,
    /// The 88 header bytes in hex: index u64 BE ‖ previous hash ‖ timestamp f64 BE ‖
    /// Merkle root ‖ nonce u64 BE.
    pub header_hex: String,
    /// Leading zero bits the chain requires of a block hash (from its genesis).
    pub difficulty: u32,
}

/// Why a proof does not check out.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ProofError {
    #[error("unknown proof format {0:?} (expected {PROOF_FORMAT:?})")]
    Format(String),
    #[error("field `{field}`: {source}")]
    BadHash {
        field: &'static str,
        source: HashParseError,
    },
    #[error("the leaf of `tx` is {computed}, not the txid {claimed}")]
    LeafMismatch { claimed: TxId, computed: TxId },
    #[error("pos {pos} is not below tx_count {count}")]
    Position { pos: u64, count: u64 },
    #[error("the branch has {given} hashes; pos {pos} of {count} needs {needed}")]
    BranchLength {
        given: usize,
        needed: usize,
        pos: u64,
        count: u64,
    },
    #[error("the branch folds to root {computed}, but the proof names {claimed}")]
    RootMismatch {
        claimed: MerkleRoot,
        computed: MerkleRoot,
    },
    #[error("header.merkle_root {header} differs from merkle_root {proof}")]
    HeaderRoot { header: String, proof: String },
    #[error("header.index {index} differs from block_height {height}")]
    HeaderIndex { index: u64, height: u64 },
    #[error("header_hex is not the encoding of the header fields")]
    HeaderBytes,
    #[error("the header hashes to {computed}, not the block hash {claimed}")]
    BlockHash {
        claimed: BlockHash,
        computed: BlockHash,
    },
    #[error("block hash {hash} has {bits} leading zero bits, the chain requires {difficulty}")]
    Work {
        hash: BlockHash,
        bits: u32,
        difficulty: u32,
    },
}

fn node(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// Sibling hashes for the leaf at `pos` among `leaves` (None if out of range).
pub fn merkle_branch(leaves: &[TxId], pos: usize) -> Option<Vec<[u8; 32]>> {
    if pos >= leaves.len() {
        return None;
    }
    let mut level: Vec<[u8; 32]> = leaves.iter().map(|t| t.0).collect();
    let mut i = pos;
    let mut branch = Vec::new();
    while level.len() > 1 {
        let sibling = i ^ 1;
        if sibling < level.len() {
            branch.push(level[sibling]);
        }
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [l, r] => node(l, r),
                [only] => *only,
                _ => unreachable!("chunks(2) yields one or two"),
            })
            .collect();
        i /= 2;
    }
    Some(branch)
}

/// Folds `branch` from `leaf` at `pos` of `count` leaves up to the root.
pub fn root_from_branch(
    leaf: &TxId,
    pos: u64,
    count: u64,
    branch: &[[u8; 32]],
) -> Result<MerkleRoot, ProofError> {
    if pos >= count {
        return Err(ProofError::Position { pos, count });
    }
    let (mut i, mut n, mut h, mut used) = (pos, count, leaf.0, 0usize);
    let needed = branch_len(pos, count);
    if branch.len() != needed {
        return Err(ProofError::BranchLength {
            given: branch.len(),
            needed,
            pos,
            count,
        });
    }
    while n > 1 {
        if i % 2 == 1 {
            h = node(&branch[used], &h);
            used += 1;
        } else if i + 1 < n {
            h = node(&h, &branch[used]);
            used += 1;
        }
        i /= 2;
        n = n.div_ceil(2);
    }
    Ok(MerkleRoot(h))
}

/// How many siblings the proof for `pos` of `count` has.
fn branch_len(mut pos: u64, mut count: u64) -> usize {
    let mut len = 0;
    while count > 1 {
        if pos % 2 == 1 || pos + 1 < count {
            len += 1;
        }
        pos /= 2;
        count = count.div_ceil(2);
    }
    len
}

fn parse<T: std::str::FromStr<Err = HashParseError>>(
    field: &'static str,
    text: &str,
) -> Result<T, ProofError> {
    text.parse()
        .map_err(|source| ProofError::BadHash { field, source })
}

impl InclusionProof {
    /// Checks every link from the transaction to the block hash and its work.
    pub fn verify(&self) -> Result<(), ProofError> {
        if self.format != PROOF_FORMAT {
            return Err(ProofError::Format(self.format.clone()));
        }
        let claimed: TxId = parse("txid", &self.txid)?;
        let computed = tx_id(self.tx.as_bytes());
        if computed != claimed {
            return Err(ProofError::LeafMismatch { claimed, computed });
        }
        let branch = self
            .merkle
            .iter()
            .map(|h| parse::<TxId>("merkle", h).map(|t| t.0))
            .collect::<Result<Vec<_>, _>>()?;
        let root: MerkleRoot = parse("merkle_root", &self.merkle_root)?;
        let folded = root_from_branch(&claimed, self.pos, self.tx_count, &branch)?;
        if folded != root {
            return Err(ProofError::RootMismatch {
                claimed: root,
                computed: folded,
            });
        }
        let h = &self.header;
        if h.merkle_root != self.merkle_root {
            return Err(ProofError::HeaderRoot {
                header: h.merkle_root.clone(),
                proof: self.merkle_root.clone(),
            });
        }
        if h.index != self.block_height {
            return Err(ProofError::HeaderIndex {
                index: h.index,
                height: self.block_height,
            });
        }
        let previous: BlockHash = parse("header.previous_hash", &h.previous_hash)?;
        let header = v2_header(h.index, &previous, h.timestamp, &root, h.nonce);
        if hex::encode(header) != self.header_hex {
            return Err(ProofError::HeaderBytes);
        }
        let claimed: BlockHash = parse("block_hash", &self.block_hash)?;
        let computed = v2_header_hash(&header);
        if computed != claimed {
            return Err(ProofError::BlockHash { claimed, computed });
        }
        let bits = hash_leading_zero_bits(&computed.0);
        if bits < self.difficulty {
            return Err(ProofError::Work {
                hash: computed,
                bits,
                difficulty: self.difficulty,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::merkle::merkle_root;

    #[test]
    fn every_position_of_every_small_tree_folds_to_the_root() {
        for count in 1..=17u64 {
            let leaves: Vec<TxId> = (0..count).map(|i| tx_id(&i.to_be_bytes())).collect();
            let root = merkle_root(&leaves);
            for pos in 0..count {
                let branch = merkle_branch(&leaves, pos as usize).unwrap();
                assert_eq!(branch.len(), branch_len(pos, count));
                assert_eq!(
                    root_from_branch(&leaves[pos as usize], pos, count, &branch),
                    Ok(root),
                    "count {count} pos {pos}"
                );
                // A wrong position or a tampered sibling does not fold to the root.
                if let Some(first) = branch.first() {
                    let mut bad = branch.clone();
                    bad[0] = [first[0] ^ 1; 32];
                    assert_ne!(
                        root_from_branch(&leaves[pos as usize], pos, count, &bad),
                        Ok(root)
                    );
                }
            }
        }
        assert!(merkle_branch(&[], 0).is_none());
    }

    /// The header's timestamp must survive JSON exactly, or the header bytes (and so the
    /// block hash) cannot be rebuilt: serde_json needs `float_roundtrip` for that.
    #[test]
    fn timestamps_round_trip_through_the_json_format() {
        let mut x = 1_764_130_000.123_456_7_f64;
        for _ in 0..10_000 {
            let header = ProofHeader {
                index: 1,
                previous_hash: String::new(),
                timestamp: x,
                merkle_root: String::new(),
                nonce: u64::MAX,
            };
            let text = serde_json::to_string(&header).unwrap();
            let back: ProofHeader = serde_json::from_str(&text).unwrap();
            assert_eq!(back.timestamp.to_bits(), x.to_bits(), "{text}");
            assert_eq!(back.nonce, u64::MAX);
            x = f64::from_bits(x.to_bits() + 7_777_777);
        }
    }
}
