//! Chain-core benchmarks (BENCHMARKS.md, "Chain core").
//!
//!   cargo bench --bench chain                 criterion: block hash, replay, PoW
//!   cargo bench --bench chain -- compare      side by side with python3 running the
//!                                             tutorial's code (python/tutorial_bench.py)
//!   cargo bench --bench chain -- descending 10 20 100
//!                                             replay of seed chains of that many blocks of
//!                                             20,000 transactions whose origins descend by 2
//!                                             (issue 12: replay must stay linear)
//!
//! Both replay the same file, fixtures/bench_seed_chain.jsonl: 1000 blocks of 4
//! transactions mined by the tutorial's own node (Python's `json.dumps(block)`, so
//! keys unsorted: our re-serialising path). Its canonical re-encoding (what our
//! node publishes: the hash-the-bytes fast path) and a v2 chain are measured too.

use std::hint::black_box;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use kafkachain::chain::canonical::to_canonical;
use kafkachain::chain::pow::v2_header;
use kafkachain::chain::{
    genesis, parse_submitted, BlockHash, BlockTemplate, Canonicalizer, ChainState, MerkleRoot,
    Miner, Origin, Rules, Transaction, Work,
};
use serde_json::Number;

fn seed_chain() -> Vec<Vec<u8>> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/bench_seed_chain.jsonl");
    let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn canonical_copy(chain: &[Vec<u8>]) -> Vec<Vec<u8>> {
    chain
        .iter()
        .map(|l| to_canonical(l).expect("bench chain is JSON"))
        .collect()
}

/// A v2 chain of 4-transaction blocks (difficulty 8: replay cost does not depend on it).
fn v2_chain(blocks: usize) -> Vec<Vec<u8>> {
    let rules = Rules::V2 { difficulty: 8 };
    let mut state = ChainState::new();
    let g = genesis(rules, 1_764_079_200.5);
    state.apply(&g).unwrap();
    let mut out = vec![g];
    let miner = Miner::all_cores();
    let mut offset = 0;
    for b in 0..blocks {
        let mut txs = Vec::new();
        for k in 0..3 {
            let msg = format!(r#"{{"from": "alice", "to": "bob", "amount": {}}}"#, k + 1);
            let sub = parse_submitted(msg.as_bytes()).unwrap();
            txs.push(Transaction::from_submitted(
                &sub,
                Origin {
                    partition: 0,
                    offset,
                },
            ));
            offset += 1;
        }
        txs.push(Transaction::reward("node-1", &Number::from(1)));
        let tip = state.tip().unwrap().clone();
        let t = BlockTemplate::new(&tip, rules, 1_764_079_201.0 + b as f64 * 1.37, &txs);
        let m = miner.mine(&t.work(), &AtomicBool::new(false)).unwrap();
        let block = t.seal(m.nonce);
        state.apply(&block).unwrap();
        out.push(block);
    }
    out
}

fn replay(chain: &[Vec<u8>]) -> u64 {
    let mut state = ChainState::new();
    for record in chain {
        let _ = black_box(state.apply(record));
    }
    assert_eq!(
        state.height(),
        chain.len() as u64,
        "bench chain must replay fully"
    );
    state.height()
}

fn seed_work() -> Work {
    Work::seed(b"35293")
}

fn v2_work() -> Work {
    Work::v2(
        &v2_header(
            7,
            &BlockHash([3; 32]),
            1_764_079_200.25,
            &MerkleRoot([5; 32]),
            0,
        ),
        64,
    )
}

const POW_ATTEMPTS: u64 = 1 << 21;

fn bench_hash(c: &mut Criterion) {
    let chain = seed_chain();
    let python_block = chain[chain.len() / 2].clone();
    let canonical_block = to_canonical(&python_block).unwrap();
    let mut g = c.benchmark_group("block_hash");
    g.throughput(Throughput::Elements(1));
    let mut canon = Canonicalizer::new();
    g.bench_function("seed_4tx_canonical_bytes", |b| {
        b.iter(|| canon.sha256(black_box(&canonical_block)).unwrap())
    });
    g.bench_function("seed_4tx_python_format", |b| {
        b.iter(|| canon.sha256(black_box(&python_block)).unwrap())
    });
    g.finish();
}

fn bench_replay(c: &mut Criterion) {
    let python_format = seed_chain();
    let canonical = canonical_copy(&python_format);
    let v2 = v2_chain(1000);
    let mut g = c.benchmark_group("replay");
    for (name, chain) in [
        ("seed_python_format", &python_format),
        ("seed_canonical", &canonical),
        ("v2_canonical", &v2),
    ] {
        g.throughput(Throughput::Elements(chain.len() as u64));
        g.bench_function(name, |b| b.iter(|| replay(chain)));
    }
    g.finish();
}

fn bench_pow(c: &mut Criterion) {
    let mut g = c.benchmark_group("pow");
    g.sample_size(10);
    let all = Miner::all_cores();
    for (name, work) in [("seed", seed_work()), ("v2", v2_work())] {
        for miner in [Miner::new(1), all.clone()] {
            g.throughput(Throughput::Elements(POW_ATTEMPTS * miner.threads() as u64));
            g.bench_function(format!("{name}_{}_threads", miner.threads()), |b| {
                b.iter(|| miner.grind(&work, POW_ATTEMPTS))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench_hash, bench_replay, bench_pow);

/// Best-of-`runs` rate of `f`, which performs `units` units of work per call.
fn rate(runs: usize, min: Duration, units: u64, mut f: impl FnMut()) -> f64 {
    let mut best = 0f64;
    for _ in 0..runs {
        let start = Instant::now();
        let mut done = 0u64;
        while start.elapsed() < min {
            f();
            done += units;
        }
        best = best.max(done as f64 / start.elapsed().as_secs_f64());
    }
    best
}

/// Rust and python3 side by side, measured in one run on this machine.
fn compare() {
    let python_format = seed_chain();
    let canonical = canonical_copy(&python_format);
    let v2 = v2_chain(1000);
    let n = python_format.len() as u64;
    let one = Miner::new(1);
    let all = Miner::all_cores();
    let attempts = 1 << 20;
    let second = Duration::from_secs(1);
    let rust = [
        (
            "pow seed, 1 thread (hashes/s)",
            rate(3, second, attempts, || {
                black_box(one.grind(&seed_work(), attempts));
            }),
        ),
        (
            "pow seed, all threads (hashes/s)",
            rate(3, second, attempts * all.threads() as u64, || {
                black_box(all.grind(&seed_work(), attempts));
            }),
        ),
        (
            "pow v2, 1 thread (hashes/s)",
            rate(3, second, attempts, || {
                black_box(one.grind(&v2_work(), attempts));
            }),
        ),
        (
            "pow v2, all threads (hashes/s)",
            rate(3, second, attempts * all.threads() as u64, || {
                black_box(all.grind(&v2_work(), attempts));
            }),
        ),
        (
            "replay seed, python format (blocks/s)",
            rate(3, second, n, || {
                black_box(replay(&python_format));
            }),
        ),
        (
            "replay seed, canonical (blocks/s)",
            rate(3, second, n, || {
                black_box(replay(&canonical));
            }),
        ),
        (
            "replay v2, canonical (blocks/s)",
            rate(3, second, v2.len() as u64, || {
                black_box(replay(&v2));
            }),
        ),
    ];
    // The real entry point (chunked scheduling, cancel checks): mine v2 blocks at
    // difficulty 24 (~16.8 M attempts each) and count the attempts it reports.
    let (mut hashes, started) = (0u64, Instant::now());
    for i in 0..8u64 {
        let work = Work::v2(
            &v2_header(i, &BlockHash([9; 32]), 1.0, &MerkleRoot([i as u8; 32]), 0),
            24,
        );
        hashes += all
            .mine(&work, &AtomicBool::new(false))
            .map_or(0, |m| m.hashes);
    }
    let mine_rate = hashes as f64 / started.elapsed().as_secs_f64();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("python/tutorial_bench.py");
    let py = Command::new("python3")
        .arg(&script)
        .args(["--json", "--seconds", "3"])
        .output();
    let py: Option<serde_json::Value> = match py {
        Ok(out) if out.status.success() => serde_json::from_slice(&out.stdout).ok(),
        Ok(out) => {
            eprintln!(
                "python3 {} failed: {}",
                script.display(),
                String::from_utf8_lossy(&out.stderr)
            );
            None
        }
        Err(e) => {
            eprintln!("cannot run python3: {e}");
            None
        }
    };
    let py_pow = py.as_ref().and_then(|v| v["pow_hashes_per_s"].as_f64());
    let py_replay = py.as_ref().and_then(|v| v["replay_blocks_per_s"].as_f64());
    println!("threads available: {}", all.threads());
    println!(
        "{:<40} {:>14} {:>14} {:>9}",
        "measure", "rust", "python3", "ratio"
    );
    for (name, r) in rust {
        let p = if name.starts_with("pow seed") {
            py_pow
        } else if name.starts_with("replay seed") {
            py_replay
        } else {
            None
        };
        match p {
            Some(p) => println!("{name:<40} {r:>14.0} {p:>14.0} {:>8.1}x", r / p),
            None => println!("{name:<40} {r:>14.0} {:>14} {:>9}", "-", "-"),
        }
    }
    println!(
        "{:<40} {mine_rate:>14.0} {:>14} {:>9}",
        "Miner::mine v2, all threads (hashes/s)", "-", "-"
    );
    if let Some(v) = py {
        println!("python: {v}");
    }
}

/// Tutorial-valid (seed) blocks of 20,000 transactions each, origins descending by 2
/// over the whole chain: the worst order for a sorted-vector origin set.
fn descending_chain(blocks: usize) -> Vec<Vec<u8>> {
    const TXS: i64 = 20_000;
    let mut state = ChainState::new();
    let g = genesis(Rules::Seed, 1_764_079_200.5);
    state.apply(&g).unwrap();
    let mut out = vec![g];
    let miner = Miner::all_cores();
    let sub = parse_submitted(br#"{"from": "alice", "to": "bob", "amount": 1}"#).unwrap();
    let top = 2 * TXS * blocks as i64;
    for b in 0..blocks as i64 {
        let txs: Vec<Transaction> = (0..TXS)
            .map(|j| {
                let offset = top - 2 * (b * TXS + j);
                Transaction::from_submitted(
                    &sub,
                    Origin {
                        partition: 0,
                        offset,
                    },
                )
            })
            .collect();
        let tip = state.tip().unwrap().clone();
        let t = BlockTemplate::new(&tip, Rules::Seed, 1_764_079_201.0 + b as f64, &txs);
        let m = miner.mine(&t.work(), &AtomicBool::new(false)).unwrap();
        let block = t.seal(m.nonce);
        state.apply(&block).unwrap();
        out.push(block);
    }
    out
}

/// `descending N...`: one timed replay per chain length, printed as a table row.
fn descending(lengths: &[usize]) {
    let longest = lengths.iter().copied().max().unwrap_or(0);
    let chain = descending_chain(longest);
    println!("| blocks | transactions | replay (s) | µs per transaction |");
    println!("|---:|---:|---:|---:|");
    for &n in lengths {
        let started = Instant::now();
        replay(&chain[..=n]);
        let secs = started.elapsed().as_secs_f64();
        let txs = n as f64 * 20_000.0;
        println!(
            "| {n} | {} | {secs:.3} | {:.3} |",
            n * 20_000,
            secs * 1e6 / txs
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "compare") {
        compare();
        return;
    }
    if let Some(at) = args.iter().position(|a| a == "descending") {
        let lengths: Vec<usize> = args[at + 1..]
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect();
        descending(if lengths.is_empty() {
            &[10, 20, 100]
        } else {
            &lengths
        });
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
