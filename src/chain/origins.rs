//! The set of transaction origins already on the chain: what the v2 rule "each origin
//! at most once" checks, and what a node asks before taking a record in.
//!
//! An origin's identity is (partition, offset, attempt). Attempt 0 is the common case
//! (every block an honest node builds, unless the origin was claimed first by a block
//! with other content, see [`super::claims`]): those are kept as disjoint, non-adjacent
//! inclusive ranges per partition in a `BTreeMap`, so insertion and lookup are
//! O(log r) for r ranges, in any order. Attempts above 0 are rare and kept one by one.
//!
//! # Memory
//!
//! A node consumes each partition in offset order, so offsets reach the chain nearly
//! contiguously and a partition is a handful of ranges however long the chain. The
//! number of ranges is exactly the number of maximal runs of attempt-0 origins, i.e.
//! one more than the number of gaps between them; each range costs one B-tree entry
//! (about 40 bytes). A gap is an offset below a partition's highest origin that is not
//! on the chain: a transaction still pending somewhere (it closes when that lands), a
//! malformed record (never lands: its gap stays), or disorder a block author chose.
//! The set cannot forget a gap deterministically without changing the rule (a record
//! in a gap may still arrive legitimately, and every node must agree whether it is a
//! duplicate), so the bound is: ranges ≤ 1 + gaps per partition. `docs/consensus.md`
//! discusses it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::Origin;

/// Origins seen so far.
#[derive(Clone, Debug, Default)]
pub struct OriginSet {
    /// Attempt 0, per partition: start offset → inclusive end offset; disjoint and
    /// non-adjacent (adjacent ranges are merged).
    partitions: HashMap<i32, BTreeMap<i64, i64>>,
    /// Attempts 1 and above: (partition, offset, attempt).
    retries: BTreeSet<(i32, i64, u32)>,
}

impl OriginSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether attempt 0 of `o` is present.
    pub fn contains(&self, o: Origin) -> bool {
        let Some(ranges) = self.partitions.get(&o.partition) else {
            return false;
        };
        ranges
            .range(..=o.offset)
            .next_back()
            .is_some_and(|(_, &end)| end >= o.offset)
    }

    /// Whether `attempt` of `o` is present.
    pub fn contains_attempt(&self, o: Origin, attempt: u32) -> bool {
        if attempt == 0 {
            self.contains(o)
        } else {
            self.retries.contains(&(o.partition, o.offset, attempt))
        }
    }

    /// Whether any attempt of `o` is present.
    pub fn contains_any(&self, o: Origin) -> bool {
        self.contains(o)
            || self
                .retries
                .range((o.partition, o.offset, 1)..=(o.partition, o.offset, u32::MAX))
                .next()
                .is_some()
    }

    /// The lowest attempt of `o` not present (None when all 2^32 are taken).
    pub fn lowest_free_attempt(&self, o: Origin) -> Option<u32> {
        if !self.contains(o) {
            return Some(0);
        }
        let mut want = 1u32;
        for &(_, _, a) in self
            .retries
            .range((o.partition, o.offset, 1)..=(o.partition, o.offset, u32::MAX))
        {
            if a != want {
                break;
            }
            want = want.checked_add(1)?;
        }
        Some(want)
    }

    /// Adds attempt 0 of `o`; returns false when it was already present.
    pub fn insert(&mut self, o: Origin) -> bool {
        let x = o.offset;
        let ranges = self.partitions.entry(o.partition).or_default();
        let left = ranges.range(..=x).next_back().map(|(&s, &e)| (s, e));
        if let Some((_, end)) = left {
            if end >= x {
                return false;
            }
        }
        // Inclusive ends: x - 1 and x + 1 only exist when x is not at the i64 edge.
        let joins_left = left.filter(|&(_, end)| x.checked_sub(1) == Some(end));
        let right = x
            .checked_add(1)
            .and_then(|next| ranges.get(&next).map(|&e| (next, e)));
        match (joins_left, right) {
            (Some((start, _)), Some((rstart, rend))) => {
                ranges.remove(&rstart);
                ranges.insert(start, rend);
            }
            (Some((start, _)), None) => {
                ranges.insert(start, x);
            }
            (None, Some((rstart, rend))) => {
                ranges.remove(&rstart);
                ranges.insert(x, rend);
            }
            (None, None) => {
                ranges.insert(x, x);
            }
        }
        true
    }

    /// Adds `attempt` of `o`; returns false when it was already present.
    pub fn insert_attempt(&mut self, o: Origin, attempt: u32) -> bool {
        if attempt == 0 {
            self.insert(o)
        } else {
            self.retries.insert((o.partition, o.offset, attempt))
        }
    }

    /// Total number of stored ranges and retries (a measure of memory use).
    pub fn range_count(&self) -> usize {
        self.partitions.values().map(BTreeMap::len).sum::<usize>() + self.retries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn o(p: i32, off: i64) -> Origin {
        Origin {
            partition: p,
            offset: off,
        }
    }

    #[test]
    fn contiguous_stays_one_range() {
        let mut s = OriginSet::new();
        for i in (0..1000).rev().step_by(2).chain((0..1000).step_by(2)) {
            assert!(s.insert(o(0, i)));
        }
        assert_eq!(s.range_count(), 1);
        assert!(!s.insert(o(0, 500)));
        assert!(s.contains(o(0, 999)) && !s.contains(o(0, 1000)) && !s.contains(o(1, 0)));
    }

    #[test]
    fn the_edges_of_i64() {
        let mut s = OriginSet::new();
        assert!(s.insert(o(0, i64::MAX)));
        assert!(!s.insert(o(0, i64::MAX)));
        assert!(s.insert(o(0, i64::MAX - 1)));
        assert!(s.insert(o(0, 0)));
        assert_eq!(s.range_count(), 2);
        assert!(s.contains(o(0, i64::MAX)) && s.contains(o(0, i64::MAX - 1)));
    }

    #[test]
    fn attempts() {
        let mut s = OriginSet::new();
        let x = o(3, 7);
        assert_eq!(s.lowest_free_attempt(x), Some(0));
        assert!(!s.contains_any(x));
        assert!(s.insert_attempt(x, 2));
        assert!(s.contains_any(x) && !s.contains(x));
        assert_eq!(s.lowest_free_attempt(x), Some(0));
        assert!(s.insert_attempt(x, 0));
        assert_eq!(s.lowest_free_attempt(x), Some(1));
        assert!(s.insert_attempt(x, 1));
        assert!(!s.insert_attempt(x, 1));
        assert_eq!(s.lowest_free_attempt(x), Some(3));
        assert!(!s.contains_any(o(3, 8)) && !s.contains_attempt(o(3, 6), 1));
    }

    proptest! {
        #[test]
        fn behaves_like_a_set(ops in proptest::collection::vec((0i32..3, 0i64..64, 0u32..3), 0..200)) {
            let mut s = OriginSet::new();
            let mut model = BTreeSet::new();
            for (p, off, a) in ops {
                prop_assert_eq!(s.insert_attempt(o(p, off), a), model.insert((p, off, a)));
            }
            for p in 0..3 {
                for off in 0..64 {
                    for a in 0..3 {
                        prop_assert_eq!(s.contains_attempt(o(p, off), a), model.contains(&(p, off, a)));
                    }
                    let free = (0..).find(|a| !model.contains(&(p, off, *a)));
                    prop_assert_eq!(s.lowest_free_attempt(o(p, off)), free);
                }
            }
            // Ranges never touch: the count is the number of maximal runs.
            let runs: usize = (0..3).map(|p| {
                (0..64).filter(|&off| model.contains(&(p, off, 0))
                    && (off == 0 || !model.contains(&(p, off - 1, 0)))).count()
            }).sum();
            let retries = model.iter().filter(|(_, _, a)| *a > 0).count();
            prop_assert_eq!(s.range_count(), runs + retries);
        }
    }
}
