//! Several SHA-256 compressions at once with the x86 SHA extensions, for the v2 miner.
//!
//! One compression is a chain of 32 `sha256rnds2` instructions, each waiting for the
//! last: a single search loop is bound by that latency, not by the core's throughput.
//! Independent messages (consecutive nonces) interleaved instruction by instruction
//! keep the unit busy, so each attempt costs less CPU. Measured with
//! `cargo bench --bench node_path -- cpu` (thread CPU time per compression): 1 lane
//! 36.5 ns, 2 lanes 23.6-28.0 ns, 4 lanes 27.2-32.5 ns; the miner uses 2, and the whole
//! v2 attempt went from 54 ns (one `sha2::compress256` per nonce) to 30 ns.
//!
//! The rounds are fully unrolled with every message vector in a named variable (as in
//! the `sha2` crate's one-lane code): an earlier version indexing a ring of message
//! vectors by the round number left them in memory and gained only 25 %.
//!
//! Invariant: [`compress_n`] gives, for each lane, exactly the state
//! `sha2::compress256` gives for that lane's block (tested on random states and
//! blocks), so the miner finds the same nonce either way. It is used only when the CPU
//! has the extensions ([`available`]); otherwise the miner compresses one at a time.

#[cfg(target_arch = "x86_64")]
use core::arch::x86_64::*;

/// Whether this CPU can run [`compress_x2`].
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("sha")
            && std::arch::is_x86_feature_detected!("sse2")
            && std::arch::is_x86_feature_detected!("ssse3")
            && std::arch::is_x86_feature_detected!("sse4.1")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// SHA-256 round constants (FIPS 180-4 §4.2.2), four per group of rounds.
#[cfg(target_arch = "x86_64")]
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// The states after compressing `a` and `b`, each from `state`.
///
/// # Safety
/// The CPU must support `sha`, `sse2`, `ssse3` and `sse4.1` ([`available`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub unsafe fn compress_x2(state: &[u32; 8], a: &[u8; 64], b: &[u8; 64]) -> [[u32; 8]; 2] {
    compress_n(state, [a, b])
}

/// The states after compressing each of `blocks` from `state`: `N` independent
/// compressions, interleaved instruction by instruction.
///
/// # Safety
/// The CPU must support `sha`, `sse2`, `ssse3` and `sse4.1` ([`available`]).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
#[allow(clippy::cast_ptr_alignment)] // unaligned loads and stores only
pub unsafe fn compress_n<const N: usize>(
    state: &[u32; 8],
    blocks: [&[u8; 64]; N],
) -> [[u32; 8]; N] {
    // Big-endian words from the message bytes.
    let mask = _mm_set_epi64x(
        0x0C0D_0E0F_0809_0A0Bu64 as i64,
        0x0405_0607_0001_0203u64 as i64,
    );
    // The state as the instructions want it: (A, B, E, F) and (C, D, G, H).
    let p = state.as_ptr() as *const __m128i;
    let dcba = _mm_loadu_si128(p);
    let hgfe = _mm_loadu_si128(p.add(1));
    let cdab = _mm_shuffle_epi32(dcba, 0xB1);
    let efgh = _mm_shuffle_epi32(hgfe, 0x1B);
    let abef0 = _mm_alignr_epi8(cdab, efgh, 8);
    let cdgh0 = _mm_blend_epi16(efgh, cdab, 0xF0);

    let zero = _mm_setzero_si128();
    let (mut abef, mut cdgh) = ([abef0; N], [cdgh0; N]);
    // Message words, four per vector, per lane; five vectors rotate as in FIPS 180-4's
    // schedule (W[t] from W[t-16], W[t-15], W[t-7], W[t-2]).
    let (mut w0, mut w1, mut w2, mut w3, mut w4) =
        ([zero; N], [zero; N], [zero; N], [zero; N], [zero; N]);
    for l in 0..N {
        let b = blocks[l].as_ptr() as *const __m128i;
        w0[l] = _mm_shuffle_epi8(_mm_loadu_si128(b), mask);
        w1[l] = _mm_shuffle_epi8(_mm_loadu_si128(b.add(1)), mask);
        w2[l] = _mm_shuffle_epi8(_mm_loadu_si128(b.add(2)), mask);
        w3[l] = _mm_shuffle_epi8(_mm_loadu_si128(b.add(3)), mask);
    }
    // Macros, not closures or helper functions, so every intrinsic is inlined with
    // this function's target features.
    macro_rules! rounds4 {
        ($w:ident, $group:expr) => {{
            let k = _mm_loadu_si128(K.as_ptr().add(4 * $group) as *const __m128i);
            for l in 0..N {
                let t = _mm_add_epi32($w[l], k);
                cdgh[l] = _mm_sha256rnds2_epu32(cdgh[l], abef[l], t);
                abef[l] = _mm_sha256rnds2_epu32(abef[l], cdgh[l], _mm_shuffle_epi32(t, 0x0E));
            }
        }};
    }
    macro_rules! schedule_rounds4 {
        ($a:ident, $b:ident, $c:ident, $d:ident, $out:ident, $group:expr) => {{
            for l in 0..N {
                let t1 = _mm_sha256msg1_epu32($a[l], $b[l]);
                let t2 = _mm_alignr_epi8($d[l], $c[l], 4);
                $out[l] = _mm_sha256msg2_epu32(_mm_add_epi32(t1, t2), $d[l]);
            }
            rounds4!($out, $group);
        }};
    }
    rounds4!(w0, 0);
    rounds4!(w1, 1);
    rounds4!(w2, 2);
    rounds4!(w3, 3);
    schedule_rounds4!(w0, w1, w2, w3, w4, 4);
    schedule_rounds4!(w1, w2, w3, w4, w0, 5);
    schedule_rounds4!(w2, w3, w4, w0, w1, 6);
    schedule_rounds4!(w3, w4, w0, w1, w2, 7);
    schedule_rounds4!(w4, w0, w1, w2, w3, 8);
    schedule_rounds4!(w0, w1, w2, w3, w4, 9);
    schedule_rounds4!(w1, w2, w3, w4, w0, 10);
    schedule_rounds4!(w2, w3, w4, w0, w1, 11);
    schedule_rounds4!(w3, w4, w0, w1, w2, 12);
    schedule_rounds4!(w4, w0, w1, w2, w3, 13);
    schedule_rounds4!(w0, w1, w2, w3, w4, 14);
    schedule_rounds4!(w1, w2, w3, w4, w0, 15);

    let mut out = [[0u32; 8]; N];
    for l in 0..N {
        let feba = _mm_shuffle_epi32(_mm_add_epi32(abef[l], abef0), 0x1B);
        let dchg = _mm_shuffle_epi32(_mm_add_epi32(cdgh[l], cdgh0), 0xB1);
        let o = out[l].as_mut_ptr() as *mut __m128i;
        _mm_storeu_si128(o, _mm_blend_epi16(feba, dchg, 0xF0));
        _mm_storeu_si128(o.add(1), _mm_alignr_epi8(dchg, feba, 8));
    }
    out
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use sha2::digest::consts::U64;
    use sha2::digest::generic_array::GenericArray;

    fn reference(state: &[u32; 8], block: &[u8; 64]) -> [u32; 8] {
        let mut st = *state;
        sha2::compress256(
            &mut st,
            std::slice::from_ref(GenericArray::<u8, U64>::from_slice(block)),
        );
        st
    }

    #[test]
    fn both_lanes_match_sha2() {
        if !available() {
            eprintln!("no SHA extensions on this CPU: nothing to compare");
            return;
        }
        let mut rng = rand::rngs::StdRng::seed_from_u64(15);
        for _ in 0..2000 {
            let state: [u32; 8] = rng.gen();
            let mut a = [0u8; 64];
            let mut b = [0u8; 64];
            rng.fill(&mut a[..]);
            rng.fill(&mut b[..]);
            // SAFETY: `available()` checked the CPU features.
            let [sa, sb] = unsafe { compress_x2(&state, &a, &b) };
            assert_eq!(sa, reference(&state, &a));
            assert_eq!(sb, reference(&state, &b));
            // SAFETY: as above.
            let four = unsafe { compress_n(&state, [&a, &b, &b, &a]) };
            assert_eq!(four, [sa, sb, sb, sa]);
        }
    }
}
