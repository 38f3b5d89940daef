//! Accounts replay benchmark (BENCHMARKS.md, "Accounts"):
//!
//!   cargo bench --bench accounts
//!
//! Replays a mined accounts chain (200 blocks x 250 signed transfers over 1000
//! accounts, 50,000 transfers) from its bytes: JSON parsing, header proof of work,
//! Merkle root, batch signature verification and the balance/nonce updates, on one
//! core. Throughput is in transfers per second.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafkachain::bench::accounts::build_chain;
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
    let chain = build_chain(1000, BLOCKS, PER_BLOCK);
    assert_eq!(chain.len(), BLOCKS + 1);
    let mut g = c.benchmark_group("accounts_replay");
    g.sample_size(10);
    g.throughput(Throughput::Elements((BLOCKS * PER_BLOCK) as u64));
    g.bench_function("200x250_transfers", |b| b.iter(|| replay(&chain)));
    g.finish();
}

criterion_group!(benches, bench_accounts_replay);
criterion_main!(benches);
