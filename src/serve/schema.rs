//! The index schema, written down as code: which rows exist and how they are keyed.
//!
//! The index is a cache of the chain topic, never the source of truth: every row can
//! be rebuilt by replaying the topic, and a file with another schema version is simply
//! rebuilt.
//!
//! - `meta(key, value)`: `schema_version`, `chain_topic`, `next_offset` (the first
//!   chain-topic offset not yet replayed), `tip_height`, `tip_hash`, `tip_offset`,
//!   `rules`, `difficulty`.
//! - `blocks`: one row per block *on the chain* (appended by replay), keyed by
//!   `height` (position on the chain, genesis = 1; equal to the v2 `index`), unique by
//!   `hash`, with the chain-topic `offset` it was read from and its raw record.
//! - `txs`: one row per transaction, keyed by `id` = [`tx_row`]`(height, pos)` (so rows
//!   are appended in chain order, the cheapest insert a B-tree has), indexed by `txkey`
//!   = the first 8 bytes of `txid` (the v2 Merkle leaf hash) as a big-endian i64: a
//!   small integer index whose random inserts touch fewer pages than the 32-byte id
//!   would; a lookup also compares the whole `txid`. A txid is not unique: a reward
//!   pays the same miner the same amount with the same JSON in many blocks.
//! - `addr_txs`: per-address history, `(address, tx)` with `tx` a `txs.id`; a
//!   transaction appears once under its sender and once under its recipient.
//! - `addresses`: per-address totals (received, sent, transactions).
//! - `accounts`: `accounts` chains only: each account's balance (minor units, as
//!   decimal text: a balance may exceed SQLite's i64) and nonce (transfers sent, so
//!   the nonce its next transfer must carry) as of the indexed tip, copied from
//!   replay's ledger for every account a batch touched. `meta` also has `chain_id`.
//!
//! Why SQLite (`rusqlite`, bundled): one file, no server, transactions that make a
//! batch of blocks and the resume point land together or not at all, WAL so readers
//! never wait for the writer, B-tree lookups by key in microseconds, and the `bundled`
//! build pins the SQLite version so every machine runs the same code. An embedded KV
//! store (sled, redb) would need the secondary indexes written by hand.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

/// Bump when the tables change: an index with another version is rebuilt.
pub const SCHEMA_VERSION: i64 = 3;

const TABLES: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blocks (
    height        INTEGER PRIMARY KEY,
    hash          BLOB NOT NULL UNIQUE,
    offset        INTEGER NOT NULL,
    timestamp     REAL NOT NULL,
    tx_count      INTEGER NOT NULL,
    previous_hash BLOB,
    merkle_root   BLOB,
    nonce         TEXT,
    proof         TEXT NOT NULL,
    miner         TEXT,
    json          TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS txs (
    id        INTEGER PRIMARY KEY,
    height    INTEGER NOT NULL,
    pos       INTEGER NOT NULL,
    txkey     INTEGER NOT NULL,
    txid      BLOB NOT NULL,
    sender    TEXT,
    recipient TEXT,
    amount    TEXT,
    origin_partition INTEGER,
    origin_offset    INTEGER,
    json      TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS txs_by_key ON txs (txkey);
CREATE TABLE IF NOT EXISTS addr_txs (
    address TEXT NOT NULL,
    tx      INTEGER NOT NULL,
    PRIMARY KEY (address, tx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS addresses (
    address  TEXT PRIMARY KEY,
    received REAL NOT NULL,
    sent     REAL NOT NULL,
    tx_count INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS accounts (
    address TEXT PRIMARY KEY,
    balance TEXT NOT NULL,
    nonce   INTEGER NOT NULL
) WITHOUT ROWID;
";

/// Opens (creating if needed) the index for writing; rebuilds it from scratch if it
/// has another schema version or belongs to another chain topic.
pub fn open_writer(path: &Path, chain_topic: &str) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    // WAL: readers see the last committed batch while the writer adds the next.
    // synchronous=NORMAL: a power cut may lose the last batches, never corrupt the
    // file; the lost blocks are simply replayed again.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // Inserts into the txid index land on random pages: with SQLite's default 2 MiB
    // cache most of them miss once the index outgrows it. 64 MiB keeps the hot pages.
    conn.pragma_update(None, "cache_size", -65536)?;
    // Checkpoint the WAL every 256 MiB instead of SQLite's 4 MiB: while catching up, each
    // checkpoint copies hot pages (the txid index's) into the file again and again. (The
    // indexer also checkpoints whenever it has caught up.) Measured: 64 MiB took the
    // index build from 0.69 to 0.87 of the ledger's rate, 256 MiB to 1.36 (BENCHMARKS.md).
    conn.pragma_update(None, "wal_autocheckpoint", 65536)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    stable_plans(&conn)?;
    // Only `meta` first: the other tables of a file with another schema may differ.
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;",
    )?;
    let version: Option<i64> = get_meta(&conn, "schema_version")?.and_then(|v| v.parse().ok());
    let topic = get_meta(&conn, "chain_topic")?;
    if version != Some(SCHEMA_VERSION) || topic.as_deref() != Some(chain_topic) {
        wipe(&conn, chain_topic)?;
    }
    conn.execute_batch(TABLES)?;
    Ok(conn)
}

/// Bits of a `txs.id` that hold the position in the block.
pub const POS_BITS: u32 = 24;

/// The `txs.id` of the transaction at `pos` in the block at `height` (None: a position
/// beyond 2^24, which no block the broker can carry reaches).
pub fn tx_row(height: u64, pos: u64) -> Option<i64> {
    (pos < 1 << POS_BITS && height < 1 << (63 - POS_BITS))
        .then_some(((height << POS_BITS) | pos) as i64)
}

/// The `txs.txkey` of a transaction id.
pub fn tx_key(id: &crate::chain::TxId) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&id.0[..8]);
    i64::from_be_bytes(b)
}

/// Turns on SQLite's query planner stability guarantee. Without it the bundled SQLite
/// (built with STAT4) marks statements whose plan might depend on a bound value, and
/// then re-parses and re-plans a cached statement every time a new value is bound:
/// measured, that was two thirds of the SQLite time of a `/tx/:txid` lookup. Our
/// plans are simple key seeks that never depend on the value.
fn stable_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

/// A read-only connection for the query layer.
pub fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.pragma_update(None, "cache_size", -8192)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    stable_plans(&conn)?;
    Ok(conn)
}

/// Drops every table and creates them anew (so a file of an older schema gets the
/// current tables), then records the schema version and the chain topic the rows will
/// come from. The index starts again from offset 0.
pub fn wipe(conn: &Connection, chain_topic: &str) -> rusqlite::Result<()> {
    conn.execute_batch(
        "BEGIN;
         DROP TABLE IF EXISTS blocks; DROP TABLE IF EXISTS txs; DROP TABLE IF EXISTS addr_txs;
         DROP TABLE IF EXISTS addresses; DROP TABLE IF EXISTS accounts; DROP TABLE IF EXISTS meta;",
    )?;
    conn.execute_batch(TABLES)?;
    set_meta(conn, "schema_version", &SCHEMA_VERSION.to_string())?;
    set_meta(conn, "chain_topic", chain_topic)?;
    conn.execute_batch("COMMIT;")
}

pub fn get_meta(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    use rusqlite::OptionalExtension;
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
}

pub fn set_meta(conn: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [key, value],
    )?;
    Ok(())
}
