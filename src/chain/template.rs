//! Building blocks for our node to mine and publish. Transactions are pre-encoded as
//! canonical JSON, so a block is concatenation: the bytes we publish are already
//! canonical, which is what lets every replaying node hash them without re-encoding.

use serde_json::Number;

use super::canonical::{write_json_number, write_json_string, write_py_float};
use super::claims::ContentDigest;
use super::hash::{write_hex, MerkleRoot};
use super::intake::SubmittedTx;
use super::merkle::{merkle_root, tx_id};
use super::pow::{v2_header, Work};
use super::replay::Tip;
use super::rules::Rules;
use super::Origin;

/// A transaction as it goes into a block, pre-encoded as canonical JSON.
#[derive(Clone, Debug, PartialEq)]
pub struct Transaction {
    json: String,
    origin: Option<Origin>,
    /// Which attempt at `origin` this is (0 unless other content claimed it first).
    attempt: u32,
    /// Byte span of the origin object in `json`, so another attempt is a splice.
    origin_span: (usize, usize),
    /// Digest of the transfer (see [`super::claims`]); None for the reward.
    content: Option<ContentDigest>,
}

impl Transaction {
    /// `{"amount": …, "origin": {"offset": …, "partition": …}, "recipient": to, "sender": from}`.
    pub fn from_submitted(tx: &SubmittedTx, origin: Origin) -> Self {
        Self::from_submitted_attempt(tx, origin, 0)
    }

    /// The same, for attempt `attempt` at the origin: attempt 0 is written as above (the
    /// form every chain has used), later ones as
    /// `"origin": {"attempt": n, "offset": …, "partition": …}`.
    pub fn from_submitted_attempt(tx: &SubmittedTx, origin: Origin, attempt: u32) -> Self {
        use std::fmt::Write as _;
        // One pass, no intermediate strings: the transfer's content digest hashes the
        // amount, recipient and sender exactly as written here (see `claims`).
        let mut amount = String::with_capacity(24);
        let _ = write!(amount, "{}", tx.amount);
        let mut out = Vec::with_capacity(96 + tx.from.len() + tx.to.len());
        out.extend_from_slice(b"{\"amount\": ");
        write_json_number(&amount, &mut out);
        let amount_end = out.len();
        out.extend_from_slice(b", \"origin\": ");
        let start = out.len();
        write_origin(origin, attempt, &mut out);
        let end = out.len();
        out.extend_from_slice(b", \"recipient\": ");
        write_json_string(&tx.to, &mut out);
        let recipient_end = out.len();
        out.extend_from_slice(b", \"sender\": ");
        write_json_string(&tx.from, &mut out);
        out.push(b'}');
        let content = ContentDigest::of_canonical_parts(&[
            &out[..amount_end],
            &out[end..recipient_end],
            &out[recipient_end..],
        ]);
        Self {
            json: into_string(out),
            origin: Some(origin),
            attempt,
            origin_span: (start, end),
            content: Some(content),
        }
    }

    /// This transaction as attempt `attempt` at its origin (the reward is unchanged).
    pub fn with_attempt(&self, attempt: u32) -> Self {
        let Some(origin) = self.origin else {
            return self.clone();
        };
        let (start, end) = self.origin_span;
        let member = origin_json(origin, attempt);
        let json = format!("{}{}{}", &self.json[..start], member, &self.json[end..]);
        Self {
            json,
            origin: Some(origin),
            attempt,
            origin_span: (start, start + member.len()),
            content: self.content,
        }
    }

    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The digest of the transfer, which replay computes for the chain's copy too.
    pub fn content(&self) -> Option<ContentDigest> {
        self.content
    }

    /// The block reward: `{"amount": amount, "recipient": recipient, "sender": "0"}`,
    /// as in the tutorial (which appends it last).
    pub fn reward(recipient: &str, amount: &Number) -> Self {
        let mut out = Vec::with_capacity(64 + recipient.len());
        out.extend_from_slice(b"{\"amount\": ");
        write_json_number(&amount.to_string(), &mut out);
        out.extend_from_slice(b", \"recipient\": ");
        write_json_string(recipient, &mut out);
        out.extend_from_slice(b", \"sender\": \"0\"}");
        Self {
            json: into_string(out),
            origin: None,
            attempt: 0,
            origin_span: (0, 0),
            content: None,
        }
    }

    /// A transaction already encoded as canonical JSON (the accounts rules build them).
    /// Their identity is (sender, nonce), so they carry no content digest and are
    /// never re-attempted at another origin.
    pub(crate) fn from_canonical(json: String, origin: Option<Origin>) -> Self {
        Self {
            json,
            origin,
            attempt: 0,
            origin_span: (0, 0),
            content: None,
        }
    }

    pub fn origin(&self) -> Option<Origin> {
        self.origin
    }

    pub fn canonical_json(&self) -> &str {
        &self.json
    }

    /// Length of the canonical JSON; in a block each transaction also takes a
    /// [`BLOCK_TX_SEPARATOR_BYTES`]-byte separator.
    pub fn encoded_len(&self) -> usize {
        self.json.len()
    }
}

/// An upper bound on a block's canonical JSON apart from its transactions (index,
/// hashes, proof, timestamp, keys and punctuation under either rule set), so that
/// `BLOCK_FRAME_BYTES + Σ (encoded_len + BLOCK_TX_SEPARATOR_BYTES)` bounds a block.
pub const BLOCK_FRAME_BYTES: usize = 512;
/// `", "` between two transactions of a block.
pub const BLOCK_TX_SEPARATOR_BYTES: usize = 2;

/// Appends the canonical origin object (keys sorted: attempt, offset, partition).
fn write_origin(origin: Origin, attempt: u32, out: &mut Vec<u8>) {
    use std::io::Write as _;
    let _ = if attempt == 0 {
        write!(
            out,
            "{{\"offset\": {}, \"partition\": {}}}",
            origin.offset, origin.partition
        )
    } else {
        write!(
            out,
            "{{\"attempt\": {attempt}, \"offset\": {}, \"partition\": {}}}",
            origin.offset, origin.partition
        )
    };
}

/// The canonical origin object (keys sorted: attempt, offset, partition).
fn origin_json(origin: Origin, attempt: u32) -> String {
    if attempt == 0 {
        format!(
            "{{\"offset\": {}, \"partition\": {}}}",
            origin.offset, origin.partition
        )
    } else {
        format!(
            "{{\"attempt\": {attempt}, \"offset\": {}, \"partition\": {}}}",
            origin.offset, origin.partition
        )
    }
}

/// Canonical JSON is ASCII (ensure_ascii), so this never loses anything.
fn into_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// The genesis block for a new chain, as canonical JSON bytes.
/// Seed: the tutorial's genesis (`previous_hash` is the integer 1, proof 100).
/// v2: records the rules and difficulty; previous hash all zeros, proof 0.
pub fn genesis(rules: Rules, timestamp: f64) -> Vec<u8> {
    let mut out = Vec::with_capacity(256);
    let mut ts = Vec::new();
    write_py_float(timestamp, &mut ts);
    match rules {
        Rules::Seed => {
            out.extend_from_slice(
                b"{\"index\": 1, \"previous_hash\": 1, \"proof\": 100, \"timestamp\": ",
            );
            out.extend_from_slice(&ts);
            out.extend_from_slice(b", \"transactions\": []}");
        }
        Rules::Accounts {
            difficulty,
            chain_id,
            block_reward,
        } => {
            // A new accounts chain with no allocations (see accounts::genesis_block).
            return super::accounts::genesis_block(
                &super::accounts::AccountsGenesis {
                    chain_id,
                    difficulty,
                    block_reward,
                    allocations: Default::default(),
                },
                timestamp,
            );
        }
        Rules::V2 { difficulty } => {
            out.extend_from_slice(
                format!("{{\"difficulty\": {difficulty}, \"index\": 1, \"merkle_root\": \"")
                    .as_bytes(),
            );
            write_hex(&[0; 32], &mut out);
            out.extend_from_slice(b"\", \"previous_hash\": \"");
            write_hex(&[0; 32], &mut out);
            out.extend_from_slice(b"\", \"proof\": 0, \"rules\": \"v2\", \"timestamp\": ");
            out.extend_from_slice(&ts);
            out.extend_from_slice(b", \"transactions\": []}");
        }
    }
    out
}

/// A block waiting for its proof: everything but the nonce is fixed.
#[derive(Clone, Debug)]
pub struct BlockTemplate {
    index: u64,
    timestamp: f64,
    /// Canonical JSON up to and including `"proof": `.
    prefix: Vec<u8>,
    /// Canonical JSON after the proof value.
    suffix: Vec<u8>,
    work: Work,
}

impl BlockTemplate {
    /// A block on top of `tip` carrying `txs` (the reward, if any, should be last).
    /// The timestamp is clamped to the tip's, so a node with a lagging clock still
    /// builds a valid v2 block.
    pub fn new(tip: &Tip, rules: Rules, timestamp: f64, txs: &[Transaction]) -> Self {
        let timestamp = if timestamp.is_finite() && timestamp >= tip.timestamp {
            timestamp
        } else {
            tip.timestamp
        };
        let index = tip.next_index();
        let mut prefix = Vec::with_capacity(256);
        prefix.extend_from_slice(format!("{{\"index\": {index}, ").as_bytes());
        let work = match rules {
            Rules::Seed => Work::seed(tip.proof_str().as_bytes()),
            Rules::V2 { difficulty } | Rules::Accounts { difficulty, .. } => {
                let ids: Vec<_> = txs
                    .iter()
                    .map(|t| tx_id(t.canonical_json().as_bytes()))
                    .collect();
                let root: MerkleRoot = merkle_root(&ids);
                prefix.extend_from_slice(b"\"merkle_root\": \"");
                write_hex(&root.0, &mut prefix);
                prefix.extend_from_slice(b"\", ");
                Work::v2(
                    &v2_header(index, &tip.hash, timestamp, &root, 0),
                    difficulty,
                )
            }
        };
        prefix.extend_from_slice(b"\"previous_hash\": \"");
        write_hex(&tip.hash.0, &mut prefix);
        prefix.extend_from_slice(b"\", \"proof\": ");
        let mut suffix =
            Vec::with_capacity(64 + txs.iter().map(|t| t.json.len() + 2).sum::<usize>());
        suffix.extend_from_slice(b", \"timestamp\": ");
        write_py_float(timestamp, &mut suffix);
        suffix.extend_from_slice(b", \"transactions\": [");
        for (i, tx) in txs.iter().enumerate() {
            if i > 0 {
                suffix.extend_from_slice(b", ");
            }
            suffix.extend_from_slice(tx.json.as_bytes());
        }
        suffix.extend_from_slice(b"]}");
        Self {
            index,
            timestamp,
            prefix,
            suffix,
            work,
        }
    }

    pub fn index(&self) -> u64 {
        self.index
    }

    /// The timestamp actually used (after clamping).
    pub fn timestamp(&self) -> f64 {
        self.timestamp
    }

    /// What the miner must solve.
    pub fn work(&self) -> Work {
        self.work.clone()
    }

    /// The finished block with `nonce` as its proof: canonical JSON, ready to publish.
    pub fn seal(&self, nonce: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.prefix.len() + 20 + self.suffix.len());
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(nonce.to_string().as_bytes());
        out.extend_from_slice(&self.suffix);
        out
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::chain::canonical::is_canonical;
    use crate::chain::{parse_submitted, ChainState, Miner};

    fn build_chain(rules: Rules, blocks: usize) -> Vec<Vec<u8>> {
        let mut state = ChainState::new();
        let g = genesis(rules, 1_700_000_000.25);
        assert!(is_canonical(&g).unwrap());
        state.apply(&g).unwrap();
        let mut out = vec![g];
        let miner = Miner::new(2);
        let mut offset = 0;
        for b in 0..blocks {
            let mut txs = Vec::new();
            for _ in 0..3 {
                let sub = parse_submitted(
                    format!(
                        r#"{{"from": "J\u00f6rg", "to": "\ud83d\ude00", "amount": {}.5}}"#,
                        offset
                    )
                    .as_bytes(),
                )
                .unwrap();
                txs.push(Transaction::from_submitted(
                    &sub,
                    Origin {
                        partition: 0,
                        offset,
                    },
                ));
                offset += 1;
            }
            txs.push(Transaction::reward("node-1", &Number::from(1)));
            let tip = state.tip().unwrap().clone();
            let t = BlockTemplate::new(&tip, rules, 1_700_000_001.0 + b as f64, &txs);
            let m = miner.mine(&t.work(), &AtomicBool::new(false)).unwrap();
            let block = t.seal(m.nonce);
            assert!(
                is_canonical(&block).unwrap(),
                "{}",
                String::from_utf8_lossy(&block)
            );
            let a = state
                .apply(&block)
                .unwrap_or_else(|d| panic!("{d}: {}", String::from_utf8_lossy(&block)));
            assert_eq!(a.index, tip.index + 1);
            assert_eq!(a.tx_count, 4);
            assert_eq!(a.miner.as_deref(), Some("node-1"));
            assert_eq!(a.origins.len(), 3);
            out.push(block);
        }
        assert!(state.contains_origin(Origin {
            partition: 0,
            offset: 0
        }));
        out
    }

    /// The content digest computed from the pieces of the canonical JSON is the digest
    /// of the transfer written on its own (what replay computes from a block).
    #[test]
    fn content_digest_is_the_transfers() {
        for (record, origin, attempt) in [
            (r#"{"from":"a","to":"b","amount":3}"#, (0, 0), 0),
            (
                r#"{"from":"J\u00f6rg","to":"\ud83d\ude00","amount":1.50}"#,
                (3, 77),
                0,
            ),
            (r#"{"from":"a\"q","to":"\n","amount":-0}"#, (1, 5), 2),
            (r#"{"from":"x","to":"y","amount":1e300}"#, (2, 9), 1),
        ] {
            let sub = parse_submitted(record.as_bytes()).unwrap();
            let origin = Origin {
                partition: origin.0,
                offset: origin.1,
            };
            let tx = Transaction::from_submitted_attempt(&sub, origin, attempt);
            let expected = ContentDigest::of_transfer(&sub.amount.to_string(), &sub.to, &sub.from);
            assert_eq!(tx.content(), Some(expected), "{record}");
            assert_eq!(tx.with_attempt(attempt + 1).content(), Some(expected));
            assert_eq!(
                tx.with_attempt(attempt + 1).with_attempt(attempt),
                tx,
                "an attempt is a splice"
            );
        }
    }

    #[test]
    fn built_blocks_replay_under_both_rules() {
        build_chain(Rules::Seed, 3);
        build_chain(Rules::V2 { difficulty: 10 }, 3);
    }

    #[test]
    fn frame_bound_holds() {
        for rules in [Rules::Seed, Rules::V2 { difficulty: 1 }] {
            let mut state = ChainState::new();
            state.apply(&genesis(rules, 1.7e9)).unwrap();
            let mut tip = state.tip().unwrap().clone();
            tip.index = u64::MAX - 1;
            let txs = [Transaction::reward("n", &Number::from(1))];
            let t = BlockTemplate::new(&tip, rules, 1.234_567_890_123_456_7e300, &txs);
            let len = t.seal(u64::MAX).len();
            assert!(len <= BLOCK_FRAME_BYTES + txs[0].encoded_len() + BLOCK_TX_SEPARATOR_BYTES);
        }
    }

    #[test]
    fn transaction_encoding() {
        let sub = parse_submitted(br#"{"from": "a\"b", "to": "\u00e9", "amount": 1.50}"#).unwrap();
        let tx = Transaction::from_submitted(
            &sub,
            Origin {
                partition: 2,
                offset: 7,
            },
        );
        assert_eq!(
            tx.canonical_json(),
            r#"{"amount": 1.5, "origin": {"offset": 7, "partition": 2}, "recipient": "\u00e9", "sender": "a\"b"}"#
        );
        assert_eq!(
            Transaction::reward("n", &Number::from(1)).canonical_json(),
            r#"{"amount": 1, "recipient": "n", "sender": "0"}"#
        );
    }
}
