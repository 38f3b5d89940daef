#!/usr/bin/env python3
"""Generates the interoperability fixtures for kafkachain's chain core.

Everything here is computed by Python itself, with the tutorial's own code
("A blockchain experiment with Apache Kafka"), so the Rust tests check against
the original rather than against our reading of it:

  fixtures/canonical_vectors.jsonl  input JSON text -> json.dumps(json.loads(text), sort_keys=True) and its sha256
  fixtures/seed_chain.jsonl         a chain produced by the tutorial's node (one block per line, as kcat prints)
  fixtures/seed_*.jsonl             tampered variants of it
  fixtures/seed_splits.jsonl        records the tutorial accepts that kafkachain once rejected (issue 12)
  fixtures/seed_expect.json         per file: which lines the tutorial's replay appends, and the final tip hash

Usage: python3 python/gen_vectors.py   (deterministic; rerun to regenerate)
"""
import hashlib
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures")


# ---- The tutorial's code (only time() is replaced by a deterministic clock) ----
class Blockchain:
    def __init__(self, node_id, clock):
        self.node_id = node_id
        self.time = clock
        self.blockchain = [self.genesis_block()]
        self.current_transactions = []

    def genesis_block(self):
        return {'index': 1, 'timestamp': self.time(), 'transactions': [], 'proof': 100, 'previous_hash': 1}

    def new_block(self, proof):
        return {'index': len(self.blockchain) + 1, 'timestamp': self.time(),
                'transactions': self.current_transactions, 'proof': proof,
                'previous_hash': self.hash(self.blockchain[-1])}

    def new_transaction(self, sender, recipient, amount):
        self.current_transactions.append({'sender': sender, 'recipient': recipient, 'amount': amount})

    @staticmethod
    def proof_of_work(last_proof):
        proof = 0
        while Blockchain.valid_proof(last_proof, proof) is False:
            proof += 1
        return proof

    @staticmethod
    def valid_proof(last_proof, proof):
        guess = f'{last_proof}{proof}'.encode()
        return hashlib.sha256(guess).hexdigest()[:4] == "0000"

    @staticmethod
    def hash(block):
        return hashlib.sha256(json.dumps(block, sort_keys=True).encode()).hexdigest()

    @staticmethod
    def valid_block(last_block, block):
        if block['previous_hash'] != Blockchain.hash(last_block):
            return False
        if not Blockchain.valid_proof(last_block['proof'], block['proof']):
            return False
        return True


def tutorial_replay(lines):
    """The tutorial's replay of the blockchain topic. A record that makes the
    tutorial raise (bad JSON, missing key) is counted as not appended."""
    chain, appended = [], []
    for offset, line in enumerate(lines):
        try:
            block = json.loads(line)
            if offset == 0:
                chain.append(block)
                appended.append(offset + 1)
            elif Blockchain.valid_block(chain[-1], block):
                chain.append(block)
                appended.append(offset + 1)
        except Exception:
            pass
    return chain, appended


def mine_chain(rng, n_blocks, node_id="node-\u00e9", names=None, amounts=None):
    """Runs the tutorial node: every 3 transactions, PoW, reward appended last, publish."""
    t = [1764079200.0]

    def clock():
        t[0] += 1.0 + rng.random() * 3
        return t[0]

    bc = Blockchain(node_id, clock)
    lines = [json.dumps(bc.blockchain[0])]
    names = names or ["alice", "bob"]
    amounts = amounts or [1, 2.5]
    while len(bc.blockchain) < n_blocks:
        for _ in range(3):
            msg = json.dumps({"from": rng.choice(names), "to": rng.choice(names), "amount": rng.choice(amounts)})
            tx = json.loads(msg)  # as the tutorial's consumer receives it
            bc.new_transaction(tx["from"], tx["to"], tx["amount"])
        last = bc.blockchain[-1]
        proof = bc.proof_of_work(last['proof'])
        bc.new_transaction("0", node_id, 1)
        block = bc.new_block(proof)
        bc.current_transactions = []
        bc.blockchain.append(block)
        lines.append(json.dumps(block))
    return lines


# ---- Canonical JSON vectors ----
HAND_VECTORS = [
    '{}', '[]', '{ }', '[ ]', ' {"a" : 1 } ', '{"b":1,"a":2}', '{"a":1,"a":2}', '{"a":{"c":1,"b":2},"A":[3,{"z":null,"y":true}]}',
    '0', '-0', '1', '-1', '12345678901234567890123456789012345678901234567890', '-98765432109876543210',
    '0.0', '-0.0', '1.0', '3.0', '0.1', '1.10', '1e-5', '1E-5', '0.00001', '0.0001', '1e16', '1e15', '1.5e16', '1.5E+16',
    '123456789.123456789', '1513818733.589511', '1764079200.25', '1e300', '1e-300', '5e-324', '1.7976931348623157e308',
    '1e400', '-1e400', '1e-400', '-1e-400', '2.5e-7', '100.0', '100e0', '0e0', '-0e-0', '9007199254740993', '9007199254740993.0',
    '0.30000000000000004', '1e22', '1e21', '123e-2', '1.234567890123456789e-10',
    'NaN', 'Infinity', '-Infinity', '[NaN, Infinity, -Infinity]',
    'true', 'false', 'null', '[true,false,null]',
    '"plain"', '"\\u00e9"', '"\\u00E9"', '"\u00e9"', '"\\ud83d\\ude00"', '"\U0001F600"', '"\\ud800"', '"\\udc00x"', '"\\ud800\\ud800"',
    '"\\/"', '"a\\"b\\\\c"', '"\\b\\f\\n\\r\\t"', '"\\u0008\\u000c\\u000a\\u000d\\u0009"', '"\\u0000\\u0001\\u001f"',
    '"\x7f"', '"\\u007f"', '"\\u0041"', '"\u2028\u2029"', '"\ufeff"', '"\uffff"', '"\u674e\u96f7"',
    '{"\u00e9":1,"e":2,"z":3,"\U0001F600":4,"\uffff":5,"A":6,"a":7,"_":8,"":9}',
    '{"\\u00e9":1,"\u00e9":2}', '{"b\\u0000":1,"b":2}', '{"\\ud83d\\ude00":1,"\\uffff":2,"\\ud800":3}',
    '[[[[[[[[[[1]]]]]]]]]]', '{"a":[{"b":[{"c":[]}]}]}',
    # Deep nesting: Python's json handles about 990 levels (its recursion limit).
    '[' * 600 + ']' * 600, '{"a":' * 600 + '{"b":{},"a":[1.50]}' + '}' * 600, '[' * 980 + '"x"' + ']' * 980,
    ' \t\n\r[1 ,2\n,\t3]\r\n',
    '{"index": 2, "timestamp": 1764079201.5, "transactions": [{"sender": "alice", "recipient": "bob", "amount": 3}], "proof": 35293, "previous_hash": "abc"}',
]


def rand_string(rng):
    pool = ["a", "b", "Z", " ", "\"", "\\", "/", "\n", "\t", "\x00", "\x1f", "\x7f", "\u00e9", "\u00f6", "\u674e",
            "\u2028", "\ufffd", "\uffff", "\U0001F600", "\U0001F9D1", "\U00010000", "\ud800", "\udfff", "0", "9", "~"]
    return "".join(rng.choice(pool) for _ in range(rng.randint(0, 8)))


def rand_number(rng):
    k = rng.randint(0, 7)
    if k == 0:
        return rng.randint(-10**6, 10**6)
    if k == 1:
        return rng.randint(-10**40, 10**40)
    if k == 2:
        return rng.random() * 10 ** rng.randint(-30, 30)
    if k == 3:
        import struct
        while True:
            x = struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
            if x == x and abs(x) != float("inf"):
                return x
    if k == 4:
        return float(rng.randint(-10**17, 10**17))
    if k == 5:
        return round(rng.random() * 1000, rng.randint(0, 6))
    if k == 6:
        return 1764079200 + rng.random()
    return rng.choice([0, -0.0, 0.5, 1e16, 1e-5, 1e-4, 0.1, 2**53 + 1])


def rand_value(rng, depth=0):
    k = rng.randint(0, 9 if depth < 4 else 5)
    if k <= 1:
        return rand_string(rng)
    if k <= 3:
        return rand_number(rng)
    if k == 4:
        return rng.choice([True, False, None])
    if k == 5:
        return rand_number(rng)
    if k <= 7:
        return [rand_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rand_string(rng): rand_value(rng, depth + 1) for _ in range(rng.randint(0, 5))}


def rand_text(rng, value):
    """Some JSON text that Python parses back to `value`, in varied spellings."""
    style = rng.randint(0, 3)
    if style == 0:
        return json.dumps(value)
    if style == 1:
        return json.dumps(value, ensure_ascii=False)
    if style == 2:
        return json.dumps(value, separators=(",", ":"))
    return json.dumps(value, indent=rng.choice([None, 1, "\t"]), ensure_ascii=rng.random() < 0.5)


def vector(text):
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        # Raw lone surrogates are not UTF-8; Kafka records we accept must be.
        data = json.dumps(json.loads(text)).encode()
    canonical = json.dumps(json.loads(data), sort_keys=True)
    return {
        "input_hex": data.hex(),
        "canonical": canonical,
        "sha256": hashlib.sha256(canonical.encode()).hexdigest(),
        "canonical_input": data == canonical.encode(),
        "input": data.decode(),
    }


def write_canonical_vectors():
    rng = random.Random(20261125)
    texts = list(HAND_VECTORS)
    for _ in range(400):
        texts.append(rand_text(rng, rand_value(rng)))
    # Already-canonical documents too: the fast path must accept exactly these.
    for _ in range(100):
        texts.append(json.dumps(rand_value(rng), sort_keys=True))
    with open(os.path.join(FIX, "canonical_vectors.jsonl"), "w") as f:
        for text in texts:
            f.write(json.dumps(vector(text), sort_keys=True) + "\n")
    return len(texts)


# ---- Records the tutorial accepts (issue 12) ----
def seed_splits():
    """A tutorial chain extended, block by block, with what the tutorial's valid_block
    accepts although a stricter reading would not: indexes 1 and 0 after genesis, an
    index past 2**64, proofs that are a list or a dict (the rule hashes str(proof)),
    a transaction nested 600 deep. Each block links to the previous one and carries
    the first proof the tutorial's valid_proof takes."""
    rng = random.Random(12)
    lines = mine_chain(rng, 3)
    chain = [json.loads(l) for l in lines]

    def add(fields, make_proof):
        last = chain[-1]
        k = 0
        while not Blockchain.valid_proof(last['proof'], make_proof(k)):
            k += 1
        block = {'timestamp': last['timestamp'] + 1, 'transactions': []}
        block.update(fields)
        block['previous_hash'] = Blockchain.hash(last)
        block['proof'] = make_proof(k)
        chain.append(block)
        lines.append(json.dumps(block))

    def deep(n, inner):
        for _ in range(n):
            inner = [inner]
        return inner

    plain = lambda k: k
    add({'index': 1}, plain)                      # not a second genesis: it links
    add({'index': 0}, plain)                      # and a node must build on it
    add({'index': len(chain) + 1}, plain)         # what the tutorial's node writes next
    add({'index': 7}, lambda k: [k])              # str([k]) == '[k]'
    add({'index': 8}, lambda k: {'a': [k, "it's", None, 1.5, True, 'q"uote', 'both \' "',
                                        '\u00e9\u2028\x7f\t\ud800\U0001F600', {'b': -0.0}]})
    add({'index': 9}, lambda k: deep(300, k))     # repr of a deep list
    add({'index': 10, 'transactions': [
        {'sender': 'a', 'recipient': 'b', 'amount': 1, 'memo': deep(600, 'x')}]}, plain)
    add({'index': 11}, plain)
    add({'index': 2 ** 64 - 1}, plain)            # u64::MAX, then another block
    add({'index': 12}, plain)
    add({'index': 2 ** 64}, plain)
    add({'index': 'thirteen'}, lambda k: str(k))  # a string proof: str() is itself
    add({'index': 14}, plain)
    return lines


# ---- The seed chain and its tampered variants ----
def write_seed_chain():
    rng = random.Random(7)
    names = ["alice", "bob", "Zo\u00eb", "\u674e\u96f7", "\U0001F600 emoji", "tab\there", 'quote"d', "ctl\u0001", "del\x7f", "\u2028"]
    amounts = [1, 3, 0.1, 2.5, 1e-7, 1e22, 12345678901234567890123, 1764079200.123456, 100.0, 0]
    lines = mine_chain(rng, 24, node_id="n\u00f6de-1", names=names, amounts=amounts)
    files = {"seed_chain.jsonl": lines}

    def tamper(k, mutate):
        block = json.loads(lines[k - 1])
        mutate(block)
        out = list(lines)
        out[k - 1] = json.dumps(block)
        return out

    # Content change in block 10: the tutorial accepts block 10, then rejects block 11 onwards.
    files["seed_tampered_amount.jsonl"] = tamper(10, lambda b: b["transactions"][0].update(amount=999))
    # A different proof in block 12: rejected at 12 (and everything after no longer links).
    files["seed_tampered_proof.jsonl"] = tamper(12, lambda b: b.update(proof=b["proof"] + 1))
    files["seed_tampered_link.jsonl"] = tamper(7, lambda b: b.update(previous_hash="0" * 64))
    # An extra field is part of the hash: accepted itself, breaks the next link.
    files["seed_tampered_extra.jsonl"] = tamper(20, lambda b: b.update(note="hi"))
    # The same block published twice (a replayed record): the copy lost the race = stale.
    dup = list(lines)
    dup.insert(16, lines[14])
    files["seed_duplicate.jsonl"] = dup
    # Garbage on the topic is skipped.
    garbage = list(lines)
    garbage.insert(5, "this is not json")
    garbage.insert(9, "[1, 2, 3]")
    files["seed_garbage.jsonl"] = garbage
    # Re-encoded (sorted, compact, non-ASCII kept) copies hash the same: Python compares parsed values.
    files["seed_reencoded.jsonl"] = [
        json.dumps(json.loads(l), sort_keys=(i % 2 == 0), ensure_ascii=(i % 3 == 0),
                   separators=(",", ":") if i % 4 == 1 else None)
        for i, l in enumerate(lines)
    ]

    files["seed_splits.jsonl"] = seed_splits()

    expect = {}
    for name, content in files.items():
        with open(os.path.join(FIX, name), "w") as f:
            f.write("\n".join(content) + "\n")
        chain, appended = tutorial_replay(content)
        expect[name] = {
            "lines": len(content),
            "appended": appended,
            "height": len(chain),
            "tip_hash": Blockchain.hash(chain[-1]),
        }
    with open(os.path.join(FIX, "seed_expect.json"), "w") as f:
        json.dump(expect, f, indent=1, sort_keys=True)
        f.write("\n")
    return expect


if __name__ == "__main__":
    os.makedirs(FIX, exist_ok=True)
    n = write_canonical_vectors()
    print(f"fixtures/canonical_vectors.jsonl: {n} vectors")
    for name, e in write_seed_chain().items():
        print(f"fixtures/{name}: {e['lines']} lines, tutorial appends {len(e['appended'])}, height {e['height']}")
