//! The transfer: its two JSON forms, the exact bytes that are signed, and the checks
//! a transfer passes before it can touch a balance.
//!
//! Submitted (on the transactions topic):
//! `{"amount": A, "from": F, "nonce": N, "sig": S, "to": T}`.
//! In a block (the tutorial's `from`/`to` become `sender`/`recipient`, as in the seed
//! and v2 rules, and the origin records where it was read):
//! `{"amount": A, "nonce": N, "origin": {"offset": O, "partition": P}, "recipient": T, "sender": F, "sig": S}`.
//!
//! Signed bytes (143 bytes): [`DOMAIN`] ‖ chain id (32) ‖ from (32) ‖ to (32) ‖
//! amount (u64 big-endian) ‖ nonce (u64 big-endian).

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

use super::address::{Address, ChainId};
use super::sigcheck::{self, Item};
use super::{AccountsError, MAX_AMOUNT};
use crate::chain::canonical::{decode_string, Kind, Tape};
use crate::chain::hash::decode_lower_hex;
use crate::chain::template::Transaction;
use crate::chain::Origin;

/// Domain separation: the signed bytes start with this ASCII text (31 bytes, no
/// terminator), so a transfer signature can never be mistaken for any other message.
pub const DOMAIN: &[u8; 31] = b"kafkachain/accounts/transfer/v1";

/// Length of the signed bytes.
pub const SIGNED_LEN: usize = 31 + 32 + 32 + 32 + 8 + 8;

/// Largest submitted transfer we read (a real one is about 330 bytes).
pub const MAX_TRANSFER_BYTES: usize = 1024;

/// What a transfer says, without its signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub from: Address,
    pub to: Address,
    /// Minor units, `1..=MAX_AMOUNT`.
    pub amount: u64,
    /// The sender's count of transfers already on the chain.
    pub nonce: u64,
}

impl Transfer {
    /// The exact bytes the sender signs.
    pub fn signing_bytes(&self, chain: &ChainId) -> [u8; SIGNED_LEN] {
        let mut out = [0u8; SIGNED_LEN];
        out[..31].copy_from_slice(DOMAIN);
        out[31..63].copy_from_slice(&chain.0);
        out[63..95].copy_from_slice(&self.from.0);
        out[95..127].copy_from_slice(&self.to.0);
        out[127..135].copy_from_slice(&self.amount.to_be_bytes());
        out[135..143].copy_from_slice(&self.nonce.to_be_bytes());
        out
    }

    /// Signs for `chain` with `key` (whose address should be `from`).
    pub fn sign(self, key: &SigningKey, chain: &ChainId) -> SignedTransfer {
        SignedTransfer {
            transfer: self,
            sig: key.sign(&self.signing_bytes(chain)).to_bytes(),
        }
    }
}

/// A well-formed transfer whose signature has not been checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignedTransfer {
    pub transfer: Transfer,
    pub sig: [u8; 64],
}

/// A transfer whose signature verified (under [`sigcheck`]'s rule, alone or in a
/// batch: the verdict is the same) for the chain id it records. Only a signature
/// check makes one ([`SignedTransfer::verify`], [`verify_many`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifiedTransfer(SignedTransfer, ChainId);

impl VerifiedTransfer {
    /// The chain id its signature verified for.
    pub fn chain(&self) -> &ChainId {
        &self.1
    }

    pub fn transfer(&self) -> &Transfer {
        &self.0.transfer
    }

    pub fn signed(&self) -> &SignedTransfer {
        &self.0
    }

    /// The transfer as it goes into a block, read from `origin`.
    pub fn into_block_tx(self, origin: Origin) -> Transaction {
        Transaction::from_canonical(self.0.block_json(origin), Some(origin))
    }
}

/// Which JSON form is being read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    Submitted,
    InBlock,
}

impl SignedTransfer {
    /// Parses a record of the transactions topic (the submitted form).
    pub fn parse(bytes: &[u8]) -> Result<Self, AccountsError> {
        if bytes.len() > MAX_TRANSFER_BYTES {
            return Err(AccountsError::TooLarge {
                len: bytes.len(),
                max: MAX_TRANSFER_BYTES,
            });
        }
        let mut tape = Tape::default();
        tape.parse(bytes).map_err(|e| {
            AccountsError::Json(
                match serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
                    Err(serde) => serde.to_string(),
                    Ok(_) => e.to_string(),
                },
            )
        })?;
        read(&tape, bytes, 0, Form::Submitted)
    }

    /// Reads a transfer in block form at tape node `idx` (an object).
    pub(crate) fn read_in_block(tape: &Tape, s: &[u8], idx: usize) -> Result<Self, AccountsError> {
        read(tape, s, idx, Form::InBlock)
    }

    /// Checks the signature for `chain` against the sender's key ([`sigcheck`]'s rule:
    /// no small-order key, canonical `s`, the cofactored equation).
    pub fn verify(&self, chain: &ChainId) -> Result<VerifiedTransfer, AccountsError> {
        let key = self.transfer.from.key("from")?;
        self.verify_with(&key, chain)
    }

    /// [`SignedTransfer::verify`] with the sender's key already decompressed (it must
    /// be the key of `transfer.from`, e.g. [`super::Ledger::cached_key`]).
    pub fn verify_with(
        &self,
        key: &VerifyingKey,
        chain: &ChainId,
    ) -> Result<VerifiedTransfer, AccountsError> {
        if key.as_bytes() != &self.transfer.from.0 {
            return Err(AccountsError::BadSignature {
                from: self.transfer.from,
                chain: *chain,
            });
        }
        let msg = self.transfer.signing_bytes(chain);
        let item = Item {
            key,
            msg: &msg,
            sig: &self.sig,
        };
        if sigcheck::verify(&item) {
            Ok(VerifiedTransfer(*self, *chain))
        } else {
            Err(AccountsError::BadSignature {
                from: self.transfer.from,
                chain: *chain,
            })
        }
    }

    /// The block form without checking the signature: for building deliberately
    /// invalid blocks in tests and benchmarks. Nodes only mine [`VerifiedTransfer`]s.
    pub fn unverified_block_tx(&self, origin: Origin) -> Transaction {
        Transaction::from_canonical(self.block_json(origin), Some(origin))
    }

    /// The submitted form as canonical JSON (what `kafkachain send` publishes).
    pub fn to_json(&self) -> Vec<u8> {
        let t = &self.transfer;
        format!(
            "{{\"amount\": {}, \"from\": \"{}\", \"nonce\": {}, \"sig\": \"{}\", \"to\": \"{}\"}}",
            t.amount,
            t.from,
            t.nonce,
            hex::encode(self.sig),
            t.to
        )
        .into_bytes()
    }

    /// The block form as canonical JSON.
    pub fn block_json(&self, origin: Origin) -> String {
        let t = &self.transfer;
        format!(
            "{{\"amount\": {}, \"nonce\": {}, \"origin\": {{\"offset\": {}, \"partition\": {}}}, \"recipient\": \"{}\", \"sender\": \"{}\", \"sig\": \"{}\"}}",
            t.amount,
            t.nonce,
            origin.offset,
            origin.partition,
            t.to,
            t.from,
            hex::encode(self.sig)
        )
    }
}

/// Checks many transfers' signatures for `chain` at once, in order: one
/// [`sigcheck::verify_batch`] over all of them; only if that fails are they split in
/// halves (down to a few, then each alone) to name the bad ones, so one bad signature
/// costs a few extra batches, not a single check per transfer. A batch passes exactly
/// when each of its signatures verifies alone, so every verdict is that of the
/// transfer alone. Block validity does not depend on this function: [`super::Ledger`]
/// checks a block's signatures itself.
///
/// `keys` caches decompressed sender keys between calls (the caller bounds it).
pub fn verify_many(
    batch: &[SignedTransfer],
    chain: &ChainId,
    keys: &mut std::collections::HashMap<Address, VerifyingKey>,
) -> Vec<Result<VerifiedTransfer, AccountsError>> {
    let mut out: Vec<Result<VerifiedTransfer, AccountsError>> = Vec::with_capacity(batch.len());
    // (index in batch, key, message) of every transfer whose sender is a valid key.
    let mut items = Vec::with_capacity(batch.len());
    for (i, t) in batch.iter().enumerate() {
        let from = t.transfer.from;
        let key = match keys.get(&from) {
            Some(k) => Ok(*k),
            None => from.key("from").inspect(|k| {
                keys.insert(from, *k);
            }),
        };
        match key {
            Ok(k) => {
                items.push((i, k, t.transfer.signing_bytes(chain)));
                out.push(Ok(VerifiedTransfer(*t, *chain)));
            }
            Err(e) => out.push(Err(e)),
        }
    }
    let mut ranges = vec![(0, items.len())];
    while let Some((lo, hi)) = ranges.pop() {
        let part = &items[lo..hi];
        if part.is_empty() {
            continue;
        }
        if part.len() <= 4 {
            for (i, key, _) in part {
                if let Err(e) = batch[*i].verify_with(key, chain) {
                    out[*i] = Err(e);
                }
            }
            continue;
        }
        let checks: Vec<Item> = part
            .iter()
            .map(|(i, key, msg)| Item {
                key,
                msg: &msg[..],
                sig: &batch[*i].sig,
            })
            .collect();
        if !sigcheck::verify_batch(&checks) {
            let mid = lo + (hi - lo) / 2;
            ranges.push((mid, hi));
            ranges.push((lo, mid));
        }
    }
    out
}

/// The text of string node `idx`, decoded if it has escapes.
pub(crate) fn text<'a>(tape: &Tape, s: &'a [u8], idx: usize, buf: &'a mut Vec<u8>) -> &'a [u8] {
    if tape.node(idx).escaped {
        buf.clear();
        decode_string(tape.raw(s, idx), buf);
        buf
    } else {
        tape.raw(s, idx)
    }
}

/// An amount: a JSON integer in `1..=MAX_AMOUNT`.
pub(crate) fn read_amount(tape: &Tape, s: &[u8], idx: usize) -> Result<u64, AccountsError> {
    let raw = tape.raw(s, idx);
    let literal = || String::from_utf8_lossy(raw).into_owned();
    match tape.node(idx).kind {
        Kind::Int if raw == b"-0" => Err(AccountsError::AmountZero),
        Kind::Int | Kind::Float if raw.first() == Some(&b'-') => {
            Err(AccountsError::AmountNegative(literal()))
        }
        Kind::Float => Err(AccountsError::AmountFractional(literal())),
        Kind::Int => {
            let value: u64 = std::str::from_utf8(raw)
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| AccountsError::AmountOutOfRange(literal()))?;
            match value {
                0 => Err(AccountsError::AmountZero),
                v if v > MAX_AMOUNT => Err(AccountsError::AmountOutOfRange(literal())),
                v => Ok(v),
            }
        }
        _ => Err(AccountsError::WrongType {
            field: "amount",
            expected: "an integer (minor units)",
        }),
    }
}

fn read_nonce(tape: &Tape, s: &[u8], idx: usize) -> Result<u64, AccountsError> {
    let wrong = AccountsError::WrongType {
        field: "nonce",
        expected: "an integer 0..2^64-1",
    };
    if tape.node(idx).kind != Kind::Int {
        return Err(wrong);
    }
    std::str::from_utf8(tape.raw(s, idx))
        .ok()
        .and_then(|t| t.parse().ok())
        .ok_or(wrong)
}

fn read_address(
    tape: &Tape,
    s: &[u8],
    idx: usize,
    field: &'static str,
) -> Result<Address, AccountsError> {
    if tape.node(idx).kind != Kind::Str {
        return Err(AccountsError::WrongType {
            field,
            expected: "a string (64 lowercase hex digits)",
        });
    }
    let mut buf = Vec::new();
    Address::parse(text(tape, s, idx, &mut buf), field)
}

fn read_sig(tape: &Tape, s: &[u8], idx: usize) -> Result<[u8; 64], AccountsError> {
    let bad = AccountsError::MalformedSignature("expected 128 lowercase hex digits");
    if tape.node(idx).kind != Kind::Str {
        return Err(bad);
    }
    let mut buf = Vec::new();
    let t = text(tape, s, idx, &mut buf);
    if t.len() != 128 {
        return Err(bad);
    }
    match (decode_lower_hex(&t[..64]), decode_lower_hex(&t[64..])) {
        (Some(r), Some(sv)) => {
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&r);
            sig[32..].copy_from_slice(&sv);
            Ok(sig)
        }
        _ => Err(bad),
    }
}

fn read(tape: &Tape, s: &[u8], obj: usize, form: Form) -> Result<SignedTransfer, AccountsError> {
    if tape.node(obj).kind != Kind::Object {
        return Err(AccountsError::NotAnObject);
    }
    let (from_name, to_name): (&'static str, &'static str) = match form {
        Form::Submitted => ("from", "to"),
        Form::InBlock => ("sender", "recipient"),
    };
    let [mut amount, mut from, mut nonce, mut sig, mut to, mut origin] = [None::<usize>; 6];
    let mut buf = Vec::new();
    for (k, v) in tape.members(obj) {
        let name = text(tape, s, k, &mut buf);
        let (slot, field) = match name {
            b"amount" => (&mut amount, "amount"),
            b"nonce" => (&mut nonce, "nonce"),
            b"sig" => (&mut sig, "sig"),
            n if n == from_name.as_bytes() => (&mut from, from_name),
            n if n == to_name.as_bytes() => (&mut to, to_name),
            b"origin" if form == Form::InBlock => (&mut origin, "origin"),
            other => {
                let name = String::from_utf8_lossy(other);
                return Err(AccountsError::UnknownField(name.chars().take(40).collect()));
            }
        };
        if slot.replace(v).is_some() {
            return Err(AccountsError::DuplicateField(field));
        }
    }
    if form == Form::Submitted && sig.is_none() && nonce.is_none() {
        return Err(AccountsError::Unsigned);
    }
    let need =
        |slot: Option<usize>, name: &'static str| slot.ok_or(AccountsError::MissingField(name));
    let from = read_address(tape, s, need(from, from_name)?, from_name)?;
    let to = read_address(tape, s, need(to, to_name)?, to_name)?;
    let amount = read_amount(tape, s, need(amount, "amount")?)?;
    let nonce = read_nonce(tape, s, need(nonce, "nonce")?)?;
    let sig = read_sig(tape, s, need(sig, "sig")?)?;
    if form == Form::InBlock {
        need(origin, "origin")?;
    }
    Ok(SignedTransfer {
        transfer: Transfer {
            from,
            to,
            amount,
            nonce,
        },
        sig,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> SigningKey {
        SigningKey::from_bytes(&[n; 32])
    }

    fn addr(n: u8) -> Address {
        Address::of(&key(n).verifying_key())
    }

    const CHAIN: ChainId = ChainId([9; 32]);

    fn signed(amount: u64, nonce: u64) -> SignedTransfer {
        Transfer {
            from: addr(1),
            to: addr(2),
            amount,
            nonce,
        }
        .sign(&key(1), &CHAIN)
    }

    #[test]
    fn round_trip_and_verify() {
        let t = signed(5, 0);
        let json = t.to_json();
        assert!(crate::chain::canonical::is_canonical(&json).unwrap());
        let back = SignedTransfer::parse(&json).unwrap();
        assert_eq!(back, t);
        back.verify(&CHAIN).unwrap();
        let block = t.block_json(Origin {
            partition: 1,
            offset: 2,
        });
        assert!(crate::chain::canonical::is_canonical(block.as_bytes()).unwrap());
        let mut tape = Tape::default();
        tape.parse(block.as_bytes()).unwrap();
        assert_eq!(
            SignedTransfer::read_in_block(&tape, block.as_bytes(), 0).unwrap(),
            t
        );
    }

    /// The same transfer signed by PyNaCl (python/accounts_client.py, from the spec in
    /// docs/accounts.md): byte-identical JSON, since ed25519 signatures are deterministic.
    #[test]
    fn matches_pynacl() {
        let python = r#"{"amount": 5, "from": "8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c", "nonce": 7, "sig": "b9024ab630d4ef9ff916db401921bb2b4282cdaab8cd32a1489e3548ae89646178d4da1c49d5ba36e7f07e3db1536f620679b7100cb02c29346905c4600f8704", "to": "8139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394"}"#;
        let ours = Transfer {
            from: addr(1),
            to: addr(2),
            amount: 5,
            nonce: 7,
        }
        .sign(&key(1), &CHAIN);
        assert_eq!(String::from_utf8(ours.to_json()).unwrap(), python);
        SignedTransfer::parse(python.as_bytes())
            .unwrap()
            .verify(&CHAIN)
            .unwrap();
    }

    #[test]
    fn signed_bytes_layout() {
        let t = signed(0x0102, 7).transfer;
        let b = t.signing_bytes(&CHAIN);
        assert_eq!(&b[..31], b"kafkachain/accounts/transfer/v1");
        assert_eq!(&b[31..63], &[9; 32]);
        assert_eq!(&b[63..95], &addr(1).0);
        assert_eq!(&b[95..127], &addr(2).0);
        assert_eq!(&b[127..135], &[0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(&b[135..], &[0, 0, 0, 0, 0, 0, 0, 7]);
    }

    #[test]
    fn bad_signatures() {
        // Another key's signature.
        let forged = Transfer {
            from: addr(1),
            to: addr(2),
            amount: 5,
            nonce: 0,
        }
        .sign(&key(3), &CHAIN);
        assert!(matches!(
            forged.verify(&CHAIN),
            Err(AccountsError::BadSignature { .. })
        ));
        // Another chain.
        assert!(matches!(
            signed(5, 0).verify(&ChainId([8; 32])),
            Err(AccountsError::BadSignature { .. })
        ));
        // Altered content.
        let mut altered = signed(5, 0);
        altered.transfer.amount = 6;
        assert!(matches!(
            altered.verify(&CHAIN),
            Err(AccountsError::BadSignature { .. })
        ));
        let mut flipped = signed(5, 0);
        flipped.sig[3] ^= 1;
        assert!(flipped.verify(&CHAIN).is_err());
    }

    fn replace(json: &[u8], from: &str, to: &str) -> Vec<u8> {
        String::from_utf8(json.to_vec())
            .unwrap()
            .replacen(from, to, 1)
            .into_bytes()
    }

    #[test]
    fn refuses_bad_forms() {
        let good = signed(5, 3).to_json();
        type Check = fn(&AccountsError) -> bool;
        let cases: Vec<(Vec<u8>, Check)> = vec![
            (replace(&good, "\"amount\": 5", "\"amount\": 0"), |e| {
                matches!(e, AccountsError::AmountZero)
            }),
            (replace(&good, "\"amount\": 5", "\"amount\": -5"), |e| {
                matches!(e, AccountsError::AmountNegative(_))
            }),
            (replace(&good, "\"amount\": 5", "\"amount\": 5.5"), |e| {
                matches!(e, AccountsError::AmountFractional(_))
            }),
            (replace(&good, "\"amount\": 5", "\"amount\": 5.0"), |e| {
                matches!(e, AccountsError::AmountFractional(_))
            }),
            (
                replace(&good, "\"amount\": 5", "\"amount\": 9007199254740992"),
                |e| matches!(e, AccountsError::AmountOutOfRange(_)),
            ),
            (
                replace(
                    &good,
                    "\"amount\": 5",
                    "\"amount\": 99999999999999999999999",
                ),
                |e| matches!(e, AccountsError::AmountOutOfRange(_)),
            ),
            (replace(&good, "\"amount\": 5", "\"amount\": \"5\""), |e| {
                matches!(
                    e,
                    AccountsError::WrongType {
                        field: "amount",
                        ..
                    }
                )
            }),
            (replace(&good, "\"amount\": 5, ", ""), |e| {
                matches!(e, AccountsError::MissingField("amount"))
            }),
            (
                replace(&good, "{", "{\"fee\": 1, "),
                |e| matches!(e, AccountsError::UnknownField(f) if f == "fee"),
            ),
            (replace(&good, "{", "{\"amount\": 5, "), |e| {
                matches!(e, AccountsError::DuplicateField("amount"))
            }),
            (replace(&good, "\"from\": \"", "\"from\": \"zz"), |e| {
                matches!(e, AccountsError::MalformedAddress { field: "from", .. })
            }),
            (replace(&good, "\"nonce\": 3", "\"nonce\": -1"), |e| {
                matches!(e, AccountsError::WrongType { field: "nonce", .. })
            }),
            (replace(&good, "\"sig\": \"", "\"sig\": \"00"), |e| {
                matches!(e, AccountsError::MalformedSignature(_))
            }),
            (
                br#"{"from": "alice", "to": "bob", "amount": 3}"#.to_vec(),
                |e| matches!(e, AccountsError::Unsigned),
            ),
            (b"[1]".to_vec(), |e| matches!(e, AccountsError::NotAnObject)),
            (b"{".to_vec(), |e| matches!(e, AccountsError::Json(_))),
            (vec![b' '; 2000], |e| {
                matches!(e, AccountsError::TooLarge { .. })
            }),
        ];
        for (input, check) in cases {
            let err = SignedTransfer::parse(&input).unwrap_err();
            assert!(check(&err), "{}: {err}", String::from_utf8_lossy(&input));
        }
    }
}
