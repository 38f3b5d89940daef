//! Balances and nonces, and the check that applies a block's transactions.
//!
//! [`Ledger`] is the state as of the tip: one [`Account`] per address that ever held
//! funds or sent a transfer. [`LedgerView`] is a scratch overlay on it: a block (or a
//! block being built) is applied to a view, transfer by transfer, and only a block
//! that passes whole is written back — a bad transfer leaves the ledger untouched.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha256};

use super::address::{Address, ChainId};
use super::sigcheck::{self, Item};
use super::transfer::{read_amount, text, SignedTransfer, Transfer, VerifiedTransfer, SIGNED_LEN};
use super::AccountsError;
use crate::chain::canonical::{Kind, Tape};
use crate::chain::rules::RuleError;

/// One account's state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Account {
    /// Minor units.
    pub balance: u64,
    /// Transfers sent so far: the nonce its next transfer must carry.
    pub nonce: u64,
}

/// The accounts state of a chain as of its tip.
#[derive(Clone, Debug)]
pub struct Ledger {
    chain_id: ChainId,
    block_reward: u64,
    accounts: HashMap<Address, Account>,
    /// Decompressed keys of senders seen in accepted blocks: a cache (decompression
    /// costs about as much as a third of a signature check), one per sender.
    keys: HashMap<Address, VerifyingKey>,
    supply: u128,
    /// Digests of transfer lists whose batch verification this node already ran and
    /// saw pass (see [`Ledger::vouch`]).
    vouched: Vouched,
    /// The senders of the last block applied (each once): the only accounts whose
    /// nonce it changed (see [`Ledger::last_senders`]).
    last_senders: Vec<Address>,
}

/// How many vouched batches are remembered (a block being mined, a few spare).
const VOUCHED: usize = 8;

/// The digests of batches known to pass: a cache that only saves work. Every
/// signature of a vouched batch verified for this chain, a batch passes exactly when
/// each of its signatures does ([`super::sigcheck`]), and the digest covers every
/// input (each transfer's signed bytes, which hold the sender's key, and its
/// signature, in order), so skipping a vouched batch gives the verdict running it
/// would.
#[derive(Default)]
struct Vouched(Mutex<VecDeque<VouchedBatch>>);

/// A vouched batch: its length and first signature (a cheap filter, so other
/// blocks are not hashed), and the digest of all its inputs.
#[derive(Clone, PartialEq, Eq)]
struct VouchedBatch {
    len: usize,
    first_sig: [u8; 64],
    digest: [u8; 32],
}

impl Vouched {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<VouchedBatch>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Clone for Vouched {
    fn clone(&self) -> Self {
        Vouched(Mutex::new(self.lock().clone()))
    }
}

impl std::fmt::Debug for Vouched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Vouched({})", self.lock().len())
    }
}

/// The digest of a batch's inputs: signed bytes and signature of each transfer.
fn batch_digest<'a>(batch: impl Iterator<Item = (&'a [u8; SIGNED_LEN], &'a [u8; 64])>) -> [u8; 32] {
    let mut h = Sha256::new();
    for (message, sig) in batch {
        h.update(message);
        h.update(sig);
    }
    h.finalize().into()
}

/// A transaction of an accounts block.
enum BlockTx {
    Transfer(SignedTransfer),
    Reward { to: Address, amount: u64 },
}

impl Ledger {
    /// The state at genesis. Allocation addresses must be valid keys.
    pub fn new(
        chain_id: ChainId,
        block_reward: u64,
        allocations: impl IntoIterator<Item = (Address, u64)>,
    ) -> Result<Self, AccountsError> {
        let mut ledger = Ledger {
            chain_id,
            block_reward,
            accounts: HashMap::new(),
            keys: HashMap::new(),
            supply: 0,
            vouched: Vouched::default(),
            last_senders: Vec::new(),
        };
        for (address, amount) in allocations {
            address.key("allocations")?;
            let account = ledger.accounts.entry(address).or_default();
            account.balance = account
                .balance
                .checked_add(amount)
                .ok_or(AccountsError::BalanceOverflow(address))?;
            ledger.supply += u128::from(amount);
        }
        Ok(ledger)
    }

    pub fn chain_id(&self) -> ChainId {
        self.chain_id
    }

    /// The most a block may mint for its miner.
    pub fn block_reward(&self) -> u64 {
        self.block_reward
    }

    /// An account's state (all zero for an address never seen).
    pub fn account(&self, address: &Address) -> Account {
        self.accounts.get(address).copied().unwrap_or_default()
    }

    /// Whether `address` has an account (so it is a valid key).
    pub fn contains(&self, address: &Address) -> bool {
        self.accounts.contains_key(address)
    }

    /// The decompressed key of a sender seen in an accepted block (a cache: saves
    /// the decompression when its next transfer is checked).
    pub fn cached_key(&self, address: &Address) -> Option<VerifyingKey> {
        self.keys.get(address).copied()
    }

    /// Number of accounts.
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// Sum of all balances.
    pub fn supply(&self) -> u128 {
        self.supply
    }

    /// A scratch overlay for applying transfers tentatively.
    pub fn view(&self) -> LedgerView<'_> {
        LedgerView {
            base: self,
            changed: HashMap::new(),
            minted: 0,
        }
    }

    /// Checks the transactions array at tape node `txs` of a block whose form the v2
    /// rules already accepted, and applies it: whole, or not at all.
    ///
    /// Order: each transaction's form; the signatures, in one batch; then the
    /// transfers in block order against balances and nonces, and the reward.
    pub(crate) fn apply_block(
        &mut self,
        tape: &Tape,
        s: &[u8],
        txs: usize,
    ) -> Result<(), RuleError> {
        let at = |index: usize| move |reason| RuleError::Transfer { index, reason };
        let mut block = Vec::with_capacity(tape.node(txs).len as usize);
        for (i, tx) in tape.items(txs).enumerate() {
            let parsed = if is_reward(tape, s, tx) {
                read_reward(tape, s, tx).map(|(to, amount)| BlockTx::Reward { to, amount })
            } else {
                SignedTransfer::read_in_block(tape, s, tx).map(BlockTx::Transfer)
            };
            block.push(parsed.map_err(at(i))?);
        }
        let rewards = block
            .iter()
            .filter(|t| matches!(t, BlockTx::Reward { .. }))
            .count();
        if rewards > 1 || (rewards == 1 && !matches!(block.last(), Some(BlockTx::Reward { .. }))) {
            return Err(RuleError::Accounts(AccountsError::MisplacedReward));
        }
        let new_keys = self.verify_signatures(&block)?;
        let mut view = self.view();
        for (i, tx) in block.iter().enumerate() {
            match tx {
                BlockTx::Transfer(t) => view.apply(&t.transfer),
                BlockTx::Reward { to, amount } => view.mint(to, *amount),
            }
            .map_err(at(i))?;
        }
        let (changed, minted) = (view.changed, view.minted);
        self.last_senders.clear();
        self.last_senders
            .extend(block.iter().filter_map(|tx| match tx {
                BlockTx::Transfer(t) => Some(t.transfer.from),
                BlockTx::Reward { .. } => None,
            }));
        self.last_senders.sort_unstable();
        self.last_senders.dedup();
        self.accounts.extend(changed);
        self.supply += u128::from(minted);
        self.keys.extend(new_keys);
        Ok(())
    }

    /// The senders of the last block applied, each once: no other account's nonce
    /// changed with it.
    pub fn last_senders(&self) -> &[Address] {
        &self.last_senders
    }

    /// Vouches for a block carrying exactly `transfers` (in this order), for a node
    /// about to mine them: each one's signature verified for this chain (at intake), so
    /// the block's batch check passes ([`super::sigcheck`]: a batch's verdict is that
    /// of each signature alone), and when the block comes back from the chain topic
    /// its batch is not run again. Transfers verified for another chain id are not
    /// vouched for (their block is checked in full).
    pub fn vouch(&self, transfers: &[VerifiedTransfer]) {
        let Some(first) = transfers.first() else {
            return;
        };
        if transfers.iter().any(|t| t.chain() != &self.chain_id) {
            return;
        }
        let messages: Vec<[u8; SIGNED_LEN]> = transfers
            .iter()
            .map(|t| t.transfer().signing_bytes(&self.chain_id))
            .collect();
        let batch = VouchedBatch {
            len: transfers.len(),
            first_sig: first.signed().sig,
            digest: batch_digest(
                messages
                    .iter()
                    .zip(transfers.iter().map(|t| &t.signed().sig)),
            ),
        };
        let mut vouched = self.vouched.lock();
        if vouched.contains(&batch) {
            return;
        }
        if vouched.len() >= VOUCHED {
            vouched.pop_front();
        }
        vouched.push_back(batch);
    }

    /// Whether a block carrying exactly `transfers` (in this order) is vouched for:
    /// its batch check passed on this node, so [`Ledger::vouch`] and the block's
    /// validation skip it.
    pub fn is_vouched(&self, transfers: &[SignedTransfer]) -> bool {
        let Some(first) = transfers.first() else {
            return false;
        };
        let messages = transfers
            .iter()
            .map(|t| t.transfer.signing_bytes(&self.chain_id));
        let batch = VouchedBatch {
            len: transfers.len(),
            first_sig: first.sig,
            digest: batch_digest(
                messages
                    .collect::<Vec<_>>()
                    .iter()
                    .zip(transfers.iter().map(|t| &t.sig)),
            ),
        };
        self.vouched.lock().contains(&batch)
    }

    /// Verifies every transfer signature of the block in one batch. Returns the keys
    /// decompressed on the way (cached once the block is accepted).
    fn verify_signatures(
        &self,
        block: &[BlockTx],
    ) -> Result<Vec<(Address, VerifyingKey)>, RuleError> {
        let mut messages = Vec::with_capacity(block.len());
        let mut keys = Vec::with_capacity(block.len());
        let mut indexes = Vec::with_capacity(block.len());
        // Keys of senders new to the ledger, each decompressed once per block (a block
        // holds many transfers of one sender).
        let mut new_keys: HashMap<Address, VerifyingKey> = HashMap::new();
        for (i, tx) in block.iter().enumerate() {
            let BlockTx::Transfer(t) = tx else { continue };
            let from = t.transfer.from;
            let key = match self.keys.get(&from).or_else(|| new_keys.get(&from)) {
                Some(k) => *k,
                None => {
                    let k = from
                        .key("sender")
                        .map_err(|reason| RuleError::Transfer { index: i, reason })?;
                    new_keys.insert(from, k);
                    k
                }
            };
            messages.push(t.transfer.signing_bytes(&self.chain_id));
            keys.push(key);
            indexes.push(i);
        }
        let new_keys: Vec<(Address, VerifyingKey)> = new_keys.into_iter().collect();
        if messages.is_empty() {
            return Ok(new_keys);
        }
        // A batch this node vouched for (its own block, of transfers it verified).
        let block_sigs = || {
            indexes.iter().filter_map(|&i| match &block[i] {
                BlockTx::Transfer(t) => Some(&t.sig),
                BlockTx::Reward { .. } => None,
            })
        };
        let first_sig = block_sigs().next();
        let candidates: Vec<[u8; 32]> = self
            .vouched
            .lock()
            .iter()
            .filter(|v| v.len == messages.len() && Some(&v.first_sig) == first_sig)
            .map(|v| v.digest)
            .collect();
        if !candidates.is_empty()
            && candidates.contains(&batch_digest(messages.iter().zip(block_sigs())))
        {
            return Ok(new_keys);
        }
        let items: Vec<Item> = messages
            .iter()
            .zip(block_sigs())
            .zip(&keys)
            .map(|((msg, sig), key)| Item {
                key,
                msg: &msg[..],
                sig,
            })
            .collect();
        if sigcheck::verify_batch(&items) {
            return Ok(new_keys);
        }
        // Name the first transfer that fails on its own.
        for (n, &i) in indexes.iter().enumerate() {
            if let BlockTx::Transfer(t) = &block[i] {
                if let Err(reason) = t.verify_with(&keys[n], &self.chain_id) {
                    return Err(RuleError::Transfer { index: i, reason });
                }
            }
        }
        Err(RuleError::Accounts(AccountsError::BatchFailed))
    }
}

/// Whether the transaction object at `tx` is a reward (`"sender": "0"`).
fn is_reward(tape: &Tape, s: &[u8], tx: usize) -> bool {
    if tape.node(tx).kind != Kind::Object {
        return false;
    }
    let mut buf = Vec::new();
    tape.members(tx).any(|(k, v)| {
        tape.node(k).kind == Kind::Str
            && text(tape, s, k, &mut buf) == b"sender"
            && tape.node(v).kind == Kind::Str
            && tape.raw(s, v) == b"0"
    })
}

/// `{"amount": A, "recipient": R, "sender": "0"}`, exactly.
fn read_reward(tape: &Tape, s: &[u8], tx: usize) -> Result<(Address, u64), AccountsError> {
    let (mut amount, mut to) = (None, None);
    let mut buf = Vec::new();
    for (k, v) in tape.members(tx) {
        match text(tape, s, k, &mut buf) {
            b"amount" => amount = Some(read_amount(tape, s, v)?),
            b"recipient" => {
                if tape.node(v).kind != Kind::Str {
                    return Err(AccountsError::WrongType {
                        field: "recipient",
                        expected: "a string (64 lowercase hex digits)",
                    });
                }
                let mut b2 = Vec::new();
                to = Some(Address::parse(text(tape, s, v, &mut b2), "recipient")?);
            }
            b"sender" => {}
            other => {
                let name = String::from_utf8_lossy(other);
                return Err(AccountsError::UnknownField(format!(
                    "{} (a reward has only amount, recipient and sender)",
                    name.chars().take(40).collect::<String>()
                )));
            }
        }
    }
    if tape.node(tx).len != 3 {
        return Err(AccountsError::MissingField("recipient"));
    }
    match (to, amount) {
        (Some(to), Some(amount)) => Ok((to, amount)),
        (None, _) => Err(AccountsError::MissingField("recipient")),
        (_, None) => Err(AccountsError::MissingField("amount")),
    }
}

/// Tentative changes on top of a [`Ledger`].
#[derive(Debug)]
pub struct LedgerView<'a> {
    base: &'a Ledger,
    changed: HashMap<Address, Account>,
    minted: u64,
}

impl LedgerView<'_> {
    pub fn account(&self, address: &Address) -> Account {
        match self.changed.get(address) {
            Some(a) => *a,
            None => self.base.account(address),
        }
    }

    fn known(&self, address: &Address) -> bool {
        self.changed.contains_key(address) || self.base.accounts.contains_key(address)
    }

    /// Applies one transfer (its signature already checked): the nonce must be the
    /// sender's next, the balance must cover the amount, the recipient must be a key.
    pub fn apply(&mut self, t: &Transfer) -> Result<(), AccountsError> {
        let sender = self.account(&t.from);
        if t.nonce < sender.nonce {
            return Err(AccountsError::NonceTooLow {
                account: t.from,
                expected: sender.nonce,
                found: t.nonce,
            });
        }
        if t.nonce > sender.nonce {
            return Err(AccountsError::NonceTooHigh {
                account: t.from,
                expected: sender.nonce,
                found: t.nonce,
                held: String::new(),
            });
        }
        if sender.balance == 0 {
            return Err(AccountsError::EmptyAccount {
                account: t.from,
                amount: t.amount,
            });
        }
        if sender.balance < t.amount {
            return Err(AccountsError::Overdraft {
                account: t.from,
                balance: sender.balance,
                amount: t.amount,
            });
        }
        if !self.known(&t.to) {
            t.to.key("recipient")?;
        }
        let mut recipient = if t.to == t.from {
            sender
        } else {
            self.account(&t.to)
        };
        let after_debit = sender.balance - t.amount;
        let credited = if t.to == t.from {
            sender.balance
        } else {
            recipient
                .balance
                .checked_add(t.amount)
                .ok_or(AccountsError::BalanceOverflow(t.to))?
        };
        self.changed.insert(
            t.from,
            Account {
                balance: after_debit,
                nonce: sender.nonce + 1,
            },
        );
        if t.to == t.from {
            recipient.nonce = sender.nonce + 1;
        }
        recipient.balance = credited;
        self.changed.insert(t.to, recipient);
        Ok(())
    }

    /// Mints the block reward to `to`.
    pub fn mint(&mut self, to: &Address, amount: u64) -> Result<(), AccountsError> {
        let max = self.base.block_reward;
        if amount > max || self.minted > 0 {
            return Err(AccountsError::RewardTooLarge {
                found: amount + self.minted,
                max,
            });
        }
        if !self.known(to) {
            to.key("recipient")?;
        }
        let mut account = self.account(to);
        account.balance = account
            .balance
            .checked_add(amount)
            .ok_or(AccountsError::BalanceOverflow(*to))?;
        self.changed.insert(*to, account);
        self.minted = amount;
        Ok(())
    }
}
