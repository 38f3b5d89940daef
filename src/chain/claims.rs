//! Claims on origins: which *content* the chain holds for a transaction origin, so
//! that a block claiming an origin with other content cannot make a node drop the real
//! record (issue 12: a forged block claiming partition 0, offsets H..H+9 before those
//! records exist used to censor them for ever).
//!
//! # The rule a node follows
//!
//! A transaction on the chain names its origin, `{"offset": o, "partition": p}`, and,
//! when that origin was already claimed by a block with other content,
//! `{"attempt": n, "offset": o, "partition": p}`: the identity v2's "each origin at most
//! once" rule checks is (partition, offset, attempt). Reading record (p, o), a node
//! computes the record's *content digest* (below) and asks the chain ([`Verdict`]):
//!
//! - no claim on (p, o): take it in (attempt 0, the tutorial-compatible form);
//! - a claim with the same content: the chain holds it; skip it;
//! - only claims with other content: a conflicting claim (an attack, or a bug
//!   somewhere): log it and take the record in with the lowest attempt not on the
//!   chain, so it lands anyway. Under `seed` the attempt member is ignored by every
//!   rule (Python never looks inside transactions) but keeps the node's bookkeeping
//!   uniform.
//!
//! The content digest is the first 8 bytes of SHA-256 over
//! `{"amount": A, "recipient": R, "sender": S}` in canonical JSON, computed by the node
//! from the record and by replay from the block. We compare content rather than a
//! digest of the record bytes written into the origin (the first design considered):
//! the transactions topic is readable by anyone, so an attacker can copy a record's
//! digest into a claim with other content; a content match cannot be forged that way.
//! A claim with the *same* content as the record is harmless: the chain then holds
//! exactly that transfer with that origin.
//!
//! # Determinism and memory
//!
//! Consensus never depends on this module: the v2 rule checks (partition, offset,
//! attempt) from chain content alone ([`super::OriginSet`]). What is kept here is a
//! node-local cache used only for intake decisions, enabled with
//! [`super::ChainState::track_claims`] (`verify` does not track). It holds content
//! digests only for origins a node may still read: at or above a per-partition
//! *floor*, the consumer group's committed offset, raised as the node commits
//! ([`super::ChainState::raise_claim_floor`]); everything below is dropped. A claim
//! below the floor (or outside the tracked partition) is treated as the chain holding
//! the record, which is the pre-claims behaviour: the node has already passed that
//! offset, so nothing it will read depends on it.

use std::collections::{BTreeMap, HashMap};

use sha2::{Digest, Sha256};

use super::canonical::{write_json_number, write_json_string};
use super::Origin;

/// First 8 bytes of SHA-256 of a transaction's canonical
/// `{"amount": A, "recipient": R, "sender": S}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentDigest(pub [u8; 8]);

impl ContentDigest {
    /// The digest of already-canonical `{"amount": …, "recipient": …, "sender": …}` bytes.
    pub fn of_canonical(bytes: &[u8]) -> Self {
        let full: [u8; 32] = Sha256::digest(bytes).into();
        let mut d = [0; 8];
        d.copy_from_slice(&full[..8]);
        ContentDigest(d)
    }

    /// The digest of the concatenation of `parts` (canonical bytes in pieces, e.g.
    /// slices of a transaction's canonical JSON around its origin member).
    pub fn of_canonical_parts(parts: &[&[u8]]) -> Self {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        let full: [u8; 32] = h.finalize().into();
        let mut d = [0; 8];
        d.copy_from_slice(&full[..8]);
        ContentDigest(d)
    }

    /// The digest of a transfer given as a JSON number literal and two strings.
    pub fn of_transfer(amount_literal: &str, recipient: &str, sender: &str) -> Self {
        let mut out = Vec::with_capacity(48 + recipient.len() + sender.len());
        out.extend_from_slice(b"{\"amount\": ");
        write_json_number(amount_literal, &mut out);
        out.extend_from_slice(b", \"recipient\": ");
        write_json_string(recipient, &mut out);
        out.extend_from_slice(b", \"sender\": ");
        write_json_string(sender, &mut out);
        out.push(b'}');
        Self::of_canonical(&out)
    }
}

/// One transaction's claim on an origin, as a block carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Claim {
    pub origin: Origin,
    pub attempt: u32,
    /// The content digest, when the chain state tracks claims for this origin.
    pub content: Option<ContentDigest>,
}

/// What the chain says about a record about to be taken in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No claim on this origin: take it in with attempt 0.
    Free,
    /// The chain holds this origin with this content (or, below the floor, holds the
    /// origin and no longer remembers its content): skip it.
    OnChain,
    /// Only other content claims this origin: take it in with `attempt`, the lowest
    /// one the chain does not hold (None: every attempt is taken, which would need
    /// 2^32 transactions on the chain).
    Conflict { attempt: Option<u32> },
}

/// Which partitions a node may read, and so needs claims for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClaimScope {
    /// The tutorial's mode: one partition, for good.
    Partition(i32),
    /// A consumer group: any partition may be assigned.
    All,
}

/// Content digests of claims at or above each partition's floor.
#[derive(Clone, Debug)]
pub(crate) struct ClaimTracker {
    scope: ClaimScope,
    floors: HashMap<i32, i64>,
    /// Per origin: (attempt, content) of every claim on it, in chain order.
    claims: BTreeMap<Origin, Vec<(u32, Option<ContentDigest>)>>,
}

impl ClaimTracker {
    pub fn new(scope: ClaimScope, floors: impl IntoIterator<Item = (i32, i64)>) -> Self {
        ClaimTracker {
            scope,
            floors: floors.into_iter().collect(),
            claims: BTreeMap::new(),
        }
    }

    /// Whether claims on `o` are remembered.
    pub fn wants(&self, o: Origin) -> bool {
        match self.scope {
            ClaimScope::Partition(p) if p != o.partition => return false,
            _ => {}
        }
        self.floors.get(&o.partition).is_none_or(|f| o.offset >= *f)
    }

    pub fn record(&mut self, c: &Claim) {
        if self.wants(c.origin) {
            self.claims
                .entry(c.origin)
                .or_default()
                .push((c.attempt, c.content));
        }
    }

    /// The contents claimed for `o`, if `o` is tracked.
    pub fn get(&self, o: Origin) -> Option<&[(u32, Option<ContentDigest>)]> {
        if !self.wants(o) {
            return None;
        }
        Some(self.claims.get(&o).map_or(&[], Vec::as_slice))
    }

    /// Forgets claims below `offset` in `partition` (never lowers a floor).
    pub fn raise_floor(&mut self, partition: i32, offset: i64) {
        let floor = self.floors.entry(partition).or_insert(offset);
        if *floor > offset {
            return;
        }
        *floor = offset;
        let below = self
            .claims
            .range(
                Origin {
                    partition,
                    offset: i64::MIN,
                }..Origin { partition, offset },
            )
            .map(|(o, _)| *o)
            .collect::<Vec<_>>();
        for o in below {
            self.claims.remove(&o);
        }
    }

    /// Number of origins with remembered claims.
    pub fn len(&self) -> usize {
        self.claims.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn o(p: i32, off: i64) -> Origin {
        Origin {
            partition: p,
            offset: off,
        }
    }

    #[test]
    fn digest_is_of_the_canonical_transfer() {
        let a = ContentDigest::of_transfer("1.50", "b\u{e9}", "a");
        let b = ContentDigest::of_canonical(
            br#"{"amount": 1.5, "recipient": "b\u00e9", "sender": "a"}"#,
        );
        assert_eq!(a, b);
        assert_ne!(a, ContentDigest::of_transfer("1.5", "a", "b\u{e9}"));
    }

    #[test]
    fn floors_and_scope() {
        let mut t = ClaimTracker::new(ClaimScope::Partition(0), [(0, 10)]);
        let claim = |off| Claim {
            origin: o(0, off),
            attempt: 0,
            content: None,
        };
        t.record(&claim(9));
        t.record(&claim(10));
        t.record(&claim(11));
        assert!(t.get(o(0, 9)).is_none() && t.get(o(1, 50)).is_none());
        assert_eq!(t.len(), 2);
        t.raise_floor(0, 11);
        assert_eq!(t.len(), 1);
        t.raise_floor(0, 5);
        assert!(t.get(o(0, 10)).is_none(), "a floor never goes down");
        assert_eq!(t.get(o(0, 12)), Some(&[][..]));
    }
}
