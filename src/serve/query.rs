//! The query layer: every read the API makes, as typed results. Routes never see SQL.
//!
//! Connections are read-only and pooled (SQLite connections are not shareable between
//! threads at once); a lookup is one or two B-tree seeks, microseconds, so handlers call
//! in directly rather than hopping to a blocking thread.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::Serialize;
use serde_json::value::RawValue;

use super::schema;
use crate::chain::accounts::{Address, ChainId};
use crate::chain::pow::v2_header;
use crate::chain::proof::{merkle_branch, InclusionProof, ProofHeader, PROOF_FORMAT};
use crate::chain::{BlockHash, MerkleRoot, TxId};

/// Errors of the query layer.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("index database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("this chain follows the seed (tutorial) rules: its blocks have no Merkle root, so there are no inclusion proofs")]
    SeedRules,
    #[error("the index has no chain yet")]
    Empty,
    #[error("not an account address on this accounts chain: {0}")]
    NotAnAddress(String),
}

/// A block as the API shows it (Esplora's names where it has them).
#[derive(Clone, Debug, Serialize)]
pub struct BlockInfo {
    pub id: String,
    pub height: u64,
    pub previousblockhash: Option<String>,
    pub merkle_root: Option<String>,
    pub timestamp: f64,
    pub tx_count: u64,
    /// v2: the nonce.
    pub nonce: Option<u64>,
    /// The `proof` field as JSON text (seed rules: the tutorial's proof).
    pub proof: String,
    pub miner: Option<String>,
    /// Offset of the block's record on the chain topic.
    pub offset: i64,
}

/// A transaction and where it is.
#[derive(Clone, Debug, Serialize)]
pub struct TxInfo {
    pub txid: String,
    pub block_height: u64,
    pub block_hash: String,
    pub block_time: f64,
    pub pos: u64,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    /// The amount as written on the chain (JSON number text).
    pub amount: Option<String>,
    pub origin: Option<OriginInfo>,
    /// The canonical transaction JSON (what the txid hashes).
    pub tx: Box<RawValue>,
    /// How many times this exact transaction is on the chain (rewards repeat).
    pub occurrences: u64,
    /// Esplora's `status` (only `/tx/:txid` fills it in).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<TxStatus>,
}

/// Where a transaction stands, as `/tx/:txid` reports it.
#[derive(Clone, Debug, Serialize)]
pub struct TxStatus {
    pub confirmed: bool,
    pub state: &'static str,
    pub block_height: u64,
    pub block_hash: String,
    pub block_time: f64,
    pub confirmations: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct OriginInfo {
    pub partition: i32,
    pub offset: i64,
}

/// An address's totals.
#[derive(Clone, Debug, Serialize)]
pub struct AddressInfo {
    pub address: String,
    /// The indexed chain's rules: `seed`, `v2` or `accounts`.
    pub rules: String,
    pub tx_count: u64,
    /// Sum of the amounts of the transactions naming it as recipient (an accounts
    /// genesis allocation is no transaction, so it is not in here).
    pub received: f64,
    pub sent: f64,
    pub balance: Balance,
    /// Accounts chains only: the nonce its next transfer must carry (the number of
    /// its transfers on the chain).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_nonce: Option<u64>,
}

/// What `balance` means depends on the rules.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Balance {
    /// Seed and v2: received − sent. Those rules check no balances; this is a tally.
    Tally(f64),
    /// Accounts: the ledger's balance in minor units (genesis allocation included),
    /// as replay has it at the indexed tip.
    Exact(u64),
}

/// Which rule set the indexed chain follows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum IndexedRules {
    Seed,
    V2 { difficulty: u32 },
    Accounts { difficulty: u32 },
}

impl IndexedRules {
    fn name(&self) -> &'static str {
        match self {
            IndexedRules::Seed => "seed",
            IndexedRules::V2 { .. } => "v2",
            IndexedRules::Accounts { .. } => "accounts",
        }
    }
}

/// The index, read side.
pub struct Query {
    path: PathBuf,
    pool: Mutex<Vec<Connection>>,
}

const BLOCK_COLUMNS: &str =
    "height, hash, previous_hash, merkle_root, timestamp, tx_count, nonce, proof, miner, offset";

fn hex_opt(bytes: Option<Vec<u8>>) -> Option<String> {
    bytes.map(hex::encode)
}

fn block_row(r: &Row<'_>) -> rusqlite::Result<BlockInfo> {
    Ok(BlockInfo {
        height: r.get::<_, i64>(0)? as u64,
        id: hex::encode(r.get::<_, Vec<u8>>(1)?),
        previousblockhash: hex_opt(r.get(2)?),
        merkle_root: hex_opt(r.get(3)?),
        timestamp: r.get(4)?,
        tx_count: r.get::<_, i64>(5)? as u64,
        nonce: r.get::<_, Option<String>>(6)?.and_then(|n| n.parse().ok()),
        proof: r.get(7)?,
        miner: r.get(8)?,
        offset: r.get(9)?,
    })
}

/// The columns [`tx_row`] reads: `txs t` joined with its block `b`, and the number of
/// occurrences of the same id.
const TX_COLUMNS: &str = "t.height, t.pos, t.sender, t.recipient, t.amount, t.origin_partition,
     t.origin_offset, t.json, b.hash, b.timestamp, t.txid,
     (SELECT COUNT(*) FROM txs o WHERE o.txkey = t.txkey AND o.txid = t.txid)";

fn tx_row(r: &Row<'_>) -> rusqlite::Result<TxInfo> {
    let partition: Option<i32> = r.get(5)?;
    let offset: Option<i64> = r.get(6)?;
    Ok(TxInfo {
        txid: hex::encode(r.get::<_, Vec<u8>>(10)?),
        block_height: r.get::<_, i64>(0)? as u64,
        pos: r.get::<_, i64>(1)? as u64,
        sender: r.get(2)?,
        recipient: r.get(3)?,
        amount: r.get(4)?,
        origin: partition
            .zip(offset)
            .map(|(partition, offset)| OriginInfo { partition, offset }),
        tx: raw(r.get(7)?),
        block_hash: hex::encode(r.get::<_, Vec<u8>>(8)?),
        block_time: r.get(9)?,
        occurrences: r.get::<_, i64>(11)?.max(1) as u64,
        status: None,
    })
}

fn raw(json: String) -> Box<RawValue> {
    RawValue::from_string(json)
        .unwrap_or_else(|_| RawValue::from_string("null".into()).unwrap_or_default())
}

impl Query {
    pub fn new(path: &Path) -> Self {
        Query {
            path: path.to_path_buf(),
            pool: Mutex::new(Vec::new()),
        }
    }

    fn sql(&self, source: rusqlite::Error) -> QueryError {
        QueryError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Runs `f` with a pooled read-only connection.
    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, QueryError> {
        let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match pooled {
            Some(c) => c,
            None => schema::open_reader(&self.path).map_err(|e| self.sql(e))?,
        };
        let result = f(&conn).map_err(|e| self.sql(e));
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
        result
    }

    pub fn rules(&self) -> Result<Option<IndexedRules>, QueryError> {
        self.with(|c| {
            let rules = schema::get_meta(c, "rules")?;
            let difficulty = schema::get_meta(c, "difficulty")?
                .and_then(|d| d.parse().ok())
                .unwrap_or(0);
            Ok(match rules.as_deref() {
                Some("seed") => Some(IndexedRules::Seed),
                Some("v2") => Some(IndexedRules::V2 { difficulty }),
                Some("accounts") => Some(IndexedRules::Accounts { difficulty }),
                _ => None,
            })
        })
    }

    /// The chain id, when the indexed chain follows the accounts rules.
    pub fn accounts_chain_id(&self) -> Result<Option<ChainId>, QueryError> {
        self.with(|c| {
            Ok(schema::get_meta(c, "chain_id")?.and_then(|id| ChainId::parse(id.as_bytes())))
        })
    }

    pub fn tip(&self) -> Result<Option<BlockInfo>, QueryError> {
        self.with(|c| {
            c.prepare_cached(&format!(
                "SELECT {BLOCK_COLUMNS} FROM blocks ORDER BY height DESC LIMIT 1"
            ))?
            .query_row([], block_row)
            .optional()
        })
    }

    pub fn block(&self, hash: &BlockHash) -> Result<Option<BlockInfo>, QueryError> {
        self.with(|c| {
            c.prepare_cached(&format!(
                "SELECT {BLOCK_COLUMNS} FROM blocks WHERE hash = ?1"
            ))?
            .query_row([&hash.0[..]], block_row)
            .optional()
        })
    }

    pub fn block_at(&self, height: u64) -> Result<Option<BlockInfo>, QueryError> {
        self.with(|c| {
            c.prepare_cached(&format!(
                "SELECT {BLOCK_COLUMNS} FROM blocks WHERE height = ?1"
            ))?
            .query_row([height as i64], block_row)
            .optional()
        })
    }

    /// Up to `limit` blocks at or below `start` (the tip when None), newest first.
    pub fn blocks_down_from(
        &self,
        start: Option<u64>,
        limit: u64,
    ) -> Result<Vec<BlockInfo>, QueryError> {
        let start = start.map_or(i64::MAX, |s| s.min(i64::MAX as u64) as i64);
        self.with(|c| {
            c.prepare_cached(&format!(
                "SELECT {BLOCK_COLUMNS} FROM blocks WHERE height <= ?1 ORDER BY height DESC LIMIT ?2"
            ))?
            .query_map(params![start, limit as i64], block_row)?
            .collect()
        })
    }

    /// Raw block records from height `from` (1 = genesis), at most `limit`.
    pub fn chain_page(&self, from: u64, limit: u64) -> Result<Vec<Box<RawValue>>, QueryError> {
        self.with(|c| {
            c.prepare_cached("SELECT json FROM blocks WHERE height >= ?1 ORDER BY height LIMIT ?2")?
                .query_map(
                    params![from.min(i64::MAX as u64) as i64, limit as i64],
                    |r| r.get::<_, String>(0).map(raw),
                )?
                .collect()
        })
    }

    /// Transaction ids of the block at `height`, in block order.
    pub fn txids(&self, height: u64) -> Result<Vec<TxId>, QueryError> {
        let (Some(first), Some(last)) = (
            schema::tx_row(height, 0),
            schema::tx_row(height, (1 << schema::POS_BITS) - 1),
        ) else {
            return Ok(Vec::new());
        };
        self.with(|c| {
            c.prepare_cached("SELECT txid FROM txs WHERE id BETWEEN ?1 AND ?2 ORDER BY id")?
                .query_map([first, last], |r| {
                    let b: Vec<u8> = r.get(0)?;
                    Ok(TxId(b.try_into().unwrap_or([0; 32])))
                })?
                .collect()
        })
    }

    /// The earliest occurrence of a transaction id (and how many there are).
    pub fn tx(&self, txid: &TxId) -> Result<Option<TxInfo>, QueryError> {
        self.with(|c| {
            c.prepare_cached(&format!(
                "SELECT {TX_COLUMNS} FROM txs t JOIN blocks b ON b.height = t.height
                 WHERE t.txkey = ?1 AND t.txid = ?2 ORDER BY t.id LIMIT 1"
            ))?
            .query_row(params![schema::tx_key(txid), &txid.0[..]], tx_row)
            .optional()
        })
    }

    /// The transaction in row `id` of `txs` (see [`schema::tx_row`]).
    fn tx_at(&self, id: i64) -> Result<Option<TxInfo>, QueryError> {
        self.with(|c| {
            c.prepare_cached(&format!(
                "SELECT {TX_COLUMNS} FROM txs t JOIN blocks b ON b.height = t.height
                 WHERE t.id = ?1"
            ))?
            .query_row([id], tx_row)
            .optional()
        })
    }

    /// The inclusion proof of the earliest occurrence of `txid` (None: unknown id).
    pub fn merkle_proof(&self, txid: &TxId) -> Result<Option<InclusionProof>, QueryError> {
        let difficulty = match self.rules()? {
            // Accounts blocks have the v2 header and Merkle tree.
            Some(IndexedRules::V2 { difficulty } | IndexedRules::Accounts { difficulty }) => {
                difficulty
            }
            Some(IndexedRules::Seed) => return Err(QueryError::SeedRules),
            None => return Err(QueryError::Empty),
        };
        let Some(tx) = self.tx(txid)? else {
            return Ok(None);
        };
        let Some(block) = self.block_at(tx.block_height)? else {
            return Ok(None);
        };
        let ids = self.txids(tx.block_height)?;
        let branch = merkle_branch(&ids, tx.pos as usize).unwrap_or_default();
        let root: MerkleRoot = block
            .merkle_root
            .as_deref()
            .and_then(|r| r.parse().ok())
            .unwrap_or(MerkleRoot::ZERO);
        let previous: BlockHash = block
            .previousblockhash
            .as_deref()
            .and_then(|r| r.parse().ok())
            .unwrap_or(BlockHash::ZERO);
        let nonce = block.nonce.unwrap_or(0);
        let header = v2_header(block.height, &previous, block.timestamp, &root, nonce);
        Ok(Some(InclusionProof {
            format: PROOF_FORMAT.into(),
            txid: txid.to_string(),
            tx: tx.tx.get().to_string(),
            block_height: block.height,
            pos: tx.pos,
            tx_count: ids.len() as u64,
            merkle: branch.iter().map(hex::encode).collect(),
            merkle_root: root.to_string(),
            block_hash: block.id.clone(),
            header: ProofHeader {
                index: block.height,
                previous_hash: previous.to_string(),
                timestamp: block.timestamp,
                merkle_root: root.to_string(),
                nonce,
            },
            header_hex: hex::encode(header),
            difficulty,
        }))
    }

    /// Totals of an address (None: never seen). On an accounts chain every well-formed
    /// address has a balance and a next nonce (zero if never funded), so a wallet can
    /// sign its first transfer; a malformed one is [`QueryError::NotAnAddress`].
    pub fn address(&self, address: &str) -> Result<Option<AddressInfo>, QueryError> {
        let rules = self.rules()?;
        let accounts = matches!(rules, Some(IndexedRules::Accounts { .. }));
        if accounts {
            if let Err(e) = Address::parse(address.as_bytes(), "address") {
                return Err(QueryError::NotAnAddress(e.to_string()));
            }
        }
        let rules = rules.as_ref().map_or("unknown", IndexedRules::name);
        self.with(|c| {
            let totals = c
                .prepare_cached(
                    "SELECT received, sent, tx_count FROM addresses WHERE address = ?1",
                )?
                .query_row([address], |r| {
                    Ok((
                        r.get::<_, f64>(0)?,
                        r.get::<_, f64>(1)?,
                        r.get::<_, i64>(2)?,
                    ))
                })
                .optional()?;
            let account = if accounts {
                let row = c
                    .prepare_cached("SELECT balance, nonce FROM accounts WHERE address = ?1")?
                    .query_row([address], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
                    })
                    .optional()?;
                let (balance, nonce) = row.unwrap_or_else(|| ("0".into(), 0));
                Some((balance.parse::<u64>().unwrap_or(0), nonce.max(0) as u64))
            } else {
                None
            };
            if totals.is_none() && account.is_none() {
                return Ok(None);
            }
            let (received, sent, tx_count) = totals.unwrap_or((0.0, 0.0, 0));
            Ok(Some(AddressInfo {
                address: address.to_string(),
                rules: rules.to_string(),
                tx_count: tx_count.max(0) as u64,
                received,
                sent,
                balance: match account {
                    Some((balance, _)) => Balance::Exact(balance),
                    None => Balance::Tally(received - sent),
                },
                next_nonce: account.map(|(_, nonce)| nonce),
            }))
        })
    }

    /// An address's transactions, newest first, skipping `from`, at most `limit`.
    pub fn address_txs(
        &self,
        address: &str,
        from: u64,
        limit: u64,
    ) -> Result<Vec<TxInfo>, QueryError> {
        let rows: Vec<i64> = self.with(|c| {
            c.prepare_cached(
                "SELECT tx FROM addr_txs WHERE address = ?1 ORDER BY tx DESC LIMIT ?2 OFFSET ?3",
            )?
            .query_map(
                params![address, limit as i64, from.min(i64::MAX as u64) as i64],
                |r| r.get(0),
            )?
            .collect()
        })?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            if let Some(info) = self.tx_at(row)? {
                out.push(info);
            }
        }
        Ok(out)
    }
}
