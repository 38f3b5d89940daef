#!/usr/bin/env python3
"""The Python side of BENCHMARKS.md "Chain core": the tutorial's own code, timed.

  python3 python/tutorial_bench.py [--chain FILE] [--seconds S] [--json]

Measures, on one core:
  * pow_hashes_per_s   : the tutorial's proof_of_work loop (valid_proof per attempt)
  * replay_blocks_per_s: the tutorial's replay of FILE (json.loads + valid_block per record)

FILE defaults to fixtures/bench_seed_chain.jsonl: 1000 blocks of 4 transactions
(3 + reward) mined by the tutorial's node; `--make-chain N` regenerates it
(about a minute of Python proof of work per 1000 blocks).
"""
import argparse
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_vectors import Blockchain, mine_chain, tutorial_replay  # noqa: E402

DEFAULT_CHAIN = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "bench_seed_chain.jsonl")


def bench_pow(seconds, last_proof=35293):
    """Hash attempts per second of the tutorial's proof_of_work inner loop."""
    valid_proof = Blockchain.valid_proof
    attempts, proof = 0, 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(20000):
            valid_proof(last_proof, proof)
            proof += 1
        attempts += 20000
        now = time.perf_counter()
        if now >= deadline:
            return attempts / (now - start)


def bench_replay(lines, seconds):
    """Blocks per second of the tutorial's replay (json.loads + valid_block)."""
    blocks, runs = 0, 0
    start = time.perf_counter()
    while True:
        chain, appended = tutorial_replay(lines)
        assert len(appended) == len(lines), "bench chain must be fully valid"
        blocks += len(lines)
        runs += 1
        now = time.perf_counter()
        if now - start >= seconds and runs >= 2:
            return blocks / (now - start)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chain", default=DEFAULT_CHAIN)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--make-chain", type=int, metavar="N")
    ap.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = ap.parse_args()
    if args.make_chain:
        rng = random.Random(1)
        lines = mine_chain(rng, args.make_chain, node_id="node-1",
                           names=["alice", "bob", "carol", "Zo\u00eb"], amounts=[1, 2, 3, 0.5, 12.25])
        with open(args.chain, "w") as f:
            f.write("\n".join(lines) + "\n")
    with open(args.chain) as f:
        lines = [l for l in f.read().split("\n") if l.strip()]
    result = {
        "python": sys.version.split()[0],
        "chain": os.path.relpath(args.chain),
        "blocks": len(lines),
        "pow_hashes_per_s": bench_pow(args.seconds),
        "replay_blocks_per_s": bench_replay(lines, args.seconds),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"python {result['python']}: proof_of_work {result['pow_hashes_per_s'] / 1e6:.2f} M hashes/s, "
              f"replay {result['replay_blocks_per_s'] / 1e3:.1f} k blocks/s ({result['blocks']} blocks of {result['chain']})")


if __name__ == "__main__":
    main()
