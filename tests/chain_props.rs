//! Property tests of the chain core: canonical JSON against an independent
//! encoder (floats included: `pyfloat`, not the crate's `write_py_float`), floats
//! written as Python's shortest repr, tamper detection on generated chains, replay
//! against a model of which records a chain accepts, and duplicate origins.

mod pyfloat;

use std::sync::atomic::AtomicBool;
use std::sync::OnceLock;

use kafkachain::chain::canonical::{is_canonical, to_canonical, write_py_float};
use kafkachain::chain::pow::{hash_leading_zero_bits, v2_header, v2_header_hash};
use kafkachain::chain::BlockHash;
use kafkachain::chain::{
    genesis, parse_submitted, BlockTemplate, ChainState, MerkleRoot, Miner, Origin, RuleError,
    Rules, Transaction,
};
use proptest::prelude::*;
use serde_json::{Number, Value};

// ---------- canonical JSON ----------

/// A JSON document with the Python-visible structure (keys as code points).
#[derive(Clone, Debug)]
enum Doc {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Arr(Vec<Doc>),
    Obj(Vec<(String, Doc)>),
}

fn doc() -> impl Strategy<Value = Doc> {
    let text = || {
        proptest::string::string_regex(
            "[a-z\"\\\\/\u{0}-\u{1f}\u{7f}\u{e9}\u{2028}\u{ffff}\u{1f600}\u{10ffff}]{0,6}",
        )
        .unwrap()
    };
    let leaf = prop_oneof![
        Just(Doc::Null),
        any::<bool>().prop_map(Doc::Bool),
        any::<i128>().prop_map(Doc::Int),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Doc::Float),
        (-1e6f64..1e6).prop_map(Doc::Float),
        text().prop_map(Doc::Str),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Doc::Arr),
            proptest::collection::vec((text(), inner), 0..5).prop_map(Doc::Obj),
        ]
    })
}

/// Independent reference for Python's `json.dumps(…, sort_keys=True)`: sorts by
/// `char` (code point), last duplicate wins, escapes per `ensure_ascii`.
fn reference(d: &Doc, out: &mut String) {
    match d {
        Doc::Null => out.push_str("null"),
        Doc::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Doc::Int(i) => out.push_str(&i.to_string()),
        Doc::Float(f) => out.push_str(&pyfloat::py_repr(*f)),
        Doc::Str(s) => reference_str(s, out),
        Doc::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                reference(item, out);
            }
            out.push(']');
        }
        Doc::Obj(members) => {
            let mut map = std::collections::BTreeMap::new();
            for (k, v) in members {
                map.insert(k.chars().collect::<Vec<char>>(), v);
            }
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                reference_str(&k.iter().collect::<String>(), out);
                out.push_str(": ");
                reference(v, out);
            }
            out.push('}');
        }
    }
}

fn reference_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{:04x}", u));
                }
            }
        }
    }
    out.push('"');
}

/// Some other spelling of the same document: random whitespace, raw or escaped
/// characters, float literals with extra zeros or exponents.
fn spell(d: &Doc, rng: &mut u64, out: &mut String) {
    fn coin_of(rng: &mut u64) -> u64 {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        *rng % 4
    }
    let ws = |c: u64, out: &mut String| out.push_str(["", " ", "\n\t", "  \r\n"][c as usize]);
    match d {
        Doc::Str(s) => {
            out.push('"');
            for c in s.chars() {
                match c {
                    '"' => out.push_str("\\\""),
                    '\\' => out.push_str(if coin_of(rng) == 0 { "\\u005C" } else { "\\\\" }),
                    '/' => out.push_str(if coin_of(rng) == 0 { "\\/" } else { "/" }),
                    '\u{0}'..='\u{1f}' => out.push_str(&format!("\\u{:04X}", c as u32)),
                    _ if coin_of(rng) == 0 => {
                        let mut units = [0u16; 2];
                        for u in c.encode_utf16(&mut units) {
                            out.push_str(&format!("\\u{:04X}", u));
                        }
                    }
                    _ => out.push(c),
                }
            }
            out.push('"');
        }
        Doc::Float(f) => match coin_of(rng) {
            0 => out.push_str(&format!("{f:e}").replace('e', "E")),
            1 => out.push_str(&format!("{f:?}")),
            _ => out.push_str(&format!("{f:.17e}")),
        },
        Doc::Arr(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ws(coin_of(rng), out);
                spell(item, rng, out);
            }
            out.push(']');
        }
        Doc::Obj(members) => {
            out.push('{');
            for (i, (k, v)) in members.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                spell(&Doc::Str(k.clone()), rng, out);
                ws(coin_of(rng), out);
                out.push(':');
                spell(v, rng, out);
            }
            out.push('}');
        }
        other => reference(other, out),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn canonical_matches_independent_encoder(d in doc(), seed in 1u64..) {
        let mut want = String::new();
        reference(&d, &mut want);
        let mut rng = seed;
        let mut spelled = String::new();
        spell(&d, &mut rng, &mut spelled);
        let got = to_canonical(spelled.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e}: {spelled}")))?;
        prop_assert_eq!(std::str::from_utf8(&got).unwrap(), want.as_str(), "input {}", spelled);
        // The canonical form is a fixed point, and the fast path recognises it.
        prop_assert!(is_canonical(&got).unwrap());
        prop_assert_eq!(to_canonical(&got).unwrap(), got);
    }

    /// `write_py_float` is Python's repr by definition: it round-trips, no literal
    /// with one digit fewer does, its digits are the closest of that length, and
    /// the layout is CPython's (checked against the independent encoder).
    #[test]
    fn float_repr_is_shortest_and_pythons_layout(bits in any::<u64>(), decimal in -1e20f64..1e20, exp in -330i32..310) {
        for x in [f64::from_bits(bits), decimal, format!("1e{exp}").parse::<f64>().unwrap()] {
            if !x.is_finite() {
                continue;
            }
            let mut v = Vec::new();
            write_py_float(x, &mut v);
            let text = std::str::from_utf8(&v).unwrap();
            prop_assert_eq!(pyfloat::not_shortest_repr(x, text), None);
            prop_assert_eq!(text, pyfloat::py_repr(x));
        }
    }
}

// ---------- generated chains ----------

const DIFFICULTY: u32 = 8;

fn build(rules: Rules, blocks: usize) -> Vec<Vec<u8>> {
    let mut state = ChainState::new();
    let g = genesis(rules, 1_764_079_200.5);
    state.apply(&g).unwrap();
    let mut out = vec![g];
    let miner = Miner::new(2);
    let mut offset = 0i64;
    let names = ["alice", "Zo\u{eb}", "\u{1f600}", "tab\there", "q\"uote"];
    for b in 0..blocks {
        let mut txs = Vec::new();
        for k in 0..3 {
            let msg = serde_json::json!({"from": names[(b + k) % 5], "to": names[(b + 2 * k + 1) % 5], "amount": 0.5 + k as f64});
            let sub = parse_submitted(msg.to_string().as_bytes()).unwrap();
            txs.push(Transaction::from_submitted(
                &sub,
                Origin {
                    partition: (k % 2) as i32,
                    offset,
                },
            ));
            offset += 1;
        }
        txs.push(Transaction::reward("node-1", &Number::from(1)));
        let tip = state.tip().unwrap().clone();
        let t = BlockTemplate::new(&tip, rules, 1_764_079_201.25 + b as f64, &txs);
        let m = miner.mine(&t.work(), &AtomicBool::new(false)).unwrap();
        let block = t.seal(m.nonce);
        state.apply(&block).unwrap();
        out.push(block);
    }
    out
}

fn v2_chain() -> &'static Vec<Vec<u8>> {
    static CHAIN: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CHAIN.get_or_init(|| {
        build(
            Rules::V2 {
                difficulty: DIFFICULTY,
            },
            6,
        )
    })
}

fn seed_chain() -> &'static Vec<Vec<u8>> {
    static CHAIN: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CHAIN.get_or_init(|| build(Rules::Seed, 5))
}

/// Replays; returns (0-based record index, reason) of every discard, and the tip hash.
fn replay(records: &[Vec<u8>]) -> (Vec<(usize, RuleError)>, String, u64) {
    let mut state = ChainState::new();
    let mut discards = Vec::new();
    for (i, r) in records.iter().enumerate() {
        if let Err(d) = state.apply(r) {
            discards.push((i, d.reason));
        }
    }
    (
        discards,
        state.tip().map(|t| t.hash.to_string()).unwrap_or_default(),
        state.height(),
    )
}

#[derive(Clone, Debug)]
enum Tamper {
    Index,
    PreviousHash(usize),
    Timestamp(f64),
    Proof(u64),
    MerkleRoot(usize),
    Amount(usize),
    Sender(usize),
    OriginOffset(usize),
    DropTx(usize),
    ExtraField,
}

fn tamper() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        Just(Tamper::Index),
        (0usize..64).prop_map(Tamper::PreviousHash),
        prop_oneof![-5.0f64..-1e-6, 1e-6f64..5.0].prop_map(Tamper::Timestamp),
        (1u64..1000).prop_map(Tamper::Proof),
        (0usize..64).prop_map(Tamper::MerkleRoot),
        (0usize..4).prop_map(Tamper::Amount),
        (0usize..4).prop_map(Tamper::Sender),
        (0usize..3).prop_map(Tamper::OriginOffset),
        (0usize..4).prop_map(Tamper::DropTx),
        Just(Tamper::ExtraField),
    ]
}

fn flip_hex(v: &mut Value, at: usize) {
    let s = v.as_str().unwrap().to_owned();
    let mut b = s.into_bytes();
    b[at] = if b[at] == b'0' { b'1' } else { b'0' };
    *v = Value::String(String::from_utf8(b).unwrap());
}

fn apply_tamper(block: &[u8], t: &Tamper) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(block).unwrap();
    match t {
        Tamper::Index => v["index"] = Value::from(v["index"].as_u64().unwrap() + 1),
        Tamper::PreviousHash(at) => flip_hex(&mut v["previous_hash"], *at),
        Tamper::Timestamp(d) => {
            let ts = v["timestamp"].as_f64().unwrap() + d;
            v["timestamp"] = Value::Number(Number::from_f64(ts).unwrap());
        }
        Tamper::Proof(d) => v["proof"] = Value::from(v["proof"].as_u64().unwrap() + d),
        Tamper::MerkleRoot(at) => flip_hex(&mut v["merkle_root"], *at),
        Tamper::Amount(i) => v["transactions"][*i]["amount"] = Value::from(1000),
        Tamper::Sender(i) => v["transactions"][*i]["sender"] = Value::from("mallory"),
        Tamper::OriginOffset(i) => v["transactions"][*i]["origin"]["offset"] = Value::from(10_000),
        Tamper::DropTx(i) => {
            v["transactions"].as_array_mut().unwrap().remove(*i);
        }
        Tamper::ExtraField => v["note"] = Value::from("x"),
    }
    serde_json::to_vec(&v).unwrap()
}

/// Whether a tampered v2 block still meets the difficulty by chance (2^-8 per try).
fn v2_pow_still_ok(tampered: &[u8]) -> bool {
    let v: Value = serde_json::from_slice(tampered).unwrap();
    let (Some(index), Some(ts), Some(nonce)) = (
        v["index"].as_u64(),
        v["timestamp"].as_f64(),
        v["proof"].as_u64(),
    ) else {
        return false;
    };
    let prev = v["previous_hash"].as_str().unwrap().parse().unwrap();
    let merkle: MerkleRoot = v["merkle_root"].as_str().unwrap().parse().unwrap();
    hash_leading_zero_bits(&v2_header_hash(&v2_header(index, &prev, ts, &merkle, nonce)).0)
        >= DIFFICULTY
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// v2: tampering with any field of any block is detected at that block (the one
    /// exception is a timestamp or proof change that meets the difficulty by chance;
    /// then the next block's link catches it).
    #[test]
    fn v2_tampering_is_detected_at_that_block(block in 1usize..7, t in tamper()) {
        let chain = v2_chain();
        let (clean, _, height) = replay(chain);
        prop_assert!(clean.is_empty());
        prop_assert_eq!(height, chain.len() as u64);
        let mut records = chain.clone();
        records[block] = apply_tamper(&chain[block], &t);
        let (discards, _, _) = replay(&records);
        let lucky = matches!(t, Tamper::Timestamp(_) | Tamper::Proof(_));
        if lucky && v2_pow_still_ok(&records[block]) {
            // The proof still holds by chance, so the block is refused only if its
            // timestamp now goes backwards; otherwise the next block's link catches it.
            let first = discards.first();
            let backwards = matches!(t, Tamper::Timestamp(d) if d < 0.0)
                && first.is_some_and(|d| {
                    d.0 == block && matches!(d.1, RuleError::TimestampBackwards { .. })
                });
            if !backwards && block + 1 < records.len() {
                prop_assert_eq!(first.map(|d| d.0), Some(block + 1));
            }
        } else {
            let first = discards.first().cloned();
            prop_assert_eq!(first.as_ref().map(|d| d.0), Some(block), "{:?} -> {:?}", t, first);
            let reason = &first.unwrap().1;
            prop_assert!(!reason.is_stale());
            let expected = match t {
                Tamper::Index => matches!(reason, RuleError::WrongIndex { .. }),
                Tamper::PreviousHash(_) => matches!(reason, RuleError::BadLink { .. }),
                Tamper::Timestamp(d) if d < 0.0 => matches!(reason, RuleError::TimestampBackwards { .. } | RuleError::BadProof(_)),
                Tamper::Timestamp(_) | Tamper::Proof(_) => matches!(reason, RuleError::BadProof(_)),
                Tamper::ExtraField => matches!(reason, RuleError::UnknownField(_)),
                _ => matches!(reason, RuleError::MerkleMismatch { .. }),
            };
            prop_assert!(expected, "{:?} gave {}", t, reason);
        }
    }

    /// Seed (the tutorial's rules): the proof of work does not cover the content,
    /// so a content change is caught by the *next* block's link — never missed
    /// unless it is the last block.
    #[test]
    fn seed_tampering_is_detected_by_the_chain(block in 1usize..5, t in tamper()) {
        prop_assume!(!matches!(t, Tamper::MerkleRoot(_) | Tamper::OriginOffset(_)));
        let chain = seed_chain();
        let (_, clean_tip, _) = replay(chain);
        let mut records = chain.clone();
        records[block] = apply_tamper(&chain[block], &t);
        let (discards, tip, _) = replay(&records);
        let first = discards.first().map(|d| d.0);
        prop_assert!(first == Some(block) || first == Some(block + 1), "{:?}: {:?}", t, discards);
        prop_assert_ne!(tip, clean_tip);
        if matches!(t, Tamper::PreviousHash(_)) {
            prop_assert_eq!(first, Some(block));
        }
    }

    /// Replay against a model of what a chain accepts: records drawn (with
    /// repeats, out of order, tampered) from a v2 chain, a seed chain and garbage.
    /// Exactly the next block of the chain that the first genesis chose is appended;
    /// a re-published earlier block or second genesis is stale; everything else is
    /// invalid; a discarded record leaves the state untouched; and replaying only the
    /// appended records gives the same chain.
    #[test]
    fn replay_follows_the_model(picks in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..4), 0..40)) {
        let pool = record_pool();
        let mut model = Model::Empty;
        let mut state = ChainState::new();
        let mut appended = Vec::new();
        for (pick, how) in &picks {
            let entry = &pool[pick.index(pool.len())];
            let tampered = *how == 0 && entry.source.is_some();
            let record = if tampered { apply_tamper(&entry.bytes, &Tamper::ExtraField) } else { entry.bytes.clone() };
            let expected = model.expect(entry.source, tampered);
            let before = (state.height(), state.tip().map(|t| t.hash));
            match (state.apply(&record), expected) {
                (Ok(a), Expect::Append) => {
                    let (which, j) = entry.source.unwrap();
                    prop_assert_eq!(a.index, j as u64 + 1);
                    if !tampered {
                        prop_assert_eq!(a.hash, chain_hashes(which)[j]);
                    }
                    model.append(which, j, tampered);
                    appended.push(record);
                }
                (Err(d), Expect::Stale) if d.is_stale() => {}
                (Err(d), Expect::Invalid) if !d.is_stale() => {}
                (Err(_), Expect::Discard) => {}
                (got, want) => prop_assert!(false, "{:?} tampered={}: expected {:?}, got {:?}", entry.source, tampered, want, got.map(|a| a.index)),
            }
            if !matches!(expected, Expect::Append) {
                prop_assert_eq!(before, (state.height(), state.tip().map(|t| t.hash)), "a discarded record changed the state");
            }
        }
        prop_assert_eq!(state.height(), model.height());
        if let Some(hash) = model.clean_tip() {
            prop_assert_eq!(state.tip().map(|t| t.hash), Some(hash));
        }
        let mut again = ChainState::new();
        for r in &appended {
            prop_assert!(again.apply(r).is_ok(), "an appended record is refused on a replay of the appended records alone");
        }
        prop_assert_eq!((again.height(), again.tip().map(|t| t.hash)), (state.height(), state.tip().map(|t| t.hash)));
    }

    /// v2: a block repeating an origin already on the chain (or one twice within
    /// itself) is refused with `DuplicateOrigin` naming it, changes nothing (its new
    /// origins are not recorded), and the same block without the repeat is accepted.
    #[test]
    fn v2_duplicate_origins_are_refused_by_origin(
        on_chain in any::<prop::sample::Index>(),
        fresh in 0usize..4,
        at in any::<prop::sample::Index>(),
        within_block in any::<bool>(),
    ) {
        let chain = v2_chain();
        let mut state = ChainState::new();
        let mut used = Vec::new();
        for r in chain {
            used.extend(state.apply(r).unwrap().origins);
        }
        let new: Vec<Origin> = (0..fresh.max(usize::from(within_block))).map(|k| Origin { partition: (k % 2) as i32, offset: 1_000_000 + k as i64 }).collect();
        let dup = if within_block { new[0] } else { *on_chain.get(&used) };
        let mut origins = new.clone();
        origins.insert(at.index(origins.len() + 1), dup);
        let tip = state.tip().unwrap().clone();
        let rules = state.rules().unwrap();
        let mine = |origins: &[Origin]| {
            let mut txs: Vec<Transaction> = origins.iter().map(|o| tx_at(*o)).collect();
            txs.push(Transaction::reward("node-1", &Number::from(1)));
            let t = BlockTemplate::new(&tip, rules, tip.timestamp + 1.0, &txs);
            let m = Miner::new(1).mine(&t.work(), &AtomicBool::new(false)).unwrap();
            t.seal(m.nonce)
        };
        let refused = state.apply(&mine(&origins)).map(|a| a.index).map_err(|d| d.reason);
        prop_assert_eq!(refused, Err(RuleError::DuplicateOrigin(dup)));
        prop_assert_eq!(state.height(), chain.len() as u64);
        prop_assert_eq!(state.tip().map(|t| t.hash), Some(tip.hash));
        for o in &used {
            prop_assert!(state.contains_origin(*o), "{:?} forgotten", o);
        }
        for o in &new {
            prop_assert!(!state.contains_origin(*o), "{:?} recorded by a refused block", o);
        }
        let clean = new.clone();
        let a = state.apply(&mine(&clean)).map_err(|d| d.reason);
        prop_assert!(a.is_ok(), "{:?}", a);
        for o in &clean {
            prop_assert!(state.contains_origin(*o));
        }
    }
}

fn tx_at(origin: Origin) -> Transaction {
    let sub = parse_submitted(br#"{"from": "mallory", "to": "bob", "amount": 1}"#).unwrap();
    Transaction::from_submitted(&sub, origin)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Which {
    V2,
    Seed,
}

struct PoolEntry {
    /// Which chain and position (0 = genesis); None for garbage.
    source: Option<(Which, usize)>,
    bytes: Vec<u8>,
}

/// Every record of both generated chains and two garbage records (15 in all).
fn record_pool() -> Vec<PoolEntry> {
    let mut pool = Vec::new();
    for (which, chain) in [(Which::V2, v2_chain()), (Which::Seed, seed_chain())] {
        for (j, r) in chain.iter().enumerate() {
            pool.push(PoolEntry {
                source: Some((which, j)),
                bytes: r.clone(),
            });
        }
    }
    for g in [b"garbage".to_vec(), b"[1]".to_vec()] {
        pool.push(PoolEntry {
            source: None,
            bytes: g,
        });
    }
    assert_eq!(pool.len(), 15);
    pool
}

/// The hash of each block of a generated chain.
fn chain_hashes(which: Which) -> &'static [BlockHash] {
    static V2: OnceLock<Vec<BlockHash>> = OnceLock::new();
    static SEED: OnceLock<Vec<BlockHash>> = OnceLock::new();
    let (cell, chain) = match which {
        Which::V2 => (&V2, v2_chain()),
        Which::Seed => (&SEED, seed_chain()),
    };
    cell.get_or_init(|| {
        let mut state = ChainState::new();
        chain.iter().map(|r| state.apply(r).unwrap().hash).collect()
    })
}

#[derive(Clone, Copy, Debug)]
enum Expect {
    Append,
    Stale,
    Invalid,
    /// Discarded, either way (a tampered copy of a stale block: the extra field and
    /// the stale parent are both wrong).
    Discard,
}

#[derive(Debug)]
enum Model {
    Empty,
    /// On chain `which`, expecting block `next` (0-based); `tainted` once a tampered
    /// seed block (valid for the tutorial, but with another hash) became the tip.
    On {
        which: Which,
        next: usize,
        tainted: bool,
    },
}

impl Model {
    fn expect(&self, source: Option<(Which, usize)>, tampered: bool) -> Expect {
        let Some((which, j)) = source else {
            return Expect::Invalid;
        };
        // A v2 block may only carry fields its hash commits to.
        let refused_field = tampered && which == Which::V2;
        match *self {
            Model::Empty if j == 0 && !refused_field => Expect::Append,
            Model::Empty => Expect::Invalid,
            // Any well-formed genesis after the first one lost the genesis race.
            Model::On { .. } if j == 0 => {
                if refused_field {
                    Expect::Invalid
                } else {
                    Expect::Stale
                }
            }
            Model::On { which: on, .. } if on != which => Expect::Invalid,
            Model::On { next, tainted, .. } if j == next => {
                if tainted || refused_field {
                    Expect::Invalid
                } else {
                    Expect::Append
                }
            }
            Model::On { next, .. } if j < next => {
                if tampered {
                    Expect::Discard
                } else {
                    Expect::Stale
                }
            }
            Model::On { .. } => Expect::Invalid,
        }
    }

    fn append(&mut self, which: Which, j: usize, tampered: bool) {
        *self = Model::On {
            which,
            next: j + 1,
            tainted: tampered,
        };
    }

    fn height(&self) -> u64 {
        match self {
            Model::Empty => 0,
            Model::On { next, .. } => *next as u64,
        }
    }

    fn clean_tip(&self) -> Option<BlockHash> {
        match *self {
            Model::On {
                which,
                next,
                tainted: false,
            } => Some(chain_hashes(which)[next - 1]),
            _ => None,
        }
    }
}

#[test]
fn v2_duplicate_origin_and_stale_are_classified() {
    let chain = v2_chain();
    // Replaying a block again after its successor: it built on a recent block, so stale.
    let mut records = chain[..4].to_vec();
    records.push(chain[2].clone());
    let (discards, _, _) = replay(&records);
    assert_eq!(discards.len(), 1);
    assert!(discards[0].1.is_stale(), "{}", discards[0].1);
}

/// Escaped spellings decode as Python decodes them (the tutorial accepts any spelling):
/// origin keys written with `\u` escapes still name the origin, and a miner whose name
/// has code points at the UTF-8 length boundaries (U+0080, U+07FF, U+0800) is reported
/// as such. Both were mutants that survived the suite (`key_is`, `decode_string`).
#[test]
fn escaped_keys_and_names_decode_like_python() {
    let chain = seed_chain();
    let mut state = ChainState::new();
    state.apply(&chain[0]).unwrap();
    let text = String::from_utf8(chain[1].clone()).unwrap();
    let respelled = text
        .replace("\"partition\"", "\"\\u0070artition\"")
        .replace("\"offset\"", "\"o\\u0066fset\"");
    assert_ne!(respelled, text);
    let mut clean = ChainState::new();
    clean.apply(&chain[0]).unwrap();
    let want = clean.apply(&chain[1]).unwrap();
    let got = state
        .apply(respelled.as_bytes())
        .expect("the re-spelled block");
    assert_eq!(got.origins, want.origins);
    assert_eq!(got.origins.len(), 3);

    let tip = state.tip().unwrap().clone();
    let name = "x\u{80}y\u{7f}\u{7ff}\u{800}";
    let t = BlockTemplate::new(
        &tip,
        Rules::Seed,
        tip.timestamp + 1.0,
        &[Transaction::reward(name, &Number::from(1))],
    );
    let m = Miner::new(1)
        .mine(&t.work(), &AtomicBool::new(false))
        .unwrap();
    let a = state
        .apply(&t.seal(m.nonce))
        .expect("block with an escaped miner name");
    assert_eq!(a.miner.as_deref(), Some(name));
}

/// A mined v2 block on `state`'s tip carrying exactly these transaction values.
fn v2_block_with(state: &ChainState, txs: &[Value]) -> Vec<u8> {
    use kafkachain::chain::merkle::{merkle_root, tx_id};
    use kafkachain::chain::pow::Work;
    let tip = state.tip().unwrap();
    let ids: Vec<_> = txs
        .iter()
        .map(|t| tx_id(&to_canonical(t.to_string().as_bytes()).unwrap()))
        .collect();
    let root = merkle_root(&ids);
    let (index, ts) = (tip.index + 1, tip.timestamp + 1.0);
    let work = Work::v2(&v2_header(index, &tip.hash, ts, &root, 0), DIFFICULTY);
    let nonce = Miner::new(1)
        .mine(&work, &AtomicBool::new(false))
        .unwrap()
        .nonce;
    let block = serde_json::json!({"index": index, "merkle_root": root.to_hex(),
        "previous_hash": tip.hash.to_hex(), "proof": nonce, "timestamp": ts, "transactions": txs});
    to_canonical(block.to_string().as_bytes()).unwrap()
}

/// An origin is all or nothing under v2 (a transaction with half an origin could never
/// be deduplicated), while the tutorial's rules ignore origins altogether. A mutant that
/// swapped the two survived the suite (`tx_origin`).
#[test]
fn a_partial_origin_is_refused_under_v2_and_ignored_under_seed() {
    let reward = serde_json::json!({"amount": 1, "recipient": "n", "sender": "0"});
    let tx = |origin: Value| serde_json::json!({"amount": 1, "origin": origin, "recipient": "b", "sender": "a"});
    let mut state = ChainState::new();
    for r in v2_chain() {
        state.apply(r).unwrap();
    }
    let partial = v2_block_with(
        &state,
        &[tx(serde_json::json!({"partition": 0})), reward.clone()],
    );
    let refused = state.apply(&partial).map(|a| a.index);
    assert!(
        matches!(&refused, Err(d) if !d.is_stale()),
        "a v2 block with a partial origin: {refused:?}"
    );
    let whole = serde_json::json!({"offset": 999_999, "partition": 0});
    let fine = v2_block_with(&state, &[tx(whole), reward.clone()]);
    assert!(
        state.apply(&fine).is_ok(),
        "the same block with a whole origin"
    );

    let mut seed = ChainState::new();
    for r in seed_chain() {
        seed.apply(r).unwrap();
    }
    let tip = seed.tip().unwrap().clone();
    let nonce = Miner::new(1)
        .mine(
            &kafkachain::chain::pow::Work::seed(tip.proof_str().as_bytes()),
            &AtomicBool::new(false),
        )
        .unwrap()
        .nonce;
    let block = serde_json::json!({"index": tip.index + 1, "previous_hash": tip.hash.to_hex(),
        "proof": nonce, "timestamp": tip.timestamp + 1.0,
        "transactions": [tx(serde_json::json!({"partition": 0})), reward]});
    let accepted = seed.apply(block.to_string().as_bytes()).map(|a| a.index);
    assert_eq!(accepted, Ok(tip.index + 1), "the tutorial ignores origins");
}

/// Python's limit of 4300 digits counts an integer's own digits, not its position in
/// the document (a mutant that counted the position survived the suite).
#[test]
fn an_integer_deep_into_a_document_is_not_too_long() {
    let doc = format!("[\"{}\", 12345]", "x".repeat(5000));
    assert_eq!(to_canonical(doc.as_bytes()).unwrap(), doc.as_bytes());
}
