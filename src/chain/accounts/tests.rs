//! The accounts rules through [`ChainState`]: every bad input is refused with its
//! reason and leaves the ledger as it was.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use ed25519_dalek::SigningKey;
use serde_json::Number;

use super::*;
use crate::chain::{BlockTemplate, ChainState, Miner, Origin, RuleError, Rules, Transaction};

const CHAIN: ChainId = ChainId([42; 32]);
const REWARD: u64 = 10;

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn addr(n: u8) -> Address {
    Address::of(&key(n).verifying_key())
}

fn rules() -> Rules {
    Rules::Accounts {
        difficulty: 4,
        chain_id: CHAIN,
        block_reward: REWARD,
    }
}

/// A chain where account 1 holds 100 and account 2 holds 5.
fn state() -> ChainState {
    let g = AccountsGenesis {
        chain_id: CHAIN,
        difficulty: 4,
        block_reward: REWARD,
        allocations: BTreeMap::from([(addr(1), 100), (addr(2), 5)]),
    };
    let mut s = ChainState::new();
    let block = genesis_block(&g, 1000.0);
    assert!(crate::chain::canonical::is_canonical(&block).unwrap());
    s.apply(&block).unwrap();
    assert_eq!(s.rules(), Some(rules()));
    s
}

fn transfer(from: u8, to: u8, amount: u64, nonce: u64) -> SignedTransfer {
    Transfer {
        from: addr(from),
        to: addr(to),
        amount,
        nonce,
    }
    .sign(&key(from), &CHAIN)
}

static NEXT_OFFSET: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

fn tx(t: &SignedTransfer) -> Transaction {
    let offset = NEXT_OFFSET.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    t.unverified_block_tx(Origin {
        partition: 0,
        offset,
    })
}

fn block(s: &ChainState, txs: &[Transaction]) -> Vec<u8> {
    let tip = s.tip().unwrap();
    let t = BlockTemplate::new(tip, s.rules().unwrap(), tip.timestamp + 1.0, txs);
    let m = Miner::new(1)
        .mine(&t.work(), &AtomicBool::new(false))
        .unwrap();
    t.seal(m.nonce)
}

fn balance(s: &ChainState, n: u8) -> (u64, u64) {
    let a = s.accounts().unwrap().account(&addr(n));
    (a.balance, a.nonce)
}

/// Applies a block that must be refused; checks the ledger did not change.
fn refused(s: &mut ChainState, txs: &[Transaction]) -> RuleError {
    let before: Vec<_> = (1..=4).map(|n| balance(s, n)).collect();
    let height = s.height();
    let b = block(s, txs);
    let reason = s.apply(&b).unwrap_err().reason;
    assert_eq!(s.height(), height);
    let after: Vec<_> = (1..=4).map(|n| balance(s, n)).collect();
    assert_eq!(before, after, "a refused block changed the ledger");
    reason
}

fn at(reason: RuleError) -> (usize, AccountsError) {
    match reason {
        RuleError::Transfer { index, reason } => (index, reason),
        other => panic!("expected a transfer error, got {other}"),
    }
}

#[test]
fn transfers_move_balances_and_nonces() {
    let mut s = state();
    let txs = [
        tx(&transfer(1, 3, 30, 0)),
        tx(&transfer(1, 2, 20, 1)),
        tx(&transfer(2, 2, 25, 0)), // to self, funded by the transfer before it
        Transaction::reward(&addr(4).to_string(), &Number::from(REWARD)),
    ];
    let b = block(&s, &txs);
    let appended = s.apply(&b).unwrap();
    assert_eq!(appended.tx_count, 4);
    assert_eq!(appended.miner, Some(addr(4).to_string()));
    assert_eq!(balance(&s, 1), (50, 2));
    assert_eq!(balance(&s, 2), (25, 1));
    assert_eq!(balance(&s, 3), (30, 0));
    assert_eq!(balance(&s, 4), (REWARD, 0));
    let ledger = s.accounts().unwrap();
    assert_eq!(ledger.len(), 4);
    assert_eq!(ledger.supply(), 105 + u128::from(REWARD));
}

#[test]
fn every_bad_transfer_rejects_the_whole_block() {
    let mut s = state();
    let good = tx(&transfer(1, 3, 1, 0));
    // Bad signature: another key signed it.
    let forged = Transfer {
        from: addr(1),
        to: addr(3),
        amount: 50,
        nonce: 1,
    }
    .sign(&key(3), &CHAIN);
    let (i, e) = at(refused(&mut s, &[good.clone(), tx(&forged)]));
    assert_eq!(i, 1);
    assert!(matches!(e, AccountsError::BadSignature { .. }), "{e}");
    // Wrong chain id.
    let other_chain = Transfer {
        from: addr(1),
        to: addr(3),
        amount: 1,
        nonce: 0,
    }
    .sign(&key(1), &ChainId([1; 32]));
    let (i, e) = at(refused(&mut s, &[tx(&other_chain)]));
    assert_eq!(i, 0);
    assert!(matches!(e, AccountsError::BadSignature { .. }));
    // Nonce too high, overdraft, empty account.
    let (_, e) = at(refused(&mut s, &[tx(&transfer(1, 3, 1, 1))]));
    assert!(matches!(
        e,
        AccountsError::NonceTooHigh {
            expected: 0,
            found: 1,
            ..
        }
    ));
    let (_, e) = at(refused(&mut s, &[tx(&transfer(1, 3, 101, 0))]));
    assert!(matches!(
        e,
        AccountsError::Overdraft {
            balance: 100,
            amount: 101,
            ..
        }
    ));
    let (_, e) = at(refused(&mut s, &[tx(&transfer(3, 1, 1, 0))]));
    assert!(matches!(e, AccountsError::EmptyAccount { .. }));
    // Two transfers that together overdraw.
    let (i, e) = at(refused(
        &mut s,
        &[tx(&transfer(2, 3, 3, 0)), tx(&transfer(2, 3, 3, 1))],
    ));
    assert_eq!(i, 1);
    assert!(matches!(e, AccountsError::Overdraft { balance: 2, .. }));
    // Minting more than the reward; two rewards; a reward not last.
    let mint = |n| Transaction::reward(&addr(4).to_string(), &Number::from(n));
    assert!(matches!(
        at(refused(&mut s, &[mint(REWARD + 1)])).1,
        AccountsError::RewardTooLarge { .. }
    ));
    assert_eq!(
        refused(&mut s, &[mint(1), mint(1)]),
        RuleError::Accounts(AccountsError::MisplacedReward)
    );
    assert_eq!(
        refused(&mut s, &[mint(1), good.clone()]),
        RuleError::Accounts(AccountsError::MisplacedReward)
    );
    // The good transfer alone is fine, and then it is a replay.
    let b = block(&s, std::slice::from_ref(&good));
    s.apply(&b).unwrap();
    assert_eq!(balance(&s, 1), (99, 1));
    let again = transfer(1, 3, 1, 0).unverified_block_tx(Origin {
        partition: 5,
        offset: 0,
    });
    let (_, e) = at(refused(&mut s, &[again]));
    assert!(matches!(
        e,
        AccountsError::NonceTooLow {
            expected: 1,
            found: 0,
            ..
        }
    ));
}

#[test]
fn malformed_block_transactions_are_refused() {
    let mut s = state();
    let good = transfer(1, 3, 1, 0).block_json(Origin {
        partition: 0,
        offset: 99,
    });
    type Check = fn(&AccountsError) -> bool;
    let cases: Vec<(String, Check)> = vec![
        (good.replace("\"amount\": 1", "\"amount\": 1.5"), |e| {
            matches!(e, AccountsError::AmountFractional(_))
        }),
        (good.replace("\"amount\": 1", "\"amount\": -1"), |e| {
            matches!(e, AccountsError::AmountNegative(_))
        }),
        (good.replace("\"amount\": 1", "\"amount\": 0"), |e| {
            matches!(e, AccountsError::AmountZero)
        }),
        (good.replace("{\"amount\"", "{\"aa\": 1, \"amount\""), |e| {
            matches!(e, AccountsError::UnknownField(_))
        }),
        (good.replace(", \"sig\": \"", ", \"xsig\": \""), |e| {
            matches!(e, AccountsError::UnknownField(_))
        }),
    ];
    for (json, check) in cases {
        let t = Transaction::from_canonical(json.clone(), None);
        let (_, e) = at(refused(&mut s, &[t]));
        assert!(check(&e), "{json}: {e}");
    }
    // A tutorial (unsigned) transaction in an accounts block.
    let sub =
        crate::chain::parse_submitted(br#"{"from": "alice", "to": "bob", "amount": 3}"#).unwrap();
    let unsigned = Transaction::from_submitted(
        &sub,
        Origin {
            partition: 0,
            offset: 98,
        },
    );
    let (_, e) = at(refused(&mut s, &[unsigned]));
    assert!(matches!(e, AccountsError::MalformedAddress { .. }), "{e}");
}

#[test]
fn genesis_checks() {
    let g = AccountsGenesis {
        chain_id: CHAIN,
        difficulty: 4,
        block_reward: REWARD,
        allocations: BTreeMap::from([(addr(1), 100)]),
    };
    let good = String::from_utf8(genesis_block(&g, 1.0)).unwrap();
    for (bad, why) in [
        (good.replace("\"ed25519\"", "\"rsa\""), "signature_scheme"),
        (
            good.replace("\"block_reward\": 10", "\"block_reward\": 0"),
            "zero",
        ),
        (
            good.replace("\"chain_id\": \"2a", "\"chain_id\": \"zz"),
            "chain_id",
        ),
        (good.replace(&addr(1).to_string(), "ab"), "address"),
        (good.replace(": 100}", ": 1.5}"), "integer"),
        (
            good.replace("\"allocations\": {", "\"allocations\": {\"x\": 1, "),
            "address",
        ),
    ] {
        let reason = ChainState::new().apply(bad.as_bytes()).unwrap_err().reason;
        assert!(
            matches!(&reason, RuleError::BadGenesis(m) if m.contains(why)),
            "{why}: {reason}"
        );
    }
    // A v2 genesis may not carry accounts fields; v2 blocks may not either.
    let v2 = String::from_utf8(crate::chain::genesis(Rules::V2 { difficulty: 4 }, 1.0))
        .unwrap()
        .replace("{", "{\"chain_id\": \"00\", ");
    assert!(matches!(
        ChainState::new().apply(v2.as_bytes()).unwrap_err().reason,
        RuleError::UnknownField(_)
    ));
    // Different chain ids ⇒ different genesis hashes.
    let mut other = g.clone();
    other.chain_id = ChainId([43; 32]);
    let h1 = ChainState::new()
        .apply(&genesis_block(&g, 1.0))
        .unwrap()
        .hash;
    let h2 = ChainState::new()
        .apply(&genesis_block(&other, 1.0))
        .unwrap()
        .hash;
    assert_ne!(h1, h2);
}

#[test]
fn allocation_files() {
    let json = format!("{{\"{}\": 7, \"{}\": 9}}", addr(1), addr(2));
    let a = parse_allocations(json.as_bytes()).unwrap();
    assert_eq!(a.get(&addr(1)), Some(&7));
    assert!(parse_allocations(b"{\"alice\": 5}").is_err());
    assert!(parse_allocations(format!("{{\"{}\": -5}}", addr(1)).as_bytes()).is_err());
    assert!(parse_allocations(b"[]").is_err());
}

#[test]
fn vouching_covers_verified_transfers_of_this_chain_only_and_never_altered_ones() {
    let mut s = state();
    let good = [transfer(1, 3, 30, 0), transfer(2, 3, 1, 0)];
    let verified: Vec<VerifiedTransfer> = good
        .iter()
        .map(|t| t.verify(&CHAIN).expect("verifies"))
        .collect();
    let ledger = s.accounts().unwrap();
    // Verified for another chain: not vouched for here.
    let elsewhere = ChainId([7; 32]);
    let theirs: Vec<VerifiedTransfer> = [1, 2]
        .iter()
        .map(|&n| {
            Transfer {
                from: addr(n),
                to: addr(3),
                amount: 1,
                nonce: 0,
            }
            .sign(&key(n), &elsewhere)
            .verify(&elsewhere)
            .expect("verifies there")
        })
        .collect();
    ledger.vouch(&theirs);
    assert!(!ledger.is_vouched(&theirs.iter().map(|t| *t.signed()).collect::<Vec<_>>()));
    ledger.vouch(&verified);
    assert!(ledger.is_vouched(&good));
    // A block with the same transfers but one signature altered has other inputs,
    // so it is checked, and refused.
    let mut altered = good;
    altered[1].sig[7] ^= 1;
    let (index, reason) = at(refused(&mut s, &[tx(&altered[0]), tx(&altered[1])]));
    assert_eq!(index, 1);
    assert!(matches!(reason, AccountsError::BadSignature { .. }));
    s.apply(&block(&s, &[tx(&good[0]), tx(&good[1])]))
        .expect("vouched block applies");
    assert_eq!(balance(&s, 3), (31, 0));
}
