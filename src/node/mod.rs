//! The node: the tutorial's loop on Kafka, made safe.
//!
//! - [`pool`]: pending transactions and the safe commit point per partition.
//! - [`budget`]: how big a block may be (transactions and bytes).
//! - [`accounts_pool`]: the accounts rules' intake checks and nonce-ordered,
//!   never-overdrawing block selection, indexing the pool by sender and nonce.
//! - [`verifier`]: the accounts intake's signature checks, in batches on a thread of
//!   their own.
//! - [`keyfile`]: ed25519 key files (the node's own key, `kafkachain keys`).
//! - [`miner`]: proof of work on its own thread, cancelled when the tip moves.
//! - [`turn`]: whose turn it is to publish on a tip, so nodes do not race every height.
//! - [`identity`]: the node id kept in the data directory.
//! - [`metrics`]: Prometheus metrics, updated from a few hooks in the loop.
//! - [`shutdown`]: the stop flag shared by every thread.
//! - [`Node`] (here): the event loop that ties them to the transport.
//!
//! The invariants that make "nothing lost, nothing twice" hold:
//! 1. The node's chain is only what it read back from the chain topic; its own block
//!    counts only once it is read back and valid against the tip at that point.
//! 2. A block is built only from transactions not on the chain as of the tip it
//!    extends, so a block that would include something twice is either built on a stale
//!    tip (and discarded by every node) or is not built at all.
//! 3. An offset is committed only when every transaction below it is on the chain (or
//!    was malformed), so whoever reads the partition next resumes without a gap.

pub mod accounts_pool;
pub mod budget;
pub mod identity;
pub mod keyfile;
pub mod metrics;
pub mod miner;
pub mod pool;
pub mod shutdown;
pub mod turn;
pub mod verifier;
pub mod warn_limit;

mod run;

pub use run::{Node, NodeConfig, NodeError, NodeSummary};
pub use shutdown::Shutdown;
