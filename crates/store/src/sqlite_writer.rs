//! The hot path of the SQLite journal: appending a batch and what it changed, on
//! a plain synchronous connection driven by the sequencer's writer thread itself.
//!
//! Through sqlx every statement crossed to its SQLite worker thread and back, and
//! on a two-core machine those hand-offs cost more than SQLite's own work (a
//! small batch took ~1.9 ms to commit). This connection executes in the calling
//! thread with cached prepared statements and binds values in place. Everything
//! else (migrations, recovery, reads, snapshots) stays on sqlx.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use atlas_journal::projection::{Effects, OrderRow, codes};
use atlas_journal::{Batch, StorageError};
use rusqlite::{Connection, Statement, ToSql};

use crate::write_turn::WriteTurn;
use crate::{EffectsSplit, cacheable_chunks};

/// Order rows per statement (23 parameters each, under SQLite's 32,766 limit).
const ORDER_ROWS_PER_STATEMENT: usize = 512;
/// Trade rows per statement (11 parameters each).
const TRADE_ROWS_PER_STATEMENT: usize = 1_024;
/// Ids per DELETE or UPDATE statement.
const IDS_PER_STATEMENT: usize = 1_024;
/// Prepared statements kept: a few shapes (powers of two) of each statement.
const STATEMENT_CACHE: usize = 96;

const ORDER_COLUMNS: &str = "id, client_order_id, product_id, participant_id, side, order_type, \
     time_in_force, post_only, self_trade_prevention, price, stop_price, original_qty, traded_qty, \
     cancelled_qty, open_qty, notional, status, entry_seq, entry_time_ns, update_seq, update_time_ns, \
     triggered, expired";
const ORDER_PARAMS: usize = 23;
const ORDER_UPSERT: &str = " ON CONFLICT (id) DO UPDATE SET price = excluded.price, \
     stop_price = excluded.stop_price, original_qty = excluded.original_qty, \
     traded_qty = excluded.traded_qty, cancelled_qty = excluded.cancelled_qty, \
     open_qty = excluded.open_qty, notional = excluded.notional, status = excluded.status, \
     update_seq = excluded.update_seq, update_time_ns = excluded.update_time_ns, \
     triggered = excluded.triggered, expired = excluded.expired";
const TRADE_COLUMNS: &str = "id, product_id, price, quantity, maker_order_id, maker_participant_id, \
     taker_order_id, taker_participant_id, aggressor_side, seq, time_ns";
const TRADE_PARAMS: usize = 11;

fn err(e: impl std::fmt::Display) -> StorageError {
    StorageError(e.to_string())
}

fn i64_of(v: u64) -> Result<i64, StorageError> {
    i64::try_from(v).map_err(|_| StorageError(format!("{v} is beyond 63 bits")))
}

/// `INSERT INTO table (columns) VALUES (?, ...), ...` for `rows` rows.
fn multi_row(head: &str, params: usize, rows: usize, tail: &str) -> String {
    let one = format!("({})", vec!["?"; params].join(", "));
    format!("{head} VALUES {}{tail}", vec![one; rows].join(", "))
}

/// `head (?, ?, ...)` with `n` placeholders.
fn id_list(head: &str, n: usize) -> String {
    format!("{head} ({})", vec!["?"; n].join(", "))
}

/// The multi-row statements a commit runs, by what they do.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Shape {
    /// Working orders that finished, out of `orders_open`.
    Leave,
    /// Finished orders into `orders_done`.
    Done,
    /// Working orders into `orders_open`, or updated there.
    Open,
    /// Trades.
    Trades,
    /// Busted trades marked.
    Bust,
}

impl Shape {
    /// The statement for `n` rows (or ids).
    ///
    /// Inserts and updates say `OR ROLLBACK`: a row breaking a constraint is a
    /// bug whose commit fails whole (the writer then rolls back and the
    /// sequencer stops), never a statement to undo alone. Under the default
    /// (`ABORT`) SQLite copied every page a multi-row statement touched a
    /// second time into a statement journal, in case it had to undo just that
    /// statement: about 3.5% of the writer's time at 20k orders/s (perf).
    fn text(self, n: usize) -> String {
        match self {
            Shape::Leave => id_list("DELETE FROM orders_open WHERE id IN", n),
            Shape::Done => multi_row(
                &format!("INSERT OR ROLLBACK INTO orders_done ({ORDER_COLUMNS})"),
                ORDER_PARAMS,
                n,
                "",
            ),
            Shape::Open => multi_row(
                &format!("INSERT OR ROLLBACK INTO orders_open ({ORDER_COLUMNS})"),
                ORDER_PARAMS,
                n,
                ORDER_UPSERT,
            ),
            Shape::Trades => {
                multi_row(&format!("INSERT OR ROLLBACK INTO trades ({TRADE_COLUMNS})"), TRADE_PARAMS, n, "")
            }
            Shape::Bust => id_list("UPDATE OR ROLLBACK trades SET busted = 1 WHERE id IN", n),
        }
    }
}

/// Each statement's text, built the first time it is wanted: the prepared
/// statement cache is keyed by text, and building it again (a `format!` per
/// row) for every lookup was 2-3% of the writer's time.
#[derive(Default)]
struct Texts(HashMap<(Shape, usize), String>);

impl Texts {
    fn get(&mut self, shape: Shape, n: usize) -> &str {
        self.0.entry((shape, n)).or_insert_with(|| shape.text(n))
    }
}

/// How often the checkpointer copies committed WAL pages into the database.
/// Every 100 ms rather than every second: the same pages copied in tenfold
/// shorter passes (1-2 ms of CPU rather than 10-18 ms at 20k orders/s), which
/// on two cores left the order path fewer and shorter stretches on one core
/// (FIX p99 1.5-1.9 ms against 1.7-3.1 ms over six runs each; the exchange's
/// CPU per order unchanged).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// WAL pages (4 KiB) after which a commit checkpoints by itself: a backstop in
/// case the checkpointer falls behind, far above what it lets accumulate.
const WAL_BACKSTOP_PAGES: u32 = 262_144;
/// WAL pages (256 MiB) past which the checkpointer makes the WAL start again
/// from its beginning (see [`Checkpointer`]).
const WAL_RESTART_PAGES: i64 = 65_536;

/// The writer's connection, and the thread that checkpoints beside it.
pub(crate) struct Writer {
    conn: Connection,
    /// Taken around each commit (see `write_turn`).
    turn: WriteTurn,
    /// The checkpointer (its thread stops when the writer goes).
    checkpointer: Checkpointer,
    texts: Texts,
}

/// Checkpoints the WAL on its own connection, off the commit path: SQLite's
/// automatic checkpoint runs inside the commit that crosses the threshold, and
/// copying 64 MiB back into the database there stalled that commit (and every
/// order waiting on it) for tens of milliseconds. A PASSIVE checkpoint never
/// blocks the writer; the writer keeps appending while it runs.
///
/// But SQLite only rewinds the WAL when a write transaction begins with every
/// frame copied, and a passive checkpoint never catches up with a writer that
/// commits back to back: at 20k orders/s the WAL grew by ~200 MB/s until the
/// backstop, whose inline checkpoint then stalled the writer every few seconds.
/// So past [`WAL_RESTART_PAGES`] the checkpointer copies the bulk and asks
/// the writer to copy, before its next commit, the few pages appended
/// meanwhile; that commit rewrites the WAL from its start. The writer spends
/// that remainder (well under a millisecond on tmpfs) once per few rounds.
///
/// The thread runs at idle priority (`SCHED_IDLE`): its bulk pass, once a
/// second, was 10-18 ms of CPU at 20k orders/s, and on two cores it took a
/// core from the order path while it ran. At idle priority it yields to every
/// other thread (FIX p99 order-to-ack 2.0-2.3 ms against 2.2-4.0 ms, before
/// [`CHECKPOINT_EVERY`] went from a second to 100 ms). Its last pass is the
/// writer's, not its own under the write turn: a thread that can be held off
/// the CPU indefinitely must not hold a lock the writer waits for.
struct Checkpointer {
    stop: Arc<AtomicBool>,
    /// Set when the bulk is copied and the writer should finish the job.
    restart_due: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// `PRAGMA wal_checkpoint(PASSIVE)`: the WAL's pages and how many are copied.
fn checkpoint(conn: &Connection) -> Result<(i64, i64), StorageError> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(1)?, r.get(2)?))).map_err(err)
}

/// Puts the calling thread at idle priority, where the kernel allows it (it
/// always lets a thread lower its own priority); otherwise it stays as it is.
fn idle_priority() {
    use thread_priority::{
        NormalThreadSchedulePolicy, ThreadPriority, ThreadSchedulePolicy, set_thread_priority_and_policy,
        thread_native_id,
    };
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    if let Err(e) = set_thread_priority_and_policy(thread_native_id(), ThreadPriority::Min, idle) {
        tracing::warn!(error = ?e, "the WAL checkpointer runs at normal priority");
    }
}

impl Checkpointer {
    fn start(path: &Path, every: Duration, restart_pages: i64) -> Result<Checkpointer, StorageError> {
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        let stop = Arc::new(AtomicBool::new(false));
        let restart_due = Arc::new(AtomicBool::new(false));
        let (flag, due) = (stop.clone(), restart_due.clone());
        let thread = std::thread::Builder::new()
            .name("atlas-checkpoint".into())
            .spawn(move || {
                idle_priority();
                while !flag.load(Ordering::Acquire) {
                    std::thread::park_timeout(every);
                    // A failure here is not the commit's: the next round (or the
                    // backstop) checkpoints.
                    let Ok((wal, _)) = checkpoint(&conn) else { continue };
                    if wal >= restart_pages {
                        // A second pass copies what came in during the first, so
                        // that what is left for the writer is a few commits' worth.
                        let _ = checkpoint(&conn);
                        due.store(true, Ordering::Release);
                    }
                }
            })
            .map_err(err)?;
        Ok(Checkpointer { stop, restart_due, thread: Some(thread) })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

/// Binds values in order, counting parameters from 1.
struct Binder<'s, 'c> {
    stmt: &'s mut Statement<'c>,
    next: usize,
}

impl Binder<'_, '_> {
    fn bind(&mut self, v: impl ToSql) -> Result<&mut Self, StorageError> {
        self.next += 1;
        self.stmt.raw_bind_parameter(self.next, v).map_err(err)?;
        Ok(self)
    }
}

impl Writer {
    /// Opens the database (whose schema sqlx's migrations already brought up to
    /// date) with the same durability settings as the sqlx connections.
    pub(crate) fn open(path: &Path, turn: WriteTurn) -> Result<Writer, StorageError> {
        Writer::open_checkpointing(path, turn, CHECKPOINT_EVERY, WAL_RESTART_PAGES)
    }

    /// [`Writer::open`] with the checkpointer's round length and restart size.
    fn open_checkpointing(
        path: &Path,
        turn: WriteTurn,
        every: Duration,
        restart_pages: i64,
    ) -> Result<Writer, StorageError> {
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        // WAL is a property of the file (set by sqlx at creation); the rest are
        // per connection. See `SqliteStore::open_shard` for why each.
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA temp_store = MEMORY; \
             PRAGMA cache_size = -65536; PRAGMA wal_autocheckpoint = {WAL_BACKSTOP_PAGES}; \
             PRAGMA foreign_keys = ON;"
        ))
        .map_err(err)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let checkpointer = Checkpointer::start(path, every, restart_pages)?;
        Ok(Writer { conn, turn, checkpointer, texts: Texts::default() })
    }

    /// Appends `batch` and writes `fx` in one transaction.
    pub(crate) fn append(&mut self, shard: i64, batch: &Batch, fx: &Effects) -> Result<(), StorageError> {
        // Never inside a runtime: this is the journal's writer thread.
        let _turn = self.turn.blocking_lock();
        if self.checkpointer.restart_due.swap(false, Ordering::AcqRel) {
            // The checkpointer's last pass: what came in since its bulk. Then
            // this commit starts the WAL over. A failure leaves it to the next
            // round (or the backstop), as in the checkpointer.
            let _ = checkpoint(&self.conn);
        }
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut stmt = tx
                .prepare_cached(
                    "INSERT INTO journal (shard, first_seq, last_seq, prev_hash, hash, entries) \
                     VALUES (?, ?, ?, ?, ?, ?)",
                )
                .map_err(err)?;
            stmt.execute((
                shard,
                i64_of(batch.first_seq.0)?,
                i64_of(batch.last_seq.0)?,
                &batch.prev_hash.0[..],
                &batch.hash.0[..],
                &batch.blob[..],
            ))
            .map_err(err)?;
        }
        write_effects(&tx, &mut self.texts, fx, batch.first_seq)?;
        tx.commit().map_err(err)
    }
}

fn execute(stmt: &mut Statement<'_>) -> Result<(), StorageError> {
    stmt.raw_execute().map(|_| ()).map_err(err)
}

/// The same writes as the sqlx path (`rows.rs`): leaving orders out of
/// `orders_open`, finished ones into `orders_done`, working ones upserted into
/// `orders_open`, trades inserted, then busts.
fn write_effects(
    tx: &rusqlite::Transaction<'_>,
    texts: &mut Texts,
    fx: &Effects,
    first_seq: atlas_types::Seq,
) -> Result<(), StorageError> {
    let split = EffectsSplit::of(fx, first_seq);
    for chunk in cacheable_chunks(&split.leaving, IDS_PER_STATEMENT) {
        let mut stmt = tx.prepare_cached(texts.get(Shape::Leave, chunk.len())).map_err(err)?;
        let mut b = Binder { stmt: &mut stmt, next: 0 };
        for id in chunk {
            b.bind(i64_of(id.0)?)?;
        }
        execute(&mut stmt)?;
    }
    for (shape, rows) in [(Shape::Done, &split.done), (Shape::Open, &split.open)] {
        for chunk in cacheable_chunks(rows, ORDER_ROWS_PER_STATEMENT) {
            let mut stmt = tx.prepare_cached(texts.get(shape, chunk.len())).map_err(err)?;
            let mut b = Binder { stmt: &mut stmt, next: 0 };
            for &i in chunk {
                bind_order(&mut b, &fx.orders[i])?;
            }
            execute(&mut stmt)?;
        }
    }
    for chunk in cacheable_chunks(&fx.trades, TRADE_ROWS_PER_STATEMENT) {
        let mut stmt = tx.prepare_cached(texts.get(Shape::Trades, chunk.len())).map_err(err)?;
        let mut b = Binder { stmt: &mut stmt, next: 0 };
        for t in chunk {
            b.bind(i64_of(t.id.0)?)?
                .bind(i64::from(t.product.0))?
                .bind(t.price.0)?
                .bind(t.quantity.0)?
                .bind(i64_of(t.maker_order.0)?)?
                .bind(i64::from(t.maker_participant.0))?
                .bind(i64_of(t.taker_order.0)?)?
                .bind(i64::from(t.taker_participant.0))?
                .bind(codes::side(t.aggressor))?
                .bind(i64_of(t.seq.0)?)?
                .bind(t.time.0)?;
        }
        execute(&mut stmt)?;
    }
    // Busts come after the inserts: a trade may be printed and busted in one batch.
    for chunk in cacheable_chunks(&fx.busted, IDS_PER_STATEMENT) {
        let mut stmt = tx.prepare_cached(texts.get(Shape::Bust, chunk.len())).map_err(err)?;
        let mut b = Binder { stmt: &mut stmt, next: 0 };
        for id in chunk {
            b.bind(i64_of(id.0)?)?;
        }
        execute(&mut stmt)?;
    }
    Ok(())
}

fn bind_order(b: &mut Binder<'_, '_>, r: &OrderRow) -> Result<(), StorageError> {
    b.bind(i64_of(r.id.0)?)?
        .bind(r.client_order_id.as_deref())?
        .bind(i64::from(r.product.0))?
        .bind(i64::from(r.participant.0))?
        .bind(codes::side(r.side))?
        .bind(codes::order_type(r.order_type))?
        .bind(codes::time_in_force(r.time_in_force))?
        .bind(i64::from(r.post_only))?
        .bind(codes::stp(r.self_trade_prevention))?
        .bind(r.price.map(|p| p.0))?
        .bind(r.stop_price.map(|p| p.0))?
        .bind(r.original.0)?
        .bind(r.traded.0)?
        .bind(r.cancelled.0)?
        .bind(r.open.0)?
        .bind(r.notional.to_string())?
        .bind(r.status.as_str())?
        .bind(i64_of(r.entry_seq.0)?)?
        .bind(r.entry_time.0)?
        .bind(i64_of(r.update_seq.0)?)?
        .bind(r.update_time.0)?
        .bind(i64::from(r.triggered))?
        .bind(i64::from(r.expired))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use atlas_journal::ChainHash;
    use atlas_types::Seq;

    use super::*;

    /// The WAL header's checkpoint sequence number: how many times the WAL has
    /// started again from its beginning.
    fn wal_restarts(wal: &Path) -> u32 {
        let header = std::fs::read(wal).unwrap();
        u32::from_be_bytes(header[12..16].try_into().unwrap())
    }

    /// The kernel's scheduling policy of each thread named `name` (field 41
    /// of `/proc/self/task/*/stat`; 5 is SCHED_IDLE).
    fn policies_of(name: &str) -> Vec<u32> {
        let mut out = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            if comm.trim_end() != name {
                continue;
            }
            let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
            // Fields after the command's closing parenthesis start at field 3.
            let after = &stat[stat.rfind(')').unwrap() + 1..];
            if let Some(p) = after.split_whitespace().nth(41 - 3) {
                out.push(p.parse().unwrap());
            }
        }
        out
    }

    fn batch(seq: u64) -> Batch {
        Batch {
            first_seq: Seq(seq),
            last_seq: Seq(seq),
            prev_hash: ChainHash([0; 32]),
            hash: ChainHash([0; 32]),
            blob: vec![1, 2, 3],
        }
    }

    fn trade(id: u64, seq: u64) -> atlas_journal::projection::TradeRow {
        use atlas_types::{OrderId, ParticipantId, Price, ProductId, Qty, Side, Timestamp, TradeId};
        atlas_journal::projection::TradeRow {
            id: TradeId(id),
            product: ProductId(1),
            price: Price(100),
            quantity: Qty(1),
            maker_order: OrderId(1),
            maker_participant: ParticipantId(1),
            taker_order: OrderId(2),
            taker_participant: ParticipantId(1),
            aggressor: Side::Buy,
            seq: Seq(seq),
            time: Timestamp(0),
        }
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    /// A row that breaks a constraint partway through a multi-row statement
    /// (here a trade id printed twice) fails the whole commit: the rows before
    /// it in the statement, the statements before it and the journal row are
    /// all gone, and the next commit goes through on the same connection.
    #[test]
    fn a_row_breaking_a_constraint_fails_the_whole_commit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("atlas.db");
        drop(crate::SqliteStore::open(&path).unwrap());
        let mut writer = Writer::open(&path, crate::write_turn::of(&path)).unwrap();
        let mut fx = Effects::default();
        fx.trades.push(trade(1, 1));
        writer.append(0, &batch(1), &fx).unwrap();

        let mut bad = Effects::default();
        bad.trades.extend([trade(2, 2), trade(3, 2), trade(1, 2)]);
        assert!(writer.append(0, &batch(2), &bad).is_err());
        let look = Connection::open(&path).unwrap();
        assert_eq!(count(&look, "SELECT count(*) FROM trades"), 1);
        assert_eq!(count(&look, "SELECT count(*) FROM journal"), 1);

        let mut good = Effects::default();
        good.trades.extend([trade(2, 2), trade(3, 2)]);
        writer.append(0, &batch(2), &good).unwrap();
        assert_eq!(count(&look, "SELECT count(*) FROM trades"), 3);
        assert_eq!(count(&look, "SELECT max(last_seq) FROM journal"), 2);
    }

    /// The checkpointer's thread runs at idle priority.
    #[test]
    fn the_checkpointer_runs_at_idle_priority() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("atlas.db");
        drop(crate::SqliteStore::open(&path).unwrap());
        let _writer = Writer::open(&path, crate::write_turn::of(&path)).unwrap();
        // The thread lowers itself as it starts (other tests' checkpointers
        // may be starting too: one at idle priority is enough).
        const SCHED_IDLE: u32 = 5;
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !policies_of("atlas-checkpoin").contains(&SCHED_IDLE) {
            assert!(std::time::Instant::now() < deadline, "policies {:?}", policies_of("atlas-checkpoin"));
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Back-to-back commits, as under sustained load, never leave a gap in which
    /// a passive checkpoint catches up; the checkpointer's turn restarts the WAL
    /// anyway, and the file stays near the restart size.
    #[test]
    fn the_wal_restarts_under_back_to_back_commits() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("atlas.db");
        drop(crate::SqliteStore::open(&path).unwrap());
        const RESTART_PAGES: i64 = 1_024;
        let mut writer = Writer::open_checkpointing(
            &path,
            crate::write_turn::of(&path),
            Duration::from_millis(5),
            RESTART_PAGES,
        )
        .unwrap();
        let wal = dir.path().join("atlas.db-wal");
        // Three to four pages per commit: a restart every ~300 commits at most.
        let blob = vec![7u8; 12_000];
        const COMMITS: u64 = 3_000;
        for seq in 1..=COMMITS {
            let batch = Batch {
                first_seq: Seq(seq),
                last_seq: Seq(seq),
                prev_hash: ChainHash([0; 32]),
                hash: ChainHash([0; 32]),
                blob: blob.clone(),
            };
            writer.append(0, &batch, &Effects::default()).unwrap();
        }
        let restarts = wal_restarts(&wal);
        assert!(restarts >= 3, "the WAL restarted {restarts} times in {COMMITS} commits");
        let committed = COMMITS * 3 * 4_096;
        let size = std::fs::metadata(&wal).unwrap().len();
        assert!(size < committed / 3, "a WAL of {size} bytes after {committed} bytes committed");
    }
}
