//! How big a block may be: cut by transaction count *and* by bytes.
//!
//! A block must fit the producer's `message.max.bytes` and the chain topic's
//! `max.message.bytes` (read from the broker at start; Kafka's default of 1 MiB when the
//! broker does not report it), less [`ENVELOPE_HEADROOM`] for Kafka's record-batch
//! framing. Sizes are counted on the uncompressed canonical JSON, so compression only
//! adds margin. If the broker still refuses a block as too large, the budget halves
//! (never below [`MIN_BLOCK_BYTES`]) and the block is rebuilt smaller: a refused block
//! never stops the node and is never retried unchanged.

use crate::chain::{BLOCK_FRAME_BYTES, BLOCK_TX_SEPARATOR_BYTES};

/// Bytes kept free for the record batch and record headers around a block.
pub const ENVELOPE_HEADROOM: usize = 1024;
/// The budget never shrinks below this: enough for a block with one transaction of
/// the largest size the intake accepts (`MAX_TX_BYTES` of JSON escapes to at most
/// about 3 × 4 KiB of canonical JSON).
pub const MIN_BLOCK_BYTES: usize = 16 * 1024;

/// The limits one block must respect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockBudget {
    max_txs: usize,
    max_bytes: usize,
}

impl BlockBudget {
    /// At most `max_txs` transactions, and at most the smaller message limit less the
    /// envelope headroom.
    pub fn new(max_txs: usize, producer_max: usize, topic_max: usize) -> Self {
        let max_bytes = producer_max
            .min(topic_max)
            .saturating_sub(ENVELOPE_HEADROOM)
            .max(BLOCK_FRAME_BYTES + 1);
        BlockBudget {
            max_txs: max_txs.max(1),
            max_bytes,
        }
    }

    pub fn max_txs(&self) -> usize {
        self.max_txs
    }

    /// Largest block, in bytes of canonical JSON.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// Bytes available to user transactions (each counted with its separator) once
    /// the frame and a reward of `reward_len` bytes are accounted for.
    pub fn tx_bytes(&self, reward_len: usize) -> usize {
        self.max_bytes
            .saturating_sub(BLOCK_FRAME_BYTES + reward_len + BLOCK_TX_SEPARATOR_BYTES)
    }

    /// Whether a transaction of `len` canonical bytes fits a block on its own.
    pub fn fits_alone(&self, len: usize, reward_len: usize) -> bool {
        len + BLOCK_TX_SEPARATOR_BYTES <= self.tx_bytes(reward_len)
    }

    /// The broker refused a block of `block_len` bytes as too large: halve below it.
    /// Returns false if the budget was already at its floor.
    pub fn shrink_below(&mut self, block_len: usize) -> bool {
        let target = (block_len.min(self.max_bytes) / 2).max(MIN_BLOCK_BYTES);
        if target >= self.max_bytes {
            return false;
        }
        self.max_bytes = target;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smaller_limit_less_headroom() {
        let b = BlockBudget::new(1000, 10_000_000, 1_048_588);
        assert_eq!(b.max_bytes(), 1_048_588 - ENVELOPE_HEADROOM);
        assert!(b.fits_alone(12_000, 60));
        assert!(!BlockBudget::new(10, 8_000, 1 << 20).fits_alone(12_000, 60));
    }

    #[test]
    fn shrinks_by_halves_to_a_floor() {
        let mut b = BlockBudget::new(1000, 1 << 20, 1 << 20);
        assert!(b.shrink_below(900_000));
        assert_eq!(b.max_bytes(), 450_000);
        while b.shrink_below(b.max_bytes()) {}
        assert_eq!(b.max_bytes(), MIN_BLOCK_BYTES);
        assert!(!b.shrink_below(MIN_BLOCK_BYTES));
    }
}
