//! Proof of work: the miner's inner loops and the checks the validator uses.
//!
//! The inner loops do no allocation and no hex formatting per attempt. Seed rule
//! (`sha256(f"{last_proof}{proof}").hexdigest()[:4] == "0000"`): the decimal proof
//! is kept as ASCII inside the final SHA-256 block and incremented in place, whole
//! 64-byte blocks of the `str(last_proof)` prefix are absorbed once (midstate), and
//! "four hex zeros" is "the first 16 bits of the digest are zero". v2 rule: the
//! first 64 of the 88 header bytes never change, so each attempt is one compression
//! of the last block from a midstate.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use sha2::digest::consts::U64;
use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha256};

use super::hash::{BlockHash, MerkleRoot};

/// SHA-256 initial state (FIPS 180-4 §5.3.3).
const H0: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// Attempts between looks at the cancel flag: ~0.2 ms of work, so cancelling is prompt
/// and the atomics cost nothing measurable.
const CHUNK: u64 = 1 << 12;

/// Length of the v2 binary header.
pub const V2_HEADER_LEN: usize = 88;

#[inline]
fn compress(state: &mut [u32; 8], block: &[u8]) {
    sha2::compress256(
        state,
        std::slice::from_ref(GenericArray::<u8, U64>::from_slice(block)),
    );
}

#[cfg(test)]
fn state_bytes(state: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (chunk, w) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&w.to_be_bytes());
    }
    out
}

/// Leading zero bits of a digest given as SHA-256 state words.
#[inline]
fn leading_zero_bits(state: &[u32; 8]) -> u32 {
    let mut n = 0;
    for w in state {
        if *w != 0 {
            return n + w.leading_zeros();
        }
        n += 32;
    }
    n
}

/// Leading zero bits of a 32-byte hash.
pub fn hash_leading_zero_bits(hash: &[u8; 32]) -> u32 {
    let mut n = 0;
    for b in hash {
        if *b != 0 {
            return n + b.leading_zeros();
        }
        n += 8;
    }
    n
}

/// The tutorial's `valid_proof`: `str(last_proof) + str(proof)` hashes to four
/// leading hex zeros. Arguments are the Python `str()` forms, UTF-8 encoded.
pub fn seed_valid_proof(last_proof: &[u8], proof: &[u8]) -> bool {
    let d = Sha256::new()
        .chain_update(last_proof)
        .chain_update(proof)
        .finalize();
    d[0] == 0 && d[1] == 0
}

/// The v2 binary header: index (u64 BE) ‖ previous block hash ‖ timestamp (f64 bits
/// BE) ‖ Merkle root ‖ nonce (u64 BE).
pub fn v2_header(
    index: u64,
    previous: &BlockHash,
    timestamp: f64,
    merkle: &MerkleRoot,
    nonce: u64,
) -> [u8; V2_HEADER_LEN] {
    let mut h = [0u8; V2_HEADER_LEN];
    h[0..8].copy_from_slice(&index.to_be_bytes());
    h[8..40].copy_from_slice(&previous.0);
    h[40..48].copy_from_slice(&timestamp.to_bits().to_be_bytes());
    h[48..80].copy_from_slice(&merkle.0);
    h[80..88].copy_from_slice(&nonce.to_be_bytes());
    h
}

/// A v2 block's hash: SHA-256 of its header.
pub fn v2_header_hash(header: &[u8; V2_HEADER_LEN]) -> BlockHash {
    BlockHash(Sha256::digest(header).into())
}

/// What the miner needs to search for a nonce. Cheap to clone and shareable.
#[derive(Clone, Debug)]
pub struct Work {
    kind: WorkKind,
}

#[derive(Clone, Debug)]
enum WorkKind {
    Seed {
        /// `str(last_proof)` as UTF-8.
        prefix: Vec<u8>,
    },
    V2 {
        /// State after the fixed first 64 header bytes.
        midstate: [u32; 8],
        /// The second (final) SHA-256 block with padding; bytes 16..24 take the nonce.
        last_block: [u8; 64],
        difficulty: u32,
    },
}

impl Work {
    /// Seed-rule work given Python's `str(last_proof)`.
    pub fn seed(last_proof_str: &[u8]) -> Self {
        Self {
            kind: WorkKind::Seed {
                prefix: last_proof_str.to_vec(),
            },
        }
    }

    /// v2 work for a header (its nonce field is ignored).
    pub fn v2(header: &[u8; V2_HEADER_LEN], difficulty: u32) -> Self {
        let mut midstate = H0;
        compress(&mut midstate, &header[..64]);
        let mut last_block = [0u8; 64];
        last_block[..24].copy_from_slice(&header[64..88]);
        last_block[24] = 0x80;
        last_block[56..64].copy_from_slice(&((V2_HEADER_LEN as u64) * 8).to_be_bytes());
        Self {
            kind: WorkKind::V2 {
                midstate,
                last_block,
                difficulty,
            },
        }
    }

    /// Whether `nonce` solves this work (the slow, obvious way; used by tests).
    pub fn check(&self, nonce: u64) -> bool {
        match &self.kind {
            WorkKind::Seed { prefix } => seed_valid_proof(prefix, nonce.to_string().as_bytes()),
            WorkKind::V2 {
                midstate,
                last_block,
                difficulty,
            } => {
                let mut block = *last_block;
                block[16..24].copy_from_slice(&nonce.to_be_bytes());
                let mut st = *midstate;
                compress(&mut st, &block);
                leading_zero_bits(&st) >= *difficulty
            }
        }
    }

    /// Searches `[start, start + count)`; returns the first solving nonce, if any.
    fn search(&self, start: u64, count: u64) -> Option<u64> {
        match &self.kind {
            WorkKind::Seed { prefix } => SeedSearch::new(prefix, start).run(start, count),
            WorkKind::V2 {
                midstate,
                last_block,
                difficulty,
            } => {
                let mut block = *last_block;
                let end = start.saturating_add(count);
                #[cfg(target_arch = "x86_64")]
                if super::sha_x2::available() {
                    return search_v2_x2(midstate, last_block, *difficulty, start, end);
                }
                for nonce in start..end {
                    block[16..24].copy_from_slice(&nonce.to_be_bytes());
                    let mut st = *midstate;
                    compress(&mut st, &block);
                    if leading_zero_bits(&st) >= *difficulty {
                        return Some(nonce);
                    }
                }
                None
            }
        }
    }
}

/// The v2 search two nonces at a time ([`super::sha_x2`]): the same nonces in the same
/// order as the one-at-a-time loop, so the same first solution.
#[cfg(target_arch = "x86_64")]
fn search_v2_x2(
    midstate: &[u32; 8],
    last_block: &[u8; 64],
    difficulty: u32,
    start: u64,
    end: u64,
) -> Option<u64> {
    let (mut a, mut b) = (*last_block, *last_block);
    let mut nonce = start;
    while nonce < end {
        let second = nonce.checked_add(1).filter(|n| *n < end);
        a[16..24].copy_from_slice(&nonce.to_be_bytes());
        b[16..24].copy_from_slice(&second.unwrap_or(nonce).to_be_bytes());
        // SAFETY: the caller checked `sha_x2::available()`.
        let [sa, sb] = unsafe { super::sha_x2::compress_x2(midstate, &a, &b) };
        if leading_zero_bits(&sa) >= difficulty {
            return Some(nonce);
        }
        let second = second?;
        if leading_zero_bits(&sb) >= difficulty {
            return Some(second);
        }
        nonce = second + 1;
    }
    None
}

/// Seed-rule search state: the message tail (the part of `str(last_proof)` past the
/// last whole block, then the decimal nonce, then padding) lives in `tail`, and the
/// nonce digits are incremented there in place.
struct SeedSearch<'p> {
    prefix: &'p [u8],
    midstate: [u32; 8],
    tail: [u8; 128],
    digits_at: usize,
    digits_len: usize,
    blocks: usize,
}

impl<'p> SeedSearch<'p> {
    fn new(prefix: &'p [u8], nonce: u64) -> Self {
        let whole = prefix.len() / 64 * 64;
        let mut midstate = H0;
        for block in prefix[..whole].chunks_exact(64) {
            compress(&mut midstate, block);
        }
        let mut s = Self {
            prefix,
            midstate,
            tail: [0; 128],
            digits_at: prefix.len() - whole,
            digits_len: 0,
            blocks: 1,
        };
        s.layout(nonce);
        s
    }

    /// Rebuilds the tail for `nonce` (needed when its digit count changes).
    fn layout(&mut self, nonce: u64) {
        let whole = self.prefix.len() / 64 * 64;
        let rem = &self.prefix[whole..];
        self.tail = [0; 128];
        self.tail[..rem.len()].copy_from_slice(rem);
        let mut digits = [0u8; 20];
        let mut n = nonce;
        let mut k = 20;
        loop {
            k -= 1;
            digits[k] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.digits_len = 20 - k;
        self.tail[self.digits_at..self.digits_at + self.digits_len].copy_from_slice(&digits[k..]);
        let tail_len = self.digits_at + self.digits_len;
        self.tail[tail_len] = 0x80;
        self.blocks = if tail_len + 9 <= 64 { 1 } else { 2 };
        let bits = ((self.prefix.len() + self.digits_len) as u64) * 8;
        let end = self.blocks * 64;
        self.tail[end - 8..end].copy_from_slice(&bits.to_be_bytes());
    }

    /// Adds one to the decimal nonce in place; false when it gained a digit.
    #[inline]
    fn increment(&mut self) -> bool {
        let digits = &mut self.tail[self.digits_at..self.digits_at + self.digits_len];
        for d in digits.iter_mut().rev() {
            if *d == b'9' {
                *d = b'0';
            } else {
                *d += 1;
                return true;
            }
        }
        false
    }

    #[inline]
    fn hit(&self) -> bool {
        let mut st = self.midstate;
        compress(&mut st, &self.tail[..64]);
        if self.blocks == 2 {
            compress(&mut st, &self.tail[64..128]);
        }
        st[0] >> 16 == 0
    }

    fn run(&mut self, start: u64, count: u64) -> Option<u64> {
        let end = start.saturating_add(count);
        let mut nonce = start;
        while nonce < end {
            if self.hit() {
                return Some(nonce);
            }
            nonce += 1;
            if !self.increment() {
                self.layout(nonce);
            }
        }
        None
    }
}

/// A found nonce and how many attempts it took (for the hash rate).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mined {
    pub nonce: u64,
    pub hashes: u64,
}

/// A multi-threaded nonce search. Threads take chunks of the nonce space in
/// increasing order and always finish the chunk they hold, so the nonce found is the
/// *smallest* solution — the same proof the tutorial's sequential `proof_of_work`
/// finds, whatever the thread count.
#[derive(Clone, Debug)]
pub struct Miner {
    threads: usize,
}

impl Miner {
    pub fn new(threads: usize) -> Self {
        Self {
            threads: threads.max(1),
        }
    }

    /// One thread per available core.
    pub fn all_cores() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Searches from nonce 0 until a solution is found (`Some`) or `cancel` is set (`None`).
    pub fn mine(&self, work: &Work, cancel: &AtomicBool) -> Option<Mined> {
        let next_chunk = AtomicU64::new(0);
        let best = AtomicU64::new(u64::MAX);
        let hashes = AtomicU64::new(0);
        let worker = || loop {
            if cancel.load(Ordering::Relaxed) || best.load(Ordering::Acquire) != u64::MAX {
                return;
            }
            let chunk = next_chunk.fetch_add(1, Ordering::Relaxed);
            let Some(start) = chunk.checked_mul(CHUNK) else {
                return;
            };
            match work.search(start, CHUNK) {
                Some(nonce) => {
                    hashes.fetch_add(nonce - start + 1, Ordering::Relaxed);
                    best.fetch_min(nonce, Ordering::AcqRel);
                    return;
                }
                None => {
                    hashes.fetch_add(CHUNK, Ordering::Relaxed);
                }
            }
        };
        if self.threads == 1 {
            worker();
        } else {
            std::thread::scope(|s| {
                for _ in 1..self.threads {
                    s.spawn(worker);
                }
                worker();
            });
        }
        let nonce = best.load(Ordering::Acquire);
        (nonce != u64::MAX).then(|| Mined {
            nonce,
            hashes: hashes.load(Ordering::Relaxed),
        })
    }

    /// Hashes for `attempts` nonces without stopping at solutions: the raw rate the
    /// benchmarks report. Returns the number of solutions seen (so the work is not
    /// optimised away).
    pub fn grind(&self, work: &Work, attempts_per_thread: u64) -> u64 {
        let found = AtomicU64::new(0);
        let run = |t: u64| {
            let mut start = t * attempts_per_thread;
            let end = start + attempts_per_thread;
            let mut n = 0;
            while start < end {
                match work.search(start, end - start) {
                    Some(x) => {
                        n += 1;
                        start = x + 1;
                    }
                    None => break,
                }
            }
            found.fetch_add(n, Ordering::Relaxed);
        };
        std::thread::scope(|s| {
            for t in 1..self.threads {
                s.spawn(move || run(t as u64));
            }
            run(0);
        });
        found.load(Ordering::Relaxed)
    }
}

/// The digest the seed search computes for `nonce`, for comparison with plain SHA-256.
#[cfg(test)]
fn midstate_digest_for_test(prefix: &[u8], nonce: u64) -> [u8; 32] {
    let mut s = SeedSearch::new(prefix, nonce);
    let mut st = s.midstate;
    compress(&mut st, &s.tail[..64]);
    if s.blocks == 2 {
        compress(&mut st, &s.tail[64..128]);
    }
    s.increment();
    state_bytes(&st)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn py_proof_of_work(last: u64) -> u64 {
        let mut p = 0u64;
        while !seed_valid_proof(last.to_string().as_bytes(), p.to_string().as_bytes()) {
            p += 1;
        }
        p
    }

    #[test]
    fn midstate_tail_matches_plain_sha256() {
        for plen in [0usize, 1, 5, 54, 55, 56, 63, 64, 65, 100, 127, 128, 200] {
            let prefix: Vec<u8> = (0..plen).map(|i| b'0' + (i % 10) as u8).collect();
            for nonce in [0u64, 9, 10, 99999, 123456789, u64::MAX] {
                let mut msg = prefix.clone();
                msg.extend_from_slice(nonce.to_string().as_bytes());
                let want: [u8; 32] = Sha256::digest(&msg).into();
                assert_eq!(
                    midstate_digest_for_test(&prefix, nonce),
                    want,
                    "plen {plen} nonce {nonce}"
                );
            }
        }
    }

    #[test]
    fn increments_across_digit_boundaries() {
        let prefix = vec![b'7'; 60];
        let mut s = SeedSearch::new(&prefix, 95);
        for nonce in 95u64..1005 {
            let mut msg = prefix.clone();
            msg.extend_from_slice(nonce.to_string().as_bytes());
            let d = Sha256::digest(&msg);
            assert_eq!(s.hit(), d[0] == 0 && d[1] == 0);
            let mut st = s.midstate;
            compress(&mut st, &s.tail[..64]);
            if s.blocks == 2 {
                compress(&mut st, &s.tail[64..128]);
            }
            assert_eq!(state_bytes(&st), <[u8; 32]>::from(d), "nonce {nonce}");
            if !s.increment() {
                s.layout(nonce + 1);
            }
        }
    }

    #[test]
    fn miner_finds_the_tutorials_proof_with_any_thread_count() {
        let cancel = AtomicBool::new(false);
        for last in [100u64, 35293, 35089] {
            let want = py_proof_of_work(last);
            for threads in [1, 2, 3] {
                let got = Miner::new(threads)
                    .mine(&Work::seed(last.to_string().as_bytes()), &cancel)
                    .unwrap();
                assert_eq!(got.nonce, want, "last {last} threads {threads}");
            }
        }
    }

    #[test]
    fn v2_work_matches_header_hash() {
        let header = v2_header(2, &BlockHash([7; 32]), 1.5, &MerkleRoot([9; 32]), 0);
        let work = Work::v2(&header, 12);
        let m = Miner::new(2).mine(&work, &AtomicBool::new(false)).unwrap();
        let solved = v2_header(2, &BlockHash([7; 32]), 1.5, &MerkleRoot([9; 32]), m.nonce);
        assert!(hash_leading_zero_bits(&v2_header_hash(&solved).0) >= 12);
        assert!(work.check(m.nonce));
        for n in 0..m.nonce {
            assert!(!work.check(n));
        }
    }

    /// The v2 search (two nonces at a time where the CPU can) finds the first solving
    /// nonce of any range, odd or even, as `check` one by one does.
    #[test]
    fn v2_search_finds_the_first_solution_of_every_range() {
        let header = v2_header(9, &BlockHash([1; 32]), 2.5, &MerkleRoot([4; 32]), 0);
        let work = Work::v2(&header, 6);
        let solutions: Vec<u64> = (0..3000).filter(|n| work.check(*n)).collect();
        assert!(solutions.len() > 20, "difficulty 6: about 47 in 3000");
        for start in [0u64, 1, 2, 7, 100, 101, 1999] {
            for count in [0u64, 1, 2, 3, 64, 65, 1000] {
                let want = solutions
                    .iter()
                    .copied()
                    .find(|n| *n >= start && *n < start + count);
                assert_eq!(work.search(start, count), want, "{start}+{count}");
            }
        }
        let near_end = Work::v2(&header, 0);
        assert_eq!(near_end.search(u64::MAX - 1, 5), Some(u64::MAX - 1));
    }

    #[test]
    fn cancel_stops_the_miner() {
        let header = v2_header(2, &BlockHash::ZERO, 0.0, &MerkleRoot::ZERO, 0);
        let cancel = AtomicBool::new(true);
        assert_eq!(Miner::new(2).mine(&Work::v2(&header, 256), &cancel), None);
    }
}

/// Tests written against mutants that `cargo mutants -f 'src/chain/**/*.rs'` found
/// surviving (docs/testing.md, "Mutation testing").
#[cfg(test)]
mod mutant_tests {
    use super::*;

    /// The miner counts zero bits on SHA-256 state words. A hash whose first word is
    /// zero (32 or more zero bits: never reached by a test's difficulty) must count on
    /// into the next words, exactly as the byte-wise count the replay uses.
    #[test]
    fn zero_bits_of_state_words_agree_with_the_bytes_past_the_first_word() {
        let mut states = vec![[0u32; 8], [u32::MAX; 8]];
        for lead_words in 0..8 {
            for bits in [0, 1, 7, 31] {
                let mut s = [0xdead_beefu32; 8];
                s[..lead_words].fill(0);
                s[lead_words] = u32::MAX >> bits;
                states.push(s);
            }
        }
        for s in states {
            assert_eq!(
                leading_zero_bits(&s),
                hash_leading_zero_bits(&state_bytes(&s)),
                "{s:08x?}"
            );
        }
        let mut s = [0u32; 8];
        s[1] = 1 << 27;
        assert_eq!(leading_zero_bits(&s), 36);
        assert_eq!(leading_zero_bits(&[0; 8]), 256);
    }
}
