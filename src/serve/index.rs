//! The indexer: follows the chain topic with the node's own replay ([`ChainState`])
//! and writes what replay appends, in batches, into the SQLite index.
//!
//! # Invariants
//! 1. The index holds exactly the blocks that replaying chain-topic records
//!    `[0, next_offset)` appends, and nothing else (stale and invalid records are
//!    counted, never indexed).
//! 2. `next_offset` and the tip (`tip_height`, `tip_hash`) are written in the same
//!    SQLite transaction as the rows of the batch that moved them, so a crash leaves
//!    the index at the end of some whole batch.
//! 3. On start, replay state is rebuilt by replaying records `[0, next_offset)` through
//!    `ChainState` *without writing* (replay keeps a ring of recent blocks and the used
//!    origins, which exist only in memory); when it reaches `next_offset` the replayed
//!    tip must equal the stored tip. Block hashes chain, so an equal tip means the whole
//!    indexed chain is still what the topic says. If the topic is shorter than
//!    `next_offset`, or the tip differs (the topic was recreated), the index is wiped and
//!    rebuilt from offset 0. Writing resumes at `next_offset`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, Transaction};
use tracing::{info, warn};

use super::schema::{self, get_meta, set_meta};
use super::{BlockEvent, Shared};
use crate::chain::accounts::{Address, Ledger};
use crate::chain::contents::{BlockContents, ContentsReader};
use crate::chain::{Appended, BlockHash, ChainState, Rules, TxId};
use crate::node::Shutdown;
use crate::transport::chain_log::{ChainLog, ChainRecord};
use crate::transport::{KafkaConfig, TransportError};

/// Records read per batch (one SQLite transaction per batch): up to ~128 k
/// transactions in 1000-transaction blocks, so progress shows and the WAL stays small.
const BATCH_RECORDS: usize = 128;

/// Errors that stop the indexer.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index database {path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(transparent)]
    Transport(#[from] TransportError),
}

/// Where the stored index ends.
#[derive(Debug, Clone, Default)]
struct Resume {
    next_offset: i64,
    height: u64,
    tip: Option<BlockHash>,
}

impl Resume {
    fn load(conn: &Connection) -> rusqlite::Result<Self> {
        let num = |k| -> rusqlite::Result<Option<i64>> {
            Ok(get_meta(conn, k)?.and_then(|v| v.parse().ok()))
        };
        Ok(Resume {
            next_offset: num("next_offset")?.unwrap_or(0),
            height: num("tip_height")?.unwrap_or(0).max(0) as u64,
            tip: get_meta(conn, "tip_hash")?.and_then(|h| h.parse().ok()),
        })
    }
}

enum Outcome {
    Stopped,
    Rebuild(String),
}

/// Follows the chain topic into the index until stopped.
pub struct Indexer {
    pub path: PathBuf,
    pub kafka: KafkaConfig,
    pub topic: String,
    pub shared: Arc<Shared>,
}

impl Indexer {
    pub fn run(&self, stop: &Shutdown) -> Result<(), IndexError> {
        loop {
            match self.follow(stop)? {
                Outcome::Stopped => return Ok(()),
                Outcome::Rebuild(reason) => {
                    let conn = self.open()?;
                    schema::wipe(&conn, &self.topic).map_err(|e| self.sql(e))?;
                    // The API must not go on reporting the wiped index's height and tip.
                    self.shared.indexed(0, 0, None, &[]);
                    self.shared.metrics.rebuilds.inc();
                    warn!(%reason, "rebuilding the index from offset 0");
                }
            }
        }
    }

    fn sql(&self, source: rusqlite::Error) -> IndexError {
        IndexError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn report_stored(&self, resume: &Resume) {
        let m = &self.shared.metrics;
        m.height.set(resume.height as i64);
        m.next_offset.set(resume.next_offset);
        self.shared
            .indexed(resume.next_offset, resume.height, resume.tip, &[]);
    }

    fn open(&self) -> Result<Connection, IndexError> {
        schema::open_writer(&self.path, &self.topic).map_err(|e| self.sql(e))
    }

    fn follow(&self, stop: &Shutdown) -> Result<Outcome, IndexError> {
        let mut conn = self.open()?;
        let resume = Resume::load(&conn).map_err(|e| self.sql(e))?;
        // The API serves the stored rows from now on, so report where they end: with
        // nothing new on the topic no batch would ever report it (a restarted serve
        // said height 0 and "behind" on /healthz until the next block). A tip not on
        // the topic is wiped below, which reports 0 again.
        self.report_stored(&resume);
        let log = ChainLog::open(&self.kafka, &self.topic, 0)?;
        if resume.next_offset > 0 {
            let end = log.end_offset()?;
            if end < resume.next_offset {
                return Ok(Outcome::Rebuild(format!(
                    "the chain topic ends at offset {end}, before the index's {}",
                    resume.next_offset
                )));
            }
            info!(
                next_offset = resume.next_offset,
                height = resume.height,
                "index found; replaying the topic up to it before resuming"
            );
        }
        let mut state = ChainState::new();
        let mut verified = resume.next_offset == 0;
        let mut reader = ContentsReader::new();
        let mut batch: Vec<ChainRecord> = Vec::with_capacity(BATCH_RECORDS);
        let mut errors = 0u32;
        let mut dirty = false;
        while !stop.is_triggered() {
            batch.clear();
            if let Err(err) = log.poll_batch(BATCH_RECORDS, Duration::from_millis(100), &mut batch)
            {
                errors += 1;
                if errors % 50 == 1 {
                    warn!(error = %err, "reading the chain topic");
                }
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            errors = 0;
            if batch.is_empty() && dirty {
                // Caught up: move the WAL into the main file while nobody waits on us
                // (a long WAL slows every read).
                if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE);") {
                    warn!(error = %e, "checkpointing the index");
                }
                dirty = false;
            }
            // Records already indexed: replay only (invariant 3), then check the tip.
            let replayed = batch
                .iter()
                .take_while(|r| r.offset < resume.next_offset)
                .count();
            for record in &batch[..replayed] {
                let _ = state.apply(&record.payload);
            }
            let past_resume = batch
                .get(replayed.saturating_sub(1))
                .is_some_and(|r| r.offset + 1 >= resume.next_offset)
                || replayed < batch.len();
            if !verified && past_resume {
                if let Some(reason) = mismatch(&state, &resume) {
                    return Ok(Outcome::Rebuild(reason));
                }
                verified = true;
                info!(height = state.height(), "index verified against the topic");
            }
            let new = &batch[replayed..];
            if new.is_empty() {
                continue;
            }
            let started = Instant::now();
            let written =
                write_batch(&mut conn, &mut state, &mut reader, new).map_err(|e| self.sql(e))?;
            dirty = true;
            let m = &self.shared.metrics;
            m.batch_seconds.observe(started.elapsed().as_secs_f64());
            m.blocks.inc_by(written.blocks);
            m.txs.inc_by(written.txs);
            m.stale.inc_by(written.stale);
            m.invalid.inc_by(written.invalid);
            m.height.set(state.height() as i64);
            m.next_offset.set(written.next_offset);
            self.shared.indexed(
                written.next_offset,
                state.height(),
                state.tip().map(|t| t.hash),
                &written.ids,
            );
            for event in written.events {
                // No subscribers is fine.
                let _ = self.shared.events.send(event);
            }
        }
        Ok(Outcome::Stopped)
    }
}

/// Why the replayed state is not the stored tip (None: it is).
fn mismatch(state: &ChainState, resume: &Resume) -> Option<String> {
    let tip = state.tip().map(|t| t.hash);
    if state.height() == resume.height && tip == resume.tip {
        return None;
    }
    Some(format!(
        "the index's tip (height {}, {}) is not on the chain topic (replay gives height {}, {})",
        resume.height,
        resume.tip.map_or("none".into(), |h| h.to_string()),
        state.height(),
        tip.map_or("none".into(), |h| h.to_string()),
    ))
}

/// What one batch wrote.
#[derive(Debug, Default)]
pub struct Written {
    pub blocks: u64,
    pub txs: u64,
    pub stale: u64,
    pub invalid: u64,
    /// The offset after the batch's last record.
    pub next_offset: i64,
    pub ids: Vec<TxId>,
    pub events: Vec<BlockEvent>,
}

/// Applies `records` (consecutive chain-topic records, in order) to `state` and writes
/// what they append, with the new resume point, in one SQLite transaction.
pub fn write_batch(
    conn: &mut Connection,
    state: &mut ChainState,
    reader: &mut ContentsReader,
    records: &[ChainRecord],
) -> rusqlite::Result<Written> {
    let tx = conn.transaction()?;
    let mut writer = BatchWriter::default();
    let mut written = Written::default();
    for record in records {
        written.next_offset = record.offset + 1;
        match state.apply(&record.payload) {
            Ok(block) => {
                let height = state.height();
                let accounts = state.accounts().is_some();
                writer.block(&tx, reader, &block, height, record, accounts)?;
                written.events.push(BlockEvent {
                    height,
                    hash: block.hash.to_string(),
                    tx_count: block.tx_count,
                    timestamp: block.timestamp,
                });
            }
            Err(d) if d.is_stale() => written.stale += 1,
            Err(d) => {
                written.invalid += 1;
                warn!(offset = record.offset, reason = %d, "discarded invalid chain record");
            }
        }
    }
    writer.finish(&tx, state.accounts())?;
    set_meta(&tx, "next_offset", &written.next_offset.to_string())?;
    set_meta(&tx, "tip_height", &state.height().to_string())?;
    if let Some(tip) = state.tip() {
        set_meta(&tx, "tip_hash", &tip.hash.to_string())?;
    }
    if let Some(rules) = state.rules() {
        let (name, difficulty) = match rules {
            Rules::Seed => ("seed", 0),
            Rules::V2 { difficulty } => ("v2", difficulty),
            Rules::Accounts {
                difficulty,
                chain_id,
                ..
            } => {
                set_meta(&tx, "chain_id", &chain_id.to_hex())?;
                ("accounts", difficulty)
            }
        };
        set_meta(&tx, "rules", name)?;
        set_meta(&tx, "difficulty", &difficulty.to_string())?;
    }
    tx.commit()?;
    written.blocks = writer.blocks;
    written.txs = writer.txs;
    written.ids = writer.ids;
    Ok(written)
}

/// Rows of one batch; per-address totals are summed in memory and written once.
#[derive(Default)]
struct BatchWriter {
    addresses: HashMap<String, (f64, f64, i64)>,
    /// Accounts chains: addresses whose balance or nonce the batch may have changed.
    touched: HashSet<String>,
    blocks: u64,
    txs: u64,
    ids: Vec<TxId>,
}

impl BatchWriter {
    fn block(
        &mut self,
        tx: &Transaction<'_>,
        reader: &mut ContentsReader,
        block: &Appended,
        height: u64,
        record: &ChainRecord,
        accounts: bool,
    ) -> rusqlite::Result<()> {
        // The record was just accepted by replay, so it parses.
        let contents = reader
            .read(&record.payload)
            .unwrap_or_else(|_| BlockContents::empty());
        if accounts {
            self.touched.extend(contents.allocations.iter().cloned());
            for t in &contents.txs {
                // A reward's sender is "0", which is no account.
                self.touched
                    .extend(t.sender.iter().chain(&t.recipient).cloned());
            }
        }
        let json = String::from_utf8_lossy(&record.payload);
        tx.prepare_cached(
            "INSERT INTO blocks (height, hash, offset, timestamp, tx_count, previous_hash,
                                 merkle_root, nonce, proof, miner, json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?
        .execute(params![
            height as i64,
            &block.hash.0[..],
            record.offset,
            block.timestamp,
            block.tx_count as i64,
            contents.previous_hash.map(|h| h.0.to_vec()),
            contents.merkle_root.map(|h| h.0.to_vec()),
            contents.nonce.map(|n| n.to_string()),
            contents.proof,
            block.miner,
            json,
        ])?;
        let mut insert_tx = tx.prepare_cached(
            "INSERT INTO txs (id, height, pos, txkey, txid, sender, recipient, amount,
                              origin_partition, origin_offset, json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        )?;
        let mut insert_addr =
            tx.prepare_cached("INSERT OR IGNORE INTO addr_txs (address, tx) VALUES (?1, ?2)")?;
        for (pos, t) in contents.txs.iter().enumerate() {
            let Some(row) = schema::tx_row(height, pos as u64) else {
                warn!(
                    height,
                    pos,
                    "a block with more transactions than the index keys; the rest are not indexed"
                );
                break;
            };
            insert_tx.execute(params![
                row,
                height as i64,
                pos as i64,
                schema::tx_key(&t.id),
                &t.id.0[..],
                t.sender,
                t.recipient,
                t.amount,
                t.origin.map(|o| o.partition),
                t.origin.map(|o| o.offset),
                t.json,
            ])?;
            let amount = t.amount_f64.unwrap_or(0.0);
            if let Some(s) = &t.sender {
                insert_addr.execute(params![s, row])?;
                let e = self.addresses.entry(s.clone()).or_default();
                e.1 += amount;
                e.2 += 1;
            }
            if let Some(r) = &t.recipient {
                insert_addr.execute(params![r, row])?;
                let e = self.addresses.entry(r.clone()).or_default();
                e.0 += amount;
                if t.sender.as_ref() != Some(r) {
                    e.2 += 1;
                }
            }
            self.ids.push(t.id);
        }
        self.blocks += 1;
        self.txs += contents.txs.len() as u64;
        Ok(())
    }

    /// Writes the per-address totals and, on accounts chains, the balance and nonce
    /// of every touched account as `ledger` (replay's, at the batch's end) has them.
    fn finish(&mut self, tx: &Transaction<'_>, ledger: Option<&Ledger>) -> rusqlite::Result<()> {
        if let Some(ledger) = ledger {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO accounts (address, balance, nonce) VALUES (?1, ?2, ?3)
                 ON CONFLICT (address) DO UPDATE SET
                    balance = excluded.balance, nonce = excluded.nonce",
            )?;
            for text in self.touched.drain() {
                // Replay accepted the block, so its addresses parse; "0" does not.
                let Ok(address) = Address::parse(text.as_bytes(), "address") else {
                    continue;
                };
                let account = ledger.account(&address);
                upsert.execute(params![
                    text,
                    account.balance.to_string(),
                    account.nonce as i64
                ])?;
            }
        }
        let mut upsert = tx.prepare_cached(
            "INSERT INTO addresses (address, received, sent, tx_count) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (address) DO UPDATE SET
                received = received + excluded.received,
                sent = sent + excluded.sent,
                tx_count = tx_count + excluded.tx_count",
        )?;
        for (address, (received, sent, count)) in self.addresses.drain() {
            upsert.execute(params![address, received, sent, count])?;
        }
        Ok(())
    }
}
