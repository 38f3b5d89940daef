//! 32-byte hash newtypes. Each kind of hash has its own type so that a transaction id
//! can never be passed where a block hash is expected (the rust-bitcoin habit).

use std::fmt;
use std::str::FromStr;

/// Why a hex string is not a 32-byte hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashParseError {
    #[error("expected 64 hex digits, found {0} characters")]
    Length(usize),
    #[error("not lowercase hex: {0:?}")]
    NotHex(String),
}

/// Lowercase-only hex decoding: the chain stores hashes as Python's `hexdigest()`
/// prints them, and an uppercase spelling is a different string to Python's `!=`.
pub(crate) fn decode_lower_hex(s: &[u8]) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    // Branch-free: accumulate an "invalid" bit over all digits, check once.
    let mut bad = 0u8;
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let hi = HEX_VAL[pair[0] as usize];
        let lo = HEX_VAL[pair[1] as usize];
        bad |= hi | lo;
        *o = (hi << 4) | (lo & 0x0f);
    }
    (bad & 0x80 == 0).then_some(out)
}

/// Value of each lowercase hex digit; 0x80 marks anything else.
const HEX_VAL: [u8; 256] = {
    let mut t = [0x80u8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Writes the lowercase hex of `bytes` into `out` without allocating.
pub(crate) fn write_hex(bytes: &[u8; 32], out: &mut Vec<u8>) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize]);
        out.push(DIGITS[(b & 0xf) as usize]);
    }
}

macro_rules! hash_newtype {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The all-zero hash.
            pub const ZERO: Self = Self([0; 32]);

            /// The raw digest bytes.
            pub fn as_bytes(&self) -> &[u8; 32] {
                &self.0
            }

            /// Lowercase hex, as Python's `hexdigest()` prints it.
            pub fn to_hex(&self) -> String {
                let mut out = Vec::with_capacity(64);
                write_hex(&self.0, &mut out);
                // Hex digits are ASCII, so this cannot fail.
                String::from_utf8(out).unwrap_or_default()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self)
            }
        }

        impl FromStr for $name {
            type Err = HashParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                if s.len() != 64 {
                    return Err(HashParseError::Length(s.len()));
                }
                decode_lower_hex(s.as_bytes())
                    .map(Self)
                    .ok_or_else(|| HashParseError::NotHex(s.to_owned()))
            }
        }
    };
}

hash_newtype!(
    /// The hash a block is known by: what the next block's `previous_hash` names.
    /// Seed rules: SHA-256 of the canonical JSON; v2: SHA-256 of the binary header.
    BlockHash
);
hash_newtype!(
    /// A transaction's Merkle leaf hash: SHA-256(0x00 ‖ canonical transaction JSON).
    TxId
);
hash_newtype!(
    /// The root of a block's transaction Merkle tree (v2 blocks carry it as `merkle_root`).
    MerkleRoot
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip() {
        let h = BlockHash([0xab; 32]);
        let s = h.to_string();
        assert_eq!(s, "ab".repeat(32));
        assert_eq!(s.parse::<BlockHash>(), Ok(h));
        assert!(matches!(
            "AB".repeat(32).parse::<BlockHash>(),
            Err(HashParseError::NotHex(_))
        ));
        assert_eq!("abc".parse::<TxId>(), Err(HashParseError::Length(3)));
    }
}
