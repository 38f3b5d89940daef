#!/usr/bin/env python3
"""An independent checker of kafkachain Merkle inclusion proofs (docs/proofs.md).

Standard library only, written from the specification, not from the Rust code:

    python3 tests/proof_verify.py PROOF.json    # exit 0: valid; 1: invalid (reason on stdout)
"""
import hashlib
import json
import struct
import sys


class Invalid(Exception):
    pass


def sha256(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p)
    return h.digest()


def unhex(value, field, length=32):
    if not isinstance(value, str) or len(value) != 2 * length or value != value.lower():
        raise Invalid(f"{field} is not {2 * length} lowercase hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError:
        raise Invalid(f"{field} is not hex") from None


def leading_zero_bits(digest):
    bits = 0
    for byte in digest:
        if byte == 0:
            bits += 8
            continue
        return bits + 8 - byte.bit_length()
    return bits


def verify(p):
    if p.get("format") != "kafkachain-merkle-proof/1":
        raise Invalid(f"unknown format {p.get('format')!r}")
    leaf = sha256(b"\x00", p["tx"].encode("utf-8"))
    if leaf != unhex(p["txid"], "txid"):
        raise Invalid("the transaction JSON does not hash to txid")
    pos, count = p["pos"], p["tx_count"]
    if not 0 <= pos < count:
        raise Invalid(f"pos {pos} is not below tx_count {count}")
    siblings = [unhex(h, "merkle[]") for h in p["merkle"]]
    node, i, n, used = leaf, pos, count, 0
    while n > 1:
        if i % 2 == 1 or i + 1 < n:
            if used >= len(siblings):
                raise Invalid("too few sibling hashes")
            s = siblings[used]
            used += 1
            node = sha256(b"\x01", s, node) if i % 2 == 1 else sha256(b"\x01", node, s)
        # else: the last node of an odd level is promoted unchanged
        i //= 2
        n = (n + 1) // 2
    if used != len(siblings):
        raise Invalid("too many sibling hashes")
    root = unhex(p["merkle_root"], "merkle_root")
    if node != root:
        raise Invalid("the branch does not fold to merkle_root")
    h = p["header"]
    if h["merkle_root"] != p["merkle_root"]:
        raise Invalid("header.merkle_root differs from merkle_root")
    if h["index"] != p["block_height"]:
        raise Invalid("header.index differs from block_height")
    header = (
        struct.pack(">Q", h["index"])
        + unhex(h["previous_hash"], "header.previous_hash")
        + struct.pack(">d", float(h["timestamp"]))
        + root
        + struct.pack(">Q", h["nonce"])
    )
    if header.hex() != p["header_hex"]:
        raise Invalid("header_hex is not the encoding of the header fields")
    block_hash = sha256(header)
    if block_hash != unhex(p["block_hash"], "block_hash"):
        raise Invalid("the header does not hash to block_hash")
    if leading_zero_bits(block_hash) < p["difficulty"]:
        raise Invalid("block_hash has less proof of work than difficulty")


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        proof = json.load(f)
    try:
        verify(proof)
    except (Invalid, KeyError, TypeError) as e:
        print(f"invalid: {e}")
        return 1
    print(f"ok: {proof['txid']} in block {proof['block_height']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
