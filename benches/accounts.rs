//! Accounts replay benchmark (BENCHMARKS.md, "Accounts"):
//!
//!   cargo bench --bench accounts            criterion (wall clock)
//!   cargo bench --bench accounts -- cpu     transfers per CPU-second of the replaying
//!                                           thread, next to ed25519 verifies (alone and
//!                                           in batches, dalek's and the chain's rule)
//!                                           and a v2 chain of the same shape
//!   cargo bench --bench accounts -- memory  heap bytes a replayed chain's state keeps,
//!                                           for growing chain lengths and account counts
//!
//! The CPU-time mode exists because the shared machine runs many jobs at once: wall
//! time there measures the scheduler, thread CPU time measures the code.
//!
//! Replays a mined accounts chain (200 blocks x 250 signed transfers over 1000
//! accounts, 50,000 transfers) from its bytes: JSON parsing, header proof of work,
//! Merkle root, batch signature verification and the balance/nonce updates, on one
//! core. Throughput is in transfers per second.

mod cpu_clock;

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};

use ed25519_dalek::Signer;

use cpu_clock::thread_cpu;
use criterion::{criterion_group, Criterion, Throughput};
use kafkachain::bench::accounts::{build_chain, for_each_block};
use kafkachain::chain::accounts::sigcheck::{self, Item};
use kafkachain::chain::ChainState;

const BLOCKS: usize = 200;
const PER_BLOCK: usize = 250;

fn replay(chain: &[Vec<u8>]) -> u64 {
    let mut state = ChainState::new();
    for record in chain {
        let _ = black_box(state.apply(record));
    }
    assert_eq!(state.height(), chain.len() as u64, "must replay fully");
    state.height()
}

fn bench_accounts_replay(c: &mut Criterion) {
    // `cargo test --all-targets` runs this once without `--bench` (an unoptimised
    // smoke test): a small chain keeps that quick.
    let (blocks, per_block) = if std::env::args().any(|a| a == "--bench") {
        (BLOCKS, PER_BLOCK)
    } else {
        (4, 25)
    };
    let chain = build_chain(1000, blocks, per_block);
    assert_eq!(chain.len(), blocks + 1);
    let mut g = c.benchmark_group("accounts_replay");
    g.sample_size(10);
    g.throughput(Throughput::Elements((blocks * per_block) as u64));
    g.bench_function(format!("{blocks}x{per_block}_transfers"), |b| {
        b.iter(|| replay(&chain))
    });
    g.finish();
}

criterion_group!(benches, bench_accounts_replay);

/// Best of `runs` rates of `f` (`units` per call), in units per CPU-second.
fn cpu_rate(runs: usize, units: u64, mut f: impl FnMut()) -> f64 {
    (0..runs)
        .map(|_| {
            let start = thread_cpu();
            f();
            units as f64 / (thread_cpu() - start).as_secs_f64().max(1e-9)
        })
        .fold(0.0, f64::max)
}

fn cpu() {
    let transfers = (BLOCKS * PER_BLOCK) as u64;
    let chain = build_chain(1000, BLOCKS, PER_BLOCK);
    let accounts = cpu_rate(3, transfers, || {
        replay(&chain);
    });
    // The node's default block size (`kafkachain bench --block-size 1000`).
    let big = build_chain(1000, transfers as usize / 1000, 1000);
    let accounts_1000 = cpu_rate(3, transfers, || {
        replay(&big);
    });
    // One signature alone, under dalek's cofactorless `verify_strict` and under the
    // chain's rule (sigcheck, cofactored).
    let key = ed25519_dalek::SigningKey::from_bytes(&[1; 32]);
    let msg = [7u8; 143];
    let sig = key.sign(&msg);
    let vk = key.verifying_key();
    let single = cpu_rate(3, 20_000, || {
        for _ in 0..20_000 {
            black_box(vk.verify_strict(black_box(&msg), &sig)).ok();
        }
    });
    let sig_bytes = sig.to_bytes();
    let single_rule = cpu_rate(3, 20_000, || {
        for _ in 0..20_000 {
            black_box(sigcheck::verify(&Item {
                key: &vk,
                msg: black_box(&msg),
                sig: &sig_bytes,
            }));
        }
    });
    // Batches of 1000 signatures by 1000 keys (a block's worth): dalek's cofactorless
    // `verify_batch` (the old block rule) against sigcheck's cofactored one.
    let keys: Vec<ed25519_dalek::SigningKey> = (0..1000u32)
        .map(|i| {
            let mut seed = [0u8; 32];
            seed[..4].copy_from_slice(&i.to_le_bytes());
            ed25519_dalek::SigningKey::from_bytes(&seed)
        })
        .collect();
    let vks: Vec<ed25519_dalek::VerifyingKey> = keys.iter().map(|k| k.verifying_key()).collect();
    let msgs: Vec<[u8; 143]> = (0..1000u32)
        .map(|i| {
            let mut m = [7u8; 143];
            m[..4].copy_from_slice(&i.to_le_bytes());
            m
        })
        .collect();
    let sigs: Vec<ed25519_dalek::Signature> =
        keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
    let sig_bytes: Vec<[u8; 64]> = sigs.iter().map(|s| s.to_bytes()).collect();
    let refs: Vec<&[u8]> = msgs.iter().map(|m| &m[..]).collect();
    let dalek_batch = cpu_rate(3, 5_000, || {
        for _ in 0..5 {
            assert!(ed25519_dalek::verify_batch(&refs, &sigs, &vks).is_ok());
        }
    });
    let items: Vec<Item> = (0..1000)
        .map(|i| Item {
            key: &vks[i],
            msg: &msgs[i],
            sig: &sig_bytes[i],
        })
        .collect();
    let rule_batch = cpu_rate(3, 5_000, || {
        for _ in 0..5 {
            assert!(sigcheck::verify_batch(black_box(&items)));
        }
    });
    let v2 = v2_chain(BLOCKS, PER_BLOCK);
    let v2_rate = cpu_rate(3, transfers, || {
        replay(&v2);
    });
    println!(
        "accounts replay:       {accounts:>10.0} transfers per CPU-second ({PER_BLOCK} per block)"
    );
    println!(
        "accounts replay:       {accounts_1000:>10.0} transfers per CPU-second (1000 per block)"
    );
    println!("ed25519 verify_strict: {single:>10.0} signatures per CPU-second");
    println!("sigcheck::verify:      {single_rule:>10.0} signatures per CPU-second (the chain's rule, alone)");
    println!("dalek verify_batch:    {dalek_batch:>10.0} signatures per CPU-second (1000 keys per batch; the old rule)");
    println!("sigcheck::verify_batch:{rule_batch:>10.0} signatures per CPU-second (1000 keys per batch; the chain's rule)");
    println!("v2 replay, same shape: {v2_rate:>10.0} transactions per CPU-second");
    println!(
        "accounts / single verify = {:.2}, accounts / v2 = {:.3}",
        accounts / single,
        accounts / v2_rate
    );
}

/// A v2 chain with the same block shape (tutorial transactions instead of transfers).
fn v2_chain(blocks: usize, per_block: usize) -> Vec<Vec<u8>> {
    use kafkachain::chain::{
        genesis, parse_submitted, BlockTemplate, Miner, Origin, Rules, Transaction,
    };
    let mut state = ChainState::new();
    let g = genesis(Rules::V2 { difficulty: 4 }, 1.0);
    state.apply(&g).expect("genesis");
    let mut out = vec![g];
    let sub = parse_submitted(br#"{"from": "alice", "to": "bob", "amount": 1}"#).expect("tx");
    let mut offset = 0;
    for _ in 0..blocks {
        let txs: Vec<Transaction> = (0..per_block)
            .map(|_| {
                offset += 1;
                Transaction::from_submitted(
                    &sub,
                    Origin {
                        partition: 0,
                        offset,
                    },
                )
            })
            .collect();
        let tip = state.tip().expect("tip").clone();
        let t = BlockTemplate::new(
            &tip,
            state.rules().expect("rules"),
            tip.timestamp + 1.0,
            &txs,
        );
        let m = Miner::new(1)
            .mine(&t.work(), &std::sync::atomic::AtomicBool::new(false))
            .expect("mined");
        let block = t.seal(m.nonce);
        state.apply(&block).expect("valid");
        out.push(block);
    }
    out
}

/// Counts the heap bytes currently allocated (for the `memory` mode).
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the counter only
// observes sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Heap bytes a `ChainState` holds after replaying a generated chain (the generator's
/// own state is gone by then), and the ledger's account count.
fn state_bytes(senders: usize, blocks: usize, per_block: usize) -> (isize, usize) {
    let before = LIVE.load(Ordering::Relaxed);
    let mut state = ChainState::new();
    for_each_block(senders, blocks, per_block, |b| {
        let _ = state.apply(b);
    });
    assert_eq!(state.height(), blocks as u64 + 1, "must replay fully");
    let accounts = state.accounts().map_or(0, |l| l.len());
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    drop(state);
    (bytes, accounts)
}

/// Node state memory: by chain length with the accounts fixed, then by accounts with
/// the chain length fixed (250 transfers per block).
fn memory() {
    println!("transfers  blocks  accounts  state bytes  bytes/transfer  bytes/account");
    let row = |senders: usize, blocks: usize| {
        let (bytes, accounts) = state_bytes(senders, blocks, 250);
        let transfers = blocks * 250;
        println!(
            "{transfers:>9}  {blocks:>6}  {accounts:>8}  {bytes:>11}  {:>14.2}  {:>13.1}",
            bytes as f64 / transfers as f64,
            bytes as f64 / accounts as f64
        );
    };
    for blocks in [40, 160, 640] {
        row(1000, blocks);
    }
    for senders in [4000, 16000] {
        row(senders, 160);
    }
}

fn main() {
    if std::env::args().skip(1).any(|a| a == "cpu") {
        cpu();
        return;
    }
    if std::env::args().skip(1).any(|a| a == "memory") {
        memory();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
