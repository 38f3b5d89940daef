"""Rust -> Python over whole chains: a real `kafkachain node` mines a chain on the test
broker, `kafkachain chain` prints it, and Python checks every block of it:

  seed rules: the tutorial's own `valid_block` (previous_hash = sha256 of
              json.dumps(previous block, sort_keys=True), sha256(f"{last_proof}{proof}")
              starts with "0000"), the reward last, each transaction exactly once;
  v2 rules:   an independent Python implementation of the v2 header, Merkle root and
              transaction ids (python/gen_v2_vectors.py), the difficulty, consecutive
              indexes, timestamps that never go backwards, unique origins, and that the
              published bytes are Python's own json.dumps(sort_keys=True) of the block.

Needs a broker (KAFKACHAIN_TEST_BROKERS, which scripts/test sets) and the kafkachain
binary ($KAFKACHAIN_BIN, else $CARGO_TARGET_DIR/debug/kafkachain, which `cargo test`
builds; scripts/test runs this after it).
"""
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import uuid

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))

import gen_v2_vectors as v2  # noqa: E402  (the independent v2 implementation)
from gen_vectors import Blockchain  # noqa: E402  (the tutorial's code)

BROKERS = os.environ.get("KAFKACHAIN_TEST_BROKERS", "").strip()


def kafkachain_bin():
    candidates = [os.environ.get("KAFKACHAIN_BIN", "")]
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(
        os.environ.get("KAFKACHAIN_CACHE", os.path.expanduser("~/.cache/kafkachain")), "target")
    candidates += [os.path.join(target, "debug", "kafkachain"), os.path.join(ROOT, "target", "debug", "kafkachain")]
    for c in candidates:
        if c and os.access(c, os.X_OK):
            return c
    return None


BIN = kafkachain_bin()
# (from, to, amount as a JSON literal) — non-ASCII names, integer and float amounts.
SENDS = [("alice", "bob", "3", 7), ("Zo\u00eb", "\u674e\u96f7", "2.5", 6), ("\U0001F600", 'q"uote', "0.1", 5),
         ("tab\there", "alice", "1e-7", 4), ("bob", "carol", "100", 3)]


@unittest.skipUnless(BROKERS, "KAFKACHAIN_TEST_BROKERS is not set (scripts/test sets it)")
@unittest.skipUnless(BIN, "no kafkachain binary: run `cargo build` or set KAFKACHAIN_BIN")
class WholeChainInterop(unittest.TestCase):
    def setUp(self):
        run = uuid.uuid4().hex[:10]
        self.tmp = tempfile.mkdtemp(prefix="kafkachain-py-")
        self.connect = ["--brokers", BROKERS, "--tx-topic", f"py-tx-{run}", "--chain-topic", f"py-chain-{run}",
                        "--tx-partitions", "1"]
        self.group = f"py-group-{run}"
        self.node = None

    def tearDown(self):
        if self.node is not None and self.node.poll() is None:
            self.node.kill()
            self.node.wait()

    def cli(self, *args, timeout=120):
        run = subprocess.run([BIN, *args], capture_output=True, timeout=timeout)
        self.assertEqual(run.returncode, 0, f"kafkachain {' '.join(args)}:\n{run.stderr.decode(errors='replace')}")
        return run.stdout

    def start_node(self, rules):
        self.log_path = os.path.join(self.tmp, "node.log")
        log = open(self.log_path, "wb")
        self.addCleanup(log.close)
        self.node = subprocess.Popen(
            [BIN, "node", *self.connect, "--partition", "0", "--rules", rules, "--difficulty", "8",
             "--block-size", "4", "--block-timeout", "200ms", "--threads", "1", "--id", "py-n\u00f6de",
             "--group", self.group, "--data-dir", os.path.join(self.tmp, "node")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
            env={**os.environ, "RUST_LOG": "warn,kafkachain=info"})
        deadline = time.monotonic() + 90
        while "node running" not in self.node_log():
            self.assertIsNone(self.node.poll(), "the node exited:\n" + self.node_log())
            self.assertLess(time.monotonic(), deadline, "the node did not start:\n" + self.node_log())
            time.sleep(0.2)

    def node_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop_node(self):
        self.node.send_signal(signal.SIGTERM)
        self.assertEqual(self.node.wait(timeout=60), 0, "the node did not stop cleanly:\n" + self.node_log())

    def send_all(self):
        sent = []
        for frm, to, amount, count in SENDS:
            self.cli("send", *self.connect, "--from", frm, "--to", to, "--amount", amount, "--partition", "0",
                     "--count", str(count))
            sent += [(frm, to, json.loads(amount))] * count
        return sent

    def read_chain(self, want_txs, timeout=240):
        """The chain topic's records (as published) once `want_txs` user transactions are on it."""
        deadline = time.monotonic() + timeout
        while True:
            lines = [l for l in self.cli("chain", *self.connect).split(b"\n") if l]
            txs = sum(max(len(json.loads(l).get("transactions", [])) - 1, 0) for l in lines[1:])
            if txs >= want_txs:
                return lines
            self.assertLess(time.monotonic(), deadline,
                            f"only {txs} of {want_txs} transactions on the chain:\n" + self.node_log())
            time.sleep(1)

    def check_transactions(self, blocks, sent):
        """Each sent transaction exactly once, the reward last in every block, unique origins."""
        got, origins = [], []
        for block in blocks[1:]:
            txs = block["transactions"]
            self.assertTrue(txs, f"block {block['index']} is empty")
            reward = txs[-1]
            self.assertEqual((reward["sender"], reward["recipient"], reward["amount"]), ("0", "py-n\u00f6de", 1),
                             f"block {block['index']}: the reward is not last")
            for tx in txs[:-1]:
                got.append((tx["sender"], tx["recipient"], tx["amount"]))
                origins.append((tx["origin"]["partition"], tx["origin"]["offset"]))
        self.assertEqual(sorted(got, key=repr), sorted(sent, key=repr), "the chain's transactions (lost or duplicated)")
        self.assertEqual(len(origins), len(set(origins)), "an origin appears twice")
        self.assertEqual(sorted(o for _, o in origins), list(range(len(sent))), "origins are the offsets sent")

    def test_seed_chain_is_valid_by_the_tutorials_rules(self):
        self.start_node("seed")
        sent = self.send_all()
        lines = self.read_chain(len(sent))
        self.stop_node()
        blocks = [json.loads(l) for l in lines]
        self.assertEqual((blocks[0]["index"], blocks[0]["proof"], blocks[0]["previous_hash"]), (1, 100, 1))
        for prev, block in zip(blocks, blocks[1:]):
            self.assertTrue(Blockchain.valid_block(prev, block),
                            f"block {block['index']} is not valid after block {prev['index']} by the tutorial's rules")
            self.assertEqual(block["index"], prev["index"] + 1)
        self.check_transactions(blocks, sent)

    def test_v2_chain_is_valid_by_an_independent_implementation(self):
        self.start_node("v2")
        sent = self.send_all()
        lines = self.read_chain(len(sent))
        self.stop_node()
        blocks = [json.loads(l) for l in lines]
        for line, block in zip(lines, blocks):
            self.assertEqual(line, json.dumps(block, sort_keys=True).encode(),
                             f"block {block['index']} is not published as Python's canonical JSON")
        genesis = blocks[0]
        self.assertEqual((genesis["rules"], genesis["difficulty"], genesis["index"]), ("v2", 8, 1))
        tip = hashlib.sha256(lines[0]).digest()
        for prev, block in zip(blocks, blocks[1:]):
            i = block["index"]
            self.assertEqual(i, prev["index"] + 1)
            self.assertGreaterEqual(block["timestamp"], prev["timestamp"], f"block {i}: timestamp goes backwards")
            self.assertEqual(block["previous_hash"], tip.hex(), f"block {i}: previous_hash")
            ids = [v2.tx_id(json.dumps(tx, sort_keys=True)) for tx in block["transactions"]]
            root = v2.merkle_root(ids)
            self.assertEqual(block["merkle_root"], root.hex(), f"block {i}: Merkle root")
            tip = hashlib.sha256(v2.header(i, tip, block["timestamp"], root, block["proof"])).digest()
            self.assertGreaterEqual(v2.leading_zero_bits(tip), 8, f"block {i}: proof of work")
        self.check_transactions(blocks, sent)
        # And kafkachain's own verify agrees with the file Python just checked.
        path = os.path.join(self.tmp, "chain.jsonl")
        with open(path, "wb") as f:
            f.write(b"\n".join(lines) + b"\n")
        self.cli("verify", path)


if __name__ == "__main__":
    unittest.main()
