#!/usr/bin/env python3
"""Signs accounts-chain transfers with PyNaCl and publishes them with confluent-kafka.

An independent implementation of docs/accounts.md: it reads the chain id from the
genesis block (the first record of the chain topic), builds the 143 signed bytes,
signs them with the sender's ed25519 key and publishes the transfer JSON.

    .venv/bin/python python/accounts_client.py --brokers 127.0.0.1:9092 \
        --tx-topic transactions --chain-topic blockchain --key alice.key \
        --to <address> --amount 5 --nonce 0 [--partition 0] [--variant good]

Variants (for tests): good; forged (signed by a fresh key, not the sender's);
wrong-chain (signed for another chain id); replay (the same bytes published twice).
Prints one line per published record: "<variant> <partition> <offset>".
Exit status: 0 published, 1 failed, 2 bad usage.
"""

import argparse
import json
import sys
import uuid

from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from nacl.signing import SigningKey

DOMAIN = b"kafkachain/accounts/transfer/v1"


def read_key(path):
    """A kafkachain key file: the 32-byte seed as 64 lowercase hex digits."""
    with open(path) as f:
        return SigningKey(bytes.fromhex(f.read().strip()))


def chain_id(brokers, chain_topic, timeout):
    """The chain id from the genesis block (offset 0 of the chain topic)."""
    consumer = Consumer({
        "bootstrap.servers": brokers,
        "group.id": f"accounts-client-{uuid.uuid4().hex}",
        "enable.auto.commit": False,
    })
    try:
        consumer.assign([TopicPartition(chain_topic, 0, OFFSET_BEGINNING)])
        msg = consumer.poll(timeout)
        if msg is None or msg.error():
            raise SystemExit(f"no genesis block on {chain_topic}: {msg and msg.error()}")
        genesis = json.loads(msg.value())
        if genesis.get("rules") != "accounts":
            raise SystemExit(f"{chain_topic} is not an accounts chain: rules={genesis.get('rules')!r}")
        return bytes.fromhex(genesis["chain_id"])
    finally:
        consumer.close()


def signed_bytes(chain, sender, to, amount, nonce):
    """docs/accounts.md, 'The signed bytes': 143 bytes."""
    msg = DOMAIN + chain + sender + to + amount.to_bytes(8, "big") + nonce.to_bytes(8, "big")
    assert len(msg) == 143
    return msg


def transfer(key, chain, to, amount, nonce, signer=None):
    sender = bytes(key.verify_key)
    sig = (signer or key).sign(signed_bytes(chain, sender, to, amount, nonce)).signature
    record = {"from": sender.hex(), "to": to.hex(), "amount": amount, "nonce": nonce, "sig": sig.hex()}
    return json.dumps(record, sort_keys=True).encode()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--brokers", required=True)
    p.add_argument("--tx-topic", required=True)
    p.add_argument("--chain-topic", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--to", required=True, help="recipient address (64 lowercase hex digits)")
    p.add_argument("--amount", type=int, required=True)
    p.add_argument("--nonce", type=int, required=True)
    p.add_argument("--partition", type=int, default=0)
    p.add_argument("--variant", choices=["good", "forged", "wrong-chain", "replay"], default="good")
    p.add_argument("--timeout", type=float, default=30)
    args = p.parse_args()

    key = read_key(args.key)
    chain = chain_id(args.brokers, args.chain_topic, args.timeout)
    to = bytes.fromhex(args.to)
    if args.variant == "forged":
        records = [transfer(key, chain, to, args.amount, args.nonce, signer=SigningKey.generate())]
    elif args.variant == "wrong-chain":
        other = bytes(b ^ 0xFF for b in chain)
        records = [transfer(key, other, to, args.amount, args.nonce)]
    elif args.variant == "replay":
        record = transfer(key, chain, to, args.amount, args.nonce)
        records = [record, record]
    else:
        records = [transfer(key, chain, to, args.amount, args.nonce)]

    producer = Producer({"bootstrap.servers": args.brokers, "acks": "all"})
    delivered, errors = [], []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            delivered.append((msg.partition(), msg.offset()))

    for record in records:
        producer.produce(args.tx_topic, record, partition=args.partition, on_delivery=on_delivery)
        producer.flush(args.timeout)  # in order, one at a time
    if errors or len(delivered) != len(records):
        print(f"publishing failed: {errors}", file=sys.stderr)
        return 1
    for partition, offset in delivered:
        print(f"{args.variant} {partition} {offset}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
