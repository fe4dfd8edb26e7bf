//! Durable storage for Atlas: the journal and snapshots of each shard, on SQLite
//! (the embedded default) or PostgreSQL (production). Both implement
//! `atlas_journal::Storage` and pass the same tests.

#[macro_use]
mod rows;
mod audit;
mod credentials;
mod db;
mod postgres;
mod sqlite;
mod sqlite_writer;
mod write_turn;

pub use audit::{
    AuditBroken, AuditEvent, AuditRow, GENESIS as AUDIT_GENESIS, entry_hash as audit_entry_hash,
};
pub use credentials::PgCredentials;
pub use db::{
    ApiKeyRow, Db, DbError, OrderFilter, PAGE_ROWS_MAX, ParticipantRow, ProductRow, RiskRow, UserRow,
};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use atlas_journal::projection::Effects;
use atlas_journal::{Batch, RecoveryError, StorageError};
use atlas_types::{OrderId, Seq};

/// A batch's changed orders sorted by the table they go to.
struct EffectsSplit {
    /// Finished orders that an earlier batch left working: to delete from `orders_open`.
    leaving: Vec<OrderId>,
    /// Indexes (into `Effects::orders`) of finished orders, for `orders_done`.
    done: Vec<usize>,
    /// Indexes of working orders, for `orders_open`.
    open: Vec<usize>,
}

impl EffectsSplit {
    /// Sorts `fx`, the effects of the batch starting at `first_seq`.
    fn of(fx: &Effects, first_seq: Seq) -> EffectsSplit {
        let mut split = EffectsSplit { leaving: Vec::new(), done: Vec::new(), open: Vec::new() };
        for (i, r) in fx.orders.iter().enumerate() {
            if r.open.0 > 0 {
                split.open.push(i);
            } else {
                split.done.push(i);
                // An order entered in this batch was never written as working.
                if r.entry_seq < first_seq {
                    split.leaving.push(r.id);
                }
            }
        }
        split
    }
}

/// Splits `rows` into chunks whose sizes are powers of two up to `max` (itself a
/// power of two): multi-row statements then come in at most log2(max) + 1 shapes,
/// which the driver's prepared-statement cache keeps, instead of a new statement
/// to compile for every batch size.
fn cacheable_chunks<T>(rows: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    let mut rest = rows;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let n = if rest.len() >= max { max } else { 1 << (usize::BITS - 1 - rest.len().leading_zeros()) };
        let (chunk, tail) = rest.split_at(n);
        rest = tail;
        Some(chunk)
    })
}

/// Pages the replay reader may fetch ahead of the replay.
const REPLAY_PAGES_AHEAD: usize = 4;

/// Streams stored batches to `visit` while a reader thread fetches the next pages,
/// so replay overlaps the database I/O. `open` runs on the reader thread and
/// returns its page reader (its own connection on its own runtime: a connection
/// must not outlive the runtime driving it); `read(reader, cursor)` returns the
/// next batches after sequence number `cursor`, in order, empty at the end.
fn stream_batches<R>(
    after: Seq,
    open: impl FnOnce() -> Result<R, StorageError> + Send,
    read: fn(&mut R, i64) -> Result<Vec<Batch>, StorageError>,
    visit: &mut dyn FnMut(Batch) -> Result<(), RecoveryError>,
) -> Result<(), RecoveryError> {
    let start = i64::try_from(after.0).map_err(|e| StorageError(e.to_string()))?;
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Vec<Batch>, StorageError>>(REPLAY_PAGES_AHEAD);
        let reader = scope.spawn(move || {
            let mut r = match open() {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            let mut cursor = start;
            loop {
                let page = read(&mut r, cursor);
                let done = match &page {
                    Ok(batches) => match batches.last() {
                        Some(b) => {
                            cursor = i64::try_from(b.last_seq.0).unwrap_or(i64::MAX);
                            false
                        }
                        None => true,
                    },
                    Err(_) => true,
                };
                // The receiver stops early on a bad batch; then so do we.
                if tx.send(page).is_err() || done {
                    return;
                }
            }
        });
        let mut result = Ok(());
        for page in rx.iter() {
            let batches = match page {
                Ok(b) if b.is_empty() => break,
                Ok(b) => b,
                Err(e) => {
                    result = Err(e.into());
                    break;
                }
            };
            if let Err(e) = batches.into_iter().try_for_each(&mut *visit) {
                result = Err(e);
                break;
            }
        }
        drop(rx);
        let _ = reader.join();
        result
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn chunks_are_powers_of_two_and_cover_everything() {
        for n in [0usize, 1, 2, 3, 7, 512, 513, 1000, 1537] {
            let rows: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = super::cacheable_chunks(&rows, 512).collect();
            assert!(chunks.iter().all(|c| c.len().is_power_of_two() && c.len() <= 512));
            assert_eq!(chunks.concat(), rows);
        }
    }
}
