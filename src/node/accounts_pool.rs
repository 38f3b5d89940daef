//! The accounts rules in the node: what intake accepts and which transfers go into
//! the next block. [`super::pool::Pool`] still owns the pending transactions and the
//! commit points; this is an index over it by sender and nonce.
//!
//! Invariants:
//! 1. Only transfers whose signature verified (strictly, for this chain's id) enter
//!    the pool; everything else is rejected at once with its reason, counted and
//!    committed past — never mined.
//! 2. At most one pending transfer per (sender, nonce): a second one is a replay or
//!    a double spend and is rejected. When the chain uses a nonce (our transfer, or a
//!    conflicting one another node mined), the pending transfer with it is dropped.
//! 3. A sender's transfers go into blocks in nonce order; up to [`HOLD_WINDOW`]
//!    nonces ahead of the chain are held until the gap fills (for at most
//!    [`HOLD_TIME`]); further ahead is rejected.
//! 4. Intake refuses a transfer its sender cannot pay as of the tip; a block is built
//!    by applying the selected transfers to a [`crate::chain::accounts::LedgerView`] of the tip, so it never
//!    overdraws an account: what would (several transfers that together exceed the
//!    balance) is left pending.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::keyfile::{self, KeyFileError};
use super::pool::Pool;
use super::NodeConfig;
use crate::chain::accounts::{
    genesis_block, AccountsError, AccountsGenesis, Address, ChainId, SignedTransfer,
};
use crate::chain::{self, ChainState, Origin, Rules, Transaction};

/// How far ahead of a sender's chain nonce a transfer may be and still be held.
pub const HOLD_WINDOW: u64 = 64;
/// How long a held transfer may wait for its gap to fill (or for funds) before it is
/// dropped.
pub const HOLD_TIME: Duration = Duration::from_secs(300);

/// The genesis record for a new chain under `config.rules` (accounts: with the
/// `--genesis-alloc` allocations).
pub fn genesis_record(config: &NodeConfig, timestamp: f64) -> Vec<u8> {
    match config.rules {
        Rules::Accounts {
            difficulty,
            chain_id,
            block_reward,
        } => genesis_block(
            &AccountsGenesis {
                chain_id,
                difficulty,
                block_reward,
                allocations: config.genesis_alloc.clone(),
            },
            timestamp,
        ),
        rules => chain::genesis(rules, timestamp),
    }
}

/// The node's address: the public key of the key kept in its data directory.
pub fn node_address(data_dir: &Path) -> Result<String, KeyFileError> {
    Ok(keyfile::address(&keyfile::node_key(data_dir)?).to_string())
}

#[derive(Debug)]
struct Held {
    origin: Origin,
    sig: [u8; 64],
    tx: Transaction,
    transfer: chain::accounts::Transfer,
    arrived: Instant,
}

/// What became of a record the intake offered.
#[derive(Debug, PartialEq, Eq)]
pub enum Offered {
    /// Verified and pending.
    Pending,
    /// This very record is already on the chain (re-read after a restart).
    AlreadyOnChain,
    /// This very record is already pending (re-delivered after a rebalance).
    AlreadyPending,
}

/// Pending transfers by sender and nonce.
#[derive(Debug)]
pub struct AccountsPool {
    chain_id: ChainId,
    by_sender: HashMap<Address, BTreeMap<u64, Held>>,
    /// Arrival order (sender, nonce, origin); may hold entries already gone.
    order: VecDeque<(Address, u64, Origin)>,
}

impl AccountsPool {
    pub fn new(chain_id: ChainId) -> Self {
        AccountsPool {
            chain_id,
            by_sender: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Checks a record of the transactions topic and, if it is a valid transfer that
    /// can still land, adds it to `pool`. An error is the reason to reject it.
    pub fn offer(
        &mut self,
        chain: &ChainState,
        pool: &mut Pool,
        origin: Origin,
        payload: &[u8],
    ) -> Result<Offered, AccountsError> {
        if chain.contains_origin(origin) {
            pool.consumed(origin.partition, origin.offset);
            return Ok(Offered::AlreadyOnChain);
        }
        let signed = SignedTransfer::parse(payload)?;
        let ledger = chain.accounts();
        // A sender seen on the chain has its key cached: no decompression.
        let verified = match ledger.and_then(|l| l.cached_key(&signed.transfer.from)) {
            Some(key) => signed.verify_with(&key, &self.chain_id)?,
            None => signed.verify(&self.chain_id)?,
        };
        let t = *verified.transfer();
        let account = ledger
            .map(|ledger| ledger.account(&t.from))
            .unwrap_or_default();
        let next = account.nonce;
        if t.nonce < next {
            return Err(AccountsError::NonceTooLow {
                account: t.from,
                expected: next,
                found: t.nonce,
            });
        }
        if t.nonce >= next.saturating_add(HOLD_WINDOW) {
            return Err(AccountsError::NonceTooHigh {
                account: t.from,
                expected: next,
                found: t.nonce,
                held: format!(
                    " (transfers up to {} nonces ahead are held until the gap fills)",
                    HOLD_WINDOW - 1
                ),
            });
        }
        if let Some(held) = self.by_sender.get(&t.from).and_then(|m| m.get(&t.nonce)) {
            if pool.contains(held.origin) {
                if held.origin == origin {
                    return Ok(Offered::AlreadyPending);
                }
                return Err(AccountsError::ConflictsWithPending {
                    partition: held.origin.partition,
                    offset: held.origin.offset,
                    same: if held.sig == signed.sig {
                        ", same bytes: a replay"
                    } else {
                        ""
                    },
                });
            }
        }
        // As in Ethereum's mempool: the sender must be able to pay as of the tip.
        // (Block building checks the cumulative effect of a sender's transfers.)
        if account.balance == 0 {
            return Err(AccountsError::EmptyAccount {
                account: t.from,
                amount: t.amount,
            });
        }
        if account.balance < t.amount {
            return Err(AccountsError::Overdraft {
                account: t.from,
                balance: account.balance,
                amount: t.amount,
            });
        }
        // The recipient must be an account that can exist (known accounts are).
        if !ledger.is_some_and(|l| l.contains(&t.to)) {
            t.to.key("to")?;
        }
        let tx = verified.into_block_tx(origin);
        if !pool.offer(origin, tx.clone(), Instant::now()) {
            return Ok(Offered::AlreadyPending);
        }
        self.by_sender.entry(t.from).or_default().insert(
            t.nonce,
            Held {
                origin,
                sig: signed.sig,
                tx,
                transfer: t,
                arrived: Instant::now(),
            },
        );
        self.order.push_back((t.from, t.nonce, origin));
        Ok(Offered::Pending)
    }

    /// After a block: drops transfers whose nonce the chain has used (ours that
    /// landed, and the losing side of a double spend), and those held too long.
    pub fn on_block(&mut self, chain: &ChainState, pool: &mut Pool) {
        let Some(ledger) = chain.accounts() else {
            return;
        };
        let now = Instant::now();
        let mut drop = Vec::new();
        self.by_sender.retain(|from, held| {
            let next = ledger.account(from).nonce;
            held.retain(|nonce, h| {
                if !pool.contains(h.origin) {
                    return false;
                }
                if *nonce < next {
                    debug!(partition = h.origin.partition, offset = h.origin.offset, sender = %from, nonce, "dropping transfer: its nonce is used on the chain");
                    drop.push(h.origin);
                    return false;
                }
                if now.saturating_duration_since(h.arrived) > HOLD_TIME {
                    warn!(partition = h.origin.partition, offset = h.origin.offset, sender = %from, nonce, next, "dropping transfer held for {} s: its nonce gap never filled or its sender cannot pay", HOLD_TIME.as_secs());
                    drop.push(h.origin);
                    return false;
                }
                true
            });
            !held.is_empty()
        });
        pool.remove(&drop);
        let by_sender = &self.by_sender;
        self.order.retain(|(from, nonce, origin)| {
            by_sender
                .get(from)
                .and_then(|m| m.get(nonce))
                .is_some_and(|h| h.origin == *origin)
        });
    }

    /// Up to `n` transfers for the next block on the tip, oldest sender first, each
    /// sender's in nonce order, none overdrawing an account.
    pub fn select(&self, chain: &ChainState, pool: &Pool, n: usize) -> Vec<Transaction> {
        let Some(ledger) = chain.accounts() else {
            return Vec::new();
        };
        let mut view = ledger.view();
        let mut out = Vec::new();
        for (from, nonce, _) in &self.order {
            if out.len() >= n {
                break;
            }
            let Some(held) = self.by_sender.get(from) else {
                continue;
            };
            let mut next = view.account(from).nonce;
            if *nonce != next {
                continue;
            }
            while out.len() < n {
                let Some(h) = held.get(&next).filter(|h| pool.contains(h.origin)) else {
                    break;
                };
                if view.apply(&h.transfer).is_err() {
                    break;
                }
                out.push(h.tx.clone());
                next += 1;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::atomic::AtomicBool;

    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::chain::accounts::Transfer;
    use crate::chain::{BlockTemplate, Miner};

    const CHAIN: ChainId = ChainId([3; 32]);

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn addr(n: u8) -> Address {
        Address::of(&key(n).verifying_key())
    }

    /// Account 1 holds 100.
    fn chain() -> ChainState {
        let mut s = ChainState::new();
        let g = genesis_block(
            &AccountsGenesis {
                chain_id: CHAIN,
                difficulty: 2,
                block_reward: 1,
                allocations: BTreeMap::from([(addr(1), 100)]),
            },
            1.0,
        );
        s.apply(&g).expect("genesis");
        s
    }

    fn signed(from: u8, to: u8, amount: u64, nonce: u64) -> Vec<u8> {
        Transfer {
            from: addr(from),
            to: addr(to),
            amount,
            nonce,
        }
        .sign(&key(from), &CHAIN)
        .to_json()
    }

    fn at(offset: i64) -> Origin {
        Origin {
            partition: 0,
            offset,
        }
    }

    fn mine(s: &mut ChainState, txs: &[Transaction]) {
        let tip = s.tip().expect("tip");
        let t = BlockTemplate::new(tip, s.rules().expect("rules"), tip.timestamp + 1.0, txs);
        let m = Miner::new(1)
            .mine(&t.work(), &AtomicBool::new(false))
            .expect("mined");
        s.apply(&t.seal(m.nonce)).expect("valid block");
    }

    #[test]
    fn nonce_order_holding_and_no_overdraft() {
        let mut s = chain();
        let mut pool = Pool::new();
        let mut ap = AccountsPool::new(CHAIN);
        // Nonces 2, 1 arrive before 0: held, then mined in order once 0 arrives.
        for (o, nonce) in [(0, 2), (1, 1)] {
            assert_eq!(
                ap.offer(&s, &mut pool, at(o), &signed(1, 2, 40, nonce)),
                Ok(Offered::Pending)
            );
        }
        assert!(ap.select(&s, &pool, 10).is_empty(), "gap: nothing to mine");
        ap.offer(&s, &mut pool, at(2), &signed(1, 2, 40, 0))
            .unwrap();
        let txs = ap.select(&s, &pool, 10);
        // 40 + 40 fit in 100; the third 40 would overdraw and waits.
        assert_eq!(txs.len(), 2);
        assert_eq!(txs[0].origin(), Some(at(2)));
        assert_eq!(txs[1].origin(), Some(at(1)));
        mine(&mut s, &txs);
        pool.remove(&[at(2), at(1)]);
        ap.on_block(&s, &mut pool);
        assert!(ap.select(&s, &pool, 10).is_empty(), "20 left, 40 needed");
        assert_eq!(pool.len(), 1, "the unaffordable transfer is still held");
        // Beyond the hold window, replays and conflicts are refused at once.
        let too_high = ap.offer(&s, &mut pool, at(3), &signed(1, 2, 1, 2 + HOLD_WINDOW));
        assert!(matches!(too_high, Err(AccountsError::NonceTooHigh { .. })));
        let replay = ap.offer(&s, &mut pool, at(4), &signed(1, 2, 40, 0));
        assert!(matches!(replay, Err(AccountsError::NonceTooLow { .. })));
        let same = ap.offer(&s, &mut pool, at(5), &signed(1, 2, 40, 2));
        assert!(
            matches!(same, Err(AccountsError::ConflictsWithPending { same, .. }) if same.contains("replay"))
        );
        let conflict = ap.offer(&s, &mut pool, at(6), &signed(1, 3, 5, 2));
        assert!(matches!(
            conflict,
            Err(AccountsError::ConflictsWithPending { offset: 0, .. })
        ));
        let broke = ap.offer(&s, &mut pool, at(7), &signed(1, 2, 21, 3));
        assert!(matches!(broke, Err(AccountsError::Overdraft { .. })));
        assert_eq!(
            ap.offer(&s, &mut pool, at(0), &signed(1, 2, 40, 2)),
            Ok(Offered::AlreadyPending)
        );
        let unsigned = ap.offer(&s, &mut pool, at(8), br#"{"from":"a","to":"b","amount":1}"#);
        assert_eq!(unsigned, Err(AccountsError::Unsigned));
    }

    #[test]
    fn a_conflicting_transfer_mined_elsewhere_drops_ours() {
        let mut s = chain();
        let mut pool = Pool::new();
        let mut ap = AccountsPool::new(CHAIN);
        ap.offer(&s, &mut pool, at(0), &signed(1, 2, 10, 0))
            .unwrap();
        // Another node mined the other transfer with nonce 0 (from another partition).
        let theirs = crate::chain::accounts::SignedTransfer::parse(&signed(1, 3, 10, 0))
            .expect("parses")
            .unverified_block_tx(Origin {
                partition: 1,
                offset: 0,
            });
        mine(&mut s, &[theirs]);
        ap.on_block(&s, &mut pool);
        assert!(pool.is_empty(), "the losing side is dropped");
        assert_eq!(pool.commit_positions(), vec![(0, 1)], "and committed past");
        assert!(ap.select(&s, &pool, 10).is_empty());
    }
}
