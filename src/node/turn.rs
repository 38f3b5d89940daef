//! Whose turn it is to publish the next block: the cure for stale storms (issue 15).
//!
//! Every node reads a new tip at about the same moment, and at 16 bits of work each
//! one that has a block's worth of transactions solves it within milliseconds: left
//! alone, all of them publish within one broker round trip of each other and all but
//! one block per height is thrown away (docs/consensus.md, "Stale storms").
//!
//! The policy: for each tip, every node ranks the identities it knows in a rotation
//! that starts right after the tip's miner (sorted by id; the tip's miner goes last),
//! or by `SHA-256(tip hash ‖ 0x00 ‖ id)` when the tip has no known miner. The node ranked first cuts its block early, at
//! half a block or when its oldest pending transaction waited half the block timeout
//! (it is its turn, and nobody else publishes for a grace; a node that never mines by
//! choice, with a huge block size and timeout, still never does), and publishes it as
//! soon as it is mined. The node ranked `r ≥ 1` waits for its turn ([`TipTurn`]): it
//! does not build or mine anything until `min(r, MAX_RANK) × grace` after it read the
//! tip; from then on it builds by the usual rule (a full block, or the oldest pending
//! transaction waited the block timeout) on the tip as of that moment, mines and
//! publishes at once. If a block at that height reaches the chain first, it has spent
//! nothing on the height: no block built, no proof of work thrown away. (An earlier
//! version built and mined at once and held the solved block until its turn; with two
//! busy nodes that mined every height twice and dropped half of it.) A node alone (it
//! knows no other publisher) keeps the usual rule: there is nobody to race, and block
//! size and timeout keep their meaning.
//!
//! Invariants:
//! - **Any node may extend the chain.** A node always counts itself; waiting for its
//!   turn only delays building, never forbids it, and the longest wait is
//!   `MAX_RANK × grace` after the tip (a dead or idle node first in line costs the
//!   others at most that plus one build and proof of work per height, and leaves the
//!   known set once its last block is more than [`WINDOW`] blocks deep).
//! - **Deterministic from the chain.** The known identities are the reward recipients
//!   of the last [`WINDOW`] blocks plus the node itself, so nodes that have all won a
//!   block recently agree on every rank without exchanging a message; a node that has
//!   never won ranks itself among the others and gets onto the chain within a few
//!   heights (it publishes at once when it thinks it is first).
//! - **No wire change.** Nothing is added to blocks or topics; the seed rules' blocks
//!   are byte for byte what they were, and a node that does not take turns (a Python
//!   node, an older kafkachain) only competes as before.
//! - **Timing is local.** Waits are measured from the moment this node read the tip,
//!   on its own monotonic clock; no clocks are compared between nodes.
//! - **The grace adapts**: the grace in force is the configured one, or twice the
//!   90th percentile of the last [`ROUND_TRIPS`] round trips of this node's own blocks
//!   (publish → read back) if that is longer, capped at [`MAX_GRACE_FACTOR`] × the configured one, so a slow broker or a
//!   loaded machine does not turn waits back into races.
//! - `grace = 0` turns the policy off: every node builds by the usual rule and
//!   publishes as soon as it has mined.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// Blocks whose reward recipients make up the known identities.
pub const WINDOW: usize = 64;
/// Waits stop growing after this many ranks: with made-up reward recipients in recent
/// blocks an attacker can push a node down the ranking, but delay it by no more than
/// `MAX_RANK × grace` per height.
pub const MAX_RANK: usize = 3;
/// The grace adapts to the cluster: at least twice the 90th percentile of the recent
/// round trips of this node's own blocks (publish → read back), so the first in line's
/// block has time to arrive; but never more than this many times the configured grace.
pub const MAX_GRACE_FACTOR: u32 = 5;
/// Round trips the grace is computed from.
pub const ROUND_TRIPS: usize = 32;

/// The turn policy and the recent publishers it ranks.
#[derive(Clone, Debug)]
pub struct Turns {
    grace: Duration,
    recent: VecDeque<String>,
    /// This node's last [`ROUND_TRIPS`] publish → read-back times.
    round_trips: VecDeque<Duration>,
}

impl Turns {
    /// `grace` per rank (zero turns the policy off).
    pub fn new(grace: Duration) -> Self {
        Turns {
            grace,
            recent: VecDeque::with_capacity(WINDOW),
            round_trips: VecDeque::with_capacity(ROUND_TRIPS),
        }
    }

    /// One of our blocks came back `took` after we published it.
    pub fn on_round_trip(&mut self, took: Duration) {
        if self.round_trips.len() == ROUND_TRIPS {
            self.round_trips.pop_front();
        }
        self.round_trips.push_back(took);
    }

    /// The grace per rank in force: the configured one, or twice the 90th percentile
    /// of the recent round trips if that is longer (the first in line's block must
    /// arrive within the wait even when the broker has a slow moment, not only on
    /// average), capped at [`MAX_GRACE_FACTOR`] × the configured one.
    pub fn grace(&self) -> Duration {
        let mut sorted: Vec<Duration> = self.round_trips.iter().copied().collect();
        sorted.sort_unstable();
        let p90 = sorted
            .get((sorted.len() * 9 / 10).min(sorted.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default();
        (p90 * 2).clamp(self.grace, self.grace * MAX_GRACE_FACTOR)
    }

    /// Whether turns are in force (a grace above zero).
    pub fn enabled(&self) -> bool {
        !self.grace.is_zero()
    }

    /// A block reached the chain; `miner` is its reward recipient, if it has one.
    pub fn on_block(&mut self, miner: Option<&str>) {
        if self.recent.len() == WINDOW {
            self.recent.pop_front();
        }
        // A block without a reward (a genesis) still ages the window.
        self.recent.push_back(miner.unwrap_or_default().to_string());
    }

    /// The identities ranked at the next height: recent publishers and `me`, distinct.
    pub fn known<'a>(&'a self, me: &'a str) -> Vec<&'a str> {
        let mut ids: Vec<&str> = self
            .recent
            .iter()
            .map(String::as_str)
            .filter(|id| !id.is_empty())
            .chain(std::iter::once(me))
            .collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// `me`'s place in the order for the block after `tip` (0 = my turn).
    ///
    /// The order is a rotation: the known identities sorted, starting right after the
    /// tip's miner (who goes last: it has just had its turn). Every node that knows the
    /// same identities therefore agrees on the order, and with `n` busy publishers each
    /// one's turn comes every `n` heights, never by luck. Only when the tip's miner is
    /// unknown (a block without a reward, such as a genesis) is the order drawn from
    /// `SHA-256(tip ‖ 0x00 ‖ id)`.
    pub fn rank(&self, tip: &[u8], me: &str) -> usize {
        let known = self.known(me);
        let last = self
            .recent
            .back()
            .filter(|id| !id.is_empty())
            .and_then(|miner| known.iter().position(|id| id == miner));
        match (last, known.iter().position(|id| *id == me)) {
            (Some(last), Some(mine)) => (mine + known.len() - last - 1) % known.len(),
            _ => {
                let mine = priority(tip, me);
                known
                    .into_iter()
                    .filter(|id| *id != me)
                    .filter(|id| (priority(tip, id), *id) < (mine, me))
                    .count()
            }
        }
    }

    /// How long after reading `tip` this node waits before it builds a block.
    pub fn wait(&self, tip: &[u8], me: &str) -> Duration {
        if !self.enabled() {
            return Duration::ZERO;
        }
        self.grace() * self.rank(tip, me).min(MAX_RANK) as u32
    }

    /// Whether `me` is first in line after `tip` among more than one known publisher:
    /// then it cuts its block early (half full, or half the block timeout).
    pub fn my_turn(&self, tip: &[u8], me: &str) -> bool {
        self.enabled() && self.known(me).len() > 1 && self.rank(tip, me) == 0
    }
}

/// This node's turn on one tip: from when it may build, and whether it wanted to
/// earlier (so a rival's block that arrives in the meantime cost it nothing).
///
/// Made for every tip the node reads ([`TipTurn::new`]); the node asks
/// [`TipTurn::may_build`] each time the usual rule says a block is due, and sleeps
/// until [`TipTurn::wake`] while it may not.
#[derive(Clone, Copy, Debug)]
pub struct TipTurn {
    seen: Instant,
    starts: Instant,
    /// The usual rule asked for a block before `starts`.
    waited: bool,
    /// The turn had started when a block was due: the node went on to build.
    built: bool,
}

impl TipTurn {
    /// The turn of `me` on `tip`, read at `seen`: it may build from `seen + hold`.
    pub fn new(turns: &Turns, tip: &[u8], me: &str, seen: Instant) -> Self {
        TipTurn {
            seen,
            starts: seen + turns.wait(tip, me),
            waited: false,
            built: false,
        }
    }

    /// No tip to wait on (before the chain is read): build whenever due.
    pub fn free(now: Instant) -> Self {
        TipTurn {
            seen: now,
            starts: now,
            waited: false,
            built: false,
        }
    }

    /// A block is due by the usual rule at `now`: may the node build and mine it?
    /// Yes from the turn's start on (at once for the first in line, a lone node or
    /// with turns off); before that, no, and the node sleeps until [`Self::wake`].
    pub fn may_build(&mut self, now: Instant) -> bool {
        if now < self.starts {
            self.waited = true;
            return false;
        }
        self.built = true;
        true
    }

    /// When to look again: the turn's start, while the node is waiting for it.
    pub fn wake(&self, now: Instant) -> Option<Instant> {
        (self.waited && !self.built && now < self.starts).then_some(self.starts)
    }

    /// The node wanted to build on this tip but never did: a rival's block took the
    /// height while it waited for its turn (call when the tip moves on).
    pub fn yielded(&self) -> bool {
        self.waited && !self.built
    }

    /// The node waited for its turn and then built on this tip (the first in line
    /// had nothing on the chain by then: dead, idle or slow).
    pub fn built_after_waiting(&self) -> bool {
        self.waited && self.built
    }

    /// When the node read the tip.
    pub fn seen(&self) -> Instant {
        self.seen
    }
}

/// The ranking key of `id` for the block after `tip`: lower goes first.
fn priority(tip: &[u8], id: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(tip);
    hasher.update([0]);
    hasher.update(id.as_bytes());
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_millis(100);

    fn turns_with(ids: &[&str]) -> Turns {
        let mut turns = Turns::new(GRACE);
        for id in ids {
            turns.on_block(Some(id));
        }
        turns
    }

    fn tip(n: u32) -> Vec<u8> {
        Sha256::digest(n.to_be_bytes()).to_vec()
    }

    #[test]
    fn nodes_that_know_each_other_agree_on_one_first_per_height() {
        let ids = ["node-a", "node-b", "node-c"];
        let turns = turns_with(&ids);
        for n in 0..500 {
            let tip = tip(n);
            let mut ranks: Vec<usize> = ids.iter().map(|id| turns.rank(&tip, id)).collect();
            ranks.sort_unstable();
            assert_eq!(ranks, vec![0, 1, 2], "tip {n}: every rank exactly once");
            let firsts = ids.iter().filter(|id| turns.my_turn(&tip, id)).count();
            assert_eq!(firsts, 1, "tip {n}: exactly one node's turn");
        }
    }

    #[test]
    fn the_turn_rotates_after_the_tips_miner() {
        let ids = ["node-a", "node-b", "node-c"];
        let mut turns = turns_with(&ids);
        // The tip's miner (node-c, the last block) goes last; then the sorted order.
        let tip = tip(1);
        assert_eq!(turns.rank(&tip, "node-a"), 0);
        assert_eq!(turns.rank(&tip, "node-b"), 1);
        assert_eq!(turns.rank(&tip, "node-c"), 2);
        // Whoever publishes, the next in the rotation is first after it.
        for (miner, first) in [
            ("node-a", "node-b"),
            ("node-b", "node-c"),
            ("node-c", "node-a"),
        ] {
            turns.on_block(Some(miner));
            assert!(turns.my_turn(&tip, first), "after {miner}: {first}'s turn");
            assert_eq!(turns.rank(&tip, miner), 2, "{miner} just published: last");
        }
    }

    #[test]
    fn two_busy_nodes_alternate_strictly() {
        let mut turns = turns_with(&["node-a", "node-b"]);
        let mut firsts = Vec::new();
        for n in 0..20 {
            let first = if turns.my_turn(&tip(n), "node-a") {
                "node-a"
            } else {
                "node-b"
            };
            firsts.push(first);
            turns.on_block(Some(first));
        }
        assert!(firsts.windows(2).all(|w| w[0] != w[1]), "{firsts:?}");
    }

    #[test]
    fn without_a_known_miner_the_order_is_drawn_from_the_tip() {
        let mut turns = turns_with(&["node-a", "node-b"]);
        turns.on_block(None);
        let firsts = (0..1000)
            .filter(|n| turns.rank(&tip(*n), "node-a") == 0)
            .count();
        assert!(
            (400..=600).contains(&firsts),
            "node-a first {firsts} of 1000"
        );
    }

    #[test]
    fn the_first_waits_for_nothing_and_the_others_wait_by_rank_up_to_the_cap() {
        let ids = ["a", "b", "c", "d", "e", "f"];
        let turns = turns_with(&ids);
        let tip = tip(7);
        let mut waits: Vec<Duration> = ids.iter().map(|id| turns.wait(&tip, id)).collect();
        waits.sort_unstable();
        assert_eq!(
            waits,
            vec![
                Duration::ZERO,
                GRACE,
                GRACE * 2,
                GRACE * 3,
                GRACE * 3,
                GRACE * 3
            ]
        );
    }

    #[test]
    fn a_node_always_counts_itself_so_a_newcomer_is_never_locked_out() {
        let mut turns = turns_with(&["old-1", "old-2"]);
        assert_eq!(turns.known("new").len(), 3);
        // The old nodes keep taking turns between themselves; the newcomer, which
        // counts itself, still finds its own turn in the rotation.
        let firsts = (0..300)
            .filter(|n| {
                turns.on_block(Some(["old-1", "old-2"][*n as usize % 2]));
                turns.rank(&tip(*n), "new") == 0
            })
            .count();
        assert!(
            firsts > 50,
            "the newcomer is first at some heights ({firsts})"
        );
        // Alone, a node is always first.
        let alone = Turns::new(GRACE);
        assert!((0..50).all(|n| alone.wait(&tip(n), "solo").is_zero()));
        // ... but it keeps the usual block-cutting rule: nobody to race.
        assert!((0..50).all(|n| !alone.my_turn(&tip(n), "solo")));
    }

    #[test]
    fn a_silent_node_leaves_the_known_set_after_the_window() {
        let mut turns = turns_with(&["dead", "live"]);
        assert_eq!(turns.known("live"), vec!["dead", "live"]);
        for _ in 0..WINDOW - 2 {
            turns.on_block(Some("live"));
        }
        assert_eq!(turns.known("live"), vec!["dead", "live"], "still inside");
        turns.on_block(Some("live"));
        assert_eq!(turns.known("live"), vec!["live"]);
        assert!((0..50).all(|n| turns.wait(&tip(n), "live").is_zero()));
    }

    #[test]
    fn blocks_without_a_reward_age_the_window_but_name_nobody() {
        let mut turns = turns_with(&["a"]);
        turns.on_block(None);
        assert_eq!(turns.known("b"), vec!["a", "b"]);
    }

    #[test]
    fn the_grace_follows_the_slow_round_trips_within_bounds() {
        let mut turns = Turns::new(GRACE);
        assert_eq!(turns.grace(), GRACE);
        turns.on_round_trip(Duration::from_millis(20));
        assert_eq!(turns.grace(), GRACE, "never below the configured grace");
        let mut slow = Turns::new(GRACE);
        slow.on_round_trip(Duration::from_millis(150));
        assert_eq!(slow.grace(), Duration::from_millis(300));
        // Mostly fast with a slow tail: the tail sets the grace, not the average.
        let mut tail = Turns::new(GRACE);
        for i in 0..ROUND_TRIPS {
            let ms = if i % 5 == 0 { 200 } else { 20 };
            tail.on_round_trip(Duration::from_millis(ms));
        }
        assert_eq!(tail.grace(), Duration::from_millis(400));
        // Old samples leave the window.
        for _ in 0..ROUND_TRIPS {
            tail.on_round_trip(Duration::from_millis(20));
        }
        assert_eq!(tail.grace(), GRACE);
        slow.on_round_trip(Duration::from_secs(60));
        assert_eq!(slow.grace(), GRACE * MAX_GRACE_FACTOR, "capped");
    }

    #[test]
    fn zero_grace_publishes_at_once() {
        let mut turns = Turns::new(Duration::ZERO);
        turns.on_round_trip(Duration::from_secs(1));
        turns.on_block(Some("a"));
        turns.on_block(Some("b"));
        assert!(!turns.enabled());
        assert!((0..50).all(|n| !turns.my_turn(&tip(n), "a") && !turns.my_turn(&tip(n), "b")));
        assert!((0..50)
            .all(|n| turns.wait(&tip(n), "a").is_zero() && turns.wait(&tip(n), "b").is_zero()));
    }

    #[test]
    fn the_first_in_line_builds_at_once_and_the_second_only_after_its_grace() {
        let turns = turns_with(&["node-a", "node-b"]);
        let tip = tip(3);
        let seen = Instant::now();
        let (first, second) = if turns.my_turn(&tip, "node-a") {
            ("node-a", "node-b")
        } else {
            ("node-b", "node-a")
        };
        let mut first = TipTurn::new(&turns, &tip, first, seen);
        assert!(first.may_build(seen), "first in line: no wait");
        assert_eq!(first.wake(seen), None);
        let mut second = TipTurn::new(&turns, &tip, second, seen);
        let almost = seen + GRACE - Duration::from_millis(1);
        assert!(
            !second.may_build(seen),
            "second in line builds nothing at once"
        );
        assert!(!second.may_build(almost));
        assert_eq!(
            second.wake(almost),
            Some(seen + GRACE),
            "sleeps until its turn"
        );
        assert!(
            second.may_build(seen + GRACE),
            "a silent first costs one grace"
        );
        assert_eq!(second.wake(seen + GRACE), None);
        assert!(second.built_after_waiting());
        assert!(!second.yielded());
    }

    #[test]
    fn a_rivals_block_during_the_wait_costs_nothing() {
        let turns = turns_with(&["node-a", "node-b", "node-c"]);
        let tip = tip(9);
        let seen = Instant::now();
        let last = ["node-a", "node-b", "node-c"]
            .into_iter()
            .find(|id| turns.rank(&tip, id) == 2)
            .unwrap_or_default();
        let mut turn = TipTurn::new(&turns, &tip, last, seen);
        // Due by the usual rule all through the first in line's grace and the
        // second's: never allowed to build before two graces.
        for ms in [0, 50, 100, 150, 199] {
            assert!(!turn.may_build(seen + Duration::from_millis(ms)), "{ms} ms");
        }
        assert_eq!(turn.wake(seen), Some(seen + GRACE * 2));
        // The first in line's block arrives: the height is yielded, nothing was built.
        assert!(turn.yielded());
        assert!(!turn.built_after_waiting());
        // A turn never asked (nothing was due) yields nothing and sets no alarm.
        let idle = TipTurn::new(&turns, &tip, last, seen);
        assert!(!idle.yielded());
        assert_eq!(idle.wake(seen), None);
    }

    #[test]
    fn the_wait_is_capped_at_max_rank_graces() {
        let ids = ["a", "b", "c", "d", "e", "f"];
        let turns = turns_with(&ids);
        let tip = tip(11);
        let seen = Instant::now();
        for id in ids {
            let mut turn = TipTurn::new(&turns, &tip, id, seen);
            assert!(
                turn.may_build(seen + GRACE * MAX_RANK as u32),
                "{id} builds after at most {MAX_RANK} graces"
            );
        }
    }

    #[test]
    fn alone_or_with_turns_off_a_node_builds_whenever_due() {
        let seen = Instant::now();
        let alone = Turns::new(GRACE);
        let mut off = Turns::new(Duration::ZERO);
        off.on_block(Some("a"));
        off.on_block(Some("b"));
        for n in 0..50 {
            let mut solo = TipTurn::new(&alone, &tip(n), "solo", seen);
            assert!(solo.may_build(seen));
            for id in ["a", "b"] {
                let mut turn = TipTurn::new(&off, &tip(n), id, seen);
                assert!(turn.may_build(seen), "grace 0: {id} at once");
                assert!(!turn.built_after_waiting());
            }
        }
        assert!(TipTurn::free(seen).may_build(seen));
    }
}
