//! The services' side of the database: their own tables (products, participants,
//! users, API keys) and the queries over the order and trade tables that the
//! journal writes. Async, on the services' runtime, through a pool of its own
//! (the journal's writer keeps its connection to itself).
//!
//! Every statement is written once, with `$n` placeholders numbered in order of
//! first use, which both SQLite and PostgreSQL accept; `with_pool!` runs it on
//! whichever backend this is.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use atlas_journal::StorageError;
use atlas_journal::projection::{OrderRow, TradeRow};
use atlas_types::{OrderId, ParticipantId, ProductId, TradeId};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use crate::write_turn::{self, WriteTurn};

/// Connections in the services' pool.
const POOL_CONNECTIONS_MAX: u32 = 8;
/// Fills returned with one order, at most.
pub const ORDER_FILLS_MAX: i64 = 10_000;
/// Rows one list query returns, at most.
pub const PAGE_ROWS_MAX: u32 = 1_000;

/// Why a database call failed.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// A unique constraint refused the row (symbol, name, username).
    #[error("already exists")]
    Duplicate,
    /// A referenced row is missing.
    #[error("a referenced row does not exist")]
    MissingReference,
    /// The database failed or is unreachable.
    #[error("storage: {0}")]
    Storage(String),
}

impl From<StorageError> for DbError {
    fn from(e: StorageError) -> DbError {
        DbError::Storage(e.0)
    }
}

pub(crate) fn db_err(e: sqlx::Error) -> DbError {
    if let sqlx::Error::Database(d) = &e {
        if d.is_unique_violation() {
            return DbError::Duplicate;
        }
        if d.is_foreign_key_violation() {
            return DbError::MissingReference;
        }
    }
    DbError::Storage(e.to_string())
}

#[derive(Clone)]
pub(crate) enum Pool {
    Sqlite(SqlitePool),
    Pg(PgPool),
}

/// Runs `$body` with `$pool` bound to the backend's pool and `$read_order`,
/// `$read_trade`, `$read_bool` to its row readers.
macro_rules! with_pool {
    // Writes: on SQLite, the write pool's one connection (see `Db::write_pool`).
    (write $self:expr, |$pool:ident, $order:ident, $trade:ident| $body:expr) => {
        crate::db::with_pool!(@ &$self.write_pool, |$pool, $order, $trade| $body)
    };
    ($self:expr, |$pool:ident, $order:ident, $trade:ident| $body:expr) => {
        crate::db::with_pool!(@ &$self.pool, |$pool, $order, $trade| $body)
    };
    (@ $which:expr, |$pool:ident, $order:ident, $trade:ident| $body:expr) => {
        match $which {
            Pool::Sqlite($pool) => {
                #[allow(unused_imports)]
                use crate::sqlite::{order_row as $order, trade_row as $trade};
                $body
            }
            Pool::Pg($pool) => {
                #[allow(unused_imports)]
                use crate::postgres::{order_row as $order, trade_row as $trade};
                $body
            }
        }
    };
}
pub(crate) use with_pool;

/// A product's row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProductRow {
    /// Its id (also the engine's).
    pub id: ProductId,
    /// Unique symbol.
    pub symbol: String,
    /// Free text.
    pub description: String,
    /// `EQUITY`.
    pub product_type: String,
    /// The tick as a decimal string, e.g. `0.01`.
    pub tick_size: String,
    /// Decimal places of prices (the engine's prices are integers in 10^-scale).
    pub price_scale: u32,
    /// Lot size in units.
    pub lot_size: i64,
    /// ISO currency code.
    pub currency: String,
    /// `ACTIVE`, `HALTED` or `DELETED`.
    pub status: String,
}

/// A participant's row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParticipantRow {
    /// Its id (also the engine's).
    pub id: ParticipantId,
    /// Unique name.
    pub name: String,
    /// `BROKER`.
    pub participant_type: String,
    /// `ACTIVE` or `DISABLED`.
    pub status: String,
}

/// A user's row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserRow {
    /// Its id.
    pub id: i64,
    /// Unique login name.
    pub username: String,
    /// The argon2 PHC string.
    pub password_hash: String,
    /// `admin`, `operator` or `broker`.
    pub role: String,
    /// A broker's participant.
    pub participant: Option<ParticipantId>,
    /// `ACTIVE` or `DISABLED`.
    pub status: String,
}

/// An API key's row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRow {
    /// Its number (the actor id of what it does).
    pub id: i64,
    /// The public key id.
    pub key: String,
    /// The participant it trades for.
    pub participant: ParticipantId,
    /// The HMAC secret, base64.
    pub secret: String,
    /// SHA-256 of the passphrase, hex.
    pub passphrase_sha256: String,
    /// Set once revoked.
    pub revoked: bool,
}

/// A participant's risk limits (None: no limit).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RiskRow {
    /// Order quantity, at most.
    pub order_qty_max: Option<i64>,
    /// Order notional (price × quantity) in the product's currency, a decimal string.
    pub order_notional_max: Option<String>,
    /// Open orders, at most.
    pub open_orders_max: Option<i64>,
    /// Price collar around the last trade, in basis points.
    pub collar_bps: Option<i64>,
    /// Kill switch on.
    pub killed: bool,
}

/// Which of a participant's orders to list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrderFilter {
    /// Working orders.
    Open,
    /// Finished orders.
    Done,
    /// Both.
    All,
}

fn product_row(r: &impl RowLike) -> Result<ProductRow, DbError> {
    Ok(ProductRow {
        id: ProductId(u32::try_from(r.i64("id")?).map_err(|_| bad("product id"))?),
        symbol: r.text("symbol")?,
        description: r.text("description")?,
        product_type: r.text("product_type")?,
        tick_size: r.text("tick_size")?,
        price_scale: u32::try_from(r.i64("price_scale")?).map_err(|_| bad("price scale"))?,
        lot_size: r.i64("lot_size")?,
        currency: r.text("currency")?,
        status: r.text("status")?,
    })
}

fn participant_row(r: &impl RowLike) -> Result<ParticipantRow, DbError> {
    Ok(ParticipantRow {
        id: ParticipantId(u32::try_from(r.i64("id")?).map_err(|_| bad("participant id"))?),
        name: r.text("name")?,
        participant_type: r.text("participant_type")?,
        status: r.text("status")?,
    })
}

fn user_row(r: &impl RowLike) -> Result<UserRow, DbError> {
    Ok(UserRow {
        id: r.i64("id")?,
        username: r.text("username")?,
        password_hash: r.text("password_hash")?,
        role: r.text("role")?,
        participant: r
            .opt_i64("participant_id")?
            .map(|p| u32::try_from(p).map(ParticipantId).map_err(|_| bad("participant id")))
            .transpose()?,
        status: r.text("status")?,
    })
}

fn bad(what: &str) -> DbError {
    DbError::Storage(format!("stored row has an invalid {what}"))
}

/// The few column types the services' own tables use, on either backend.
trait RowLike {
    fn i64(&self, col: &str) -> Result<i64, DbError>;
    fn opt_i64(&self, col: &str) -> Result<Option<i64>, DbError>;
    fn text(&self, col: &str) -> Result<String, DbError>;
}

macro_rules! row_like {
    ($row:ty) => {
        impl RowLike for $row {
            fn i64(&self, col: &str) -> Result<i64, DbError> {
                self.try_get(col).map_err(db_err)
            }
            fn opt_i64(&self, col: &str) -> Result<Option<i64>, DbError> {
                self.try_get(col).map_err(db_err)
            }
            fn text(&self, col: &str) -> Result<String, DbError> {
                self.try_get(col).map_err(db_err)
            }
        }
    };
}
row_like!(sqlx::sqlite::SqliteRow);
row_like!(sqlx::postgres::PgRow);

fn id_i64(v: u64) -> Result<i64, DbError> {
    i64::try_from(v).map_err(|_| DbError::Storage("id beyond 63 bits".into()))
}

/// The services' connection pool (cheap to clone: the pool is shared).
#[derive(Clone)]
pub struct Db {
    pub(crate) pool: Pool,
    /// Serializes this process's audit appends (each reads the chain's head and
    /// inserts after it); other processes are kept honest by the primary key.
    pub(crate) audit_lock: std::sync::Arc<tokio::sync::Mutex<()>>,
    /// SQLite's: the database file's turn at its write lock, shared with the
    /// journal's writer (see `write_turn`); every write here takes it.
    turn: Option<WriteTurn>,
    /// Where writes run. On SQLite a pool of one connection that only writes
    /// use, each while it holds the turn: a write never waits for a connection
    /// with the turn held, so the journal's writer never waits behind reads
    /// that fill `pool`. On PostgreSQL, `pool` itself.
    pub(crate) write_pool: Pool,
}

impl Db {
    /// Opens a pool on the SQLite database at `path` (its schema already
    /// migrated by [`crate::SqliteStore::open`]).
    pub async fn open_sqlite(path: &Path) -> Result<Db, DbError> {
        let url = format!("sqlite://{}", path.display());
        let options = SqliteConnectOptions::from_str(&url)
            .map_err(db_err)?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(POOL_CONNECTIONS_MAX)
            .connect_with(options.clone())
            .await
            .map_err(db_err)?;
        let write_pool =
            SqlitePoolOptions::new().max_connections(1).connect_with(options).await.map_err(db_err)?;
        Ok(Db {
            pool: Pool::Sqlite(pool),
            audit_lock: Default::default(),
            turn: Some(write_turn::of(path)),
            write_pool: Pool::Sqlite(write_pool),
        })
    }

    /// Waits for this database's turn to write, on SQLite (PostgreSQL's writers
    /// need none): held for the write's transaction.
    pub(crate) async fn write_turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.turn {
            Some(turn) => Some(turn.lock().await),
            None => None,
        }
    }

    /// Connects a pool to PostgreSQL at `url` (schema migrated by [`crate::PgStore`]).
    pub async fn connect_pg(url: &str) -> Result<Db, DbError> {
        let credentials = crate::PgCredentials::new(url, None).map_err(DbError::Storage)?;
        Db::connect_pg_with(&credentials).await
    }

    /// Connects with credentials that may rotate later.
    pub async fn connect_pg_with(credentials: &crate::PgCredentials) -> Result<Db, DbError> {
        let pool = PgPoolOptions::new()
            .max_connections(POOL_CONNECTIONS_MAX)
            .acquire_timeout(Duration::from_secs(2))
            .max_lifetime(crate::postgres::POOL_CONNECTION_LIFETIME)
            .connect_with(credentials.options())
            .await
            .map_err(db_err)?;
        credentials.attach(&pool);
        Ok(Db {
            pool: Pool::Pg(pool.clone()),
            audit_lock: Default::default(),
            turn: None,
            write_pool: Pool::Pg(pool),
        })
    }

    /// True if the database answers.
    pub async fn ping(&self) -> bool {
        with_pool!(self, |p, _o, _t| sqlx::query("SELECT 1").execute(p).await.is_ok())
    }

    // ---- products ----

    /// Inserts a product; its id is assigned by the database.
    #[allow(clippy::too_many_arguments)]
    pub async fn insert_product(
        &self,
        symbol: &str,
        description: &str,
        tick_size: &str,
        price_scale: u32,
        lot_size: i64,
        currency: &str,
        now_ns: i64,
    ) -> Result<ProductRow, DbError> {
        let _turn = self.write_turn().await;
        let q = "INSERT INTO products (symbol, description, product_type, tick_size, price_scale, lot_size, \
                 currency, status, created_ns, updated_ns) \
                 VALUES ($1, $2, 'EQUITY', $3, $4, $5, $6, 'ACTIVE', $7, $7) RETURNING *";
        with_pool!(write self, |p, _o, _t| {
            let row = sqlx::query(q)
                .bind(symbol)
                .bind(description)
                .bind(tick_size)
                .bind(i64::from(price_scale))
                .bind(lot_size)
                .bind(currency)
                .bind(now_ns)
                .fetch_one(p)
                .await
                .map_err(db_err)?;
            product_row(&row)
        })
    }

    /// Every product not deleted, by id.
    pub async fn products(&self) -> Result<Vec<ProductRow>, DbError> {
        let q = "SELECT * FROM products WHERE status <> 'DELETED' ORDER BY id";
        with_pool!(self, |p, _o, _t| {
            sqlx::query(q).fetch_all(p).await.map_err(db_err)?.iter().map(product_row).collect()
        })
    }

    /// Every product including deleted ones (to reconcile with the engine).
    pub async fn all_products(&self) -> Result<Vec<ProductRow>, DbError> {
        let q = "SELECT * FROM products ORDER BY id";
        with_pool!(self, |p, _o, _t| {
            sqlx::query(q).fetch_all(p).await.map_err(db_err)?.iter().map(product_row).collect()
        })
    }

    /// One product (deleted ones are not found).
    pub async fn product(&self, id: ProductId) -> Result<Option<ProductRow>, DbError> {
        let q = "SELECT * FROM products WHERE id = $1 AND status <> 'DELETED'";
        with_pool!(self, |p, _o, _t| {
            sqlx::query(q)
                .bind(i64::from(id.0))
                .fetch_optional(p)
                .await
                .map_err(db_err)?
                .as_ref()
                .map(product_row)
                .transpose()
        })
    }

    /// One product, deleted or not (to show old orders and trades).
    pub async fn product_any(&self, id: ProductId) -> Result<Option<ProductRow>, DbError> {
        let q = "SELECT * FROM products WHERE id = $1";
        with_pool!(self, |p, _o, _t| {
            sqlx::query(q)
                .bind(i64::from(id.0))
                .fetch_optional(p)
                .await
                .map_err(db_err)?
                .as_ref()
                .map(product_row)
                .transpose()
        })
    }

    /// One product by symbol.
    pub async fn product_by_symbol(&self, symbol: &str) -> Result<Option<ProductRow>, DbError> {
        let q = "SELECT * FROM products WHERE symbol = $1 AND status <> 'DELETED'";
        with_pool!(self, |p, _o, _t| {
            sqlx::query(q)
                .bind(symbol)
                .fetch_optional(p)
                .await
                .map_err(db_err)?
                .as_ref()
                .map(product_row)
                .transpose()
        })
    }

    /// Changes a product's description and status; false if it does not exist.
    pub async fn update_product(
        &self,
        id: ProductId,
        description: Option<&str>,
        status: Option<&str>,
        now_ns: i64,
    ) -> Result<bool, DbError> {
        let _turn = self.write_turn().await;
        let q = "UPDATE products SET description = COALESCE($1, description), status = COALESCE($2, status), \
                 updated_ns = $3 WHERE id = $4 AND status <> 'DELETED'";
        with_pool!(write self, |p, _o, _t| {
            let n = sqlx::query(q)
                .bind(description)
                .bind(status)
                .bind(now_ns)
                .bind(i64::from(id.0))
                .execute(p)
                .await
                .map_err(db_err)?
                .rows_affected();
            Ok(n == 1)
        })
    }

    /// Sets a product's status whatever it is now (to undo a deletion).
    pub async fn update_product_status_any(
        &self,
        id: ProductId,
        status: &str,
        now_ns: i64,
    ) -> Result<(), DbError> {
        let _turn = self.write_turn().await;
        let q = "UPDATE products SET status = $1, updated_ns = $2 WHERE id = $3";
        with_pool!(write self, |p, _o, _t| {
            sqlx::query(q)
                .bind(status)
                .bind(now_ns)
                .bind(i64::from(id.0))
                .execute(p)
                .await
                .map_err(db_err)?;
            Ok(())
        })
    }

    /// Removes a product row that never reached the engine.
    pub async fn delete_product_row(&self, id: ProductId) -> Result<(), DbError> {
        let _turn = self.write_turn().await;
        let q = "DELETE FROM products WHERE id = $1";
        with_pool!(write self, |p, _o, _t| {
            sqlx::query(q).bind(i64::from(id.0)).execute(p).await.map_err(db_err)?;
            Ok(())
        })
    }

    // ---- participants ----

    /// Inserts a broker.
    pub async fn insert_participant(&self, name: &str, now_ns: i64) -> Result<ParticipantRow, DbError> {
        let _turn = self.write_turn().await;
        let q = "INSERT INTO participants (name, participant_type, status, created_ns, updated_ns) \
                 VALUES ($1, 'BROKER', 'ACTIVE', $2, $2) RETURNING *";
        with_pool!(write self, |p, _o, _t| {
            let row = sqlx::query(q).bind(name).bind(now_ns).fetch_one(p).await.map_err(db_err)?;
            participant_row(&row)
        })
    }

    /// One participant.
    pub async fn participant(&self, id: ParticipantId) -> Result<Option<ParticipantRow>, DbError> {
        let q = "SELECT * FROM participants WHERE id = $1";
        with_pool!(self, |p, _o, _t| {
            sqlx::query(q)
                .bind(i64::from(id.0))
                .fetch_optional(p)
                .await
                .map_err(db_err)?
                .as_ref()
                .map(participant_row)
                .transpose()
        })
    }

    /// Every participant, by id.
    pub async fn participants(&self) -> Result<Vec<ParticipantRow>, DbError> {
        let q = "SELECT * FROM participants ORDER BY id";
        with_pool!(self, |p, _o, _t| {
            sqlx::query(q).fetch_all(p).await.map_err(db_err)?.iter().map(participant_row).collect()
        })
    }

    /// Renames and/or (dis)ables a participant; false if it does not exist.
    pub async fn update_participant(
        &self,
        id: ParticipantId,
        name: Option<&str>,
        status: Option<&str>,
        now_ns: i64,
    ) -> Result<bool, DbError> {
        let _turn = self.write_turn().await;
        let q = "UPDATE participants SET name = COALESCE($1, name), status = COALESCE($2, status), \
                 updated_ns = $3 WHERE id = $4";
        with_pool!(write self, |p, _o, _t| {
            let n = sqlx::query(q)
                .bind(name)
                .bind(status)
                .bind(now_ns)
                .bind(i64::from(id.0))
                .execute(p)
                .await
                .map_err(db_err)?
                .rows_affected();
            Ok(n == 1)
        })
    }

    // ---- users ----

    /// Inserts a user.
    pub async fn insert_user(
        &self,
        username: &str,
        password_hash: &str,
        role: &str,
        participant: Option<ParticipantId>,
        now_ns: i64,
    ) -> Result<UserRow, DbError> {
        let _turn = self.write_turn().await;
        let q = "INSERT INTO users (username, password_hash, role, participant_id, status, created_ns) \
                 VALUES ($1, $2, $3, $4, 'ACTIVE', $5) RETURNING *";
        with_pool!(write self, |p, _o, _t| {
            let row = sqlx::query(q)
                .bind(username)
                .bind(password_hash)
                .bind(role)
                .bind(participant.map(|p| i64::from(p.0)))
                .bind(now_ns)
                .fetch_one(p)
                .await
                .map_err(db_err)?;
            user_row(&row)
        })
    }

    /// A user by login name.
    pub async fn user_by_name(&self, username: &str) -> Result<Option<UserRow>, DbError> {
        let q = "SELECT * FROM users WHERE username = $1";
        with_pool!(self, |p, _o, _t| {
            sqlx::query(q)
                .bind(username)
                .fetch_optional(p)
                .await
                .map_err(db_err)?
                .as_ref()
                .map(user_row)
                .transpose()
        })
    }

    /// How many users exist (zero on a fresh database: time to bootstrap).
    pub async fn user_count(&self) -> Result<i64, DbError> {
        let q = "SELECT COUNT(*) AS n FROM users";
        with_pool!(self, |p, _o, _t| {
            let row = sqlx::query(q).fetch_one(p).await.map_err(db_err)?;
            row.i64("n")
        })
    }

    // ---- API keys ----

    /// Stores a new API key.
    pub async fn insert_api_key(
        &self,
        key: &str,
        participant: ParticipantId,
        secret: &str,
        passphrase_sha256: &str,
        created_by: i64,
        now_ns: i64,
    ) -> Result<(), DbError> {
        let _turn = self.write_turn().await;
        let q = "INSERT INTO api_keys (key, participant_id, secret, passphrase_sha256, created_by, created_ns) \
                 VALUES ($1, $2, $3, $4, $5, $6)";
        with_pool!(write self, |p, _o, _t| {
            sqlx::query(q)
                .bind(key)
                .bind(i64::from(participant.0))
                .bind(secret)
                .bind(passphrase_sha256)
                .bind(created_by)
                .bind(now_ns)
                .execute(p)
                .await
                .map_err(db_err)?;
            Ok(())
        })
    }

    /// An API key by its public id (revoked ones too: callers check).
    pub async fn api_key(&self, key: &str) -> Result<Option<ApiKeyRow>, DbError> {
        let q = "SELECT id, key, participant_id, secret, passphrase_sha256, revoked_ns FROM api_keys WHERE key = $1";
        with_pool!(self, |p, _o, _t| {
            let Some(r) = sqlx::query(q).bind(key).fetch_optional(p).await.map_err(db_err)? else {
                return Ok(None);
            };
            Ok(Some(ApiKeyRow {
                id: r.i64("id")?,
                key: r.text("key")?,
                participant: ParticipantId(
                    u32::try_from(r.i64("participant_id")?).map_err(|_| bad("participant id"))?,
                ),
                secret: r.text("secret")?,
                passphrase_sha256: r.text("passphrase_sha256")?,
                revoked: r.opt_i64("revoked_ns")?.is_some(),
            }))
        })
    }

    /// Revokes a participant's key; false if it has no such live key.
    pub async fn revoke_api_key(
        &self,
        participant: ParticipantId,
        key: &str,
        now_ns: i64,
    ) -> Result<bool, DbError> {
        let _turn = self.write_turn().await;
        let q = "UPDATE api_keys SET revoked_ns = $1 WHERE key = $2 AND participant_id = $3 AND revoked_ns IS NULL";
        with_pool!(write self, |p, _o, _t| {
            let n = sqlx::query(q)
                .bind(now_ns)
                .bind(key)
                .bind(i64::from(participant.0))
                .execute(p)
                .await
                .map_err(db_err)?
                .rows_affected();
            Ok(n == 1)
        })
    }

    // ---- risk limits ----

    /// Stores a participant's limits and kill switch.
    pub async fn upsert_risk(
        &self,
        participant: ParticipantId,
        r: &RiskRow,
        now_ns: i64,
    ) -> Result<(), DbError> {
        let _turn = self.write_turn().await;
        let q = "INSERT INTO risk_limits (participant_id, order_qty_max, order_notional_max, open_orders_max, \
                 collar_bps, killed, updated_ns) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                 ON CONFLICT (participant_id) DO UPDATE SET order_qty_max = excluded.order_qty_max, \
                 order_notional_max = excluded.order_notional_max, open_orders_max = excluded.open_orders_max, \
                 collar_bps = excluded.collar_bps, killed = excluded.killed, updated_ns = excluded.updated_ns";
        with_pool!(write self, |p, _o, _t| {
            sqlx::query(q)
                .bind(i64::from(participant.0))
                .bind(r.order_qty_max)
                .bind(r.order_notional_max.as_deref())
                .bind(r.open_orders_max)
                .bind(r.collar_bps)
                .bind(i64::from(r.killed))
                .bind(now_ns)
                .execute(p)
                .await
                .map_err(db_err)?;
            Ok(())
        })
    }

    /// Every participant's limits.
    pub async fn all_risk(&self) -> Result<Vec<(ParticipantId, RiskRow)>, DbError> {
        let q = "SELECT * FROM risk_limits ORDER BY participant_id";
        with_pool!(self, |p, _o, _t| {
            let rows = sqlx::query(q).fetch_all(p).await.map_err(db_err)?;
            rows.iter()
                .map(|r| {
                    let id = u32::try_from(r.i64("participant_id")?).map_err(|_| bad("participant id"))?;
                    Ok((
                        ParticipantId(id),
                        RiskRow {
                            order_qty_max: r.opt_i64("order_qty_max")?,
                            order_notional_max: r.try_get("order_notional_max").map_err(db_err)?,
                            open_orders_max: r.opt_i64("open_orders_max")?,
                            collar_bps: r.opt_i64("collar_bps")?,
                            killed: r.i64("killed")? != 0,
                        },
                    ))
                })
                .collect()
        })
    }

    // ---- orders and trades (written by the journal) ----

    /// One order, working or finished.
    pub async fn order(&self, id: OrderId) -> Result<Option<OrderRow>, DbError> {
        let id = id_i64(id.0)?;
        with_pool!(self, |p, order_row, _t| {
            for q in ["SELECT * FROM orders_open WHERE id = $1", "SELECT * FROM orders_done WHERE id = $1"] {
                if let Some(row) = sqlx::query(q).bind(id).fetch_optional(p).await.map_err(db_err)? {
                    return Ok(Some(order_row(&row)?));
                }
            }
            Ok(None)
        })
    }

    /// A participant's order by its client order id (the latest, if reused on
    /// another day).
    pub async fn order_by_client_id(
        &self,
        participant: ParticipantId,
        client_order_id: &str,
    ) -> Result<Option<OrderRow>, DbError> {
        let q = "SELECT * FROM orders WHERE participant_id = $1 AND client_order_id = $2 ORDER BY id DESC LIMIT 1";
        with_pool!(self, |p, order_row, _t| {
            sqlx::query(q)
                .bind(i64::from(participant.0))
                .bind(client_order_id)
                .fetch_optional(p)
                .await
                .map_err(db_err)?
                .as_ref()
                .map(|r| order_row(r).map_err(DbError::from))
                .transpose()
        })
    }

    /// A page of a participant's orders, newest first, with ids below `before`.
    pub async fn orders(
        &self,
        participant: ParticipantId,
        filter: OrderFilter,
        product: Option<ProductId>,
        before: Option<OrderId>,
        limit: u32,
    ) -> Result<Vec<OrderRow>, DbError> {
        // One literal per table: statements are never assembled from strings.
        let q = match filter {
            OrderFilter::Open => {
                "SELECT * FROM orders_open WHERE participant_id = $1 AND ($2 IS NULL OR product_id = $2) \
                 AND id < $3 ORDER BY id DESC LIMIT $4"
            }
            OrderFilter::Done => {
                "SELECT * FROM orders_done WHERE participant_id = $1 AND ($2 IS NULL OR product_id = $2) \
                 AND id < $3 ORDER BY id DESC LIMIT $4"
            }
            OrderFilter::All => {
                "SELECT * FROM orders WHERE participant_id = $1 AND ($2 IS NULL OR product_id = $2) \
                 AND id < $3 ORDER BY id DESC LIMIT $4"
            }
        };
        let before = match before {
            Some(b) => id_i64(b.0)?,
            None => i64::MAX,
        };
        with_pool!(self, |p, order_row, _t| {
            sqlx::query(q)
                .bind(i64::from(participant.0))
                .bind(product.map(|x| i64::from(x.0)))
                .bind(before)
                .bind(i64::from(limit.min(PAGE_ROWS_MAX)))
                .fetch_all(p)
                .await
                .map_err(db_err)?
                .iter()
                .map(|r| order_row(r).map_err(DbError::from))
                .collect()
        })
    }

    /// The trades of one order, oldest first, at most [`ORDER_FILLS_MAX`].
    pub async fn trades_of_order(&self, id: OrderId) -> Result<Vec<(TradeRow, bool)>, DbError> {
        // Bounded: an order filled by very many makers shows its first fills only.
        let q = "SELECT * FROM trades WHERE maker_order_id = $1 UNION ALL \
                 SELECT * FROM trades WHERE taker_order_id = $1 AND maker_order_id <> $1 ORDER BY id LIMIT $2";
        let id = id_i64(id.0)?;
        with_pool!(self, |p, _o, trade_row| {
            sqlx::query(q)
                .bind(id)
                .bind(ORDER_FILLS_MAX)
                .fetch_all(p)
                .await
                .map_err(db_err)?
                .iter()
                .map(|r| trade_row(r).map_err(DbError::from))
                .collect()
        })
    }

    /// One trade.
    pub async fn trade(&self, id: TradeId) -> Result<Option<(TradeRow, bool)>, DbError> {
        let q = "SELECT * FROM trades WHERE id = $1";
        let id = id_i64(id.0)?;
        with_pool!(self, |p, _o, trade_row| {
            sqlx::query(q)
                .bind(id)
                .fetch_optional(p)
                .await
                .map_err(db_err)?
                .as_ref()
                .map(|r| trade_row(r).map_err(DbError::from))
                .transpose()
        })
    }

    /// A participant's fills, newest first, optionally for one product.
    pub async fn fills(
        &self,
        participant: ParticipantId,
        product: Option<ProductId>,
        limit: u32,
    ) -> Result<Vec<(TradeRow, bool)>, DbError> {
        let q = "SELECT * FROM trades WHERE maker_participant_id = $1 AND ($2 IS NULL OR product_id = $2) \
                 UNION ALL \
                 SELECT * FROM trades WHERE taker_participant_id = $1 AND maker_participant_id <> $1 \
                 AND ($2 IS NULL OR product_id = $2) ORDER BY id DESC LIMIT $3";
        with_pool!(self, |p, _o, trade_row| {
            sqlx::query(q)
                .bind(i64::from(participant.0))
                .bind(product.map(|x| i64::from(x.0)))
                .bind(i64::from(limit.min(PAGE_ROWS_MAX)))
                .fetch_all(p)
                .await
                .map_err(db_err)?
                .iter()
                .map(|r| trade_row(r).map_err(DbError::from))
                .collect()
        })
    }

    /// A product's trades (not busted) in `[from_ns, to_ns)`, oldest first, at most `limit`.
    pub async fn trades_between(
        &self,
        product: ProductId,
        from_ns: i64,
        to_ns: i64,
        limit: u32,
    ) -> Result<Vec<TradeRow>, DbError> {
        let q = "SELECT * FROM trades WHERE product_id = $1 AND time_ns >= $2 AND time_ns < $3 AND NOT busted \
                 ORDER BY id LIMIT $4";
        with_pool!(self, |p, _o, trade_row| {
            sqlx::query(q)
                .bind(i64::from(product.0))
                .bind(from_ns)
                .bind(to_ns)
                .bind(i64::from(limit))
                .fetch_all(p)
                .await
                .map_err(db_err)?
                .iter()
                .map(|r| trade_row(r).map(|(t, _)| t).map_err(DbError::from))
                .collect()
        })
    }

    /// A product's newest trades (not busted), newest first.
    pub async fn latest_trades(&self, product: ProductId, limit: u32) -> Result<Vec<TradeRow>, DbError> {
        let q = "SELECT * FROM trades WHERE product_id = $1 AND NOT busted ORDER BY id DESC LIMIT $2";
        with_pool!(self, |p, _o, trade_row| {
            sqlx::query(q)
                .bind(i64::from(product.0))
                .bind(i64::from(limit.min(PAGE_ROWS_MAX)))
                .fetch_all(p)
                .await
                .map_err(db_err)?
                .iter()
                .map(|r| trade_row(r).map(|(t, _)| t).map_err(DbError::from))
                .collect()
        })
    }

    /// Quantity traded in a product since `since_ns` (busted trades excluded).
    pub async fn volume_since(&self, product: ProductId, since_ns: i64) -> Result<i64, DbError> {
        let q = "SELECT CAST(COALESCE(SUM(quantity), 0) AS BIGINT) AS v FROM trades \
                 WHERE product_id = $1 AND time_ns >= $2 AND NOT busted";
        with_pool!(self, |p, _o, _t| {
            let row = sqlx::query(q)
                .bind(i64::from(product.0))
                .bind(since_ns)
                .fetch_one(p)
                .await
                .map_err(db_err)?;
            row.i64("v")
        })
    }

    /// A product's public tape: trades after `since` (an id), oldest first.
    pub async fn tape(
        &self,
        product: ProductId,
        since: Option<TradeId>,
        limit: u32,
    ) -> Result<Vec<(TradeRow, bool)>, DbError> {
        let q = "SELECT * FROM trades WHERE product_id = $1 AND id > $2 ORDER BY id LIMIT $3";
        let since = id_i64(since.map_or(0, |t| t.0))?;
        with_pool!(self, |p, _o, trade_row| {
            sqlx::query(q)
                .bind(i64::from(product.0))
                .bind(since)
                .bind(i64::from(limit.min(PAGE_ROWS_MAX)))
                .fetch_all(p)
                .await
                .map_err(db_err)?
                .iter()
                .map(|r| trade_row(r).map_err(DbError::from))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With every connection of the read pool taken (long reads, say), a write
    /// still goes in: it runs on the write pool, so it never waits for a
    /// connection while holding the turn the journal's writer waits on.
    #[test]
    fn a_write_does_not_wait_for_the_read_pool() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("atlas.db");
        drop(crate::SqliteStore::open(&path).expect("create and migrate"));
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let db = Db::open_sqlite(&path).await.expect("open");
            let Pool::Sqlite(reads) = &db.pool else { panic!("a SQLite pool") };
            let mut held = Vec::new();
            for _ in 0..POOL_CONNECTIONS_MAX {
                held.push(reads.acquire().await.expect("a read connection"));
            }
            // Bounded well below the pool's 30 s acquire timeout, which a write
            // on the read pool would wait out.
            let write =
                tokio::time::timeout(Duration::from_secs(10), db.insert_participant("busy day", 1)).await;
            let row = write.expect("the write did not wait for a read connection").expect("inserted");
            drop(held);
            assert_eq!(
                db.participant(row.id).await.expect("read back").map(|p| p.name),
                Some("busy day".into())
            );
        });
    }
}
