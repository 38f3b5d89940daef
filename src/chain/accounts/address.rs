//! Account addresses and chain ids.
//!
//! An address is an account's ed25519 public key (its 32-byte compressed point),
//! written as exactly 64 lowercase hex digits, with no prefix: what Python's
//! `bytes(verify_key).hex()` prints. Lowercase only, so each key has one spelling.

use std::fmt;
use std::str::FromStr;

use ed25519_dalek::VerifyingKey;

use super::AccountsError;
use crate::chain::hash::{decode_lower_hex, write_hex};

/// An account: the ed25519 public key that signs its transfers.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address(pub [u8; 32]);

/// A chain's identity, fixed at genesis and covered by every transfer signature, so a
/// transfer signed for one chain is invalid on every other.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainId(pub [u8; 32]);

fn hex32(bytes: &[u8; 32]) -> String {
    let mut out = Vec::with_capacity(64);
    write_hex(bytes, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Why a text is not 64 lowercase hex digits.
fn hex_reason(text: &[u8]) -> &'static str {
    if text.len() != 64 {
        "expected 64 lowercase hex digits"
    } else {
        "not lowercase hex"
    }
}

impl Address {
    pub fn of(key: &VerifyingKey) -> Self {
        Address(key.to_bytes())
    }

    /// Parses the text form (no check that it is a valid key: see [`Address::key`]).
    pub fn parse(text: &[u8], field: &'static str) -> Result<Self, AccountsError> {
        decode_lower_hex(text)
            .map(Address)
            .ok_or(AccountsError::MalformedAddress {
                field,
                reason: hex_reason(text),
            })
    }

    /// The public key, if these bytes are one that can sign: a valid curve point of
    /// large order (small-order "weak" keys are refused: anyone can forge for them).
    pub fn key(&self, field: &'static str) -> Result<VerifyingKey, AccountsError> {
        let key =
            VerifyingKey::from_bytes(&self.0).map_err(|_| AccountsError::MalformedAddress {
                field,
                reason: "not an ed25519 public key",
            })?;
        if key.is_weak() {
            return Err(AccountsError::MalformedAddress {
                field,
                reason: "a weak (small-order) ed25519 key",
            });
        }
        Ok(key)
    }

    pub fn to_hex(&self) -> String {
        hex32(&self.0)
    }
}

impl ChainId {
    pub fn parse(text: &[u8]) -> Option<Self> {
        decode_lower_hex(text).map(ChainId)
    }

    /// A fresh random chain id, for a new chain's genesis.
    pub fn random() -> Self {
        ChainId(rand::random())
    }

    pub fn to_hex(&self) -> String {
        hex32(&self.0)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Address({self})")
    }
}

impl FromStr for Address {
    type Err = AccountsError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s.as_bytes(), "address")
    }
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainId({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
        let a = Address::of(&key);
        let text = a.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text.parse::<Address>(), Ok(a));
        assert_eq!(a.key("to"), Ok(key));
        for bad in [&text[..62], &text.to_uppercase(), "zz"] {
            assert!(matches!(
                bad.parse::<Address>(),
                Err(AccountsError::MalformedAddress { .. })
            ));
        }
        // The identity point is a valid encoding but a weak key.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert!(matches!(
            Address(identity).key("from"),
            Err(AccountsError::MalformedAddress { .. })
        ));
    }
}
