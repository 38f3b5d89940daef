//! The v2 transaction Merkle tree. Leaves and inner nodes are domain-separated
//! (0x00 / 0x01 prefixes) so a leaf can never be passed off as an inner node, and an
//! odd node is promoted unchanged rather than paired with itself (which would let two
//! different transaction lists share a root, as in Bitcoin's CVE-2012-2459).

use sha2::{Digest, Sha256};

use super::hash::{MerkleRoot, TxId};

/// A transaction's leaf hash: SHA-256(0x00 ‖ canonical transaction JSON).
pub fn tx_id(canonical_tx_json: &[u8]) -> TxId {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(canonical_tx_json);
    TxId(h.finalize().into())
}

fn node(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root over `leaves`, reducing in place (the caller's buffer is scratch, so
/// block validation needs no allocation of its own). Empty ⇒ all zeros.
pub fn merkle_root_in_place(leaves: &mut Vec<[u8; 32]>) -> MerkleRoot {
    if leaves.is_empty() {
        return MerkleRoot::ZERO;
    }
    while leaves.len() > 1 {
        let n = leaves.len();
        let mut w = 0;
        let mut r = 0;
        while r + 1 < n {
            leaves[w] = node(&leaves[r], &leaves[r + 1]);
            w += 1;
            r += 2;
        }
        if r < n {
            leaves[w] = leaves[r];
            w += 1;
        }
        leaves.truncate(w);
    }
    MerkleRoot(leaves[0])
}

/// The root over the given transaction ids.
pub fn merkle_root(ids: &[TxId]) -> MerkleRoot {
    let mut leaves: Vec<[u8; 32]> = ids.iter().map(|t| t.0).collect();
    merkle_root_in_place(&mut leaves)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(merkle_root(&[]), MerkleRoot::ZERO);
        let a = tx_id(b"{}");
        let b = tx_id(b"[]");
        let c = tx_id(b"1");
        assert_eq!(merkle_root(&[a]).0, a.0);
        let ab = node(&a.0, &b.0);
        assert_eq!(merkle_root(&[a, b]).0, ab);
        // Odd node promoted, not duplicated.
        assert_eq!(merkle_root(&[a, b, c]).0, node(&ab, &c.0));
        assert_ne!(merkle_root(&[a, b, c]), merkle_root(&[a, b, c, c]));
    }
}
