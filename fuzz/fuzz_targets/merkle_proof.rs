//! Merkle inclusion proofs (`chain::proof`). Selector byte 0: the bytes as a JSON
//! proof (what `kafkachain proof verify` reads), verified; 1: a raw fold
//! (`root_from_branch` with arbitrary position, count and branch); 2: a tree built
//! from the input, where every position's branch must fold to `merkle_root` and a
//! flipped sibling must not. No input panics.
#![no_main]

use kafkachain::chain::merkle::{merkle_root, tx_id};
use kafkachain::chain::pow::{v2_header, v2_header_hash};
use kafkachain::chain::proof::{
    merkle_branch, root_from_branch, InclusionProof, ProofHeader, PROOF_FORMAT,
};
use kafkachain::chain::{BlockHash, TxId};
use libfuzzer_sys::fuzz_target;

fn valid_proofs() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for count in [1usize, 2, 3, 5] {
        let txs: Vec<String> = (0..count)
            .map(|i| format!("{{\"amount\": {i}, \"recipient\": \"b\", \"sender\": \"a\"}}"))
            .collect();
        let leaves: Vec<TxId> = txs.iter().map(|t| tx_id(t.as_bytes())).collect();
        let root = merkle_root(&leaves);
        let previous = BlockHash([3; 32]);
        for pos in 0..count {
            let Some(branch) = merkle_branch(&leaves, pos) else {
                continue;
            };
            let header = v2_header(2, &previous, 1_764_079_201.25, &root, 0);
            let proof = InclusionProof {
                format: PROOF_FORMAT.to_string(),
                txid: leaves[pos].to_string(),
                tx: txs[pos].clone(),
                block_height: 2,
                pos: pos as u64,
                tx_count: count as u64,
                merkle: branch.iter().map(|h| TxId(*h).to_string()).collect(),
                merkle_root: root.to_string(),
                block_hash: v2_header_hash(&header).to_string(),
                header: ProofHeader {
                    index: 2,
                    previous_hash: previous.to_string(),
                    timestamp: 1_764_079_201.25,
                    merkle_root: root.to_string(),
                    nonce: 0,
                },
                header_hex: header.iter().map(|b| format!("{b:02x}")).collect(),
                difficulty: 0,
            };
            assert_eq!(proof.verify(), Ok(()), "seed proof");
            let mut bytes = vec![0u8];
            bytes.extend(serde_json::to_vec(&proof).unwrap_or_default());
            out.push(bytes);
        }
    }
    out
}

fuzz_target!(
    init: {
        let mut seeds = valid_proofs();
        seeds.push(vec![1; 80]);
        seeds.push(vec![2, 7, 3, 9, 9, 9]);
        kafkachain_fuzz::write_seeds(seeds);
    },
    |data: &[u8]| {
        let Some((&mode, rest)) = data.split_first() else { return };
        match mode % 3 {
            0 => {
                if let Ok(proof) = serde_json::from_slice::<InclusionProof>(rest) {
                    let _ = proof.verify().map_err(|e| e.to_string());
                }
            }
            1 => {
                if rest.len() < 48 { return }
                let pos = u64::from_le_bytes(rest[0..8].try_into().unwrap_or_default());
                let count = u64::from_le_bytes(rest[8..16].try_into().unwrap_or_default());
                let leaf = TxId(rest[16..48].try_into().unwrap_or_default());
                let branch: Vec<[u8; 32]> = rest[48..].chunks_exact(32).map(|c| c.try_into().unwrap_or_default()).collect();
                let _ = root_from_branch(&leaf, pos, count, &branch);
            }
            _ => {
                let Some((&n, rest)) = rest.split_first() else { return };
                let count = n as usize % 70 + 1;
                let leaves: Vec<TxId> = (0..count).map(|i| tx_id(&[rest, &i.to_le_bytes()].concat())).collect();
                let root = merkle_root(&leaves);
                for pos in 0..count {
                    let Some(branch) = merkle_branch(&leaves, pos) else { panic!("no branch for {pos} of {count}") };
                    assert_eq!(root_from_branch(&leaves[pos], pos as u64, count as u64, &branch), Ok(root), "pos {pos} of {count}");
                    if let Some(first) = branch.first() {
                        let mut bad = branch.clone();
                        bad[0] = [first[0] ^ 1; 32];
                        assert_ne!(root_from_branch(&leaves[pos], pos as u64, count as u64, &bad), Ok(root));
                    }
                    if pos + 1 < count {
                        assert_ne!(root_from_branch(&leaves[pos], pos as u64 + 1, count as u64, &branch), Ok(root), "a wrong position folds to the root");
                    }
                }
            }
        }
    }
);
