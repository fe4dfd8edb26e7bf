//! The journal on SQLite: one file in the data directory, write-ahead logging with
//! `synchronous = FULL`, so a batch acknowledged as committed survives a crash or a
//! power cut.
//!
//! The journal's `Storage` trait is synchronous (the sequencer's writer thread
//! calls it). Appends go through the writer's own synchronous connection
//! (`sqlite_writer.rs`); the rest (migrations, recovery, snapshots) drives sqlx
//! connections on a private current-thread runtime.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use atlas_engine::StateHash;
use atlas_journal::projection::{Effects, OrderRow, TradeRow, codes};
use atlas_journal::{
    Batch, ChainHash, ClientOrders, RecoveryError, Snapshot, SnapshotSink, Storage, StorageError,
};
use atlas_types::{OrderId, ParticipantId, Price, ProductId, Qty, Seq, Timestamp};
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::runtime::Runtime;

use crate::write_turn::{self, WriteTurn};

/// How many snapshots keep their engine bytes; older ones keep only their hashes.
const SNAPSHOTS_KEPT: i64 = 3;
/// Journal rows read per query while replaying: small pages, because a batch can
/// hold thousands of entries and huge pages cost more in allocation than in I/O.
const REPLAY_PAGE_ROWS: i64 = 32;

/// One shard's journal and snapshots in a SQLite database file.
pub struct SqliteStore {
    rt: Runtime,
    pool: SqlitePool,
    options: SqliteConnectOptions,
    shard: i64,
    /// The database's path, for its writer lock file.
    path: std::path::PathBuf,
    /// Held (locked) while this store is the shard's writer.
    writer_lock: Option<std::fs::File>,
    /// The writer's own synchronous connection, once it is the writer.
    writer: Option<crate::sqlite_writer::Writer>,
    /// The file's turn at its write lock, taken by the writer, the snapshot
    /// sink and every other writer of the file in this process (`write_turn`).
    turn: WriteTurn,
}

fn err(e: impl std::fmt::Display) -> StorageError {
    StorageError(e.to_string())
}

fn hash32(bytes: &[u8], what: &str) -> Result<[u8; 32], StorageError> {
    bytes.try_into().map_err(|_| StorageError(format!("stored {what} is not 32 bytes")))
}

fn seq(v: i64) -> Result<Seq, StorageError> {
    u64::try_from(v).map(Seq).map_err(|_| StorageError("stored sequence number is negative".into()))
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `path` for shard 0 and brings
    /// its schema up to date.
    pub fn open(path: &Path) -> Result<SqliteStore, StorageError> {
        SqliteStore::open_shard(path, 0)
    }

    /// Opens the database at `path` for one shard.
    pub fn open_shard(path: &Path, shard: u32) -> Result<SqliteStore, StorageError> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().map_err(err)?;
        let url = format!("sqlite://{}", path.display());
        let options = SqliteConnectOptions::from_str(&url)
            .map_err(err)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            // Statement journals (the undo log of each multi-row statement) in
            // memory rather than in temporary files: they never need to survive a
            // crash, since the WAL commit is what is durable.
            .pragma("temp_store", "MEMORY")
            // 64 MiB of page cache: the indexes of the order and trade tables stay hot.
            .pragma("cache_size", "-65536")
            // Checkpoint every 16,384 WAL pages (64 MiB) rather than every 1,000:
            // the pages a batch rewrites (working orders, index interiors) are
            // rewritten by the next batches too, and a longer WAL copies each back
            // to the database once instead of many times.
            .pragma("wal_autocheckpoint", "16384")
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        // One writer per shard; SQLite serialises writers anyway.
        let pool = rt
            .block_on(SqlitePoolOptions::new().max_connections(1).connect_with(options.clone()))
            .map_err(err)?;
        rt.block_on(sqlx::migrate!("migrations/sqlite").run(&pool)).map_err(err)?;
        Ok(SqliteStore {
            rt,
            pool,
            options,
            shard: i64::from(shard),
            path: path.to_owned(),
            writer_lock: None,
            writer: None,
            turn: write_turn::of(path),
        })
    }
}

impl Storage for SqliteStore {
    fn claim_writer(&mut self) -> Result<(), StorageError> {
        // An exclusive lock on `<database>.writer`, which the OS drops when the
        // process dies: two processes never write one database, and a killed
        // writer leaves nothing in flight (SQLite commits inside the process).
        if self.writer_lock.is_some() {
            return Ok(());
        }
        let mut name = self.path.clone().into_os_string();
        name.push(".writer");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&name)
            .map_err(|e| StorageError(format!("opening the writer lock file: {e}")))?;
        match file.try_lock() {
            Ok(()) => {
                self.writer = Some(crate::sqlite_writer::Writer::open(&self.path, self.turn.clone())?);
                self.writer_lock = Some(file);
                Ok(())
            }
            Err(std::fs::TryLockError::WouldBlock) => Err(StorageError(format!(
                "{} is in use by another Atlas process (its writer lock is held)",
                self.path.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(StorageError(format!("locking the writer lock file: {e}")))
            }
        }
    }

    fn engine_config(&mut self) -> Result<Option<atlas_engine::EngineConfig>, StorageError> {
        let orders_max: Option<i64> = self
            .rt
            .block_on(
                sqlx::query_scalar("SELECT orders_max FROM engine_config WHERE shard = ?")
                    .bind(self.shard)
                    .fetch_optional(&self.pool),
            )
            .map_err(err)?;
        orders_max
            .map(|m| {
                let orders_max = u32::try_from(m).map_err(err)?;
                Ok(atlas_engine::EngineConfig { orders_max, ..atlas_engine::EngineConfig::default() })
            })
            .transpose()
    }

    fn record_engine_config(&mut self, config: atlas_engine::EngineConfig) -> Result<(), StorageError> {
        let (pool, turn, shard) = (&self.pool, &self.turn, self.shard);
        self.rt
            .block_on(async {
                let _turn = turn.lock().await;
                sqlx::query("INSERT INTO engine_config (shard, orders_max) VALUES (?, ?)")
                    .bind(shard)
                    .bind(i64::from(config.orders_max))
                    .execute(pool)
                    .await
            })
            .map(|_| ())
            .map_err(err)
    }

    fn snapshot_sink(&self) -> Result<Box<dyn SnapshotSink>, StorageError> {
        // Its own connection on its own runtime, for the snapshot thread.
        let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().map_err(err)?;
        let pool = rt
            .block_on(SqlitePoolOptions::new().max_connections(1).connect_with(self.options.clone()))
            .map_err(err)?;
        Ok(Box::new(SqliteSnapshots { rt, pool, shard: self.shard, turn: self.turn.clone() }))
    }

    fn append(&mut self, batch: &Batch, effects: &Effects) -> Result<(), StorageError> {
        // One transaction: the batch and what it changed land together or not at all.
        match &mut self.writer {
            Some(w) => w.append(self.shard, batch, effects),
            None => Err(StorageError("append before claim_writer".into())),
        }
    }

    fn open_orders(&mut self) -> Result<Vec<OrderRow>, StorageError> {
        let rows = self
            .rt
            .block_on(sqlx::query("SELECT * FROM orders_open ORDER BY id").fetch_all(&self.pool))
            .map_err(err)?;
        rows.iter().map(order_row).collect()
    }

    fn save_snapshot(&mut self, s: &Snapshot) -> Result<(), StorageError> {
        self.rt.block_on(save_snapshot(&self.pool, &self.turn, self.shard, s))
    }

    fn latest_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let (pool, shard) = (self.pool.clone(), self.shard);
        self.rt.block_on(async move {
            let row = sqlx::query(
                "SELECT seq, time_ns, chain_hash, state_hash, next_order_id, engine, client_orders, \
                 engine_chunks, client_order_chunks FROM snapshot \
                 WHERE shard = ? AND (engine IS NOT NULL OR engine_chunks IS NOT NULL) ORDER BY seq DESC LIMIT 1",
            )
            .bind(shard)
            .fetch_optional(&pool)
            .await
            .map_err(err)?;
            let Some(row) = row else { return Ok(None) };
            let seq_v: i64 = row.try_get("seq").map_err(err)?;
            let next_order_id: i64 = row.try_get("next_order_id").map_err(err)?;
            let (engine, client_orders) = match row.try_get::<Option<i64>, _>("engine_chunks").map_err(err)? {
                Some(parts) => {
                    let client_parts: i64 = row.try_get::<Option<i64>, _>("client_order_chunks").map_err(err)?.unwrap_or(0);
                    (
                        read_chunks(&pool, shard, seq_v, 0, parts).await?,
                        Some(read_chunks(&pool, shard, seq_v, 1, client_parts).await?),
                    )
                }
                None => (
                    row.try_get::<Vec<u8>, _>("engine").map_err(err)?,
                    row.try_get::<Option<Vec<u8>>, _>("client_orders").map_err(err)?,
                ),
            };
            Ok(Some(Snapshot {
                seq: seq(seq_v)?,
                time: Timestamp(row.try_get("time_ns").map_err(err)?),
                chain_hash: ChainHash(hash32(row.try_get("chain_hash").map_err(err)?, "chain hash")?),
                state_hash: StateHash(hash32(row.try_get("state_hash").map_err(err)?, "state hash")?),
                next_order_id: u64::try_from(next_order_id).map_err(err)?,
                engine,
                client_orders: match client_orders {
                    Some(bytes) if !bytes.is_empty() => ClientOrders::decode(&bytes).map_err(err)?,
                    _ => ClientOrders::default(),
                },
            }))
        })
    }

    fn snapshot_hashes(&mut self) -> Result<Vec<(Seq, StateHash)>, StorageError> {
        let rows = self
            .rt
            .block_on(
                sqlx::query("SELECT seq, state_hash FROM snapshot WHERE shard = ? ORDER BY seq")
                    .bind(self.shard)
                    .fetch_all(&self.pool),
            )
            .map_err(err)?;
        rows.iter()
            .map(|r| {
                Ok((
                    seq(r.try_get("seq").map_err(err)?)?,
                    StateHash(hash32(r.try_get("state_hash").map_err(err)?, "state hash")?),
                ))
            })
            .collect()
    }

    fn for_each_batch(
        &mut self,
        after: Seq,
        visit: &mut dyn FnMut(Batch) -> Result<(), RecoveryError>,
    ) -> Result<(), RecoveryError> {
        // WAL lets the reader's own connection run beside the writer's.
        let options = self.options.clone().read_only(true);
        let shard = self.shard;
        crate::stream_batches(
            after,
            move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().map_err(err)?;
                let pool = rt
                    .block_on(SqlitePoolOptions::new().max_connections(1).connect_with(options))
                    .map_err(err)?;
                Ok((rt, pool, shard))
            },
            |(rt, pool, shard), cursor| rt.block_on(read_page(pool, *shard, cursor)),
            visit,
        )
    }
}

/// One page of journal rows after `cursor`, in order: from the batch that
/// holds command `cursor + 1` (the last one to start at or before it; batches
/// never overlap), found and read on the key alone.
async fn read_page(pool: &SqlitePool, shard: i64, cursor: i64) -> Result<Vec<Batch>, StorageError> {
    let rows = sqlx::query(
        "SELECT first_seq, last_seq, prev_hash, hash, entries FROM journal \
         WHERE shard = ?1 AND last_seq > ?2 AND first_seq >= coalesce( \
             (SELECT max(first_seq) FROM journal WHERE shard = ?1 AND first_seq <= ?2 + 1), 0) \
         ORDER BY first_seq LIMIT ?3",
    )
    .bind(shard)
    .bind(cursor)
    .bind(REPLAY_PAGE_ROWS)
    .fetch_all(pool)
    .await
    .map_err(err)?;
    rows.iter()
        .map(|r| {
            Ok(Batch {
                first_seq: seq(r.try_get("first_seq").map_err(err)?)?,
                last_seq: seq(r.try_get("last_seq").map_err(err)?)?,
                prev_hash: ChainHash(hash32(r.try_get("prev_hash").map_err(err)?, "hash")?),
                hash: ChainHash(hash32(r.try_get("hash").map_err(err)?, "hash")?),
                blob: r.try_get("entries").map_err(err)?,
            })
        })
        .collect()
}

/// Snapshot bytes per chunk row (each written in its own transaction).
const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// Orphaned chunk rows deleted per transaction.
const CHUNK_DELETES_PER_TRANSACTION: i64 = 4;

/// Writes a snapshot: its bytes in 1 MiB chunks, each in its own short
/// transaction, then its row; then drops the bytes of all but the newest few.
/// SQLite has one write lock: a single statement carrying a whole engine image
/// held it long enough to stall the journal's commits, while a chunk holds it for
/// about a millisecond. Each transaction takes the file's turn first, so it
/// waits for the commit in progress, not for SQLite's busy handler to find a
/// gap between commits (see `write_turn`).
async fn save_snapshot(
    pool: &SqlitePool,
    turn: &WriteTurn,
    shard: i64,
    s: &Snapshot,
) -> Result<(), StorageError> {
    let seq = i64::try_from(s.seq.0).map_err(err)?;
    let next_order_id = i64::try_from(s.next_order_id).map_err(err)?;
    let client_orders = s.client_orders.encode();
    let mut counts = [0i64; 2];
    for (kind, bytes) in [(0i64, &s.engine[..]), (1, &client_orders[..])] {
        // Leftovers of an attempt at this same snapshot that died before its row.
        let turn_held = turn.lock().await;
        sqlx::query("DELETE FROM snapshot_chunk WHERE shard = ? AND seq = ? AND kind = ?")
            .bind(shard)
            .bind(seq)
            .bind(kind)
            .execute(pool)
            .await
            .map_err(err)?;
        drop(turn_held);
        for (part, chunk) in bytes.chunks(SNAPSHOT_CHUNK_BYTES).enumerate() {
            let turn_held = turn.lock().await;
            sqlx::query("INSERT INTO snapshot_chunk (shard, seq, kind, part, bytes) VALUES (?, ?, ?, ?, ?)")
                .bind(shard)
                .bind(seq)
                .bind(kind)
                .bind(i64::try_from(part).map_err(err)?)
                .bind(chunk)
                .execute(pool)
                .await
                .map_err(err)?;
            drop(turn_held);
            counts[kind as usize] += 1;
        }
    }
    let turn_held = turn.lock().await;
    let mut tx = pool.begin().await.map_err(err)?;
    sqlx::query(
        "INSERT OR REPLACE INTO snapshot \
         (shard, seq, time_ns, chain_hash, state_hash, next_order_id, engine, client_orders, \
          engine_chunks, client_order_chunks) \
         VALUES (?, ?, ?, ?, ?, ?, NULL, NULL, ?, ?)",
    )
    .bind(shard)
    .bind(seq)
    .bind(s.time.0)
    .bind(&s.chain_hash.0[..])
    .bind(&s.state_hash.0[..])
    .bind(next_order_id)
    .bind(counts[0])
    .bind(counts[1])
    .execute(&mut *tx)
    .await
    .map_err(err)?;
    // Old snapshots keep only their hashes.
    sqlx::query(
        "UPDATE snapshot SET engine = NULL, client_orders = NULL, engine_chunks = NULL, client_order_chunks = NULL \
         WHERE shard = ? AND (engine IS NOT NULL OR engine_chunks IS NOT NULL) AND seq < \
         (SELECT seq FROM snapshot WHERE shard = ? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
    )
    .bind(shard)
    .bind(shard)
    .bind(SNAPSHOTS_KEPT - 1)
    .execute(&mut *tx)
    .await
    .map_err(err)?;
    tx.commit().await.map_err(err)?;
    drop(turn_held);
    // Their chunks (and orphans of older attempts) go a few rows at a time.
    loop {
        let turn_held = turn.lock().await;
        let deleted = sqlx::query(
            "DELETE FROM snapshot_chunk WHERE rowid IN (SELECT c.rowid FROM snapshot_chunk c \
             WHERE c.shard = ? AND c.seq < ? AND NOT EXISTS (SELECT 1 FROM snapshot t \
             WHERE t.shard = c.shard AND t.seq = c.seq AND t.engine_chunks IS NOT NULL) LIMIT ?)",
        )
        .bind(shard)
        .bind(seq)
        .bind(CHUNK_DELETES_PER_TRANSACTION)
        .execute(pool)
        .await
        .map_err(err)?
        .rows_affected();
        drop(turn_held);
        if deleted == 0 {
            return Ok(());
        }
    }
}

/// A snapshot's bytes of one kind, from its chunks.
async fn read_chunks(
    pool: &SqlitePool,
    shard: i64,
    seq: i64,
    kind: i64,
    parts: i64,
) -> Result<Vec<u8>, StorageError> {
    let mut bytes = Vec::new();
    for part in 0..parts {
        let chunk: Vec<u8> = sqlx::query_scalar(
            "SELECT bytes FROM snapshot_chunk WHERE shard = ? AND seq = ? AND kind = ? AND part = ?",
        )
        .bind(shard)
        .bind(seq)
        .bind(kind)
        .bind(part)
        .fetch_optional(pool)
        .await
        .map_err(err)?
        .ok_or_else(|| StorageError(format!("snapshot {seq} lacks chunk {part} of kind {kind}")))?;
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The snapshot thread's writer.
struct SqliteSnapshots {
    rt: Runtime,
    pool: SqlitePool,
    shard: i64,
    turn: WriteTurn,
}

impl SnapshotSink for SqliteSnapshots {
    fn save_snapshot(&mut self, s: &Snapshot) -> Result<(), StorageError> {
        self.rt.block_on(save_snapshot(&self.pool, &self.turn, self.shard, s))
    }
}

/// How a boolean reads back from this database.
pub(crate) fn read_bool(row: &sqlx::sqlite::SqliteRow, col: &str) -> Result<bool, StorageError> {
    row.try_get::<i64, _>(col).map_err(err).map(|v| v != 0)
}

crate::rows::order_rows!(Sqlite);
