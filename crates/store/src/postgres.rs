//! The journal on PostgreSQL (production: RDS/Aurora in the cloud), through an sqlx
//! pool. Each batch is one INSERT, so it commits whole or not at all, with
//! PostgreSQL's ordinary durable commit.
//!
//! Like the SQLite store, it drives its pool on a private current-thread runtime
//! because the journal's `Storage` trait is synchronous.

use std::time::Duration;

use atlas_engine::StateHash;
use atlas_journal::projection::{Effects, OrderRow, TradeRow, codes};
use atlas_journal::{
    Batch, ChainHash, ClientOrders, RecoveryError, Snapshot, SnapshotSink, Storage, StorageError,
};
use atlas_types::{OrderId, ParticipantId, Price, ProductId, Qty, Seq, Timestamp};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};
use tokio::runtime::Runtime;

/// How many snapshots keep their engine bytes; older ones keep only their hashes.
const SNAPSHOTS_KEPT: i64 = 3;
/// Journal rows read per query while replaying.
const REPLAY_PAGE_ROWS: i64 = 32;

/// One shard's journal and snapshots in a PostgreSQL database.
pub struct PgStore {
    rt: Runtime,
    pool: PgPool,
    credentials: crate::PgCredentials,
    shard: i32,
    /// This writer's epoch in `shard_writer`, once claimed.
    writer_epoch: Option<i64>,
}

/// Errors lose any connection detail: the URL may carry a password.
fn err(e: impl std::fmt::Display) -> StorageError {
    StorageError(e.to_string())
}

fn hash32(bytes: &[u8], what: &str) -> Result<[u8; 32], StorageError> {
    bytes.try_into().map_err(|_| StorageError(format!("stored {what} is not 32 bytes")))
}

fn seq(v: i64) -> Result<Seq, StorageError> {
    u64::try_from(v).map(Seq).map_err(|_| StorageError("stored sequence number is negative".into()))
}

impl PgStore {
    /// Connects to `url` for shard 0 and brings the schema up to date.
    pub fn connect(url: &str) -> Result<PgStore, StorageError> {
        PgStore::connect_shard(url, 0)
    }

    /// Connects to `url` for one shard.
    pub fn connect_shard(url: &str, shard: u32) -> Result<PgStore, StorageError> {
        let credentials = crate::PgCredentials::new(url, None).map_err(StorageError)?;
        PgStore::connect_with(&credentials, shard)
    }

    /// Connects for one shard with credentials that may rotate later.
    pub fn connect_with(credentials: &crate::PgCredentials, shard: u32) -> Result<PgStore, StorageError> {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(err)?;
        let pool = rt
            .block_on(
                PgPoolOptions::new()
                    .max_connections(2)
                    // A command in flight waits at most this long for a dead database
                    // before its producer hears STORAGE_UNAVAILABLE; new commands are
                    // refused at once while the shard recovers.
                    .acquire_timeout(Duration::from_secs(1))
                    // Connections are renewed now and then, so rotated credentials
                    // replace the old ones everywhere.
                    .max_lifetime(POOL_CONNECTION_LIFETIME)
                    .connect_with(credentials.options()),
            )
            .map_err(err)?;
        credentials.attach(&pool);
        rt.block_on(sqlx::migrate!("migrations/postgres").run(&pool)).map_err(err)?;
        let shard = i32::try_from(shard).map_err(err)?;
        Ok(PgStore { rt, pool, credentials: credentials.clone(), shard, writer_epoch: None })
    }
}

/// Pooled connections are closed and re-opened after this long.
pub const POOL_CONNECTION_LIFETIME: Duration = Duration::from_secs(30 * 60);

impl Storage for PgStore {
    fn claim_writer(&mut self) -> Result<(), StorageError> {
        let (pool, shard) = (self.pool.clone(), self.shard);
        // Waits (row lock) for any commit still in flight under an older epoch.
        let epoch: i64 = self
            .rt
            .block_on(
                sqlx::query_scalar(
                    "INSERT INTO shard_writer (shard, epoch) VALUES ($1, 1) \
                     ON CONFLICT (shard) DO UPDATE SET epoch = shard_writer.epoch + 1 RETURNING epoch",
                )
                .bind(shard)
                .fetch_one(&pool),
            )
            .map_err(err)?;
        self.writer_epoch = Some(epoch);
        Ok(())
    }

    fn engine_config(&mut self) -> Result<Option<atlas_engine::EngineConfig>, StorageError> {
        let orders_max: Option<i64> = self
            .rt
            .block_on(
                sqlx::query_scalar("SELECT orders_max FROM engine_config WHERE shard = $1")
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
        self.rt
            .block_on(
                sqlx::query("INSERT INTO engine_config (shard, orders_max) VALUES ($1, $2)")
                    .bind(self.shard)
                    .bind(i64::from(config.orders_max))
                    .execute(&self.pool),
            )
            .map(|_| ())
            .map_err(err)
    }

    fn snapshot_sink(&self) -> Result<Box<dyn SnapshotSink>, StorageError> {
        // Its own connection on its own runtime, for the snapshot thread.
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(err)?;
        let pool = rt
            .block_on(
                PgPoolOptions::new()
                    .max_connections(1)
                    .max_lifetime(POOL_CONNECTION_LIFETIME)
                    .connect_with(self.credentials.options()),
            )
            .map_err(err)?;
        self.credentials.attach(&pool);
        Ok(Box::new(PgSnapshots { rt, pool, shard: self.shard }))
    }

    fn append(&mut self, batch: &Batch, effects: &Effects) -> Result<(), StorageError> {
        // One transaction: the batch and what it changed land together or not at all.
        let (pool, shard) = (self.pool.clone(), self.shard);
        let mine = self.writer_epoch.ok_or_else(|| StorageError("append before claim_writer".into()))?;
        self.rt.block_on(async move {
            let first = i64::try_from(batch.first_seq.0).map_err(err)?;
            let last = i64::try_from(batch.last_seq.0).map_err(err)?;
            let mut tx = pool.begin().await.map_err(err)?;
            let current: Option<i64> =
                sqlx::query_scalar("SELECT epoch FROM shard_writer WHERE shard = $1 FOR SHARE")
                    .bind(shard)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(err)?;
            if current != Some(mine) {
                return Err(StorageError(format!(
                    "shard {shard} has been taken over by another writer (epoch {current:?}, ours {mine})"
                )));
            }
            sqlx::query(
                "INSERT INTO journal (shard, first_seq, last_seq, prev_hash, hash, entries) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(shard)
            .bind(first)
            .bind(last)
            .bind(&batch.prev_hash.0[..])
            .bind(&batch.hash.0[..])
            .bind(&batch.blob)
            .execute(&mut *tx)
            .await
            .map_err(err)?;
            write_effects(&mut tx, effects, batch.first_seq).await?;
            tx.commit().await.map_err(err)
        })
    }

    fn open_orders(&mut self) -> Result<Vec<OrderRow>, StorageError> {
        let rows = self
            .rt
            .block_on(sqlx::query("SELECT * FROM orders_open ORDER BY id").fetch_all(&self.pool))
            .map_err(err)?;
        rows.iter().map(order_row).collect()
    }

    fn save_snapshot(&mut self, s: &Snapshot) -> Result<(), StorageError> {
        self.rt.block_on(save_snapshot(&self.pool, self.shard, s))
    }

    fn latest_snapshot(&mut self) -> Result<Option<Snapshot>, StorageError> {
        let row = self
            .rt
            .block_on(
                sqlx::query(
                    "SELECT seq, time_ns, chain_hash, state_hash, next_order_id, engine, client_orders \
                     FROM snapshot WHERE shard = $1 AND engine IS NOT NULL ORDER BY seq DESC LIMIT 1",
                )
                .bind(self.shard)
                .fetch_optional(&self.pool),
            )
            .map_err(err)?;
        let Some(row) = row else { return Ok(None) };
        let next_order_id: i64 = row.try_get("next_order_id").map_err(err)?;
        Ok(Some(Snapshot {
            seq: seq(row.try_get("seq").map_err(err)?)?,
            time: Timestamp(row.try_get("time_ns").map_err(err)?),
            chain_hash: ChainHash(hash32(row.try_get("chain_hash").map_err(err)?, "chain hash")?),
            state_hash: StateHash(hash32(row.try_get("state_hash").map_err(err)?, "state hash")?),
            next_order_id: u64::try_from(next_order_id).map_err(err)?,
            engine: row.try_get("engine").map_err(err)?,
            client_orders: match row.try_get::<Option<Vec<u8>>, _>("client_orders").map_err(err)? {
                Some(bytes) => ClientOrders::decode(&bytes).map_err(err)?,
                None => ClientOrders::default(),
            },
        }))
    }

    fn snapshot_hashes(&mut self) -> Result<Vec<(Seq, StateHash)>, StorageError> {
        let rows = self
            .rt
            .block_on(
                sqlx::query("SELECT seq, state_hash FROM snapshot WHERE shard = $1 ORDER BY seq")
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
        let options = self.credentials.options();
        let shard = self.shard;
        crate::stream_batches(
            after,
            move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(err)?;
                let pool = rt
                    .block_on(PgPoolOptions::new().max_connections(1).connect_with(options))
                    .map_err(err)?;
                Ok((rt, pool, shard))
            },
            |(rt, pool, shard), cursor| rt.block_on(read_page(pool, *shard, cursor)),
            visit,
        )
    }
}

/// One page of journal rows after `cursor`, in order.
async fn read_page(pool: &PgPool, shard: i32, cursor: i64) -> Result<Vec<Batch>, StorageError> {
    let rows = sqlx::query(
        "SELECT first_seq, last_seq, prev_hash, hash, entries FROM journal \
         WHERE shard = $1 AND last_seq > $2 ORDER BY first_seq LIMIT $3",
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

/// Writes a snapshot (and drops the engine bytes of all but the newest few).
async fn save_snapshot(pool: &PgPool, shard: i32, s: &Snapshot) -> Result<(), StorageError> {
    let seq = i64::try_from(s.seq.0).map_err(err)?;
    let next_order_id = i64::try_from(s.next_order_id).map_err(err)?;

    let mut tx = pool.begin().await.map_err(err)?;
    sqlx::query(
        "INSERT INTO snapshot \
                 (shard, seq, time_ns, chain_hash, state_hash, next_order_id, engine, client_orders) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (shard, seq) DO UPDATE SET time_ns = EXCLUDED.time_ns, \
                 chain_hash = EXCLUDED.chain_hash, state_hash = EXCLUDED.state_hash, \
                 next_order_id = EXCLUDED.next_order_id, engine = EXCLUDED.engine, \
                 client_orders = EXCLUDED.client_orders",
    )
    .bind(shard)
    .bind(seq)
    .bind(s.time.0)
    .bind(&s.chain_hash.0[..])
    .bind(&s.state_hash.0[..])
    .bind(next_order_id)
    .bind(&s.engine)
    .bind(s.client_orders.encode())
    .execute(&mut *tx)
    .await
    .map_err(err)?;
    // Old snapshots keep only their hashes.
    sqlx::query(
        "UPDATE snapshot SET engine = NULL, client_orders = NULL \
                 WHERE shard = $1 AND engine IS NOT NULL AND seq < \
                 (SELECT seq FROM snapshot WHERE shard = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2)",
    )
    .bind(shard)
    .bind(SNAPSHOTS_KEPT - 1)
    .execute(&mut *tx)
    .await
    .map_err(err)?;
    tx.commit().await.map_err(err)
}

/// The snapshot thread's writer.
struct PgSnapshots {
    rt: Runtime,
    pool: PgPool,
    shard: i32,
}

impl SnapshotSink for PgSnapshots {
    fn save_snapshot(&mut self, s: &Snapshot) -> Result<(), StorageError> {
        self.rt.block_on(save_snapshot(&self.pool, self.shard, s))
    }
}

/// How a boolean binds in this database.
fn bool_param(b: bool) -> bool {
    b
}

/// How a boolean reads back from this database.
pub(crate) fn read_bool(row: &sqlx::postgres::PgRow, col: &str) -> Result<bool, StorageError> {
    row.try_get::<bool, _>(col).map_err(err)
}

crate::rows::order_writes!(Postgres);
crate::rows::order_rows!(Postgres);
