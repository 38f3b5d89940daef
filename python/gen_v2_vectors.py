#!/usr/bin/env python3
"""Golden vectors for kafkachain's v2 encoding, computed by an independent Python
implementation written from the spec in src/chain (module docs), not from its code:

  transaction JSON   json.dumps({"amount", "origin": {"offset", "partition"}, "recipient", "sender"}, sort_keys=True)
  transaction id     sha256(b"\\x00" + transaction JSON)
  Merkle root        inner node sha256(b"\\x01" + left + right); an odd node is promoted
                     unchanged; no transactions => 32 zero bytes
  v2 header (88 B)   index u64 BE | previous hash | timestamp f64 bits BE | Merkle root | nonce u64 BE
  v2 block hash      sha256(header); valid when it has >= difficulty leading zero bits
  v2 genesis hash    sha256(json.dumps(genesis, sort_keys=True))
  floats             json.dumps(x), which is repr(x) for every finite float

Writes fixtures/v2_vectors.json (tests/chain_golden.rs reads it). Deterministic:
rerun to regenerate; python/tests/test_fixtures.py checks that a rerun changes nothing.

Usage: python3 python/gen_v2_vectors.py
"""
import hashlib
import json
import os
import random
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures")
ZERO = bytes(32)


def tx_json(submitted_text, partition, offset):
    """The block form of a transaction submitted as `submitted_text` at (partition, offset)."""
    msg = json.loads(submitted_text)
    tx = {"sender": msg["from"], "recipient": msg["to"], "amount": msg["amount"],
          "origin": {"partition": partition, "offset": offset}}
    return json.dumps(tx, sort_keys=True)


def reward_json(recipient, amount=1):
    return json.dumps({"sender": "0", "recipient": recipient, "amount": amount}, sort_keys=True)


def tx_id(canonical):
    return hashlib.sha256(b"\x00" + canonical.encode()).digest()


def merkle_root(leaves):
    if not leaves:
        return ZERO
    level = list(leaves)
    while len(level) > 1:
        nxt = [hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def header(index, previous, timestamp, root, nonce):
    return struct.pack(">Q", index) + previous + struct.pack(">d", timestamp) + root + struct.pack(">Q", nonce)


def leading_zero_bits(digest):
    n = 0
    for b in digest:
        if b:
            return n + 8 - b.bit_length()
        n += 8
    return n


def bits_of(x):
    return struct.unpack(">Q", struct.pack(">d", x))[0]


NAMES = ["alice", "bob", "Zo\u00eb", "\u674e\u96f7", "\U0001F600", "tab\there", 'q"uote', "back\\slash", "ctl\u0001", "\u2028"]
AMOUNTS = ["1", "3", "0.1", "2.5", "1e-7", "1E22", "12345678901234567890123", "1764079200.123456", "100.0", "0", "1.50", "7e0"]


def submitted(rng):
    """Transaction text as a client would send it (varied spellings of the amount)."""
    return '{"from": %s, "to": %s, "amount": %s}' % (
        json.dumps(rng.choice(NAMES), ensure_ascii=rng.random() < 0.5),
        json.dumps(rng.choice(NAMES), ensure_ascii=rng.random() < 0.5),
        rng.choice(AMOUNTS))


def tx_vectors(rng):
    out = []
    for i in range(40):
        text = submitted(rng)
        p, o = rng.randint(0, 7), rng.choice([0, 1, i, 2**31 - 1, 2**40 + i, 2**63 - 1])
        canonical = tx_json(text, p, o)
        out.append({"submitted": text, "partition": p, "offset": o, "canonical": canonical,
                    "tx_id": tx_id(canonical).hex()})
    for name in ["node-1", "n\u00f6de-\U0001F600", "miner \"x\""]:
        canonical = reward_json(name)
        out.append({"reward_to": name, "canonical": canonical, "tx_id": tx_id(canonical).hex()})
    return out


def merkle_vectors(rng):
    out = []
    for n in list(range(0, 10)) + [15, 16, 17, 33]:
        leaves = [hashlib.sha256(rng.getrandbits(64).to_bytes(8, "big")).digest() for _ in range(n)]
        out.append({"leaves": [l.hex() for l in leaves], "root": merkle_root(leaves).hex()})
    return out


def header_vectors(rng):
    out = []
    for i in range(24):
        index = rng.choice([1, 2, i + 3, 2**32, 2**64 - 1])
        previous = rng.getrandbits(256).to_bytes(32, "big") if i % 5 else ZERO
        timestamp = rng.choice([1764079200.0 + rng.random() * 1e6, 0.0, -0.0, 1e-300, 1.5, 1e22])
        root = rng.getrandbits(256).to_bytes(32, "big")
        nonce = rng.choice([0, 1, rng.getrandbits(32), rng.getrandbits(64), 2**64 - 1])
        h = header(index, previous, timestamp, root, nonce)
        digest = hashlib.sha256(h).digest()
        out.append({"index": index, "previous_hash": previous.hex(), "timestamp_bits": "%016x" % bits_of(timestamp),
                    "merkle_root": root.hex(), "nonce": nonce, "header": h.hex(), "hash": digest.hex(),
                    "leading_zero_bits": leading_zero_bits(digest)})
    return out


def v2_chain(rng, difficulty, blocks):
    """A small v2 chain mined here: genesis, then blocks of 1..4 transactions plus the reward."""
    t = 1764079200.5
    genesis = {"difficulty": difficulty, "index": 1, "merkle_root": ZERO.hex(), "previous_hash": ZERO.hex(),
               "proof": 0, "rules": "v2", "timestamp": t, "transactions": []}
    text = json.dumps(genesis, sort_keys=True)
    tip = hashlib.sha256(text.encode()).digest()
    out = [{"record": text, "hash": tip.hex(), "timestamp_bits": "%016x" % bits_of(t)}]
    offset = 0
    for index in range(2, blocks + 2):
        t += rng.choice([0.0, 0.25, 1.0, 3.125]) + rng.random()
        subs = []
        for _ in range(rng.randint(1, 4)):
            subs.append({"submitted": submitted(rng), "partition": offset % 3, "offset": offset})
            offset += 1
        miner = rng.choice(["node-1", "n\u00f6de-2"])
        txs = [tx_json(s["submitted"], s["partition"], s["offset"]) for s in subs] + [reward_json(miner)]
        root = merkle_root([tx_id(c) for c in txs])
        nonce = 0
        while leading_zero_bits(hashlib.sha256(header(index, tip, t, root, nonce)).digest()) < difficulty:
            nonce += 1
        block = {"index": index, "merkle_root": root.hex(), "previous_hash": tip.hex(), "proof": nonce,
                 "timestamp": t, "transactions": [json.loads(c) for c in txs]}
        text = json.dumps(block, sort_keys=True)
        tip = hashlib.sha256(header(index, tip, t, root, nonce)).digest()
        out.append({"record": text, "hash": tip.hex(), "timestamp_bits": "%016x" % bits_of(t), "nonce": nonce,
                    "miner": miner, "transactions": subs})
    return out


def float_vectors(rng):
    xs = [0.0, -0.0, 1.0, -1.0, 0.1, 0.5, 1.5, 100.0, 1e15, 1e16, 1.5e16, 9999999999999998.0, 1e-4, 1e-5,
          0.0001234, 0.00001234, 5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 1e22, 1e23,
          123456789012345680.0, 0.30000000000000004, 2.0**53, 2.0**53 + 2, 1764079200.123456, 1e-7, 9.5e-5]
    for _ in range(1500):
        x = struct.unpack(">d", rng.getrandbits(64).to_bytes(8, "big"))[0]
        if x == x and abs(x) != float("inf"):
            xs.append(x)
    for _ in range(500):
        xs.append(round(rng.random() * 10 ** rng.randint(-8, 20), rng.randint(0, 10)))
    for e in range(-330, 310):
        xs.append(float("1e%d" % e))
    return [{"bits": "%016x" % bits_of(x), "repr": json.dumps(x)} for x in xs if abs(x) != float("inf")]


def main():
    rng = random.Random(20261126)
    vectors = {
        "transactions": tx_vectors(rng),
        "merkle": merkle_vectors(rng),
        "headers": header_vectors(rng),
        "v2_chain": {"difficulty": 8, "blocks": v2_chain(rng, 8, 8)},
        "floats": float_vectors(rng),
    }
    os.makedirs(FIX, exist_ok=True)
    with open(os.path.join(FIX, "v2_vectors.json"), "w") as f:
        json.dump(vectors, f, indent=1, sort_keys=True)
        f.write("\n")
    print("fixtures/v2_vectors.json: %d transactions, %d Merkle trees, %d headers, %d blocks, %d floats" % (
        len(vectors["transactions"]), len(vectors["merkle"]), len(vectors["headers"]),
        len(vectors["v2_chain"]["blocks"]), len(vectors["floats"])))


if __name__ == "__main__":
    main()
