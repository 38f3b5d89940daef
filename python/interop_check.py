#!/usr/bin/env python3
"""Interop check: a third-party client (confluent-kafka) against a running kafkachain node.

Publishes COUNT tutorial transactions {"from", "to", "amount"} to one partition of the
transactions topic, then reads the chain topic from the beginning until every one of
them is in a block, and validates what it read with the Python tutorial's own rules:

    hash(block)            = sha256(json.dumps(block, sort_keys=True)).hexdigest()
    block.previous_hash   == hash(previous block)
    valid_proof(last, p)  := sha256(f"{last}{p}").hexdigest().startswith("0000")

The first record of the chain topic is the genesis block and is not validated.
Every block holding one of our transactions must end with the mining reward
(sender "0", amount 1). Each transaction must appear exactly once in the chain read.

    .venv/bin/python python/interop_check.py --brokers 127.0.0.1:9092 \
        --tx-topic transactions --chain-topic blockchain --partition 0 --count 3 --timeout 60

Exit status: 0 all checks passed, 1 a check failed or timed out, 2 bad usage.
"""

import argparse
import hashlib
import json
import os
import sys
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer, TopicPartition


def block_hash(block):
    """The tutorial's Blockchain.hash: SHA-256 of the sorted-key JSON (default separators, ASCII escapes)."""
    return hashlib.sha256(json.dumps(block, sort_keys=True).encode()).hexdigest()


def valid_proof(last_proof, proof):
    """The tutorial's Blockchain.valid_proof."""
    return hashlib.sha256(f"{last_proof}{proof}".encode()).hexdigest()[:4] == "0000"


def make_transactions(count):
    """COUNT transactions unique to this run; names include non-ASCII, one amount is a float."""
    run = uuid.uuid4().hex[:8]
    names = ["Zoë", "Jürgen", "Ægir", "Łucja", "Søren"]
    txs = []
    for i in range(count):
        amount = 2.5 + i if i % 2 == 0 else i + 1
        txs.append({"from": f"{names[i % len(names)]}-{run}-{i}", "to": f"Ωmega-{run}-{i}", "amount": amount})
    return txs


def publish(brokers, topic, partition, txs, timeout):
    producer = Producer({"bootstrap.servers": brokers, "acks": "all", "message.timeout.ms": int(timeout * 1000)})
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(f"{err} (partition {msg.partition()})")

    for tx in txs:
        producer.produce(topic, json.dumps(tx).encode(), partition=partition, on_delivery=on_delivery)
    left = producer.flush(timeout)
    if left:
        errors.append(f"{left} message(s) not delivered within {timeout}s")
    return errors


def matches(tx, btx):
    return (
        isinstance(btx, dict)
        and btx.get("sender") == tx["from"]
        and btx.get("recipient") == tx["to"]
        and isinstance(btx.get("amount"), (int, float))
        and btx["amount"] == tx["amount"]
    )


class ChainCheck:
    """Validates blocks as they are read, in topic order."""

    def __init__(self, txs):
        self.txs = txs
        self.blocks = 0
        self.last_offset = -1
        self.problems = []
        self.last = None
        self.found = {}  # index into txs -> list of (offset, block index)
        self.our_blocks = set()

    def add(self, offset, raw):
        try:
            block = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as e:
            self.problems.append(f"offset {offset}: not JSON: {e}")
            return
        if not isinstance(block, dict):
            self.problems.append(f"offset {offset}: not a JSON object")
            return
        self.blocks += 1
        if self.last is not None:
            if block.get("previous_hash") != block_hash(self.last):
                self.problems.append(f"offset {offset} (block {block.get('index')}): previous_hash does not match hash of the block before")
            if not valid_proof(self.last.get("proof"), block.get("proof")):
                self.problems.append(f"offset {offset} (block {block.get('index')}): proof {block.get('proof')} invalid after {self.last.get('proof')}")
        self.last = block
        btxs = block.get("transactions")
        if not isinstance(btxs, list):
            self.problems.append(f"offset {offset}: transactions is not a list")
            return
        for i, tx in enumerate(self.txs):
            for btx in btxs:
                if matches(tx, btx):
                    self.found.setdefault(i, []).append((offset, block.get("index")))
                    if offset not in self.our_blocks:
                        self.our_blocks.add(offset)
                        self.check_reward(offset, block, btxs)

    def check_reward(self, offset, block, btxs):
        reward = btxs[-1] if btxs else None
        if not (isinstance(reward, dict) and reward.get("sender") == "0" and reward.get("amount") == 1):
            self.problems.append(f"offset {offset} (block {block.get('index')}): last transaction is not the reward (sender \"0\", amount 1): {reward!r}")

    def all_found(self):
        return len(self.found) == len(self.txs)


def read_chain(brokers, topic, partition, check, deadline):
    consumer = Consumer(
        {
            "bootstrap.servers": brokers,
            "group.id": f"kafkachain-interop-{os.getpid()}",  # required by the client; never joined (assign)
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
        end = None  # once everything is found: read on to the high watermark seen then
        while time.monotonic() < deadline:
            if end is None and check.all_found():
                _, end = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if end is not None and (check.last_offset + 1 >= end):
                return True
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                if msg.error().code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
                    continue  # the node may not have created it yet
                raise KafkaException(msg.error())
            check.last_offset = msg.offset()
            check.add(msg.offset(), msg.value())
        return check.all_found()
    finally:
        consumer.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--brokers", default=os.environ.get("KAFKACHAIN_TEST_BROKERS", "127.0.0.1:9092"))
    ap.add_argument("--tx-topic", default="transactions")
    ap.add_argument("--chain-topic", default="blockchain")
    ap.add_argument("--partition", type=int, default=0, help="partition of the transactions topic to publish to")
    ap.add_argument("--count", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds for the whole check")
    ap.add_argument("--require-same-block", action="store_true", help="all transactions must be in one block")
    args = ap.parse_args()
    if args.count < 1:
        ap.error("--count must be at least 1")

    deadline = time.monotonic() + args.timeout
    txs = make_transactions(args.count)
    print(f"publishing {len(txs)} transaction(s) to {args.tx_topic}[{args.partition}] on {args.brokers}")
    for tx in txs:
        print(f"  {json.dumps(tx, ensure_ascii=False)}")
    errors = publish(args.brokers, args.tx_topic, args.partition, txs, args.timeout)
    if errors:
        print("FAIL: publishing: " + "; ".join(errors))
        return 1

    check = ChainCheck(txs)
    try:
        complete = read_chain(args.brokers, args.chain_topic, 0, check, deadline)
    except KafkaException as e:
        print(f"FAIL: reading {args.chain_topic}: {e}")
        return 1

    print(f"read {check.blocks} block(s) from {args.chain_topic}[0] (offsets 0..{check.last_offset})")
    for i, tx in enumerate(txs):
        where = check.found.get(i, [])
        print(f"  {tx['from']} -> {tx['to']} {tx['amount']}: " + (", ".join(f"block {b} @ offset {o}" for o, b in where) or "NOT FOUND"))
        if len(where) > 1:
            check.problems.append(f"{tx['from']} appears {len(where)} times")
    if not complete:
        check.problems.append(f"not all transactions appeared in {args.chain_topic} within {args.timeout}s")
    if args.require_same_block and len(check.our_blocks) > 1:
        check.problems.append(f"transactions spread over {len(check.our_blocks)} blocks, expected one")
    if check.problems:
        for p in check.problems:
            print(f"FAIL: {p}")
        return 1
    print(f"OK: chain of {check.blocks} block(s) valid by the tutorial's rules; all {len(txs)} transaction(s) found once, reward last")
    return 0


if __name__ == "__main__":
    sys.exit(main())
