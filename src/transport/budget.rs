//! Byte budgets for the queues between a reader thread and the node loop.
//!
//! A channel bounded by a *count* of records bounds nothing when records can be
//! megabytes each. A [`ByteBudget`] is shared by the thread that fills a queue and the
//! loop that drains it: the producer side takes bytes before it enqueues, the consumer
//! side gives them back once it has processed the item. Invariant: the bytes taken and
//! not yet given back never exceed `limit`, except for one item taken while the budget
//! was empty (so a single record larger than the whole budget still moves and nothing
//! can wedge).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A shared count of bytes in flight with an upper bound (see the module docs).
#[derive(Debug)]
pub struct ByteBudget {
    used: AtomicUsize,
    limit: usize,
}

impl ByteBudget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(ByteBudget {
            used: AtomicUsize::new(0),
            limit,
        })
    }

    /// Takes `bytes` if they fit under the limit (or the budget is empty); returns
    /// whether they were taken.
    pub fn try_take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                (used == 0 || used.saturating_add(bytes) <= self.limit)
                    .then(|| used.saturating_add(bytes))
            })
            .is_ok()
    }

    /// Gives back bytes taken earlier.
    pub fn give_back(&self, bytes: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            });
    }

    /// Bytes currently taken.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::ByteBudget;

    #[test]
    fn bounded_but_never_wedged() {
        let budget = ByteBudget::new(100);
        assert!(budget.try_take(60));
        assert!(budget.try_take(40));
        assert!(!budget.try_take(1), "full");
        budget.give_back(100);
        assert!(
            budget.try_take(1_000),
            "an empty budget admits one oversized item"
        );
        assert!(!budget.try_take(1));
        budget.give_back(1_000);
        assert_eq!(budget.used(), 0);
    }
}
