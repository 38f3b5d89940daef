//! kafkachain: a blockchain ledger that uses Apache Kafka as its transport and its log.
//!
//! # Layout
//!
//! - [`chain`]: the chain rules, pure and synchronous, with no I/O: the block and
//!   transaction data model, Python-compatible canonical JSON and hashing, the
//!   `seed` (tutorial), `v2` and `accounts` (signed transfers, balances, nonces) rule
//!   sets, replay of the chain topic, and the miner.
//! - [`transport`]: everything that talks Kafka: client configuration, topic
//!   administration, the chain-topic reader and the producers.
//! - [`node`]: the node loop that wires them: transaction intake (one partition or a
//!   consumer group), the pending pool, block building, mining, publishing, and
//!   committing offsets only once a transaction is on the chain.
//! - [`serve`]: the read side: an SQLite index of the chain topic, the HTTP API
//!   (tutorial, Esplora-like, server-sent events, health, metrics, Merkle proofs)
//!   and the explorer page.
//! - [`bench`]: `kafkachain bench`, the ledger measured against the bare broker.
//! - [`cli`]: the `kafkachain` command line; the binary in `src/main.rs` only calls it.
//!
//! Dependencies point one way: `cli` → `serve`, `node` → `transport`, `chain`; `chain`
//! depends on nothing else in this crate.

pub mod bench;
pub mod chain;
pub mod cli;
pub mod node;
pub mod serve;
pub mod transport;
