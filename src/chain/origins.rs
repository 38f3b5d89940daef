//! The set of transaction origins (partition, offset) already on the chain, kept as
//! sorted disjoint ranges per partition. A node consumes each partition in offset
//! order, so offsets reach the chain nearly contiguously and the set stays a handful
//! of ranges no matter how long the chain grows — memory is bounded by the gaps, not
//! by the number of transactions.

use std::collections::HashMap;

use super::Origin;

/// Origins seen so far.
#[derive(Clone, Debug, Default)]
pub struct OriginSet {
    /// Per partition: sorted, disjoint, non-adjacent half-open ranges `[start, end)`.
    partitions: HashMap<i32, Vec<(i64, i64)>>,
}

impl OriginSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn contains(&self, o: Origin) -> bool {
        let Some(ranges) = self.partitions.get(&o.partition) else {
            return false;
        };
        let i = ranges.partition_point(|r| r.1 <= o.offset);
        i < ranges.len() && ranges[i].0 <= o.offset
    }

    /// Adds `o`; returns false when it was already present.
    pub fn insert(&mut self, o: Origin) -> bool {
        let x = o.offset;
        let ranges = self.partitions.entry(o.partition).or_default();
        // First range that ends at or after x (could contain x or touch it).
        let i = ranges.partition_point(|r| r.1 < x);
        if i < ranges.len() && ranges[i].0 <= x && x < ranges[i].1 {
            return false;
        }
        let Some(x1) = x.checked_add(1) else {
            // i64::MAX cannot be represented half-open; Kafka never gets there.
            return false;
        };
        let joins_left = i < ranges.len() && ranges[i].1 == x;
        let joins_right_at = if joins_left { i + 1 } else { i };
        let joins_right = joins_right_at < ranges.len() && ranges[joins_right_at].0 == x1;
        match (joins_left, joins_right) {
            (true, true) => {
                ranges[i].1 = ranges[i + 1].1;
                ranges.remove(i + 1);
            }
            (true, false) => ranges[i].1 = x1,
            (false, true) => ranges[i].0 = x,
            (false, false) => ranges.insert(i, (x, x1)),
        }
        true
    }

    /// Total number of stored ranges (a measure of memory use).
    pub fn range_count(&self) -> usize {
        self.partitions.values().map(Vec::len).sum()
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

    proptest! {
        #[test]
        fn behaves_like_a_set(ops in proptest::collection::vec((0i32..3, 0i64..64), 0..200)) {
            let mut s = OriginSet::new();
            let mut model = BTreeSet::new();
            for (p, off) in ops {
                prop_assert_eq!(s.insert(o(p, off)), model.insert((p, off)));
            }
            for p in 0..3 {
                for off in 0..64 {
                    prop_assert_eq!(s.contains(o(p, off)), model.contains(&(p, off)));
                }
            }
        }
    }
}
