//! The pending pool: transactions read from our partitions but not yet on the chain.
//!
//! The pool is also what decides which offsets are safe to commit: for each partition
//! we own, everything below the oldest pending transaction is either on the chain,
//! malformed, or a duplicate of something on the chain — so that is the commit point.
//!
//! The pool counts the canonical bytes it holds ([`Pool::bytes`]) so the node can bound
//! it by memory as well as by count, and hands out block contents within a byte budget
//! ([`Pool::oldest_within`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::chain::{Claim, Origin, Transaction};

#[derive(Debug)]
struct Pending {
    tx: Transaction,
    arrived: Instant,
}

/// Pending transactions keyed by origin, with arrival order for FIFO block building.
#[derive(Debug, Default)]
pub struct Pool {
    pending: BTreeMap<Origin, Pending>,
    /// Arrival order; may hold origins already removed (skipped lazily, compacted).
    arrivals: VecDeque<Origin>,
    /// Per owned partition: the offset after the highest one read so far.
    next_offset: HashMap<i32, i64>,
    /// Canonical JSON bytes of the pending transactions.
    bytes: usize,
}

impl Pool {
    pub fn new() -> Self {
        Pool::default()
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Canonical JSON bytes of the pending transactions.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn contains(&self, origin: Origin) -> bool {
        self.pending.contains_key(&origin)
    }

    /// Notes that `offset` of `partition` was read, whatever became of it.
    pub fn consumed(&mut self, partition: i32, offset: i64) {
        let next = self.next_offset.entry(partition).or_insert(offset + 1);
        *next = (*next).max(offset + 1);
    }

    /// Adds a transaction read from the topic. Returns false if it was already pending
    /// (the consumer re-delivered it after a rebalance).
    pub fn offer(&mut self, origin: Origin, tx: Transaction, now: Instant) -> bool {
        self.consumed(origin.partition, origin.offset);
        let std::collections::btree_map::Entry::Vacant(slot) = self.pending.entry(origin) else {
            return false;
        };
        self.bytes += tx.encoded_len();
        slot.insert(Pending { tx, arrived: now });
        self.arrivals.push_back(origin);
        true
    }

    /// Removes transactions that reached the chain; returns how many were pending here.
    pub fn remove(&mut self, origins: &[Origin]) -> usize {
        let mut removed = 0;
        for origin in origins {
            if let Some(p) = self.pending.remove(origin) {
                self.bytes -= p.tx.encoded_len();
                removed += 1;
            }
        }
        self.trim_arrivals();
        removed
    }

    /// Applies a block's claims. A pending transaction whose origin the block claims
    /// with the same content is on the chain: it leaves the pool. One whose origin
    /// *and attempt* the block claims with other content can no longer land as it is
    /// (v2 takes each attempt once): its origin is returned, for the caller to log the
    /// conflicting claim and [`Pool::reattempt`] it. A claim whose content was not
    /// tracked counts as a match (the pre-claims behaviour).
    pub fn settle(&mut self, claims: &[Claim]) -> Vec<Origin> {
        let mut conflicts = Vec::new();
        for c in claims {
            let Some(p) = self.pending.get(&c.origin) else {
                continue;
            };
            match (c.content, p.tx.content()) {
                (Some(chain), Some(ours)) if chain != ours => {
                    if c.attempt == p.tx.attempt() && !conflicts.contains(&c.origin) {
                        conflicts.push(c.origin);
                    }
                }
                _ => {
                    if let Some(p) = self.pending.remove(&c.origin) {
                        self.bytes -= p.tx.encoded_len();
                    }
                }
            }
        }
        self.trim_arrivals();
        conflicts.retain(|o| self.pending.contains_key(o));
        conflicts
    }

    /// Rebuilds the pending transaction at `origin` as attempt `attempt`.
    pub fn reattempt(&mut self, origin: Origin, attempt: u32) {
        if let Some(p) = self.pending.get_mut(&origin) {
            p.tx = p.tx.with_attempt(attempt);
        }
    }

    /// Forgets partitions that the group gave to another node: their new owner re-reads
    /// them from the last commit.
    pub fn revoke(&mut self, partitions: &[i32]) -> usize {
        let before = self.pending.len();
        let mut bytes = 0;
        self.pending.retain(|origin, p| {
            let keep = !partitions.contains(&origin.partition);
            if !keep {
                bytes += p.tx.encoded_len();
            }
            keep
        });
        self.bytes -= bytes;
        for p in partitions {
            self.next_offset.remove(p);
        }
        self.trim_arrivals();
        before - self.pending.len()
    }

    /// How long the oldest pending transaction has waited.
    pub fn oldest_wait(&self, now: Instant) -> Option<Duration> {
        self.arrivals
            .iter()
            .find_map(|o| self.pending.get(o))
            .map(|p| now.saturating_duration_since(p.arrived))
    }

    /// The oldest `n` pending transactions, in arrival order.
    pub fn oldest(&self, n: usize) -> Vec<Transaction> {
        self.arrivals
            .iter()
            .filter_map(|o| self.pending.get(o))
            .take(n)
            .map(|p| p.tx.clone())
            .collect()
    }

    /// The oldest pending transactions, in arrival order, at most `n` of them and at
    /// most `max_bytes` counting each one's canonical JSON plus `per_tx` bytes (the
    /// separator in the block). Stops at the first that does not fit, so blocks stay
    /// in arrival order.
    pub fn oldest_within(&self, n: usize, max_bytes: usize, per_tx: usize) -> Vec<Transaction> {
        let mut used = 0usize;
        let mut out = Vec::new();
        for p in self.arrivals.iter().filter_map(|o| self.pending.get(o)) {
            let cost = p.tx.encoded_len() + per_tx;
            if out.len() >= n || used + cost > max_bytes {
                break;
            }
            used += cost;
            out.push(p.tx.clone());
        }
        out
    }

    /// The oldest pending transaction's origin and canonical size.
    pub fn oldest_entry(&self) -> Option<(Origin, usize)> {
        self.arrivals
            .iter()
            .find_map(|o| self.pending.get(o).map(|p| (*o, p.tx.encoded_len())))
    }

    /// The offset to commit for each partition read so far: the oldest pending
    /// transaction's offset, or the next unread offset when none is pending.
    pub fn commit_positions(&self) -> Vec<(i32, i64)> {
        let mut positions: Vec<(i32, i64)> = self
            .next_offset
            .iter()
            .map(|(&partition, &next)| {
                let oldest_pending = self
                    .pending
                    .range(
                        Origin {
                            partition,
                            offset: i64::MIN,
                        }..=Origin {
                            partition,
                            offset: i64::MAX,
                        },
                    )
                    .next()
                    .map(|(o, _)| o.offset);
                (partition, oldest_pending.unwrap_or(next).min(next))
            })
            .collect();
        positions.sort_unstable();
        positions
    }

    fn trim_arrivals(&mut self) {
        while let Some(front) = self.arrivals.front() {
            if self.pending.contains_key(front) {
                break;
            }
            self.arrivals.pop_front();
        }
        // Removals out of arrival order leave holes; compact before they pile up.
        if self.arrivals.len() > 2 * self.pending.len() + 1024 {
            let pending = &self.pending;
            self.arrivals.retain(|o| pending.contains_key(o));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(partition: i32, offset: i64) -> (Origin, Transaction) {
        let origin = Origin { partition, offset };
        let submitted = crate::chain::parse_submitted(br#"{"from":"a","to":"b","amount":1}"#)
            .expect("valid transaction");
        (origin, Transaction::from_submitted(&submitted, origin))
    }

    #[test]
    fn commit_point_stops_at_oldest_pending() {
        let mut pool = Pool::new();
        let now = Instant::now();
        for offset in 0..5 {
            let (o, t) = tx(0, offset);
            pool.offer(o, t, now);
        }
        pool.consumed(0, 5); // a malformed record
        assert_eq!(pool.commit_positions(), vec![(0, 0)]);
        pool.remove(&[
            Origin {
                partition: 0,
                offset: 0,
            },
            Origin {
                partition: 0,
                offset: 1,
            },
        ]);
        assert_eq!(pool.commit_positions(), vec![(0, 2)]);
        pool.remove(&[2, 3, 4].map(|offset| Origin {
            partition: 0,
            offset,
        }));
        assert_eq!(pool.commit_positions(), vec![(0, 6)]);
    }

    #[test]
    fn settle_keeps_what_the_chain_claims_with_other_content() {
        let mut pool = Pool::new();
        let now = Instant::now();
        for offset in 0..3 {
            let (o, t) = tx(0, offset);
            pool.offer(o, t, now);
        }
        let claim = |offset, attempt, content| Claim {
            origin: Origin {
                partition: 0,
                offset,
            },
            attempt,
            content,
        };
        let ours = tx(0, 0).1.content();
        let forged = Some(crate::chain::ContentDigest([9; 8]));
        let conflicts = pool.settle(&[
            claim(0, 0, ours),
            claim(1, 0, forged),
            claim(2, 1, forged),
            claim(1, 0, forged),
        ]);
        let one = Origin {
            partition: 0,
            offset: 1,
        };
        assert_eq!(conflicts, vec![one]);
        assert_eq!(pool.len(), 2, "the matching claim settled offset 0 only");
        pool.reattempt(one, 1);
        let rebuilt = pool.oldest(1).remove(0);
        assert_eq!(rebuilt.attempt(), 1);
        assert!(rebuilt
            .canonical_json()
            .contains(r#""origin": {"attempt": 1, "offset": 1, "partition": 0}"#));
        assert_eq!(rebuilt.content(), ours);
        assert_eq!(pool.commit_positions(), vec![(0, 1)]);
    }

    #[test]
    fn oldest_is_arrival_order_and_revoke_forgets_partition() {
        let mut pool = Pool::new();
        let now = Instant::now();
        for (p, o) in [(1, 7), (0, 3), (1, 8)] {
            let (origin, t) = tx(p, o);
            assert!(pool.offer(origin, t, now));
        }
        let (dup, t) = tx(0, 3);
        assert!(
            !pool.offer(dup, t, now),
            "re-delivery is not a new transaction"
        );
        let order: Vec<_> = pool.oldest(3).iter().filter_map(|t| t.origin()).collect();
        assert_eq!(
            order,
            vec![
                Origin {
                    partition: 1,
                    offset: 7
                },
                Origin {
                    partition: 0,
                    offset: 3
                },
                Origin {
                    partition: 1,
                    offset: 8
                }
            ]
        );
        let three = pool.bytes();
        assert_eq!(pool.oldest_within(10, three / 3 * 2 + 4, 2).len(), 2);
        assert_eq!(pool.revoke(&[1]), 2);
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.bytes(), three / 3);
        assert_eq!(pool.commit_positions(), vec![(0, 3)]);
    }
}

/// Tests written against the mutants `cargo mutants -f src/node/pool.rs` found surviving
/// (docs/testing.md, "Mutation testing"): the byte count after removals, the results
/// nothing else looked at, and the arrival-list compaction.
#[cfg(test)]
mod mutant_tests {
    use super::*;

    fn at(offset: i64) -> Origin {
        Origin {
            partition: 0,
            offset,
        }
    }

    fn tx(offset: i64) -> Transaction {
        let submitted = crate::chain::parse_submitted(br#"{"from":"a","to":"b","amount":1}"#)
            .expect("valid transaction");
        Transaction::from_submitted(&submitted, at(offset))
    }

    fn filled(n: i64, now: Instant) -> Pool {
        let mut pool = Pool::new();
        for offset in 0..n {
            assert!(pool.offer(at(offset), tx(offset), now));
        }
        pool
    }

    /// What `bytes` must be: the canonical size of what is still pending.
    fn pending_bytes(pool: &Pool) -> usize {
        pool.oldest(usize::MAX)
            .iter()
            .map(Transaction::encoded_len)
            .sum()
    }

    #[test]
    fn emptiness_and_membership() {
        let now = Instant::now();
        let mut pool = Pool::new();
        assert!(pool.is_empty());
        assert!(!pool.contains(at(0)));
        assert_eq!(pool.oldest_entry(), None);
        assert_eq!(pool.oldest_wait(now), None);
        pool.offer(at(0), tx(0), now);
        assert!(!pool.is_empty());
        assert!(pool.contains(at(0)));
        assert!(!pool.contains(at(1)));
    }

    #[test]
    fn remove_counts_what_was_pending_and_returns_its_bytes() {
        let mut pool = filled(4, Instant::now());
        let one = tx(0).encoded_len();
        assert_eq!(pool.bytes(), 4 * one);
        // Offset 9 was never pending, and offset 1 is named twice: two removed.
        assert_eq!(pool.remove(&[at(1), at(9), at(1), at(2)]), 2);
        assert_eq!(pool.bytes(), 2 * one);
        assert_eq!(pool.bytes(), pending_bytes(&pool));
        assert_eq!(pool.remove(&[at(9)]), 0);
        assert_eq!(pool.remove(&[at(0), at(3)]), 2);
        assert_eq!(pool.bytes(), 0, "an empty pool holds no bytes");
    }

    /// A transaction settled by a block's claim leaves the pool and so must its bytes:
    /// the node stops reading at `MAX_PENDING_BYTES` and builds a block as soon as the
    /// count says the pending bytes fill one, so a count that only grows first makes
    /// every block a one-transaction block and finally stops intake for good.
    #[test]
    fn settle_gives_back_the_bytes_of_what_it_settles() {
        let mut pool = filled(3, Instant::now());
        let claims: Vec<Claim> = [0, 2]
            .map(|offset| Claim {
                origin: at(offset),
                attempt: 0,
                content: tx(offset).content(),
            })
            .to_vec();
        assert!(pool.settle(&claims).is_empty());
        assert_eq!(pool.len(), 1);
        assert_eq!(pool.bytes(), tx(1).encoded_len());
        assert_eq!(pool.bytes(), pending_bytes(&pool));
    }

    #[test]
    fn oldest_entry_and_wait_follow_arrival_order() {
        let start = Instant::now();
        let mut pool = Pool::new();
        pool.offer(at(5), tx(5), start);
        pool.offer(at(2), tx(2), start + Duration::from_secs(3));
        let later = start + Duration::from_secs(10);
        assert_eq!(pool.oldest_entry(), Some((at(5), tx(5).encoded_len())));
        assert_eq!(pool.oldest_wait(later), Some(Duration::from_secs(10)));
        pool.remove(&[at(5)]);
        assert_eq!(pool.oldest_entry(), Some((at(2), tx(2).encoded_len())));
        assert_eq!(pool.oldest_wait(later), Some(Duration::from_secs(7)));
    }

    #[test]
    fn oldest_within_stops_exactly_at_the_byte_budget() {
        let pool = filled(3, Instant::now());
        let per_tx = 2;
        let cost = tx(0).encoded_len() + per_tx;
        assert_eq!(pool.oldest_within(10, 2 * cost - 1, per_tx).len(), 1);
        assert_eq!(pool.oldest_within(10, 2 * cost, per_tx).len(), 2);
        assert_eq!(pool.oldest_within(10, 3 * cost, per_tx).len(), 3);
        assert_eq!(pool.oldest_within(2, 3 * cost, per_tx).len(), 2, "and at n");
        assert!(pool.oldest_within(10, cost - 1, per_tx).is_empty());
    }

    /// Holes left in the arrival list by out-of-order removals are compacted once they
    /// exceed the pending count plus 1024, not before (compacting on every removal
    /// would make removal linear in the pool's size).
    #[test]
    fn arrival_holes_are_compacted_past_the_bound_only() {
        let now = Instant::now();
        // Keep the first transaction pending so the front is never trimmed.
        let holes = |n: i64, keep: i64| {
            let mut pool = filled(n, now);
            let gone: Vec<Origin> = (keep..n).map(at).collect();
            pool.remove(&gone);
            assert_eq!(pool.len(), keep as usize);
            pool.arrivals.len()
        };
        assert_eq!(holes(1500, 1), 1, "1499 holes for 1 pending: compacted");
        assert_eq!(holes(1026, 1), 1026, "exactly 2 x 1 + 1024: kept");
        assert_eq!(holes(2000, 500), 2000, "1500 holes for 500 pending: kept");
        assert_eq!(holes(2100, 500), 500, "2100 > 2 x 500 + 1024: compacted");
        // Removing from the front trims without any compaction.
        let mut pool = filled(3, now);
        pool.remove(&[at(0), at(1)]);
        assert_eq!(pool.arrivals.len(), 1);
    }
}
