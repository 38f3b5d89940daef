//! Reading blocks as the Python original publishes them (and as v2 extends them)
//! straight off the parsed tape, without building a map per object.
//!
//! A block is a JSON object; its fields are looked up by name with Python dict
//! semantics (a repeated key: the last one wins). Fields we do not know are left
//! alone: under the seed rules they are still part of the hash, because the hash
//! covers the whole canonical document.

use super::canonical::{decode_string, key_is, parse_float, write_py_str_float, Kind, Tape};
use super::hash::decode_lower_hex;
use super::rules::RuleError;
use super::Origin;

/// Node indexes of the fields a block may carry.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Fields {
    pub index: Option<usize>,
    pub timestamp: Option<usize>,
    pub transactions: Option<usize>,
    pub proof: Option<usize>,
    pub previous_hash: Option<usize>,
    pub merkle_root: Option<usize>,
    pub rules: Option<usize>,
    pub difficulty: Option<usize>,
    /// Accounts genesis only.
    pub allocations: Option<usize>,
    pub block_reward: Option<usize>,
    pub chain_id: Option<usize>,
    pub signature_scheme: Option<usize>,
    /// Key node of the first field not listed above.
    pub unknown: Option<usize>,
}

impl Fields {
    /// Reads the top-level fields of the object at node 0.
    pub fn read(tape: &Tape, s: &[u8]) -> Self {
        let mut f = Fields::default();
        let mut decoded = Vec::new();
        for (k, v) in tape.members(0) {
            let n = tape.node(k);
            let name: &[u8] = if n.escaped {
                decoded.clear();
                decode_string(tape.raw(s, k), &mut decoded);
                &decoded
            } else {
                tape.raw(s, k)
            };
            let slot = match name {
                b"index" => &mut f.index,
                b"timestamp" => &mut f.timestamp,
                b"transactions" => &mut f.transactions,
                b"proof" => &mut f.proof,
                b"previous_hash" => &mut f.previous_hash,
                b"merkle_root" => &mut f.merkle_root,
                b"rules" => &mut f.rules,
                b"difficulty" => &mut f.difficulty,
                b"allocations" => &mut f.allocations,
                b"block_reward" => &mut f.block_reward,
                b"chain_id" => &mut f.chain_id,
                b"signature_scheme" => &mut f.signature_scheme,
                _ => {
                    f.unknown.get_or_insert(k);
                    continue;
                }
            };
            *slot = Some(v);
        }
        f
    }
}

/// A short, readable rendering of a value for error messages.
pub(crate) fn describe(tape: &Tape, s: &[u8], idx: usize) -> String {
    let n = tape.node(idx);
    let raw = &s[n.start as usize..n.end as usize];
    let text = match n.kind {
        Kind::Str => {
            let mut d = Vec::new();
            decode_string(raw, &mut d);
            format!("{:?}", String::from_utf8_lossy(&d))
        }
        _ => String::from_utf8_lossy(raw).into_owned(),
    };
    if text.chars().count() > 80 {
        let cut: String = text.chars().take(77).collect();
        format!("{cut}...")
    } else {
        text
    }
}

/// The decoded text of a string node, or `None` for other kinds.
pub(crate) fn string_value(tape: &Tape, s: &[u8], idx: usize) -> Option<String> {
    let n = tape.node(idx);
    if n.kind != Kind::Str {
        return None;
    }
    if !n.escaped {
        return std::str::from_utf8(tape.raw(s, idx))
            .ok()
            .map(str::to_owned);
    }
    let mut d = Vec::new();
    decode_string(tape.raw(s, idx), &mut d);
    Some(String::from_utf8_lossy(&d).into_owned())
}

/// Whether string node `idx` is exactly `text`.
pub(crate) fn string_is(tape: &Tape, s: &[u8], idx: usize, text: &[u8]) -> bool {
    let n = tape.node(idx);
    n.kind == Kind::Str && key_is(s, n, text)
}

/// A JSON integer that fits `u64` (`-0` counts as 0, as in Python).
pub(crate) fn as_u64(tape: &Tape, s: &[u8], idx: usize) -> Option<u64> {
    let n = tape.node(idx);
    if n.kind != Kind::Int {
        return None;
    }
    let raw = tape.raw(s, idx);
    if raw == b"-0" {
        return Some(0);
    }
    std::str::from_utf8(raw).ok()?.parse().ok()
}

fn as_i64(tape: &Tape, s: &[u8], idx: usize) -> Option<i64> {
    let n = tape.node(idx);
    if n.kind != Kind::Int {
        return None;
    }
    std::str::from_utf8(tape.raw(s, idx)).ok()?.parse().ok()
}

/// Any JSON number as the f64 Python's `float()` would give.
pub(crate) fn as_f64(tape: &Tape, s: &[u8], idx: usize) -> Option<f64> {
    match tape.node(idx).kind {
        Kind::Int | Kind::Float => Some(parse_float(tape.raw(s, idx))),
        _ => None,
    }
}

/// A 64-digit lowercase hex string (how hashes are spelled on the chain).
pub(crate) fn as_hash(tape: &Tape, s: &[u8], idx: usize) -> Option<[u8; 32]> {
    let n = tape.node(idx);
    if n.kind != Kind::Str {
        return None;
    }
    if !n.escaped {
        return decode_lower_hex(tape.raw(s, idx));
    }
    let mut d = Vec::new();
    decode_string(tape.raw(s, idx), &mut d);
    decode_lower_hex(&d)
}

/// Python's `str(value)` as UTF-8, for the seed proof `f'{last_proof}{proof}'`.
pub(crate) fn python_str(
    tape: &Tape,
    s: &[u8],
    idx: usize,
    out: &mut Vec<u8>,
) -> Result<(), RuleError> {
    out.clear();
    let raw = tape.raw(s, idx);
    match tape.node(idx).kind {
        Kind::Int => out.extend_from_slice(if raw == b"-0" { b"0" } else { raw }),
        Kind::Float => write_py_str_float(parse_float(raw), out),
        Kind::Str => {
            decode_string(raw, out);
            // A lone surrogate makes Python's `.encode()` raise: no proof can match.
            if std::str::from_utf8(out).is_err() {
                return Err(RuleError::UnsupportedProof(describe(tape, s, idx)));
            }
        }
        Kind::True => out.extend_from_slice(b"True"),
        Kind::False => out.extend_from_slice(b"False"),
        Kind::Null => out.extend_from_slice(b"None"),
        // str() of a list or dict is repr() of its items; repr() escapes lone
        // surrogates, so the result always encodes.
        Kind::Object | Kind::Array => super::pyrepr::write_repr(tape, s, idx, out),
    }
    Ok(())
}

/// Node indexes of a transaction's fields, found in one pass over its members.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct TxFields {
    pub sender: Option<usize>,
    pub recipient: Option<usize>,
    pub amount: Option<usize>,
    pub origin: Option<usize>,
}

impl TxFields {
    pub fn read(tape: &Tape, s: &[u8], tx: usize) -> Self {
        let mut f = TxFields::default();
        let mut decoded = Vec::new();
        for (k, v) in tape.members(tx) {
            let name: &[u8] = if tape.node(k).escaped {
                decoded.clear();
                decode_string(tape.raw(s, k), &mut decoded);
                &decoded
            } else {
                tape.raw(s, k)
            };
            match name {
                b"sender" => f.sender = Some(v),
                b"recipient" => f.recipient = Some(v),
                b"amount" => f.amount = Some(v),
                b"origin" => f.origin = Some(v),
                _ => {}
            }
        }
        f
    }

    /// The recipient of the block reward (sender `"0"`), if this is one.
    pub fn reward_recipient(&self, tape: &Tape, s: &[u8]) -> Option<String> {
        if !string_is(tape, s, self.sender?, b"0") {
            return None;
        }
        string_value(tape, s, self.recipient?)
    }
}

/// The origin `{"offset": o, "partition": p}` (or, for a later attempt at an origin
/// that other content claimed first, `{"attempt": n, "offset": o, "partition": p}` with
/// n ≥ 1) at node `o` of transaction number `at`, as (origin, attempt). Strict mode
/// rejects a malformed origin; lenient mode (seed, where Python never looks at it)
/// ignores it.
pub(crate) fn tx_origin(
    tape: &Tape,
    s: &[u8],
    o: usize,
    at: usize,
    strict: bool,
) -> Result<Option<(Origin, u32)>, RuleError> {
    let bad = |what: &str, expected: &'static str| RuleError::WrongType {
        field: format!("transactions[{at}].origin{what}"),
        expected,
    };
    if tape.node(o).kind != Kind::Object {
        return if strict {
            Err(bad("", "an object"))
        } else {
            Ok(None)
        };
    }
    let (mut partition, mut offset, mut attempt) = (None, None, None);
    let mut has_attempt = false;
    for (k, v) in tape.members(o) {
        let n = tape.node(k);
        if key_is(s, n, b"partition") {
            partition = as_i64(tape, s, v).and_then(|p| i32::try_from(p).ok());
        } else if key_is(s, n, b"offset") {
            offset = as_i64(tape, s, v).filter(|o| *o >= 0);
        } else if key_is(s, n, b"attempt") {
            has_attempt = true;
            attempt = as_u64(tape, s, v)
                .and_then(|a| u32::try_from(a).ok())
                .filter(|a| *a >= 1);
        }
    }
    match (partition, offset) {
        (Some(partition), Some(offset)) => {
            let origin = Origin { partition, offset };
            if !strict {
                return Ok(Some((origin, attempt.unwrap_or(0))));
            }
            if has_attempt && attempt.is_none() {
                return Err(bad(".attempt", "an integer 1..2^32"));
            }
            let want = if has_attempt { 3 } else { 2 };
            if tape.node(o).len != want {
                return Err(bad(
                    "",
                    "exactly {\"offset\", \"partition\"}, plus \"attempt\" n ≥ 1 after a conflicting claim",
                ));
            }
            Ok(Some((origin, attempt.unwrap_or(0))))
        }
        _ if !strict => Ok(None),
        (None, _) => Err(bad(".partition", "a 32-bit integer")),
        (_, None) => Err(bad(".offset", "a non-negative 64-bit integer")),
    }
}
