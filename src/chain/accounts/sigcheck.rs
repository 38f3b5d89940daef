//! The signature rule of accounts chains: ed25519 verified by the cofactored equation
//! of ZIP 215, alone or in batches, with one verdict per signature.
//!
//! A signature `(R, s)` by key `A` on message `M` is valid when
//!
//! - `A` and `R` are encodings of curve points (what `CompressedEdwardsY::decompress`
//!   accepts), `A` not of small order ([`super::Address::key`] refuses those);
//! - `s` is canonical (`s < ℓ`);
//! - `[8]([s]B − R − [k]A)` is the identity, where `k = SHA-512(R ‖ A ‖ M) mod ℓ` over
//!   the 32-byte encodings as they appear in the signature and the address.
//!
//! Every signature RFC 8032 signers produce (ed25519-dalek, libsodium/PyNaCl,
//! `cryptography`, Go's `crypto/ed25519`) is valid under it; it differs from the
//! cofactorless `verify_strict` only on signatures whose `R` or `A` carries a
//! small-order component on purpose.
//!
//! Why this rule and not ed25519-dalek's `verify_batch`: with the cofactorless
//! equation a batch's verdict depends on the whole batch (a signature with a
//! small-order defect passes or fails depending on its random coefficient), so a node
//! had to re-check every block it built as that exact batch before mining it. With the
//! cofactored equation, `[8]` clears every small-order part, the remaining terms lie in
//! the prime-order group, and a batch with independent 128-bit coefficients `z_i`
//! passes exactly when every signature in it is valid alone, except with probability
//! at most 2^-128 per check (for a fixed invalid term, at most one `z_i` mod ℓ cancels
//! it). So the verdict of a signature is the same in every batch, in every node, and
//! a transfer checked once at intake needs no second check in the block its node mines.
//! This is the rule Zcash adopted for the same reason ([ZIP 215]); `ed25519-zebra`
//! implements it and the tests compare against it.
//!
//! Invariants:
//! 1. [`verify_batch`] passes ⇔ [`verify`] passes for every item (up to 2^-128).
//! 2. Pure: no I/O; the batch coefficients come from the thread's CSPRNG.
//!
//! [ZIP 215]: https://zips.z.cash/zip-0215

use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity, VartimeMultiscalarMul};
use ed25519_dalek::VerifyingKey;
use rand::Rng;
use sha2::{Digest, Sha512};

/// One signature to check: the signer's key, the signed bytes, the 64-byte signature.
#[derive(Clone, Copy, Debug)]
pub struct Item<'a> {
    pub key: &'a VerifyingKey,
    pub msg: &'a [u8],
    pub sig: &'a [u8; 64],
}

/// `R`, `s` and `k` of a signature whose encodings are well formed.
struct Parts {
    r: EdwardsPoint,
    s: Scalar,
    k: Scalar,
}

fn parts(item: &Item<'_>) -> Option<Parts> {
    let mut r_bytes = [0u8; 32];
    r_bytes.copy_from_slice(&item.sig[..32]);
    let mut s_bytes = [0u8; 32];
    s_bytes.copy_from_slice(&item.sig[32..]);
    let r = CompressedEdwardsY(r_bytes).decompress()?;
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))?;
    let k = Scalar::from_hash(
        Sha512::new()
            .chain_update(r_bytes)
            .chain_update(item.key.as_bytes())
            .chain_update(item.msg),
    );
    Some(Parts { r, s, k })
}

/// Whether one signature is valid (the module's rule).
pub fn verify(item: &Item<'_>) -> bool {
    let Some(p) = parts(item) else {
        return false;
    };
    let minus_a = -item.key.to_edwards();
    // [k](−A) + [s]B, the R the signature must carry up to a small-order part.
    let r_expected = EdwardsPoint::vartime_double_scalar_mul_basepoint(&p.k, &minus_a, &p.s);
    (r_expected - p.r).mul_by_cofactor().is_identity()
}

/// Whether every signature in `items` is valid, in one multiscalar multiplication.
/// An empty batch passes.
pub fn verify_batch(items: &[Item<'_>]) -> bool {
    if items.len() == 1 {
        return verify(&items[0]);
    }
    let mut rng = rand::thread_rng();
    let mut b_coeff = Scalar::ZERO;
    let mut scalars = Vec::with_capacity(2 * items.len() + 1);
    let mut points = Vec::with_capacity(2 * items.len() + 1);
    scalars.push(Scalar::ZERO);
    points.push(ED25519_BASEPOINT_POINT);
    for item in items {
        let Some(p) = parts(item) else {
            return false;
        };
        let z = Scalar::from(rng.gen::<u128>());
        b_coeff += z * p.s;
        // Σ z_i ([s_i]B − R_i − [k_i]A_i) = [Σ z_i s_i]B + Σ z_i (−R_i) + Σ z_i k_i (−A_i)
        scalars.push(z);
        points.push(-p.r);
        scalars.push(z * p.k);
        points.push(-item.key.to_edwards());
    }
    scalars[0] = b_coeff;
    EdwardsPoint::vartime_multiscalar_mul(&scalars, &points)
        .mul_by_cofactor()
        .is_identity()
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::EIGHT_TORSION;
    use ed25519_dalek::{Signer, SigningKey};

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn zebra(key: &VerifyingKey, msg: &[u8], sig: &[u8; 64]) -> bool {
        let Ok(vk) = ed25519_zebra::VerificationKey::try_from(key.to_bytes()) else {
            return false;
        };
        vk.verify(&ed25519_zebra::Signature::from_bytes(sig), msg)
            .is_ok()
    }

    /// A signature by `sk` whose `R` carries the small-order point `t`, made so that
    /// the cofactored equation holds (valid here and in ZIP 215) while the
    /// cofactorless one (`verify_strict`) fails unless `t` is the identity.
    fn torsioned(sk: &SigningKey, msg: &[u8], t: EdwardsPoint) -> [u8; 64] {
        let a = sk.verifying_key();
        // A nonce of our own: r, R = [r]B + t, k = H(R ‖ A ‖ M), s = r + k·a.
        let r = Scalar::from_hash(Sha512::new().chain_update(b"test nonce").chain_update(msg));
        let big_r = (EdwardsPoint::mul_base(&r) + t).compress();
        let k = Scalar::from_hash(
            Sha512::new()
                .chain_update(big_r.as_bytes())
                .chain_update(a.as_bytes())
                .chain_update(msg),
        );
        let s = r + k * sk.to_scalar();
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(big_r.as_bytes());
        sig[32..].copy_from_slice(s.as_bytes());
        sig
    }

    #[test]
    fn honest_signatures_pass_alone_and_in_batches() {
        let keys: Vec<SigningKey> = (1..=40).map(key).collect();
        let vks: Vec<VerifyingKey> = keys.iter().map(|k| k.verifying_key()).collect();
        let msgs: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 10 + i as usize]).collect();
        let sigs: Vec<[u8; 64]> = keys
            .iter()
            .zip(&msgs)
            .map(|(k, m)| k.sign(m).to_bytes())
            .collect();
        let items: Vec<Item> = (0..40)
            .map(|i| Item {
                key: &vks[i],
                msg: &msgs[i],
                sig: &sigs[i],
            })
            .collect();
        for item in &items {
            assert!(verify(item));
            assert!(zebra(item.key, item.msg, item.sig));
        }
        assert!(verify_batch(&items));
        assert!(verify_batch(&items[..1]));
        assert!(verify_batch(&[]));
    }

    #[test]
    fn one_bad_signature_fails_every_batch_it_is_in() {
        let keys: Vec<SigningKey> = (1..=20).map(key).collect();
        let vks: Vec<VerifyingKey> = keys.iter().map(|k| k.verifying_key()).collect();
        let msg = b"transfer".to_vec();
        let mut sigs: Vec<[u8; 64]> = keys.iter().map(|k| k.sign(&msg).to_bytes()).collect();
        // Signed by another key; a flipped bit in s; a non-canonical s; R not a point.
        let bad: Vec<[u8; 64]> = vec![
            keys[0].sign(b"transfer").to_bytes(),
            {
                let mut s = sigs[1];
                s[40] ^= 1;
                s
            },
            {
                let mut s = sigs[1];
                s[63] |= 0xf0;
                s
            },
            {
                let mut s = sigs[1];
                s[..32].copy_from_slice(&[0xff; 32]);
                s[31] = 0x7f;
                s
            },
        ];
        for b in bad {
            sigs[1] = b;
            let items: Vec<Item> = (0..20)
                .map(|i| Item {
                    key: &vks[i],
                    msg: &msg,
                    sig: &sigs[i],
                })
                .collect();
            assert!(!verify(&items[1]));
            assert!(!zebra(items[1].key, items[1].msg, items[1].sig));
            for _ in 0..8 {
                assert!(!verify_batch(&items), "a batch with a bad signature passed");
                assert!(!verify_batch(&items[1..5]));
            }
        }
    }

    /// The point of the rule: a signature with a small-order part in `R` gets the same
    /// verdict alone and in every batch (with the cofactorless batch it passed in
    /// about 1 batch of 8, depending on its coefficient). Checked for every
    /// small-order point, valid ones and ones broken by the same torsion.
    #[test]
    fn small_order_parts_get_the_same_verdict_alone_and_in_any_batch() {
        let sk = key(9);
        let vk = sk.verifying_key();
        let others: Vec<SigningKey> = (20..30).map(key).collect();
        let other_vks: Vec<VerifyingKey> = others.iter().map(|k| k.verifying_key()).collect();
        let msg = b"pay 5".to_vec();
        let other_sigs: Vec<[u8; 64]> = others.iter().map(|k| k.sign(&msg).to_bytes()).collect();
        for (n, t) in EIGHT_TORSION.iter().enumerate() {
            // Valid under the cofactored rule: R = [r]B + t with s matching [r]B.
            let sig = torsioned(&sk, &msg, *t);
            let alone = Item {
                key: &vk,
                msg: &msg,
                sig: &sig,
            };
            assert!(verify(&alone), "torsion {n}: cofactored rule refused");
            assert!(zebra(&vk, &msg, &sig), "torsion {n}: zebra disagrees");
            let strict = vk.verify_strict(&msg, &ed25519_dalek::Signature::from_bytes(&sig));
            assert_eq!(strict.is_ok(), n == 0, "torsion {n}: verify_strict");
            // A broken one: s off by one, so [s]B − R − [k]A = B − t, not small order.
            let mut broken = sig;
            let s =
                Scalar::from_bytes_mod_order(sig[32..].try_into().expect("32 bytes")) + Scalar::ONE;
            broken[32..].copy_from_slice(s.as_bytes());
            assert!(!verify(&Item {
                key: &vk,
                msg: &msg,
                sig: &broken
            }));
            for round in 0..16 {
                let mut items: Vec<Item> = (0..10)
                    .map(|i| Item {
                        key: &other_vks[i],
                        msg: &msg,
                        sig: &other_sigs[i],
                    })
                    .collect();
                items.insert(round % 10, alone);
                assert!(verify_batch(&items), "torsion {n}: a batch refused it");
                items[round % 10].sig = &broken;
                assert!(!verify_batch(&items), "torsion {n}: a batch took it broken");
            }
        }
    }
}
