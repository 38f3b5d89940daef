//! The accounts rules in the node: what intake accepts and which transfers go into
//! the next block. [`super::pool::Pool`] still owns the pending transactions and the
//! commit points; this is an index over it by sender and nonce.
//!
//! Invariants:
//! 1. Only transfers whose signature verified (for this chain's id; in batches on the
//!    [`super::verifier`] thread) enter the pool; everything else is rejected at once
//!    with its reason, counted and committed past — never mined. Intake records are
//!    settled (pooled or rejected) in arrival order: until its verdict is in, a record
//!    holds back the commit position of its partition.
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
//! 5. A transfer's signature is checked once here: its verdict is the same in every
//!    batch ([`crate::chain::accounts::sigcheck`]), so a block of pooled transfers
//!    passes every node's signature check. Before mining, the node vouches for the
//!    block ([`AccountsPool::vouch`]), so its own block is not checked again when it
//!    comes back.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use super::keyfile::{self, KeyFileError};
use super::pool::Pool;
use super::verifier::{Job, Verdicts, Verifier};
use super::NodeConfig;

use crate::chain::accounts::{
    genesis_block, verify_many, AccountsError, AccountsGenesis, Address, ChainId, LedgerView,
    SignedTransfer, VerifiedTransfer,
};
use crate::chain::{self, ChainState, Origin, Rules, Transaction};

/// How far ahead of a sender's chain nonce a transfer may be and still be held.
pub const HOLD_WINDOW: u64 = 64;
/// How long a held transfer may wait for its gap to fill (or for funds) before it is
/// dropped.
pub const HOLD_TIME: Duration = Duration::from_secs(300);
/// Most transfers in one verifier job: a bigger batch costs less per signature
/// (the multiscalar multiplication), a smaller one answers sooner.
const MAX_JOB: usize = 2048;

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
    verified: VerifiedTransfer,
    tx: Transaction,
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

/// A record taken from the intake, waiting for its turn in arrival order.
#[derive(Debug)]
struct Queued {
    origin: Origin,
    slot: Slot,
}

#[derive(Debug)]
enum Slot {
    /// Its signature is being checked: transfer number `seq` sent to the verifier.
    Waiting { seq: u64 },
    /// Parsed and checked (or refused on the way).
    Checked(Result<VerifiedTransfer, AccountsError>),
    /// Its origin is on the chain already (re-read after a restart or rebalance).
    OnChain,
    /// Its partition was revoked: dropped without a trace (the next owner re-reads it).
    Revoked,
}

/// Pending transfers by sender and nonce, and the intake records still being checked.
#[derive(Debug)]
pub struct AccountsPool {
    chain_id: ChainId,
    by_sender: HashMap<Address, BTreeMap<u64, Held>>,
    /// Arrival order (sender, nonce, origin); may hold entries already gone.
    order: VecDeque<(Address, u64, Origin)>,
    /// Records taken from the intake, in arrival order, until settled.
    queue: VecDeque<Queued>,
    /// Transfers to send to the verifier as the next job; `job_seq` numbers the first.
    job: Vec<SignedTransfer>,
    job_seq: u64,
    verifier: Option<Verifier>,
    /// Set when [`AccountsPool::select`] found nothing to mine; cleared by anything that
    /// could change that (a new pending transfer, a block), so a pool of held transfers
    /// is not scanned again on every turn of the loop.
    stuck: Cell<bool>,
    /// The transfers [`AccountsPool::select`] last returned, in order.
    selected: RefCell<Vec<VerifiedTransfer>>,
    /// When [`AccountsPool::on_block`] next sweeps the whole pool.
    next_sweep: Option<Instant>,
}

/// How often [`AccountsPool::on_block`] sweeps every pending transfer (for those held
/// longer than [`HOLD_TIME`]); between sweeps it visits the block's senders only.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// How many of `txs` (a selection, in order) fit in `room` bytes of block with
/// `separator` bytes between transactions: a block takes that prefix.
pub fn fitting(txs: &[Transaction], room: usize, separator: usize) -> usize {
    let mut used = 0;
    txs.iter()
        .take_while(|t| {
            used += t.encoded_len() + separator;
            used <= room
        })
        .count()
}

impl AccountsPool {
    /// Without a verifier thread: [`AccountsPool::take`] checks signatures at once.
    pub fn new(chain_id: ChainId) -> Self {
        AccountsPool {
            chain_id,
            by_sender: HashMap::new(),
            order: VecDeque::new(),
            queue: VecDeque::new(),
            job: Vec::new(),
            job_seq: 0,
            verifier: None,
            stuck: Cell::new(false),
            selected: RefCell::new(Vec::new()),
            next_sweep: None,
        }
    }

    /// With a verifier thread checking intake signatures in batches (the node's way).
    pub fn with_verifier(chain_id: ChainId) -> std::io::Result<Self> {
        let mut pool = AccountsPool::new(chain_id);
        pool.verifier = Some(Verifier::start(chain_id)?);
        Ok(pool)
    }

    /// Checks a record of the transactions topic at once (signature included) and, if
    /// it is a valid transfer that can still land, adds it to `pool`. An error is the
    /// reason to reject it. The node uses [`AccountsPool::take`] instead, which checks
    /// signatures in batches on the verifier thread; this is the same decision, one
    /// record at a time.
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
        // A sender seen on the chain has its key cached: no decompression.
        let verified = match chain
            .accounts()
            .and_then(|l| l.cached_key(&signed.transfer.from))
        {
            Some(key) => signed.verify_with(&key, &self.chain_id)?,
            None => signed.verify(&self.chain_id)?,
        };
        self.admit(chain, pool, origin, verified)
    }

    /// Queues a record of the transactions topic for its signature check on the
    /// verifier thread (in batches: see [`AccountsPool::flush`]). Its verdict is applied
    /// by [`AccountsPool::on_verdicts`], in arrival order.
    pub fn take(&mut self, chain: &ChainState, origin: Origin, payload: &[u8]) {
        let slot = if chain.contains_origin(origin) {
            Slot::OnChain
        } else {
            match SignedTransfer::parse(payload) {
                Err(e) => Slot::Checked(Err(e)),
                Ok(signed) if self.verifier.is_some() => {
                    let seq = self.job_seq + self.job.len() as u64;
                    self.job.push(signed);
                    Slot::Waiting { seq }
                }
                // No verifier thread (unit tests): check at once.
                Ok(signed) => Slot::Checked(
                    verify_many(&[signed], &self.chain_id, &mut HashMap::new())
                        .pop()
                        .unwrap_or(Err(AccountsError::MalformedSignature("not checked"))),
                ),
            }
        };
        self.queue.push_back(Queued { origin, slot });
        if self.job.len() >= MAX_JOB {
            self.flush();
        }
    }

    /// Sends the transfers queued since the last flush to the verifier as one job.
    pub fn flush(&mut self) {
        let Some(verifier) = &self.verifier else {
            return;
        };
        if self.job.is_empty() {
            return;
        }
        let transfers = std::mem::take(&mut self.job);
        let first_seq = self.job_seq;
        self.job_seq += transfers.len() as u64;
        if !verifier.submit(Job {
            first_seq,
            transfers,
        }) {
            warn!("the transfer verifier thread is gone; intake stalls");
        }
    }

    /// Records and their verdicts that arrived from the intake but are not yet in the
    /// pool or rejected (they count against the pool's limits).
    pub fn in_flight(&self) -> usize {
        self.queue.len()
    }

    /// Where the verifier's verdicts arrive (never, without a verifier thread).
    pub fn verdicts(&self) -> crossbeam_channel::Receiver<Verdicts> {
        match &self.verifier {
            Some(v) => v.verdicts().clone(),
            None => crossbeam_channel::never(),
        }
    }

    /// Applies verdicts from the verifier, then [`AccountsPool::settle`].
    pub fn on_verdicts(
        &mut self,
        chain: &ChainState,
        pool: &mut Pool,
        verdicts: Verdicts,
    ) -> Vec<(Origin, Result<Offered, AccountsError>)> {
        let first = verdicts.first_seq;
        let end = first + verdicts.results.len() as u64;
        let mut results = verdicts.results.into_iter();
        let mut next = first;
        for q in self.queue.iter_mut() {
            let Slot::Waiting { seq } = q.slot else {
                continue;
            };
            if seq < first {
                continue;
            }
            if seq >= end {
                break;
            }
            // Slots revoked in between took their sequence numbers with them.
            let verdict = results.nth((seq - next) as usize);
            next = seq + 1;
            match verdict {
                Some(v) => q.slot = Slot::Checked(v),
                None => break,
            }
        }
        self.settle(chain, pool)
    }

    /// Forgets queued records of partitions the group took away (their next owner
    /// re-reads them); a verdict still on its way for one is ignored.
    pub fn revoke(&mut self, partitions: &[i32]) {
        for q in self.queue.iter_mut() {
            if partitions.contains(&q.origin.partition) {
                q.slot = Slot::Revoked;
            }
        }
    }

    /// Puts the records at the front of the queue whose verdicts are in into the pool
    /// or rejects them, in arrival order, stopping at the first still being checked.
    /// Returns what became of each; an error is the reason to reject it (the caller
    /// logs and counts it and marks it consumed).
    pub fn settle(
        &mut self,
        chain: &ChainState,
        pool: &mut Pool,
    ) -> Vec<(Origin, Result<Offered, AccountsError>)> {
        let mut out = Vec::new();
        while self
            .queue
            .front()
            .is_some_and(|q| !matches!(q.slot, Slot::Waiting { .. }))
        {
            let Some(Queued { origin, slot }) = self.queue.pop_front() else {
                break;
            };
            match slot {
                Slot::Waiting { .. } | Slot::Revoked => {}
                Slot::OnChain => {
                    pool.consumed(origin.partition, origin.offset);
                    out.push((origin, Ok(Offered::AlreadyOnChain)));
                }
                Slot::Checked(verdict) => {
                    let result = verdict.and_then(|v| self.admit(chain, pool, origin, v));
                    out.push((origin, result));
                }
            }
        }
        if !out.is_empty() {
            self.stuck.set(false);
        }
        out
    }

    /// The chain-dependent checks of a transfer whose signature verified, and its
    /// entry into the pool.
    fn admit(
        &mut self,
        chain: &ChainState,
        pool: &mut Pool,
        origin: Origin,
        verified: VerifiedTransfer,
    ) -> Result<Offered, AccountsError> {
        if chain.contains_origin(origin) {
            pool.consumed(origin.partition, origin.offset);
            return Ok(Offered::AlreadyOnChain);
        }
        let signed = *verified.signed();
        let ledger = chain.accounts();
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
                    same: if held.verified.signed().sig == signed.sig {
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
                verified,
                tx,
                arrived: Instant::now(),
            },
        );
        self.order.push_back((t.from, t.nonce, origin));
        self.stuck.set(false);
        Ok(Offered::Pending)
    }

    /// After a block: drops transfers whose nonce the chain has used (ours that
    /// landed, and the losing side of a double spend), and those held too long.
    ///
    /// Only the block's senders can have a used nonce, so only they are visited; the
    /// whole pool is swept (held too long, or gone from the pool) at most once per
    /// [`SWEEP_EVERY`], so a block costs what it carries, not what is pending.
    pub fn on_block(&mut self, chain: &ChainState, pool: &mut Pool) {
        self.stuck.set(false);
        let Some(ledger) = chain.accounts() else {
            return;
        };
        let now = Instant::now();
        let sweep = self.next_sweep.is_none_or(|t| now >= t);
        let mut drop = Vec::new();
        let mut visit = |from: &Address, held: &mut BTreeMap<u64, Held>| {
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
        };
        if sweep {
            self.next_sweep = Some(now + SWEEP_EVERY);
            self.by_sender.retain(|from, held| visit(from, held));
        } else {
            for from in ledger.last_senders() {
                if let Some(held) = self.by_sender.get_mut(from) {
                    if !visit(from, held) {
                        self.by_sender.remove(from);
                    }
                }
            }
        }
        pool.remove(&drop);
        self.trim_order(pool.len());
    }

    /// Whether the arrival-order entry (sender, nonce, origin) is still pending here.
    fn is_live(&self, (from, nonce, origin): &(Address, u64, Origin)) -> bool {
        self.by_sender
            .get(from)
            .and_then(|m| m.get(nonce))
            .is_some_and(|h| h.origin == *origin)
    }

    /// Drops gone entries from the front of the arrival order, and compacts it when
    /// gone entries elsewhere outnumber the `pending` ones (plus slack), so that this
    /// stays linear in the blocks' size however many transfers are pending.
    fn trim_order(&mut self, pending: usize) {
        while self.order.front().is_some_and(|e| !self.is_live(e)) {
            self.order.pop_front();
        }
        if self.order.len() > 2 * pending + 1024 {
            let order = std::mem::take(&mut self.order);
            self.order = order.into_iter().filter(|e| self.is_live(e)).collect();
        }
    }

    /// Vouches for the block about to be mined from the first `count` transfers of
    /// the last [`AccountsPool::select`] ([`crate::chain::accounts::Ledger::vouch`]):
    /// their signatures verified at intake, so the block's check passes, and it is not
    /// run again when our block comes back from the chain topic.
    pub fn vouch(&mut self, chain: &ChainState, count: usize) {
        let Some(ledger) = chain.accounts() else {
            return;
        };
        let selected = std::mem::take(&mut *self.selected.borrow_mut());
        ledger.vouch(&selected[..count.min(selected.len())]);
    }

    /// Up to `n` transfers for the next block on the tip, oldest sender first, each
    /// sender's in nonce order, none overdrawing an account.
    pub fn select(&self, chain: &ChainState, pool: &Pool, n: usize) -> Vec<Transaction> {
        let Some(ledger) = chain.accounts() else {
            return Vec::new();
        };
        if self.stuck.get() {
            return Vec::new();
        }
        let mut selected = self.selected.borrow_mut();
        selected.clear();
        let out = self.choose(ledger.view(), pool, n, &mut selected);
        self.stuck.set(out.is_empty());
        out
    }

    /// The selection of [`AccountsPool::select`] on top of `view`; `selected` gets
    /// each transfer.
    fn choose(
        &self,
        mut view: LedgerView<'_>,
        pool: &Pool,
        n: usize,
        selected: &mut Vec<VerifiedTransfer>,
    ) -> Vec<Transaction> {
        let mut out = Vec::new();
        for entry in &self.order {
            if out.len() >= n {
                break;
            }
            // Entries of transfers no longer pending here are skipped (see `trim_order`).
            if !self.is_live(entry) {
                continue;
            }
            let (from, nonce, _) = entry;
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
                if view.apply(h.verified.transfer()).is_err() {
                    break;
                }
                out.push(h.tx.clone());
                selected.push(h.verified);
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

    /// Between sweeps `on_block` visits the block's senders only: the losing side of a
    /// double spend is still dropped there.
    #[test]
    fn between_sweeps_the_blocks_senders_are_visited() {
        let mut s = chain();
        let mut pool = Pool::new();
        let mut ap = AccountsPool::new(CHAIN);
        ap.offer(&s, &mut pool, at(0), &signed(1, 2, 10, 0))
            .unwrap();
        let ours = ap.select(&s, &pool, 10);
        mine(&mut s, &ours);
        ap.on_block(&s, &mut pool);
        assert!(pool.is_empty(), "ours landed");
        ap.offer(&s, &mut pool, at(1), &signed(1, 2, 10, 1))
            .unwrap();
        assert!(
            ap.next_sweep.is_some_and(|t| t > Instant::now()),
            "the first block swept; the next one visits its senders"
        );
        let theirs = crate::chain::accounts::SignedTransfer::parse(&signed(1, 3, 10, 1))
            .expect("parses")
            .unverified_block_tx(Origin {
                partition: 1,
                offset: 0,
            });
        mine(&mut s, &[theirs]);
        assert_eq!(
            s.accounts().map(|l| l.last_senders().to_vec()),
            Some(vec![addr(1)])
        );
        ap.on_block(&s, &mut pool);
        assert!(pool.is_empty(), "the losing side is dropped");
        assert!(ap.select(&s, &pool, 10).is_empty());
        assert!(ap.order.is_empty(), "and its arrival entry trimmed");
    }

    #[test]
    fn our_block_is_vouched_for_exactly_as_selected() {
        let mut s = chain();
        let mut pool = Pool::new();
        let mut ap = AccountsPool::new(CHAIN);
        for nonce in 0..4 {
            ap.offer(&s, &mut pool, at(nonce as i64), &signed(1, 2, 10, nonce))
                .unwrap();
        }
        let signed_of = |txs: &[Transaction]| -> Vec<SignedTransfer> {
            txs.iter()
                .map(|t| {
                    let json = t.canonical_json();
                    let v: serde_json::Value = serde_json::from_str(json).unwrap();
                    let sig: [u8; 64] = hex::decode(v["sig"].as_str().unwrap())
                        .unwrap()
                        .try_into()
                        .unwrap();
                    SignedTransfer {
                        transfer: Transfer {
                            from: addr(1),
                            to: addr(2),
                            amount: 10,
                            nonce: v["nonce"].as_u64().unwrap(),
                        },
                        sig,
                    }
                })
                .collect()
        };
        // Blocks of two: ours carries nonces 0 and 1, verified at intake.
        let ours = ap.select(&s, &pool, 2);
        assert_eq!(ours.len(), 2);
        ap.vouch(&s, ours.len());
        let ledger = s.accounts().unwrap();
        assert!(ledger.is_vouched(&signed_of(&ours)));
        assert!(
            !ledger.is_vouched(&signed_of(&ours[..1])),
            "only that exact block"
        );
        // It lands (its batch skipped), and the next one is vouched when built.
        mine(&mut s, &ours);
        pool.remove(&[at(0), at(1)]);
        ap.on_block(&s, &mut pool);
        let next = ap.select(&s, &pool, 2);
        assert_eq!(next.len(), 2);
        assert!(!s.accounts().unwrap().is_vouched(&signed_of(&next)));
        ap.vouch(&s, 1);
        assert!(s.accounts().unwrap().is_vouched(&signed_of(&next[..1])));
        assert!(!s.accounts().unwrap().is_vouched(&signed_of(&next)));
    }

    #[test]
    fn verified_in_batches_and_settled_in_arrival_order() {
        let s = chain();
        let mut pool = Pool::new();
        let mut ap = AccountsPool::with_verifier(CHAIN).expect("verifier thread");
        let mut forged = signed(1, 2, 5, 1);
        let sig_at = String::from_utf8_lossy(&forged)
            .find("\"sig\": \"")
            .expect("sig")
            + 8;
        forged[sig_at] = if forged[sig_at] == b'0' { b'1' } else { b'0' };
        let at1 = |offset| Origin {
            partition: 1,
            offset,
        };
        ap.take(&s, at(0), &signed(1, 2, 5, 0));
        ap.take(&s, at(1), &forged);
        ap.take(&s, at(2), b"{}");
        ap.take(&s, at(3), &signed(1, 2, 5, 1));
        ap.take(&s, at1(0), &signed(1, 3, 5, 2));
        assert_eq!(ap.in_flight(), 5);
        // Nothing is settled (or committable) before its verdict, not even the
        // malformed record behind a transfer still being checked.
        assert!(ap.settle(&s, &mut pool).is_empty());
        assert!(pool.commit_positions().is_empty());
        ap.flush();
        // Partition 1 goes to another node while its transfer is being checked.
        ap.revoke(&[1]);
        let verdicts = ap
            .verdicts()
            .recv_timeout(Duration::from_secs(60))
            .expect("verdicts");
        let outcomes = ap.on_verdicts(&s, &mut pool, verdicts);
        let got: Vec<(i64, bool)> = outcomes
            .iter()
            .map(|(o, r)| (o.offset, r.is_ok()))
            .collect();
        assert_eq!(got, vec![(0, true), (1, false), (2, false), (3, true)]);
        assert!(matches!(
            outcomes[1].1,
            Err(AccountsError::BadSignature { .. })
        ));
        assert_eq!(ap.in_flight(), 0);
        assert_eq!(
            pool.len(),
            2,
            "the revoked partition's transfer is forgotten"
        );
        assert_eq!(ap.select(&s, &pool, 10).len(), 2);
    }
}
