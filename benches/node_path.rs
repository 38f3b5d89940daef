//! The node's per-transaction paths (issues 15, 8: node CPU per transaction), one
//! block of 1,000 transactions at a time, as `kafkachain node` runs them on v2:
//!
//! - `intake`: parse a submitted record, encode it canonically, offer it to the pool;
//! - `build`: select a block's worth from the pool and build the template (Merkle root);
//! - `apply_rival`: validate and apply another node's block;
//! - `apply_own`: read back the block this node built and published.
//!
//! ```text
//! cargo bench --bench node_path          criterion (wall time)
//! cargo bench --bench node_path -- cpu   CPU time per transaction of each path (thread
//!                                        CPU time, best of 9 runs of 20 blocks: robust
//!                                        on a loaded machine)
//! ```
//!
//! Results in BENCHMARKS.md, "Node CPU per transaction (issues 15, 8)".

mod cpu_clock;

use std::hint::black_box;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use cpu_clock::thread_cpu;
use criterion::{criterion_group, Criterion, Throughput};
use kafkachain::chain::{
    genesis, parse_submitted, BlockTemplate, ChainState, Miner, Origin, Rules, Transaction,
    BLOCK_TX_SEPARATOR_BYTES,
};
use kafkachain::node::pool::Pool;
use serde_json::Number;

const TXS: usize = 1000;
const RULES: Rules = Rules::V2 { difficulty: 8 };

fn records() -> Vec<Vec<u8>> {
    (0..TXS)
        .map(|i| {
            format!(
                r#"{{"from": "sender-{i}", "to": "recipient-{}", "amount": {}}}"#,
                i % 97,
                i % 13 + 1
            )
            .into_bytes()
        })
        .collect()
}

fn origin(offset: usize) -> Origin {
    Origin {
        partition: 0,
        offset: offset as i64,
    }
}

fn filled_pool(records: &[Vec<u8>]) -> Pool {
    let mut pool = Pool::new();
    let now = Instant::now();
    for (i, r) in records.iter().enumerate() {
        let sub = parse_submitted(r).expect("bench record");
        pool.offer(origin(i), Transaction::from_submitted(&sub, origin(i)), now);
    }
    pool
}

fn build(state: &ChainState, pool: &Pool) -> BlockTemplate {
    let mut txs = pool.oldest_within(TXS, usize::MAX, BLOCK_TX_SEPARATOR_BYTES);
    txs.push(Transaction::reward("node-1", &Number::from(1)));
    let tip = state.tip().expect("genesis");
    BlockTemplate::new(tip, RULES, 1_764_079_201.0, &txs)
}

struct Fixture {
    records: Vec<Vec<u8>>,
    genesis_state: ChainState,
    pool: Pool,
    block: Vec<u8>,
}

fn fixture() -> Fixture {
    let records = records();
    let mut genesis_state = ChainState::new();
    genesis_state
        .apply(&genesis(RULES, 1_764_079_200.5))
        .expect("genesis");
    let pool = filled_pool(&records);
    let template = build(&genesis_state, &pool);
    let mined = Miner::new(1)
        .mine(&template.work(), &AtomicBool::new(false))
        .expect("mined");
    let block = template.seal(mined.nonce);
    Fixture {
        records,
        genesis_state,
        pool,
        block,
    }
}

fn bench_node_path(c: &mut Criterion) {
    let Fixture {
        records,
        genesis_state,
        pool,
        block,
    } = fixture();
    let mut g = c.benchmark_group("node_path");
    g.throughput(Throughput::Elements(TXS as u64));
    g.sample_size(30);
    g.bench_function("intake", |b| {
        b.iter(|| black_box(filled_pool(&records).len()))
    });
    g.bench_function("build", |b| {
        b.iter(|| black_box(build(&genesis_state, &pool).index()))
    });
    g.bench_function("apply_rival", |b| {
        b.iter(|| {
            let mut state = genesis_state.clone();
            black_box(state.apply(&block).expect("valid").tx_count)
        })
    });
    g.finish();
}

criterion_group!(benches, bench_node_path);

/// Best of 9 runs of 20 calls of `f` (one block's worth each), in ns per transaction.
fn ns_per_tx(mut f: impl FnMut()) -> f64 {
    (0..9)
        .map(|_| {
            let start = thread_cpu();
            for _ in 0..20 {
                f();
            }
            (thread_cpu() - start).as_nanos() as f64 / (20 * TXS) as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn cpu() {
    let f = fixture();
    let intake = ns_per_tx(|| {
        black_box(filled_pool(&f.records).len());
    });
    let build = ns_per_tx(|| {
        black_box(build(&f.genesis_state, &f.pool).index());
    });
    let apply_rival = ns_per_tx(|| {
        let mut state = f.genesis_state.clone();
        black_box(state.apply(&f.block).expect("valid").tx_count);
    });
    // Proof of work: one thread's v2 attempts (difficulty 64: no early stop).
    let work = kafkachain::chain::Work::v2(
        &kafkachain::chain::pow::v2_header(
            7,
            &kafkachain::chain::BlockHash([3; 32]),
            1.5,
            &kafkachain::chain::MerkleRoot([5; 32]),
            0,
        ),
        64,
    );
    let attempts = 1u64 << 20;
    let ns_per_hash = (0..5)
        .map(|_| {
            let start = thread_cpu();
            black_box(Miner::new(1).grind(&work, attempts));
            (thread_cpu() - start).as_nanos() as f64 / attempts as f64
        })
        .fold(f64::INFINITY, f64::min);
    // The compression alone, one block and N at once (chain::sha_x2).
    #[cfg(target_arch = "x86_64")]
    if kafkachain::chain::sha_x2::available() {
        use kafkachain::chain::sha_x2::compress_n;
        let state = [7u32; 8];
        let blocks = [[1u8; 64], [2u8; 64], [3u8; 64], [4u8; 64]];
        let n = 1u64 << 20;
        let per = |f: &mut dyn FnMut() -> u32, lanes: u64| {
            (0..5)
                .map(|_| {
                    let start = thread_cpu();
                    let mut x = 0u32;
                    for _ in 0..n / lanes {
                        x ^= f();
                    }
                    black_box(x);
                    (thread_cpu() - start).as_nanos() as f64 / n as f64
                })
                .fold(f64::INFINITY, f64::min)
        };
        // SAFETY: `available()` checked the CPU features.
        let x2 = per(
            &mut || unsafe { compress_n(&state, [&blocks[0], &blocks[1]])[1][0] },
            2,
        );
        // SAFETY: as above.
        let x4 = per(
            &mut || unsafe {
                compress_n(&state, [&blocks[0], &blocks[1], &blocks[2], &blocks[3]])[3][0]
            },
            4,
        );
        // SAFETY: as above.
        let x1 = per(&mut || unsafe { compress_n(&state, [&blocks[0]])[0][0] }, 1);
        println!("sha_x2 cpu ns/compression: 1 lane {x1:.1}  2 lanes {x2:.1}  4 lanes {x4:.1}");
    }
    println!(
        "node_path cpu ns/tx: intake {intake:.0}  build {build:.0}  apply_rival {apply_rival:.0}  \
         (v2 pow: {ns_per_hash:.1} ns/attempt)"
    );
}

fn main() {
    if std::env::args().skip(1).any(|a| a == "cpu") {
        cpu();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
